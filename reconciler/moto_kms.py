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
  in real KMS, so a resent CreateGrant makes no second grant.

Only moto internals are touched; nothing here is imported by the tool's own code paths
except the sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import copy
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


def apply(setattr_: SetAttr) -> None:
    """Install the patches with ``setattr_`` (``monkeypatch.setattr``, or one that
    remembers what to restore)."""
    from moto.kms.models import Key
    from moto.kms.responses import KmsResponse

    setattr_(Key, "add_grant", _named_grants_once(Key.add_grant))
    setattr_(KmsResponse, "replicate_key", replicate_key)
    setattr_(KmsResponse, "update_primary_region", update_primary_region)
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
