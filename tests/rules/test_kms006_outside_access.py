"""KMS006 corpus: decrypt or permission management for principals outside the inventory's
accounts and organization."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from reconciler.findings import Severity
from reconciler.review import Context
from reconciler.rules import outside_access
from tests.factories import ACCOUNT
from tests.rules.guide_policies import APPLICATION, CROSS_ACCOUNT, GUIDE_CONTEXT, TIME_BASED
from tests.rules.harness import (
    ORG,
    OTHER_ACCOUNT,
    TRUSTED_ACCOUNT,
    allow,
    context,
    hits,
    policy,
    role,
)

OUTSIDER = role("Reader", OTHER_ACCOUNT)
VIA_S3 = {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
ORG_PATH = f"{ORG}/r-ab12/ou-ab12-11111111/*"


def org(operator: str, value: Any, key: str = "aws:PrincipalOrgID") -> dict[str, Any]:
    return {operator: {key: value}}


class Fires(NamedTuple):
    doc: dict[str, Any]
    sids: list[str]
    severity: Severity
    ctx: Context | None = None


CRITICAL, HIGH = Severity.CRITICAL, Severity.HIGH

FIRES: dict[str, Fires] = {
    "other-account-role-decrypt": Fires(policy(allow(OUTSIDER, "kms:Decrypt")), ["S"], CRITICAL),
    "other-account-id-decrypt": Fires(
        policy(allow({"AWS": OTHER_ACCOUNT}, "kms:Decrypt")), ["S"], CRITICAL
    ),
    "other-account-root-arn-generate-data-key-wildcard": Fires(
        policy(allow({"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}, "kms:GenerateDataKey*")),
        ["S"],
        CRITICAL,
    ),
    "re-encrypt-wildcard-reaches-re-encrypt-from": Fires(
        policy(allow(OUTSIDER, "kms:ReEncrypt*")), ["S"], CRITICAL
    ),
    "create-grant-only-is-high": Fires(policy(allow(OUTSIDER, "kms:CreateGrant")), ["S"], HIGH),
    # Signing, MAC, key agreement: the outsider acts as the key holder (high, as drift
    # ranks an undeclared grant of them); decapsulation recovers a secret (critical).
    "sign-is-high": Fires(policy(allow(OUTSIDER, "kms:Sign")), ["S"], HIGH),
    "generate-mac-is-high": Fires(policy(allow(OUTSIDER, "kms:GenerateMac")), ["S"], HIGH),
    "derive-shared-secret-is-high": Fires(
        policy(allow(OUTSIDER, "kms:DeriveSharedSecret")), ["S"], HIGH
    ),
    "not-action-leaves-sign-and-decapsulate": Fires(
        policy(
            {
                "Sid": "S",
                "Effect": "Allow",
                "Principal": OUTSIDER,
                "NotAction": ["kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
                "Resource": "*",
            }
        ),
        ["S"],
        CRITICAL,
    ),
    "decapsulate-is-critical": Fires(policy(allow(OUTSIDER, "kms:Decapsulate")), ["S"], CRITICAL),
    "put-wildcard-is-high": Fires(policy(allow(OUTSIDER, "kms:Put*")), ["S"], HIGH),
    "kms-star-is-critical": Fires(policy(allow(OUTSIDER, "kms:*")), ["S"], CRITICAL),
    "not-action-reaches-decrypt": Fires(
        policy(
            {
                "Sid": "S",
                "Effect": "Allow",
                "Principal": OUTSIDER,
                "NotAction": "kms:Encrypt",
                "Resource": "*",
            }
        ),
        ["S"],
        CRITICAL,
    ),
    "via-service-does-not-make-the-caller-inside": Fires(
        policy(allow(OUTSIDER, "kms:Decrypt", Condition=VIA_S3)), ["S"], CRITICAL
    ),
    "org-condition-ifexists-passes-callers-without-an-org": Fires(
        policy(allow(OUTSIDER, "kms:Decrypt", Condition=org("StringEqualsIfExists", ORG))),
        ["S"],
        CRITICAL,
    ),
    "org-condition-for-all-values-passes-without-the-key": Fires(
        policy(allow(OUTSIDER, "kms:Decrypt", Condition=org("ForAllValues:StringEquals", ORG))),
        ["S"],
        CRITICAL,
    ),
    "org-condition-naming-another-org": Fires(
        policy(allow(OUTSIDER, "kms:Decrypt", Condition=org("StringEquals", "o-zzzzzzzzzz"))),
        ["S"],
        CRITICAL,
    ),
    "org-condition-naming-ours-and-another": Fires(
        policy(
            allow(OUTSIDER, "kms:Decrypt", Condition=org("StringEquals", [ORG, "o-zzzzzzzzzz"]))
        ),
        ["S"],
        CRITICAL,
    ),
    "negated-org-condition": Fires(
        policy(allow(OUTSIDER, "kms:Decrypt", Condition=org("StringNotEquals", ORG))),
        ["S"],
        CRITICAL,
    ),
    "org-paths-with-a-wildcard-org": Fires(
        policy(
            allow(
                OUTSIDER,
                "kms:Decrypt",
                Condition=org("ForAnyValue:StringLike", "o-*/*", "aws:PrincipalOrgPaths"),
            )
        ),
        ["S"],
        CRITICAL,
    ),
    "one-outsider-among-insiders": Fires(
        policy(allow({"AWS": [role("App")["AWS"], OUTSIDER["AWS"]]}, "kms:Decrypt")),
        ["S"],
        CRITICAL,
    ),
    "two-statements-two-hits": Fires(
        policy(
            allow(OUTSIDER, "kms:Decrypt", sid="A"),
            allow({"AWS": OTHER_ACCOUNT}, "kms:CreateGrant", sid="B"),
        ),
        ["A", "B"],
        CRITICAL,  # A is critical; B is checked in test_severity_per_statement
    ),
    "guide-cross-account": Fires(
        CROSS_ACCOUNT,
        ["Allow cross-account access", "Restrict to specific encryption context"],
        CRITICAL,
        GUIDE_CONTEXT,
    ),
    "guide-cross-account-trusting-one-of-two": Fires(
        CROSS_ACCOUNT,
        ["Allow cross-account access"],
        CRITICAL,
        context(
            account_id="123456789012",
            trusted_accounts=frozenset({"987654321098"}),
        ),
    ),
}
QUIET: dict[str, dict[str, Any]] = {
    "own-account-role": policy(allow(role("App"), "kms:Decrypt")),
    # public-key and verify operations: nothing only the key holder could do
    "outsider-verifies-and-encapsulates": policy(
        allow(OUTSIDER, ["kms:Verify", "kms:VerifyMac", "kms:GetPublicKey", "kms:Encapsulate"])
    ),
    "own-account-id": policy(allow({"AWS": ACCOUNT}, "kms:Decrypt")),
    "trusted-account-role": policy(allow(role("Reader", TRUSTED_ACCOUNT), "kms:Decrypt")),
    "trusted-account-id": policy(allow({"AWS": TRUSTED_ACCOUNT}, ["kms:Decrypt", "kms:Put*"])),
    "outsider-in-the-org-by-org-id": policy(
        allow(OUTSIDER, "kms:Decrypt", Condition=org("StringEquals", ORG))
    ),
    "outsider-in-the-org-by-org-id-string-like": policy(
        allow(OUTSIDER, "kms:Decrypt", Condition=org("StringLike", ORG))
    ),
    "outsider-in-the-org-by-org-path": policy(
        allow(
            OUTSIDER,
            "kms:Decrypt",
            Condition=org("ForAnyValue:StringLike", ORG_PATH, "aws:PrincipalOrgPaths"),
        )
    ),
    "org-condition-key-in-any-case": policy(
        allow(OUTSIDER, "kms:Decrypt", Condition=org("StringEquals", ORG, "AWS:PrincipalOrgId"))
    ),
    "deny-to-an-outsider": policy({**allow(OUTSIDER, "kms:Decrypt"), "Effect": "Deny"}),
    "outsider-encrypt-and-describe-only": policy(
        allow(OUTSIDER, ["kms:Encrypt", "kms:DescribeKey"])
    ),
    "outsider-get-wildcard-is-not-put": policy(allow(OUTSIDER, ["kms:Get*", "kms:Describe*"])),
    "outsider-generate-data-key-without-plaintext": policy(
        allow(OUTSIDER, "kms:GenerateDataKeyWithoutPlaintext")
    ),
    "outsider-not-action-excluding-sensitive": policy(
        {
            "Sid": "S",
            "Effect": "Allow",
            "Principal": OUTSIDER,
            "NotAction": [
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Put*",
                "kms:CreateGrant",
                "kms:Sign",
                "kms:GenerateMac",
                "kms:DeriveSharedSecret",
                "kms:Decapsulate",
            ],
            "Resource": "*",
        }
    ),
    "public-star-is-kms001s": policy(allow("*", "kms:Decrypt")),
    "public-aws-star-is-kms001s": policy(allow({"AWS": "*"}, "kms:Decrypt")),
    "service-principal": policy(allow({"Service": "logs.amazonaws.com"}, "kms:Decrypt")),
    "not-principal-is-kms002s": policy(
        {
            "Sid": "S",
            "Effect": "Allow",
            "NotPrincipal": OUTSIDER,
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    ),
}
GUIDES: dict[str, tuple[dict[str, Any], Context]] = {
    "guide-application": (APPLICATION, GUIDE_CONTEXT),
    "guide-time-based-emergency-mfa": (TIME_BASED, GUIDE_CONTEXT),
    "guide-cross-account-with-both-accounts-trusted": (
        CROSS_ACCOUNT,
        context(
            account_id="123456789012",
            trusted_accounts=frozenset({"987654321098", "111122223333"}),
        ),
    ),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: Fires) -> None:
    found = hits(outside_access, head=case.doc, ctx=case.ctx)
    assert sorted(h.sid or "" for h in found) == sorted(case.sids)
    first = min(found, key=lambda h: h.sid or "")
    assert (first.severity or outside_access.RULE.severity) is case.severity


@pytest.mark.parametrize("doc", QUIET.values(), ids=QUIET.keys())
def test_quiet(doc: dict[str, Any]) -> None:
    assert hits(outside_access, head=doc) == []


@pytest.mark.parametrize("case", GUIDES.values(), ids=GUIDES.keys())
def test_guide_policies_are_quiet(case: tuple[dict[str, Any], Context]) -> None:
    doc, ctx = case
    assert hits(outside_access, head=doc, ctx=ctx) == []


def test_severity_per_statement() -> None:
    found = hits(outside_access, head=FIRES["two-statements-two-hits"].doc)
    severities = {h.sid: h.severity or outside_access.RULE.severity for h in found}
    assert severities == {"A": Severity.CRITICAL, "B": Severity.HIGH}


def test_an_org_condition_counts_only_for_the_inventorys_organization() -> None:
    doc = policy(allow(OUTSIDER, "kms:Decrypt", Condition=org("StringEquals", ORG)))
    assert len(hits(outside_access, head=doc, ctx=context(organization_ids=frozenset()))) == 1


def test_message_names_statement_outsiders_and_actions() -> None:
    doc = policy(allow({"AWS": [role("App")["AWS"], OUTSIDER["AWS"]]}, ["kms:Decrypt"]))
    (hit,) = hits(outside_access, head=doc)
    assert hit.message.startswith(
        f'statement "S" allows kms:Decrypt to arn:aws:iam::{OTHER_ACCOUNT}:role/Reader, outside'
    )
    assert f"{ACCOUNT}:role/App" not in hit.message
    assert any("plaintext" in d for d in hit.details)
