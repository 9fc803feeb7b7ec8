"""KMS001 corpus: public principals with and without restricting conditions."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.rules import public_principal
from tests.rules.harness import ORG, TRUSTED_ACCOUNT, allow, hits, policy

VIA_S3 = {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}

FIRES: dict[str, tuple[dict[str, Any], Severity]] = {
    "star-decrypt": (allow("*", "kms:Decrypt"), Severity.CRITICAL),
    "aws-star-decrypt": (allow({"AWS": "*"}, "kms:Decrypt"), Severity.CRITICAL),
    "aws-star-list-decrypt": (allow({"AWS": ["*"]}, ["kms:Decrypt"]), Severity.CRITICAL),
    "via-service-alone-is-not-a-restriction": (
        allow({"AWS": "*"}, "kms:Decrypt", Condition=VIA_S3),
        Severity.CRITICAL,
    ),
    "wildcard-action": (allow("*", "kms:*"), Severity.CRITICAL),
    "describe-only-is-high": (allow("*", "kms:DescribeKey"), Severity.HIGH),
    "pinned-to-a-foreign-account": (
        allow(
            "*", "kms:Decrypt", Condition={"StringEquals": {"kms:CallerAccount": "999988887777"}}
        ),
        Severity.CRITICAL,
    ),
    "pinned-to-a-foreign-organization": (
        allow(
            "*", "kms:Decrypt", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-zzzzzzzzzz"}}
        ),
        Severity.CRITICAL,
    ),
    "org-condition-with-ifexists-does-not-pin": (
        allow("*", "kms:Decrypt", Condition={"StringEqualsIfExists": {"aws:PrincipalOrgID": ORG}}),
        Severity.CRITICAL,
    ),
    "ifexists-org-does-not-restrict-a-missing-key": (
        allow(
            "*",
            "kms:Decrypt",
            Condition={"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}},
        ),
        Severity.CRITICAL,
    ),
}
QUIET: dict[str, dict[str, Any]] = {
    "org-condition": allow(
        "*", "kms:Decrypt", Condition={"StringEquals": {"aws:PrincipalOrgID": ORG}}
    ),
    "caller-account": allow(
        {"AWS": "*"},
        "kms:Decrypt",
        Condition={"StringEquals": {"kms:CallerAccount": "111122223333", **VIA_S3["StringEquals"]}},
    ),
    "deny-star-is-fine": {**allow("*", "kms:Decrypt"), "Effect": "Deny"},
    "pinned-to-a-trusted-account": allow(
        "*", "kms:Decrypt", Condition={"StringEquals": {"aws:PrincipalAccount": TRUSTED_ACCOUNT}}
    ),
    "pinned-by-principal-arn": allow(
        "*",
        "kms:Decrypt",
        Condition={"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/app-*"}},
    ),
    "named-account": allow({"AWS": "arn:aws:iam::111122223333:root"}, "kms:Decrypt"),
    "service-principal": allow({"Service": "logs.amazonaws.com"}, "kms:Decrypt"),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any], Severity]) -> None:
    statement, severity = case
    (hit,) = hits(public_principal, head=policy(statement))
    assert hit.sid == "S"
    assert (hit.severity or public_principal.RULE.severity) is severity


@pytest.mark.parametrize("statement", QUIET.values(), ids=QUIET.keys())
def test_quiet(statement: dict[str, Any]) -> None:
    assert hits(public_principal, head=policy(statement)) == []
