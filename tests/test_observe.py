"""Observe: reads only what the plan needs, once per target where it can."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from reconciler.aws import KmsApi
from reconciler.observe import ObserveOptions, observe_target
from tests.factories import IDENTITY, TARGET
from tests.fakes import FakeKms


@pytest.fixture
def kms(fake_credentials: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


def make_key(kms: Any, name: str | None, alias: str | None = None, **extra: Any) -> str:
    tags = [{"TagKey": IDENTITY, "TagValue": name}] if name else []
    key_id: str = kms.create_key(
        Description=f"{name} key",
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
        Tags=tags,
        **extra,
    )["KeyMetadata"]["KeyId"]
    if alias:
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def test_managed_keys_are_read_in_full_and_unmanaged_keys_only_tagged(kms: Any) -> None:
    managed = [make_key(kms, f"k{i}", f"alias/k{i}") for i in range(3)]
    kms.enable_key_rotation(KeyId=managed[0])
    unmanaged = [make_key(kms, None, f"alias/other{i}") for i in range(4)]
    api = KmsApi(kms)
    obs = observe_target(api, TARGET, ObserveOptions(IDENTITY))
    by_id = obs.by_id()
    assert set(by_id) == set(managed) | set(unmanaged)
    assert by_id[managed[0]].rotation_enabled is True
    assert by_id[managed[1]].rotation_enabled is False
    assert by_id[managed[0]].aliases == frozenset({"alias/k0"})
    assert by_id[managed[0]].policy is not None and by_id[managed[0]].key_state == "Enabled"
    assert by_id[unmanaged[0]].policy is None and by_id[unmanaged[0]].key_state is None
    assert obs.aliases["alias/other1"] == unmanaged[1]
    # once per target: ListKeys, ListAliases; per customer key: ListResourceTags;
    # per managed key: DescribeKey, GetKeyPolicy, GetKeyRotationStatus, ListGrants.
    assert dict(api.calls) == {
        "ListKeys": 1,
        "ListAliases": 1,
        "ListResourceTags": 7,
        "DescribeKey": 3,
        "GetKeyPolicy": 3,
        "GetKeyRotationStatus": 3,
        "ListGrants": 3,
    }
    assert obs.read_calls == 21
    assert by_id[managed[0]].grants == () and by_id[unmanaged[0]].grants is None


def test_wanted_unmanaged_keys_are_read_in_full_by_id_or_alias(kms: Any) -> None:
    a = make_key(kms, None, "alias/legacy-a")
    b = make_key(kms, None)
    c = make_key(kms, None)
    api = KmsApi(kms)
    obs = observe_target(api, TARGET, ObserveOptions(IDENTITY, wanted=("alias/legacy-a", b)))
    by_id = obs.by_id()
    assert by_id[a].policy is not None and by_id[b].policy is not None
    assert by_id[c].policy is None
    assert api.calls["DescribeKey"] == 2


def test_pending_deletion_keys_are_observed_without_rotation(kms: Any) -> None:
    key_id = make_key(kms, "gone")
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    api = KmsApi(kms)
    obs = observe_target(api, TARGET, ObserveOptions(IDENTITY))
    (key,) = obs.keys
    assert key.pending_deletion and key.deletion_date is not None
    assert key.rotation_enabled is None  # real KMS refuses or reports false: unknown
    assert "GetKeyRotationStatus" not in api.calls


def test_asymmetric_keys_skip_the_rotation_read(kms: Any) -> None:
    kms.create_key(
        KeySpec="ECC_NIST_P256",
        KeyUsage="SIGN_VERIFY",
        Tags=[{"TagKey": IDENTITY, "TagValue": "signer"}],
    )
    api = KmsApi(kms)
    (key,) = observe_target(api, TARGET, ObserveOptions(IDENTITY)).keys
    assert key.key_spec == "ECC_NIST_P256" and key.rotation_enabled is None
    assert "GetKeyRotationStatus" not in api.calls


def test_policy_is_parsed_and_unparseable_text_never_equals_a_policy(kms: Any) -> None:
    key_id = make_key(kms, "app")
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy="not json")
    (key,) = observe_target(KmsApi(kms), TARGET, ObserveOptions(IDENTITY)).keys
    assert key.policy is not None and key.policy["Statement"] == []


def fake_account(keys: dict[str, dict[str, str]], **responses: Any) -> FakeKms:
    aliases = [
        {"AliasName": "alias/aws/s3", "TargetKeyId": "aws-managed-1"},
        {"AliasName": "alias/aws/ebs"},  # predefined, never used
    ]
    default: dict[str, Any] = {
        "ListKeys": lambda **p: {"Keys": [{"KeyId": k} for k in [*keys, "aws-managed-1"]]},
        "ListAliases": lambda **p: {"Aliases": aliases},
        "ListResourceTags": lambda **p: {
            "Tags": [{"TagKey": k, "TagValue": v} for k, v in keys[p["KeyId"]].items()]
        },
        "DescribeKey": lambda **p: {
            "KeyMetadata": {
                "KeyId": p["KeyId"],
                "KeyState": "Enabled",
                "KeyManager": "CUSTOMER",
                "KeySpec": "SYMMETRIC_DEFAULT",
                "KeyUsage": "ENCRYPT_DECRYPT",
                "Origin": "AWS_KMS",
            }
        },
        "GetKeyPolicy": lambda **p: {"Policy": json.dumps({"Statement": []})},
        "GetKeyRotationStatus": lambda **p: {
            "KeyRotationEnabled": True,
            "RotationPeriodInDays": 180,
        },
    }
    default.update(responses)
    return FakeKms(responses=default)


def test_aws_managed_keys_are_never_read_and_real_rotation_period_is_kept() -> None:
    fake = fake_account({"k1": {IDENTITY: "one"}})
    obs = observe_target(KmsApi(fake), TARGET, ObserveOptions(IDENTITY))
    assert [k.key_id for k in obs.keys] == ["k1"]
    assert obs.keys[0].rotation_period_days == 180
    assert "aws-managed-1" in obs.aws_managed_key_ids
    assert all(p.get("KeyId") != "aws-managed-1" for _, p in fake.calls)
    assert "alias/aws/s3" not in obs.aliases


@pytest.mark.parametrize(
    ("operation", "code", "check"),
    [
        ("ListResourceTags", "NotFoundException", lambda obs: obs.keys == ()),
        # maybe ours: neither managed nor unmanaged, but listed as unreadable
        ("ListResourceTags", "AccessDeniedException", lambda obs: obs.unreadable and not obs.keys),
        ("DescribeKey", "NotFoundException", lambda obs: obs.keys == ()),
        (
            "GetKeyRotationStatus",
            "KMSInvalidStateException",
            lambda obs: obs.keys[0].rotation_enabled is None,
        ),
        ("GetKeyPolicy", "AccessDeniedException", lambda obs: obs.keys[0].policy is None),
    ],
    ids=[
        "deleted-while-listing",
        "tags-not-readable-means-unknown-not-unmanaged",
        "deleted-before-describe",
        "rotation-state-invalid",
        "policy-not-readable",
    ],
)
def test_real_kms_errors_on_reads_degrade_to_unknown(operation: str, code: str, check: Any) -> None:
    fake = fake_account({"k1": {IDENTITY: "one"}})
    fake.failures[operation] = [code]
    obs = observe_target(KmsApi(fake, sleep=lambda s: None), TARGET, ObserveOptions(IDENTITY))
    assert check(obs)
