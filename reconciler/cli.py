"""The command line: wires loader -> desired -> observe -> planner -> formatters / applier.

Exit codes: 0 success or no changes; 1 error (bad input, AWS error, refused apply);
2 changes present (``plan --detailed-exitcode``). Errors go to stderr, one line each.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import __version__, catalog, formatters, gitrefs, permissions
from reconciler import rules as rules_module
from reconciler.applier import (
    ApplyResult,
    OpEvent,
    apply_target,
    check_key_material,
    describe_call,
    rotate_now,
)
from reconciler.aws import (
    AwsOptions,
    Connection,
    connect,
    error_message,
    retry_settings,
    sandbox_session,
)
from reconciler.desired import build_desired, select_targets
from reconciler.drift import DriftReport, TargetDrift, detect, ignored_unreadable, is_ignored
from reconciler.errors import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    ApplyFailedError,
    ApplyRefusedError,
    AwsError,
    InputError,
    Problem,
    ReconcilerError,
    StalePlanError,
)
from reconciler.findings import Severity
from reconciler.formatters import drift as drift_formats
from reconciler.formatters.drift import DRIFT_FORMATS
from reconciler.formatters.review import REVIEW_FORMATS
from reconciler.importer import plan_imports
from reconciler.loader import Inventory, load_inventory, load_inventory_partial
from reconciler.lock import Lock, acquire, force_unlock, holder_of
from reconciler.lock import inspect as inspect_lock
from reconciler.observe import ObserveOptions, observe_target
from reconciler.plan import Action, Plan, TargetPlan, from_dict
from reconciler.planner import PlanOptions, make_plan
from reconciler.review import (
    KeyChange,
    Locate,
    ReviewFinding,
    compare,
    context_for,
    live_findings,
    with_findings,
)
from reconciler.review import review as run_review
from reconciler.state import (
    DesiredTarget,
    LockStatus,
    ObservedKey,
    ObservedTarget,
    TargetInfo,
    fingerprint,
    is_lock_anchor,
)

F = TypeVar("F", bound=Callable[..., Any])

QUOTA_SCALE_ENV = "KMS_RECONCILER_QUOTA_SCALE"

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

    def style(self, text: str, colour: str) -> str:
        return click.style(text, **_COLOURS[colour]) if self.colour else text  # type: ignore[arg-type]

    def info(self, message: str) -> None:
        """Progress and figures for humans: stderr, silenced by -q."""
        if self.verbosity >= 0:
            click.echo(message, err=True)


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
    @click.option("--color/--no-color", "colour", default=None, help="Colour (default: on a TTY).")
    @click.option("-v", "--verbose", count=True, help="More detail (repeatable).")
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
                ),
                colour=sys.stdout.isatty() if colour is None else colour,
                verbosity=-1 if quiet else verbose,
            )
            with sandbox_session() if sandbox else nullcontext():
                code = func(run, *args, **kwargs)
        except ReconcilerError as exc:
            for line in exc.lines():
                click.echo(f"error: {line}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code or EXIT_OK)

    return wrapper  # type: ignore[return-value]


def _quota_scale() -> float:
    raw = os.environ.get(QUOTA_SCALE_ENV, "1")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise InputError(Problem(f"must be a positive number, not {raw!r}", field=QUOTA_SCALE_ENV))
    return value


# A PATH that is not a folder is reported by the loader, in its one line.
path_argument = click.argument("path", required=False, type=click.Path(path_type=Path))


DEBUG_ENV = "KMS_RECONCILER_DEBUG"


class ExitCodeGroup(click.Group):
    """click, with the tool's exit codes: a usage error (unknown option, bad choice, missing
    argument) is an input error, exit 1 in one ``error:`` line; 2 means only "changes
    present", "drift found" or "blocking findings" (click's own usage code is 2)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        # SIGTERM (a cancelled CI job) interrupts like Ctrl-C: operations under way finish,
        # nothing new starts, and the apply lock is released on the way out.
        previous = _on_sigterm(_interrupt)
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo(
                "error: interrupted; calls already made stay made: run it again (apply plans "
                "from what KMS holds and converges)",
                err=True,
            )
            sys.exit(EXIT_ERROR)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
                click.echo(ctx.get_help(), err=True)  # no command given: the help
            else:
                click.echo(f"error: {_usage_line(exc)}", err=True)
            sys.exit(EXIT_ERROR)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a bug: one line, the traceback only on request
            if os.environ.get(DEBUG_ENV):
                raise
            click.echo(
                f"error: internal error: {type(exc).__name__}: {str(exc)[:300]} (set "
                f"{DEBUG_ENV}=1 for the traceback, and please report it)",
                err=True,
            )
            sys.exit(EXIT_ERROR)
        finally:
            _on_sigterm(previous)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _on_sigterm(handler: Any) -> Any:
    """Install a SIGTERM handler (the main thread only can); the one it replaces."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def _usage_line(exc: click.ClickException) -> str:
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return message
    return f"{ctx.command_path}: {message} (see '{ctx.command_path} --help')"


@click.group(cls=ExitCodeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kms-reconciler")
def main() -> None:
    """Keep AWS KMS keys in git: validate, plan and apply key specs under keyspecs/."""


# -- offline commands ---------------------------------------------------------------------


def _load(run: Run) -> tuple[Inventory, list[DesiredTarget]]:
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
    try:
        desired = build_desired(inventory, targets)
    except InputError as exc:
        problems += exc.problems
    if problems:
        raise InputError(problems)
    return inventory, desired


def _with_quotas(run: Run, inventory: Inventory) -> None:
    quotas = inventory.settings.request_quotas
    if quotas:
        run.aws = replace(run.aws, quota_overrides=dict(quotas))


@main.command()
@path_argument
@common_options
def validate(run: Run) -> int:
    """Check specs, templates and policies offline. Reports every problem at once."""
    inventory, desired = _load(run)
    keys = sum(len(d.keys) for d in desired)
    click.echo(
        f"{run.path}: valid. {len(inventory.keys)} key spec(s), {keys} key(s) "
        f"across {len(desired)} target(s), every policy rendered."
    )
    return EXIT_OK


@main.command()
@path_argument
@click.option("--key", "keys", multiple=True, help="Only this key (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@common_options
def render(run: Run, keys: tuple[str, ...], fmt: str) -> int:
    """Show the desired state and rendered policies, offline."""
    inventory = load_inventory(run.path)
    targets = select_targets(inventory, run.target_names)
    known = {k.spec.name for k in inventory.keys}
    for name in keys:
        if name not in known:
            raise InputError(Problem(f"no key named '{name}' in {run.path}", field="--key"))
    desired = build_desired(inventory, targets, key_names=keys)
    documents = []
    for dt in desired:
        for dk in dt.keys:
            s = dk.state
            documents.append(
                {
                    "target": dt.target.name,
                    "account_id": dt.target.account_id,
                    "region": dt.target.region,
                    "name": s.name,
                    "source": f"{dk.source.file}:{dk.source.line}",
                    "description": s.description,
                    "key_spec": s.key_spec,
                    "key_usage": s.key_usage,
                    "origin": s.origin,
                    "multi_region": s.multi_region,
                    "enabled": s.enabled,
                    "rotation": {
                        "enabled": s.rotation_enabled,
                        "period_days": s.rotation_period_days,
                    },
                    "aliases": sorted(s.aliases),
                    "tags": dict(s.tags),
                    "deletion_window_days": dk.deletion_window_days,
                    "deletion_protection": s.deletion_protection,
                    "grants": {g.name: g.text for g in s.grants or ()},
                    "grants_purge": dk.grants_purge,
                    "policy_source": dk.source.policy_origin,
                    "policy": s.policy,
                }
            )
    if fmt == "json":
        click.echo(json.dumps({"format_version": 1, "keys": documents}, indent=2))
        return EXIT_OK
    for doc in documents:
        policy = doc.pop("policy")
        click.echo(run.style(f"# {doc['target']} / {doc['name']}  ({doc.pop('source')})", "bold"))
        for field_name, value in doc.items():
            if field_name not in ("target", "name"):
                click.echo(f"{field_name}: {json.dumps(value)}")
        click.echo("policy:")
        click.echo(json.dumps(policy, indent=2))
        click.echo("")
    return EXIT_OK


@main.command()
@path_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github-matrix"]),
    default="text",
)
@common_options
def targets(run: Run, fmt: str) -> int:
    """List the inventory's targets (github-matrix: JSON for a strategy.matrix)."""
    inventory = load_inventory(run.path)
    chosen = select_targets(inventory, run.target_names)
    if run.region:
        chosen = [t for t in chosen if t.region == run.region]
    rows = [
        {
            "target": t.name,
            "account_id": t.account_id,
            "region": t.region,
            "role_arn": t.role_arn,
            "plan_role_arn": t.plan_role_chain[-1] if t.plan_role_chain else t.role_arn,
        }
        for t in chosen
    ]
    if fmt == "json":
        click.echo(json.dumps({"format_version": 1, "targets": rows}, indent=2))
    elif fmt == "github-matrix":
        click.echo(json.dumps({"include": rows}, separators=(",", ":")))
    else:
        for row in rows:
            click.echo(f"{row['target']}\t{row['account_id']}\t{row['region']}")
    return EXIT_OK


@main.command("permissions")
@path_argument
@click.option(
    "--for",
    "command",
    type=click.Choice(sorted(permissions.COMMANDS)),
    default="apply",
    show_default=True,
    help="The command whose role the policy is for: plan, drift, import and review read "
    "(plan_role_arn); apply, rotate and force-unlock write (role_arn).",
)
@common_options
def permissions_(run: Run, command: str) -> int:
    """Print the least IAM policy (JSON) a command's role needs in the selected targets."""
    _, desired = _load(run)
    accounts = [(dt.target.partition, dt.target.account_id) for dt in desired]
    click.echo(json.dumps(permissions.policy(command, accounts), indent=2))
    return EXIT_OK


# -- plan ---------------------------------------------------------------------------------


def _observe(
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
    started = time.monotonic()
    wanted = wanted + tuple(dk.adopt for dk in desired.keys if dk.adopt)
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
        ),
        caller_arn=conn.caller_arn,
        regional=conn.kms_in,
    )
    managed = sum(1 for k in observed.keys if desired.identity_tag in k.tags)
    run.info(
        f"{desired.target.name}: read {len(observed.keys)} customer key(s), {managed} managed, "
        f"with {observed.read_calls} KMS calls in {time.monotonic() - started:.2f}s"
    )
    if run.verbosity > 0:
        calls = ", ".join(f"{op} {n}" for op, n in sorted(observed.stats.items()))
        run.info(f"{desired.target.name}: calls by operation: {calls}")
        _show_retries(run, desired.target.name, conn)
    status = observed.lock
    if status is not None and (not own_lock or status.lock_id != own_lock):
        run.info(f"{desired.target.name}: the apply lock is {status}")
    return observed


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
        if self.run.verbosity > 0:
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
def _locking(run: Run, timeout: float | None) -> Iterator[Locks]:
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


def _each_target(
    targets: Sequence[DesiredTarget], work: Callable[[DesiredTarget], T]
) -> tuple[list[T], Failures]:
    """Run ``work`` for every target side by side; one target's failure never hides the
    results of the others."""
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(targets)))) as pool:
        futures = [(dt.target.name, pool.submit(work, dt)) for dt in targets]
    results: list[T] = []
    failures: Failures = []
    for name, future in futures:
        try:
            results.append(future.result())
        except ReconcilerError as exc:
            failures.append((name, exc))
    return results, failures


def _report_failures(failures: Failures) -> None:
    for name, exc in failures:
        prefix = f"target '{name}': "
        for line in exc.lines():
            click.echo(f"error: {prefix}{line.removeprefix(prefix)}", err=True)


def _make_plan(
    run: Run, allow_destroy: bool, rotation_history: bool = False, locks: Locks | None = None
) -> tuple[Plan, dict[str, Connection], Failures]:
    """Connect to, observe and plan every selected target, side by side; with ``locks``,
    each target's apply lock is taken before it is read."""
    inventory, desired = _load(run)

    def one(dt: DesiredTarget) -> tuple[TargetPlan, Connection]:
        conn = connect(dt.target, run.aws, write=locks is not None)
        own = locks.take(conn) if locks is not None else ""
        observed = _observe(
            run,
            dt,
            conn,
            grants_for=dt.grants_needed,
            rotation_history=rotation_history,
            own_lock=own,
        )
        options = PlanOptions(
            allow_destroy=allow_destroy,
            not_ours=ignored_unreadable(observed, inventory.settings.ignore),
        )
        return make_plan(dt, observed, options), conn

    results, failures = _each_target(desired, one)
    plan = Plan(
        targets=tuple(tp for tp, _ in results),
        allow_destroy=allow_destroy,
        inventory=str(run.path),
        identity_tag=inventory.settings.identity_tag,
    )
    return plan, {tp.target.name: conn for tp, conn in results}, failures


@main.command()
@path_argument
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan as JSON."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there are no changes, 2 when there are, 1 on error.",
)
@click.option(
    "--allow-destroy",
    is_flag=True,
    help="Plan deletion of keys no spec declares (otherwise they are reported as orphaned).",
)
@click.option(
    "--rotation-history",
    is_flag=True,
    help="Also read each rotating key's rotations (ListKeyRotations, paced at 100/s) and show "
    "the last and next rotation and the on-demand count.",
)
@common_options
def plan(
    run: Run,
    out: Path | None,
    fmt: str,
    detailed_exitcode: bool,
    allow_destroy: bool,
    rotation_history: bool,
) -> int:
    """Show what apply would change, without changing anything."""
    the_plan, _, failures = _make_plan(run, allow_destroy, rotation_history)
    if the_plan.targets:  # a run where every target failed has no plan to show
        _print_plan(run, the_plan, fmt, rotation=rotation_history)
    _report_failures(failures)
    if failures:
        if out is not None:
            run.info(f"Not saving {out}: a plan that leaves out a failed target is incomplete.")
        return EXIT_ERROR
    if out is not None:
        out.write_text(formatters.plan_json(the_plan), encoding="utf-8")
        run.info(f"Saved the plan to {out}; apply it with: kms-reconciler apply --plan {out}")
    if detailed_exitcode and the_plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _print_plan(run: Run, the_plan: Plan, fmt: str, *, rotation: bool = False) -> None:
    if fmt == "text":
        click.echo(formatters.plan_text(the_plan, run.style, rotation=rotation), nl=False)
    else:
        click.echo(formatters.PLAN_FORMATS[fmt](the_plan), nl=False)


# -- drift --------------------------------------------------------------------------------


def _write_report(path: Path, text: str) -> None:
    """Write a ``--report`` file, making its folder; a failure is one clear error line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(
            Problem(f"cannot write the report {path}: {exc.strerror or exc}", field="--report")
        ) from None


def _parse_reports(
    values: tuple[str, ...], formats: Mapping[str, object]
) -> list[tuple[str, Path]]:
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


@main.command()
@path_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown", "sarif"]),
    default="text",
    help="Format printed on stdout.",
)
@click.option(
    "--report",
    "reports",
    multiple=True,
    metavar="FORMAT=FILE",
    help="Also write the report in FORMAT to FILE (repeatable), e.g. sarif=drift.sarif.",
)
@click.option(
    "--fail-on",
    type=click.Choice([s.label for s in Severity if s >= Severity.LOW]),
    default="low",
    show_default=True,
    help="Exit 2 only for findings of at least this severity.",
)
@common_options
def drift(run: Run, fmt: str, reports: tuple[str, ...], fail_on: str) -> int:
    """Report every difference between KMS and the inventory (read-only)."""
    outputs = _parse_reports(reports, DRIFT_FORMATS)
    inventory, desired = _load(run)

    def one(dt: DesiredTarget) -> TargetDrift:
        conn = connect(dt.target, run.aws)
        observed = _observe(run, dt, conn, describe_unmanaged=True, rotation_history=True)
        return detect(dt, observed, inventory.settings.ignore, inventory.settings_source.file)

    results, failures = _each_target(desired, one)
    if not results:
        _report_failures(failures)
        return EXIT_ERROR
    report = DriftReport(tuple(results), inventory.settings_source.file)
    render_drift: dict[str, Callable[[DriftReport], str]] = {
        "text": drift_formats.drift_text,
        **DRIFT_FORMATS,
    }
    if fmt == "text":
        click.echo(drift_formats.drift_text(report, run.style), nl=False)
    else:
        click.echo(render_drift[fmt](report), nl=False)
    for out_fmt, path in outputs:
        _write_report(path, render_drift[out_fmt](report))
        run.info(f"Wrote the {out_fmt} report to {path}")
    _report_failures(failures)
    if failures:
        return EXIT_ERROR
    return EXIT_CHANGES if report.at_least(Severity.parse(fail_on)) else EXIT_OK


# -- review -------------------------------------------------------------------------------


@contextmanager
def _inside(folder: Path) -> Iterator[None]:
    """Load with ``folder`` as the working directory, so paths read as repository paths."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _load_side(folder: Path, rel: Path, label: str) -> list[DesiredTarget]:
    """The desired state of every target of the inventory at ``folder / rel``."""
    with _inside(folder):
        if not rel.is_dir():
            return []  # the inventory does not exist on this side: every key is new
        inventory, problems = load_inventory_partial(rel)
        desired: list[DesiredTarget] = []
        if inventory is not None:
            try:
                desired = build_desired(inventory, inventory.settings.targets)
            except InputError as exc:
                problems += exc.problems
        if problems:
            raise InputError([replace(p, message=f"{p.message} [{label}]") for p in problems])
        return desired


def _locator(head_folder: Path) -> Locate:
    """Locate a finding at its statement in the template (by Sid), else at the key spec."""
    cache: dict[str, list[str]] = {}

    def locate(change: KeyChange, sid: str | None) -> tuple[str | None, int | None]:
        key = change.head or change.base
        assert key is not None
        source = key.source
        policy_file = source.policy_file if change.head is not None else None
        if sid and policy_file:
            if policy_file not in cache:
                try:
                    text = (head_folder / policy_file).read_text(encoding="utf-8")
                except OSError:
                    text = ""
                cache[policy_file] = text.splitlines()
            needle = json.dumps(sid)
            for number, line in enumerate(cache[policy_file], 1):
                if needle in line and '"Sid"' in line:
                    return policy_file, number
        return source.file, source.line

    return locate


@main.command()
@path_argument
@click.option("--base", "base_ref", required=True, help="Git ref the change starts from.")
@click.option(
    "--head", "head_ref", default=None, help="Git ref of the change (default: the work tree)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(REVIEW_FORMATS)),
    default="markdown",
    help="Format printed on stdout.",
)
@click.option(
    "--report",
    "reports",
    multiple=True,
    metavar="FORMAT=FILE",
    help="Also write FORMAT (markdown, json, sarif, text) to FILE (repeatable).",
)
@click.option(
    "--fail-on",
    type=click.Choice([s.label for s in Severity]),
    default="high",
    show_default=True,
    help="Exit 2 when an unwaived finding is at or above this severity.",
)
@click.option(
    "--live",
    is_flag=True,
    help="Also read the live policies (needs AWS access) and flag drift this change overwrites.",
)
@common_options
def review(
    run: Run,
    base_ref: str,
    head_ref: str | None,
    fmt: str,
    reports: tuple[str, ...],
    fail_on: str,
    live: bool,
) -> int:
    """Review a change of the inventory between two git refs, offline: access and risk."""
    outputs = _parse_reports(reports, REVIEW_FORMATS)
    if run.path.exists() and not run.path.is_dir():
        raise InputError(Problem(f"inventory directory '{run.path}' is not a directory"))
    path = run.path.resolve()
    root = gitrefs.repo_root(path if path.exists() else path.parent)
    rel = path.relative_to(root) if path.is_relative_to(root) else Path(run.path)
    base_commit = gitrefs.resolve(base_ref, root, "--base")
    with tempfile.TemporaryDirectory(prefix="kms-review-") as tmp:
        base_dir = Path(tmp) / "base"
        gitrefs.export(base_commit, root, rel.as_posix(), base_dir)
        if head_ref is None:
            head_dir, head_label = root, "work tree"
        else:
            head_commit = gitrefs.resolve(head_ref, root, "--head")
            head_dir, head_label = Path(tmp) / "head", head_ref
            gitrefs.export(head_commit, root, rel.as_posix(), head_dir)
        head = _load_side(head_dir, rel, f"head: {head_label}")
        base = _load_side(base_dir, rel, f"base: {base_ref}")
        changes = compare(base, head)
        contexts = {dt.target.name: context_for(dt) for dt in [*base, *head]}
        locate = _locator(head_dir)
        report = run_review(
            changes,
            contexts,
            rules_module.rules(),
            rules_module.batch_rules(),
            today=date.today(),
            locate=locate,
            base_ref=base_ref,
            head_ref=head_label,
        )
        if live:
            report = with_findings(report, _live_findings(run, head, changes, locate))
    threshold = Severity.parse(fail_on)
    click.echo(REVIEW_FORMATS[fmt](report, threshold), nl=False)
    for out_fmt, out_path in outputs:
        _write_report(out_path, REVIEW_FORMATS[out_fmt](report, threshold))
        run.info(f"Wrote the {out_fmt} review to {out_path}")
    return EXIT_CHANGES if report.blocking(threshold) else EXIT_OK


def _live_findings(
    run: Run, head: list[DesiredTarget], changes: list[KeyChange], locate: Locate
) -> list[ReviewFinding]:
    touched = {c.target.name for c in changes if c.kind == "changed"}

    def one(dt: DesiredTarget) -> dict[tuple[str, str], Any]:
        conn = connect(dt.target, run.aws)
        observed = _observe(run, dt, conn, grants_for=frozenset())  # policies only
        return {
            (dt.target.name, name): key.policy
            for key in observed.keys
            if (name := key.name(dt.identity_tag)) is not None and not key.pending_deletion
        }

    live: dict[tuple[str, str], Any] = {}
    found, failures = _each_target([dt for dt in head if dt.target.name in touched], one)
    if failures:
        _report_failures(failures)
        raise AwsError("--live could not read every target; the review is incomplete")
    for policies in found:
        live.update(policies)
    return live_findings(changes, live, locate)


# -- rotate -------------------------------------------------------------------------------


@main.command()
@click.argument("arguments", nargs=-1, required=True, metavar="[PATH] KEY")
@click.option("--now", is_flag=True, help="Rotate the key material now (RotateKeyOnDemand).")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@lock_timeout_option
@common_options
def rotate(
    run: Run, arguments: tuple[str, ...], now: bool, auto_approve: bool, lock_timeout: float
) -> int:
    """Rotate a managed key's material on demand, in every selected target that has it."""
    with _locking(run, lock_timeout) as locks:
        return _rotate(run, arguments, now, auto_approve, locks)


def _rotate(
    run: Run, arguments: tuple[str, ...], now: bool, auto_approve: bool, locks: Locks
) -> int:
    if len(arguments) > 2:
        raise InputError(Problem("give [PATH] KEY: at most two arguments", field="KEY"))
    if len(arguments) == 2:
        run.path = Path(arguments[0])
    key_name = arguments[-1]
    if not now:
        raise InputError(
            Problem("say --now to rotate the key material now (RotateKeyOnDemand)", field="--now")
        )
    _, desired = _load(run)
    chosen = [dt for dt in desired if any(k.name == key_name for k in dt.keys)]
    if not chosen:
        raise InputError(Problem(f"no key named '{key_name}' in the selected targets", field="KEY"))
    for dt in chosen:
        state = next(k.state for k in dt.keys if k.name == key_name)
        if not catalog.can_rotate_on_demand(state.key_spec, state.origin):
            raise InputError(
                Problem(
                    f"key '{key_name}' is {state.key_spec} with {state.origin} key material: "
                    "KMS rotates on demand only symmetric encryption keys with KMS key material",
                    field="KEY",
                )
            )

    def find(dt: DesiredTarget) -> tuple[DesiredTarget, Connection, ObservedKey]:
        conn = connect(dt.target, run.aws, write=True)
        own = locks.take(conn)
        observed = _observe(
            run, dt, conn, rotation_history=True, grants_for=frozenset(), own_lock=own
        )
        found = [k for k in observed.keys if k.name(dt.identity_tag) == key_name]
        if not found:
            raise InputError(Problem(f"key '{key_name}' does not exist in KMS yet (apply first)"))
        key = found[0]
        if key.key_state != "Enabled":
            raise InputError(Problem(f"key '{key_name}' ({key.key_id}) is {key.key_state}"))
        return dt, conn, key

    found, failures = _each_target(chosen, find)
    if failures:
        _report_failures(failures)
        raise ApplyRefusedError("nothing was rotated")
    for dt, _, key in found:
        done = key.on_demand_rotations or 0
        click.echo(
            f"{dt.target.name}: rotate key '{key_name}' ({key.key_id}) now; last rotation "
            f"{f'{key.last_rotation_date:%Y-%m-%d}' if key.last_rotation_date else 'never'}, "
            f"{done} on-demand rotation(s) so far "
            f"(KMS allows {catalog.ON_DEMAND_ROTATIONS_MAX})"
        )
    if not auto_approve:
        _confirm_count(len(found), "rotation(s)")
    for dt, conn, key in found:
        try:
            # a multi-Region key rotates as a family, from its primary
            rotate_now(conn.kms_in(key.primary_region), key.key_id)
        except Exception as exc:  # report what ran: earlier targets are rotated already
            raise ApplyFailedError(
                f"RotateKeyOnDemand of '{key_name}' in target '{dt.target.name}' failed: "
                f"{error_message(exc)}"
            ) from None
        click.echo(f"{dt.target.name}: rotation of '{key_name}' ({key.key_id}) started")
    return EXIT_OK


# -- import -------------------------------------------------------------------------------


@main.command("import")
@path_argument
@click.option(
    "--key-id",
    "key_ids",
    multiple=True,
    metavar="ID",
    help="Import this key (key ID, key ARN or alias; repeatable).",
)
@click.option("--all-unmanaged", is_flag=True, help="Import every unmanaged, unignored key.")
@common_options
def import_(run: Run, key_ids: tuple[str, ...], all_unmanaged: bool) -> int:
    """Write specs for existing keys so the next apply adopts them without change."""
    if not key_ids and not all_unmanaged:
        raise InputError(Problem("give --key-id ID (repeatable) or --all-unmanaged"))
    inventory, desired = _load(run)

    def one(dt: DesiredTarget) -> ObservedTarget:
        conn = connect(dt.target, run.aws)
        # import writes no grants: no ListGrants
        return _observe(run, dt, conn, wanted=key_ids, details_for_all=all_unmanaged, grants=False)

    observed_targets, failures = _each_target(desired, one)
    if failures:
        _report_failures(failures)
        raise AwsError("import needs every selected target; nothing was written")
    identity = inventory.settings.identity_tag
    candidates: list[tuple[TargetInfo, ObservedKey]] = []
    for ref in key_ids:
        found = [
            (o.target, key)
            for o in observed_targets
            for key in o.keys
            if key.key_id == ref.rsplit("/", 1)[-1] or ref in key.aliases
        ]
        if not found:
            raise InputError(
                Problem(f"no customer key {ref} in the selected targets", field="--key-id")
            )
        candidates.extend(found)
    if all_unmanaged:
        candidates += [
            (o.target, key)
            for o in observed_targets
            for key in o.keys
            if identity not in key.tags
            and not is_lock_anchor(key)
            and not is_ignored(key, inventory.settings.ignore)
            and (o.target, key) not in candidates
        ]
    taken = {k.spec.name for k in inventory.keys}
    adopted = {
        (o.target.name, resolved): dk.name
        for dt, o in zip(desired, observed_targets, strict=True)
        for dk in dt.keys
        if dk.adopt
        for resolved in [o.aliases.get(dk.adopt) or dk.adopt.rsplit("/", 1)[-1]]
    }
    imported, skipped = plan_imports(candidates, identity, taken, date.today().isoformat(), adopted)
    if key_ids and skipped:
        raise InputError(
            [Problem(f"cannot import {s.key_id} ({s.target}): {s.reason}") for s in skipped]
        )
    for item in imported:
        for rel, _ in item.files:
            path = run.path / rel
            if path.exists():
                raise InputError(Problem(f"{path} already exists; nothing was overwritten"))
    for item in imported:
        for rel, text in item.files:
            path = run.path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        click.echo(
            f"imported {item.key_id} ({item.target}) as '{item.name}': "
            f"{run.path / item.spec_path}, {run.path / item.policy_path}"
        )
    for s in skipped:
        click.echo(f"skipped {s.key_id} ({s.target}): {s.reason}")
    if all_unmanaged:
        for o in observed_targets:
            not_ours = ignored_unreadable(o, inventory.settings.ignore)
            for key_id, error in sorted(o.unreadable.items()):
                if key_id not in not_ours:
                    click.echo(
                        f"warning: skipped {key_id} ({o.target.name}): it could not be read "
                        f"({error})",
                        err=True,
                    )
    click.echo(
        f"Imported {len(imported)} key(s). Review the files, then run 'kms-reconciler plan': "
        "it adopts each key (adds the identity tag) and changes nothing else."
    )
    return EXIT_OK


# -- force-unlock -------------------------------------------------------------------------


@main.command("force-unlock")
@click.argument("arguments", nargs=-1, metavar="[PATH] [LOCK_ID]")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@common_options
def force_unlock_(run: Run, arguments: tuple[str, ...], auto_approve: bool) -> int:
    """Clear the apply lock of one target, left by a run that died (SIGKILL, a cancelled CI
    job). Give the LOCK_ID the refusal printed to clear only that lock."""
    if len(arguments) > 2:
        raise InputError(Problem("give [PATH] [LOCK_ID]: at most two arguments", field="LOCK_ID"))
    lock_id: str | None = None
    if len(arguments) == 2:
        run.path, lock_id = Path(arguments[0]), arguments[1]
    elif arguments:
        if Path(arguments[0]).is_dir():
            run.path = Path(arguments[0])
        else:
            lock_id = arguments[0]
    _, desired = _load(run)
    if len(desired) != 1:
        names = ", ".join(dt.target.name for dt in desired)
        raise InputError(
            Problem(f"name the one target to unlock with --target (selected: {names})", "--target")
        )
    (dt,) = desired
    conn = connect(dt.target, run.aws, write=True)
    status = inspect_lock(conn.kms, dt.target.name)
    if status is None:
        click.echo(f"{dt.target.name}: the apply lock is not held; nothing to clear.")
        return EXIT_OK
    click.echo(f"{dt.target.name}: the apply lock is {status}")
    if not auto_approve:
        _confirm_count(1, "lock clearance (only if no run holds it any more)")
    cleared = force_unlock(conn.kms, dt.target.name, lock_id)
    if cleared is None:
        click.echo(f"{dt.target.name}: the apply lock was released meanwhile; nothing cleared.")
    else:
        click.echo(f"{dt.target.name}: cleared the apply lock (lock ID {cleared.lock_id or '?'}).")
    return EXIT_OK


# -- apply --------------------------------------------------------------------------------


@main.command()
@path_argument
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Apply a plan saved by 'plan --out' (refused when KMS changed since).",
)
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print every KMS call apply would make; make none.")
@click.option("--allow-destroy", is_flag=True, help="Allow destructive changes.")
@lock_timeout_option
@common_options
def apply(
    run: Run,
    plan_file: Path | None,
    auto_approve: bool,
    dry_run: bool,
    allow_destroy: bool,
    lock_timeout: float,
) -> int:
    """Make KMS match the inventory, in the planned order."""
    # Each target's apply lock is held from before it is read until its calls are made.
    with _locking(run, None if dry_run else lock_timeout) as locks:
        return _apply(run, plan_file, auto_approve, dry_run, allow_destroy, locks)


def _apply(
    run: Run,
    plan_file: Path | None,
    auto_approve: bool,
    dry_run: bool,
    allow_destroy: bool,
    locks: Locks,
) -> int:
    failures: Failures = []
    if plan_file is not None:
        the_plan, connections = _load_saved_plan(run, plan_file, locks)
    else:
        the_plan, connections, failures = _make_plan(run, allow_destroy, locks=locks)
    if the_plan.targets:
        click.echo(formatters.plan_text(the_plan, run.style), nl=False)
    if failures:
        _report_failures(failures)
        click.echo(
            f"{len(failures)} target(s) could not be planned and are left alone; "
            "the others are applied.",
            err=True,
        )
    if not the_plan.has_changes:
        return EXIT_ERROR if failures else EXIT_OK
    material = [
        f"target '{tp.target.name}': {m}" for tp in the_plan.targets for m in check_key_material(tp)
    ]
    if material:
        raise ApplyRefusedError(
            "\n".join(
                [*material, "the key material is checked before any call; nothing was changed"]
            )
        )
    destructive = the_plan.destructive_operations
    if destructive and not allow_destroy and not dry_run:
        raise ApplyRefusedError(
            f"refusing to apply {len(destructive)} destructive operation(s) without "
            f"--allow-destroy ({'; '.join(f'{op.kind.value} on {op.key}' for op in destructive)}); "
            "nothing was changed"
        )
    if dry_run:
        _print_dry_run(run, the_plan)
        return EXIT_OK
    if not auto_approve:
        _confirm(the_plan)
    results: list[ApplyResult] = []
    for tp in the_plan.targets:
        if not tp.operations:
            continue
        if any(r.interrupted for r in results):  # an interruption stops the whole run
            results.append(ApplyResult(tp.target.name, not_run=list(tp.operations)))
            continue
        result = _apply_one(run, tp, connections[tp.target.name], the_plan.identity_tag)
        results.append(result)  # a failed target does not stop the others: accounts differ
    if failures or any(not r.ok for r in results):
        _report_failure(run, the_plan, results, failures)
    total = sum(len(r.done) for r in results)
    seconds = sum(r.seconds for r in results)
    calls = sum(r.calls for r in results)
    click.echo(
        run.style(
            f"Apply complete: {total} operation(s) in {seconds:.2f}s ({calls} KMS calls): "
            f"{the_plan.count(Action.CREATE)} created, "
            f"{the_plan.count(Action.UPDATE, Action.RECOVER)} updated, "
            f"{the_plan.count(Action.DELETE)} scheduled for deletion.",
            "bold",
        )
    )
    return EXIT_OK


def _load_saved_plan(run: Run, plan_file: Path, locks: Locks) -> tuple[Plan, dict[str, Connection]]:
    try:
        the_plan = from_dict(json.loads(plan_file.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        raise InputError(Problem(f"cannot read the plan: {exc}", str(plan_file))) from None
    connections: dict[str, Connection] = {}
    for tp in the_plan.targets:
        conn = connect(tp.target, run.aws, write=True)
        connections[tp.target.name] = conn
        own = locks.take(conn)
        # the keys the plan works on: managed ones, and those it adopts (read in full)
        ids = [k.key_id for k in tp.keys if k.key_id]
        desired = DesiredTarget(tp.target, (), the_plan.identity_tag)
        observed = _observe(
            run,
            desired,
            conn,
            wanted=tuple(ids),
            grants_for=frozenset(tp.grants_read),
            regions=tp.regions_read,
            own_lock=own,
        )
        now = fingerprint(observed, the_plan.identity_tag, ids, tp.grants_read)
        if now != tp.fingerprint:
            raise StalePlanError(
                f"the saved plan {plan_file} is stale: KMS in target '{tp.target.name}' changed "
                "since it was made (observed state differs); nothing was changed. Run plan again."
            )
    return the_plan, connections


def _print_dry_run(run: Run, the_plan: Plan) -> None:
    count = sum(len(tp.operations) for tp in the_plan.targets)
    click.echo(f"Dry run: apply would make these {count} KMS call(s), in order; none was made.")
    for tp in the_plan.targets:
        for i, op in enumerate(tp.operations, 1):
            key_id = op.key_id or next((k.key_id for k in tp.keys if k.name == op.key), None)
            mark = "  [destructive]" if op.destructive else ""
            click.echo(f"  {tp.target.name} {i:>3}. {describe_call(op, key_id)}{mark}")


def _confirm(the_plan: Plan) -> None:
    _confirm_count(sum(len(tp.operations) for tp in the_plan.targets), "change(s)")


def _confirm_count(count: int, what: str) -> None:
    if not sys.stdin.isatty():
        raise ApplyRefusedError(
            "this needs --auto-approve when it cannot ask (no terminal); nothing was changed"
        )
    answer = click.prompt(
        f"Make these {count} {what}? Only 'yes' is accepted", default="", show_default=False
    )
    if answer.strip() != "yes":
        raise ApplyRefusedError("cancelled; nothing was changed")


def _apply_one(run: Run, tp: TargetPlan, conn: Connection, identity_tag: str) -> ApplyResult:
    total = len(tp.operations)
    counter = iter(range(1, total + 1))

    def on_event(event: OpEvent) -> None:
        if event.status == "started" or run.verbosity < 0:
            return
        n = next(counter)
        status = (
            run.style("done", "green")
            if event.status == "done"
            else run.style(f"FAILED: {event.error}", "red")
        )
        ident = f" {event.key_id}" if event.key_id else ""
        where = f" [{event.op.region}]" if event.op.region else ""
        click.echo(
            f"  [{n}/{total}] {tp.target.name} {event.op.key}{ident}{where}: "
            f"{event.op.kind.value} "
            f"... {status} ({event.seconds:.2f}s)"
        )

    click.echo(run.style(f"Applying {total} operation(s) to target {tp.target.name}:", "bold"))
    result = apply_target(
        tp,
        conn.kms,
        on_event=on_event,
        workers=min(8, run.aws.workers),
        regional=conn.kms_in,
        identity_tag=identity_tag,
    )
    _show_retries(run, tp.target.name, conn)
    return result


def _show_retries(run: Run, target: str, conn: Connection) -> None:
    """With -v: the retries of every call so far, by operation and reason."""
    retries = conn.retries
    if run.verbosity > 0 and retries:
        shown = ", ".join(f"{what} {n}" for what, n in sorted(retries.items()))
        run.info(f"{target}: retries: {shown}")


def _report_failure(
    run: Run, the_plan: Plan, results: Sequence[ApplyResult], failures: Failures
) -> None:
    """Say, per target, what was done, what failed and what did not run; then fail."""
    lines = []
    for name, exc in failures:
        lines.append(f"target '{name}' could not be planned ({exc}); nothing was changed there")
    done: list[str] = []
    failed: list[str] = []
    not_run: list[str] = []
    for r in results:
        done += [f"{r.target}: {op.kind.value} {op.key}" for op in r.done]
        failed += [f"{r.target}: {op.kind.value} {op.key}" for op, _ in r.failed]
        not_run += [f"{r.target}: {op.kind.value} {op.key}" for op in r.not_run]
        for op, message in r.failed:
            lines.append(
                f"apply failed in target '{r.target}': {op.kind.value} on key '{op.key}' "
                f"failed: {message}"
            )
        if r.interrupted:
            lines.append(
                f"apply interrupted in target '{r.target}': the operations under way "
                "finished, no other started"
            )
    state = {
        r.target: "INTERRUPTED" if r.interrupted else "ok" if r.ok else "FAILED" for r in results
    }
    outcome = ", ".join(f"{name} {word}" for name, word in state.items()) + "".join(
        f", {name} NOT PLANNED" for name, _ in failures
    )
    report = [
        *lines,
        f"targets: {outcome}",
        f"done ({len(done)}): " + (", ".join(done) or "nothing"),
        f"failed ({len(failed)}): " + (", ".join(failed) or "nothing"),
        f"not run ({len(not_run)}): " + (", ".join(not_run) or "nothing"),
        "Fix the cause and run apply again: it plans from what KMS holds now and converges.",
    ]
    raise ApplyFailedError("\n".join(report))


if __name__ == "__main__":  # pragma: no cover
    main()
