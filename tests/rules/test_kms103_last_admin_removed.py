"""KMS103 corpus: the change leaves nobody who may change the key policy."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import rules
from reconciler.findings import Severity
from reconciler.review import Subject
from reconciler.rules import last_admin_removed
from tests.factories import ACCOUNT
from tests.rules.diff_pairs import NEVER_FIRE, USE, Pair
from tests.rules.harness import ROOT, allow, hits, key, policy, role
from tests.rules.harness import change as key_change
from tests.rules.harness import context as review_context

ROOT_WHO = f"AWS:arn:aws:iam::{ACCOUNT}:root"
ADMIN = allow(role("KeyAdmin"), "kms:*", sid="Admin")
MFA = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
DENY_PUT = {
    "Sid": "NoPolicyChanges",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "kms:PutKeyPolicy",
    "Resource": "*",
}

# id -> (base, head, "<principal> lose(s) kms:PutKeyPolicy" expected in the message)
FIRES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "root-delegation-removed-no-admin": (
        policy(USE),
        policy(USE, root=False),
        f"{ROOT_WHO} loses kms:PutKeyPolicy and nobody holds it",
    ),
    "admin-role-removed": (
        policy(USE, ADMIN, root=False),
        policy(USE, root=False),
        f"AWS:{role('KeyAdmin')['AWS']} loses kms:PutKeyPolicy and nobody holds it",
    ),
    "root-narrowed-by-not-action": (
        policy(USE),
        policy(
            USE,
            {**{k: v for k, v in ROOT.items() if k != "Action"}, "NotAction": "kms:PutKeyPolicy"},
            root=False,
        ),
        f"{ROOT_WHO} loses kms:PutKeyPolicy",
    ),
    "unconditional-deny-of-put-key-policy-added": (
        policy(USE, ADMIN),
        policy(USE, ADMIN, DENY_PUT),
        f"AWS:{role('KeyAdmin')['AWS']}, {ROOT_WHO} lose kms:PutKeyPolicy and nobody holds it",
    ),
    "management-only-under-a-condition": (
        policy(USE),
        policy(USE, {**ROOT, "Condition": MFA}, root=False),
        "the account root and the administrators lose kms:PutKeyPolicy and neither",
    ),
    "only-a-non-admin-keeps-it": (
        policy(USE),
        policy(USE, allow(role("App"), "kms:PutKeyPolicy", sid="AppManages"), root=False),
        f"{ROOT_WHO} loses kms:PutKeyPolicy and neither the account root nor an administrator",
    ),
    "last-conditional-holder-removed": (
        policy(USE, allow(role("Ops"), "kms:PutKeyPolicy", sid="Ops", Condition=MFA), root=False),
        policy(USE, root=False),
        f"AWS:{role('Ops')['AWS']} loses kms:PutKeyPolicy and nobody holds it",
    ),
}

QUIET: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    "root-removed-admin-stays": (policy(USE, ADMIN), policy(USE, ADMIN, root=False)),
    "root-replaced-by-admin-with-a-path": (
        policy(USE),
        policy(
            USE,
            allow({"AWS": f"arn:aws:iam::{ACCOUNT}:role/security/KeyAdmin"}, "kms:*", sid="A"),
            root=False,
        ),
    ),
    "nobody-could-manage-before-either": (
        policy(USE, root=False),
        policy({**USE, "Action": "kms:Decrypt"}, root=False),
    ),
    "conditional-deny-of-put-key-policy": (
        policy(USE),
        policy(USE, {**DENY_PUT, "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}}),
    ),
    "added-key-without-admin": (None, policy(USE, root=False)),
    "removed-key": (policy(USE), None),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    base, head, expected = case
    (hit,) = hits(last_admin_removed, base=base, head=head)
    assert (hit.severity or last_admin_removed.RULE.severity) is Severity.CRITICAL
    assert hit.message.startswith("key app: ")
    assert expected in hit.message


@pytest.mark.parametrize("case", QUIET.values(), ids=QUIET.keys())
def test_quiet(case: tuple[dict[str, Any] | None, dict[str, Any] | None]) -> None:
    base, head = case
    assert hits(last_admin_removed, base=base, head=head) == []


@pytest.mark.parametrize("pair", NEVER_FIRE.values(), ids=NEVER_FIRE.keys())
def test_never_fires(pair: Pair) -> None:
    base, head = pair
    assert hits(last_admin_removed, base=base, head=head) == []


def test_admins_come_from_the_context() -> None:
    base, head = policy(USE, ADMIN), policy(USE, ADMIN, root=False)
    no_admins = review_context(admin_principals=())
    (hit,) = hits(last_admin_removed, base=base, head=head, ctx=no_admins)
    assert f"{ROOT_WHO} loses kms:PutKeyPolicy and neither" in hit.message
    assert f"kms:PutKeyPolicy stays with AWS:{role('KeyAdmin')['AWS']}" in hit.details[1]


def test_details_say_when_the_lockout_check_is_bypassed() -> None:
    head = key(policy(USE, root=False), bypass_policy_lockout_safety_check=True)
    subject = Subject(key_change(base=policy(USE), head_key=head), review_context())
    (hit,) = last_admin_removed.check(subject)
    assert "bypass_policy_lockout_safety_check" in hit.details[-1]


def test_registered() -> None:
    assert rules.all_rules()["KMS103"] is last_admin_removed.RULE
