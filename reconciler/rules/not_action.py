"""KMS003: an Allow with NotAction: every action except a few, including future ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import DECRYPT_ACTIONS, PERMISSION_ACTIONS, actions, label

RULE = Rule(
    id="KMS003",
    severity=Severity.HIGH,
    title="Allow with NotAction",
    rationale=(
        "An Allow with NotAction grants every action except the listed ones, including "
        "kms:PutKeyPolicy, kms:CreateGrant, kms:ScheduleKeyDeletion and any action KMS adds "
        "later. List the actions the principal needs in Action instead."
    ),
)

# Granted actions worth naming in the message when NotAction lets them through.
NOTABLE = PERMISSION_ACTIONS | DECRYPT_ACTIONS | {"kms:ScheduleKeyDeletion", "kms:DisableKey"}


def _who(statement: Mapping[str, Any]) -> str:
    if "NotPrincipal" in statement:
        return "every principal except " + ", ".join(_names(statement["NotPrincipal"]))
    names = _names(statement.get("Principal"))
    return ", ".join(names) if names else "no principal"


def _names(value: Any) -> list[str]:
    """A canonical Principal / NotPrincipal value as readable names."""
    if value is None:
        return []
    if value == "*":
        return ['"*" (every principal)']
    if not isinstance(value, Mapping):
        return [str(value)]
    out: list[str] = []
    for kind, items in sorted(value.items()):
        for item in items:
            out.append(item if kind == "AWS" else f"{kind.lower()} {item}")
    return out


def check(subject: Subject) -> Iterable[Hit]:
    for statement in subject.statements("head"):
        if statement.get("Effect") != "Allow" or "NotAction" not in statement:
            continue
        granted = actions(statement)
        notable = sorted(granted & NOTABLE)
        also = f", including {', '.join(notable)}" if notable else ""
        yield Hit(
            f"{label(statement)} allows {_who(statement)} every action except "
            f"{', '.join(statement['NotAction'])} ({len(granted)} KMS actions{also})",
            sid=statement.get("Sid"),
            details=(f"KMS actions granted: {', '.join(sorted(granted)) or 'none'}",),
        )
