"""KMS -> observed state. The only module that reads from AWS.

Reads only what the plan needs, concurrently:

1. ListKeys and ListAliases, once per target (paginated), side by side;
2. ListResourceTags for every customer key, to find the keys we own (identity tag);
3. DescribeKey, then GetKeyPolicy and GetKeyRotationStatus, for owned keys and for keys
   the specs adopt (and, with ``details_for_all``, for every customer key); with
   ``describe_unmanaged`` (drift), DescribeKey alone for the other customer keys;
4. ListGrants (paginated) for owned and adopted keys only, never for other customer keys,
   and only once DescribeKey has found the key (moto answers HTTP 500 for a key that is
   gone);
5. for owned multi-Region keys, their members in the other Regions (DescribeKey names
   them): DescribeKey, ListResourceTags and GetKeyPolicy there, and ListAliases once per
   other Region (the replica Regions the specs declare, and those where members are).

Keys that an ``alias/aws/*`` alias points at are AWS managed: never read further.

Observation never guesses ownership. A key whose tags cannot be read (AccessDenied from
a tighter deployer policy, an SCP, another team's key policy) might carry our identity
tag, so it is not taken for unmanaged: it is listed in ``ObservedTarget.unreadable`` with
the failed operation and error code (the planner then refuses to create a key it cannot
rule out, and drift reports it). A managed key whose DescribeKey fails with anything but
NotFound stops the target's observation with an error naming the key and the permission.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, TypeVar

import botocore.exceptions

from reconciler import catalog
from reconciler.aws import KmsApi, error_code, error_message, retryable
from reconciler.errors import AwsError
from reconciler.state import Grant, KeyUsage, ObservedKey, ObservedTarget, TargetInfo

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
    # Other Regions whose aliases the plan needs: where the specs declare replicas.
    regions: tuple[str, ...] = ()
    workers: int = 16
    # Told (phase, done, total) as reads finish, from the reading threads: a status line.
    progress: Progress | None = None


Regional = Callable[[str], KmsApi]
Progress = Callable[[str, int, int], None]
T = TypeVar("T")
R = TypeVar("R")


def _counted(
    progress: Progress | None, phase: str, items: list[T], read: Callable[[T], R]
) -> Callable[[T], R]:
    """``read``, telling ``progress`` how many of ``items`` are done after each call."""
    if progress is None:
        return read
    lock = threading.Lock()
    done = 0
    progress(phase, 0, len(items))

    def call(item: T) -> R:
        nonlocal done
        try:
            return read(item)
        finally:
            with lock:
                done += 1
                progress(phase, done, len(items))

    return call


# Every KMS operation this module calls (``kms-reconciler permissions`` is made from these
# tables; a test checks them against the calls in the code).
CALLS: frozenset[str] = frozenset(
    {
        "ListKeys",
        "ListAliases",
        "ListResourceTags",
        "DescribeKey",
        "GetKeyPolicy",
        "GetKeyRotationStatus",
        "ListGrants",
        "ListKeyRotations",
    }
)
# GetKeyLastUsage (``read_usage``): plan and apply read it for the keys a plan retires or
# restricts, drift for every customer key it reports (one call per key).
USAGE_CALLS: frozenset[str] = frozenset({"GetKeyLastUsage"})


@dataclass(frozen=True)
class Unreadable:
    """A key that could not be read: the operation that failed and its error code."""

    operation: str
    code: str

    def __str__(self) -> str:
        return f"{self.operation}: {self.code}"


class KeyReadError(Exception):
    """A key the tool must read (managed or adopted) could not be read."""

    def __init__(self, key_id: str, name: str | None, exc: botocore.exceptions.ClientError):
        self.key_id = key_id
        self.name = name
        self.operation = exc.operation_name
        self.detail = error_message(exc)
        super().__init__(f"{key_id}: {self.operation}: {self.detail}")


def observe_target(
    api: KmsApi,
    target: TargetInfo,
    options: ObserveOptions,
    caller_arn: str = "",
    regional: Regional | None = None,
) -> ObservedTarget:
    """Read one target. ``regional`` gives the KMS client of another Region (needed for
    multi-Region keys; without it, members in other Regions are not read)."""
    used: dict[str, KmsApi] = {target.region: api}
    before: dict[str, int] = {target.region: api.total_calls}
    lock = threading.Lock()

    def api_in(region: str) -> KmsApi:
        with lock:
            if region not in used:
                if regional is None:
                    raise AwsError(f"target '{target.name}': cannot read KMS in {region}")
                used[region] = regional(region)
                before[region] = used[region].total_calls
            return used[region]

    other_regions = [r for r in options.regions if r != target.region]
    try:
        with ThreadPoolExecutor(max_workers=options.workers) as pool:
            keys_f = pool.submit(api.paginate, "ListKeys", "Keys", Limit=1000)
            aliases_f = pool.submit(_aliases, api)
            region_aliases_f = {
                region: pool.submit(_aliases, api_in(region)) for region in other_regions
            }
            key_ids = [k["KeyId"] for k in keys_f.result()]
            aliases, aws_managed = aliases_f.result()
            customer = [k for k in key_ids if k not in aws_managed]

            tags_of = _counted(options.progress, "tags", customer, lambda k: _tags(api, k))
            read_tags = dict(zip(customer, pool.map(tags_of, customer), strict=True))
            unreadable = {k: t for k, t in read_tags.items() if isinstance(t, Unreadable)}
            tags_by_key = {k: t for k, t in read_tags.items() if not isinstance(t, Unreadable)}
            wanted = _resolve_wanted(options.wanted, aliases)
            for key_id in sorted(wanted & unreadable.keys()):
                raise AwsError(
                    f"target '{target.name}': cannot read key {key_id}, which the specs "
                    f"adopt: {unreadable[key_id]} (the tool needs "
                    f"kms:{unreadable[key_id].operation} on it)"
                )
            detailed = [
                k
                for k, tags in tags_by_key.items()
                if tags is not None
                and (options.details_for_all or options.identity_tag in tags or k in wanted)
            ]

            def must_read(key_id: str) -> bool:
                return key_id in wanted or options.identity_tag in (tags_by_key[key_id] or {})

            def details_of(key_id: str) -> dict[str, Any] | Unreadable | None:
                try:
                    return _details(api, key_id, history, key_id in with_grants)
                except botocore.exceptions.ClientError as exc:
                    if retryable(exc):  # outlived the retries: the run's error, not the key's
                        raise
                    if must_read(key_id):
                        name = (tags_by_key[key_id] or {}).get(options.identity_tag)
                        raise KeyReadError(key_id, name, exc) from None
                    return Unreadable(exc.operation_name, error_code(exc))

            def describe_of(key_id: str) -> dict[str, Any] | Unreadable | None:
                try:
                    return _describe(api, key_id)
                except botocore.exceptions.ClientError as exc:
                    if retryable(exc):  # outlived the retries: the run's error, not the key's
                        raise
                    return Unreadable(exc.operation_name, error_code(exc))

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
            read_details = dict(
                zip(
                    detailed,
                    pool.map(
                        _counted(options.progress, "key details", detailed, details_of), detailed
                    ),
                    strict=True,
                )
            )
            if options.describe_unmanaged:
                described = [
                    k
                    for k, tags in tags_by_key.items()
                    if tags is not None and k not in read_details
                ]
                describe = _counted(options.progress, "unmanaged keys", described, describe_of)
                read_details.update(zip(described, pool.map(describe, described), strict=True))
            for key_id, info in read_details.items():
                if isinstance(info, Unreadable):
                    unreadable[key_id] = info
            details = {k: v for k, v in read_details.items() if not isinstance(v, Unreadable)}
            detailed = [k for k in detailed if k in details]
            # Multi-Region keys we own: their members in the other Regions.
            members = [
                (key_id, region)
                for key_id, info in details.items()
                if info is not None
                and key_id in detailed
                and (
                    options.details_for_all
                    or options.identity_tag in (tags_by_key[key_id] or {})
                    or key_id in wanted
                )
                for region in _member_regions(info)
                if region != target.region
            ]
            for region in {r for _, r in members}:
                if region not in region_aliases_f:
                    region_aliases_f[region] = pool.submit(_aliases, api_in(region))
            member_info = dict(
                zip(
                    members,
                    pool.map(lambda m: _member(api_in(m[1]), m[0]), members),
                    strict=True,
                )
            )
            region_aliases = {
                region: future.result()[0] for region, future in region_aliases_f.items()
            }
    except KeyReadError as exc:
        named = f" ('{exc.name}')" if exc.name else ""
        raise AwsError(
            f"target '{target.name}': cannot read managed key {exc.key_id}{named}: "
            f"{exc.operation} answered {exc.detail}; the tool needs kms:{exc.operation} on "
            "every key it manages, or it cannot tell what that key is; nothing was planned"
        ) from None
    except botocore.exceptions.ClientError as exc:
        raise AwsError(
            f"target '{target.name}': reading KMS failed: {exc.operation_name}: "
            f"{error_message(exc)}"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsError(f"target '{target.name}': cannot reach KMS: {exc}") from None

    by_key: dict[str, set[str]] = {}
    for name, target_id in aliases.items():
        if target_id:
            by_key.setdefault(target_id, set()).add(name)

    keys = []
    for key_id, tags in tags_by_key.items():
        if tags is None or key_id in unreadable:
            continue  # deleted while we read, or unreadable (listed apart)
        info = details.get(key_id)
        if key_id in details and info is None:
            continue  # deleted between ListResourceTags and DescribeKey
        if info is not None and info.get("KeyManager") == "AWS":
            aws_managed.add(key_id)
            continue
        key = _observed_key(key_id, tags, info, frozenset(by_key.get(key_id, ())), target)
        replicas = {}
        for (member_id, region), found in member_info.items():
            if member_id != key_id or found is None:
                continue
            member_tags, member_meta = found
            in_region = region_aliases.get(region, {})
            member_aliases = frozenset(a for a, t in in_region.items() if t == member_id)
            replicas[region] = _observed_key(
                member_id, member_tags, member_meta, member_aliases, target, region
            )
        if replicas:
            key = replace(key, replicas=replicas)
        keys.append(key)
    calls = sum(a.total_calls - before[r] for r, a in used.items())
    stats: Counter[str] = Counter()
    for a in used.values():
        stats.update(a.calls)
    return ObservedTarget(
        target=target,
        keys=tuple(keys),
        aliases=aliases,
        caller_arn=caller_arn,
        aws_managed_key_ids=frozenset(aws_managed),
        read_calls=calls,
        stats=dict(stats),
        region_aliases=region_aliases,
        unreadable={k: str(v) for k, v in sorted(unreadable.items())},
    )


def _aliases(api: KmsApi) -> tuple[dict[str, str | None], set[str]]:
    """Every alias of the account in the client's Region (ListAliases, paginated), and the
    keys that ``alias/aws/*`` aliases point at (AWS managed)."""
    aliases: dict[str, str | None] = {}
    aws_managed: set[str] = set()
    for alias in api.paginate("ListAliases", "Aliases", Limit=100):
        name, target_id = alias["AliasName"], alias.get("TargetKeyId")
        if name.startswith(catalog.ALIAS_RESERVED_PREFIX):
            if target_id:
                aws_managed.add(target_id)
            continue
        aliases[name] = target_id
    return aliases, aws_managed


def _member_regions(info: Mapping[str, Any]) -> list[str]:
    """The Regions of a multi-Region key's family (DescribeKey), primary first."""
    config = info.get("MultiRegionConfiguration") or {}
    primary = (config.get("PrimaryKey") or {}).get("Region")
    replicas = [r.get("Region") for r in config.get("ReplicaKeys") or [] if r.get("Region")]
    return [r for r in [primary, *replicas] if r]


def _member(api: KmsApi, key_id: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    """A multi-Region key's member in another Region: DescribeKey, then its tags and policy
    (None when it is gone). Rotation is shared by the family: read at home only."""
    meta = _describe(api, key_id)
    if meta is None:
        return None
    tags = _tags(api, key_id)
    if tags is None:
        return None
    if isinstance(tags, Unreadable):
        raise AwsError(
            f"cannot read the tags of managed key {key_id}'s replica ({tags}); the tool "
            f"needs kms:{tags.operation} on every key it manages"
        )
    _read_policy(api, key_id, meta)
    return tags, meta


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


def _tags(api: KmsApi, key_id: str) -> dict[str, str] | Unreadable | None:
    """A key's tags; None when it is gone; ``Unreadable`` when they cannot be read (it may
    be ours: never taken for an unmanaged key)."""
    try:
        tags = api.paginate("ListResourceTags", "Tags", KeyId=key_id, Limit=50)
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        if code in _GONE:
            return None
        if retryable(exc):  # outlived the retries: the run's error, not the key's
            raise
        return Unreadable("ListResourceTags", code)
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
    _read_policy(api, key_id, info)
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
                info["_rotations"] = len(rotations)
    return info


def _read_policy(api: KmsApi, key_id: str, info: dict[str, Any]) -> None:
    """GetKeyPolicy into ``info["_policy"]``; left out when it cannot be read."""
    try:
        text = api.call("GetKeyPolicy", KeyId=key_id, PolicyName="default")["Policy"]
        info["_policy"] = _parse_policy(text)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) not in (*_GONE, *_NOT_APPLICABLE, "AccessDeniedException"):
            raise


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
    region: str | None = None,
) -> ObservedKey:
    where = region or target.region
    arn = f"arn:{target.partition}:kms:{where}:{target.account_id}:key/{key_id}"
    if info is None:
        return ObservedKey(key_id=key_id, arn=arn, tags=tags, aliases=aliases, region=region)
    rotation = info.get("_rotation")
    config = info.get("MultiRegionConfiguration") or {}
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
        custom_key_store_id=info.get("CustomKeyStoreId"),
        xks_key_id=(info.get("XksKeyConfiguration") or {}).get("Id"),
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
        rotations=info.get("_rotations"),
        grants=info.get("_grants"),
        region=region,
        multi_region_type=config.get("MultiRegionKeyType"),
        primary_region=(config.get("PrimaryKey") or {}).get("Region"),
        member_regions=tuple(_member_regions(info)),
    )


def _date(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def read_usage(
    api_in: Callable[[str | None], KmsApi],
    keys: Iterable[tuple[str, str | None]],
    workers: int = 16,
    progress: Progress | None = None,
) -> tuple[tuple[KeyUsage, ...], int]:
    """GetKeyLastUsage for each (key ID, Region: None for ``api_in(None)``'s), side by side;
    the answers in the same order and the calls made. A key whose use cannot be read is a
    ``KeyUsage`` with the error code (AccessDeniedException: kms:GetKeyLastUsage missing),
    never a failed run: the plan shows it as unknown and apply's guard refuses on it."""
    refs = list(dict.fromkeys(keys))
    clients = {region: api_in(region) for region in {r for _, r in refs}}
    before = {region: api.total_calls for region, api in clients.items()}

    def one(ref: tuple[str, str | None]) -> KeyUsage:
        key_id, region = ref
        read_at = datetime.now(timezone.utc)
        try:
            answer = clients[region].call("GetKeyLastUsage", KeyId=key_id)
        except botocore.exceptions.ClientError as exc:
            return KeyUsage(key_id, read_at, region, error=error_code(exc) or "error")
        except botocore.exceptions.BotoCoreError as exc:
            return KeyUsage(key_id, read_at, region, error=type(exc).__name__)
        last = answer.get("KeyLastUsage") or {}
        return KeyUsage(
            key_id,
            read_at,
            region,
            operation=last.get("Operation"),
            last_used=_date(last.get("Timestamp")),
            tracking_start=_date(answer.get("TrackingStartDate")),
            created=_date(answer.get("KeyCreationDate")),
        )

    if not refs:
        return (), 0
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(refs)))) as pool:
        found = tuple(pool.map(_counted(progress, "key usage", refs, one), refs))
    return found, sum(api.total_calls - before[r] for r, api in clients.items())


class KeyFinder:
    """Finds a key by its identity tag, reading only keys it has not read before
    (ListKeys, then ListResourceTags per new key ID): the fallback when CreateKey's outcome
    is unknown. One per apply of a target, shared by its threads."""

    # KMS lists a new key within seconds, typically; look that long before concluding.
    SETTLE_READS = 4  # after 0, 0.5, 1.5 and 3.5 s, then a last wait of 4 s: 7.5 s in all

    def __init__(self, identity_tag: str) -> None:
        self.identity_tag = identity_tag
        self._seen: dict[str, str | None] = {}  # key ID -> its identity tag value
        self._lock = threading.Lock()

    def find(self, api: KmsApi, name: str) -> str | None:
        with self._lock:
            listed = [k["KeyId"] for k in api.paginate("ListKeys", "Keys", Limit=1000)]
            for key_id in listed:
                if key_id in self._seen:
                    continue
                try:
                    tags = api.paginate("ListResourceTags", "Tags", KeyId=key_id, Limit=50)
                except botocore.exceptions.ClientError as exc:
                    if error_code(exc) == "NotFoundException":
                        continue
                    raise  # a key we cannot read may be this one: never guess
                values = {t["TagKey"]: t["TagValue"] for t in tags}
                self._seen[key_id] = values.get(self.identity_tag)
            found = sorted(k for k in listed if self._seen.get(k) == name)
        return found[0] if found else None

    def find_settled(self, api: KmsApi, name: str, sleep: Callable[[float], None]) -> str | None:
        """``find``, read again with backoff while KMS may not list the key yet."""
        for attempt in range(self.SETTLE_READS):
            found = self.find(api, name)
            if found:
                return found
            sleep(min(4.0, 0.5 * 2**attempt))
        return None


def read_grants(
    api: KmsApi, key_ids: Iterable[str], workers: int = 16
) -> tuple[dict[str, tuple[Grant, ...] | Unreadable], int]:
    """ListGrants (paginated) for each key, side by side: the grants by key ID, or
    ``Unreadable`` with the error code (AccessDeniedException: kms:ListGrants missing), and
    the calls made. For keys read without their grants (``import --all-unmanaged`` learns
    which keys it imports only once they are read)."""
    refs = list(dict.fromkeys(key_ids))
    before = api.total_calls

    def one(key_id: str) -> tuple[Grant, ...] | Unreadable:
        try:
            listed = api.paginate("ListGrants", "Grants", KeyId=key_id, Limit=100)
        except botocore.exceptions.ClientError as exc:
            if retryable(exc):  # outlived the retries: the run's error, not the key's
                raise
            return Unreadable("ListGrants", error_code(exc))
        return tuple(_grant(g) for g in listed)

    if not refs:
        return {}, 0
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(refs)))) as pool:
        found = dict(zip(refs, pool.map(one, refs), strict=True))
    return found, api.total_calls - before
