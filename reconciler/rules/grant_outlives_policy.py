"""KMS112: the policy takes access away from a principal that a declared grant still gives it."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject, outliving_grants

RULE = Rule(
    id="KMS112",
    severity=Severity.HIGH,
    title="A grant keeps access the policy removes",
    rationale=(
        "KMS allows a request when the key policy, an IAM policy the key policy delegates "
        "to, or a grant allows it. Taking an operation away from a principal in the key "
        "policy does not take it away while a grant gives it to the same principal: the "
        "removal is not what it looks like. Remove the grant too (or say why it stays "
        "with a waiver). `review --live` checks the grants that exist on the key as well."
    ),
)


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.base is None or change.head is None or not change.head.state.grants:
        return
    for found in outliving_grants(change.access, change.head.state.grants):
        grant, access = found.grant, found.access
        yield Hit(
            f"key {change.name}: the policy no longer allows {', '.join(found.operations)} "
            f"to {access.principal}, but the declared grant '{grant.label}' still does",
            details=(
                f"grant '{grant.label}': {grant.text}",
                *([access.witness] if access.witness else []),
            ),
        )
