"""KMS014 corpus: duplicate Sids and Resources other than "*"."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.rules import rules, statement_errors
from tests.factories import ACCOUNT
from tests.rules.harness import ROOT, allow, hits, policy, role

KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/other"

LOW, MEDIUM, HIGH = Severity.LOW, Severity.MEDIUM, Severity.HIGH

# statements -> the (Sid, severity) of the hits, in order. A duplicate Sid only confuses
# readers (low); a Resource other than "*" may keep the statement from applying to this key
# (issue 9, defect 10): an Allow that may silently grant nothing is medium, a Deny that may
# silently deny nothing is high.
FIRES: dict[str, tuple[list[dict[str, Any]], list[tuple[str | None, Severity]]]] = {
    "duplicate-sid": (
        [allow(role("A"), "kms:Decrypt", sid="Use"), allow(role("B"), "kms:Encrypt", sid="Use")],
        [("Use", LOW)],
    ),
    "sid-of-the-root-statement-reused": (
        [allow(role("A"), "kms:Decrypt", sid=str(ROOT["Sid"]))],
        [(str(ROOT["Sid"]), LOW)],
    ),
    "exact-duplicate-statement-repeats-its-sid": (
        [allow(role("A"), "kms:Decrypt", sid="Use"), allow(role("A"), "kms:Decrypt", sid="Use")],
        [("Use", LOW)],
    ),
    "three-statements-one-sid-one-hit": (
        [allow(role(name), "kms:Decrypt", sid="Use") for name in ("A", "B", "C")],
        [("Use", LOW)],
    ),
    "key-arn-resource": (
        [{**allow(role("A"), "kms:Decrypt"), "Resource": KEY_ARN}],
        [("S", MEDIUM)],
    ),
    "star-and-arn": (
        [{**allow(role("A"), "kms:Decrypt"), "Resource": ["*", KEY_ARN]}],
        [("S", MEDIUM)],
    ),
    "not-resource": (
        [
            {
                "Sid": "S",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "kms:*",
                "NotResource": OTHER_KEY_ARN,
            }
        ],
        [("S", HIGH)],
    ),
    "deny-naming-a-key-arn": (
        [
            {
                "Sid": "NoDelete",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "kms:ScheduleKeyDeletion",
                "Resource": OTHER_KEY_ARN,
            }
        ],
        [("NoDelete", HIGH)],
    ),
    "resource-without-sid": (
        [{**allow(role("A"), "kms:Decrypt"), "Sid": None, "Resource": KEY_ARN}],
        [(None, MEDIUM)],
    ),
    "duplicate-sid-and-resource-two-hits": (
        [
            allow(role("A"), "kms:Decrypt", sid="Use"),
            {**allow(role("B"), "kms:Encrypt", sid="Use"), "Resource": KEY_ARN},
        ],
        [("Use", LOW), ("Use", MEDIUM)],
    ),
}
QUIET: dict[str, list[dict[str, Any]]] = {
    "distinct-sids": [allow(role("A"), "kms:Decrypt", sid="A"), allow(role("B"), "kms:Decrypt")],
    "no-sids": [
        {k: v for k, v in allow(role(name), "kms:Decrypt").items() if k != "Sid"}
        for name in ("A", "B")
    ],
    "resource-star-list": [{**allow(role("A"), "kms:Decrypt"), "Resource": ["*"]}],
}


def _clean(statement: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in statement.items() if v is not None}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[list[dict[str, Any]], list[tuple[str | None, Severity]]]) -> None:
    statements, expected = case
    found = hits(statement_errors, head=policy(*map(_clean, statements)))
    assert [(h.sid, h.severity or statement_errors.RULE.severity) for h in found] == expected


@pytest.mark.parametrize("statements", QUIET.values(), ids=QUIET.keys())
def test_quiet(statements: list[dict[str, Any]]) -> None:
    assert hits(statement_errors, head=policy(*statements)) == []


def test_single_statement_object() -> None:
    doc = {"Version": "2012-10-17", "Statement": {**ROOT, "Resource": KEY_ARN}}
    (hit,) = hits(statement_errors, head=doc)
    assert hit.sid == ROOT["Sid"]


def test_messages() -> None:
    statements = [
        allow(role("A"), "kms:Decrypt", sid="Use"),
        {**allow(role("B"), "kms:Encrypt", sid="Use"), "Resource": KEY_ARN},
    ]
    duplicate, resource = hits(statement_errors, head=policy(*statements))
    assert duplicate.message.startswith('2 statements share the Sid "Use"')
    assert resource.message.startswith(f'statement "Use" names the resource {KEY_ARN}')
    assert 'write "Resource": "*"' in resource.message


def test_registered() -> None:
    assert statement_errors in rules()
