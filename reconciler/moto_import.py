"""moto's KMS, given the key-material import it lacks (part of the tool's moto corrections).

moto 5.2 has no GetParametersForImport, ImportKeyMaterial or DeleteImportedKeyMaterial
(NotImplementedError in-process, HTTP 500 in server mode) and creates EXTERNAL keys Enabled
with material of its own. With these patches, as the KMS API reference documents it:

- CreateKey with Origin EXTERNAL makes a key in PendingImport (no material, not usable);
- GetParametersForImport answers with a fresh import token and the public key of an RSA
  wrapping key pair of the requested spec (RSA_2048, RSA_3072, RSA_4096), valid for 24 hours,
  for the wrapping algorithms KMS offers (RSAES_OAEP_SHA_1/256, RSA_AES_KEY_WRAP_SHA_1/256);
- ImportKeyMaterial unwraps the material with the token's private key
  (InvalidImportTokenException: unknown token, or another key's; InvalidCiphertextException:
  it does not unwrap), checks it fits the key spec (IncorrectKeyMaterialException: a raw
  length KMS refuses, a private key of another type, size or curve), and a reimport of
  EXISTING_KEY_MATERIAL must be the material the key had (IncorrectKeyMaterialException).
  The key then uses that material: Encrypt/Decrypt and GenerateMac/VerifyMac with the raw
  bytes, Sign/Verify/GetPublicKey with the private key. The key becomes Enabled (if it was
  PendingImport); ExpirationModel, ValidTo and CurrentKeyMaterialId show in DescribeKey;
  NEW_KEY_MATERIAL (symmetric keys) keeps the new material PENDING_ROTATION until
  RotateKeyOnDemand makes it current (an ON_DEMAND rotation);
- ListKeyRotations with IncludeKeyMaterial ALL_KEY_MATERIAL lists every material version
  (KeyMaterialId, KeyMaterialDescription, ImportState, KeyMaterialState, expiry);
- DeleteImportedKeyMaterial deletes the current material: the key waits in PendingImport.

Where this differs from real KMS: the wrapping key pairs are made once per spec and process
(real KMS makes one per request; the token still binds the key and the algorithm), the
material's expiry (ValidTo) is not enforced by a timer, and SM2 wrapping is not offered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from reconciler import material
from reconciler.moto_kms import _error, _key

SetAttr = Callable[[Any, str, Any], None]
_WRAPPING_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_ALGORITHMS = (
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "RSA_AES_KEY_WRAP_SHA_1",
    "RSA_AES_KEY_WRAP_SHA_256",
)
_wrapping_keys: dict[str, rsa.RSAPrivateKey] = {}
_tokens: dict[bytes, tuple[str, str, rsa.RSAPrivateKey]] = {}  # token -> key, algorithm, pair
_lock = threading.Lock()


def _external(key: Any) -> None:
    if key.origin != "EXTERNAL":
        raise _error(
            "UnsupportedOperationException", f"{key.arn} origin is {key.origin}, not EXTERNAL"
        )


def _oaep(algorithm: str) -> padding.OAEP:
    digest: hashes.HashAlgorithm = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


def _unwrap(pair: rsa.RSAPrivateKey, wrapped: bytes, algorithm: str) -> bytes:
    try:
        if algorithm.startswith("RSAES_OAEP"):
            return pair.decrypt(wrapped, _oaep(algorithm))
        split = pair.key_size // 8
        aes_key = pair.decrypt(wrapped[:split], _oaep(algorithm))
        return aes_key_unwrap_with_padding(aes_key, wrapped[split:])
    except (ValueError, InvalidUnwrap):
        raise _error(
            "InvalidCiphertextException", "The wrapped key material could not be unwrapped"
        ) from None


def _material_id(data: bytes) -> str:
    return hashlib.sha256(b"kms-material-id" + data).hexdigest()


_EC_SIGNING = {
    "ECC_NIST_P256": "ECDSA_SHA_256",
    "ECC_SECG_P256K1": "ECDSA_SHA_256",
    "ECC_NIST_P384": "ECDSA_SHA_384",
    "ECC_NIST_P521": "ECDSA_SHA_512",
}


def _use(key: Any, data: bytes) -> None:
    """Make the key use this material (raw bytes, or a DER PKCS#8 private key), in moto's
    own wrapper classes (made without their ``__init__``, which would generate a key)."""
    from moto.kms import utils

    if key.key_spec in material.RAW_LENGTHS:
        key.key_material = data
        return
    private = serialization.load_der_private_key(data, password=None)
    holder: Any
    if isinstance(private, rsa.RSAPrivateKey):
        holder = utils.RSAPrivateKey.__new__(utils.RSAPrivateKey)
        holder.key_size = private.key_size
    else:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        holder = utils.ECDSAPrivateKey.__new__(utils.ECDSAPrivateKey)
        holder.valid_signing_algorithms = [_EC_SIGNING[key.key_spec]]
    holder.private_key = private
    key.private_key = holder


def get_parameters_for_import(self: Any) -> str:
    key = _key(self)
    _external(key)
    spec = self._get_param("WrappingKeySpec")
    algorithm = self._get_param("WrappingAlgorithm")
    if spec not in _WRAPPING_BITS or algorithm not in _ALGORITHMS:
        raise _error(
            "UnsupportedOperationException", f"wrapping {algorithm} with {spec} is not supported"
        )
    with _lock:
        pair = _wrapping_keys.get(spec)
        if pair is None:
            pair = rsa.generate_private_key(public_exponent=65537, key_size=_WRAPPING_BITS[spec])
            _wrapping_keys[spec] = pair
        token = os.urandom(32)
        _tokens[token] = (key.id, algorithm, pair)
    public = pair.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    valid_to = datetime.now(timezone.utc) + timedelta(hours=24)
    return json.dumps(
        {
            "KeyId": key.arn,
            "ImportToken": base64.b64encode(token).decode(),
            "PublicKey": base64.b64encode(public).decode(),
            "ParametersValidTo": valid_to.timestamp(),
        }
    )


def _materials(key: Any) -> list[dict[str, Any]]:
    """The key's material versions, oldest first: id, description, data (None once
    deleted), state (CURRENT, NON_CURRENT, PENDING_ROTATION), expiry, rotation."""
    found: list[dict[str, Any]] = getattr(key, "materials", None) or []
    key.materials = found
    return found


def _current(key: Any) -> dict[str, Any] | None:
    return next((m for m in _materials(key) if m["state"] == "CURRENT"), None)


def import_key_material(self: Any) -> str:
    key = _key(self)
    _external(key)
    token = base64.b64decode(self._get_param("ImportToken") or "")
    with _lock:
        found = _tokens.get(token)
    if found is None or found[0] != key.id:
        raise _error("InvalidImportTokenException", "The import token is not valid for this key")
    _, algorithm, pair = found
    data = _unwrap(pair, base64.b64decode(self._get_param("EncryptedKeyMaterial") or ""), algorithm)
    try:
        prepared = material.prepare(data, key.key_spec)
    except material.MaterialError as exc:
        raise _error("IncorrectKeyMaterialException", f"The key material {exc}") from None
    expiration = self._get_param("ExpirationModel") or "KEY_MATERIAL_EXPIRES"
    valid_to = self._get_param("ValidTo")
    if expiration == "KEY_MATERIAL_EXPIRES" and not valid_to:
        raise _error("ValidationException", "ValidTo is required with KEY_MATERIAL_EXPIRES")
    new = self._get_param("ImportType") == "NEW_KEY_MATERIAL"
    material_id = _material_id(prepared.material)
    current = _current(key)
    entry = {
        "id": material_id,
        "description": self._get_param("KeyMaterialDescription"),
        "data": prepared.material,
        "expiration_model": expiration,
        "valid_to": float(valid_to) if valid_to else None,
    }
    if current is not None and new:
        if key.key_spec != "SYMMETRIC_DEFAULT":
            raise _error(
                "UnsupportedOperationException",
                "Only symmetric encryption keys rotate their imported key material",
            )
        if any(m["id"] == material_id for m in _materials(key)):
            raise _error("IncorrectKeyMaterialException", "This key material was imported before")
        for m in _materials(key):
            if m["state"] == "PENDING_ROTATION":
                m["state"] = "NON_CURRENT"  # a newer import replaces a pending one
        _materials(key).append({**entry, "state": "PENDING_ROTATION"})
    elif current is not None:
        if current["id"] != material_id:
            raise _error(
                "IncorrectKeyMaterialException",
                "The key material is not the key material this key had; import it as "
                "NEW_KEY_MATERIAL to rotate",
            )
        current.update(entry, state="CURRENT")  # a reimport: the same material again
        _use(key, prepared.material)
    else:
        _materials(key).append({**entry, "state": "CURRENT"})
        _use(key, prepared.material)
    if key.key_state == "PendingImport" and (current is None or not new):
        key.key_state = "Enabled"
        key.enabled = True
    return json.dumps({"KeyId": key.arn, "KeyMaterialId": material_id})


def delete_imported_key_material(self: Any) -> str:
    key = _key(self)
    _external(key)
    current = _current(key)
    if current is not None:
        current["data"] = None
    key.key_state = "PendingImport"
    key.enabled = False
    return json.dumps({"KeyId": key.arn, "KeyMaterialId": current["id"] if current else ""})


def _rotate_on_demand(real: Callable[[Any], str]) -> Callable[[Any], str]:
    """RotateKeyOnDemand of an EXTERNAL key: the pending NEW_KEY_MATERIAL becomes current."""

    def handler(self: Any) -> str:
        key = _key(self)
        if key.origin != "EXTERNAL":
            return real(self)
        pending = next((m for m in _materials(key) if m["state"] == "PENDING_ROTATION"), None)
        if pending is None:
            raise _error(
                "ConflictException",
                "Import new key material (ImportType NEW_KEY_MATERIAL) before rotating",
            )
        for m in _materials(key):
            if m["state"] == "CURRENT":
                m["state"] = "NON_CURRENT"
        pending["state"] = "CURRENT"
        pending["rotation_date"] = datetime.now(timezone.utc).timestamp()
        _use(key, pending["data"])
        key.rotations.append(
            {"KeyId": key.id, "RotationDate": pending["rotation_date"], "RotationType": "ON_DEMAND"}
        )
        return json.dumps({"KeyId": key.id})

    return handler


def _material_listing(real: Callable[[Any], str]) -> Callable[[Any], str]:
    """ListKeyRotations with IncludeKeyMaterial ALL_KEY_MATERIAL: every material version of
    an EXTERNAL key (ImportState, KeyMaterialState, description, expiry), as KMS lists it."""

    def handler(self: Any) -> str:
        if self._get_param("IncludeKeyMaterial") != "ALL_KEY_MATERIAL":
            return real(self)
        key = _key(self)
        if key.origin != "EXTERNAL":
            return real(self)
        entries = []
        for m in _materials(key):
            entry: dict[str, Any] = {
                "KeyId": key.id,
                "KeyMaterialId": m["id"],
                "ImportState": "IMPORTED" if m["data"] is not None else "PENDING_IMPORT",
                "KeyMaterialState": m["state"],
                "ExpirationModel": m["expiration_model"],
            }
            if m.get("description"):
                entry["KeyMaterialDescription"] = m["description"]
            if m.get("valid_to"):
                entry["ValidTo"] = m["valid_to"]
            if m.get("rotation_date"):
                entry["RotationDate"] = m["rotation_date"]
                entry["RotationType"] = "ON_DEMAND"
            entries.append(entry)
        return json.dumps({"Rotations": entries, "Truncated": False})

    return handler


def _external_pending(real: Callable[[Any], str]) -> Callable[[Any], str]:
    """CreateKey: an EXTERNAL key waits for its material (PendingImport), as in KMS."""

    def handler(self: Any) -> str:
        body = json.loads(real(self))
        meta = body["KeyMetadata"]
        if meta.get("Origin") == "EXTERNAL":
            key = self.kms_backend.keys[meta["KeyId"]]
            key.key_state, key.enabled = "PendingImport", False
            key.materials = []
            body = key.to_dict()
        return json.dumps(body)

    return handler


def _described(real: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """Key.to_dict with the import fields DescribeKey shows for an EXTERNAL key."""

    def to_dict(self: Any) -> dict[str, Any]:
        out = real(self)
        if getattr(self, "origin", None) == "EXTERNAL":
            meta = out["KeyMetadata"]
            current = _current(self)
            if current is not None:
                meta["CurrentKeyMaterialId"] = current["id"]
                if current["data"] is not None:
                    meta["ExpirationModel"] = current["expiration_model"]
                    if current.get("valid_to"):
                        meta["ValidTo"] = current["valid_to"]
            meta["Enabled"] = self.key_state == "Enabled"
        return out

    return to_dict


def apply(setattr_: SetAttr) -> None:
    """Install the patches (called by ``moto_kms.apply``)."""
    from moto.kms.models import Key
    from moto.kms.responses import KmsResponse

    setattr_(KmsResponse, "get_parameters_for_import", get_parameters_for_import)
    setattr_(KmsResponse, "import_key_material", import_key_material)
    setattr_(KmsResponse, "delete_imported_key_material", delete_imported_key_material)
    setattr_(KmsResponse, "create_key", _external_pending(KmsResponse.create_key))
    setattr_(
        KmsResponse, "rotate_key_on_demand", _rotate_on_demand(KmsResponse.rotate_key_on_demand)
    )
    setattr_(Key, "to_dict", _described(Key.to_dict))
    setattr_(KmsResponse, "list_key_rotations", _material_listing(KmsResponse.list_key_rotations))
