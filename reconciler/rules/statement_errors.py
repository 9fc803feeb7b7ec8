"""KMS014: statement mistakes: a Sid used twice, a Resource other than "*"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import label, sid

RULE = Rule(
    id="KMS014",
    severity=Severity.LOW,
    title='Statement errors: duplicate Sid, Resource other than "*"',
    rationale=(
        "Sids name statements in reviews, waivers and diffs: two statements with one Sid are "
        "confused with each other. In a key policy the resource is the key itself and is "
        'written "*": any other Resource (or a NotResource) is a mistake or does nothing.'
    ),
)


def _raw_statements(subject: Subject) -> list[Mapping[str, Any]]:
    """The head's statements as written: canonical form drops exact duplicates, and an
    exact duplicate still repeats its Sid."""
    state = subject.state("head")
    if state is None or state.policy is None:
        return []
    raw = state.policy.get("Statement")
    items = [raw] if isinstance(raw, Mapping) else raw if isinstance(raw, list) else []
    return [s for s in items if isinstance(s, Mapping)]


def _resources(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [str(item) for item in items]


def check(subject: Subject) -> Iterable[Hit]:
    sids = Counter(name for s in _raw_statements(subject) if (name := sid(s)))
    for repeated, count in sorted(sids.items()):
        if count > 1:
            yield Hit(
                f'{count} statements share the Sid "{repeated}"; give each statement its own Sid '
                "so that reviews, waivers and diffs can tell them apart",
                sid=repeated,
            )
    for statement in subject.statements("head"):
        # The statement may not apply to this key: a Deny that does not hold is a guard
        # gone (high), an Allow that does not hold is access that silently fails (medium).
        severity = Severity.HIGH if statement.get("Effect") == "Deny" else Severity.MEDIUM
        if "NotResource" in statement:
            shown = ", ".join(_resources(statement["NotResource"]))
            yield Hit(
                f"{label(statement)} uses NotResource ({shown}), which means nothing in a key "
                'policy whose only resource is the key itself; write "Resource": "*" instead',
                sid=sid(statement),
                severity=severity,
            )
        if "Resource" in statement:
            others = [r for r in _resources(statement["Resource"]) if r != "*"]
            if others:
                yield Hit(
                    f"{label(statement)} names the resource {', '.join(others)}, but in a key "
                    'policy the resource is the key itself; write "Resource": "*" instead',
                    sid=sid(statement),
                    severity=severity,
                )
