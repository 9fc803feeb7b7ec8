"""KMS -> observed state. The only module that reads from AWS.

Reads only what the plan needs:

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

Pipelined per key, with no barrier across keys: once the lists of step 1 are in, each
key's next read starts as soon as the one it depends on returns (its tags, then
DescribeKey, then its policy, rotation status, grants, rotation history and members side
by side: they depend only on DescribeKey). The reads of all keys run on one event loop
(``KmsApi.acall``: the lean request path of ``reconciler.wire`` sends them from that one
thread, with no thread per call; a client without it reads in the loop's executor), one
KMS call a step; a waiting read deeper in its key's chain goes first, so the operation
families (each paced to its own quota by ``KmsApi``) overlap in time instead of running
one after the other. Calls in flight: ``workers`` (``--parallelism``), else
Little's law (``reads_in_flight``): the paced rate of the tightest per-key read
(GetKeyPolicy, GetKeyRotationStatus) x 4 calls a key x the round trip the list calls took,
from 16 to ``aws.MAX_READS_IN_FLIGHT``. The first error that stops the target stops every
other read too (no new call starts).

Discovery through the Resource Groups Tagging API (``tagging``, inventory ``discovery:
tagging-api``): GetResources (``kms:key``, filtered on the identity tag key, 100 a page),
side by side with the lists of step 1, names the keys that carry the identity tag and
their tags, so step 2 can skip their ListResourceTags. That index is eventually
consistent, so it never decides identity alone:

- ListKeys stays the list of keys: a listed key the index does not name is read with
  ListResourceTags as on the default path, so lag only costs calls; a key the index names
  that ListKeys does not list yet is read as well (the union, never the intersection);
- indexed tags stand in for ListResourceTags only when they are exactly what that name's
  spec wants (``expected_tags``: from them the planner plans no tag change); any other
  key (stale tags after an apply re-tagged it, an orphan, an identity tag removed but
  still indexed) is read with ListResourceTags, so a re-plan right after apply converges
  and a stale index never names a key for a spec it does not carry the tags of.

Keys that an ``alias/aws/*`` alias points at are AWS managed: never read further.

Observation never guesses ownership. A key whose tags cannot be read (AccessDenied from
a tighter deployer policy, an SCP, another team's key policy) might carry our identity
tag, so it is not taken for unmanaged: it is listed in ``ObservedTarget.unreadable`` with
the failed operation and error code (the planner then refuses to create a key it cannot
rule out, and drift reports it). A managed key whose DescribeKey fails with anything but
NotFound stops the target's observation with an error naming the key and the permission.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, TypeVar

import botocore.exceptions

from reconciler import catalog
from reconciler.aws import (
    MAX_READS_IN_FLIGHT,
    QUOTA_HEADROOM,
    KmsApi,
    error_code,
    error_message,
    retryable,
)
from reconciler.errors import AwsError
from reconciler.state import (
    Grant,
    KeyUsage,
    MaterialVersion,
    ObservedKey,
    ObservedTarget,
    TargetInfo,
)

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
    # KMS calls in flight (``--parallelism``); None: sized from the quota and the latency
    # of the first list call (``reads_in_flight``).
    workers: int | None = None
    # ``discovery: tagging-api``: the tags each managed key's spec wants (name -> tags, the
    # tool's own included). A key's tags from the tagging API are used only when they are
    # exactly these; any other key is read with ListResourceTags. None: never used.
    expected_tags: Mapping[str, Mapping[str, str]] | None = None
    # Told (phase, done, total) as reads finish, from the reading loop: a status line.
    progress: Progress | None = None


# Reads in flight when no parallelism is given: at least what the tool always used.
MIN_READS_IN_FLIGHT = 16
# The tagging API's page size (its maximum).
TAGGING_PAGE = 100

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
# The Resource Groups Tagging API's, with ``discovery: tagging-api`` (IAM: tag:GetResources).
TAGGING_CALLS: frozenset[str] = frozenset({"GetResources"})
# GetKeyLastUsage (``read_usage``): plan and apply read it for the keys a plan retires or
# restricts, drift for every customer key it reports (one call per key).
USAGE_CALLS: frozenset[str] = frozenset({"GetKeyLastUsage"})
# Every read the tool makes: the ones the lean request path (``reconciler.wire``) sends.
READS: frozenset[str] = CALLS | TAGGING_CALLS | USAGE_CALLS


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


class _Reads:
    """Read steps on one event loop, at most ``workers`` at a time, each step one KMS call
    (or one paginated list).

    A step may add the steps that depend on it, so each key's reads follow one another as
    soon as the previous one returns, with no barrier across keys. When a step ends, the
    waiting step deepest in its key's chain takes its place: keys finish their reads before
    new keys start, so every operation family (each paced to its own quota) is busy at the
    same time instead of one after the other. The first exception a step raises stops the
    rest (the others are cancelled, no new step starts) and is raised by ``run``.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._free = self.workers
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = 0
        self._error: BaseException | None = None
        self._idle = asyncio.Event()

    def add(self, depth: int, step: Callable[[], Awaitable[None]]) -> None:
        if self._error is not None:
            return
        task = asyncio.get_running_loop().create_task(self._run(depth, step))
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)

    async def _run(self, depth: int, step: Callable[[], Awaitable[None]]) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
        else:
            self._seq += 1
            turn = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (-depth, self._seq, turn))
            await turn  # a finished step handed its place to this one
        try:
            await step()
        finally:
            while self._waiting:
                turn = heapq.heappop(self._waiting)[2]
                if not turn.done():
                    turn.set_result(None)
                    break
            else:
                self._free += 1

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._error is None:
            self._error = task.exception()
            for other in self._tasks:
                other.cancel()
        if not self._tasks:
            self._idle.set()

    async def run(self) -> None:
        """Wait for every step added so far and those they add; raise the first failure."""
        try:
            if self._tasks:
                await self._idle.wait()
        finally:
            for task in self._tasks:  # interrupted: stop the others
                task.cancel()
        if self._error is not None:
            raise self._error


def reads_in_flight(rate: float, latency: float, calls_per_key: float = 4.0) -> int:
    """Little's law: the calls in flight that keep ``rate`` keys a second moving when each
    key takes ``calls_per_key`` calls of ``latency`` seconds, with a quarter more for the
    calls waiting on their operation's pacing; from 16 to ``MAX_READS_IN_FLIGHT``."""
    needed = math.ceil(rate * calls_per_key * latency * 1.25)
    return max(MIN_READS_IN_FLIGHT, min(MAX_READS_IN_FLIGHT, needed))


# The family that bounds a plan's reads: one call per managed key at the lowest quota.
_TIGHTEST = ("GetKeyPolicy", "GetKeyRotationStatus")


def _paced_rate(api: KmsApi) -> float:
    """Keys a second the tightest per-key read allows (its paced rate, or the quota less
    the headroom without a limiter)."""
    rates = []
    for op in _TIGHTEST:
        rate = api.limiter.rate(op) if api.limiter is not None else None
        rates.append(rate if rate else catalog.REQUEST_QUOTAS[op] * QUOTA_HEADROOM)
    return min(rates)


def observe_target(
    api: KmsApi,
    target: TargetInfo,
    options: ObserveOptions,
    caller_arn: str = "",
    regional: Regional | None = None,
    tagging: KmsApi | None = None,
) -> ObservedTarget:
    """Read one target. ``regional`` gives the KMS client of another Region (needed for
    multi-Region keys; without it, members in other Regions are not read); ``tagging`` the
    Resource Groups Tagging API client (``discovery: tagging-api``)."""
    return asyncio.run(_observe(api, target, options, caller_arn, regional, tagging))


async def _observe(
    api: KmsApi,
    target: TargetInfo,
    options: ObserveOptions,
    caller_arn: str,
    regional: Regional | None,
    tagging: KmsApi | None,
) -> ObservedTarget:
    """``observe_target`` on its own event loop: every read is a step of one ``_Reads``;
    the lean path's reads run on the loop itself, any other read (a client without it)
    in the loop's executor, as many threads as reads in flight."""
    used: dict[str, KmsApi] = {target.region: api}
    before: dict[str, int] = {target.region: api.total_calls}
    tagging_before = tagging.total_calls if tagging is not None else 0
    loop = asyncio.get_running_loop()

    def api_in(region: str) -> KmsApi:
        if region not in used:
            if regional is None:
                raise AwsError(f"target '{target.name}': cannot read KMS in {region}")
            used[region] = regional(region)
            before[region] = used[region].total_calls
        return used[region]

    other_regions = [r for r in options.regions if r != target.region]
    # A read through botocore (a client without the lean path) takes one of these threads,
    # made as needed: never more are busy than ``_Reads`` lets reads be in flight.
    in_flight = max(2, options.workers or MAX_READS_IN_FLIGHT)
    loop.set_default_executor(ThreadPoolExecutor(in_flight, thread_name_prefix="observe"))
    try:
        # 1. The lists, side by side (they say which keys exist and which are AWS managed);
        #    their round trip sizes the reads in flight when no parallelism is given.
        started = time.monotonic()
        listed_before = api.calls["ListKeys"]
        listed_keys, (aliases, aws_managed) = await asyncio.gather(
            api.apaginate("ListKeys", "Keys", Limit=1000), _aliases(api)
        )
        key_ids = [k["KeyId"] for k in listed_keys]
        latency = (time.monotonic() - started) / max(1, api.calls["ListKeys"] - listed_before)
        workers = options.workers or reads_in_flight(_paced_rate(api), latency)
        # never more reads in flight than there could be (a key has at most a handful side
        # by side; keys only the tagging API names are rare)
        reads = _Reads(min(workers, 6 * len(key_ids) + len(other_regions) + 2))
        region_aliases: dict[str, dict[str, str | None]] = {}

        async def read_aliases(region: str) -> None:
            region_aliases[region] = (await _aliases(api_in(region)))[0]

        def aliases_in(region: str) -> None:
            if region in asked:
                return
            asked.add(region)
            reads.add(DEPTH_MEMBER, lambda: read_aliases(region))

        asked: set[str] = set()
        for region in other_regions:
            aliases_in(region)

        # Every listed customer key, and every key the tagging API names that ListKeys
        # does not list (yet): a key is never left out because one of the two lags.
        customer = [k for k in key_ids if k not in aws_managed]
        wanted = _resolve_wanted(options.wanted, aliases)
        history = options.rotation_history
        read_tags: dict[str, dict[str, str] | Unreadable | None] = {}
        read_details: dict[str, dict[str, Any] | Unreadable | None] = {}
        member_info: dict[tuple[str, str], tuple[dict[str, str], dict[str, Any]] | None] = {}
        chains = _Chains(options.progress, "keys", len(customer))
        begun: set[str] = set()

        def owned(tags: Mapping[str, str] | None) -> bool:
            return options.identity_tag in (tags or {})

        def begin(key_id: str, indexed: dict[str, str] | None = None) -> None:
            """Start a key's chain (once): from its indexed tags when they can be trusted,
            else from ListResourceTags."""
            if key_id in begun:
                return
            begun.add(key_id)
            chains.add(reads, key_id, DEPTH_TAGS, lambda: key_tags(key_id, indexed))

        async def index_page(token: str) -> None:
            """One page of the tagging API: the keys on it whose tags can be trusted start
            at once; after the last page, every other key starts from ListResourceTags."""
            assert tagging is not None
            page, token = await _tag_page(tagging, options.identity_tag, token)
            for key_id, tags in page.items():
                if key_id in aws_managed:
                    continue
                if key_id not in listed:
                    listed.add(key_id)
                    customer.append(key_id)
                    chains.more(1)
                if _trusted(tags, options):
                    begin(key_id, tags)
            if token:
                reads.add(DEPTH_INDEX, lambda: index_page(token))
                return
            for key_id in list(customer):
                begin(key_id)

        async def key_tags(key_id: str, indexed: dict[str, str] | None) -> None:
            tags = indexed if indexed is not None else await _tags(api, key_id)
            read_tags[key_id] = tags
            if tags is None:
                return  # gone since ListKeys
            if isinstance(tags, Unreadable):
                if key_id in wanted:
                    raise AwsError(
                        f"target '{target.name}': cannot read key {key_id}, which the specs "
                        f"adopt: {tags} (the tool needs kms:{tags.operation} on it)"
                    )
                return
            if options.details_for_all or owned(tags) or key_id in wanted:
                chains.add(reads, key_id, DEPTH_DESCRIBE, lambda: describe_full(key_id, tags))
            elif options.describe_unmanaged:
                chains.add(reads, key_id, DEPTH_DESCRIBE, lambda: describe_only(key_id))

        def failed(key_id: str, tags: Mapping[str, str], exc: Exception) -> None:
            """A detail read failed: the key is unreadable, or the run stops (a key the
            tool must read)."""
            if isinstance(exc, botocore.exceptions.ClientError):
                if retryable(exc):  # outlived the retries: the run's error, not the key's
                    raise exc
                if key_id in wanted or owned(tags):
                    raise KeyReadError(key_id, tags.get(options.identity_tag), exc) from None
                read_details[key_id] = Unreadable(exc.operation_name, error_code(exc))
                return
            raise exc

        async def describe_only(key_id: str) -> None:
            try:
                meta = await _describe(api, key_id)
            except botocore.exceptions.ClientError as exc:
                if retryable(exc):  # outlived the retries: the run's error, not the key's
                    raise
                meta = Unreadable(exc.operation_name, error_code(exc))  # type: ignore[assignment]
            read_details[key_id] = meta

        async def describe_full(key_id: str, tags: Mapping[str, str]) -> None:
            try:
                meta = await _describe(api, key_id)
            except botocore.exceptions.ClientError as exc:
                failed(key_id, tags, exc)
                return
            read_details[key_id] = meta
            if meta is None or meta.get("KeyManager") == "AWS":
                return  # gone since ListKeys, or AWS managed: no more reads
            steps = _detail_steps(
                api,
                key_id,
                meta,
                history=history,
                grants=options.grants and key_id in with_grants(key_id, tags),
                materials=owned(tags) or key_id in wanted,
            )
            # Multi-Region keys we read in full: their members in the other Regions.
            for region in _member_regions(meta):
                if region != target.region:
                    aliases_in(region)
                    chains.add(
                        reads,
                        key_id,
                        DEPTH_MEMBER,
                        lambda region=region: member(key_id, region),  # type: ignore[misc]
                    )
            for step in steps:
                chains.add(
                    reads,
                    key_id,
                    DEPTH_DETAILS,
                    lambda step=step: detail(key_id, tags, step),  # type: ignore[misc]
                )

        def with_grants(key_id: str, tags: Mapping[str, str]) -> set[str]:
            if key_id in wanted:
                return {key_id}
            name = tags.get(options.identity_tag)
            if name is not None and (options.grants_for is None or name in options.grants_for):
                return {key_id}
            return set()

        async def detail(
            key_id: str, tags: Mapping[str, str], step: Callable[[], Awaitable[None]]
        ) -> None:
            try:
                await step()
            except botocore.exceptions.ClientError as exc:
                failed(key_id, tags, exc)

        async def member(key_id: str, region: str) -> None:
            member_info[(key_id, region)] = await _member(api_in(region), key_id)

        listed = set(customer)
        if tagging is not None:
            reads.add(DEPTH_INDEX, lambda: index_page(""))
        else:
            for key_id in customer:
                begin(key_id)
        await reads.run()
    except KeyReadError as exc:
        named = f" ('{exc.name}')" if exc.name else ""
        raise AwsError(
            f"target '{target.name}': cannot read managed key {exc.key_id}{named}: "
            f"{exc.operation} answered {exc.detail}; the tool needs kms:{exc.operation} on "
            "every key it manages, or it cannot tell what that key is; nothing was planned"
        ) from None
    except botocore.exceptions.ClientError as exc:
        raise AwsError(
            f"target '{target.name}': reading {_service(exc)} failed: {exc.operation_name}: "
            f"{error_message(exc)}"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsError(f"target '{target.name}': cannot reach KMS: {exc}") from None
    finally:
        for client in (*used.values(), tagging):
            if client is not None and client.wire is not None:
                await client.wire.aclose()

    unreadable = {k: t for k, t in read_tags.items() if isinstance(t, Unreadable)}
    for key_id, info in read_details.items():
        if isinstance(info, Unreadable):
            unreadable[key_id] = info
    details = {k: v for k, v in read_details.items() if not isinstance(v, Unreadable)}

    by_key: dict[str, set[str]] = {}
    for name, target_id in aliases.items():
        if target_id:
            by_key.setdefault(target_id, set()).add(name)

    keys = []
    for key_id in customer:
        tags = read_tags.get(key_id)
        if tags is None or isinstance(tags, Unreadable) or key_id in unreadable:
            continue  # deleted while we read, or unreadable (listed apart)
        info = details.get(key_id)
        if key_id in details and info is None:
            continue  # deleted between ListResourceTags and DescribeKey
        if info is not None and info.get("KeyManager") == "AWS":
            aws_managed.add(key_id)
            continue
        key = _observed_key(key_id, tags, info, frozenset(by_key.get(key_id, ())), target)
        replicas = {}
        for (member_id, region), found in sorted(member_info.items()):
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
    if tagging is not None:
        calls += tagging.total_calls - tagging_before
        stats.update({f"tag:{op}": n for op, n in tagging.calls.items()})
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


# Step depths: the deeper a waiting step is in its key's chain, the sooner it runs.
DEPTH_TAGS, DEPTH_DESCRIBE, DEPTH_DETAILS, DEPTH_MEMBER, DEPTH_INDEX = 0, 1, 2, 3, 4


class _Chains:
    """Counts each key's outstanding reads; tells ``progress`` when a key's are all done."""

    def __init__(self, progress: Progress | None, phase: str, total: int) -> None:
        self._progress = progress
        self._phase = phase
        self._total = total
        self._open: Counter[str] = Counter()
        self._done = 0
        if progress is not None:
            progress(phase, 0, total)

    def more(self, keys: int) -> None:
        """Keys found after the count began (named only by the tagging API)."""
        self._total += keys

    def add(
        self, reads: _Reads, key_id: str, depth: int, step: Callable[[], Awaitable[None]]
    ) -> None:
        """Add ``step`` of ``key_id``'s chain to ``reads``: the key is done when every step
        added for it has ended (a step adds the next ones before it ends)."""
        self._open[key_id] += 1

        async def run() -> None:
            try:
                await step()
            finally:
                self._end(key_id)

        reads.add(depth, run)

    def _end(self, key_id: str) -> None:
        self._open[key_id] -= 1
        if self._open[key_id]:
            return
        del self._open[key_id]
        self._done += 1
        if self._progress is not None:
            self._progress(self._phase, self._done, self._total)


def _service(exc: botocore.exceptions.ClientError) -> str:
    return "the tagging API" if exc.operation_name == "GetResources" else "KMS"


async def _aliases(api: KmsApi) -> tuple[dict[str, str | None], set[str]]:
    """Every alias of the account in the client's Region (ListAliases, paginated), and the
    keys that ``alias/aws/*`` aliases point at (AWS managed)."""
    aliases: dict[str, str | None] = {}
    aws_managed: set[str] = set()
    for alias in await api.apaginate("ListAliases", "Aliases", Limit=100):
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


async def _member(api: KmsApi, key_id: str) -> tuple[dict[str, str], dict[str, Any]] | None:
    """A multi-Region key's member in another Region: DescribeKey, then its tags and policy
    (None when it is gone). Rotation is shared by the family: read at home only."""
    meta = await _describe(api, key_id)
    if meta is None:
        return None
    tags = await _tags(api, key_id)
    if tags is None:
        return None
    if isinstance(tags, Unreadable):
        raise AwsError(
            f"cannot read the tags of managed key {key_id}'s replica ({tags}); the tool "
            f"needs kms:{tags.operation} on every key it manages"
        )
    await _read_policy(api, key_id, meta)
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


async def _tag_page(
    tagging: KmsApi, identity_tag: str, token: str
) -> tuple[dict[str, dict[str, str]], str]:
    """One page of the keys the Resource Groups Tagging API lists with the identity tag,
    and their tags (GetResources, up to 100 a page); the next page's token, or "".
    Eventually consistent: a hint, never the only word (see the module docstring)."""
    request: dict[str, Any] = {
        "ResourceTypeFilters": ["kms:key"],
        "TagFilters": [{"Key": identity_tag}],
        "ResourcesPerPage": TAGGING_PAGE,
    }
    if token:
        request["PaginationToken"] = token
    page = await tagging.acall("GetResources", **request)
    found: dict[str, dict[str, str]] = {}
    for resource in page.get("ResourceTagMappingList") or ():
        arn = str(resource.get("ResourceARN") or "")
        if ":key/" in arn:
            found[arn.rsplit("/", 1)[-1]] = {
                t["Key"]: t["Value"] for t in resource.get("Tags") or () if "Key" in t
            }
    return found, str(page.get("PaginationToken") or "")


def _trusted(tags: Mapping[str, str], options: ObserveOptions) -> bool:
    """Whether tags from the tagging API may stand for the key's tags: they carry the
    identity tag and are exactly what that name's spec wants (``aws:`` tags aside, as the
    planner leaves them aside), so the planner plans no tag change from them."""
    if options.expected_tags is None:
        return False
    expected = options.expected_tags.get(tags.get(options.identity_tag, ""))
    if expected is None:
        return False
    own = {k: v for k, v in tags.items() if not k.lower().startswith("aws:")}
    return own == dict(expected)


async def _tags(api: KmsApi, key_id: str) -> dict[str, str] | Unreadable | None:
    """A key's tags; None when it is gone; ``Unreadable`` when they cannot be read (it may
    be ours: never taken for an unmanaged key)."""
    try:
        tags = await api.apaginate("ListResourceTags", "Tags", KeyId=key_id, Limit=50)
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        if code in _GONE:
            return None
        if retryable(exc):  # outlived the retries: the run's error, not the key's
            raise
        return Unreadable("ListResourceTags", code)
    return {t["TagKey"]: t["TagValue"] for t in tags}


async def _describe(api: KmsApi, key_id: str) -> dict[str, Any] | None:
    try:
        return dict((await api.acall("DescribeKey", KeyId=key_id))["KeyMetadata"])
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in _GONE:
            return None
        raise


def _detail_steps(
    api: KmsApi,
    key_id: str,
    info: dict[str, Any],
    *,
    history: bool,
    grants: bool,
    materials: bool = False,
) -> list[Callable[[], Awaitable[None]]]:
    """The reads that follow DescribeKey (``info``), each filling its part of ``info``,
    independent of one another: the policy; the rotation status (skipped where it cannot
    apply), with ``history`` the rotations so far (ListKeyRotations); with ``grants`` the
    grants (ListGrants only once DescribeKey has found the key: moto answers HTTP 500 for
    a key that is gone); with ``materials``, for an EXTERNAL key, its imported material
    versions (ListKeyRotations with IncludeKeyMaterial ALL_KEY_MATERIAL)."""
    steps: list[Callable[[], Awaitable[None]]] = [lambda: _read_policy(api, key_id, info)]
    if grants:

        async def list_grants() -> None:
            try:
                listed = await api.apaginate("ListGrants", "Grants", KeyId=key_id, Limit=100)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in (*_GONE, *_NOT_APPLICABLE, "AccessDeniedException"):
                    raise
            else:
                info["_grants"] = tuple(_grant(g) for g in listed)

        steps.append(list_grants)
    spec = info.get("KeySpec") or info.get("CustomerMasterKeySpec") or catalog.SYMMETRIC_DEFAULT
    origin = info.get("Origin") or catalog.ORIGIN_AWS_KMS
    if origin == catalog.ORIGIN_EXTERNAL and materials:  # managed (or adopted) EXTERNAL keys

        async def read_materials() -> None:
            try:
                listed = await api.apaginate(
                    "ListKeyRotations",
                    "Rotations",
                    KeyId=key_id,
                    IncludeKeyMaterial="ALL_KEY_MATERIAL",
                )
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in (*_GONE, *_NOT_APPLICABLE, "AccessDeniedException"):
                    raise
            else:
                info["_materials"] = tuple(
                    MaterialVersion(
                        str(m["KeyMaterialId"]),
                        m.get("KeyMaterialDescription"),
                        str(m.get("KeyMaterialState") or ""),
                        m.get("ImportState") != "PENDING_IMPORT",
                        _date(m.get("ValidTo")),
                        _date(m.get("RotationDate")),
                    )
                    for m in listed
                    if m.get("KeyMaterialId")
                )

        steps.append(read_materials)
    if not catalog.can_rotate_automatically(spec, origin) or info.get("KeyState") not in (
        "Enabled",
        "Disabled",
    ):
        return steps

    async def read_rotation() -> None:
        try:
            status = await api.acall("GetKeyRotationStatus", KeyId=key_id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in (*_GONE, *_NOT_APPLICABLE):
                raise
        else:
            info["_rotation"] = (
                bool(status.get("KeyRotationEnabled")),
                status.get("RotationPeriodInDays"),
            )
            info["_next_rotation"] = status.get("NextRotationDate")

    steps.append(read_rotation)
    if history:

        async def read_history() -> None:
            try:
                rotations = await api.apaginate("ListKeyRotations", "Rotations", KeyId=key_id)
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

        steps.append(read_history)
    return steps


async def _read_policy(api: KmsApi, key_id: str, info: dict[str, Any]) -> None:
    """GetKeyPolicy into ``info["_policy"]``; left out when it cannot be read."""
    try:
        answer = await api.acall("GetKeyPolicy", KeyId=key_id, PolicyName="default")
        text = answer["Policy"]
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
        materials=info.get("_materials"),
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
    workers: int | None = 16,
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
    in_flight = workers or MIN_READS_IN_FLIGHT  # None: as many as the reads' least
    with ThreadPoolExecutor(max_workers=max(1, min(in_flight, len(refs)))) as pool:
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
    api: KmsApi, key_ids: Iterable[str], workers: int | None = 16
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
    in_flight = workers or MIN_READS_IN_FLIGHT  # None: as many as the reads' least
    with ThreadPoolExecutor(max_workers=max(1, min(in_flight, len(refs)))) as pool:
        found = dict(zip(refs, pool.map(one, refs), strict=True))
    return found, api.total_calls - before
