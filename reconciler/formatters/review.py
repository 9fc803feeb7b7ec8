"""Policy reviews as a PR comment (Markdown), JSON, SARIF and text."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.findings import Severity
from reconciler.formatters.plan import cut, fit_blocks
from reconciler.formatters.sarif import SarifResult, SarifRule, sarif_document
from reconciler.policy import ALL_KMS_ACTIONS, AccessChange
from reconciler.review import KeyChange, ReviewFinding, ReviewReport, canonical_policy_diff

MARKER = "<!-- kms-reconciler-review -->"
_ICON = {
    Severity.CRITICAL: ":rotating_light:",
    Severity.HIGH: ":red_circle:",
    Severity.MEDIUM: ":orange_circle:",
    Severity.LOW: ":yellow_circle:",
    Severity.INFO: ":information_source:",
}


def _counts(findings: list[ReviewFinding]) -> str:
    existing = sum(1 for f in findings if not f.introduced)
    findings = [f for f in findings if f.introduced]
    live = [f for f in findings if not f.waived]
    by = Counter(f.severity for f in live)
    parts = [f"{by[s]} {s.label}" for s in sorted(Severity, reverse=True) if by[s]]
    waived = len(findings) - len(live)
    if waived:
        parts.append(f"{waived} waived")
    if existing:
        parts.append(f"{existing} on untouched keys")
    return ", ".join(parts) or "none"


def verdict(report: ReviewReport, fail_on: Severity) -> str:
    blocking = report.blocking(fail_on)
    if blocking:
        return (
            f"{len(blocking)} blocking finding(s) at or above {fail_on.label}: "
            "this change needs a fix or a waiver."
        )
    changed = report.changed
    if not changed:
        return "No key changes."
    if not any(c.access for c in changed) and not any(
        c.kind in ("added", "removed") for c in changed
    ):
        return "No change in access."
    return f"No blocking findings (at or above {fail_on.label})."


def _who(change: AccessChange) -> str:
    return change.principal


def _when(change: AccessChange) -> str:
    return change.conditions or ""


def actions_text(actions: frozenset[str]) -> str:
    """Actions for people: every KMS action reads as kms:*."""
    if actions and actions >= ALL_KMS_ACTIONS:
        return "kms:* (every action)"
    return ", ".join(sorted(actions))


def _access_rows(change: KeyChange) -> list[str]:
    rows = []
    for ac in change.access:
        gained = actions_text(ac.gained)
        lost = actions_text(ac.lost)
        when = f"`{_when(ac)}`" if _when(ac) else "always"
        rows.append(f"| `{_who(ac)}` | {gained} | {lost} | {when} |")
    return rows


def _witness_lines(change: KeyChange) -> list[str]:
    """The engine's proof, one request per access change: what is newly allowed or denied."""
    return [f"- {_cell(ac.witness)}" for ac in change.access if ac.witness]


def _field_lines(change: KeyChange) -> list[str]:
    return [
        f"- `{f.field}`: `{json.dumps(f.before, default=str)}` → "
        f"`{json.dumps(f.after, default=str)}`"
        for f in change.fields
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _finding_row(f: ReviewFinding) -> str:
    where = f"`{f.file}:{f.line}`" if f.file and f.line else (f"`{f.file}`" if f.file else "")
    message = _cell(f.message)
    if f.waiver:
        w = f.waiver
        message = f"~~{message}~~ waived by {_cell(w.owner)} until {w.expires}: {_cell(w.reason)}"
    elif f.expired_waiver:
        w = f.expired_waiver
        message += f" (waiver by {_cell(w.owner)} expired {w.expires})"
    return (
        f"| {_ICON[f.severity]} {f.severity.label} | `{f.rule.id}` {_cell(f.rule.title)} | "
        f"{f.target}/{f.key} | {message} | {where} |"
    )


def _grouped_rows(findings: list[ReviewFinding]) -> list[str]:
    """One row per finding; the same finding on many keys is one row naming them all."""
    groups: dict[tuple[Any, ...], list[ReviewFinding]] = {}
    for f in findings:
        shape = f.message.replace(f"'{f.key}'", "'…'").replace(f"key {f.key}", "key …")
        groups.setdefault((f.rule.id, f.severity, f.waived, shape), []).append(f)
    rows = []
    for members in groups.values():
        if len(members) < 3:
            rows += [_finding_row(f) for f in members]
            continue
        first = members[0]
        keys = [f"{f.target}/{f.key}" for f in members]
        shown = (
            ", ".join(keys[:5]) + f" and {len(keys) - 5} more" if len(keys) > 5 else ", ".join(keys)
        )
        message = _cell(first.message)
        if first.key:
            message = message.replace(f"'{first.key}'", "'…'").replace(f"key {first.key}", "key …")
        rows.append(
            f"| {_ICON[first.severity]} {first.severity.label} | `{first.rule.id}` "
            f"{_cell(first.rule.title)} | {len(members)} keys: {shown} | {message} | "
            f"`{first.file}:{first.line}` |"
        )
    return rows


def review_markdown(report: ReviewReport, fail_on: Severity = Severity.HIGH) -> str:
    """The pull-request comment (found again by its hidden marker), at most 60,000 chars."""
    return fit_blocks(lambda max_lines: _markdown(report, fail_on, max_lines))


def _markdown(report: ReviewReport, fail_on: Severity, max_lines: int | None) -> str:
    changed = report.changed
    kinds = Counter(c.kind for c in changed)
    refs = f"`{report.base_ref}` → `{report.head_ref}`" if report.base_ref else ""
    lines = [
        MARKER,
        f"## kms-reconciler review {refs}".rstrip(),
        "",
        f"**{verdict(report, fail_on)}**",
        "",
        "| keys changed | added | removed | with access changes | findings |",
        "| ---: | ---: | ---: | ---: | --- |",
        f"| {kinds['changed']} | {kinds['added']} | {kinds['removed']} | "
        f"{sum(1 for c in changed if c.access)} | {_counts(list(report.findings))} |",
    ]
    by_template: dict[str, list[str]] = {}
    for c in changed:
        if c.kind == "changed" and c.policy_changed and c.template.startswith("template "):
            by_template.setdefault(c.template.removeprefix("template "), []).append(
                f"{c.target.name}/{c.name}"
            )
    for template, keys in sorted(by_template.items()):
        if len(keys) > 1:
            shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            lines += [
                "",
                f"Template `{template}` changes the policy of **{len(keys)} keys**: {shown}.",
            ]
    if changed:
        lines += ["", "### Access changes", ""]
        section: list[str] = []
        # Keys whose change reads the same (one template, many keys) share one section.
        groups: dict[tuple[str, ...], list[KeyChange]] = {}
        for change in changed:
            shape = (change.kind, change.template, *_access_rows(change), *_field_lines(change))
            groups.setdefault(shape, []).append(change)
        for members in groups.values():
            change = members[0]
            src = change.current.source
            if len(members) == 1:
                title = (
                    f"#### {change.target.name} / {change.name} ({change.kind}) "
                    f"— `{src.file}:{src.line}`, {change.template}"
                )
            else:
                names = [f"{m.target.name}/{m.name}" for m in members]
                shown = ", ".join(names[:10]) + (
                    f" and {len(names) - 10} more" if len(names) > 10 else ""
                )
                title = (
                    f"#### {len(members)} keys ({change.kind}), the same change: {shown} "
                    f"— {change.template}"
                )
            section += [title, ""]
            if change.access:
                section += [
                    "| principal | gains | loses | when |",
                    "| --- | --- | --- | --- |",
                    *_access_rows(change),
                ]
                witnesses = _witness_lines(change)
                if witnesses:
                    section += ["", "Requests that show it:", "", *witnesses]
            elif change.policy_text_changed and change.base and change.head:
                section.append("No change in access (the policy text changes cosmetically).")
            else:
                section.append("No change in access.")
            fields = _field_lines(change)
            if fields:
                section += ["", *fields]
            section.append("")
        lines += cut(section, max_lines, "the JSON report has every change")
    introduced = [f for f in report.findings if f.introduced]
    existing = [f for f in report.findings if not f.introduced]
    table = ["| severity | rule | key | finding | where |", "| --- | --- | --- | --- | --- |"]
    if introduced:
        rows = _grouped_rows(introduced)
        lines += [
            "### Findings",
            "",
            *table,
            *cut(rows, max_lines, "the SARIF or JSON report has every finding"),
        ]
    if existing:
        rows = _grouped_rows(existing)
        lines += [
            "",
            f"<details><summary>{len(existing)} finding(s) on keys this change does not "
            "touch (they do not block it)</summary>",
            "",
            *table,
            *cut(rows, max_lines, "the SARIF or JSON report has every finding"),
            "",
            "</details>",
        ]
    if report.findings:
        detailed = [f for f in introduced if f.details]
        if detailed:
            details = []
            for f in detailed:
                details += [f"**{f.rule.id}** {f.target}/{f.key}:", ""]
                details += [f"- {_cell(d)}" for d in f.details] + [""]
            lines += ["", "<details><summary>Finding details</summary>", ""]
            lines += cut(details, max_lines, "the JSON report has every detail")
            lines += ["</details>"]
    diffs = [(c, canonical_policy_diff(c)) for c in changed if c.policy_changed]
    if diffs:
        body: list[str] = []
        for change, diff in diffs:
            body += [f"{change.target.name} / {change.name}:", "", "```diff", diff, "```", ""]
        lines += ["", "<details><summary>Canonical policy JSON diff</summary>", ""]
        lines += cut("\n".join(body).splitlines(), max_lines, "run kms-reconciler review")
        lines += ["", "</details>"]
    lines += ["", "_Generated by `kms-reconciler review` (offline: no AWS call)._"]
    return "\n".join(lines) + "\n"


def _finding_dict(f: ReviewFinding) -> dict[str, Any]:
    waiver = f.waiver or f.expired_waiver
    return {
        "rule": f.rule.id,
        "title": f.rule.title,
        "severity": f.severity.label,
        "message": f.message,
        "target": f.target,
        "key": f.key,
        "file": f.file,
        "line": f.line,
        "details": list(f.details),
        "waived": f.waived,
        "introduced": f.introduced,
        "waiver": None
        if waiver is None
        else {
            "reason": waiver.reason,
            "owner": waiver.owner,
            "expires": waiver.expires.isoformat(),
            "expired": f.waiver is None,
        },
    }


def _change_dict(c: KeyChange) -> dict[str, Any]:
    return {
        "target": c.target.name,
        "key": c.name,
        "kind": c.kind,
        "policy_source": c.template,
        "fields": [{"field": f.field, "before": f.before, "after": f.after} for f in c.fields],
        "access": [
            {
                "principal": a.principal,
                "gained": sorted(a.gained),
                "lost": sorted(a.lost),
                "conditions": json.loads(a.conditions) if a.conditions else None,
                "witness": a.witness,
            }
            for a in c.access
        ],
        "cosmetic_policy_change": c.policy_text_changed and not c.policy_changed,
    }


def review_json(report: ReviewReport, fail_on: Severity = Severity.HIGH) -> str:
    document = {
        "format_version": report.format_version,
        "base": report.base_ref,
        "head": report.head_ref,
        "verdict": verdict(report, fail_on),
        "blocking": len(report.blocking(fail_on)),
        "changes": [_change_dict(c) for c in report.changed],
        "findings": [_finding_dict(f) for f in report.findings],
    }
    return json.dumps(document, indent=2, default=str) + "\n"


def review_sarif(report: ReviewReport, fail_on: Severity = Severity.HIGH) -> str:
    sarif_rules = [
        SarifRule(r.id, _sarif_level(r.severity), r.title, r.rationale)
        for r in report.rules.values()
    ]
    results = [
        SarifResult(
            rule=f.rule.id,
            severity=_sarif_level(f.severity),
            message=f"[{f.target}/{f.key}] {f.message}"
            + ("\n" + "\n".join(f.details) if f.details else ""),
            file=f.file,
            line=f.line,
            fingerprint="|".join([f.target, f.key or "", f.rule.id, f.message]),
            properties={"target": f.target, "key": f.key, "introduced": f.introduced},
        )
        for f in report.findings
        if not f.waived
    ]
    document = sarif_document(sarif_rules, results, category="kms-reconciler/review")
    return json.dumps(document, indent=2) + "\n"


def _sarif_level(severity: Severity) -> str:
    return "low" if severity is Severity.INFO else severity.label


def review_text(report: ReviewReport, fail_on: Severity = Severity.HIGH) -> str:
    lines = []
    for change in report.changed:
        lines.append(f"{change.target.name}/{change.name}: {change.kind}")
        for ac in change.access:
            when = f" when {ac.conditions}" if ac.conditions else ""
            if ac.gained:
                lines.append(f"  + {ac.principal} gains {actions_text(ac.gained)}{when}")
            if ac.lost:
                lines.append(f"  - {ac.principal} loses {actions_text(ac.lost)}{when}")
            if ac.witness:
                lines.append(f"    {ac.witness}")
        for fd in change.fields:
            lines.append(f"  ~ {fd.field}: {fd.before!r} -> {fd.after!r}")
    if report.findings:
        lines.append("")
    for f in report.findings:
        where = f"  # {f.file}:{f.line}" if f.file and f.line else ""
        mark = (" (waived)" if f.waived else "") + ("" if f.introduced else " (untouched key)")
        head = f"{f.severity.label.upper():<8} {f.rule.id} {f.target}/{f.key}"
        lines.append(f"{head}: {f.message}{mark}{where}")
        lines += [f"           {d}" for d in f.details]
    lines += ["", verdict(report, fail_on)]
    return "\n".join(lines) + "\n"


REVIEW_FORMATS: Mapping[str, Callable[[ReviewReport, Severity], str]] = {
    "markdown": review_markdown,
    "json": review_json,
    "sarif": review_sarif,
    "text": review_text,
}
