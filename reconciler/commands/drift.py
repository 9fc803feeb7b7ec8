"""drift: every difference between KMS and the inventory, read-only."""

from __future__ import annotations

import functools
from collections.abc import Callable

import click

from reconciler import aws, usage
from reconciler.commands.common import (
    Run,
    common_options,
    each_target,
    freeze_inputs,
    load,
    observe,
    parallelism_option,
    parse_reports,
    path_argument,
    report_failures,
    shard_option,
    side_by_side,
    with_parallelism,
    with_shard,
    write_report,
)
from reconciler.drift import RULES, DriftReport, TargetDrift, detect, usage_candidates
from reconciler.errors import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
)
from reconciler.findings import Severity
from reconciler.formatters import drift as drift_formats
from reconciler.formatters.drift import DRIFT_FORMATS
from reconciler.observe import read_usage
from reconciler.state import (
    DesiredTarget,
)


@click.command()
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
    # only the severities drift findings have
    type=click.Choice([s.label for s in Severity if s in {r.severity for r in RULES.values()}]),
    default="low",
    show_default=True,
    help="Exit 2 only for findings of at least this severity.",
)
@shard_option
@parallelism_option
@common_options
def drift(
    run: Run,
    fmt: str,
    reports: tuple[str, ...],
    fail_on: str,
    shard: str | None,
    parallelism: int | None,
) -> int:
    """Report every difference between KMS and the inventory (read-only).

    \b
    Examples:
      kms-reconciler drift --format sarif --report markdown=drift.md > drift.sarif
      kms-reconciler drift --target production --fail-on medium
      kms-reconciler drift --shard 3/256 --report sarif=drift.sarif
    """
    with_shard(run, shard)
    with_parallelism(run, parallelism)
    outputs = parse_reports(reports, DRIFT_FORMATS)
    inventory, desired = load(run)

    def one(dt: DesiredTarget) -> TargetDrift:
        conn = aws.connect(dt.target, run.aws)
        observed = observe(run, dt, conn, describe_unmanaged=True, rotation_history=True)
        # the last use of every key drift reports: one GetKeyLastUsage per key
        candidates = usage_candidates(dt, observed, inventory.settings.ignore)
        name = dt.target.name
        try:
            found, calls = read_usage(
                conn.kms_in,
                [(key_id, None) for key_id in candidates],
                run.aws.workers,
                functools.partial(run.progress.update, name),
            )
        finally:
            run.progress.done(name)
        if candidates:
            run.info(f"{name}: read the last use of {len(found)} key(s) with {calls} KMS calls")
        if run.clock is not None:
            found = usage.as_of(found, run.clock)
        freeze_inputs()
        return detect(
            dt,
            observed,
            inventory.settings.ignore,
            inventory.settings_source.file,
            now=run.now(),
            usage=found,
            usage_reads=calls,
            unused_after_days=inventory.settings.unused_after_days,
        )

    results, failures = each_target(desired, one, side_by_side(run, len(desired)))
    if failures and not results:
        report_failures(failures)
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
        write_report(path, render_drift[out_fmt](report))
        run.info(f"Wrote the {out_fmt} report to {path}")
    report_failures(failures)
    if failures:
        return EXIT_ERROR
    return EXIT_CHANGES if report.at_least(Severity.parse(fail_on)) else EXIT_OK
