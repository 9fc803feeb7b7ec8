"""Drift reports as text, JSON, Markdown (a GitHub issue body) and SARIF."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.drift import RULES, DriftReport, Finding, TargetDrift
from reconciler.findings import Severity
from reconciler.formatters.plan import Style, cut, fit_blocks, no_style, rotation_line
from reconciler.formatters.sarif import SarifResult, SarifRule, sarif_document
from reconciler.state import RotationInfo

_COLOUR = {Severity.HIGH: "red", Severity.MEDIUM: "yellow", Severity.LOW: "cyan"}


def counts(findings: list[Finding]) -> str:
    by = Counter(f.severity for f in findings)
    shown = [s for s in sorted(Severity, reverse=True) if s >= Severity.LOW or by[s]]
    return ", ".join(f"{by[s]} {s.label}" for s in shown if s <= Severity.HIGH or by[s])


def summary_line(report: DriftReport) -> str:
    findings = report.findings
    drifted = sum(1 for t in report.targets if t.findings)
    calls = f"{report.read_calls} read calls, no writes"
    if not findings:
        return f"No drift: {len(report.targets)} target(s) match the inventory ({calls})."
    return (
        f"Drift: {len(findings)} finding(s) in {drifted} of {len(report.targets)} target(s) "
        f"({counts(findings)}); {calls}."
    )


def _target_title(t: TargetDrift) -> str:
    return f"{t.target.name} ({t.target.account_id}, {t.target.region})"


def _known_rotation(t: TargetDrift) -> list[RotationInfo]:
    return [r for r in t.rotation if r.last or r.next or r.on_demand]


def drift_text(report: DriftReport, style: Style = no_style) -> str:
    lines: list[str] = []
    for t in report.targets:
        scope = f"{t.managed} managed, {t.unmanaged} unmanaged, {t.ignored} ignored key(s)"
        if not t.findings:
            lines.append(style(f"No drift in target {_target_title(t)}: {scope}.", "green"))
            lines.extend(_usage_unknown(t))
            continue
        lines.append(
            style(
                f"Drift in target {_target_title(t)}: {len(t.findings)} finding(s) "
                f"({counts(list(t.findings))}); {scope}.",
                "bold",
            )
        )
        for f in t.findings:
            where = f"  # {f.file}:{f.line}" if f.file and f.line else ""
            label = f"{f.severity.label.upper():<6}"
            lines.append(
                f"  {style(label, _COLOUR[f.severity])} {f.rule:<27} {f.message}"
                + style(where, "dim")
            )
            lines.extend(f"           {d}" for d in f.details)
        lines.extend(_usage_unknown(t))
        lines.append("")
    for t in report.targets:
        known = _known_rotation(t)
        if known:
            lines.append(f"Rotation in target {t.target.name}:")
            lines += [f"  {rotation_line(r)}" for r in known]
            lines.append("")
    lines.append(style(summary_line(report), "bold"))
    return "\n".join(lines) + "\n"


def _usage_unknown(t: TargetDrift) -> list[str]:
    """The keys whose use could not be read: unused-key cannot be told for them."""
    if not t.usage_unknown:
        return []
    shown = ", ".join(t.usage_unknown[:5]) + (" ..." if len(t.usage_unknown) > 5 else "")
    return [
        f"  note: the last use of {len(t.usage_unknown)} key(s) could not be read "
        f"(GetKeyLastUsage): {shown}; unused-key is not reported for them"
    ]


def _finding_dict(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "severity": f.severity.label,
        "message": f.message,
        "key": f.key,
        "key_id": f.key_id,
        "region": f.region,
        "field": f.field,
        "before": f.before,
        "after": f.after,
        "file": f.file,
        "line": f.line,
        "details": list(f.details),
        "monthly_cost_usd": f.monthly_cost,
    }


def drift_json(report: DriftReport) -> str:
    findings = report.findings
    by = Counter(f.severity.label for f in findings)
    document = {
        "format_version": report.format_version,
        "summary": {
            "findings": len(findings),
            "high": by["high"],
            "medium": by["medium"],
            "low": by["low"],
            "read_calls": report.read_calls,
            "drifted_targets": sum(1 for t in report.targets if t.findings),
        },
        "targets": [
            {
                "name": t.target.name,
                "account_id": t.target.account_id,
                "region": t.target.region,
                "read_calls": t.read_calls,
                "usage_reads": t.usage_reads,
                "usage_unknown": list(t.usage_unknown),
                "managed": t.managed,
                "unmanaged": t.unmanaged,
                "ignored": t.ignored,
                "findings": [_finding_dict(f) for f in t.findings],
                "rotation": [
                    {
                        "key": r.key,
                        "key_id": r.key_id,
                        "enabled": r.enabled,
                        "period_days": r.period_days,
                        "last_rotation": r.last.isoformat() if r.last else None,
                        "next_rotation": r.next.isoformat() if r.next else None,
                        "on_demand_rotations": r.on_demand,
                    }
                    for r in t.rotation
                ],
            }
            for t in report.targets
        ],
    }
    return json.dumps(document, indent=2, default=str) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def drift_markdown(report: DriftReport) -> str:
    """The body of a GitHub issue: one section per target, findings by severity."""
    return fit_blocks(lambda max_lines: _drift_markdown(report, max_lines))


def _drift_markdown(report: DriftReport, max_lines: int | None) -> str:
    lines = ["## KMS drift report", "", f"**{summary_line(report)}**"]
    for t in report.targets:
        lines += ["", f"### {_target_title(t)}", ""]
        if not t.findings:
            lines.append(f"No drift: {t.managed} managed key(s) match the inventory.")
            lines.extend(_usage_unknown(t))
            continue
        lines += [
            f"{len(t.findings)} finding(s): {counts(list(t.findings))}. "
            f"{t.managed} managed, {t.unmanaged} unmanaged, {t.ignored} ignored key(s).",
            "",
            "| severity | rule | key | finding | declared at |",
            "| --- | --- | --- | --- | --- |",
        ]
        rows = []
        for f in t.findings:
            key = f.key or f.key_id or ""
            where = f"`{f.file}:{f.line}`" if f.file and f.line else ""
            rows.append(
                f"| {f.severity.label} | `{f.rule}` | {_cell(key)} | {_cell(f.message)} | {where} |"
            )
        lines += cut(rows, max_lines, "the JSON or SARIF report has every finding")
        detailed = [f for f in t.findings if f.details]
        if detailed:
            details = []
            for f in detailed:
                details.append(f"**{_cell(f.key or f.key_id or '')}** `{f.rule}`")
                details += ["", "```", *f.details, "```", ""]
            lines += ["", "<details><summary>Details</summary>", ""]
            lines += cut(details, max_lines, "the JSON report has every detail")
            lines.append("</details>")
        lines.extend(line.strip() for line in _usage_unknown(t))
    rotation = [(t, r) for t in report.targets for r in _known_rotation(t)]
    if rotation:
        lines += ["", "<details><summary>Rotation</summary>", ""]
        lines += cut(
            [f"- {t.target.name}: {rotation_line(r)}" for t, r in rotation],
            max_lines,
            "the JSON report has every key",
        )
        lines += ["", "</details>"]
    lines += ["", "_Generated by `kms-reconciler drift` (read-only)._"]
    return "\n".join(lines) + "\n"


def drift_sarif(report: DriftReport) -> str:
    rules = [SarifRule(r.id, r.severity.label, r.title, r.rationale) for r in RULES.values()]
    results = [
        SarifResult(
            rule=f.rule,
            severity=f.severity.label,
            message=f"[{t.target.name}] {f.message}"
            + ("\n" + "\n".join(f.details) if f.details else ""),
            file=f.file,
            line=f.line,
            fingerprint="|".join(
                [t.target.name, f.rule, f.key or "", f.key_id or "", f.field or ""]
            ),
            properties={
                "target": t.target.name,
                "key": f.key,
                "key_id": f.key_id,
                **({"monthly_cost_usd": f.monthly_cost} if f.monthly_cost is not None else {}),
            },
        )
        for t in report.targets
        for f in t.findings
    ]
    return (
        json.dumps(sarif_document(rules, results, category="kms-reconciler/drift"), indent=2) + "\n"
    )


DRIFT_FORMATS: Mapping[str, Callable[[DriftReport], str]] = {
    "json": drift_json,
    "markdown": drift_markdown,
    "sarif": drift_sarif,
}
