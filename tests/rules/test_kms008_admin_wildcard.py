"""KMS008 corpus: wildcards that reach kms:PutKeyPolicy / kms:CreateGrant for non-root."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from reconciler.findings import Severity
from reconciler.review import Context
from reconciler.rules import admin_wildcard
from tests.factories import ACCOUNT
from tests.rules.guide_policies import APPLICATION, CROSS_ACCOUNT, GUIDE_CONTEXT, TIME_BASED
from tests.rules.harness import ORG, ROOT, TRUSTED_ACCOUNT, allow, hits, policy, role

ADMIN = role("KeyAdmin")
MFA = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


def all_but(principal: Any, excluded: Any) -> dict[str, Any]:
    return {
        "Sid": "S",
        "Effect": "Allow",
        "Principal": principal,
        "NotAction": excluded,
        "Resource": "*",
    }


class Fires(NamedTuple):
    doc: dict[str, Any]
    sids: list[str]
    ctx: Context | None = None


FIRES: dict[str, Fires] = {
    "kms-star-even-to-the-admin-role": Fires(policy(allow(ADMIN, "kms:*")), ["S"]),
    "bare-star-action": Fires(policy(allow(ADMIN, "*")), ["S"]),
    "create-wildcard-reaches-create-grant": Fires(
        policy(allow(ADMIN, ["kms:Create*", "kms:Describe*"])), ["S"]
    ),
    "put-wildcard-reaches-put-key-policy": Fires(policy(allow(ADMIN, "kms:Put*")), ["S"]),
    "suffix-wildcard": Fires(policy(allow(ADMIN, "kms:*Grant")), ["S"]),
    "question-mark-wildcard": Fires(policy(allow(ADMIN, "kms:PutKeyPolic?")), ["S"]),
    "lower-case-wildcard": Fires(policy(allow(ADMIN, "KMS:put*")), ["S"]),
    "not-action-is-every-action-but": Fires(policy(all_but(ADMIN, "kms:Decrypt")), ["S"]),
    "condition-does-not-excuse-it": Fires(policy(allow(ADMIN, "kms:*", Condition=MFA)), ["S"]),
    "public-star-restricted-to-the-org": Fires(
        policy(allow("*", "kms:*", Condition={"StringEquals": {"aws:PrincipalOrgID": ORG}})),
        ["S"],
    ),
    "trusted-account-root-is-not-the-root-delegation": Fires(
        policy(allow({"AWS": TRUSTED_ACCOUNT}, "kms:*")), ["S"]
    ),
    "root-and-admin-in-one-statement": Fires(
        policy(allow({"AWS": [ACCOUNT, ADMIN["AWS"]]}, "kms:*"), root=False), ["S"]
    ),
    "two-statements-two-hits": Fires(
        policy(allow(ADMIN, "kms:Put*", sid="A"), allow(role("Ops"), "kms:Create*", sid="B")),
        ["A", "B"],
    ),
    "guide-application-admins": Fires(
        APPLICATION, ["Allow administrators to manage the key"], GUIDE_CONTEXT
    ),
}
QUIET: dict[str, dict[str, Any]] = {
    "root-delegation": policy(),
    "root-as-account-id": policy(allow({"AWS": ACCOUNT}, "kms:*"), root=False),
    "root-delegation-put-wildcard": policy(allow(ROOT["Principal"], "kms:Put*"), root=False),
    "explicit-put-key-policy-is-not-a-wildcard": policy(allow(ADMIN, "kms:PutKeyPolicy")),
    "explicit-create-grant-beside-describe-wildcard": policy(
        allow(ADMIN, ["kms:CreateGrant", "kms:Describe*"])
    ),
    "get-wildcard-is-not-put": policy(allow(ADMIN, ["kms:Get*", "kms:List*"])),
    "admin-wildcards-without-create-and-put": policy(
        allow(
            ADMIN,
            ["kms:Describe*", "kms:Enable*", "kms:Update*", "kms:Revoke*", "kms:Disable*"],
        )
    ),
    "not-action-excluding-both": policy(all_but(ADMIN, ["kms:PutKeyPolicy", "kms:CreateGrant"])),
    "not-action-excluding-the-wildcards": policy(all_but(ADMIN, ["kms:Put*", "kms:Create*"])),
    "deny-kms-star": policy({**allow("*", "kms:*"), "Effect": "Deny"}),
    "generate-data-key-wildcard": policy(allow(role("App"), "kms:GenerateDataKey*")),
}
GUIDES: dict[str, dict[str, Any]] = {
    "guide-cross-account": CROSS_ACCOUNT,
    "guide-time-based-emergency-mfa": TIME_BASED,
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: Fires) -> None:
    found = hits(admin_wildcard, head=case.doc, ctx=case.ctx)
    assert sorted(h.sid or "" for h in found) == sorted(case.sids)
    for hit in found:
        assert (hit.severity or admin_wildcard.RULE.severity) is Severity.HIGH


@pytest.mark.parametrize("doc", QUIET.values(), ids=QUIET.keys())
def test_quiet(doc: dict[str, Any]) -> None:
    assert hits(admin_wildcard, head=doc) == []


@pytest.mark.parametrize("doc", GUIDES.values(), ids=GUIDES.keys())
def test_guide_policies_are_quiet(doc: dict[str, Any]) -> None:
    assert hits(admin_wildcard, head=doc, ctx=GUIDE_CONTEXT) == []


def test_message_names_statement_principal_actions_and_patterns() -> None:
    (hit,) = hits(admin_wildcard, head=APPLICATION, ctx=GUIDE_CONTEXT)
    assert hit.message == (
        'statement "Allow administrators to manage the key" gives '
        "arn:aws:iam::123456789012:role/AdminRole, arn:aws:iam::123456789012:user/admin1 "
        "kms:CreateGrant, kms:PutKeyPolicy through kms:Create*, kms:Put*: "
        "they can grant themselves decrypt"
    )


def test_message_leaves_out_the_root() -> None:
    doc = policy(allow({"AWS": [ACCOUNT, ADMIN["AWS"]]}, "kms:*"), root=False)
    (hit,) = hits(admin_wildcard, head=doc)
    assert f"{ACCOUNT}:root" not in hit.message
    assert f"{ACCOUNT}:role/KeyAdmin" in hit.message
