"""KMS003 corpus: Allow statements with NotAction."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.rules import not_action
from tests.factories import ACCOUNT
from tests.rules.guide_policies import APPLICATION, CROSS_ACCOUNT, GUIDE_CONTEXT, TIME_BASED
from tests.rules.harness import ROOT, allow, hits, policy, role


def allow_all_but(principal: Any, excluded: Any, sid: str = "S", **extra: Any) -> dict[str, Any]:
    statement = allow(principal, "kms:Decrypt", sid, **extra)
    del statement["Action"]
    return {**statement, "NotAction": excluded}


MFA = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}

FIRES: dict[str, tuple[dict[str, Any], list[str | None]]] = {
    "all-but-decrypt-to-a-role": (policy(allow_all_but(role("App"), "kms:Decrypt")), ["S"]),
    "all-but-management-wildcards": (
        policy(allow_all_but(role("App"), ["kms:Put*", "kms:Create*", "kms:Schedule*"])),
        ["S"],
    ),
    "public-principal": (policy(allow_all_but("*", "kms:Decrypt")), ["S"]),
    "condition-does-not-excuse-it": (
        policy(allow_all_but(role("App"), "kms:Decrypt", Condition=MFA)),
        ["S"],
    ),
    "ifexists-condition": (
        policy(
            allow_all_but(
                role("App"),
                "kms:Decrypt",
                Condition={"StringEqualsIfExists": {"kms:ViaService": "s3.amazonaws.com"}},
            )
        ),
        ["S"],
    ),
    "even-for-the-root": (
        policy(allow_all_but(ROOT["Principal"], "kms:Decrypt"), root=False),
        ["S"],
    ),
    "with-not-principal-too": (
        policy(
            {
                "Sid": "S",
                "Effect": "Allow",
                "NotPrincipal": role("Auditor"),
                "NotAction": "kms:Decrypt",
                "Resource": "*",
            }
        ),
        ["S"],
    ),
    "two-statements-two-hits": (
        policy(
            allow_all_but(role("A"), "kms:Decrypt", sid="A"),
            allow_all_but(role("B"), "kms:Encrypt", sid="B"),
        ),
        ["A", "B"],
    ),
}
QUIET: dict[str, dict[str, Any]] = {
    "deny-with-not-action": policy(
        {**allow_all_but("*", ["kms:Decrypt", "kms:DescribeKey"]), "Effect": "Deny"}
    ),
    "kms-star-action": policy(allow(role("App"), "kms:*")),
    "get-wildcard": policy(allow(role("App"), "kms:Get*")),
    "explicit-actions": policy(allow(role("App"), ["kms:Encrypt", "kms:Decrypt"])),
    "default-root-policy": policy(),
}
GUIDES: dict[str, dict[str, Any]] = {
    "guide-application": APPLICATION,
    "guide-cross-account": CROSS_ACCOUNT,
    "guide-time-based-emergency-mfa": TIME_BASED,
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any], list[str | None]]) -> None:
    doc, sids = case
    found = hits(not_action, head=doc)
    assert sorted(h.sid or "" for h in found) == sorted(s or "" for s in sids)
    for hit in found:
        assert (hit.severity or not_action.RULE.severity) is Severity.HIGH


@pytest.mark.parametrize("doc", QUIET.values(), ids=QUIET.keys())
def test_quiet(doc: dict[str, Any]) -> None:
    assert hits(not_action, head=doc) == []


@pytest.mark.parametrize("doc", GUIDES.values(), ids=GUIDES.keys())
def test_guide_policies_are_quiet(doc: dict[str, Any]) -> None:
    assert hits(not_action, head=doc, ctx=GUIDE_CONTEXT) == []


def test_message_names_statement_principal_exclusions_and_what_slips_through() -> None:
    (hit,) = hits(not_action, head=policy(allow_all_but(role("App"), ["kms:Decrypt"])))
    assert hit.message.startswith(
        f'statement "S" allows arn:aws:iam::{ACCOUNT}:role/App every action except kms:Decrypt ('
    )
    assert "kms:PutKeyPolicy" in hit.message
    assert "kms:CreateGrant" in hit.message
    assert "kms:Decrypt," not in hit.message
