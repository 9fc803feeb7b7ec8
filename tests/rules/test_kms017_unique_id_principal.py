"""KMS017 corpus: principals shown as IAM unique IDs (deleted roles and users)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.rules import rules, unique_id_principal
from tests.factories import ACCOUNT
from tests.rules.harness import allow, hits, policy, role

ROLE_ID = "AROAJQABLZS4A3QDU576Q"
USER_ID = "AIDAJQABLZS4A3QDU576Q"

FIRES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "deleted-role": (allow({"AWS": ROLE_ID}, "kms:Decrypt"), [ROLE_ID]),
    "deleted-user": (allow({"AWS": [USER_ID]}, "kms:Decrypt"), [USER_ID]),
    "shortest-id": (allow({"AWS": "AROA" + "A" * 16}, "kms:Decrypt"), ["AROA" + "A" * 16]),
    "beside-a-live-role": (
        allow({"AWS": [ROLE_ID, role("App")["AWS"]]}, "kms:Decrypt"),
        [ROLE_ID],
    ),
    "role-and-user-one-hit": (allow({"AWS": [ROLE_ID, USER_ID]}, "kms:*"), [USER_ID, ROLE_ID]),
    "deny-too": (
        {**allow({"AWS": ROLE_ID}, "kms:ScheduleKeyDeletion"), "Effect": "Deny"},
        [ROLE_ID],
    ),
    "not-principal": (
        {
            "Sid": "S",
            "Effect": "Deny",
            "NotPrincipal": {"AWS": [ROLE_ID, f"arn:aws:iam::{ACCOUNT}:root"]},
            "Action": "kms:*",
            "Resource": "*",
        },
        [ROLE_ID],
    ),
}
QUIET: dict[str, dict[str, Any]] = {
    "role-arn": allow(role("App"), "kms:Decrypt"),
    "role-named-like-an-id": allow(role(ROLE_ID), "kms:Decrypt"),
    "account-id": allow({"AWS": ACCOUNT}, "kms:Decrypt"),
    "too-short": allow({"AWS": "AROA" + "A" * 15}, "kms:Decrypt"),
    "lower-case": allow({"AWS": ROLE_ID.lower()}, "kms:Decrypt"),
    "other-prefix": allow({"AWS": "ASIAJQABLZS4A3QDU576Q"}, "kms:Decrypt"),
    "service": allow({"Service": "logs.amazonaws.com"}, "kms:Decrypt"),
    "unique-id-in-a-condition": allow(
        "*", "kms:Decrypt", Condition={"StringLike": {"aws:userid": f"{ROLE_ID}:*"}}
    ),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any], list[str]]) -> None:
    statement, ids = case
    (hit,) = hits(unique_id_principal, head=policy(statement))
    assert hit.sid == "S"
    assert (hit.severity or unique_id_principal.RULE.severity) is Severity.MEDIUM
    assert list(hit.details) == ids
    assert all(i in hit.message for i in ids)


@pytest.mark.parametrize("statement", QUIET.values(), ids=QUIET.keys())
def test_quiet(statement: dict[str, Any]) -> None:
    assert hits(unique_id_principal, head=policy(statement)) == []


def test_one_hit_per_statement() -> None:
    doc = policy(
        allow({"AWS": ROLE_ID}, "kms:Decrypt", sid="A"),
        allow({"AWS": USER_ID}, "kms:Encrypt", sid="B"),
    )
    assert sorted(h.sid or "" for h in hits(unique_id_principal, head=doc)) == ["A", "B"]


def test_registered() -> None:
    assert unique_id_principal in rules()
