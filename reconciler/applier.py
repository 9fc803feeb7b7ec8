"""Plan + KMS client -> executed operations. The only module that writes to AWS.

The planner decided the order; the applier iterates it as a pipeline per key: each key's
building operations (create, enable, description, policy, tags, rotation, aliases, grants)
run in plan order, keys side by side, so CreateKey, EnableKeyRotation and CreateAlias of
different keys overlap, each family paced by its own quota. What takes a key or an alias
away (disable, alias deletions, key deletions, phase by phase) waits until every key is
built, and does not run when building failed. The first failure stops the run: operations already
started finish, nothing new starts, and the result says what was done, what failed and
what did not run. Every operation is safe to repeat, and the identity tag is set by
CreateKey itself, so a re-run converges.

No write is blindly resent (see ``reconciler.aws``). CreateKey, which KMS cannot make
idempotent, is never resent after an ambiguous failure: the applier reads the target for a
key carrying the name's identity tag and continues with it; when none is listed within a
few seconds the operation fails, and the next apply plans from what KMS lists then. A
resent write whose error a repeat itself explains (AlreadyExists for CreateAlias and
ReplicateKey, NotFound for DeleteAlias and RevokeGrant, the key state for CancelKeyDeletion
and ScheduleKeyDeletion) is resolved by reading what KMS holds, not reported as a failure.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Any, Final

import botocore.exceptions

from reconciler import catalog, material
from reconciler.aws import (
    NO_SETTLE,
    AmbiguousOutcome,
    KmsApi,
    Settle,
    error_code,
    error_message,
    resent,
)
from reconciler.catalog import DEFAULT_IDENTITY_TAG
from reconciler.observe import KeyFinder
from reconciler.plan import PHASES, Operation, OpKind, TargetPlan

# Right after CreateKey, KMS may not yet know the key everywhere (eventual consistency); a
# new replica is Creating, and the keys of a primary move are Updating, for a few seconds.
NOT_FOUND_RETRIES_AFTER_CREATE = 5
AFTER_CREATE = Settle(NOT_FOUND_RETRIES_AFTER_CREATE)
AFTER_REPLICATION = Settle(
    NOT_FOUND_RETRIES_AFTER_CREATE, frozenset({"NotFoundException", "KMSInvalidStateException"})
)
SETTLING: Mapping[OpKind, Settle] = {
    OpKind.CREATE_KEY: AFTER_CREATE,
    OpKind.REPLICATE_KEY: AFTER_REPLICATION,
    OpKind.UPDATE_PRIMARY_REGION: AFTER_REPLICATION,
}


@dataclass(frozen=True)
class OpEvent:
    """Progress of one operation: ``started``, ``done`` or ``failed``."""

    status: str
    op: Operation
    key_id: str | None
    seconds: float = 0.0
    error: str = ""


@dataclass
class ApplyResult:
    target: str
    done: list[Operation] = field(default_factory=list)
    failed: list[tuple[Operation, str]] = field(default_factory=list)
    not_run: list[Operation] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    calls: int = 0
    interrupted: bool = False  # Ctrl-C or SIGTERM: what was under way finished, no more

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


@dataclass(frozen=True)
class Call:
    """What a handler needs to make one operation's KMS call."""

    api: KmsApi
    op: Operation
    key_id: str | None
    settle: Settle = NO_SETTLE
    finder: KeyFinder = field(default_factory=lambda: KeyFinder(DEFAULT_IDENTITY_TAG))
    sleep: Callable[[float], None] = time.sleep


Handler = Callable[[Call], str | None]


def _create_key(c: Call) -> str:
    """CreateKey, never resent after an ambiguous failure. The key it may have made carries
    the identity tag (set by CreateKey itself): the target is read for it, and the apply
    continues with it. When none is listed after a few seconds the operation fails and is
    not sent again: KMS can take minutes to list a new key, and a second CreateKey would
    give the name two keys. The next apply plans from what KMS lists then."""
    try:
        meta = c.api.call("CreateKey", resend=False, **c.op.params)["KeyMetadata"]
        return str(meta["KeyId"])
    except AmbiguousOutcome as exc:
        found = c.finder.find_settled(c.api, c.op.key, c.sleep)
        if found:
            return found
        raise AmbiguousOutcome(
            "CreateKey",
            f"{exc.reason}, and no key tagged {c.finder.identity_tag}={c.op.key} is listed "
            "yet; it is not sent again (that could make a second key). Run apply again in a "
            "minute: it finds the key if KMS made it, or creates it",
        ) from None


def _resolved(c: Call, exc: botocore.exceptions.ClientError, codes: tuple[str, ...]) -> bool:
    """Whether ``exc`` answers a resend of a call that KMS may have executed already."""
    return resent(exc) and error_code(exc) in codes


def _key_state(c: Call) -> dict[str, Any]:
    return dict(c.api.call("DescribeKey", KeyId=c.key_id)["KeyMetadata"])


def _simple(
    api_name: str,
    *,
    key_param: str | None = "KeyId",
    repeat_ok: tuple[str, ...] = (),
    settles: bool = True,
) -> Handler:
    """A call that takes the key ID (as ``key_param``: KeyId, TargetKeyId for aliases, or
    none) plus the params. A resend after an ambiguous failure is harmless: the call is
    idempotent, or the errors a repeat itself causes (``repeat_ok``, e.g. NotFound for a
    deletion the first attempt made) mean it is done. ``settles``: retried while a key this
    run made is still settling."""

    def handler(c: Call) -> None:
        params = dict(c.op.params)
        if key_param is not None:
            params[key_param] = c.key_id
        try:
            c.api.call(api_name, settle=c.settle if settles else NO_SETTLE, **params)
        except botocore.exceptions.ClientError as exc:
            if not _resolved(c, exc, repeat_ok):
                raise

    return handler


def _create_alias(c: Call) -> None:
    """CreateAlias; AlreadyExists after a resend is fine when the alias points at the key."""
    name = c.op.params["AliasName"]
    try:
        c.api.call("CreateAlias", settle=c.settle, TargetKeyId=c.key_id, **c.op.params)
    except botocore.exceptions.ClientError as exc:
        if not _resolved(c, exc, ("AlreadyExistsException",)):
            raise
        aliases = c.api.paginate("ListAliases", "Aliases", KeyId=c.key_id, Limit=100)
        if not any(a.get("AliasName") == name for a in aliases):
            raise


def _cancel_deletion(c: Call) -> None:
    try:
        c.api.call("CancelKeyDeletion", settle=c.settle, KeyId=c.key_id, **c.op.params)
    except botocore.exceptions.ClientError as exc:
        if not _resolved(c, exc, ("KMSInvalidStateException",)):
            raise
        if _key_state(c).get("KeyState") == "PendingDeletion":
            raise


def _update_primary_region(c: Call) -> None:
    """UpdatePrimaryRegion (to the current primary's Region); after a resend, an error is
    fine when the key in the new Region is the primary already."""
    try:
        c.api.call("UpdatePrimaryRegion", settle=c.settle, KeyId=c.key_id, **c.op.params)
    except botocore.exceptions.ClientError as exc:
        if not resent(exc):
            raise
        config = _key_state(c).get("MultiRegionConfiguration") or {}
        if (config.get("PrimaryKey") or {}).get("Region") != c.op.params.get("PrimaryRegion"):
            raise


def _schedule_deletion(c: Call) -> None:
    try:
        response = c.api.call("ScheduleKeyDeletion", KeyId=c.key_id, **c.op.params)
    except botocore.exceptions.ClientError as exc:
        if not _resolved(c, exc, ("KMSInvalidStateException",)):
            raise
        response = _key_state(c)
        if response.get("KeyState") != "PendingDeletion":
            raise
    if not response.get("DeletionDate"):
        # Real KMS always answers with the date; a silent no-op must not pass as done.
        raise RuntimeError(
            "ScheduleKeyDeletion returned no DeletionDate: the key was not scheduled"
        )


class KeyMaterialError(Exception):
    """The key material could not be read or imported. The message names only the source."""


def read_key_material(source: str, root: str, encoding: str | None = None) -> bytes:
    """The material named by ``file PATH`` (relative to the inventory root) or ``env NAME``,
    decoded (``material.decode``: a file is ``binary`` and a variable ``base64`` unless
    the spec says otherwise).

    Errors name the source, never any part of the material.
    """
    kind, _, ref = source.partition(" ")
    if kind == "env":
        value = os.environ.get(ref)
        if not value:
            raise KeyMaterialError(f"key material source {source}: the variable is not set")
        data = value.encode()
    elif kind == "file":
        path = Path(root) / ref
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise KeyMaterialError(
                f"key material source {source}: cannot read {path} ({reason})"
            ) from None
        if not data:
            raise KeyMaterialError(f"key material source {source}: the file is empty")
    else:
        raise KeyMaterialError(
            f"key material source {source!r} is neither 'file ...' nor 'env ...'"
        )
    encoding = encoding or ("base64" if kind == "env" else "binary")
    try:
        return material.decode(data, encoding)
    except material.MaterialError as exc:
        raise KeyMaterialError(f"key material source {source} ({encoding}): {exc}") from None


def _prepared(params: Mapping[str, Any]) -> material.Prepared:
    """The op's material, read, decoded and checked against its key spec."""
    source = str(params["source"])
    data = read_key_material(
        source, str(params.get("root", ".")), str(params.get("encoding") or "") or None
    )
    spec = str(params.get("key_spec") or catalog.SYMMETRIC_DEFAULT)
    try:
        return material.prepare(data, spec)
    except material.MaterialError as exc:
        raise KeyMaterialError(f"key material source {source}: {exc}") from None


def check_key_material(plan: TargetPlan) -> list[str]:
    """Read the material of every import the plan makes, before any write: present,
    readable, decodable, and fit for its key spec (length of raw material; type and size of
    a private key). A problem found only after CreateKey would leave a key waiting in
    PendingImport. Messages name the source only."""
    problems = []
    for op in plan.operations:
        if op.kind is not OpKind.IMPORT_KEY_MATERIAL:
            continue
        try:
            _prepared(op.params)
        except KeyMaterialError as exc:
            problems.append(f"key '{op.key}': {exc}")
    return problems


def _import_key_material(c: Call) -> None:
    """GetParametersForImport, wrap the material locally, ImportKeyMaterial.

    The wrapping algorithm and wrapping key spec follow the key type (``material.prepare``).
    The material and the wrapped bytes stay in this function: no error, log line or event
    carries them (an exception from the crypto library is replaced by one naming the source).
    An error answering a resend is fine when the key is no longer waiting for material.
    """
    api, op, key_id = c.api, c.op, c.key_id
    source = str(op.params["source"])
    prepared = _prepared(op.params)
    params = api.call(
        "GetParametersForImport",
        settle=c.settle,
        KeyId=key_id,
        WrappingAlgorithm=prepared.wrapping_algorithm,
        WrappingKeySpec=prepared.wrapping_key_spec,
    )
    try:
        wrapped = material.wrap(params["PublicKey"], prepared)
    except material.MaterialError as exc:
        raise KeyMaterialError(f"key material source {source}: {exc}") from None
    except Exception:
        raise KeyMaterialError(
            f"key material source {source}: cannot wrap it with the KMS import public key "
            f"({prepared.wrapping_key_spec}, {prepared.wrapping_algorithm})"
        ) from None
    call: dict[str, Any] = {
        "KeyId": key_id,
        "ImportToken": params["ImportToken"],
        "EncryptedKeyMaterial": wrapped,
        "ExpirationModel": op.params["ExpirationModel"],
    }
    if op.params.get("ValidTo"):
        call["ValidTo"] = datetime.fromisoformat(str(op.params["ValidTo"]))
    for name in ("ImportType", "KeyMaterialDescription"):
        if op.params.get(name):
            call[name] = op.params[name]
    try:
        api.call("ImportKeyMaterial", **call)
    except botocore.exceptions.ClientError as exc:
        if not resent(exc) or _key_state(c).get("KeyState") == "PendingImport":
            raise
    except botocore.exceptions.ParamValidationError:
        # botocore's report quotes parameter values: it would show the wrapped material.
        raise KeyMaterialError(
            f"key material source {source}: ImportKeyMaterial refused its parameters"
        ) from None


def _rotate_to_new_material(c: Call) -> None:
    """RotateKeyOnDemand of an EXTERNAL key, after its new material was imported. A resend
    answered ConflictException (no material pending) is fine: the first attempt rotated."""
    try:
        c.api.call("RotateKeyOnDemand", KeyId=c.key_id)
    except botocore.exceptions.ClientError as exc:
        if not _resolved(c, exc, ("ConflictException",)):
            raise


def _delete_imported_material(c: Call) -> None:
    """DeleteImportedKeyMaterial. KMSInvalidStateException answering a resend is fine when
    the key already waits for material (PendingImport): the first attempt deleted it."""
    try:
        c.api.call("DeleteImportedKeyMaterial", KeyId=c.key_id)
    except botocore.exceptions.ClientError as exc:
        if not _resolved(c, exc, ("KMSInvalidStateException",)):
            raise
        if _key_state(c).get("KeyState") != "PendingImport":
            raise


# One handler per operation; how each behaves when its first attempt's outcome is unknown
# is said in its docstring (``_simple``: idempotent, resent as it is).
HANDLERS: Mapping[OpKind, Handler] = {
    OpKind.CANCEL_KEY_DELETION: _cancel_deletion,
    OpKind.CREATE_KEY: _create_key,
    OpKind.IMPORT_KEY_MATERIAL: _import_key_material,
    # ReplicateKey goes to the primary's Region (``op.region``); ReplicaRegion names the new
    # replica's. AlreadyExists after a resend: the first attempt made the replica.
    OpKind.REPLICATE_KEY: _simple("ReplicateKey", repeat_ok=("AlreadyExistsException",)),
    OpKind.ENABLE_KEY: _simple("EnableKey"),
    OpKind.UPDATE_PRIMARY_REGION: _update_primary_region,
    OpKind.UPDATE_KEY_DESCRIPTION: _simple("UpdateKeyDescription"),
    OpKind.PUT_KEY_POLICY: _simple("PutKeyPolicy"),
    OpKind.TAG_RESOURCE: _simple("TagResource"),
    OpKind.UNTAG_RESOURCE: _simple("UntagResource"),
    OpKind.ENABLE_KEY_ROTATION: _simple("EnableKeyRotation"),
    OpKind.DISABLE_KEY_ROTATION: _simple("DisableKeyRotation"),
    OpKind.CREATE_ALIAS: _create_alias,
    OpKind.UPDATE_ALIAS: _simple("UpdateAlias", key_param="TargetKeyId"),
    OpKind.CREATE_GRANT: _simple("CreateGrant"),
    # CreateGrant with a Name is idempotent in KMS (same name and parameters: same grant).
    OpKind.REVOKE_GRANT: _simple(
        "RevokeGrant", repeat_ok=("NotFoundException", "InvalidGrantIdException"), settles=False
    ),
    OpKind.DISABLE_KEY: _simple("DisableKey"),
    OpKind.ROTATE_KEY_ON_DEMAND: _rotate_to_new_material,
    OpKind.DELETE_IMPORTED_KEY_MATERIAL: _delete_imported_material,
    OpKind.DELETE_ALIAS: _simple(
        "DeleteAlias", key_param=None, repeat_ok=("NotFoundException",), settles=False
    ),
    OpKind.SCHEDULE_KEY_DELETION: _schedule_deletion,
}


# Every KMS operation this module calls: one per operation kind, the import's parameters,
# and the reads that resolve a lost answer (see ``reconciler.permissions``).
# RotateKeyOnDemand is not among them: apply rotates only keys whose spec names a new
# imported material version, and ``permissions`` adds it for inventories that do.
ROTATE_CALLS: frozenset[str] = frozenset({"RotateKeyOnDemand"})
CALLS: frozenset[str] = (
    frozenset(
        {kind.value for kind in OpKind}
        | {"GetParametersForImport", "DescribeKey", "ListAliases", "ListKeys", "ListResourceTags"}
    )
    - ROTATE_CALLS
)


def rotate_now(api: KmsApi, key_id: str) -> None:
    """Start an on-demand rotation of the key material (RotateKeyOnDemand, bare key ID).
    Never resent after an ambiguous failure: each call is a rotation, and KMS caps them."""
    api.call("RotateKeyOnDemand", resend=False, KeyId=key_id)


def describe_call(op: Operation, key_id: str | None) -> str:
    """The KMS call an operation makes, as one line (policies shortened to their size)."""
    params: dict[str, Any] = {}
    if op.kind in (OpKind.CREATE_ALIAS, OpKind.UPDATE_ALIAS):
        params["TargetKeyId"] = key_id or f"<id of new key {op.key}>"
    elif op.kind not in (OpKind.CREATE_KEY, OpKind.DELETE_ALIAS):
        params["KeyId"] = key_id or f"<id of new key {op.key}>"
    for name, value in op.params.items():
        if name in ("root", "key_spec"):
            continue
        if name == "Policy":
            params[name] = f"<{len(str(value).encode())}-byte policy>"
        else:
            params[name] = value
    where = f" [{op.region}]" if op.region else ""
    return f"{op.kind.value}{where} {json.dumps(params, separators=(', ', '='), default=str)[1:-1]}"


def _by_phase(ops: tuple[Operation, ...]) -> Iterator[list[Operation]]:
    for _, group in groupby(ops, key=lambda op: op.phase):
        yield list(group)


# Phases up to the grants build a key up; from DisableKey on (disable, alias deletions, key
# deletions) they take away.
_LAST_BUILDING_PHASE: Final = PHASES[OpKind.CREATE_GRANT]


def _stages(ops: tuple[Operation, ...]) -> tuple[list[Operation], list[Operation]]:
    """The operations run per key as a pipeline (the building phases), and those that wait
    until every key is built (disable, alias deletions, key deletions), each in plan order.

    A destructive operation of a building phase (a policy that removes access, an alias
    taken over, a grant revoked, a primary Region moved) stays in its key's pipeline: later
    operations of the same key depend on it (rotation is set on the new primary)."""
    pipelined = [op for op in ops if op.phase <= _LAST_BUILDING_PHASE]
    return pipelined, [op for op in ops if op.phase > _LAST_BUILDING_PHASE]


def _run_all(
    pool: ThreadPoolExecutor, run: Callable[[list[Operation]], None], groups: list[list[Operation]]
) -> None:
    futures = [pool.submit(run, group) for group in groups]
    wait(futures, return_when=FIRST_EXCEPTION)
    for future in futures:
        future.result()


def apply_target(
    plan: TargetPlan,
    api: KmsApi,
    *,
    on_event: Callable[[OpEvent], None] = lambda e: None,
    workers: int = 8,
    regional: Callable[[str], KmsApi] | None = None,
    identity_tag: str = DEFAULT_IDENTITY_TAG,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> ApplyResult:
    """Execute a target's operations in plan order; stop at the first failure.

    An operation with a ``region`` goes to that Region's client (``regional``). ``stop``
    set (by the thread that got Ctrl-C or SIGTERM, when this runs in a worker thread) is an
    interruption: operations under way finish, no new one starts."""
    finder = KeyFinder(identity_tag)
    result = ApplyResult(plan.target.name)
    started = time.monotonic()
    apis: dict[str | None, KmsApi] = {None: api}
    before: dict[str | None, int] = {None: api.total_calls}
    ids = {k.name: k.key_id for k in plan.keys if k.key_id}
    lock = threading.Lock()
    # The operations not yet done or failed, by identity: a list's remove() compared each
    # operation with every one before it (dataclass equality, params included), quadratic
    # in the plan's size (10,000 new keys: ~40 s of the apply's CPU, benchmarks/scaling.md).
    pending = {id(op) for op in plan.operations}
    settling: dict[str, Settle] = {}  # keys this run created, replicated or moved

    def api_for(region: str | None) -> KmsApi:
        with lock:
            if region not in apis:
                if regional is None:
                    raise RuntimeError(f"no KMS client for {region}")
                apis[region] = regional(region)  # type: ignore[arg-type]
                before[region] = apis[region].total_calls
            return apis[region]

    def run_key(ops: list[Operation]) -> None:
        for op in ops:
            with lock:
                if stop is not None and stop.is_set():
                    result.interrupted = True
                if result.failed or result.interrupted:
                    return
                key_id = op.key_id or ids.get(op.key) or result.created.get(op.key)
                settle = settling.get(op.key, NO_SETTLE)
            on_event(OpEvent("started", op, key_id))
            t0 = time.monotonic()
            try:
                call = Call(api_for(op.region), op, key_id, settle, finder, sleep)
                new_id = HANDLERS[op.kind](call)
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                _fail(op, key_id, error_message(exc), t0)
                return
            except AmbiguousOutcome as exc:
                _fail(op, key_id, str(exc), t0)
                return
            except Exception as exc:  # a fake or a crash: report it, never hide it
                _fail(op, key_id, f"{type(exc).__name__}: {exc}", t0)
                return
            with lock:
                if new_id:
                    result.created[op.key] = new_id
                    key_id = new_id
                if op.kind in SETTLING and settling.get(op.key) is not AFTER_REPLICATION:
                    settling[op.key] = SETTLING[op.kind]
                result.done.append(op)
                pending.discard(id(op))
            on_event(OpEvent("done", op, key_id, time.monotonic() - t0))

    def _fail(op: Operation, key_id: str | None, message: str, t0: float) -> None:
        with lock:
            result.failed.append((op, message))
            pending.discard(id(op))
        on_event(OpEvent("failed", op, key_id, time.monotonic() - t0, message))

    pipelined, phased = _stages(plan.operations)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            # 1. Each key's building operations in plan order, keys side by side: a key's
            # EnableKeyRotation and CreateAlias follow its own CreateKey, not every key's,
            # so every operation family works at its own quota at once.
            chains: dict[str, list[Operation]] = {}
            for op in pipelined:
                chains.setdefault(op.key, []).append(op)
            _run_all(pool, run_key, list(chains.values()))
            # 2. Only when every key is built: what takes keys and aliases away, by phase.
            for phase_ops in _by_phase(tuple(phased)):
                if result.failed or result.interrupted:
                    break
                if stop is not None and stop.is_set():
                    result.interrupted = True
                    break
                per_key: dict[str, list[Operation]] = {}
                for op in phase_ops:
                    per_key.setdefault(op.key, []).append(op)
                _run_all(pool, run_key, list(per_key.values()))
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM from a cancelled CI job
            with lock:
                result.interrupted = True  # operations under way finish; no new one starts
    result.not_run = [op for op in plan.operations if id(op) in pending]
    result.seconds = time.monotonic() - started
    result.calls = sum(a.total_calls - before[r] for r, a in apis.items())
    return result
