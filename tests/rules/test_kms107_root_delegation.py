"""KMS107 corpus: the root delegation (kms:* to the target account's root) added or removed."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import rules
from reconciler.findings import Severity
from reconciler.rules import root_delegation
from tests.factories import ACCOUNT
from tests.rules.diff_pairs import NEVER_FIRE, USE, Pair
from tests.rules.harness import ROOT, TRUSTED_ACCOUNT, allow, hits, policy, role

ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
ADMIN = allow(role("KeyAdmin"), "kms:*", sid="Admin")
WITHOUT = policy(USE, ADMIN, root=False)
WITH = policy(USE, ADMIN)
ADDED = f"key app: the root delegation is added: {ROOT_ARN} gains kms:*"
REMOVED = f"key app: the root delegation is removed: {ROOT_ARN} no longer has kms:*"


def root_with(**fields: Any) -> dict[str, Any]:
    """The root delegation statement with some fields replaced (NotAction drops Action)."""
    statement = {k: v for k, v in ROOT.items() if not (k == "Action" and "NotAction" in fields)}
    return {**statement, **fields}


# id -> (base, head, message start, severity)
FIRES: dict[str, tuple[dict[str, Any], dict[str, Any], str, Severity]] = {
    # issue 9, defect 10: adding the delegation widens access to every IAM principal of the
    # account that IAM gives kms:*: at least a widening's medium, not low
    "added": (WITHOUT, WITH, ADDED, Severity.MEDIUM),
    "added-as-account-id": (
        WITHOUT,
        policy(USE, ADMIN, root_with(Principal={"AWS": ACCOUNT}), root=False),
        ADDED,
        Severity.MEDIUM,
    ),
    "removed": (WITH, WITHOUT, REMOVED, Severity.HIGH),
    "narrowed-to-some-actions": (
        WITH,
        policy(USE, ADMIN, root_with(Action=["kms:Decrypt", "kms:Encrypt"]), root=False),
        REMOVED,
        Severity.HIGH,
    ),
    "narrowed-by-not-action": (
        WITH,
        policy(USE, ADMIN, root_with(NotAction="kms:ScheduleKeyDeletion"), root=False),
        REMOVED,
        Severity.HIGH,
    ),
    "made-conditional": (
        WITH,
        policy(
            USE,
            ADMIN,
            root_with(Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}),
            root=False,
        ),
        REMOVED,
        Severity.HIGH,
    ),
}

QUIET: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    "star-action-is-kms-star": (WITH, policy(USE, ADMIN, root_with(Action="*"), root=False)),
    "split-over-two-statements": (
        WITH,
        policy(
            USE,
            ADMIN,
            root_with(NotAction="kms:PutKeyPolicy"),
            {**root_with(Action="kms:PutKeyPolicy"), "Sid": "RootManages"},
            root=False,
        ),
    ),
    "trusted-account-root-gets-kms-star": (
        WITHOUT,
        policy(USE, ADMIN, allow({"AWS": TRUSTED_ACCOUNT}, "kms:*"), root=False),
    ),
    "partial-root-grant-added": (
        WITHOUT,
        policy(USE, ADMIN, root_with(Action="kms:DescribeKey"), root=False),
    ),
    "added-key": (None, WITH),
    "removed-key": (WITH, None),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any], dict[str, Any], str, Severity]) -> None:
    base, head, start, severity = case
    (hit,) = hits(root_delegation, base=base, head=head)
    assert (hit.severity or root_delegation.RULE.severity) is severity
    assert hit.message.startswith(start)
    assert hit.sid == "Enable IAM User Permissions"


@pytest.mark.parametrize("case", QUIET.values(), ids=QUIET.keys())
def test_quiet(case: tuple[dict[str, Any] | None, dict[str, Any] | None]) -> None:
    base, head = case
    assert hits(root_delegation, base=base, head=head) == []


@pytest.mark.parametrize("pair", NEVER_FIRE.values(), ids=NEVER_FIRE.keys())
def test_never_fires(pair: Pair) -> None:
    base, head = pair
    assert hits(root_delegation, base=base, head=head) == []


def test_registered() -> None:
    assert rules.all_rules()["KMS107"] is root_delegation.RULE
