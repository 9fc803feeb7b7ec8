"""KMS018 (opt-in): a key that bypasses the lockout check carries no Deny guarding it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import actions, conditions

RULE = Rule(
    id="KMS018",
    severity=Severity.HIGH,
    title="Lockout bypass without a Deny guarding it",
    rationale=(
        "Opt-in (inventory.yaml review.require_deny_on_bypass: true). A key whose spec sets "
        "bypass_policy_lockout_safety_check is handed over deliberately, but afterwards "
        "anyone with kms:PutKeyPolicy could use the same bypass to put a policy that locks "
        "every administrator out. The key policy must then carry an explicit Deny of "
        "kms:PutKeyPolicy under the condition "
        '{"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}} (the condition key KMS '
        "provides for this), exempting the deployer if it must apply with the bypass again "
        "(e.g. ArnNotEquals aws:PrincipalArn). KMS004 covers a policy that locks out now; "
        "KMS005 that the bypass is set at all."
    ),
)

BYPASS_KEY = "kms:bypasspolicylockoutsafetycheck"


def guards(statement: Mapping[str, Any]) -> bool:
    """A Deny of kms:PutKeyPolicy whenever the request bypasses the lockout check."""
    if statement.get("Effect") != "Deny" or "kms:PutKeyPolicy" not in actions(statement):
        return False
    return any(
        operator == "Bool" and key == BYPASS_KEY and [v.lower() for v in values] == ["true"]
        for operator, key, values in conditions(statement)
    )


def check(subject: Subject) -> Iterable[Hit]:
    head = subject.head
    if head is None or not subject.context.require_deny_on_bypass:
        return
    if not head.bypass_policy_lockout_safety_check:
        return
    if any(guards(s) for s in subject.statements("head")):
        return
    yield Hit(
        f"key {head.name} sets bypass_policy_lockout_safety_check but its policy has no Deny "
        "of kms:PutKeyPolicy when kms:BypassPolicyLockoutSafetyCheck is true, so anyone with "
        "kms:PutKeyPolicy can use the bypass again to lock the key",
        details=(
            'add {"Effect": "Deny", "Principal": "*", "Action": "kms:PutKeyPolicy", '
            '"Resource": "*", "Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": '
            '"true"}}} (exempt the deployer with ArnNotEquals aws:PrincipalArn if it applies '
            "with the bypass)",
        ),
    )
