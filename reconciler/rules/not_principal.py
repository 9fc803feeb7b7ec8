"""KMS002: an Allow with NotPrincipal: everyone except a few may use the key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import actions, label

RULE = Rule(
    id="KMS002",
    severity=Severity.HIGH,
    title="Allow with NotPrincipal",
    rationale=(
        "An Allow with NotPrincipal grants its actions to every principal of every AWS "
        "account (and anonymous callers) except the few it lists. Name the principals that "
        "need access in Principal instead."
    ),
)


def _names(value: Any) -> list[str]:
    """A canonical NotPrincipal value as readable names."""
    if value == "*":
        return ["*"]
    if not isinstance(value, Mapping):
        return [str(value)]
    out: list[str] = []
    for kind, items in sorted(value.items()):
        for item in items:
            out.append(item if kind == "AWS" else f"{kind.lower()} {item}")
    return out


def _action_text(statement: Mapping[str, Any]) -> str:
    if "NotAction" in statement:
        return "every action except " + ", ".join(statement["NotAction"])
    return ", ".join(statement.get("Action", [])) or "no action"


def check(subject: Subject) -> Iterable[Hit]:
    for statement in subject.statements("head"):
        if statement.get("Effect") != "Allow" or "NotPrincipal" not in statement:
            continue
        excluded = _names(statement["NotPrincipal"])
        granted = actions(statement)
        yield Hit(
            f"{label(statement)} allows every principal except {', '.join(excluded)} "
            f"to call {_action_text(statement)}",
            sid=statement.get("Sid"),
            details=(f"KMS actions granted: {', '.join(sorted(granted)) or 'none'}",),
        )
