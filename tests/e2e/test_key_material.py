"""Bring your own key: imported material of every key type, end to end on moto_server.

moto has no GetParametersForImport / ImportKeyMaterial; the tool's moto corrections
(``reconciler.moto_import``) give it both, unwrapping as KMS does, so these tests prove the
wrapping itself: a key signs, makes MACs and decrypts with exactly the material the inventory
holds, checked against the same material locally.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from reconciler import material

from .conftest import Inventory, RunCli
from .helpers import NO_CHANGES, managed_keys, operations

pytestmark = pytest.mark.e2e

AES = bytes(range(0x41, 0x61))  # 32 bytes
HMAC_KEY = bytes(range(0x80, 0xC0))  # 64 bytes
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _pem(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _der(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


KEYS = [
    {
        "name": "byok-aes",
        "description": "symmetric, binary file",
        "origin": "EXTERNAL",
        "key_material": {"file": "material/aes.bin"},
    },
    {
        "name": "byok-hmac",
        "description": "HMAC, base64 in a variable",
        "origin": "EXTERNAL",
        "key_spec": "HMAC_256",
        "key_material": {"env": "BYOK_HMAC"},
    },
    {
        "name": "byok-rsa",
        "description": "RSA signing key, PEM file",
        "origin": "EXTERNAL",
        "key_spec": "RSA_2048",
        "key_usage": "SIGN_VERIFY",
        "key_material": {"file": "material/rsa.pem"},
    },
    {
        "name": "byok-ec",
        "description": "ECC signing key, DER (SEC1) as hex",
        "origin": "EXTERNAL",
        "key_spec": "ECC_NIST_P256",
        "key_usage": "SIGN_VERIFY",
        "key_material": {"file": "material/ec.hex", "encoding": "hex"},
    },
]


def _leaked_forms() -> list[str]:
    forms = []
    for secret in (AES, HMAC_KEY, _der(RSA_KEY), _der(EC_KEY)):
        forms += [secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode()]
    forms += [base64.b64encode(_pem(RSA_KEY)).decode()[:40], "PRIVATE KEY"]
    return forms


def _apply_aes(inventory: Inventory, run_cli: RunCli, kms: Any, spec: dict[str, Any]) -> str:
    """``spec`` (byok-aes) the only key, AES its material in material/aes.bin, applied:
    the key's ID."""
    path = inventory.write([spec])
    (path / "material").mkdir()
    (path / "material" / "aes.bin").write_bytes(AES)
    assert run_cli("apply", "--auto-approve").returncode == 0
    return managed_keys(kms)["byok-aes"]


def test_byok_keys_of_every_type_import_and_use_their_material(
    inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    path = inventory.write(KEYS)
    (path / "material").mkdir()
    (path / "material" / "aes.bin").write_bytes(AES)
    (path / "material" / "rsa.pem").write_bytes(_pem(RSA_KEY))
    (path / "material" / "ec.hex").write_text(_der(EC_KEY).hex() + "\n")
    env = {"BYOK_HMAC": base64.b64encode(HMAC_KEY).decode()}

    planned = run_cli("plan", env_extra=env)
    assert planned.returncode in (0, 2), planned
    applied = run_cli("apply", "--auto-approve", env_extra=env)
    assert applied.returncode == 0, applied
    for output in (planned, applied):
        for form in _leaked_forms():
            assert form not in output.stdout + output.stderr, form

    keys = managed_keys(kms)
    for name in ("byok-aes", "byok-hmac", "byok-rsa", "byok-ec"):
        meta = kms.describe_key(KeyId=keys[name])["KeyMetadata"]
        assert (meta["Origin"], meta["KeyState"]) == ("EXTERNAL", "Enabled"), name

    # The keys work with exactly the inventory's material.
    blob = kms.encrypt(KeyId=keys["byok-aes"], Plaintext=b"data")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"data"
    mac = kms.generate_mac(KeyId=keys["byok-hmac"], Message=b"m", MacAlgorithm="HMAC_SHA_256")
    assert mac["Mac"] == hmac.new(HMAC_KEY, b"m", hashlib.sha256).digest()
    signature = kms.sign(
        KeyId=keys["byok-rsa"], Message=b"m", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256"
    )["Signature"]
    RSA_KEY.public_key().verify(signature, b"m", padding.PKCS1v15(), hashes.SHA256())
    signature = kms.sign(KeyId=keys["byok-ec"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")[
        "Signature"
    ]
    EC_KEY.public_key().verify(signature, b"m", ec.ECDSA(hashes.SHA256()))

    replanned = run_cli("plan", "--detailed-exitcode", env_extra=env)
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout


def test_material_deleted_out_of_band_is_imported_again(
    inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    key_id = _apply_aes(inventory, run_cli, kms, KEYS[0])
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept")["CiphertextBlob"]

    kms.delete_imported_key_material(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    drift = run_cli("drift", "--format", "text")
    assert drift.returncode == 2 and "key-pending-import" in drift.stdout, drift
    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2 and "ImportKeyMaterial" in planned.stdout, planned
    assert run_cli("apply", "--auto-approve").returncode == 0
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    # the same material again: what it encrypted before decrypts
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (
            lambda p: p.write_bytes(AES[:16]),
            "holds 16 bytes; a SYMMETRIC_DEFAULT key takes exactly 32",
        ),
        (
            lambda p: p.write_bytes(_pem(EC_KEY)),
            "it is not an RSA private key of 2048 bits",
        ),
    ],
    ids=["short-aes", "ec-for-rsa"],
)
def test_material_that_does_not_fit_stops_apply_before_any_write(
    write: Any, message: str, inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    key = KEYS[0] if "AES" in message or "SYMMETRIC" in message else KEYS[2]
    key = {**key, "key_material": {"file": "material/m"}}
    path = inventory.write([key])
    (path / "material").mkdir()
    write(Path(path / "material" / "m"))
    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 1, applied
    assert message in applied.stderr and "nothing was changed" in applied.stderr
    assert managed_keys(kms) == {}  # (the apply lock's own anchor key may exist)
    for form in _leaked_forms():
        assert form not in applied.stdout + applied.stderr


def test_declared_deletion_of_material_is_destructive_guarded_and_reversible(
    inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    key_id = _apply_aes(inventory, run_cli, kms, KEYS[0])
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept")["CiphertextBlob"]  # a use, just now

    inventory.write([{**KEYS[0], "key_material": {"deleted": True}}])
    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    shown = [" ".join(line.split()) for line in planned.stdout.splitlines()]
    assert any(
        line.startswith('~ key_material = "imported" -> "deleted"') and "destructive" in line
        for line in shown
    ), planned.stdout
    assert "DeleteImportedKeyMaterial" in planned.stdout
    refused = run_cli("apply", "--auto-approve")
    assert refused.returncode == 1 and "--allow-destroy" in refused.stderr, refused
    in_use = run_cli("apply", "--auto-approve", "--allow-destroy")
    assert in_use.returncode == 1, in_use
    assert "refusing to DeleteImportedKeyMaterial key 'byok-aes'" in in_use.stderr
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    done = run_cli("apply", "--auto-approve", "--allow-destroy", "--allow-in-use")
    assert done.returncode == 0, done
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    replanned = run_cli("plan", "--detailed-exitcode")
    assert replanned.returncode == 0 and NO_CHANGES in replanned.stdout, replanned
    drift = run_cli("drift", "--format", "json")
    assert drift.returncode == 0, drift  # deleted as declared: no key-pending-import

    # Declaring the material again imports it again; what it encrypted decrypts.
    inventory.write([KEYS[0]])
    assert run_cli("apply", "--auto-approve").returncode == 0
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"


def test_a_new_material_version_rotates_the_key_on_demand(
    inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    """key_material.version names the material (KeyMaterialDescription); a new version
    with new material is imported as NEW_KEY_MATERIAL and made current by RotateKeyOnDemand
    (KMS supports on-demand rotation of symmetric keys with imported material)."""
    v1 = {**KEYS[0], "key_material": {"file": "material/aes.bin", "version": "2026-01"}}
    key_id = _apply_aes(inventory, run_cli, kms, v1)

    def versions() -> list[tuple[str, str]]:
        listed = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
        return [
            (m.get("KeyMaterialDescription"), m["KeyMaterialState"]) for m in listed["Rotations"]
        ]

    assert versions() == [("2026-01", "CURRENT")]
    assert run_cli("plan", "--detailed-exitcode").returncode == 0

    (inventory.path / "material" / "aes-2.bin").write_bytes(bytes(reversed(AES)))
    v2 = {**KEYS[0], "key_material": {"file": "material/aes-2.bin", "version": "2026-07"}}
    inventory.write([v2])
    drift = run_cli("drift", "--format", "text")
    assert drift.returncode == 2 and "key-material-version" in drift.stdout, drift
    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert [op[0] for op in operations(planned.stdout)] == [
        "ImportKeyMaterial",
        "RotateKeyOnDemand",
    ]
    shown = [" ".join(line.split()) for line in planned.stdout.splitlines()]
    assert any(
        line.startswith('~ key_material.version = "2026-01" -> "2026-07"') for line in shown
    ), planned.stdout
    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 0, applied
    assert versions() == [("2026-01", "NON_CURRENT"), ("2026-07", "CURRENT")]
    new = bytes(reversed(AES))
    for output in (drift, planned, applied):
        text = output.stdout + output.stderr
        for secret in (AES, new):
            for form in (secret.hex(), base64.b64encode(secret).decode(), repr(secret)):
                assert form not in text
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    replanned = run_cli("plan", "--detailed-exitcode")
    assert replanned.returncode == 0 and NO_CHANGES in replanned.stdout, replanned


def test_a_rotation_stopped_between_import_and_rotate_finishes_with_the_rotation(
    inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    """A run that imported the new version but stopped before RotateKeyOnDemand leaves it
    PENDING_ROTATION: the next plan only rotates (importing it again would be refused)."""
    v1 = {**KEYS[0], "key_material": {"file": "material/aes.bin", "version": "v1"}}
    key_id = _apply_aes(inventory, run_cli, kms, v1)
    new = bytes(reversed(AES))
    (inventory.path / "material" / "aes-2.bin").write_bytes(new)
    # The first half of the rotation, as the interrupted run made it.
    prepared = material.prepare(new, "SYMMETRIC_DEFAULT")
    params = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    kms.import_key_material(
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=material.wrap(params["PublicKey"], prepared),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        ImportType="NEW_KEY_MATERIAL",
        KeyMaterialDescription="v2",
    )
    inventory.write([{**KEYS[0], "key_material": {"file": "material/aes-2.bin", "version": "v2"}}])
    planned = run_cli("plan", "--detailed-exitcode")
    assert [op[0] for op in operations(planned.stdout)] == ["RotateKeyOnDemand"], planned
    assert run_cli("apply", "--auto-approve").returncode == 0
    assert run_cli("plan", "--detailed-exitcode").returncode == 0
