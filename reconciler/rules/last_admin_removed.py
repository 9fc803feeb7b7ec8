"""KMS103: the change removes the last principal that can change the key policy."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.findings import Rule, Severity
from reconciler.policy import PUT_KEY_POLICY, Policy, access, can_manage_policy, denied
from reconciler.review import Hit, Subject

RULE = Rule(
    id="KMS103",
    severity=Severity.CRITICAL,
    title="Last key administrator removed",
    rationale=(
        "A key policy nobody may change is a lockout: only AWS support can restore access. "
        "The base let the account root, an administrator of the inventory or everyone call "
        "kms:PutKeyPolicy without a condition, and the head does not; or the base granted "
        "kms:PutKeyPolicy to someone and the head grants it to nobody."
    ),
)


def _holders(doc: Policy, partition: str) -> set[str]:
    """Principals an Allow gives kms:PutKeyPolicy (under any condition), not denied it."""
    return {
        grant.principal
        for grant in access(doc, partition=partition)
        if PUT_KEY_POLICY in grant.actions
        and not denied(doc, grant.principal, PUT_KEY_POLICY, partition=partition)
    }


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.base is None or change.head is None:
        return
    base_doc, head_doc = change.base.state.policy, change.head.state.policy
    if base_doc is None or head_doc is None:
        return
    ctx = subject.context

    def manageable(doc: Policy) -> bool:
        return can_manage_policy(
            doc, ctx.admin_principals, account_id=ctx.account_id, partition=ctx.partition
        )

    base_holders, head_holders = (
        _holders(base_doc, ctx.partition),
        _holders(head_doc, ctx.partition),
    )
    admin_lost = manageable(base_doc) and not manageable(head_doc)
    all_lost = bool(base_holders) and not head_holders
    if not (admin_lost or all_lost):
        return
    lost = sorted(base_holders - head_holders)
    who = ", ".join(lost) if lost else "the account root and the administrators"
    verb = "loses" if len(lost) == 1 else "lose"
    if all_lost:
        message = (
            f"key {change.name}: {who} {verb} {PUT_KEY_POLICY} and nobody holds it in the head, "
            "so the key policy could never be changed again"
        )
    else:
        message = (
            f"key {change.name}: {who} {verb} {PUT_KEY_POLICY} and neither the account root nor "
            "an administrator may call it without a condition in the head, which locks the "
            "key policy"
        )
    admins = ", ".join(ctx.admin_principals) or "none declared"
    details = [
        f"account root arn:{ctx.partition}:iam::{ctx.account_id}:root; administrators: {admins}",
    ]
    if head_holders:
        details.append(
            f"{PUT_KEY_POLICY} stays with {', '.join(sorted(head_holders))}, only under a "
            "condition or for principals who are not administrators"
        )
    if change.head.bypass_policy_lockout_safety_check:
        details.append("the head sets bypass_policy_lockout_safety_check: KMS will not refuse it")
    yield Hit(message, details=tuple(details))
