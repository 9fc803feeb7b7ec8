"""KMS012 corpus: IfExists operators in Allow statements (Deny is fine)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.rules import if_exists_allow, rules
from tests.factories import ACCOUNT
from tests.rules.harness import allow, hits, policy, role

VIA = "s3.us-east-1.amazonaws.com"


def _with(condition: dict[str, Any], effect: str = "Allow") -> dict[str, Any]:
    return {**allow(role("App"), "kms:Decrypt", Condition=condition), "Effect": effect}


FIRES: dict[str, dict[str, Any]] = {
    "string-equals-if-exists": _with({"StringEqualsIfExists": {"kms:ViaService": VIA}}),
    "arn-like-if-exists": _with(
        {"ArnLikeIfExists": {"aws:SourceArn": f"arn:aws:s3:::bucket-{ACCOUNT}"}}
    ),
    "bool-if-exists": _with({"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}}),
    "set-operator-if-exists": _with(
        {"ForAnyValue:StringEqualsIfExists": {"kms:EncryptionContextKeys": "Department"}}
    ),
    "beside-a-plain-operator": _with(
        {
            "StringEquals": {"kms:CallerAccount": ACCOUNT},
            "StringLikeIfExists": {"kms:EncryptionContext:Department": "IT*"},
        }
    ),
    "two-operators-one-hit": _with(
        {
            "StringEqualsIfExists": {"kms:ViaService": VIA},
            "NumericLessThanIfExists": {"aws:MultiFactorAuthAge": "3600"},
        }
    ),
}
QUIET: dict[str, dict[str, Any]] = {
    "deny-with-if-exists": _with({"StringNotEqualsIfExists": {"kms:ViaService": VIA}}, "Deny"),
    "deny-with-bool-if-exists": _with(
        {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}, "Deny"
    ),
    "plain-operator": _with({"StringEquals": {"kms:ViaService": VIA}}),
    "null-operator": _with({"Null": {"kms:EncryptionContextKeys": "false"}}),
    "no-condition": allow(role("App"), "kms:Decrypt"),
}


@pytest.mark.parametrize("statement", FIRES.values(), ids=FIRES.keys())
def test_fires(statement: dict[str, Any]) -> None:
    (hit,) = hits(if_exists_allow, head=policy(statement))
    assert hit.sid == "S"
    assert (hit.severity or if_exists_allow.RULE.severity) is Severity.MEDIUM


@pytest.mark.parametrize("statement", QUIET.values(), ids=QUIET.keys())
def test_quiet(statement: dict[str, Any]) -> None:
    assert hits(if_exists_allow, head=policy(statement)) == []


def test_message_names_the_operator_and_key() -> None:
    (hit,) = hits(if_exists_allow, head=policy(FIRES["string-equals-if-exists"]))
    assert hit.details == ("StringEqualsIfExists on kms:viaservice",)
    assert 'statement "S"' in hit.message and "drop IfExists" in hit.message


def test_registered() -> None:
    assert if_exists_allow in rules()
