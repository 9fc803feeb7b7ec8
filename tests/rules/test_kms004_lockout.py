"""KMS004 corpus: policies that leave nobody able to call kms:PutKeyPolicy."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.review import Subject
from reconciler.rules import lockout
from tests.factories import ACCOUNT, desired_key
from tests.rules.guide_policies import APPLICATION, CROSS_ACCOUNT, GUIDE_CONTEXT, TIME_BASED
from tests.rules.harness import (
    OTHER_ACCOUNT,
    ROOT,
    TRUSTED_ACCOUNT,
    allow,
    change,
    context,
    hits,
    policy,
    role,
)

ROOT_PRINCIPAL = ROOT["Principal"]
MFA = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


def deny(principal: Any, action: Any, sid: str = "D", **extra: Any) -> dict[str, Any]:
    return {**allow(principal, action, sid, **extra), "Effect": "Deny"}


def no_root(*statements: dict[str, Any]) -> dict[str, Any]:
    return policy(*statements, root=False)


# policy -> the Sid the finding is located at (None: the key, no single statement).
FIRES: dict[str, tuple[dict[str, Any], str | None]] = {
    "no-root-no-admin": (no_root(allow(role("App"), ["kms:Encrypt", "kms:Decrypt"])), None),
    "no-statements": ({"Version": "2012-10-17", "Statement": []}, None),
    "root-only-get-and-describe-wildcards": (
        no_root(allow(ROOT_PRINCIPAL, ["kms:Get*", "kms:Describe*", "kms:List*"], sid="R")),
        None,
    ),
    "root-only-under-condition": (no_root(allow(ROOT_PRINCIPAL, "kms:*", Condition=MFA)), None),
    "root-under-ifexists-condition-is-still-conditional": (
        no_root(
            allow(
                ROOT_PRINCIPAL,
                "kms:*",
                Condition={"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}},
            )
        ),
        None,
    ),
    "admin-only-under-condition": (
        no_root(allow(role("KeyAdmin"), "kms:PutKeyPolicy", Condition=MFA)),
        None,
    ),
    "admin-name-in-another-account": (
        no_root(allow(role("KeyAdmin", OTHER_ACCOUNT), "kms:*")),
        None,
    ),
    "trusted-account-root-is-not-this-accounts-root": (
        no_root(allow({"AWS": TRUSTED_ACCOUNT}, "kms:*")),
        None,
    ),
    "unconditional-deny-of-put-key-policy": (
        policy(deny("*", "kms:PutKeyPolicy", sid="NoPolicyChanges")),
        "NoPolicyChanges",
    ),
    "unconditional-deny-through-not-action": (
        policy(
            {
                "Sid": "OnlyCrypto",
                "Effect": "Deny",
                "Principal": "*",
                "NotAction": ["kms:Encrypt", "kms:Decrypt"],
                "Resource": "*",
            }
        ),
        "OnlyCrypto",
    ),
    "deny-to-the-root-by-account-id": (
        policy(deny({"AWS": ACCOUNT}, "kms:Put*", sid="NoRoot")),
        "NoRoot",
    ),
}
QUIET: dict[str, dict[str, Any]] = {
    "default-root": policy(),
    "root-as-account-id": no_root(allow({"AWS": ACCOUNT}, "kms:*")),
    "root-with-put-wildcard": no_root(allow(ROOT_PRINCIPAL, "kms:Put*")),
    "root-through-not-action": no_root(
        {
            "Sid": "S",
            "Effect": "Allow",
            "Principal": ROOT_PRINCIPAL,
            "NotAction": "kms:Decrypt",
            "Resource": "*",
        }
    ),
    "admin-role-put-key-policy": no_root(allow(role("KeyAdmin"), "kms:PutKeyPolicy")),
    "admin-role-with-a-path": no_root(
        allow({"AWS": f"arn:aws:iam::{ACCOUNT}:role/admins/KeyAdmin"}, "kms:PutKeyPolicy")
    ),
    "root-conditional-but-admin-unconditional": no_root(
        allow(ROOT_PRINCIPAL, "kms:*", sid="R", Condition=MFA),
        allow(role("KeyAdmin"), ["kms:Put*", "kms:Describe*"], sid="A"),
    ),
    "conditional-deny-is-not-counted": policy(
        deny("*", "kms:PutKeyPolicy", Condition={"Bool": {"aws:SecureTransport": "false"}})
    ),
    "deny-of-another-role": policy(deny(role("App"), "kms:PutKeyPolicy")),
    "deny-of-get-wildcard-only": policy(deny("*", "kms:Get*")),
    "public-star-is-kms001s-problem": no_root(allow("*", "kms:*")),
}
GUIDES: dict[str, dict[str, Any]] = {
    "guide-application": APPLICATION,
    "guide-cross-account": CROSS_ACCOUNT,
    "guide-time-based-emergency-mfa": TIME_BASED,
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any], str | None]) -> None:
    doc, sid = case
    (hit,) = hits(lockout, head=doc)
    assert hit.sid == sid
    assert (hit.severity or lockout.RULE.severity) is Severity.CRITICAL


@pytest.mark.parametrize("doc", QUIET.values(), ids=QUIET.keys())
def test_quiet(doc: dict[str, Any]) -> None:
    assert hits(lockout, head=doc) == []


@pytest.mark.parametrize("doc", GUIDES.values(), ids=GUIDES.keys())
def test_guide_policies_are_quiet(doc: dict[str, Any]) -> None:
    assert hits(lockout, head=doc, ctx=GUIDE_CONTEXT) == []


def test_guide_application_without_the_root_keeps_its_admins() -> None:
    doc = {**APPLICATION, "Statement": APPLICATION["Statement"][1:]}
    assert hits(lockout, head=doc, ctx=GUIDE_CONTEXT) == []
    (hit,) = hits(lockout, head=doc, ctx=context(account_id="123456789012"))
    assert hit.sid is None


def test_admin_only_policy_locks_out_without_admin_principals() -> None:
    doc = no_root(allow(role("KeyAdmin"), "kms:PutKeyPolicy"))
    (hit,) = hits(lockout, head=doc, ctx=context(admin_principals=()))
    assert f"arn:aws:iam::{ACCOUNT}:root" in hit.message


def test_a_key_without_policy_or_a_removed_key_is_not_checked() -> None:
    unset = change(head_key=desired_key("app", policy=None))
    assert list(lockout.check(Subject(unset, context()))) == []
    removed = change(base=no_root(allow(role("App"), "kms:Decrypt")))
    assert list(lockout.check(Subject(removed, context()))) == []


def test_message_names_who_should_keep_put_key_policy() -> None:
    (hit,) = hits(lockout, head=policy(deny("*", "kms:PutKeyPolicy", sid="NoPolicyChanges")))
    assert hit.message.startswith('statement "NoPolicyChanges" denies kms:PutKeyPolicy')
    assert f"arn:aws:iam::{ACCOUNT}:root" in hit.message
    assert f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin" in hit.message


# -- the deployer (inventory.yaml review.deployer_arns; issue 9, defect 14) ----------------

CI = f"arn:aws:iam::{ACCOUNT}:role/ci-deployer"
CROSS_CI = "arn:aws:iam::444455556666:role/ci-deployer"
NAMED_ADMIN = allow({"AWS": f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin"}, "kms:*", sid="Admin")
CI_MANAGES = allow({"AWS": CI}, ["kms:PutKeyPolicy", "kms:DescribeKey"], sid="CI")

# (deployer, base, head) -> whether the deployer loses kms:PutKeyPolicy
DEPLOYER: dict[str, tuple[str, dict[str, Any] | None, dict[str, Any], bool]] = {
    # root delegation gone, the deployer not named: IAM can no longer give it PutKeyPolicy
    "root-delegation-removed": (CI, policy(NAMED_ADMIN), policy(NAMED_ADMIN, root=False), True),
    "named-deployer-removed": (
        CI,
        policy(NAMED_ADMIN, CI_MANAGES, root=False),
        policy(NAMED_ADMIN, root=False),
        True,
    ),
    "deny-put-to-the-deployer": (
        CI,
        policy(NAMED_ADMIN),
        policy(NAMED_ADMIN, {**allow({"AWS": CI}, "kms:PutKeyPolicy", sid="D"), "Effect": "Deny"}),
        True,
    ),
    "added-key-without-the-deployer": (CI, None, policy(NAMED_ADMIN, root=False), True),
    "deployer-named-when-root-goes": (
        CI,
        policy(NAMED_ADMIN),
        policy(NAMED_ADMIN, CI_MANAGES, root=False),
        False,
    ),
    "root-delegation-kept": (CI, policy(), policy(NAMED_ADMIN), False),
    # a deployer of another account needs its own account's root (or itself) named
    "cross-account-deployer-through-its-root": (
        CROSS_CI,
        policy(allow({"AWS": "444455556666"}, "kms:PutKeyPolicy", sid="X")),
        policy(allow({"AWS": "444455556666"}, "kms:PutKeyPolicy", sid="X"), NAMED_ADMIN),
        False,
    ),
    # it could not put the policy before either: not this change's doing
    "never-could": (CI, policy(NAMED_ADMIN, root=False), policy(NAMED_ADMIN, root=False), False),
}


@pytest.mark.parametrize("case", DEPLOYER.values(), ids=DEPLOYER.keys())
def test_deployer_losing_put_key_policy(
    case: tuple[str, dict[str, Any] | None, dict[str, Any], bool],
) -> None:
    deployer, base, head, loses = case
    ctx = context(deployer_arns=(deployer,))
    found = [h for h in hits(lockout, head=head, base=base, ctx=ctx) if "deployer" in h.message]
    if loses:
        (hit,) = found
        assert hit.message.startswith(f"the deployer {deployer} loses kms:PutKeyPolicy")
        assert hit.severity is Severity.HIGH
    else:
        assert found == []
