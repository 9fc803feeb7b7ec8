"""KMS -> observed state. The only module that reads from AWS.

Reads only what the plan needs, concurrently:

1. ListKeys and ListAliases, once per target (paginated), side by side;
2. ListResourceTags for every customer key, to find the keys we own (identity tag);
3. DescribeKey, then GetKeyPolicy and GetKeyRotationStatus, for owned keys and for keys
   the specs adopt (and, with ``details_for_all``, for every customer key); with
   ``describe_unmanaged`` (drift), DescribeKey alone for the other customer keys;
4. ListGrants (paginated) for owned and adopted keys only, never for other customer keys,
   and only once DescribeKey has found the key (moto answers HTTP 500 for a key that is
   gone).

Keys that an ``alias/aws/*`` alias points at are AWS managed: never read further.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import botocore.exceptions

from reconciler import catalog
from reconciler.aws import KmsApi, error_code, error_message
from reconciler.errors import AwsError
from reconciler.state import Grant, ObservedKey, ObservedTarget, TargetInfo

_GONE = ("NotFoundException",)
_NOT_APPLICABLE = (
    "UnsupportedOperationException",
    "KMSInvalidStateException",
    "DisabledException",
)


@dataclass(frozen=True)
class ObserveOptions:
    identity_tag: str
    wanted: tuple[str, ...] = ()  # key IDs, ARNs or aliases to read fully although unowned
    details_for_all: bool = False
    describe_unmanaged: bool = False  # DescribeKey for unmanaged keys too (drift reports them)
    rotation_history: bool = False  # ListKeyRotations for managed keys that rotate
    grants: bool = True  # ListGrants for managed (and adopted) keys
    # Only for the managed keys of these names (None: every managed key). A plan reads
    # grants only where a spec declares grants or purges them: ListGrants is paced at
    # 100 requests a second, so reading them for every key would dominate a plan.
    grants_for: frozenset[str] | None = None
    workers: int = 16


def observe_target(
    api: KmsApi, target: TargetInfo, options: ObserveOptions, caller_arn: str = ""
) -> ObservedTarget:
    before = api.total_calls
    try:
        with ThreadPoolExecutor(max_workers=options.workers) as pool:
            keys_f = pool.submit(api.paginate, "ListKeys", "Keys", Limit=1000)
            aliases_f = pool.submit(api.paginate, "ListAliases", "Aliases", Limit=100)
            key_ids = [k["KeyId"] for k in keys_f.result()]
            alias_list = aliases_f.result()

            aliases: dict[str, str | None] = {}
            aws_managed: set[str] = set()
            for alias in alias_list:
                name, target_id = alias["AliasName"], alias.get("TargetKeyId")
                if name.startswith(catalog.ALIAS_RESERVED_PREFIX):
                    if target_id:
                        aws_managed.add(target_id)
                    continue
                aliases[name] = target_id
            customer = [k for k in key_ids if k not in aws_managed]

            tags_by_key = dict(
                zip(customer, pool.map(lambda k: _tags(api, k), customer), strict=True)
            )
            wanted = _resolve_wanted(options.wanted, aliases)
            detailed = [
                k
                for k, tags in tags_by_key.items()
                if tags is not None
                and (options.details_for_all or options.identity_tag in tags or k in wanted)
            ]
            history = options.rotation_history
            with_grants = {
                k
                for k in detailed
                if options.grants
                and (
                    k in wanted
                    or (
                        options.identity_tag in (tags := tags_by_key[k] or {})
                        and (
                            options.grants_for is None
                            or tags[options.identity_tag] in options.grants_for
                        )
                    )
                )
            }
            details = dict(
                zip(
                    detailed,
                    pool.map(lambda k: _details(api, k, history, k in with_grants), detailed),
                    strict=True,
                )
            )
            if options.describe_unmanaged:
                described = [
                    k for k, tags in tags_by_key.items() if tags is not None and k not in details
                ]
                details.update(
                    zip(described, pool.map(lambda k: _describe(api, k), described), strict=True)
                )
    except botocore.exceptions.ClientError as exc:
        raise AwsError(
            f"target '{target.name}': reading KMS failed: {error_message(exc)}"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsError(f"target '{target.name}': cannot reach KMS: {exc}") from None

    by_key: dict[str, set[str]] = {}
    for name, target_id in aliases.items():
        if target_id:
            by_key.setdefault(target_id, set()).add(name)

    keys = []
    for key_id, tags in tags_by_key.items():
        if tags is None:
            continue  # deleted while we read
        info = details.get(key_id)
        if key_id in details and info is None:
            continue  # deleted between ListResourceTags and DescribeKey
        if info is not None and info.get("KeyManager") == "AWS":
            aws_managed.add(key_id)
            continue
        keys.append(_observed_key(key_id, tags, info, frozenset(by_key.get(key_id, ())), target))
    return ObservedTarget(
        target=target,
        keys=tuple(keys),
        aliases=aliases,
        caller_arn=caller_arn,
        aws_managed_key_ids=frozenset(aws_managed),
        read_calls=api.total_calls - before,
        stats=dict(api.calls),
    )


def _resolve_wanted(refs: Iterable[str], aliases: dict[str, str | None]) -> set[str]:
    out = set()
    for ref in refs:
        if ref.startswith("alias/"):
            target = aliases.get(ref)
            if target:
                out.add(target)
        else:
            out.add(ref.rsplit("/", 1)[-1])
    return out


def _tags(api: KmsApi, key_id: str) -> dict[str, str] | None:
    try:
        tags = api.paginate("ListResourceTags", "Tags", KeyId=key_id, Limit=50)
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        if code in _GONE:
            return None
        if code == "AccessDeniedException":
            return {}  # cannot be ours: the tool can always read the keys it owns
        raise
    return {t["TagKey"]: t["TagValue"] for t in tags}


def _describe(api: KmsApi, key_id: str) -> dict[str, Any] | None:
    try:
        return dict(api.call("DescribeKey", KeyId=key_id)["KeyMetadata"])
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in _GONE:
            return None
        raise


def _details(
    api: KmsApi, key_id: str, history: bool = False, grants: bool = False
) -> dict[str, Any] | None:
    """DescribeKey, then the policy and rotation status (skipped where they cannot apply),
    with ``history`` the rotations so far (ListKeyRotations), with ``grants`` the grants."""
    meta = _describe(api, key_id)
    if meta is None:
        return None
    info: dict[str, Any] = meta
    if meta.get("KeyManager") == "AWS":
        return info
    if grants:
        try:
            listed = api.paginate("ListGrants", "Grants", KeyId=key_id, Limit=100)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in (*_GONE, *_NOT_APPLICABLE, "AccessDeniedException"):
                raise
        else:
            info["_grants"] = tuple(_grant(g) for g in listed)
    try:
        text = api.call("GetKeyPolicy", KeyId=key_id, PolicyName="default")["Policy"]
        info["_policy"] = _parse_policy(text)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) not in (*_GONE, *_NOT_APPLICABLE, "AccessDeniedException"):
            raise
    spec = meta.get("KeySpec") or meta.get("CustomerMasterKeySpec") or catalog.SYMMETRIC_DEFAULT
    origin = meta.get("Origin") or catalog.ORIGIN_AWS_KMS
    if catalog.can_rotate_automatically(spec, origin) and meta.get("KeyState") in (
        "Enabled",
        "Disabled",
    ):
        try:
            status = api.call("GetKeyRotationStatus", KeyId=key_id)
            info["_rotation"] = (
                bool(status.get("KeyRotationEnabled")),
                status.get("RotationPeriodInDays"),
            )
            info["_next_rotation"] = status.get("NextRotationDate")
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in (*_GONE, *_NOT_APPLICABLE):
                raise
        if history:
            try:
                rotations = api.paginate("ListKeyRotations", "Rotations", KeyId=key_id)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in (*_GONE, *_NOT_APPLICABLE):
                    raise
            else:
                dates = [r["RotationDate"] for r in rotations if r.get("RotationDate")]
                info["_last_rotation"] = max(dates) if dates else None
                info["_on_demand_rotations"] = sum(
                    1 for r in rotations if r.get("RotationType") == "ON_DEMAND"
                )
    return info


def _grant(data: Mapping[str, Any]) -> Grant:
    """A ListGrants entry. moto sends null for an absent RetiringPrincipal or Constraints,
    and has no IssuingAccount or CreationDate; real KMS leaves absent fields out."""
    constraints = data.get("Constraints") or {}
    grant = Grant.of(
        data.get("GranteePrincipal") or "",
        data.get("Operations") or (),
        data.get("RetiringPrincipal"),
        equals=constraints.get("EncryptionContextEquals"),
        subset=constraints.get("EncryptionContextSubset"),
        name=data.get("Name") or "",
        grant_id=data.get("GrantId"),
    )
    service = data.get("GranteeServicePrincipal")
    return replace(grant, grantee_service_principal=service) if service else grant


def _parse_policy(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        # KMS only stores JSON; a fake may not. Make it differ from any real policy.
        return {"Id": "unparseable policy", "Statement": [], "Version": text[:200]}
    return document


def _observed_key(
    key_id: str,
    tags: dict[str, str],
    info: dict[str, Any] | None,
    aliases: frozenset[str],
    target: TargetInfo,
) -> ObservedKey:
    arn = f"arn:{target.partition}:kms:{target.region}:{target.account_id}:key/{key_id}"
    if info is None:
        return ObservedKey(key_id=key_id, arn=arn, tags=tags, aliases=aliases)
    rotation = info.get("_rotation")
    return ObservedKey(
        key_id=key_id,
        arn=info.get("Arn", arn),
        tags=tags,
        key_manager=info.get("KeyManager", "CUSTOMER"),
        key_state=info.get("KeyState"),
        description=info.get("Description", ""),
        key_spec=info.get("KeySpec") or info.get("CustomerMasterKeySpec"),
        # moto omits KeyUsage for keys created without one; real KMS always sends it.
        key_usage=info.get("KeyUsage"),
        origin=info.get("Origin"),
        multi_region=info.get("MultiRegion"),
        enabled=info.get("Enabled"),
        rotation_enabled=rotation[0] if rotation else None,
        rotation_period_days=rotation[1] if rotation else None,
        policy=info.get("_policy"),
        aliases=aliases,
        deletion_date=_date(info.get("DeletionDate")),
        creation_date=_date(info.get("CreationDate")),
        next_rotation_date=_date(info.get("_next_rotation")),
        # EXTERNAL keys only; moto never sends them: absent means unknown.
        expiration_model=info.get("ExpirationModel"),
        valid_to=_date(info.get("ValidTo")),
        last_rotation_date=_date(info.get("_last_rotation")),
        on_demand_rotations=info.get("_on_demand_rotations"),
        grants=info.get("_grants"),
    )


def _date(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None
