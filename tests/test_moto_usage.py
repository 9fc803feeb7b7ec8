"""reconciler.moto_kms's GetKeyLastUsage: use recorded per key, answered as KMS documents it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from moto import mock_aws

from reconciler import moto_kms

REGION = "us-east-1"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def kms() -> Iterator[Any]:
    moment = [NOW]
    moto_kms.set_clock(lambda: moment[0])
    try:
        with mock_aws(), moto_kms.patched():
            client = boto3.client("kms", region_name=REGION)
            client.at = moment  # the test moves the clock through it
            yield client
    finally:
        moto_kms.set_clock(None)


def _key(kms: Any, spec: str = "SYMMETRIC_DEFAULT", usage: str = "ENCRYPT_DECRYPT") -> str:
    return str(kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"])


def test_a_new_key_has_no_use_and_tracking_starts_at_its_creation(kms: Any) -> None:
    key_id = _key(kms)
    answer = kms.get_key_last_usage(KeyId=key_id)
    assert "KeyLastUsage" not in answer
    assert answer["KeyCreationDate"] == answer["TrackingStartDate"] == NOW
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["CreationDate"] == NOW


def test_a_key_older_than_tracking_starts_at_the_tracking_date(kms: Any) -> None:
    kms.at[0] = moto_kms.TRACKING_BEGAN - timedelta(days=400)
    key_id = _key(kms)
    answer = kms.get_key_last_usage(KeyId=key_id)
    assert answer["TrackingStartDate"] == moto_kms.TRACKING_BEGAN
    assert answer["KeyCreationDate"] == moto_kms.TRACKING_BEGAN - timedelta(days=400)


def test_each_successful_operation_is_recorded_on_its_key(kms: Any) -> None:
    source, destination = _key(kms), _key(kms)
    blob = kms.encrypt(KeyId=source, Plaintext=b"x")["CiphertextBlob"]
    assert kms.get_key_last_usage(KeyId=source)["KeyLastUsage"]["Operation"] == "Encrypt"
    kms.at[0] = NOW + timedelta(hours=1)
    kms.decrypt(CiphertextBlob=blob)
    used = kms.get_key_last_usage(KeyId=source)["KeyLastUsage"]
    assert used["Operation"] == "Decrypt" and used["Timestamp"] == NOW + timedelta(hours=1)
    assert used["CloudTrailEventId"] and used["KmsRequestId"]
    kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=destination)
    for key_id in (source, destination):  # ReEncrypt is recorded for both keys
        assert kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]["Operation"] == "ReEncrypt"
    kms.generate_data_key_without_plaintext(
        KeyId=f"arn:aws:kms:{REGION}:123456789012:key/{source}", KeySpec="AES_256"
    )
    assert (
        kms.get_key_last_usage(KeyId=source)["KeyLastUsage"]["Operation"]
        == "GenerateDataKeyWithoutPlaintext"
    )
    kms.create_alias(AliasName="alias/data", TargetKeyId=destination)
    kms.generate_data_key(KeyId="alias/data", KeySpec="AES_256")
    assert (
        kms.get_key_last_usage(KeyId=destination)["KeyLastUsage"]["Operation"] == "GenerateDataKey"
    )

    signer = _key(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    signed = kms.sign(KeyId=signer, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert kms.get_key_last_usage(KeyId=signer)["KeyLastUsage"]["Operation"] == "Sign"
    kms.verify(
        KeyId=signer, Message=b"m", Signature=signed["Signature"], SigningAlgorithm="ECDSA_SHA_256"
    )
    assert kms.get_key_last_usage(KeyId=signer)["KeyLastUsage"]["Operation"] == "Verify"


def test_a_failed_call_records_nothing_and_aliases_are_refused(kms: Any) -> None:
    key_id = _key(kms)
    with pytest.raises(kms.exceptions.ClientError):
        kms.decrypt(CiphertextBlob=b"not a ciphertext" * 4)
    assert "KeyLastUsage" not in kms.get_key_last_usage(KeyId=key_id)
    kms.create_alias(AliasName="alias/k", TargetKeyId=key_id)
    with pytest.raises(kms.exceptions.NotFoundException):
        kms.get_key_last_usage(KeyId="alias/k")  # real KMS: key ID or key ARN only
