"""KMS007 corpus: kms:CreateGrant without a kms:GrantIsForAWSResource = "true" condition."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from reconciler.findings import Severity
from reconciler.review import Context
from reconciler.rules import unrestricted_grants
from tests.factories import ACCOUNT
from tests.rules.guide_policies import APPLICATION, CROSS_ACCOUNT, GUIDE_CONTEXT, TIME_BASED
from tests.rules.harness import ORG, ROOT, TRUSTED_ACCOUNT, allow, hits, policy, role

APP = role("App")
FOR_AWS = "kms:GrantIsForAWSResource"


def grant_condition(operator: str, value: Any) -> dict[str, Any]:
    return {operator: {FOR_AWS: value}}


class Fires(NamedTuple):
    doc: dict[str, Any]
    sids: list[str]
    ctx: Context | None = None


FIRES: dict[str, Fires] = {
    "create-grant-to-a-role": Fires(policy(allow(APP, "kms:CreateGrant")), ["S"]),
    "create-grant-in-any-case": Fires(policy(allow(APP, "KMS:creategrant")), ["S"]),
    "create-wildcard": Fires(policy(allow(APP, ["kms:Create*", "kms:Describe*"])), ["S"]),
    "grant-suffix-wildcard": Fires(policy(allow(APP, "kms:*Grant")), ["S"]),
    "kms-star": Fires(policy(allow(APP, "kms:*")), ["S"]),
    "bare-star-action": Fires(policy(allow(APP, "*")), ["S"]),
    "not-action-keeps-create-grant": Fires(
        policy(
            {
                "Sid": "S",
                "Effect": "Allow",
                "Principal": APP,
                "NotAction": "kms:Decrypt",
                "Resource": "*",
            }
        ),
        ["S"],
    ),
    "bool-ifexists-passes-without-the-key": Fires(
        policy(allow(APP, "kms:CreateGrant", Condition=grant_condition("BoolIfExists", "true"))),
        ["S"],
    ),
    "grant-is-for-aws-resource-false": Fires(
        policy(allow(APP, "kms:CreateGrant", Condition=grant_condition("Bool", False))), ["S"]
    ),
    "null-operator-is-not-a-requirement": Fires(
        policy(allow(APP, "kms:CreateGrant", Condition=grant_condition("Null", "false"))), ["S"]
    ),
    "via-service-alone": Fires(
        policy(
            allow(
                APP,
                "kms:CreateGrant",
                Condition={"StringEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}},
            )
        ),
        ["S"],
    ),
    "public-star-restricted-to-the-org": Fires(
        policy(
            allow(
                "*",
                "kms:CreateGrant",
                Condition={"StringEquals": {"aws:PrincipalOrgID": ORG}},
            )
        ),
        ["S"],
    ),
    "aws-star": Fires(policy(allow({"AWS": "*"}, "kms:CreateGrant")), ["S"]),
    "trusted-account-root-is-not-the-root-delegation": Fires(
        policy(allow({"AWS": TRUSTED_ACCOUNT}, "kms:CreateGrant")), ["S"]
    ),
    "service-principal": Fires(
        policy(allow({"Service": "logs.amazonaws.com"}, "kms:CreateGrant")), ["S"]
    ),
    "root-and-a-role-in-one-statement": Fires(
        policy(allow({"AWS": [ACCOUNT, APP["AWS"]]}, "kms:CreateGrant"), root=False), ["S"]
    ),
    "two-statements-two-hits": Fires(
        policy(
            allow(APP, "kms:CreateGrant", sid="A"),
            allow(role("Batch"), "kms:Create*", sid="B"),
        ),
        ["A", "B"],
    ),
    "guide-application-admins": Fires(
        APPLICATION, ["Allow administrators to manage the key"], GUIDE_CONTEXT
    ),
}
QUIET: dict[str, dict[str, Any]] = {
    "root-delegation": policy(),
    "root-as-account-id": policy(allow({"AWS": ACCOUNT}, "kms:CreateGrant"), root=False),
    "for-aws-resource-json-true": policy(
        allow(APP, "kms:CreateGrant", Condition=grant_condition("Bool", True))
    ),
    "for-aws-resource-string-true": policy(
        allow(APP, ["kms:CreateGrant"], Condition=grant_condition("Bool", "true"))
    ),
    "for-aws-resource-string-equals": policy(
        allow(APP, "kms:CreateGrant", Condition=grant_condition("StringEquals", "true"))
    ),
    "for-aws-resource-key-in-any-case": policy(
        allow(
            APP,
            "kms:Create*",
            Condition={"Bool": {"KMS:GRANTISFORAWSRESOURCE": "true"}},
        )
    ),
    "deny-create-grant": policy({**allow(APP, "kms:CreateGrant"), "Effect": "Deny"}),
    "get-and-list-wildcards": policy(allow(APP, ["kms:Get*", "kms:List*", "kms:Describe*"])),
    "revoke-retire-list-grants": policy(
        allow(APP, ["kms:ListGrants", "kms:RevokeGrant", "kms:RetireGrant"])
    ),
    "create-alias-only": policy(allow(APP, ["kms:CreateAlias", "kms:CreateKey"])),
    "not-action-excluding-create-grant": policy(
        {
            "Sid": "S",
            "Effect": "Allow",
            "Principal": APP,
            "NotAction": ["kms:Create*", "kms:Put*"],
            "Resource": "*",
        }
    ),
    "root-delegation-arn": policy(allow(ROOT["Principal"], "kms:CreateGrant"), root=False),
}
GUIDES: dict[str, dict[str, Any]] = {
    "guide-cross-account": CROSS_ACCOUNT,
    "guide-time-based-emergency-mfa": TIME_BASED,
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: Fires) -> None:
    found = hits(unrestricted_grants, head=case.doc, ctx=case.ctx)
    assert sorted(h.sid or "" for h in found) == sorted(case.sids)
    for hit in found:
        assert (hit.severity or unrestricted_grants.RULE.severity) is Severity.MEDIUM


@pytest.mark.parametrize("doc", QUIET.values(), ids=QUIET.keys())
def test_quiet(doc: dict[str, Any]) -> None:
    assert hits(unrestricted_grants, head=doc) == []


@pytest.mark.parametrize("doc", GUIDES.values(), ids=GUIDES.keys())
def test_guide_policies_are_quiet(doc: dict[str, Any]) -> None:
    assert hits(unrestricted_grants, head=doc, ctx=GUIDE_CONTEXT) == []


def test_message_names_statement_principals_but_not_the_root_and_the_pattern() -> None:
    doc = policy(allow({"AWS": [ACCOUNT, APP["AWS"]]}, ["kms:Create*", "kms:Get*"]), root=False)
    (hit,) = hits(unrestricted_grants, head=doc)
    assert hit.message == (
        f'statement "S" allows kms:CreateGrant (through kms:Create*) to '
        f"arn:aws:iam::{ACCOUNT}:role/App without a "
        'kms:GrantIsForAWSResource = "true" condition'
    )


def test_message_for_a_public_principal() -> None:
    (hit,) = hits(unrestricted_grants, head=policy(allow("*", "kms:CreateGrant")))
    assert '"*" (every principal)' in hit.message
    assert "(directly)" in hit.message
