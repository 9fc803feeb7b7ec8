"""KMS015: the key policy is near (or over) the KMS size limit."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler import catalog
from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject

RULE = Rule(
    id="KMS015",
    severity=Severity.LOW,
    title="Key policy near or over the size limit",
    rationale=(
        f"KMS rejects a key policy over {catalog.POLICY_MAX_BYTES} bytes (PutKeyPolicy and "
        "CreateKey fail). Over 80% of it, the next statement added may not fit: a policy that "
        "grows per principal should move to grants or IAM policies before it does. Review "
        "reports a policy over the limit here (high), beside its access change; validate "
        "and plan refuse it as an input error, since KMS would refuse it."
    ),
)

NEAR = 0.8  # share of the limit from which the policy is reported


def check(subject: Subject) -> Iterable[Hit]:
    head = subject.head
    if head is None:
        return
    size = len(head.policy_text.encode("utf-8"))
    limit = catalog.POLICY_MAX_BYTES
    # The size goes in the details: the message stays the same while the policy stays in
    # its band, so a change that merely keeps a big policy big does not count as new.
    details = (f"{size} bytes, {size * 100 // limit}% of {limit}",)
    if size > limit:
        yield Hit(
            f"the key policy is over the KMS limit of {limit} bytes, so KMS will reject it; "
            "remove or merge statements, or move per-principal access to grants or IAM "
            "policies",
            severity=Severity.HIGH,
            details=details,
        )
    elif size > NEAR * limit:
        yield Hit(
            f"the key policy is over {NEAR:.0%} of the KMS limit of {limit} bytes; merge "
            "statements or move per-principal access to grants or IAM policies before it "
            "stops fitting",
            details=details,
        )
