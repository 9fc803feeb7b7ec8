"""KMS109: the policy text changes, but nobody gains or loses any access."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject

RULE = Rule(
    id="KMS109",
    severity=Severity.INFO,
    title="Cosmetic policy change: no change in access",
    rationale=(
        "Reordered statements, scalars written as lists, account IDs written as root ARNs, "
        "reformatting and renamed statement IDs (Sid) or policy Id do not change who can do "
        "what: IAM evaluates neither Sid nor Id. Said so the reviewer need not check."
    ),
)


def _body(statement: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in statement.items() if k != "Sid"}, sort_keys=True)


def _without_names(doc: dict[str, Any] | None) -> tuple[Any, list[str]] | None:
    """What IAM evaluates: the Version and the canonical statements without their Sid (as
    sorted JSON texts). The policy Id and the Sids are names only."""
    if doc is None:
        return None
    return doc.get("Version"), sorted(_body(s) for s in doc["Statement"])


def _renamed(base: dict[str, Any], head: dict[str, Any]) -> list[str]:
    """'Sid "A" -> "B"' for each statement whose Sid alone changed."""
    old = {_body(s): s.get("Sid") for s in base["Statement"]}
    lines = []
    for statement in head["Statement"]:
        before, after = old.get(_body(statement)), statement.get("Sid")
        if before != after:
            lines.append(f"Sid {json.dumps(before)} -> {json.dumps(after)}")
    if base.get("Id") != head.get("Id"):
        lines.append(f"Id {json.dumps(base.get('Id'))} -> {json.dumps(head.get('Id'))}")
    return lines


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.base is None or change.head is None or not change.policy_text_changed:
        return
    if not change.policy_changed:
        yield Hit("the policy text changes but no access changes (cosmetic only)")
        return
    base, head = subject.policy("base"), subject.policy("head")
    if base is None or head is None or _without_names(base) != _without_names(head):
        return
    yield Hit(
        "only statement IDs (Sid) or the policy Id change; no access changes (cosmetic only)",
        details=tuple(_renamed(base, head)),
    )
