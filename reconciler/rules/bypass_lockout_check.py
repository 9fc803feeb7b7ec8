"""KMS005: the key spec bypasses KMS's policy lockout safety check."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject

RULE = Rule(
    id="KMS005",
    severity=Severity.MEDIUM,
    title="Policy lockout safety check bypassed",
    rationale=(
        "bypass_policy_lockout_safety_check lets PutKeyPolicy and CreateKey accept a policy "
        "that no longer lets the caller change it. KMS's own guard against an unmanageable "
        "key is then off; it should be set only for a reviewed, deliberate hand-over."
    ),
)


def check(subject: Subject) -> Iterable[Hit]:
    head = subject.head
    if head is not None and head.bypass_policy_lockout_safety_check:
        yield Hit(
            "the key spec sets bypass_policy_lockout_safety_check: KMS will not refuse a "
            "policy that locks the caller out of changing it"
        )
