"""Imported key material, pure: decode it, check it fits its key spec, wrap it for import.

KMS (Developer Guide, "Importing key material": requirements, wrapping algorithms) takes:

- a symmetric encryption key (SYMMETRIC_DEFAULT): 256 bits of raw material (32 bytes);
- an HMAC key: raw material of HMAC_224 28-64 bytes, HMAC_256 32-64, HMAC_384 48-128,
  HMAC_512 64-128;
- an asymmetric key (RSA_2048/3072/4096, ECC_NIST_P256/P384/P521, ECC_SECG_P256K1, SM2):
  the private key, DER-encoded PKCS#8 (PrivateKeyInfo). A PEM file, or a traditional
  (PKCS#1, SEC1) encoding, is converted here; the key must be of the spec's type and size.

The material is wrapped with the RSA public key GetParametersForImport returns:

- symmetric and HMAC material: ``RSAES_OAEP_SHA_256`` with an ``RSA_2048`` wrapping key
  (OAEP, SHA-256 and MGF1-SHA-256; the material fits in one RSA block);
- a private key: ``RSA_AES_KEY_WRAP_SHA_256`` with an ``RSA_4096`` wrapping key, the only
  family KMS accepts for RSA private keys (and the one that fits every ECC key): a fresh
  AES-256 key is wrapped with RSAES-OAEP-SHA-256, the material with that AES key by AES key
  wrap with padding (RFC 5649), and the two are sent one after the other.

Encodings (``key_material.encoding``): ``binary`` (the bytes as they are: a file's default),
``base64`` (standard alphabet, padding optional, whitespace ignored: an environment
variable's default) and ``hex`` (whitespace ignored). Nothing here ever puts material, or a
part of it, in an error message.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import (
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from reconciler import catalog

ENCODINGS: Final = catalog.MATERIAL_ENCODINGS
RSAES_OAEP_SHA_256: Final = "RSAES_OAEP_SHA_256"
RSA_AES_KEY_WRAP_SHA_256: Final = "RSA_AES_KEY_WRAP_SHA_256"
RAW_LENGTHS: Final = catalog.RAW_MATERIAL_LENGTHS
PRIVATE_KEY_SPECS: Final = catalog.PRIVATE_KEY_MATERIAL_SPECS
IMPORTABLE_KEY_SPECS: Final = catalog.IMPORTABLE_KEY_SPECS
_RSA_BITS: Final = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_CURVES: Final[dict[str, type[ec.EllipticCurve]]] = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}


class MaterialError(Exception):
    """Material that cannot be imported; the message never holds any of it."""


@dataclass(frozen=True)
class Prepared:
    """Material ready to wrap, and how KMS must be asked to unwrap it."""

    material: bytes  # raw bytes, or a DER PKCS#8 private key
    wrapping_algorithm: str
    wrapping_key_spec: str

    def __repr__(self) -> str:  # never the material, not even in a debugger or a log
        return f"Prepared(<material>, {self.wrapping_algorithm}, {self.wrapping_key_spec})"


_SPACE = re.compile(rb"\s+")


def decode(data: bytes, encoding: str) -> bytes:
    """The material from its stored form (``binary``, ``base64`` or ``hex``)."""
    if encoding == "binary":
        return data
    text = _SPACE.sub(b"", data)
    try:
        if encoding == "hex":
            return binascii.unhexlify(text)
        if encoding == "base64":
            return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise MaterialError(f"it is not valid {encoding}") from None
    raise MaterialError(f"unknown encoding {encoding!r} (one of {', '.join(ENCODINGS)})")


def _private_key(material: bytes, key_spec: str) -> bytes:
    """The private key as DER PKCS#8, checked against the key spec."""
    key: object
    try:
        if material.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(material, password=None)
        else:
            key = serialization.load_der_private_key(material, password=None)
    except (ValueError, TypeError):
        if key_spec == "SM2":  # no SM2 in the library: KMS checks it
            return material
        raise MaterialError(
            f"it is not an unencrypted private key (DER PKCS#8 or PEM) for a {key_spec} key"
        ) from None
    if key_spec in _RSA_BITS:
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != _RSA_BITS[key_spec]:
            raise MaterialError(f"it is not an RSA private key of {_RSA_BITS[key_spec]} bits")
    elif key_spec in _CURVES:
        curve = _CURVES[key_spec]
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, curve):
            raise MaterialError(f"it is not an EC private key on the curve of {key_spec}")
    assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def prepare(material: bytes, key_spec: str) -> Prepared:
    """Check the material fits the key spec; choose the wrapping KMS accepts for it."""
    if key_spec in RAW_LENGTHS:
        low, high = RAW_LENGTHS[key_spec]
        if not low <= len(material) <= high:
            size = f"exactly {low}" if low == high else f"{low} to {high}"
            raise MaterialError(
                f"it holds {len(material)} bytes; a {key_spec} key takes {size} bytes of raw "
                "key material"
            )
        return Prepared(material, *catalog.import_wrapping(key_spec))
    if key_spec in PRIVATE_KEY_SPECS:
        return Prepared(_private_key(material, key_spec), *catalog.import_wrapping(key_spec))
    raise MaterialError(
        f"key material for {key_spec} keys cannot be imported (symmetric, HMAC, RSA, ECC "
        "NIST and SECG, and SM2 keys take imported material)"
    )


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def wrap(public_key_der: bytes, prepared: Prepared) -> bytes:
    """The material encrypted for import with GetParametersForImport's public key."""
    public_key = serialization.load_der_public_key(public_key_der)
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise MaterialError("GetParametersForImport returned a public key that is not RSA")
    if prepared.wrapping_algorithm == RSAES_OAEP_SHA_256:
        return public_key.encrypt(prepared.material, _oaep())
    aes_key = os.urandom(32)
    return public_key.encrypt(aes_key, _oaep()) + aes_key_wrap_with_padding(
        aes_key, prepared.material
    )


def unwrap(private_key: rsa.RSAPrivateKey, wrapped: bytes, algorithm: str) -> bytes:
    """What KMS does on ImportKeyMaterial (the sandbox's moto corrections use it)."""
    if algorithm == RSAES_OAEP_SHA_256:
        return private_key.decrypt(wrapped, _oaep())
    if algorithm == RSA_AES_KEY_WRAP_SHA_256:
        split = private_key.key_size // 8
        aes_key = private_key.decrypt(wrapped[:split], _oaep())
        return aes_key_unwrap_with_padding(aes_key, wrapped[split:])
    raise MaterialError(f"wrapping algorithm {algorithm} is not supported here")
