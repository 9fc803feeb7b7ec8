"""review: a change of the inventory between two git refs, offline."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import click

from reconciler import aws, gitrefs
from reconciler import rules as rules_module
from reconciler.commands.common import (
    Run,
    common_options,
    each_target,
    observe,
    parse_reports,
    path_argument,
    report_failures,
    write_report,
)
from reconciler.desired import build_desired
from reconciler.errors import (
    EXIT_CHANGES,
    EXIT_OK,
    AwsError,
    InputError,
    Problem,
)
from reconciler.findings import Severity
from reconciler.formatters.review import REVIEW_FORMATS
from reconciler.loader import load_inventory_partial
from reconciler.review import (
    KeyChange,
    Locate,
    ReviewFinding,
    compare,
    context_for,
    grants_to_read,
    live_findings,
    with_findings,
)
from reconciler.review import review as run_review
from reconciler.state import (
    DesiredTarget,
)


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
                # an oversized policy is a finding of the review (KMS015), not an input error
                desired = build_desired(
                    inventory, inventory.settings.targets, oversize_policies=True
                )
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


@click.command()
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
    """Review a change of the inventory between two git refs, offline: access and risk.

    \b
    Examples:
      kms-reconciler review --base main
      kms-reconciler review --base "$BASE_SHA" --head HEAD --report sarif=review.sarif
    """
    outputs = parse_reports(reports, REVIEW_FORMATS)
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
        # The settings that judge a change are the base's (trusted accounts, organizations,
        # administrators, deployers, thresholds): a pull request cannot add its own account
        # to trusted_accounts, or raise a threshold, and so pass its own review. A target
        # only the head has is judged by the head's.
        contexts = {dt.target.name: context_for(dt) for dt in [*head, *base]}
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
        write_report(out_path, REVIEW_FORMATS[out_fmt](report, threshold))
        run.info(f"Wrote the {out_fmt} review to {out_path}")
    return EXIT_CHANGES if report.blocking(threshold) else EXIT_OK


def _live_findings(
    run: Run, head: list[DesiredTarget], changes: list[KeyChange], locate: Locate
) -> list[ReviewFinding]:
    # A cosmetic change rewrites the policy too: the live policy it overwrites counts.
    touched = {
        c.target.name
        for c in changes
        if c.kind == "changed" or (c.base and c.head and c.policy_text_changed)
    }
    # ListGrants only for the keys the change takes policy access from.
    grants_for = grants_to_read(changes)

    def one(dt: DesiredTarget) -> tuple[dict[tuple[str, str], Any], dict[tuple[str, str], Any]]:
        conn = aws.connect(dt.target, run.aws)
        wanted = grants_for.get(dt.target.name, frozenset())
        observed = observe(run, dt, conn, grants_for=wanted)
        policies, grants = {}, {}
        for key in observed.keys:
            name = key.name(dt.identity_tag)
            if name is None or key.pending_deletion:
                continue
            policies[(dt.target.name, name)] = key.policy
            if name in wanted and key.grants is not None:
                grants[(dt.target.name, name)] = key.grants
        return policies, grants

    live: dict[tuple[str, str], Any] = {}
    live_grants: dict[tuple[str, str], Any] = {}
    found, failures = each_target([dt for dt in head if dt.target.name in touched], one)
    if failures:
        report_failures(failures)
        raise AwsError("--live could not read every target; the review is incomplete")
    for policies, grants in found:
        live.update(policies)
        live_grants.update(grants)
    return live_findings(changes, live, locate, live_grants)
