"""KMS012: an ...IfExists condition operator in an Allow statement."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import conditions, label, sid

RULE = Rule(
    id="KMS012",
    severity=Severity.MEDIUM,
    title="IfExists condition operator in an Allow statement",
    rationale=(
        "An operator ending in IfExists is true when the request lacks the key, so in an Allow "
        "it grants access to every request that simply does not carry the key (a direct call "
        "instead of one through the service, say). In a Deny it is the safe choice and is "
        "not reported."
    ),
)


def check(subject: Subject) -> Iterable[Hit]:
    for statement in subject.statements("head"):
        if statement.get("Effect") != "Allow":
            continue
        found = [
            f"{operator} on {key}"
            for operator, key, _values in conditions(statement)
            if operator.lower().endswith("ifexists")
        ]
        if not found:
            continue
        yield Hit(
            f"{label(statement)} allows under {'; '.join(found)}, which also passes when the "
            "request does not carry the key; drop IfExists so that the condition must match",
            sid=sid(statement),
            details=tuple(found),
        )
