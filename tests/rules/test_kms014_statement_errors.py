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

# statements -> the Sids of the hits, in order
FIRES: dict[str, tuple[list[dict[str, Any]], list[str | None]]] = {
    "duplicate-sid": (
        [allow(role("A"), "kms:Decrypt", sid="Use"), allow(role("B"), "kms:Encrypt", sid="Use")],
        ["Use"],
    ),
    "sid-of-the-root-statement-reused": (
        [allow(role("A"), "kms:Decrypt", sid=str(ROOT["Sid"]))],
        [str(ROOT["Sid"])],
    ),
    "exact-duplicate-statement-repeats-its-sid": (
        [allow(role("A"), "kms:Decrypt", sid="Use"), allow(role("A"), "kms:Decrypt", sid="Use")],
        ["Use"],
    ),
    "three-statements-one-sid-one-hit": (
        [allow(role(name), "kms:Decrypt", sid="Use") for name in ("A", "B", "C")],
        ["Use"],
    ),
    "key-arn-resource": ([{**allow(role("A"), "kms:Decrypt"), "Resource": KEY_ARN}], ["S"]),
    "star-and-arn": ([{**allow(role("A"), "kms:Decrypt"), "Resource": ["*", KEY_ARN]}], ["S"]),
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
        ["S"],
    ),
    "resource-without-sid": (
        [{**allow(role("A"), "kms:Decrypt"), "Sid": None, "Resource": KEY_ARN}],
        [None],
    ),
    "duplicate-sid-and-resource-two-hits": (
        [
            allow(role("A"), "kms:Decrypt", sid="Use"),
            {**allow(role("B"), "kms:Encrypt", sid="Use"), "Resource": KEY_ARN},
        ],
        ["Use", "Use"],
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
def test_fires(case: tuple[list[dict[str, Any]], list[str | None]]) -> None:
    statements, sids = case
    found = hits(statement_errors, head=policy(*map(_clean, statements)))
    assert [h.sid for h in found] == sids
    assert all((h.severity or statement_errors.RULE.severity) is Severity.LOW for h in found)


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
