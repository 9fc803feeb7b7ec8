"""examples/byok runs as its README says, in the sandbox: plan, apply, plan again.

The material is made here the way the README makes it (random bytes, an RSA key); the
sandbox's moto corrections import it for real, and the sandbox state keeps what was
imported between runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from reconciler.aws import sandbox_session
from reconciler.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "byok"


def test_byok_example_plans_applies_and_converges_in_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = tmp_path / "byok"
    shutil.copytree(EXAMPLE, inventory)
    material = inventory / "material"
    material.mkdir()
    hmac_key, data_key = os.urandom(48), os.urandom(32)
    (material / "partner-hmac.hex").write_text(hmac_key.hex() + "\n")
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (material / "release-signing.pem").write_bytes(
        signing.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("EXTERNAL_DATA_KEY", base64.b64encode(data_key).decode())
    monkeypatch.setenv("KMS_RECONCILER_SANDBOX_DIR", str(tmp_path / ".kms-sandbox"))
    runner = CliRunner()
    planned = runner.invoke(main, ["plan", str(inventory), "--sandbox", "--no-color"])
    assert planned.exit_code == 0, planned.output
    assert planned.stdout.count("ImportKeyMaterial") == 3
    applied = runner.invoke(
        main, ["apply", str(inventory), "--sandbox", "--auto-approve", "--no-color"]
    )
    assert applied.exit_code == 0, applied.output
    again = runner.invoke(
        main, ["plan", str(inventory), "--sandbox", "--detailed-exitcode", "--no-color"]
    )
    assert again.exit_code == 0, again.output
    assert "No changes." in again.stdout
    # A later run loads the sandbox state: the keys still use the imported material.
    with sandbox_session():
        kms = boto3.client("kms", region_name="us-east-1")
        kms.meta.events.register(
            "before-sign.*.*",
            lambda request, **_: request.headers.__setitem__("x-moto-account-id", "123456789012"),
        )
        mac = kms.generate_mac(
            KeyId="alias/partner-hmac", Message=b"m", MacAlgorithm="HMAC_SHA_256"
        )["Mac"]
        assert mac == hmac.new(hmac_key, b"m", hashlib.sha256).digest()
        signature = kms.sign(
            KeyId="alias/release-signing-byok",
            Message=b"m",
            SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
        )["Signature"]
        signing.public_key().verify(signature, b"m", padding.PKCS1v15(), hashes.SHA256())
        blob = kms.encrypt(KeyId="alias/external-data", Plaintext=b"x")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    for secret in (hmac_key, data_key):
        for form in (secret.hex(), base64.b64encode(secret).decode()):
            assert form not in planned.output + applied.output + again.output
