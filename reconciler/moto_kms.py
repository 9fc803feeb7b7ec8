"""moto's KMS, corrected where the tool depends on real KMS behaviour it lacks.

moto 5.2 (see the shared moto-kms notes, sections 2, 7 and 9) gets multi-Region keys
wrong: a replica shares its primary's state (the primary then reports REPLICA, aliases and
grants leak across Regions), ignores the Description, Policy and Tags of ReplicateKey,
and UpdatePrimaryRegion is not implemented. It also drops RotationPeriodInDays. The
embedded sandbox (``--sandbox``) and the end-to-end tests run moto with these patches, so
that a multi-Region family converges there as it does in real KMS:

- ReplicateKey makes an independent key in the replica Region (same key ID and key
  material), with the given description, policy and tags, no aliases and no grants;
- every member's DescribeKey shows the family (PrimaryKey, ReplicaKeys) with its own
  MultiRegionKeyType;
- UpdatePrimaryRegion moves the primary (both keys must be Enabled);
- the rotation status is shared by the family and can be changed on the primary only
  (UnsupportedOperationException on a replica); RotationPeriodInDays is kept (default 365)
  and returned while rotation is enabled;
- CreateGrant with a Name is idempotent (same name and parameters: the existing grant), as
  in real KMS, so a resent CreateGrant makes no second grant;
- GetKeyLastUsage (moto has none): every successful cryptographic operation moto
  implements (Encrypt, Decrypt, ReEncrypt (both keys), GenerateDataKey,
  GenerateDataKeyWithoutPlaintext, Sign, Verify, GenerateMac, VerifyMac) is recorded on its
  key (``key.last_usage``: operation, time, a CloudTrail event ID and request ID), and
  GetKeyLastUsage answers as KMS documents it: ``KeyLastUsage`` only when the key was used,
  ``TrackingStartDate`` the later of ``TRACKING_BEGAN`` and the key's creation,
  ``KeyCreationDate``. Times come from ``clock`` (``set_clock`` in tests), and CreateKey
  takes its CreationDate from the same clock, so a test can make a key "100 days old";
- CreateKey in a custom key store (moto ignores CustomKeyStoreId and XksKeyId): checked as
  KMS documents it (origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE with a store ID, XksKeyId
  exactly for an external key store, SYMMETRIC_DEFAULT and single-Region only), kept on the
  key and shown by DescribeKey (CustomKeyStoreId, XksKeyConfiguration). moto has no key
  stores, so every store ID stands for a connected store.

Where this differs from real KMS: moto has no GenerateDataKeyPair(WithoutPlaintext) or
DeriveSharedSecret, so their use is never recorded; a failed call is never recorded
(as in KMS), but moto fails less often (a disabled key still encrypts in moto, and that use
is recorded); the CloudTrail event ID names no real CloudTrail event; ``TRACKING_BEGAN``
is an assumed date (the API documentation gives none); and GetKeyLastUsage is answered on
a key in any state and to any caller (moto checks no permission: tests deny it with the
fault injector).

Only moto internals are touched; nothing here is imported by the tool's own code paths
except the sandbox.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import copy
from datetime import datetime, timezone
from typing import Any

SetAttr = Callable[[Any, str, Any], None]


def _family(key: Any) -> list[Any]:
    """Every member of a multi-Region key's family, the primary first."""
    from moto.kms.models import kms_backends

    config = key.multi_region_configuration
    regions = [config["PrimaryKey"]["Region"], *(r["Region"] for r in config["ReplicaKeys"])]
    members = []
    for region in regions:
        member = kms_backends[key.account_id][region].keys.get(key.id)
        if member is not None:
            members.append(member)
    return members


def _set_family(members: list[Any], primary_region: str) -> None:
    """Give each member its own MultiRegionConfiguration for the family."""
    primary = next(m for m in members if m.region == primary_region)
    replicas = [{"Arn": m.arn, "Region": m.region} for m in members if m is not primary]
    for member in members:
        member.multi_region_configuration = {
            "MultiRegionKeyType": "PRIMARY" if member is primary else "REPLICA",
            "PrimaryKey": {"Arn": primary.arn, "Region": primary.region},
            "ReplicaKeys": [dict(r) for r in replicas],
        }


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


def replicate_key(self: Any) -> str:
    from moto.kms.models import kms_backends

    primary = _key(self)
    region = self._get_param("ReplicaRegion")
    if not primary.multi_region:
        raise _error("UnsupportedOperationException", f"{primary.arn} is not a multi-Region key")
    if primary.multi_region_configuration["MultiRegionKeyType"] != "PRIMARY":
        raise _error("UnsupportedOperationException", f"{primary.arn} is not a primary key")
    members = _family(primary)
    if region in {m.region for m in members}:
        raise _error("AlreadyExistsException", f"{primary.id} already has a key in {region}")
    replica = copy(primary)
    replica.region = region
    replica.arn = primary.arn.replace(f":{primary.region}:", f":{region}:")
    replica.description = self._get_param("Description") or ""
    replica.policy = self._get_param("Policy") or replica.generate_default_policy()
    replica.grants = {}
    replica.aliases = {}
    replica.rotations = list(primary.rotations)
    replica.key_state = "Enabled"
    replica.enabled = True
    replica.deletion_date = None
    backend: Any = kms_backends[primary.account_id][region]  # moto versions type it apart
    backend.keys[replica.id] = replica
    tags = self._get_param("Tags") or []
    if tags:
        # the tagger, not backend.tag_resource: its signature differs across moto 5.2.x
        backend.tagger.tag_resource(replica.id, tags)
    _set_family([*members, replica], members[0].multi_region_configuration["PrimaryKey"]["Region"])
    return json.dumps(
        {
            "ReplicaKeyMetadata": replica.to_dict()["KeyMetadata"],
            "ReplicaPolicy": replica.policy,
            "ReplicaTags": tags,
        }
    )


def update_primary_region(self: Any) -> str:
    key = _key(self)
    region = self._get_param("PrimaryRegion")
    if not key.multi_region:
        raise _error("UnsupportedOperationException", f"{key.arn} is not a multi-Region key")
    if key.multi_region_configuration["MultiRegionKeyType"] != "PRIMARY":
        raise _error("UnsupportedOperationException", f"{key.arn} is not the primary key")
    members = _family(key)
    target = next((m for m in members if m.region == region), None)
    if target is None:
        from moto.kms.exceptions import NotFoundException

        raise NotFoundException(f"{key.id} has no replica in {region}")
    for member in (key, target):
        if member.key_state != "Enabled":
            raise _error(
                "KMSInvalidStateException", f"{member.arn} is {member.key_state}, not Enabled"
            )
    _set_family(members, region)
    return json.dumps({})


def _rotation_change(real: Callable[[Any], str], enabled: bool) -> Callable[[Any], str]:
    def handler(self: Any) -> str:
        key = _key(self)
        if key.multi_region and key.multi_region_configuration["MultiRegionKeyType"] != "PRIMARY":
            raise _error(
                "UnsupportedOperationException",
                f"{key.arn} is a multi-Region replica key: change rotation on the primary",
            )
        result = real(self)
        period = (self._get_param("RotationPeriodInDays") or 365) if enabled else None
        for member in _family(key) if key.multi_region else [key]:
            member.key_rotation_status = enabled
            member.rotation_period_days = period
        return result

    return handler


def _rotation_status(real: Callable[[Any], str]) -> Callable[[Any], str]:
    def handler(self: Any) -> str:
        body = json.loads(real(self))
        if body.get("KeyRotationEnabled"):
            body["RotationPeriodInDays"] = getattr(_key(self), "rotation_period_days", None) or 365
        return json.dumps(body)

    return handler


def _named_grants_once(real: Callable[..., Any]) -> Callable[..., Any]:
    """CreateGrant with a Name is idempotent in real KMS: the same name and parameters
    answer the existing grant's ID and token instead of a second grant (so a request whose
    answer was lost can be resent). moto makes a new grant every time."""

    def add_grant(
        self: Any,
        name: str,
        grantee_principal: str,
        operations: list[str],
        constraints: dict[str, Any],
        retiring_principal: str,
    ) -> Any:
        if name:
            for grant in self.grants.values():
                if (
                    grant.name == name
                    and grant.grantee_principal == grantee_principal
                    and sorted(grant.operations) == sorted(operations)
                    and (grant.constraints or {}) == (constraints or {})
                    and grant.retiring_principal == retiring_principal
                ):
                    return grant
        return real(self, name, grantee_principal, operations, constraints, retiring_principal)

    return add_grant


# The day KMS began recording key usage for keys that existed before (TrackingStartDate of
# an older key). Assumed: the API reference gives no date; the issue speaks of 2026-04.
TRACKING_BEGAN = datetime(2026, 4, 1, tzinfo=timezone.utc)

# The cryptographic operations whose success GetKeyLastUsage reports, by moto's handler
# name (the KeyLastUsageTrackingOperation values moto implements).
TRACKED = {
    "encrypt": "Encrypt",
    "decrypt": "Decrypt",
    "re_encrypt": "ReEncrypt",
    "generate_data_key": "GenerateDataKey",
    "generate_data_key_without_plaintext": "GenerateDataKeyWithoutPlaintext",
    "sign": "Sign",
    "verify": "Verify",
    "generate_mac": "GenerateMac",
    "verify_mac": "VerifyMac",
}


def _now() -> datetime:
    return datetime.now(timezone.utc)


clock: Callable[[], datetime] = _now


def set_clock(now: Callable[[], datetime] | None) -> None:
    """The time of recorded use and of new keys' creation (None: the real time)."""
    global clock
    clock = now or _now


def _unix(moment: datetime) -> float:
    return moment.timestamp()


def _used_keys(backend: Any, body: dict[str, Any]) -> list[Any]:
    """The keys a successful response names (KeyId, and ReEncrypt's SourceKeyId)."""
    keys = []
    for ref in (body.get("KeyId"), body.get("SourceKeyId")):
        if not isinstance(ref, str) or not ref:
            continue
        try:
            key_id = backend.any_id_to_key_id(ref)
        except Exception:  # an alias moto cannot resolve: nothing to record
            continue
        key = backend.keys.get(key_id)
        if key is not None and key not in keys:
            keys.append(key)
    return keys


def _recording(real: Callable[[Any], str], operation: str) -> Callable[[Any], str]:
    def handler(self: Any) -> str:
        result = real(self)  # raises on failure: a failed call is never recorded
        try:
            body = json.loads(result) or {}
        except (TypeError, ValueError):
            body = {}
        if body.get("SignatureValid") is False or body.get("MacValid") is False:
            return result  # real KMS answers an invalid signature or MAC with an error
        for key in _used_keys(self.kms_backend, body):
            key.last_usage = {
                "Operation": operation,
                "Timestamp": _unix(clock()),
                "CloudTrailEventId": str(uuid.uuid4()),
                "KmsRequestId": str(uuid.uuid4()),
            }
        return result

    return handler


def _created_by_clock(real: Callable[[Any], str]) -> Callable[[Any], str]:
    """CreateKey with its CreationDate from ``clock`` (the real time unless a test set it)."""

    def handler(self: Any) -> str:
        body = json.loads(real(self))
        meta = body["KeyMetadata"]
        key = self.kms_backend.keys[meta["KeyId"]]
        key.creation_date = _unix(clock())
        meta["CreationDate"] = key.creation_date
        return json.dumps(body)

    return handler


_STORE_ORIGINS = ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE")


def _in_custom_key_store(real: Callable[[Any], str]) -> Callable[[Any], str]:
    """CreateKey with CustomKeyStoreId (and XksKeyId), checked as KMS documents it; moto
    ignores both. No store exists in moto, so any store ID is taken as a connected store."""

    def handler(self: Any) -> str:
        store = self._get_param("CustomKeyStoreId")
        xks = self._get_param("XksKeyId")
        origin = self._get_param("Origin") or "AWS_KMS"
        if origin in _STORE_ORIGINS and not store:
            raise _error("ValidationException", f"Origin {origin} requires a CustomKeyStoreId")
        if store and origin not in _STORE_ORIGINS:
            raise _error(
                "ValidationException",
                "CustomKeyStoreId requires Origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE",
            )
        if (origin == "EXTERNAL_KEY_STORE") != bool(xks):
            raise _error(
                "ValidationException",
                "Origin EXTERNAL_KEY_STORE needs XksKeyId, and only it takes one",
            )
        spec = self._get_param("KeySpec") or "SYMMETRIC_DEFAULT"
        if store and (spec != "SYMMETRIC_DEFAULT" or self._get_param("MultiRegion")):
            raise _error(
                "UnsupportedOperationException",
                "Keys in a custom key store are single-Region SYMMETRIC_DEFAULT keys",
            )
        body = json.loads(real(self))
        if store:
            key = self.kms_backend.keys[body["KeyMetadata"]["KeyId"]]
            key.custom_key_store_id = store
            key.xks_key_id = xks
            body = key.to_dict()
        return json.dumps(body)

    return handler


def _with_key_store(real: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """Key.to_dict with CustomKeyStoreId and XksKeyConfiguration, as DescribeKey shows them."""

    def to_dict(self: Any) -> dict[str, Any]:
        out = real(self)
        store = getattr(self, "custom_key_store_id", None)
        if store:
            out["KeyMetadata"]["CustomKeyStoreId"] = store
            xks = getattr(self, "xks_key_id", None)
            if xks:
                out["KeyMetadata"]["XksKeyConfiguration"] = {"Id": xks}
        return out

    return to_dict


def get_key_last_usage(self: Any) -> str:
    """GetKeyLastUsage, as the KMS API reference documents it."""
    ref = self._get_param("KeyId") or ""
    if ref.startswith("alias/") or ":alias/" in ref:
        from moto.kms.exceptions import NotFoundException

        raise NotFoundException("Alias names are not supported: give a key ID or key ARN")
    key = _key(self)
    created = float(key.creation_date)
    body: dict[str, Any] = {
        "KeyId": key.id,
        "TrackingStartDate": max(created, _unix(TRACKING_BEGAN)),
        "KeyCreationDate": created,
    }
    usage = getattr(key, "last_usage", None)
    if usage:
        body["KeyLastUsage"] = dict(usage)
    return json.dumps(body)


def apply(setattr_: SetAttr) -> None:
    """Install the patches with ``setattr_`` (``monkeypatch.setattr``, or one that
    remembers what to restore)."""
    from moto.kms.models import Key
    from moto.kms.responses import KmsResponse

    setattr_(Key, "add_grant", _named_grants_once(Key.add_grant))
    setattr_(KmsResponse, "replicate_key", replicate_key)
    setattr_(KmsResponse, "update_primary_region", update_primary_region)
    setattr_(KmsResponse, "get_key_last_usage", get_key_last_usage)
    setattr_(
        KmsResponse,
        "create_key",
        _in_custom_key_store(_created_by_clock(KmsResponse.create_key)),
    )
    setattr_(Key, "to_dict", _with_key_store(Key.to_dict))
    from reconciler import moto_import  # it uses this module's helpers

    moto_import.apply(setattr_)  # GetParametersForImport, ImportKeyMaterial, ...
    for name, operation in TRACKED.items():
        setattr_(KmsResponse, name, _recording(getattr(KmsResponse, name), operation))
    setattr_(
        KmsResponse,
        "enable_key_rotation",
        _rotation_change(KmsResponse.enable_key_rotation, True),
    )
    setattr_(
        KmsResponse,
        "disable_key_rotation",
        _rotation_change(KmsResponse.disable_key_rotation, False),
    )
    setattr_(
        KmsResponse,
        "get_key_rotation_status",
        _rotation_status(KmsResponse.get_key_rotation_status),
    )


@contextmanager
def patched() -> Iterator[None]:
    """The patches for the block, then moto as it was."""
    saved: list[tuple[Any, str, Any]] = []

    def setattr_(owner: Any, name: str, value: Any) -> None:
        saved.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, value)

    apply(setattr_)
    try:
        yield
    finally:
        for owner, name, value in reversed(saved):
            if value is None:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
