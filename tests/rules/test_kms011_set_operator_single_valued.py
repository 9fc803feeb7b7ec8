"""KMS011 corpus: set operators (ForAnyValue / ForAllValues) on single- and multi-valued keys."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.rules import rules, set_operator_single_valued
from tests.factories import ACCOUNT
from tests.rules.harness import allow, hits, policy, role


def _with(condition: dict[str, Any]) -> dict[str, Any]:
    return allow(role("App"), "kms:Decrypt", Condition=condition)


FIRES: dict[str, dict[str, Any]] = {
    "any-value-source-account": _with({"ForAnyValue:StringEquals": {"aws:SourceAccount": ACCOUNT}}),
    "all-values-via-service": _with(
        {"ForAllValues:StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    ),
    "encryption-context-value-is-single-valued": _with(
        {"ForAnyValue:StringEquals": {"kms:EncryptionContext:Department": "IT"}}
    ),
    "mixed-case-key": _with({"ForAnyValue:StringLike": {"AWS:PrincipalArn": "arn:aws:iam::*"}}),
    "if-exists-variant": _with(
        {"ForAllValues:StringEqualsIfExists": {"aws:PrincipalTag/team": "payments"}}
    ),
    "in-a-deny-too": {
        **_with({"ForAnyValue:StringNotEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}),
        "Effect": "Deny",
    },
    "two-keys-one-hit": _with(
        {
            "ForAnyValue:StringEquals": {
                "aws:SourceAccount": ACCOUNT,
                "kms:CallerAccount": ACCOUNT,
            }
        }
    ),
}
QUIET: dict[str, dict[str, Any]] = {
    "any-value-encryption-context-keys": _with(
        {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "Department"}}
    ),
    "all-values-encryption-context-keys-mixed-case": _with(
        {"ForAllValues:StringEquals": {"KMS:encryptionContextKeys": ["Department", "Project"]}}
    ),
    "all-values-grant-operations": _with(
        {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "Encrypt"]}}
    ),
    "any-value-tag-keys": _with({"ForAnyValue:StringLike": {"aws:TagKeys": "team*"}}),
    "any-value-org-paths": _with(
        {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "o-a1b2c3d4e5/*"}}
    ),
    "plain-operator-on-single-valued": _with({"StringEquals": {"aws:SourceAccount": ACCOUNT}}),
    "unknown-key-is-kms013s-business": _with(
        {"ForAnyValue:StringEquals": {"kms:EncryptionContextKey": "Department"}}
    ),
    "no-condition": allow(role("App"), "kms:Decrypt"),
}


@pytest.mark.parametrize("statement", FIRES.values(), ids=FIRES.keys())
def test_fires(statement: dict[str, Any]) -> None:
    (hit,) = hits(set_operator_single_valued, head=policy(statement))
    assert hit.sid == "S"
    assert (hit.severity or set_operator_single_valued.RULE.severity) is Severity.MEDIUM


@pytest.mark.parametrize("statement", QUIET.values(), ids=QUIET.keys())
def test_quiet(statement: dict[str, Any]) -> None:
    assert hits(set_operator_single_valued, head=policy(statement)) == []


def test_message_names_operator_key_and_fix() -> None:
    statement = _with({"ForAnyValue:StringEquals": {"aws:SourceAccount": ACCOUNT}})
    (hit,) = hits(set_operator_single_valued, head=policy(statement))
    assert hit.details == ("ForAnyValue:StringEquals on aws:sourceaccount",)
    assert 'statement "S"' in hit.message
    assert "(StringEquals)" in hit.message


def test_registered() -> None:
    assert set_operator_single_valued in rules()
