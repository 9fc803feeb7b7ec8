"""KMS010 corpus: service principals with and without a source account / ARN condition."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.rules import confused_deputy, rules
from tests.factories import ACCOUNT
from tests.rules.harness import ORG, allow, hits, policy, role

LOGS = {"Service": "logs.us-east-1.amazonaws.com"}
S3 = {"Service": "s3.amazonaws.com"}
TRAIL_ARN = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/main"
VIA_S3 = {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
LOGS_CONTEXT = {
    "ArnLike": {
        "kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:*"
    }
}

FIRES: dict[str, dict[str, Any]] = {
    "no-condition": allow(LOGS, "kms:Decrypt"),
    "service-list": allow({"Service": ["logs.amazonaws.com", "s3.amazonaws.com"]}, "kms:*"),
    "service-beside-a-role": allow({**role("App"), **S3}, "kms:Decrypt"),
    "via-service-does-not-count": allow(S3, "kms:Decrypt", Condition=VIA_S3),
    "encryption-context-does-not-count": allow(LOGS, "kms:Encrypt*", Condition=LOGS_CONTEXT),
    "caller-account-does-not-count": allow(
        S3, "kms:Decrypt", Condition={"StringEquals": {"kms:CallerAccount": ACCOUNT}}
    ),
    "if-exists-passes-without-the-key": allow(
        S3, "kms:Decrypt", Condition={"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}
    ),
    "null-check-only-requires-presence": allow(
        S3, "kms:Decrypt", Condition={"Null": {"aws:SourceArn": "false"}}
    ),
    "negated-operator-does-not-pin": allow(
        S3, "kms:Decrypt", Condition={"StringNotEquals": {"aws:SourceAccount": "999988887777"}}
    ),
    "wildcard-source-arn": allow(S3, "kms:Decrypt", Condition={"ArnLike": {"aws:SourceArn": "*"}}),
}
QUIET: dict[str, dict[str, Any]] = {
    "source-account": allow(
        S3, "kms:Decrypt", Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    ),
    "source-arn": allow(
        {"Service": "cloudtrail.amazonaws.com"},
        "kms:GenerateDataKey*",
        Condition={"StringEquals": {"aws:SourceArn": TRAIL_ARN}},
    ),
    "source-arn-arnlike-with-context": allow(
        LOGS,
        "kms:Encrypt*",
        Condition={
            "ArnLike": {
                "aws:SourceArn": f"arn:aws:logs:us-east-1:{ACCOUNT}:*",
                **LOGS_CONTEXT["ArnLike"],
            }
        },
    ),
    "mixed-case-key": allow(
        S3, "kms:Decrypt", Condition={"StringEquals": {"AWS:SOURCEACCOUNT": ACCOUNT}}
    ),
    "source-org-id": allow(S3, "kms:Decrypt", Condition={"StringEquals": {"aws:SourceOrgID": ORG}}),
    "deny-is-not-a-grant": {**allow(S3, "kms:Decrypt"), "Effect": "Deny"},
    "role-only": allow(role("App"), "kms:Decrypt"),
    "star-is-kms001s-business": allow("*", "kms:Decrypt"),
}


@pytest.mark.parametrize("statement", FIRES.values(), ids=FIRES.keys())
def test_fires(statement: dict[str, Any]) -> None:
    (hit,) = hits(confused_deputy, head=policy(statement))
    assert hit.sid == "S"
    assert (hit.severity or confused_deputy.RULE.severity) is Severity.MEDIUM
    assert 'statement "S"' in hit.message


@pytest.mark.parametrize("statement", QUIET.values(), ids=QUIET.keys())
def test_quiet(statement: dict[str, Any]) -> None:
    assert hits(confused_deputy, head=policy(statement)) == []


def test_one_hit_per_statement() -> None:
    doc = policy(allow(S3, "kms:Decrypt", sid="A"), allow(LOGS, "kms:Encrypt", sid="B"))
    assert sorted(h.sid or "" for h in hits(confused_deputy, head=doc)) == ["A", "B"]


def test_weak_conditions_are_explained() -> None:
    statement = allow(
        S3, "kms:Decrypt", Condition={"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}
    )
    (hit,) = hits(confused_deputy, head=policy(statement))
    assert hit.details == (
        "StringEqualsIfExists aws:sourceaccount does not pin the source (missing or other values)",
    )


def test_registered() -> None:
    assert confused_deputy in rules()
