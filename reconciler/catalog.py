"""Facts about AWS KMS that validation, planning and analysis share: one table each.

Pure data. Sources: the KMS API reference (CreateKey, TagResource, CreateAlias,
EnableKeyRotation, ScheduleKeyDeletion) and the KMS developer guide (key spec reference,
request quotas). ``../shared/kms-quotas.md`` lists the quotas this file encodes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib.resources import files
from typing import Any, Final

SYMMETRIC_DEFAULT: Final = "SYMMETRIC_DEFAULT"

ENCRYPT_DECRYPT: Final = "ENCRYPT_DECRYPT"
SIGN_VERIFY: Final = "SIGN_VERIFY"
GENERATE_VERIFY_MAC: Final = "GENERATE_VERIFY_MAC"
KEY_AGREEMENT: Final = "KEY_AGREEMENT"
ENCAPSULATE_DECAPSULATE: Final = "ENCAPSULATE_DECAPSULATE"

KEY_USAGES: Final = (
    ENCRYPT_DECRYPT,
    SIGN_VERIFY,
    GENERATE_VERIFY_MAC,
    KEY_AGREEMENT,
    ENCAPSULATE_DECAPSULATE,
)

# key spec -> the key usages KMS allows for it (CreateKey, "KeyUsage"; the ML-KEM specs and
# ENCAPSULATE_DECAPSULATE come from botocore 1.44's model: "For asymmetric KMS keys with
# ML-KEM key pairs, specify ENCAPSULATE_DECAPSULATE"). tests/test_catalog_tables.py fails
# when the installed botocore knows a key spec or usage missing here.
KEY_SPEC_USAGES: Final[dict[str, tuple[str, ...]]] = {
    "SYMMETRIC_DEFAULT": (ENCRYPT_DECRYPT,),
    "RSA_2048": (ENCRYPT_DECRYPT, SIGN_VERIFY),
    "RSA_3072": (ENCRYPT_DECRYPT, SIGN_VERIFY),
    "RSA_4096": (ENCRYPT_DECRYPT, SIGN_VERIFY),
    "ECC_NIST_P256": (SIGN_VERIFY, KEY_AGREEMENT),
    "ECC_NIST_P384": (SIGN_VERIFY, KEY_AGREEMENT),
    "ECC_NIST_P521": (SIGN_VERIFY, KEY_AGREEMENT),
    "ECC_SECG_P256K1": (SIGN_VERIFY,),
    "ECC_NIST_EDWARDS25519": (SIGN_VERIFY,),
    "HMAC_224": (GENERATE_VERIFY_MAC,),
    "HMAC_256": (GENERATE_VERIFY_MAC,),
    "HMAC_384": (GENERATE_VERIFY_MAC,),
    "HMAC_512": (GENERATE_VERIFY_MAC,),
    "SM2": (ENCRYPT_DECRYPT, SIGN_VERIFY, KEY_AGREEMENT),
    "ML_DSA_44": (SIGN_VERIFY,),
    "ML_DSA_65": (SIGN_VERIFY,),
    "ML_DSA_87": (SIGN_VERIFY,),
    "ML_KEM_512": (ENCAPSULATE_DECAPSULATE,),
    "ML_KEM_768": (ENCAPSULATE_DECAPSULATE,),
    "ML_KEM_1024": (ENCAPSULATE_DECAPSULATE,),
}
KEY_SPECS: Final = tuple(KEY_SPEC_USAGES)

CHINA_REGIONS: Final = frozenset({"cn-north-1", "cn-northwest-1"})
# Key specs KMS offers only in some Regions.
KEY_SPEC_REGIONS: Final[dict[str, frozenset[str]]] = {
    "SM2": CHINA_REGIONS,
}
# Key specs KMS does not offer in some Regions (CreateKey KeySpec: "The ML-KEM key specs
# are not available in China Regions").
KEY_SPEC_EXCLUDED_REGIONS: Final[dict[str, frozenset[str]]] = {
    spec: CHINA_REGIONS for spec in ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024")
}


def key_spec_region_problem(key_spec: str, region: str) -> str | None:
    """Why a key of this spec cannot exist in this Region, or None when it can."""
    only = KEY_SPEC_REGIONS.get(key_spec)
    if only and region not in only:
        return f"{key_spec} keys exist only in {', '.join(sorted(only))}, not in {region}"
    if region in KEY_SPEC_EXCLUDED_REGIONS.get(key_spec, frozenset()):
        return f"{key_spec} keys are not available in {region}"
    return None


ORIGIN_AWS_KMS: Final = "AWS_KMS"
ORIGIN_EXTERNAL: Final = "EXTERNAL"
# Keys in a custom key store: an AWS CloudHSM key store (the key material lives in the
# store's CloudHSM cluster) or an external key store (XKS: outside AWS, reached through the
# store's proxy). Either needs CustomKeyStoreId at CreateKey (and an external store's key
# the XksKeyId of its external key); both are symmetric encryption keys only, in one
# Region, without automatic or on-demand rotation or imported material.
ORIGIN_AWS_CLOUDHSM: Final = "AWS_CLOUDHSM"
ORIGIN_EXTERNAL_KEY_STORE: Final = "EXTERNAL_KEY_STORE"
CUSTOM_KEY_STORE_ORIGINS: Final = (ORIGIN_AWS_CLOUDHSM, ORIGIN_EXTERNAL_KEY_STORE)
ORIGINS: Final = (ORIGIN_AWS_KMS, ORIGIN_EXTERNAL, *CUSTOM_KEY_STORE_ORIGINS)
# Imported key material (origin EXTERNAL; reconciler.material checks and wraps it): raw
# material lengths in bytes (inclusive) by key spec, the key specs whose material is a
# private key (DER PKCS#8), and how material may be stored (key_material.encoding).
RAW_MATERIAL_LENGTHS: Final[Mapping[str, tuple[int, int]]] = {
    "SYMMETRIC_DEFAULT": (32, 32),
    "HMAC_224": (28, 64),
    "HMAC_256": (32, 64),
    "HMAC_384": (48, 128),
    "HMAC_512": (64, 128),
}
PRIVATE_KEY_MATERIAL_SPECS: Final = (
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "SM2",
)
IMPORTABLE_KEY_SPECS: Final = (*RAW_MATERIAL_LENGTHS, *PRIVATE_KEY_MATERIAL_SPECS)
MATERIAL_ENCODINGS: Final = ("binary", "base64", "hex")


def import_wrapping(key_spec: str) -> tuple[str, str]:
    """(WrappingAlgorithm, WrappingKeySpec) for importing this key spec's material: RSA
    private keys take only the RSA_AES family, and it fits every private key; raw material
    fits one RSA_2048 OAEP block."""
    if key_spec in PRIVATE_KEY_MATERIAL_SPECS:
        return "RSA_AES_KEY_WRAP_SHA_256", "RSA_4096"
    return "RSAES_OAEP_SHA_256", "RSA_2048"


# CustomKeyStoreId ("cks-" and 17 hex digits in every ID KMS has shown; the API allows
# 1-64 characters) and XksKeyId (1-128 of letters, digits, "-", "_", ".").
CUSTOM_KEY_STORE_ID: Final = re.compile(r"cks-[0-9A-Za-z]{1,60}")
XKS_KEY_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")


def default_key_usage(key_spec: str) -> str | None:
    """The usage of a key spec that allows only one, or None when the spec must name one.

    KMS itself defaults KeyUsage to ENCRYPT_DECRYPT, but for a spec with several usages
    (RSA, SM2, ECC NIST curves) that silent choice could never be changed later, so the
    inventory must state it.
    """
    usages = KEY_SPEC_USAGES.get(key_spec, ())
    return usages[0] if len(usages) == 1 else None


def can_rotate_automatically(key_spec: str, origin: str) -> bool:
    """Automatic rotation exists only for symmetric encryption keys with KMS key material."""
    return key_spec == SYMMETRIC_DEFAULT and origin == ORIGIN_AWS_KMS


def can_rotate_on_demand(key_spec: str, origin: str) -> bool:
    """RotateKeyOnDemand: symmetric encryption keys with KMS key material."""
    return key_spec == SYMMETRIC_DEFAULT and origin == ORIGIN_AWS_KMS


# The API reference caps on-demand rotations per key (10; the current guide says 25).
ON_DEMAND_ROTATIONS_MAX: Final = 10

ROTATION_PERIOD_MIN: Final = 90
ROTATION_PERIOD_MAX: Final = 2560
ROTATION_PERIOD_DEFAULT: Final = 365
DELETION_WINDOW_MIN: Final = 7
DELETION_WINDOW_MAX: Final = 30
DELETION_WINDOW_DEFAULT: Final = 30
DESCRIPTION_MAX: Final = 8192
# Key usage (GetKeyLastUsage): the inventory's retire_guard_days and unused_after_days.
RETIRE_GUARD_DAYS: Final = 30
UNUSED_AFTER_DAYS: Final = 90
USAGE_DAYS_MAX: Final = 3650
# Staged retirement: how long a key stays disabled, unused, before deletion is offered. At
# least a week (a weekly job must get the chance to fail), at most a year.
RETIRE_OBSERVE_DAYS_DEFAULT: Final = 30
RETIRE_OBSERVE_DAYS_MIN: Final = 7
RETIRE_OBSERVE_DAYS_MAX: Final = 365
POLICY_MAX_BYTES: Final = 32768

TAGS_MAX: Final = 50
TAG_KEY_MAX: Final = 128
TAG_VALUE_MAX: Final = 256
# Letters, digits, white space and + - = . _ : / @ (TagResource).
TAG_CHARS: Final = re.compile(r"^[\w\s+\-=._:/@]*$", re.UNICODE)

ALIAS_PREFIX: Final = "alias/"
ALIAS_RESERVED_PREFIX: Final = "alias/aws/"
ALIAS_MAX: Final = 256
# What may follow the prefix (CreateAlias "AliasName").
ALIAS_NAME_CHARS: Final = "[a-zA-Z0-9/_-]+"
ALIAS_CHARS: Final = re.compile(f"^{ALIAS_PREFIX}{ALIAS_NAME_CHARS}$")

# Grant operations (CreateGrant "Operations"), and which of them each kind of key allows.
GRANT_OPERATIONS: Final = (
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
    "Encapsulate",
    "Decapsulate",
)
# Allowed on a grant for any key.
GRANT_OPERATIONS_ANY_KEY: Final = ("CreateGrant", "RetireGrant", "DescribeKey")
# The symmetric encryption operations: the only ones an encryption context constraint
# applies to (GrantConstraints), and only on SYMMETRIC_DEFAULT keys.
GRANT_SYMMETRIC_OPERATIONS: Final = (
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
)
# key usage -> the cryptographic operations a grant may allow (CreateGrant: an operation
# the key does not support is a ValidationException). Asymmetric ENCRYPT_DECRYPT keys do
# not make data keys, and have a public key (the key type table of the KMS guide).
GRANT_OPERATIONS_BY_USAGE: Final[dict[str, tuple[str, ...]]] = {
    ENCRYPT_DECRYPT: GRANT_SYMMETRIC_OPERATIONS,
    SIGN_VERIFY: ("Sign", "Verify", "GetPublicKey"),
    GENERATE_VERIFY_MAC: ("GenerateMac", "VerifyMac"),
    KEY_AGREEMENT: ("DeriveSharedSecret", "GetPublicKey"),
    ENCAPSULATE_DECAPSULATE: ("Encapsulate", "Decapsulate", "GetPublicKey"),
}
_ASYMMETRIC_ENCRYPT_DECRYPT: Final = (
    "Decrypt",
    "Encrypt",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GetPublicKey",
)


def grant_operations(key_spec: str, key_usage: str) -> tuple[str, ...]:
    """Every operation a grant on a key of this spec and usage may allow."""
    own: tuple[str, ...]
    if key_usage == ENCRYPT_DECRYPT and key_spec != SYMMETRIC_DEFAULT:
        own = _ASYMMETRIC_ENCRYPT_DECRYPT
    else:
        own = GRANT_OPERATIONS_BY_USAGE.get(key_usage, ())
    return (*own, *GRANT_OPERATIONS_ANY_KEY)


# Operation classes: the operations that give the caller what only the key holder should
# have. Review (KMS006, KMS101 and the helpers of reconciler/rules) and drift (undeclared
# grants) read this one table, so that an outside principal allowed one of them is ranked
# the same by both.
# - decrypt: plaintext comes back (Decrypt; ReEncryptFrom decrypts under this key;
#   GenerateDataKey / GenerateDataKeyPair return a plaintext data key). The
#   *WithoutPlaintext variants return only ciphertext, like Encrypt, and are not here.
# - sign: a signature anyone trusting the public key accepts as the key holder's.
# - mac: a MAC that VerifyMac accepts as the key holder's.
# - key agreement: DeriveSharedSecret returns the raw shared secret.
# - decapsulation: Decapsulate returns the ML-KEM shared secret (32 bytes of key material).
OPERATION_CLASSES: Final[Mapping[str, frozenset[str]]] = {
    "decrypt": frozenset({"Decrypt", "ReEncryptFrom", "GenerateDataKey", "GenerateDataKeyPair"}),
    "sign": frozenset({"Sign"}),
    "mac": frozenset({"GenerateMac"}),
    "key agreement": frozenset({"DeriveSharedSecret"}),
    "decapsulation": frozenset({"Decapsulate"}),
}
# Every operation of the classes above.
KEY_HOLDER_OPERATIONS: Final = frozenset().union(*OPERATION_CLASSES.values())
# Of them, those that decrypt something sent to the key holder: a ciphertext, or an
# encapsulated secret (Decapsulate is ML-KEM's decryption). Review ranks them critical.
PLAINTEXT_OPERATIONS: Final = OPERATION_CLASSES["decrypt"] | OPERATION_CLASSES["decapsulation"]


def operation_class(operation: str) -> str | None:
    """The class of a KMS operation ("Decrypt" or "kms:Decrypt"), None when it has none."""
    name = operation.removeprefix("kms:")
    return next((c for c, ops in OPERATION_CLASSES.items() if name in ops), None)


# An undeclared grant with one of these is as serious as a policy that gives them away:
# the key-holder operations, and CreateGrant, which passes access on.
GRANT_SENSITIVE_OPERATIONS: Final = KEY_HOLDER_OPERATIONS | {"CreateGrant"}
GRANT_NAME: Final = re.compile(r"^[A-Za-z0-9:/_-]{1,256}$")
# Grantee and retiring principals the inventory may declare: IAM principal ARNs (account
# root, user, role, assumed role, federated user).
GRANT_PRINCIPAL: Final = re.compile(
    r"^arn:aws[a-z-]*:(iam::\d{12}:(root|user/\S+|role/\S+)|sts::\d{12}:(assumed-role|federated-user)/\S+)$"
)
# The unique ID IAM gives a role (AROA...) or user (AIDA...). When a principal named in a
# key policy is deleted, KMS (like every resource policy) shows it by this ID: the entry then
# matches nobody, not even a new principal of the same name.
UNIQUE_ID_PRINCIPAL: Final = re.compile(r"(?:AROA|AIDA)[A-Z0-9]{16,}")
SERVICE_PRINCIPAL: Final = re.compile(r"^[a-z0-9.-]+\.amazonaws\.com(\.cn)?$")


KEY_NAME: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,126}[a-z0-9])?$")

DEFAULT_IDENTITY_TAG: Final = "kms-reconciler:name"
PROTECTION_TAG_SUFFIX: Final = ":deletion-protection"
REPLICA_TAG_SUFFIX: Final = ":replica-of"
# Staged retirement (a spec's ``retire:``): the tag the tool writes when it disables a key
# to retire it, value the UTC time it did (ISO 8601); the observation counts from it.
RETIRE_TAG_SUFFIX: Final = ":retire-disabled-on"

# The apply lock (reconciler.lock), kept in each target account and Region itself: the
# alias LOCK_ALIAS exists while a run writes; it points at the lock anchor, a key made
# once per account and Region only to be an alias target (found by LOCK_ANCHOR_ALIAS, and
# tagged LOCK_ANCHOR_TAG). The holder records itself in tags on the anchor. Aliases under
# TOOL_ALIAS_PREFIX are the tool's own: no spec may declare one, drift never reports them.
TOOL_ALIAS_PREFIX: Final = "alias/kms-reconciler/"
LOCK_ALIAS: Final = "alias/kms-reconciler/apply-lock"
LOCK_ANCHOR_ALIAS: Final = "alias/kms-reconciler/lock-anchor"
LOCK_ANCHOR_TAG: Final = "kms-reconciler:lock-anchor"
LOCK_ID_TAG: Final = "kms-reconciler:lock-id"
LOCK_HOLDER_TAG: Final = "kms-reconciler:lock-holder"
LOCK_SINCE_TAG: Final = "kms-reconciler:lock-since"
LOCK_TAGS: Final = (LOCK_ID_TAG, LOCK_HOLDER_TAG, LOCK_SINCE_TAG)

# Every KMS permission ("kms:" actions), shipped as data: scripts/refresh_kms_actions.py
# regenerates it from botocore's KMS model. Wildcards such as "kms:Get*" expand against it.
KMS_ACTIONS: Final[tuple[str, ...]] = tuple(
    json.loads(files("reconciler").joinpath("data/kms_actions.json").read_text("utf-8"))["actions"]
)

# What keeping a key costs, shipped as data with its source and the date it was checked
# (data/kms_pricing.json): the monthly price per key, per rotation and the rotations billed.
KMS_PRICING: Final[dict[str, Any]] = json.loads(
    files("reconciler").joinpath("data/kms_pricing.json").read_text("utf-8")
)


def monthly_cost(rotations: int | None) -> float:
    """US dollars a month to keep one customer managed key that has rotated ``rotations``
    times (None: unknown, counted as none: the least it costs)."""
    billed = min(rotations or 0, int(KMS_PRICING["rotations_billed_max"]))
    return float(KMS_PRICING["key_per_month"]) + billed * float(KMS_PRICING["rotation_per_month"])


# Condition keys KMS defines (kms:EncryptionContext:<key> and the attestation keys take a
# suffix) and the AWS global condition keys (some take a /<tag-key> suffix).
KMS_CONDITION_KEYS: Final = frozenset(
    k.lower()
    for k in (
        "kms:BypassPolicyLockoutSafetyCheck",
        "kms:CallerAccount",
        "kms:CustomerMasterKeySpec",
        "kms:CustomerMasterKeyUsage",
        "kms:DataKeyPairSpec",
        "kms:EncryptionAlgorithm",
        "kms:EncryptionContextKeys",
        "kms:ExpirationModel",
        "kms:GrantConstraintType",
        "kms:GrantIsForAWSResource",
        "kms:GrantOperations",
        "kms:GranteePrincipal",
        "kms:KeyAgreementAlgorithm",
        "kms:KeyOrigin",
        "kms:KeySpec",
        "kms:KeyUsage",
        "kms:MacAlgorithm",
        "kms:MessageType",
        "kms:MultiRegion",
        "kms:MultiRegionKeyType",
        "kms:PrimaryRegion",
        "kms:ReEncryptOnSameKey",
        "kms:ReplicaRegion",
        "kms:RequestAlias",
        "kms:ResourceAliases",
        "kms:RetiringPrincipal",
        "kms:RotationPeriodInDays",
        "kms:ScheduleKeyDeletionPendingWindowInDays",
        "kms:SigningAlgorithm",
        "kms:ValidTo",
        "kms:ViaService",
        "kms:WrappingAlgorithm",
        "kms:WrappingKeySpec",
    )
)
KMS_CONDITION_KEY_PREFIXES: Final = ("kms:encryptioncontext:", "kms:recipientattestation:")
GLOBAL_CONDITION_KEYS: Final = frozenset(
    k.lower()
    for k in (
        "aws:CalledVia",
        "aws:CalledViaFirst",
        "aws:CalledViaLast",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:FederatedProvider",
        "aws:MultiFactorAuthAge",
        "aws:MultiFactorAuthPresent",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:PrincipalIsAWSService",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalServiceName",
        "aws:PrincipalServiceNamesList",
        "aws:PrincipalType",
        "aws:Referer",
        "aws:RequestedRegion",
        "aws:ResourceAccount",
        "aws:ResourceOrgID",
        "aws:ResourceOrgPaths",
        "aws:SecureTransport",
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceIdentity",
        "aws:SourceIp",
        "aws:SourceOrgID",
        "aws:SourceOrgPaths",
        "aws:SourceVpc",
        "aws:SourceVpcArn",
        "aws:SourceVpce",
        "aws:TagKeys",
        "aws:TokenIssueTime",
        "aws:UserAgent",
        "aws:userid",
        "aws:username",
        "aws:ViaAWSService",
        "aws:VpcSourceIp",
        "aws:VpceAccount",
        "aws:VpceOrgID",
        "aws:VpceOrgPaths",
        "aws:Ec2InstanceSourceVpc",
        "aws:Ec2InstanceSourcePrivateIPv4",
    )
)
GLOBAL_CONDITION_KEY_PREFIXES: Final = ("aws:principaltag/", "aws:requesttag/", "aws:resourcetag/")
# Condition keys with one value per request: set operators (ForAnyValue / ForAllValues)
# on them are a mistake.
MULTI_VALUED_CONDITION_KEYS: Final = frozenset(
    k.lower()
    for k in (
        "aws:CalledVia",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalServiceNamesList",
        "aws:ResourceOrgPaths",
        "aws:SourceOrgPaths",
        "aws:TagKeys",
        "aws:VpceOrgPaths",
        "kms:EncryptionContextKeys",
        "kms:GrantOperations",
        "kms:ResourceAliases",
    )
)


def known_condition_key(key: str) -> bool:
    k = key.lower()
    return (
        k in KMS_CONDITION_KEYS
        or k in GLOBAL_CONDITION_KEYS
        or k.startswith(KMS_CONDITION_KEY_PREFIXES)
        or k.startswith(GLOBAL_CONDITION_KEY_PREFIXES)
    )


# Default request quotas (requests per second, per account and Region). Adjustable per
# account, so the inventory may override them (`request_quotas:` in inventory.yaml).
# How observation finds the keys it owns (inventory.yaml ``discovery:``): one
# ListResourceTags per customer key (the default), or the Resource Groups Tagging API's
# GetResources first (100 keys a page), ListResourceTags then only where it cannot be trusted.
DISCOVERY_LIST_TAGS: Final = "list-resource-tags"
DISCOVERY_TAGGING_API: Final = "tagging-api"
DISCOVERY_MODES: Final = (DISCOVERY_LIST_TAGS, DISCOVERY_TAGGING_API)

REQUEST_QUOTAS: Final[dict[str, float]] = {
    "DescribeKey": 2000,
    "ListResourceTags": 2000,
    "GetPublicKey": 2000,
    "GetKeyPolicy": 1000,
    "GetKeyRotationStatus": 1000,
    "ListKeys": 500,
    "ListAliases": 500,
    "ListGrants": 100,
    "ListKeyPolicies": 100,
    "ListKeyRotations": 100,
    "ListRetirableGrants": 100,
    # Not in the quota table the tool was built from: assumed as low as the other newer
    # per-key reads (override it in request_quotas: when your account's quota is known).
    "GetKeyLastUsage": 100,
    "CreateKey": 5,
    "CreateAlias": 5,
    "UpdateAlias": 5,
    "UpdateKeyDescription": 5,
    "EnableKey": 5,
    "DisableKey": 5,
    "CancelKeyDeletion": 5,
    "UntagResource": 5,
    "DisableKeyRotation": 5,
    "ReplicateKey": 5,
    "RotateKeyOnDemand": 5,
    "UpdatePrimaryRegion": 5,
    "TagResource": 10,
    "PutKeyPolicy": 15,
    "EnableKeyRotation": 15,
    "DeleteAlias": 15,
    "ScheduleKeyDeletion": 15,
    "ImportKeyMaterial": 15,
    "GetParametersForImport": 1,
    # Not in the quota table the tool was built from: assumed as low as the other writes
    # that change a key's state (override it in request_quotas: when known).
    "DeleteImportedKeyMaterial": 5,
    "CreateGrant": 50,
    "RevokeGrant": 50,
    "RetireGrant": 50,
}
