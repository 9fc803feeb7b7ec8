"""Imported key material, pure: decoding, the fit to the key spec, wrapping for import.

Expected lengths and wrappings come from the KMS Developer Guide ("Importing key material":
requirements for imported key material, selecting a wrapping algorithm), not from the code.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from reconciler import material
from reconciler.material import MaterialError

SECRET = bytes(range(0x41, 0x61))  # 32 bytes


def der(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, fmt: str = "pkcs8") -> bytes:
    form = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
    }[fmt]
    return key.private_bytes(serialization.Encoding.DER, form, serialization.NoEncryption())


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


RSA_2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
P256 = ec.generate_private_key(ec.SECP256R1())
P521 = ec.generate_private_key(ec.SECP521R1())
K1 = ec.generate_private_key(ec.SECP256K1())


@pytest.mark.parametrize(
    ("stored", "encoding"),
    [
        (SECRET, "binary"),
        (base64.b64encode(SECRET), "base64"),
        (base64.b64encode(SECRET).rstrip(b"="), "base64"),  # padding optional
        (base64.b64encode(SECRET)[:20] + b"\n " + base64.b64encode(SECRET)[20:], "base64"),
        (SECRET.hex().encode(), "hex"),
        (SECRET.hex().upper().encode() + b"\n", "hex"),
    ],
    ids=["binary", "base64", "base64-unpadded", "base64-wrapped", "hex", "hex-upper"],
)
def test_decode(stored: bytes, encoding: str) -> None:
    assert material.decode(stored, encoding) == SECRET


@pytest.mark.parametrize(("stored", "encoding"), [(b"not base64!", "base64"), (b"abc", "hex")])
def test_undecodable_material_says_so_without_quoting_it(stored: bytes, encoding: str) -> None:
    with pytest.raises(MaterialError) as caught:
        material.decode(stored, encoding)
    assert str(caught.value) == f"it is not valid {encoding}"


@pytest.mark.parametrize(
    ("spec", "length", "fits"),
    [
        ("SYMMETRIC_DEFAULT", 32, True),
        ("SYMMETRIC_DEFAULT", 31, False),
        ("SYMMETRIC_DEFAULT", 33, False),
        ("HMAC_224", 27, False),
        ("HMAC_224", 28, True),
        ("HMAC_224", 64, True),
        ("HMAC_224", 65, False),
        ("HMAC_256", 31, False),
        ("HMAC_256", 32, True),
        ("HMAC_384", 47, False),
        ("HMAC_384", 128, True),
        ("HMAC_512", 63, False),
        ("HMAC_512", 64, True),
        ("HMAC_512", 129, False),
    ],
)
def test_raw_material_lengths(spec: str, length: int, fits: bool) -> None:
    if fits:
        prepared = material.prepare(b"\x01" * length, spec)
        assert (prepared.wrapping_algorithm, prepared.wrapping_key_spec) == (
            "RSAES_OAEP_SHA_256",
            "RSA_2048",
        )
    else:
        with pytest.raises(MaterialError, match=f"it holds {length} bytes; a {spec} key takes"):
            material.prepare(b"\x01" * length, spec)


@pytest.mark.parametrize(
    ("spec", "stored"),
    [
        ("RSA_2048", der(RSA_2048)),
        ("RSA_2048", der(RSA_2048, "traditional")),  # PKCS#1: converted to PKCS#8
        ("RSA_2048", pem(RSA_2048)),
        ("ECC_NIST_P256", der(P256)),
        ("ECC_NIST_P256", pem(P256)),
        ("ECC_NIST_P521", der(P521)),
        ("ECC_SECG_P256K1", der(K1)),
    ],
    ids=["rsa-pkcs8", "rsa-pkcs1", "rsa-pem", "p256", "p256-pem", "p521", "secp256k1"],
)
def test_private_keys_become_der_pkcs8_wrapped_with_rsa_aes(spec: str, stored: bytes) -> None:
    prepared = material.prepare(stored, spec)
    assert (prepared.wrapping_algorithm, prepared.wrapping_key_spec) == (
        "RSA_AES_KEY_WRAP_SHA_256",
        "RSA_4096",
    )
    key = serialization.load_der_private_key(prepared.material, password=None)
    assert prepared.material == der(key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "stored", "message"),
    [
        ("RSA_3072", der(RSA_2048), "it is not an RSA private key of 3072 bits"),
        ("RSA_2048", der(P256), "it is not an RSA private key of 2048 bits"),
        ("ECC_NIST_P384", der(P256), "it is not an EC private key on the curve of ECC_NIST_P384"),
        ("ECC_NIST_P256", SECRET, "it is not an unencrypted private key"),
        ("ML_DSA_44", SECRET, "key material for ML_DSA_44 keys cannot be imported"),
    ],
    ids=["rsa-size", "ec-for-rsa", "ec-curve", "raw-for-ec", "ml-dsa"],
)
def test_material_of_the_wrong_kind_is_refused(spec: str, stored: bytes, message: str) -> None:
    with pytest.raises(MaterialError, match=message) as caught:
        material.prepare(stored, spec)
    assert SECRET.hex() not in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "stored"),
    [("SYMMETRIC_DEFAULT", SECRET), ("HMAC_512", SECRET * 4), ("ECC_NIST_P521", der(P521))],
    ids=["symmetric", "hmac", "p521"],
)
def test_wrap_and_unwrap_round_trip(spec: str, stored: bytes) -> None:
    prepared = material.prepare(stored, spec)
    bits = int(prepared.wrapping_key_spec.removeprefix("RSA_"))
    wrapping = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    public = wrapping.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    wrapped = material.wrap(public, prepared)
    assert prepared.material not in wrapped
    assert material.unwrap(wrapping, wrapped, prepared.wrapping_algorithm) == prepared.material
    if prepared.wrapping_algorithm == "RSA_AES_KEY_WRAP_SHA_256":
        # the RSA-wrapped AES key (one RSA block), then AES key wrap with padding (RFC 5649)
        padded = -(-len(prepared.material) // 8) * 8
        assert len(wrapped) == bits // 8 + padded + 8


def test_prepared_material_never_shows_in_its_repr() -> None:
    prepared = material.prepare(SECRET, "SYMMETRIC_DEFAULT")
    assert "ABC" not in repr(prepared) and SECRET.hex() not in repr(prepared)
