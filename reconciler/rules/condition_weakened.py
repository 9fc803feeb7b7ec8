"""KMS104: a condition of an Allow statement is removed or weakened."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import label, principals

RULE = Rule(
    id="KMS104",
    severity=Severity.HIGH,
    title="Condition removed or weakened on an Allow",
    rationale=(
        "Conditions are often the only thing that keeps a grant narrow (which account, which "
        "service, which encryption context). For an Allow statement kept under the same Sid, "
        "removing a condition key, adding values to it (more values admit more callers; for "
        "a Not operator, fewer values do), or changing its operator to an IfExists form "
        "(a missing key then passes) or to a looser one admits callers the base refused."
    ),
)

Block = Mapping[str, Any]


def _stricter_forms(operator: str) -> set[str]:
    """Operators that enforce at least what ``operator`` does (same values)."""
    # StringNotEquals excludes fewer callers than StringNotLike: not stricter
    equals = operator if "Not" in operator else operator.replace("Like", "Equals")
    forms = {operator.removesuffix("IfExists"), equals, equals.removesuffix("IfExists")}
    return forms - {operator}


def _added(operator: str, old: list[str], new: list[str]) -> list[str]:
    """Values that let more callers through: added values, removed ones for a Not operator."""
    if "Not" in operator:
        return sorted(set(old) - set(new))
    return sorted(set(new) - set(old))


def _weakenings(old: Block, new: Block) -> list[str]:
    lines: list[str] = []
    for operator, block in sorted(old.items()):
        if not isinstance(block, Mapping):
            if new.get(operator) != block:
                lines.append(f"{operator} is removed or changed")
            continue
        for key, values in sorted(block.items()):
            old_values = list(values)
            new_block = new.get(operator)
            if isinstance(new_block, Mapping) and key in new_block:
                more = _added(operator, old_values, list(new_block[key]))
                if more:
                    verb = "drops" if "Not" in operator else "adds"
                    lines.append(f"{operator} {key} {verb} {', '.join(more)}")
                continue
            moved = sorted(
                op
                for op, b in new.items()
                if isinstance(b, Mapping) and key in b and op != operator
            )
            if not moved:
                lines.append(f"{operator} {key} is removed")
                continue
            for op in moved:
                if op.endswith("IfExists") and not operator.endswith("IfExists"):
                    lines.append(f"{operator} {key} becomes {op}: a request without {key} passes")
                elif op in _stricter_forms(operator):
                    more = _added(op, old_values, list(new[op][key]))
                    if more:
                        lines.append(f"{operator} {key} becomes {op} and adds {', '.join(more)}")
                else:
                    lines.append(f"{operator} {key} becomes {op}")
    return lines


def _actions(statement: Mapping[str, Any]) -> str:
    if "Action" in statement:
        return ", ".join(statement["Action"])
    return f"every action but {', '.join(statement.get('NotAction', []))}"


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.base is None or change.head is None:
        return
    if not any(a.gained for a in change.access):
        return  # the engine proves nobody gains: the condition is reworded or narrowed
    for item in change.statements:
        before, after = item.before, item.after
        if item.kind != "changed" or before is None or after is None:
            continue
        if before.get("Effect") != "Allow" or after.get("Effect") != "Allow":
            continue
        old, new = before.get("Condition") or {}, after.get("Condition") or {}
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            continue
        lines = _weakenings(old, new)
        if not lines:
            continue
        who = ", ".join(principals(after)) or "its principals"
        more = f" (and {len(lines) - 1} more, see details)" if len(lines) > 1 else ""
        yield Hit(
            f"key {change.name}: {label(after)} allowing {who} {_actions(after)} weakens its "
            f"condition: {lines[0]}{more}",
            sid=item.sid,
            details=tuple(lines),
        )
