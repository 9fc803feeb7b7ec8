"""What every command shares: the common options, the run's settings, loading the
inventory, observing a target, running targets side by side, the apply lock, reports."""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.aws import (
    AwsOptions,
    Connection,
    retry_settings,
    sandbox_session,
)
from reconciler.catalog import DISCOVERY_TAGGING_API
from reconciler.commands.progress import StatusLine, status_line
from reconciler.desired import build_desired, select_targets, target_weights
from reconciler.errors import (
    EXIT_OK,
    ApplyRefusedError,
    AwsError,
    InputError,
    Problem,
    ReconcilerError,
)
from reconciler.loader import Inventory, load_inventory_partial
from reconciler.shards import (
    DEFAULT_TARGETS_AT_ONCE,
    ShardRef,
    parse_shard,
    shard_of,
    split_parallelism,
)
from reconciler.state import (
    DesiredTarget,
    KeyUsage,
    LockStatus,
    ObservedTarget,
)

if TYPE_CHECKING:  # imported where used: validate and the other offline commands need none
    from reconciler import usage
    from reconciler.lock import Lock
    from reconciler.plan import TargetPlan
    from reconciler.planner import PlanOptions

F = TypeVar("F", bound=Callable[..., Any])


QUOTA_SCALE_ENV = "KMS_RECONCILER_QUOTA_SCALE"
# "botocore": every request through botocore, none through the lean read path
# (reconciler.wire); for comparing the two, or if a network setting needs botocore's.
REQUEST_PATH_ENV = "KMS_RECONCILER_REQUEST_PATH"
# The run's clock, instead of the system's: an ISO 8601 date or time. For tests (staged
# retirement across simulated dates) and what-if plans ("what would the plan do on ...").
NOW_ENV = "KMS_RECONCILER_NOW"


_COLOURS = {
    "green": {"fg": "green"},
    "yellow": {"fg": "yellow"},
    "red": {"fg": "red"},
    "cyan": {"fg": "cyan"},
    "magenta": {"fg": "magenta"},
    "bold": {"bold": True},
    "dim": {"dim": True},
    "reset": {},
}


@dataclass
class Run:
    """What every command needs: the inventory path, target selection, AWS options, output."""

    path: Path
    target_names: tuple[str, ...]
    region: str | None
    aws: AwsOptions
    colour: bool
    verbosity: int
    shard: ShardRef | None = None  # --shard I/N: only that shard's targets
    parallelism: int | None = None  # --parallelism N: KMS calls in flight in the run
    # the status line on a terminal (disabled elsewhere); every line printed while targets
    # are read or applied goes through progress.echo
    progress: StatusLine = field(default_factory=lambda: StatusLine(False))
    clock: datetime | None = None  # KMS_RECONCILER_NOW (None: the system clock)

    def now(self) -> datetime:
        """The run's time: the system clock, unless KMS_RECONCILER_NOW sets it."""
        return self.clock or datetime.now(timezone.utc)

    def style(self, text: str, colour: str) -> str:
        return click.style(text, **_COLOURS[colour]) if self.colour else text  # type: ignore[arg-type]

    def info(self, message: str) -> None:
        """Progress and figures for humans: stderr, silenced by -q."""
        if self.verbosity >= 0:
            self.progress.echo(message, err=True)


def common_options(func: F) -> F:
    """The options every command shares (DESIGN section 6)."""

    @click.option("--target", "targets", multiple=True, help="Run only this target (repeatable).")
    @click.option("--region", default=None, help="Run only the targets in this Region.")
    @click.option("--profile", default=None, envvar="AWS_PROFILE", help="AWS profile to use.")
    @click.option(
        "--endpoint-url",
        default=None,
        envvar="AWS_ENDPOINT_URL_KMS",
        help="KMS endpoint (a VPC endpoint, or a local emulator).",
    )
    @click.option(
        "--sandbox",
        is_flag=True,
        help="Run against the embedded moto KMS; state persists in .kms-sandbox/.",
    )
    @click.option(
        "--color/--no-color",
        "colour",
        default=None,
        help="Colour; --color also when piped (default: on a terminal, unless NO_COLOR is set "
        "or TERM=dumb).",
    )
    @click.option(
        "-v",
        "--verbose",
        count=True,
        help="More detail: -v calls and retries by operation, -vv also the lock, -vvv every "
        "AWS request (as KMS_RECONCILER_LOG=debug).",
    )
    @click.option("-q", "--quiet", is_flag=True, help="Only results and errors.")
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        targets: tuple[str, ...],
        region: str | None,
        profile: str | None,
        endpoint_url: str | None,
        sandbox: bool,
        colour: bool | None,
        verbose: int,
        quiet: bool,
        **kwargs: Any,
    ) -> Any:
        try:
            run = Run(
                path=Path(kwargs.pop("path", None) or "keyspecs"),
                target_names=targets,
                region=region,
                aws=AwsOptions(
                    profile=profile,
                    endpoint_url=None if sandbox else endpoint_url,
                    sandbox=sandbox,
                    quota_scale=_quota_scale(),
                    max_attempts=retry_settings(os.environ),
                    lean_reads=_lean_reads(os.environ),
                ),
                colour=colour_default(sys.stdout.isatty(), os.environ)
                if colour is None
                else colour,
                verbosity=-1 if quiet else verbose,
                progress=status_line(-1 if quiet else verbose),
                clock=clock_of(os.environ),
            )
            configure_logging(run.verbosity, os.environ)
            if run.clock is not None:
                run.info(
                    f"clock: {NOW_ENV}={run.clock.isoformat()}: dates are reckoned from that "
                    "time, not from the system clock"
                )
            context = click.get_current_context(silent=True)
            if context is not None:
                context.color = run.colour  # --color keeps colour when piped (CI logs)
            with sandbox_session() if sandbox else nullcontext():
                code = func(run, *args, **kwargs)
        except ReconcilerError as exc:
            for line in exc.lines():
                click.echo(f"error: {line}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code or EXIT_OK)

    return wrapper  # type: ignore[return-value]


LOG_ENV = "KMS_RECONCILER_LOG"
LOG_FILE_ENV = "KMS_RECONCILER_LOG_FILE"
_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(verbosity: int, environ: Mapping[str, str]) -> None:
    """``KMS_RECONCILER_LOG=debug`` (like ``TF_LOG``) or ``-vvv`` logs every AWS request to
    stderr, or to ``KMS_RECONCILER_LOG_FILE``; -v and -vv are the tool's own detail."""
    raw = environ.get(LOG_ENV, "").strip().lower()
    if raw and raw not in _LOG_LEVELS:
        raise InputError(
            Problem(f"must be one of {', '.join(_LOG_LEVELS)}, not {raw!r}", field=LOG_ENV)
        )
    level = _LOG_LEVELS.get(raw) or (logging.DEBUG if verbosity >= 3 else None)
    logger = logging.getLogger("kms_reconciler")
    for old in [h for h in logger.handlers if getattr(h, "_kms_reconciler", False)]:
        logger.removeHandler(old)
        old.close()
    if level is None:
        return
    path = environ.get(LOG_FILE_ENV)
    try:
        handler: logging.Handler = (
            logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler()
        )
    except OSError as exc:
        raise InputError(
            Problem(f"cannot write the log {path}: {exc.strerror or exc}", field=LOG_FILE_ENV)
        ) from None
    handler._kms_reconciler = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s kms-reconciler %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


key_option = click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="NAME",
    help="Plan only this key (repeatable; Terraform's -target): the other keys and orphans "
    "are left out, and the plan says it is partial.",
)


parallelism_option = click.option(
    "--parallelism",
    type=click.IntRange(1, 256),
    default=None,
    help="KMS calls in flight. One target: N reads in flight while reading, N keys changed "
    "side by side while applying (default: reads sized from the read quota and the measured "
    "round trip, 16 to 128; 8 keys). Several targets (a --shard, or no --target) share N: up "
    "to N/4 run side by side, each with an equal share of N (default: up to 8 targets at "
    "once). Every call is still paced to its target's quota.",
)


def with_parallelism(run: Run, parallelism: int | None) -> None:
    run.parallelism = parallelism
    if parallelism is not None:
        run.aws = replace(run.aws, workers=parallelism, apply_workers=parallelism)


def side_by_side(run: Run, targets: int) -> int:
    """How many of the run's ``targets`` run at once; with ``--parallelism`` the targets
    share it (``shards.split_parallelism``), so each one's reads and key changes are cut to
    its share. Call before any target starts."""
    split = split_parallelism(run.parallelism, targets)
    if split.per_target is not None:
        run.aws = replace(run.aws, workers=split.per_target, apply_workers=split.per_target)
    return split.targets_at_once


shard_option = click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Run only shard I of N: the targets that 'targets --format github-matrix "
    "--max-jobs N' lists in entry I (after --region), side by side in this one run. Not "
    "with --target.",
)


def with_shard(run: Run, shard: str | None) -> None:
    """Check ``--shard`` (before anything is read) and keep it for ``load``."""
    if shard is None:
        return
    if run.target_names:
        raise InputError(
            Problem(
                "give --shard or --target, not both (a shard names its targets)", field="--shard"
            )
        )
    run.shard = parse_shard(shard)


def only_keys(desired: list[DesiredTarget], keys: tuple[str, ...]) -> list[DesiredTarget]:
    """The targets' desired state cut down to the ``--key`` names (every name must exist)."""
    if not keys:
        return desired
    known = {dk.name for dt in desired for dk in dt.keys}
    unknown = sorted(set(keys) - known)
    if unknown:
        raise InputError(
            Problem(
                f"no key named {', '.join(repr(k) for k in unknown)} in the selected targets",
                field="--key",
            )
        )
    cut = [replace(dt, keys=tuple(dk for dk in dt.keys if dk.name in keys)) for dt in desired]
    return [dt for dt in cut if dt.keys]


def colour_default(tty: bool, environ: Mapping[str, str]) -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` is set (no-color.org) or ``TERM=dumb``."""
    return tty and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"


def clock_of(environ: Mapping[str, str]) -> datetime | None:
    """``KMS_RECONCILER_NOW``: a date (its start, UTC) or a time (UTC unless it says)."""
    raw = environ.get(NOW_ENV, "").strip()
    if not raw:
        return None
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), timezone.utc)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            Problem(
                f"must be an ISO 8601 date or time (2027-01-15, 2027-01-15T09:30:00Z), not {raw!r}",
                field=NOW_ENV,
            )
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _quota_scale() -> float:
    raw = os.environ.get(QUOTA_SCALE_ENV, "1")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise InputError(Problem(f"must be a positive number, not {raw!r}", field=QUOTA_SCALE_ENV))
    return value


def _lean_reads(environ: Mapping[str, str]) -> bool:
    raw = environ.get(REQUEST_PATH_ENV, "").strip()
    if raw not in ("", "lean", "botocore"):
        raise InputError(
            Problem(
                f"must be 'lean' (the default) or 'botocore', not {raw!r}", field=REQUEST_PATH_ENV
            )
        )
    return raw != "botocore"


# A PATH that is not a folder is reported by the loader, in its one line.
path_argument = click.argument("path", required=False, type=click.Path(path_type=Path))


def load(run: Run) -> tuple[Inventory, list[DesiredTarget]]:
    """The inventory and its desired state per selected target; every problem at once."""
    inventory, problems = load_inventory_partial(run.path)
    if inventory is None:
        raise InputError(problems)
    _with_quotas(run, inventory)
    targets = select_targets(inventory, run.target_names)
    if run.region:
        targets = [t for t in targets if t.region == run.region]
        if not targets:
            raise InputError(Problem(f"no target in Region {run.region}", field="--region"))
    if run.shard is not None:
        chosen = set(shard_of(target_weights(inventory, targets), run.shard))
        run.info(
            f"shard {run.shard}: {len(chosen)} of {len(targets)} target(s)"
            + (": " + ", ".join(t.name for t in targets if t.name in chosen) if chosen else "")
        )
        targets = [t for t in targets if t.name in chosen]
    try:
        desired = build_desired(inventory, targets)
    except InputError as exc:
        problems += exc.problems
    if problems:
        raise InputError(problems)
    return inventory, desired


def _with_quotas(run: Run, inventory: Inventory) -> None:
    """The inventory's settings for reaching AWS: request quotas, discovery."""
    quotas = inventory.settings.request_quotas
    if quotas:
        run.aws = replace(run.aws, quota_overrides=dict(quotas))
    run.aws = replace(run.aws, discovery=inventory.settings.discovery)


def expected_tags(desired: DesiredTarget) -> dict[str, dict[str, str]]:
    """Name -> the tags its key has when nothing is to change: the spec's tags, the identity
    tag, and the deletion protection tag when on (as the planner sets them). Tags from the
    tagging API are trusted only when they are exactly these (``observe``): a tag the
    planner would want that this leaves out (a retiring key's retire tag) only costs a
    ListResourceTags for that key, never a change."""
    out = {}
    for dk in desired.keys:
        tags = {**dk.state.tags, desired.identity_tag: dk.name}
        if dk.state.deletion_protection:
            tags[desired.protection_tag] = "true"
        out[dk.name] = tags
    return out


def observe(
    run: Run,
    desired: DesiredTarget,
    conn: Connection,
    *,
    describe_unmanaged: bool = False,
    wanted: tuple[str, ...] = (),
    rotation_history: bool = False,
    grants_for: frozenset[str] | None = None,
    grants: bool = True,
    details_for_all: bool = False,
    regions: tuple[str, ...] | None = None,
    own_lock: str = "",
) -> ObservedTarget:
    from reconciler.observe import ObserveOptions, observe_target

    started = time.monotonic()
    wanted = wanted + tuple(dk.adopt for dk in desired.keys if dk.adopt)
    by_tagging_api = run.aws.discovery == DISCOVERY_TAGGING_API
    try:
        observed = observe_target(
            conn.kms,
            desired.target,
            ObserveOptions(
                identity_tag=desired.identity_tag,
                wanted=wanted,
                describe_unmanaged=describe_unmanaged,
                rotation_history=rotation_history,
                grants_for=grants_for,
                grants=grants,
                details_for_all=details_for_all,
                regions=desired.replica_regions if regions is None else regions,
                workers=run.aws.workers,
                progress=functools.partial(run.progress.update, desired.target.name),
                expected_tags=expected_tags(desired) if by_tagging_api else None,
            ),
            caller_arn=conn.caller_arn,
            regional=conn.kms_in,
            tagging=conn.tagging() if by_tagging_api else None,
        )
    finally:
        run.progress.done(desired.target.name)
    managed = sum(1 for k in observed.keys if desired.identity_tag in k.tags)
    run.info(
        f"{desired.target.name}: read {len(observed.keys)} customer key(s), {managed} managed, "
        f"with {observed.read_calls} KMS calls in {time.monotonic() - started:.2f}s"
    )
    if run.verbosity > 0:
        calls = ", ".join(f"{op} {n}" for op, n in sorted(observed.stats.items()))
        run.info(f"{desired.target.name}: calls by operation: {calls}")
        show_retries(run, desired.target.name, conn)
    status = observed.lock
    if status is not None and (not own_lock or status.lock_id != own_lock):
        run.info(f"{desired.target.name}: the apply lock is {status}")
    return observed


def freeze_inputs() -> None:
    """Take what is alive now (a target's desired and observed states: they live until the
    process exits) out of the cyclic collector's passes, before planning, when the CLI
    froze its imports (``gc.get_freeze_count()``: the run is the whole process).

    At 10,000 keys the inputs are some 285,000 container objects; a plan that changes many
    keys makes enough of its own to set off a full collection, which walks them all (0.25
    to 0.33 s of a 10% drift plan's CPU, benchmarks/planner.md) and frees none of them.
    Frozen, a full collection walks only the plan's objects. Refcounting still frees a
    frozen object that dies; only cyclic garbage alive at this point is kept to the end.
    In another process (a test's CliRunner) nothing is frozen: its garbage must go."""
    if gc.get_freeze_count():
        gc.freeze()


def _read_usage(
    run: Run, name: str, conn: Connection, refs: Sequence[usage.UsageRef]
) -> tuple[tuple[KeyUsage, ...], int]:
    """GetKeyLastUsage for ``refs``, as of the run's clock."""
    from reconciler import usage
    from reconciler.observe import read_usage

    try:
        found, calls = read_usage(
            conn.kms_in,
            refs,
            run.aws.workers,
            functools.partial(run.progress.update, name),
        )
    finally:
        run.progress.done(name)
    if run.clock is not None:
        found = usage.as_of(found, run.clock)
    return found, calls


def retiring_usage(
    run: Run, dt: DesiredTarget, observed: ObservedTarget, conn: Connection
) -> tuple[tuple[KeyUsage, ...], int]:
    """The last use of the managed keys whose spec declares ``retire:`` (read before
    planning: the retirement's stage depends on it); nothing when no spec does."""
    from reconciler import retire

    refs = retire.usage_refs(dt, observed)
    if not refs:
        return (), 0
    found, calls = _read_usage(run, dt.target.name, conn, refs)
    run.info(
        f"{dt.target.name}: read the last use of {len(found)} key(s) with retire: declared, "
        f"with {calls} KMS calls"
    )
    return found, calls


def retiring_options(options: PlanOptions, run: Run, known: Sequence[KeyUsage]) -> PlanOptions:
    """Plan options with the retiring keys' usage and the run's clock."""
    from reconciler import retire

    return replace(options, usage=retire.by_key(list(known)), now=run.now())


def with_usage(
    run: Run,
    tp: TargetPlan,
    conn: Connection,
    known: Sequence[KeyUsage] = (),
    known_reads: int = 0,
) -> TargetPlan:
    """The target plan with the last use of the keys it retires or restricts
    (GetKeyLastUsage for those keys only: a plan without such a change reads nothing);
    ``known``: what was read already (the keys with ``retire:``), not read again."""
    from reconciler import usage

    have = {(u.key_id, u.region) for u in known}
    refs = tuple(ref for ref in usage.needed(tp) if ref not in have)
    if not refs:
        return usage.annotate(tp, known, known_reads)
    name = tp.target.name
    found, calls = _read_usage(run, name, conn, refs)
    run.info(
        f"{name}: read the last use of {len(found)} key(s) the plan retires or restricts, "
        f"with {calls} KMS calls"
    )
    return usage.annotate(tp, (*known, *found), known_reads + calls)


T = TypeVar("T")


@dataclass
class Locks:
    """The apply locks a writing command holds, one per target (``timeout`` None: it takes
    none, as a dry run writes nothing)."""

    run: Run
    timeout: float | None
    held: list[Lock] = field(default_factory=list)
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    def take(self, conn: Connection) -> str:
        """Take the target's lock (waiting up to the timeout); its lock ID, or ""."""
        from reconciler.lock import acquire, holder_of

        if self.timeout is None:
            return ""
        name = conn.target.name

        def waiting(status: LockStatus) -> None:
            self.run.info(
                f"{name}: the apply lock is {status}; waiting up to {self.timeout:g}s for it"
            )

        lock = acquire(conn.kms, name, holder_of(conn.caller_arn), self.timeout, on_wait=waiting)
        with self._mutex:
            self.held.append(lock)
        if self.run.verbosity > 1:
            self.run.info(f"{name}: took the apply lock (lock ID {lock.lock_id})")
        return lock.lock_id

    def release_all(self) -> list[str]:
        errors = []
        for lock in self.held:
            try:
                lock.release()
            except ReconcilerError as exc:
                errors.append(str(exc))
        self.held.clear()
        return errors


@contextmanager
def locking(run: Run, timeout: float | None) -> Iterator[Locks]:
    """Locks taken in the block are released when it ends, however it ends."""
    locks = Locks(run, timeout)
    try:
        yield locks
    except BaseException:
        for error in locks.release_all():
            click.echo(f"error: {error}", err=True)
        raise
    errors = locks.release_all()
    if errors:
        raise AwsError("\n".join(errors))


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """``--lock-timeout``: seconds, or a number with s, m or h (Terraform's form: 30s, 5m)."""
    text = value.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], 0)
    number = text[:-1] if scale else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 24 * 3600:
        raise click.BadParameter(f"{value!r} is not a duration such as 0, 90, 30s, 5m or 1h")
    return seconds


lock_timeout_option = click.option(
    "--lock-timeout",
    default="0",
    callback=_duration,
    show_default=True,
    help="How long to wait for the target's apply lock when another run holds it "
    "(30s, 5m); 0 refuses at once.",
)


Failures = list[tuple[str, ReconcilerError]]


def each_target(
    targets: Sequence[DesiredTarget],
    work: Callable[[DesiredTarget], T],
    at_once: int = DEFAULT_TARGETS_AT_ONCE,
) -> tuple[list[T], Failures]:
    """Run ``work`` for every target side by side, ``at_once`` at a time; results in the
    targets' order; one target's failure never hides the results of the others."""
    with ThreadPoolExecutor(max_workers=max(1, min(at_once, len(targets)))) as pool:
        futures = [(dt.target.name, pool.submit(work, dt)) for dt in targets]
    results: list[T] = []
    failures: Failures = []
    for name, future in futures:
        try:
            results.append(future.result())
        except ReconcilerError as exc:
            failures.append((name, exc))
    return results, failures


class InOrder:
    """Output of targets that run side by side: each target's lines are kept and printed
    whole, in the targets' order, as soon as that target and every one before it is done,
    so no two targets' lines interleave."""

    def __init__(self, count: int, echo: Callable[..., None] = click.echo) -> None:
        self._echo = echo  # the run's progress.echo keeps lines off the status line
        self._blocks: list[list[tuple[str, bool]] | None] = [None] * count
        self._next = 0
        self._lock = threading.Lock()

    def done(self, index: int, lines: list[tuple[str, bool]]) -> None:
        """Target ``index`` is done: its ``(line, to stderr)`` lines, in order."""
        with self._lock:
            self._blocks[index] = lines
            while self._next < len(self._blocks):
                block = self._blocks[self._next]
                if block is None:
                    return
                for line, err in block:
                    self._echo(line, err=err)
                self._next += 1


def report_failures(failures: Failures) -> None:
    for name, exc in failures:
        prefix = f"target '{name}': "
        for line in exc.lines():
            click.echo(f"error: {prefix}{line.removeprefix(prefix)}", err=True)


def write_report(path: Path, text: str) -> None:
    """Write a ``--report`` file, making its folder; a failure is one clear error line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(
            Problem(f"cannot write the report {path}: {exc.strerror or exc}", field="--report")
        ) from None


def parse_reports(values: tuple[str, ...], formats: Mapping[str, object]) -> list[tuple[str, Path]]:
    """``--report FORMAT=FILE`` values, checked before any work is done."""
    known = sorted({"text", *formats})
    out = []
    for value in values:
        fmt, sep, path = value.partition("=")
        if not sep or fmt not in known or not path:
            raise InputError(
                Problem(
                    f"'{value}' is not FORMAT=FILE with FORMAT one of {', '.join(known)}",
                    field="--report",
                )
            )
        out.append((fmt, Path(path)))
    return out


def confirm_count(count: int, what: str) -> None:
    if not sys.stdin.isatty():
        raise ApplyRefusedError(
            "this needs --auto-approve when it cannot ask (no terminal); nothing was changed"
        )
    answer = click.prompt(
        f"Make these {count} {what}? Only 'yes' is accepted", default="", show_default=False
    )
    if answer.strip() != "yes":
        raise ApplyRefusedError("cancelled; nothing was changed")


def show_retries(run: Run, target: str, conn: Connection) -> None:
    """With -v: the retries of every call so far, by operation and reason."""
    retries = conn.retries
    if run.verbosity > 0 and retries:
        shown = ", ".join(f"{what} {n}" for what, n in sorted(retries.items()))
        run.info(f"{target}: retries: {shown}")
