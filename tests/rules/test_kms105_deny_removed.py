"""KMS105 corpus: a Deny removed, or denying fewer principals, actions or cases."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import rules
from reconciler.findings import Severity
from reconciler.rules import deny_removed
from tests.rules.diff_pairs import GUARD, NEVER_FIRE, NO_DELETION, PARTNER_ROOT, USE, Pair
from tests.rules.harness import ORG, OTHER_ACCOUNT, TRUSTED_ACCOUNT, hits, policy, role

TRUSTED_ROOT = f"arn:aws:iam::{TRUSTED_ACCOUNT}:root"
MFA_MISSING = {"Bool": {"aws:MultiFactorAuthPresent": "false"}}


def deny(
    principal: Any, action: Any, sid: str | None = "NoPartners", **extra: Any
) -> dict[str, Any]:
    statement = {"Effect": "Deny", "Principal": principal, "Action": action, "Resource": "*"}
    return {**({"Sid": sid} if sid else {}), **statement, **extra}


PARTNERS = deny({"AWS": [PARTNER_ROOT, TRUSTED_ROOT]}, "kms:Decrypt")

# id -> (base, head, what the message says after "key app: ")
FIRES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "deny-removed": (
        policy(USE, NO_DELETION),
        policy(USE),
        'Deny statement "NoDeletion" is removed, so * is no longer denied kms:ScheduleKeyDeletion',
    ),
    "org-guard-removed": (
        policy(USE, GUARD),
        policy(USE),
        'Deny statement "DenyOutsideOrg" is removed, so * is no longer denied kms:*',
    ),
    "deny-without-sid-removed": (
        policy(USE, deny("*", "kms:DisableKey", sid=None)),
        policy(USE),
        "a Deny statement without Sid is removed, so * is no longer denied kms:DisableKey",
    ),
    "deny-turned-into-allow": (
        policy(USE, NO_DELETION),
        policy(USE, {**NO_DELETION, "Effect": "Allow"}),
        'Deny statement "NoDeletion" is removed, so * is no longer denied kms:ScheduleKeyDeletion',
    ),
    "deny-loses-an-action": (
        policy(USE, deny("*", ["kms:ScheduleKeyDeletion", "kms:DisableKey"], sid="Guard")),
        policy(USE, deny("*", ["kms:ScheduleKeyDeletion"], sid="Guard")),
        'Deny statement "Guard" is narrowed, so * is no longer denied kms:DisableKey',
    ),
    "deny-loses-a-principal": (
        policy(USE, PARTNERS),
        policy(USE, deny({"AWS": PARTNER_ROOT}, "kms:Decrypt")),
        f'Deny statement "NoPartners" is narrowed, so AWS:{TRUSTED_ROOT} is no longer denied '
        "kms:Decrypt",
    ),
    "deny-narrowed-from-account-to-a-role": (
        policy(USE, deny({"AWS": OTHER_ACCOUNT}, "kms:Decrypt")),
        policy(USE, deny(role("Reader", OTHER_ACCOUNT), "kms:Decrypt")),
        f"so AWS:{PARTNER_ROOT} is no longer denied kms:Decrypt",
    ),
    "deny-gains-a-condition": (
        policy(USE, NO_DELETION),
        policy(USE, {**NO_DELETION, "Condition": MFA_MISSING}),
        'Deny statement "NoDeletion" is narrowed, so * is no longer denied kms:ScheduleKeyDeletion',
    ),
    "guard-exempts-another-org": (
        policy(USE, GUARD),
        policy(
            USE,
            {**GUARD, "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": [ORG, "o-zz"]}}},
        ),
        'Deny statement "DenyOutsideOrg" is narrowed, so * is no longer denied kms:*',
    ),
}

QUIET: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    "deny-widened-to-everyone": (
        policy(USE, deny({"AWS": PARTNER_ROOT}, "kms:Decrypt")),
        policy(USE, deny("*", "kms:Decrypt")),
    ),
    "deny-gains-actions": (
        policy(USE, deny("*", "kms:ScheduleKeyDeletion")),
        policy(USE, deny("*", ["kms:ScheduleKeyDeletion", "kms:DisableKey"])),
    ),
    "deny-widened-from-role-to-account": (
        policy(USE, deny(role("Reader", OTHER_ACCOUNT), "kms:Decrypt")),
        policy(USE, deny({"AWS": OTHER_ACCOUNT}, "kms:Decrypt")),
    ),
    "deny-sid-renamed": (policy(USE, NO_DELETION), policy(USE, {**NO_DELETION, "Sid": "Keep"})),
    "allow-removed": (policy(USE), policy(USE, root=False)),
    "added-key": (None, policy(USE, NO_DELETION)),
    "removed-key": (policy(USE, NO_DELETION), None),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    base, head, expected = case
    (hit,) = hits(deny_removed, base=base, head=head)
    assert (hit.severity or deny_removed.RULE.severity) is Severity.HIGH
    assert hit.message.startswith("key app: ")
    assert expected in hit.message


@pytest.mark.parametrize("case", QUIET.values(), ids=QUIET.keys())
def test_quiet(case: tuple[dict[str, Any] | None, dict[str, Any] | None]) -> None:
    base, head = case
    assert hits(deny_removed, base=base, head=head) == []


@pytest.mark.parametrize("pair", NEVER_FIRE.values(), ids=NEVER_FIRE.keys())
def test_never_fires(pair: Pair) -> None:
    base, head = pair
    assert hits(deny_removed, base=base, head=head) == []


def test_one_hit_per_base_deny_every_principal_in_details() -> None:
    base = policy(USE, PARTNERS, NO_DELETION)
    found = hits(deny_removed, base=base, head=policy(USE))
    by_sid = {h.sid: h for h in found}
    assert len(found) == 2 and set(by_sid) == {"NoDeletion", "NoPartners"}
    assert by_sid["NoPartners"].details[:2] == (
        f"AWS:{TRUSTED_ROOT} is no longer denied kms:Decrypt",
        f"AWS:{PARTNER_ROOT} is no longer denied kms:Decrypt",
    )
    assert by_sid["NoPartners"].message.endswith("(and 1 more, see details)")


def test_registered() -> None:
    assert rules.all_rules()["KMS105"] is deny_removed.RULE
