"""apply: make KMS match the inventory, in the planned order."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from reconciler import aws, formatters, retire, usage
from reconciler.applier import (
    ApplyResult,
    OpEvent,
    apply_target,
    check_key_material,
)
from reconciler.aws import (
    Connection,
)
from reconciler.commands.common import (
    Failures,
    InOrder,
    Locks,
    Run,
    common_options,
    confirm_count,
    key_option,
    lock_timeout_option,
    locking,
    observe,
    parallelism_option,
    path_argument,
    report_failures,
    shard_option,
    show_retries,
    side_by_side,
    with_parallelism,
    with_shard,
    with_usage,
)
from reconciler.commands.plan import echo_chunks, make_plans
from reconciler.errors import (
    EXIT_ERROR,
    EXIT_OK,
    ApplyFailedError,
    ApplyRefusedError,
    InputError,
    Problem,
    StalePlanError,
)
from reconciler.formatters.dry_run import dry_run_json, dry_run_text
from reconciler.plan import Action, Plan, TargetPlan, from_dict
from reconciler.state import (
    DesiredTarget,
    fingerprint,
)


@click.command()
@path_argument
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Apply a plan saved by 'plan --out' (refused when KMS changed since).",
)
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print every KMS call apply would make, as AWS CLI commands; make none.",
)
@click.option("--allow-destroy", is_flag=True, help="Allow destructive changes.")
@click.option(
    "--allow-in-use",
    is_flag=True,
    help="Disable or schedule deletion of keys even when they were used within the "
    "inventory's retire_guard_days (default 30), or their use cannot be read.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    help="json: the result on stdout as one document (per operation: done, failed or not "
    "run, with timings and call counts; with --dry-run the commands); the rest on stderr.",
)
@lock_timeout_option
@key_option
@shard_option
@parallelism_option
@common_options
def apply(
    run: Run,
    plan_file: Path | None,
    auto_approve: bool,
    dry_run: bool,
    allow_destroy: bool,
    allow_in_use: bool,
    fmt: str,
    lock_timeout: float,
    keys: tuple[str, ...],
    shard: str | None,
    parallelism: int | None,
) -> int:
    """Make KMS match the inventory, in the planned order.

    Several targets (a --shard, or no --target) are applied side by side, each under its
    own apply lock; each target's progress is printed whole, in the inventory's order.

    \b
    Examples:
      kms-reconciler apply --plan plan.json --auto-approve --lock-timeout 5m
      kms-reconciler apply --dry-run > calls.sh
      kms-reconciler apply --key app-data --auto-approve --format json
      kms-reconciler apply --shard 3/256 --auto-approve --lock-timeout 5m
    """
    if keys and plan_file is not None:
        raise InputError(Problem("give --key when planning, not with --plan", field="--key"))
    if shard is not None and plan_file is not None:
        raise InputError(
            Problem(
                "give --shard when planning, not with --plan (the plan names its targets)",
                field="--shard",
            )
        )
    with_shard(run, shard)
    with_parallelism(run, parallelism)
    # Each target's apply lock is held from before it is read until its calls are made.
    with locking(run, None if dry_run else lock_timeout) as locks:
        return _apply(
            run, plan_file, auto_approve, dry_run, allow_destroy, locks, fmt, keys, allow_in_use
        )


def _apply(
    run: Run,
    plan_file: Path | None,
    auto_approve: bool,
    dry_run: bool,
    allow_destroy: bool,
    locks: Locks,
    fmt: str = "text",
    keys: tuple[str, ...] = (),
    allow_in_use: bool = False,
) -> int:
    # stdout holds the one JSON document, or the dry run's shell script
    to_stderr = fmt == "json" or dry_run
    failures: Failures = []
    if plan_file is not None:
        the_plan, connections = _load_saved_plan(run, plan_file, locks)
    else:
        the_plan, connections, failures = make_plans(run, allow_destroy, locks=locks, keys=keys)
    if the_plan.targets:
        echo_chunks(formatters.plan_chunks(the_plan, run.style), err=to_stderr)
    if failures:
        report_failures(failures)
        click.echo(
            f"{len(failures)} target(s) could not be planned and are left alone; "
            "the others are applied.",
            err=True,
        )
    if not the_plan.has_changes:
        if fmt == "json":
            click.echo(apply_result_json(the_plan, [], failures, dry_run, {}))
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
    in_use = [
        f"target '{tp.target.name}': {line}; give --allow-in-use to retire it anyway; "
        "nothing was changed"
        for tp in the_plan.targets
        for line in usage.in_use(tp, the_plan.retire_guard_days)
    ]
    if in_use and not allow_in_use and not dry_run:
        raise ApplyRefusedError("\n".join(in_use))
    if dry_run:
        _print_dry_run(run, the_plan, fmt)
        return EXIT_OK
    if not auto_approve:
        _confirm(the_plan)
    timings: dict[int, float] = {}  # id(operation) -> seconds
    results = _apply_targets(run, the_plan, connections, timings, to_stderr)
    if fmt == "json":
        click.echo(apply_result_json(the_plan, results, failures, False, timings))
    if failures or any(not r.ok for r in results):
        _report_failure(run, the_plan, results, failures)
    total = sum(len(r.done) for r in results)
    seconds = sum(r.seconds for r in results)
    calls = sum(r.calls for r in results)
    click.echo(
        err=to_stderr,
        message=run.style(
            f"Apply complete: {total} operation(s) in {seconds:.2f}s ({calls} KMS calls): "
            f"{the_plan.count(Action.CREATE)} created, "
            f"{the_plan.count(Action.UPDATE, Action.RECOVER)} updated, "
            f"{the_plan.count(Action.DELETE)} scheduled for deletion.",
            "bold",
        ),
    )
    return EXIT_OK


def _apply_targets(
    run: Run,
    the_plan: Plan,
    connections: Mapping[str, Connection],
    timings: dict[int, float],
    to_stderr: bool,
) -> list[ApplyResult]:
    """Apply every target that has operations, side by side as ``--parallelism`` allows
    (one at a time: live progress, as ever). A failed target does not stop the others
    (accounts differ); an interruption stops the whole run: what is under way finishes,
    no operation and no target starts."""
    todo = [tp for tp in the_plan.targets if tp.operations]
    at_once = side_by_side(run, len(todo))
    tag = the_plan.identity_tag
    if at_once <= 1 or len(todo) <= 1:
        results: list[ApplyResult] = []
        for tp in todo:
            if any(r.interrupted for r in results):
                results.append(ApplyResult(tp.target.name, not_run=list(tp.operations)))
                continue
            conn = connections[tp.target.name]
            results.append(_apply_one(run, tp, conn, tag, timings, to_stderr))
        return results
    stop = threading.Event()
    printer = InOrder(len(todo), run.progress.echo)

    def one(index: int, tp: TargetPlan) -> ApplyResult:
        lines: list[tuple[str, bool]] = []
        try:
            if stop.is_set():
                return ApplyResult(tp.target.name, not_run=list(tp.operations), interrupted=True)
            conn = connections[tp.target.name]
            return _apply_one(
                run,
                tp,
                conn,
                tag,
                timings,
                to_stderr,
                say=lambda line: lines.append((line, to_stderr)),
                stop=stop,
            )
        finally:
            printer.done(index, lines)

    with ThreadPoolExecutor(max_workers=at_once) as pool:
        futures = [pool.submit(one, i, tp) for i, tp in enumerate(todo)]
        try:
            wait(futures)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM: only the main thread gets it
            stop.set()
            wait(futures)
    return [future.result() for future in futures]


def _load_saved_plan(run: Run, plan_file: Path, locks: Locks) -> tuple[Plan, dict[str, Connection]]:
    """The saved plan, checked against KMS now; the last use of the keys it retires is
    read again (use is never in the fingerprint: every Decrypt changes it)."""
    try:
        the_plan = from_dict(json.loads(plan_file.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        raise InputError(Problem(f"cannot read the plan: {exc}", str(plan_file))) from None
    connections: dict[str, Connection] = {}
    for tp in the_plan.targets:
        conn = aws.connect(tp.target, run.aws, write=True)
        connections[tp.target.name] = conn
        own = locks.take(conn)
        # the keys the plan works on: managed ones, and those it adopts (read in full)
        ids = [k.key_id for k in tp.keys if k.key_id]
        desired = DesiredTarget(tp.target, (), the_plan.identity_tag)
        observed = observe(
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
        late = retire.stale_retire_tags(tp, the_plan.identity_tag, run.now())
        if late:
            raise StalePlanError(
                f"the saved plan {plan_file} disables key(s) {', '.join(late)} in target "
                f"'{tp.target.name}' for retirement with a time more than a day old, which "
                "would shorten their observation period; nothing was changed. Run plan again."
            )
    targets = tuple(with_usage(run, tp, connections[tp.target.name]) for tp in the_plan.targets)
    return replace(the_plan, targets=targets), connections


def _print_dry_run(run: Run, the_plan: Plan, fmt: str) -> None:
    """Every call apply would make, as AWS CLI commands (a shell script), or JSON."""
    if fmt == "json":
        click.echo(dry_run_json(the_plan))
    else:
        click.echo(dry_run_text(the_plan), nl=False)


def _confirm(the_plan: Plan) -> None:
    confirm_count(sum(len(tp.operations) for tp in the_plan.targets), "change(s)")


def _apply_one(
    run: Run,
    tp: TargetPlan,
    conn: Connection,
    identity_tag: str,
    timings: dict[int, float],
    to_stderr: bool = False,
    *,
    say: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> ApplyResult:
    """Apply one target; its progress lines go to ``say`` (kept for printing whole), or
    straight out."""
    echo = say or (lambda line: run.progress.echo(line, err=to_stderr))
    total = len(tp.operations)
    index = {id(op): i for i, op in enumerate(tp.operations, 1)}
    # Keys are applied side by side, but the lines come out in the plan's order: a line
    # waits until every operation before it has finished (or, at the end, will not run).
    waiting: dict[int, str] = {}
    printed = 0
    running = finished = 0
    lock = threading.Lock()

    def flush(everything: bool = False) -> None:
        # One look per line printed (not a sort of every waiting line per event: with
        # 40,000 operations and one slow one early, that was quadratic).
        nonlocal printed
        while printed + 1 in waiting:
            printed += 1
            echo(waiting.pop(printed))
        if everything:
            for i in sorted(waiting):
                echo(waiting.pop(i))
                printed = i

    def on_event(event: OpEvent) -> None:
        nonlocal running, finished
        with lock:
            if event.status == "started":
                running += 1
            else:
                running -= 1
                finished += 1
                timings[id(event.op)] = event.seconds
            run.progress.update(tp.target.name, f"applied ({running} running)", finished, total)
            if event.status == "started" or run.verbosity < 0:
                return
            n = index[id(event.op)]
            status = (
                run.style("done", "green")
                if event.status == "done"
                else run.style(f"FAILED: {event.error}", "red")
            )
            ident = f" {event.key_id}" if event.key_id else ""
            where = f" [{event.op.region}]" if event.op.region else ""
            waiting[n] = (
                f"  [{n}/{total}] {tp.target.name} {event.op.key}{ident}{where}: "
                f"{event.op.kind.value} ... {status} ({event.seconds:.2f}s)"
            )
            flush()

    echo(run.style(f"Applying {total} operation(s) to target {tp.target.name}:", "bold"))
    try:
        result = apply_target(
            tp,
            conn.kms,
            on_event=on_event,
            workers=run.aws.apply_workers,
            regional=conn.kms_in,
            identity_tag=identity_tag,
            stop=stop,
        )
    finally:
        with lock:
            flush(everything=True)  # after a failure: the lines behind an operation not run
        run.progress.done(tp.target.name)
    show_retries(run, tp.target.name, conn)
    return result


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


def apply_result_json(
    the_plan: Plan,
    results: Sequence[ApplyResult],
    failures: Failures,
    dry_run: bool,
    timings: Mapping[int, float],
) -> str:
    """The result of an apply as one document: per target its outcome and calls, per
    operation done, failed or not run (with its error and seconds)."""
    by_target = {r.target: r for r in results}
    targets: list[dict[str, Any]] = []
    for tp in the_plan.targets:
        r = by_target.get(tp.target.name)
        failed = {id(op): message for op, message in r.failed} if r else {}
        done = {id(op) for op in r.done} if r else set()
        operations: list[dict[str, Any]] = []
        for i, op in enumerate(tp.operations, 1):
            status = "done" if id(op) in done else "failed" if id(op) in failed else "not run"
            operations.append(
                {
                    "index": i,
                    "operation": op.kind.value,
                    "key": op.key,
                    "key_id": op.key_id or (r.created.get(op.key) if r else None),
                    "region": op.region or tp.target.region,
                    "destructive": op.destructive,
                    "status": status,
                    "error": failed.get(id(op)),
                    "seconds": round(timings.get(id(op), 0.0), 3),
                }
            )
        outcome = (
            "no changes"
            if not tp.operations
            else "interrupted"
            if r and r.interrupted
            else "ok"
            if r and r.ok
            else "failed"
        )
        targets.append(
            {
                "target": tp.target.name,
                "outcome": outcome,
                "calls": r.calls if r else 0,
                "seconds": round(r.seconds, 3) if r else 0.0,
                "operations": operations,
            }
        )
    targets += [
        {"target": name, "outcome": "not planned", "error": str(exc), "operations": []}
        for name, exc in failures
    ]
    every = [op for t in targets for op in t["operations"]]
    summary = {
        status.replace(" ", "_"): sum(1 for op in every if op["status"] == status)
        for status in ("done", "failed", "not run")
    }
    document = {
        "format_version": 1,
        "dry_run": dry_run,
        "ok": not failures and all(t["outcome"] in ("ok", "no changes") for t in targets),
        "targets": targets,
        "summary": {**summary, "calls": sum(t.get("calls", 0) for t in targets)},
    }
    return json.dumps(document, indent=2)
