"""KMS107: the root delegation (kms:* to the account root) is added or removed."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.findings import Rule, Severity
from reconciler.policy import ALL_KMS_ACTIONS, Policy, access
from reconciler.review import Hit, Subject

RULE = Rule(
    id="KMS107",
    severity=Severity.MEDIUM,
    title="Root delegation added or removed",
    rationale=(
        "An Allow of kms:* to arn:aws:iam::<account>:root without a condition hands control "
        "of the key to the account's IAM policies. Adding it (medium) is usual, it is KMS's "
        "default policy, but it is a widening to every IAM principal of the account that an "
        "IAM policy gives kms:*, now or later, including decrypt and deletion; so it is "
        "ranked at least as an access widening (KMS102, medium), not as a cosmetic note. "
        "Removing it (high) means IAM policies no longer grant any use of the key and only "
        "the key policy's named principals can act: admins and roles granted through IAM "
        "lose access."
    ),
)


def _delegates(doc: Policy | None, root: str, partition: str) -> tuple[bool, str | None]:
    """Whether the root gets every KMS action without a condition, and a Sid doing so."""
    if doc is None:
        return False, None
    granted: frozenset[str] = frozenset()
    sid: str | None = None
    for grant in access(doc, partition=partition):
        if grant.principal == root and not grant.conditions:
            granted |= grant.actions
            sid = sid or grant.sid
    return granted >= ALL_KMS_ACTIONS, sid


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.base is None or change.head is None:
        return
    ctx = subject.context
    arn = f"arn:{ctx.partition}:iam::{ctx.account_id}:root"
    before, base_sid = _delegates(change.base.state.policy, f"AWS:{arn}", ctx.partition)
    after, head_sid = _delegates(change.head.state.policy, f"AWS:{arn}", ctx.partition)
    if after and not before:
        yield Hit(
            f"key {change.name}: the root delegation is added: {arn} gains kms:*, so IAM "
            f"policies in account {ctx.account_id} can grant any use of the key",
            sid=head_sid,
        )
    elif before and not after:
        yield Hit(
            f"key {change.name}: the root delegation is removed: {arn} no longer has kms:*, so "
            f"IAM policies in account {ctx.account_id} no longer grant any use of the key",
            sid=base_sid,
            severity=Severity.HIGH,
            details=(
                "principals that use the key through IAM policies (not named in the key "
                "policy) lose access when this is applied",
            ),
        )
