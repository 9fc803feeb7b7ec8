"""KMS018 corpus (opt-in review.require_deny_on_bypass): a key with the lockout bypass must
carry a Deny of kms:PutKeyPolicy under kms:BypassPolicyLockoutSafetyCheck. Expected
verdicts from IAM evaluation: only a Deny that covers kms:PutKeyPolicy and whose condition
holds exactly when the bypass is requested (Bool ... "true") stops a later bypass."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import rules
from reconciler.findings import Severity
from reconciler.review import Subject
from reconciler.rules import bypass_without_deny
from tests.rules.harness import allow, change, context, key, policy

BYPASS = {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}


def deny(action: Any = "kms:PutKeyPolicy", condition: Any = BYPASS, **extra: Any) -> dict[str, Any]:
    return {**allow("*", action, sid="NoBypass", Condition=condition), "Effect": "Deny", **extra}


def found(doc: dict[str, Any], *, bypass: bool = True, required: bool = True) -> list[Any]:
    head = key(doc, bypass_policy_lockout_safety_check=bypass)
    subject = Subject(change(head_key=head), context(require_deny_on_bypass=required))
    return list(bypass_without_deny.check(subject))


FIRES: dict[str, dict[str, Any]] = {
    "no-deny-at-all": policy(),
    "deny-without-condition-of-another-action": policy(deny("kms:ScheduleKeyDeletion")),
    "deny-on-another-condition": policy(
        deny(condition={"Bool": {"aws:MultiFactorAuthPresent": "false"}})
    ),
    "deny-when-bypass-is-false": policy(
        deny(condition={"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "false"}})
    ),
    # an Allow with the condition guards nothing
    "allow-instead-of-deny": policy(allow("*", "kms:PutKeyPolicy", sid="A", Condition=BYPASS)),
}
QUIET: dict[str, dict[str, Any]] = {
    "deny-put-key-policy-on-bypass": policy(deny()),
    "deny-kms-star-on-bypass-case-insensitive": policy(
        deny("kms:*", {"Bool": {"KMS:bypassPolicyLockoutSafetyCheck": "TRUE"}})
    ),
    "deny-exempting-the-deployer": policy(
        deny(
            condition={
                **BYPASS,
                "ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/ci"},
            }
        )
    ),
}


@pytest.mark.parametrize("doc", FIRES.values(), ids=FIRES.keys())
def test_fires(doc: dict[str, Any]) -> None:
    (hit,) = found(doc)
    assert "sets bypass_policy_lockout_safety_check but its policy has no Deny" in hit.message
    assert (hit.severity or bypass_without_deny.RULE.severity) is Severity.HIGH


@pytest.mark.parametrize("doc", QUIET.values(), ids=QUIET.keys())
def test_quiet(doc: dict[str, Any]) -> None:
    assert found(doc) == []


def test_off_by_default_and_only_for_keys_with_the_bypass() -> None:
    assert found(policy(), required=False) == []
    assert found(policy(), bypass=False) == []
    assert "KMS018" in rules.all_rules()
