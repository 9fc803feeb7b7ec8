"""KMS004: nobody who should manage the key can change its policy any more (lockout)."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.findings import Rule, Severity
from reconciler.policy import can_manage_policy
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import actions, label

RULE = Rule(
    id="KMS004",
    severity=Severity.CRITICAL,
    title="Key policy lockout: no administrator can change the policy",
    rationale=(
        "If neither the account root delegation nor an inventory admin principal keeps "
        "kms:PutKeyPolicy (through an Allow without Condition that no unconditional Deny "
        "takes back), nobody can repair the policy afterwards: the key becomes unmanageable "
        "and only AWS Support can help. KMS refuses such a policy unless the lockout safety "
        "check is bypassed."
    ),
)

PUT_KEY_POLICY = "kms:PutKeyPolicy"


def check(subject: Subject) -> Iterable[Hit]:
    state = subject.state("head")
    if state is None or state.policy is None:
        return
    doc = state.policy
    ctx = subject.context
    admins = ctx.admin_principals
    if can_manage_policy(doc, admins, account_id=ctx.account_id, partition=ctx.partition):
        return
    root = f"arn:{ctx.partition}:iam::{ctx.account_id}:root"
    who = ", ".join((root, *admins))
    details = [f"principals that should keep kms:PutKeyPolicy: {who}"]
    # An unconditional Deny may be what takes it away: then the finding is located there.
    statements = subject.statements("head")
    denies = [
        s
        for s in statements
        if s.get("Effect") == "Deny" and "Condition" not in s and PUT_KEY_POLICY in actions(s)
    ]
    allows_only = {**doc, "Statement": [s for s in statements if s.get("Effect") != "Deny"]}
    if denies and can_manage_policy(
        allows_only, admins, account_id=ctx.account_id, partition=ctx.partition
    ):
        culprits = ", ".join(label(s) for s in denies)
        verb = "deny" if len(denies) > 1 else "denies"
        yield Hit(
            f"{culprits} {verb} kms:PutKeyPolicy to every principal that could manage the key "
            f"({who}): nobody can change this key policy any more",
            sid=denies[0].get("Sid"),
            details=tuple(details),
        )
        return
    details.append(
        "kms:PutKeyPolicy must be allowed to one of them by a statement without Condition"
    )
    yield Hit(
        f"no statement without Condition allows kms:PutKeyPolicy to the account root or an "
        f"admin principal ({who}): nobody can change this key policy any more",
        details=tuple(details),
    )
