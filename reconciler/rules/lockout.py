"""KMS004: nobody who should manage the key can change its policy any more (lockout)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.policy import can_manage_policy, denied
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
        "check is bypassed. The same holds, one level down, for the deployer: a change that "
        "takes kms:PutKeyPolicy away from a principal in inventory.yaml's "
        "review.deployer_arns (directly, or through its account root's delegation) leaves CI "
        "unable to apply the next change, or to revert this one (high)."
    ),
)

PUT_KEY_POLICY = "kms:PutKeyPolicy"


def _account(arn: str) -> str:
    return arn.split(":")[4]


def _deployer_hits(subject: Subject) -> Iterable[Hit]:
    """A deployer that could put the base policy (or any, for an added key) and cannot put
    the head policy. Its account root's delegation counts: IAM then decides."""
    ctx = subject.context
    head = subject.state("head")
    base = subject.state("base")
    if head is None or head.policy is None:
        return
    for deployer in ctx.deployer_arns:
        account = _account(deployer)

        def can(doc: Mapping[str, Any], who: str = deployer, acct: str = account) -> bool:
            # allowed to it or its account root, and not denied to it (a Deny on the
            # deployer itself beats the root delegation it would act through)
            return can_manage_policy(
                doc, [who], account_id=acct, partition=ctx.partition
            ) and not denied(doc, who, PUT_KEY_POLICY, partition=ctx.partition)

        if base is not None and base.policy is not None and not can(base.policy):
            continue  # it could not before: not this change's doing
        if can(head.policy):
            continue
        yield Hit(
            f"the deployer {deployer} loses kms:PutKeyPolicy: CI cannot apply the next "
            "change to this key policy, nor revert this one",
            severity=Severity.HIGH,
            details=(
                "kms:PutKeyPolicy must reach it through an Allow without Condition (to it, "
                f"or to arn:{ctx.partition}:iam::{account}:root and its IAM policy) that no "
                "unconditional Deny takes back",
            ),
        )


def check(subject: Subject) -> Iterable[Hit]:
    state = subject.state("head")
    if state is None or state.policy is None:
        return
    yield from _deployer_hits(subject)
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
