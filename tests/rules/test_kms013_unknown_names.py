"""KMS013 corpus: unknown actions (typos, empty patterns, other services) and condition keys."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.rules import rules, unknown_names
from tests.factories import ACCOUNT
from tests.rules.harness import allow, hits, policy, role


def _with(condition: dict[str, Any]) -> dict[str, Any]:
    return allow(role("App"), "kms:Decrypt", Condition=condition)


# statement -> how many problems the hit lists
FIRES: dict[str, tuple[dict[str, Any], int]] = {
    "typo-action": (allow(role("App"), "kms:Decrpyt"), 1),
    "pattern-matching-nothing": (allow(role("App"), "kms:Foo*"), 1),
    "other-service": (allow(role("App"), "s3:GetObject"), 1),
    "other-service-wildcard": (allow(role("App"), "s3:*"), 1),
    "no-service-prefix": (allow(role("App"), "Decrypt"), 1),
    "typo-in-not-action": (
        {
            "Sid": "S",
            "Effect": "Deny",
            "Principal": "*",
            "NotAction": ["kms:Encrypt", "kms:DescribeKeys"],
            "Resource": "*",
        },
        1,
    ),
    "two-typos-one-hit": (allow(role("App"), ["kms:Decrpyt", "kms:Encrpyt", "kms:Encrypt"]), 2),
    "unknown-condition-key": (_with({"StringEquals": {"aws:SourceAcount": ACCOUNT}}), 1),
    "encryption-context-keys-typo": (
        _with({"ForAnyValue:StringEquals": {"kms:EncryptionContextKey": "Department"}}),
        1,
    ),
    "other-service-condition-key": (_with({"StringEquals": {"s3:prefix": "home/"}}), 1),
    "action-and-key": (
        allow(role("App"), "kms:Decrpyt", Condition={"Bool": {"aws:SecureTransprot": "true"}}),
        2,
    ),
}

QUIET: dict[str, dict[str, Any]] = {
    "exact-action": allow(role("App"), "kms:Decrypt"),
    "lower-case-action": allow(role("App"), "KMS:decrypt"),
    "generate-data-key-pattern": allow(role("App"), "kms:GenerateDataKey*"),
    "question-mark-pattern": allow(role("App"), "kms:?ncrypt"),
    "kms-star": allow(role("App"), "kms:*"),
    "star": allow(role("App"), "*"),
    "encryption-context-key": _with({"StringEquals": {"kms:EncryptionContext:Department": "IT"}}),
    "encryption-context-key-mixed-case": _with(
        {"StringEquals": {"KMS:ENCRYPTIONCONTEXT:Department": "IT"}}
    ),
    "principal-tag": _with({"StringEquals": {"aws:PrincipalTag/team": "payments"}}),
    "principal-tag-mixed-case": _with({"StringEquals": {"AWS:principaltag/Team": "payments"}}),
    "request-tag": _with({"StringEquals": {"aws:RequestTag/env": "prod"}}),
    "global-keys-mixed-case": _with(
        {
            "StringEquals": {"AWS:SourceAccount": ACCOUNT, "Kms:ViaService": "s3.amazonaws.com"},
            "Bool": {"aws:SecureTransport": "true"},
        }
    ),
    "encryption-context-keys": _with(
        {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "Department"}}
    ),
    "recipient-attestation": _with(
        {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": "abc"}}
    ),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any], int]) -> None:
    statement, problems = case
    (hit,) = hits(unknown_names, head=policy(statement))
    assert hit.sid == "S"
    assert (hit.severity or unknown_names.RULE.severity) is Severity.MEDIUM
    assert len(hit.details) == problems


@pytest.mark.parametrize("statement", QUIET.values(), ids=QUIET.keys())
def test_quiet(statement: dict[str, Any]) -> None:
    assert hits(unknown_names, head=policy(statement)) == []


@pytest.mark.parametrize(
    ("action", "detail"),
    [
        ("kms:Decrpyt", "kms:Decrpyt is not a KMS action, did you mean kms:Decrypt?"),
        ("kms:Foo*", "kms:Foo* matches no KMS action"),
        ("s3:GetObject", "s3:GetObject is not a KMS action"),
    ],
    ids=["typo-suggests", "pattern", "other-service"],
)
def test_details_say_what_is_wrong(action: str, detail: str) -> None:
    (hit,) = hits(unknown_names, head=policy(allow(role("App"), action)))
    assert hit.details == (detail,)
    assert 'statement "S"' in hit.message


def test_condition_key_typo_suggests() -> None:
    statement = _with({"StringEquals": {"aws:SourceAcount": ACCOUNT}})
    (hit,) = hits(unknown_names, head=policy(statement))
    assert hit.details == (
        "aws:sourceacount is not a known condition key, did you mean aws:sourceaccount?",
    )


def test_registered() -> None:
    assert unknown_names in rules()
