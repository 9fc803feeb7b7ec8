"""KMS105: a Deny statement is removed, or denies fewer principals, actions or cases."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._conditions import implies
from reconciler.rules._helpers import actions, principals

RULE = Rule(
    id="KMS105",
    severity=Severity.HIGH,
    title="Deny removed or narrowed",
    rationale=(
        "A Deny is a guard rail that no Allow, grant or IAM policy can override. Removing "
        "one, or taking principals or actions out of it, or adding a condition that makes "
        "it apply less often, silently restores access the base ruled out."
    ),
)

Conditions = Mapping[str, Any]
_ROOT = re.compile(r"AWS:arn:[\w-]+:iam::(\d{12}):root")


def _entries(statement: Mapping[str, Any]) -> list[str]:
    if "NotPrincipal" in statement:
        return ["NotPrincipal:" + ",".join(principals({"Principal": statement["NotPrincipal"]}))]
    return list(principals(statement))


def _covers(entry: str, principal: str) -> bool:
    if entry in ("*", principal):
        return True
    root = _ROOT.fullmatch(entry)
    if root is None or not principal.startswith("AWS:arn:"):
        return False
    parts = principal.split(":")
    return len(parts) > 5 and parts[5] == root.group(1)


def _denies(statements: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[str], Conditions]]:
    return [
        (s, _entries(s), s.get("Condition") or {}) for s in statements if s.get("Effect") == "Deny"
    ]


def _short(statement: Mapping[str, Any], lost: frozenset[str]) -> str:
    if lost == actions(statement) and "Action" in statement:
        return ", ".join(statement["Action"])
    shown = sorted(lost)
    return ", ".join(shown[:6]) + (f" and {len(shown) - 6} more" if len(shown) > 6 else "")


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.base is None or change.head is None:
        return
    head = _denies(subject.statements("head"))
    head_sids = {s.get("Sid") for s, _, _ in head if s.get("Sid")}
    for statement, entries, condition in _denies(subject.statements("base")):
        denied = actions(statement)
        lost: dict[str, frozenset[str]] = {}
        for principal in entries:
            still = frozenset(
                action
                for h_statement, h_entries, h_condition in head
                if any(_covers(e, principal) for e in h_entries) and implies(condition, h_condition)
                for action in actions(h_statement) & denied
            )
            if denied - still:
                lost[principal] = denied - still
        if not lost:
            continue
        sid = statement.get("Sid")
        lines = tuple(
            f"{p} is no longer denied {_short(statement, a)}" for p, a in sorted(lost.items())
        )
        name = f'Deny statement "{sid}"' if sid else "a Deny statement without Sid"
        what = "is narrowed" if sid and sid in head_sids else "is removed"
        more = f" (and {len(lines) - 1} more, see details)" if len(lines) > 1 else ""
        yield Hit(
            f"key {change.name}: {name} {what}, so {lines[0]}{more}",
            sid=sid,
            details=(*lines, f"base Deny: {json.dumps(statement, sort_keys=True)}"),
        )
