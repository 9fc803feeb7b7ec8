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
  NEW_KEY_MATERIAL keeps the new material pending until RotateKeyOnDemand makes it current
  (then it is listed by ListKeyRotations as an ON_DEMAND rotation);
- DeleteImportedKeyMaterial puts the key back in PendingImport.

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


def _error(kind: str, message: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError(kind, message)


def _key(response: Any) -> Any:
    backend = response.kms_backend
    key_id = backend.get_key_id(response._get_param("KeyId"))
    if key_id not in backend.keys:
        from moto.kms.exceptions import NotFoundException

        raise NotFoundException(f"Key '{key_id}' does not exist")
    return backend.keys[key_id]


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


def _use(key: Any, data: bytes) -> None:
    """Make the key use this material (raw bytes, or a DER PKCS#8 private key)."""
    from moto.kms import utils

    if key.key_spec in material.RAW_LENGTHS:
        key.key_material = data
        return
    private = serialization.load_der_private_key(data, password=None)
    if isinstance(private, rsa.RSAPrivateKey):
        holder: Any = utils.RSAPrivateKey.__new__(utils.RSAPrivateKey)
        holder.key_size = private.key_size
    else:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        holder = utils.ECDSAPrivateKey(key.key_spec)  # its signing algorithms for the spec
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
    new = self._get_param("ImportType") == "NEW_KEY_MATERIAL"
    material_id = _material_id(prepared.material)
    current = getattr(key, "imported_material", None)
    if current is not None and not new and current != prepared.material:
        raise _error(
            "IncorrectKeyMaterialException",
            "The key material is not the key material this key had; import it as "
            "NEW_KEY_MATERIAL to rotate",
        )
    expiration = self._get_param("ExpirationModel") or "KEY_MATERIAL_EXPIRES"
    valid_to = self._get_param("ValidTo")
    if expiration == "KEY_MATERIAL_EXPIRES" and not valid_to:
        raise _error("ValidationException", "ValidTo is required with KEY_MATERIAL_EXPIRES")
    if current is not None and new:
        if key.key_spec != "SYMMETRIC_DEFAULT":
            raise _error(
                "UnsupportedOperationException",
                "Only symmetric encryption keys rotate their imported key material",
            )
        key.pending_material = (prepared.material, material_id)
    else:
        key.imported_material = prepared.material
        key.current_material_id = material_id
        _use(key, prepared.material)
        if key.key_state == "PendingImport":
            key.key_state = "Enabled"
            key.enabled = True
    key.expiration_model = expiration
    key.valid_to = float(valid_to) if valid_to else None
    return json.dumps({"KeyId": key.arn, "KeyMaterialId": material_id})


def delete_imported_key_material(self: Any) -> str:
    key = _key(self)
    _external(key)
    key.imported_material = None
    key.key_state = "PendingImport"
    key.enabled = False
    return json.dumps({"KeyId": key.arn, "KeyMaterialId": getattr(key, "current_material_id", "")})


def _rotate_on_demand(real: Callable[[Any], str]) -> Callable[[Any], str]:
    """RotateKeyOnDemand of an EXTERNAL key: the pending NEW_KEY_MATERIAL becomes current."""

    def handler(self: Any) -> str:
        key = _key(self)
        if key.origin != "EXTERNAL":
            return real(self)
        pending = getattr(key, "pending_material", None)
        if pending is None:
            raise _error(
                "ConflictException",
                "Import new key material (ImportType NEW_KEY_MATERIAL) before rotating",
            )
        data, material_id = pending
        key.imported_material, key.current_material_id = data, material_id
        key.pending_material = None
        _use(key, data)
        key.rotations.append(
            {
                "KeyId": key.id,
                "KeyMaterialId": material_id,
                "RotationDate": datetime.now(timezone.utc).timestamp(),
                "RotationType": "ON_DEMAND",
            }
        )
        return json.dumps({"KeyId": key.id})

    return handler


def _external_pending(real: Callable[[Any], str]) -> Callable[[Any], str]:
    """CreateKey: an EXTERNAL key waits for its material (PendingImport), as in KMS."""

    def handler(self: Any) -> str:
        body = json.loads(real(self))
        meta = body["KeyMetadata"]
        if meta.get("Origin") == "EXTERNAL":
            key = self.kms_backend.keys[meta["KeyId"]]
            key.key_state, key.enabled = "PendingImport", False
            key.imported_material = None
            body = key.to_dict()
        return json.dumps(body)

    return handler


def _described(real: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """Key.to_dict with the import fields DescribeKey shows for an EXTERNAL key."""

    def to_dict(self: Any) -> dict[str, Any]:
        out = real(self)
        if getattr(self, "origin", None) == "EXTERNAL":
            meta = out["KeyMetadata"]
            if getattr(self, "imported_material", None) is not None:
                meta["ExpirationModel"] = getattr(self, "expiration_model", None)
                if getattr(self, "valid_to", None):
                    meta["ValidTo"] = self.valid_to
                meta["CurrentKeyMaterialId"] = getattr(self, "current_material_id", None)
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
