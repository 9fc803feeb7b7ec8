"""plan: observe every target and show what apply would change."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click

from reconciler import aws, formatters
from reconciler.aws import (
    Connection,
)
from reconciler.commands.common import (
    Failures,
    Locks,
    Run,
    common_options,
    each_target,
    freeze_inputs,
    key_option,
    load,
    observe,
    only_keys,
    parallelism_option,
    path_argument,
    report_failures,
    retiring_options,
    retiring_usage,
    shard_option,
    side_by_side,
    with_parallelism,
    with_shard,
    with_usage,
)
from reconciler.drift import ignored_unreadable
from reconciler.errors import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
)
from reconciler.plan import Plan, TargetPlan
from reconciler.planner import PlanOptions, make_plan
from reconciler.state import (
    DesiredTarget,
)


def make_plans(
    run: Run,
    allow_destroy: bool,
    rotation_history: bool = False,
    locks: Locks | None = None,
    keys: tuple[str, ...] = (),
) -> tuple[Plan, dict[str, Connection], Failures]:
    """Connect to, observe and plan every selected target, side by side; with ``locks``,
    each target's apply lock is taken before it is read; with ``keys``, only those keys."""
    inventory, desired = load(run)
    desired = only_keys(desired, keys)
    # The specs and their YAML line maps (about 5 MB a thousand keys) are not needed once
    # the desired states are built: let them go before the observations come in.
    settings = inventory.settings
    del inventory

    def one(dt: DesiredTarget) -> tuple[TargetPlan, Connection]:
        conn = aws.connect(dt.target, run.aws, write=locks is not None)
        own = locks.take(conn) if locks is not None else ""
        observed = observe(
            run,
            dt,
            conn,
            grants_for=dt.grants_needed,
            rotation_history=rotation_history,
            own_lock=own,
        )
        known, known_reads = retiring_usage(run, dt, observed, conn)
        options = PlanOptions(
            allow_destroy=allow_destroy,
            not_ours=ignored_unreadable(observed, settings.ignore),
            partial=bool(keys),
        )
        freeze_inputs()
        tp = make_plan(dt, observed, retiring_options(options, run, known))
        return with_usage(run, tp, conn, known, known_reads), conn

    results, failures = each_target(desired, one, side_by_side(run, len(desired)))
    plan = Plan(
        targets=tuple(tp for tp, _ in results),
        allow_destroy=allow_destroy,
        inventory=str(run.path),
        identity_tag=settings.identity_tag,
        partial_keys=tuple(sorted(set(keys))),
        retire_guard_days=settings.retire_guard_days,
    )
    return plan, {tp.target.name: conn for tp, conn in results}, failures


@click.command()
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
@key_option
@shard_option
@parallelism_option
@common_options
def plan(
    run: Run,
    out: Path | None,
    fmt: str,
    detailed_exitcode: bool,
    allow_destroy: bool,
    rotation_history: bool,
    keys: tuple[str, ...],
    shard: str | None,
    parallelism: int | None,
) -> int:
    """Show what apply would change, without changing anything.

    \b
    Examples:
      kms-reconciler plan --target production --detailed-exitcode
      kms-reconciler plan --key app-data --out plan.json
      kms-reconciler plan --shard 3/256 --parallelism 32
    """
    with_shard(run, shard)
    with_parallelism(run, parallelism)
    the_plan, _, failures = make_plans(run, allow_destroy, rotation_history, keys=keys)
    if the_plan.targets:  # a run where every target failed has no plan to show
        _print_plan(run, the_plan, fmt, rotation=rotation_history)
    report_failures(failures)
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
        echo_chunks(formatters.plan_chunks(the_plan, run.style, rotation=rotation))
    else:
        click.echo(formatters.PLAN_FORMATS[fmt](the_plan), nl=False)


def echo_chunks(chunks: Iterable[str], err: bool = False, size: int = 1 << 16) -> None:
    """Write text made piece by piece (``formatters.plan_chunks``) in writes of about
    ``size`` characters: the whole text of a large plan is never held."""
    pending: list[str] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held >= size:
            click.echo("".join(pending), nl=False, err=err)
            pending, held = [], 0
    if pending:
        click.echo("".join(pending), nl=False, err=err)
