"""KMS002 corpus: Allow statements with NotPrincipal."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.rules import not_principal
from tests.factories import ACCOUNT
from tests.rules.guide_policies import APPLICATION, CROSS_ACCOUNT, GUIDE_CONTEXT, TIME_BASED
from tests.rules.harness import ORG, allow, hits, policy, role


def allow_except(excluded: Any, action: Any, sid: str = "S", **extra: Any) -> dict[str, Any]:
    statement = allow("*", action, sid, **extra)
    del statement["Principal"]
    return {**statement, "NotPrincipal": excluded}


FIRES: dict[str, tuple[dict[str, Any], list[str | None]]] = {
    "except-a-role": (policy(allow_except(role("Auditor"), "kms:Decrypt")), ["S"]),
    "except-the-root-by-account-id": (policy(allow_except({"AWS": ACCOUNT}, "kms:*")), ["S"]),
    "except-a-service": (
        policy(allow_except({"Service": "logs.amazonaws.com"}, ["kms:Encrypt"])),
        ["S"],
    ),
    "org-condition-does-not-excuse-it": (
        policy(
            allow_except(
                role("Auditor"),
                "kms:Decrypt",
                Condition={"StringEquals": {"aws:PrincipalOrgID": ORG}},
            )
        ),
        ["S"],
    ),
    "with-not-action-too": (
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
            allow_except(role("A"), "kms:Decrypt", sid="A"),
            allow_except(role("B"), "kms:Encrypt", sid="B"),
        ),
        ["A", "B"],
    ),
    "without-sid": (
        policy({k: v for k, v in allow_except(role("A"), "kms:Decrypt").items() if k != "Sid"}),
        [None],
    ),
}
QUIET: dict[str, dict[str, Any]] = {
    "deny-with-not-principal-is-the-legitimate-use": policy(
        {**allow_except(role("KeyAdmin"), "kms:PutKeyPolicy"), "Effect": "Deny"}
    ),
    "principal-role": policy(allow(role("App"), "kms:Decrypt")),
    "public-principal-is-kms001": policy(allow("*", "kms:Decrypt")),
    "aws-star-is-kms001": policy(allow({"AWS": "*"}, "kms:Decrypt")),
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
    found = hits(not_principal, head=doc)
    assert sorted(h.sid or "" for h in found) == sorted(s or "" for s in sids)
    for hit in found:
        assert (hit.severity or not_principal.RULE.severity) is Severity.HIGH


@pytest.mark.parametrize("doc", QUIET.values(), ids=QUIET.keys())
def test_quiet(doc: dict[str, Any]) -> None:
    assert hits(not_principal, head=doc) == []


@pytest.mark.parametrize("doc", GUIDES.values(), ids=GUIDES.keys())
def test_guide_policies_are_quiet(doc: dict[str, Any]) -> None:
    assert hits(not_principal, head=doc, ctx=GUIDE_CONTEXT) == []


def test_message_names_statement_excluded_principal_and_actions() -> None:
    (hit,) = hits(not_principal, head=policy(allow_except(role("Auditor"), ["kms:Decrypt"])))
    assert hit.message == (
        'statement "S" allows every principal except '
        f"arn:aws:iam::{ACCOUNT}:role/Auditor to call kms:Decrypt"
    )
