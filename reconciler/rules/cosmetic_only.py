"""KMS109: the policy text changes, but nobody gains or loses any access."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject

RULE = Rule(
    id="KMS109",
    severity=Severity.INFO,
    title="Cosmetic policy change: no change in access",
    rationale=(
        "Reordered statements, scalars written as lists, account IDs written as root ARNs "
        "and reformatting do not change who can do what. Said so the reviewer need not check."
    ),
)


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.base is None or change.head is None:
        return
    if change.policy_text_changed and not change.policy_changed:
        yield Hit("the policy text changes but no access changes (cosmetic only)")
