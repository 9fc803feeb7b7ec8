"""KMS106 corpus: an account or a service principal new to the key policy."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import rules
from reconciler.findings import Severity
from reconciler.rules import new_account
from tests.rules.diff_pairs import LOGS, NEVER_FIRE, PARTNER, PARTNER_ROOT, USE, Pair
from tests.rules.harness import OTHER_ACCOUNT, TRUSTED_ACCOUNT, allow, hits, policy, role

BASE = policy(USE)
NEW = "444455556666"


def caller(accounts: list[str]) -> dict[str, Any]:
    return {"StringEquals": {"kms:CallerAccount": accounts}}


READER = role("Reader", OTHER_ACCOUNT)
FIRST = "appears in the policy for the first time"

# id -> (base, head, the message after "key app: " / "added key app: ")
FIRES: dict[str, tuple[dict[str, Any] | None, dict[str, Any], str]] = {
    "other-account-role": (
        BASE,
        policy(USE, allow(READER, "kms:Decrypt")),
        f"account {OTHER_ACCOUNT} {FIRST}: AWS:{READER['AWS']} gains kms:Decrypt",
    ),
    "other-account-id": (
        BASE,
        policy(USE, allow({"AWS": OTHER_ACCOUNT}, ["kms:Decrypt", "kms:Encrypt"])),
        f"account {OTHER_ACCOUNT} {FIRST}: AWS:{PARTNER_ROOT} gains kms:Decrypt, kms:Encrypt",
    ),
    "trusted-account-new-to-this-key": (
        BASE,
        policy(USE, allow({"AWS": TRUSTED_ACCOUNT}, "kms:*")),
        f"account {TRUSTED_ACCOUNT} {FIRST}: AWS:arn:aws:iam::{TRUSTED_ACCOUNT}:root gains kms:*",
    ),
    "service-principal": (
        BASE,
        policy(USE, LOGS),
        f"service principal logs.amazonaws.com {FIRST}: Service:logs.amazonaws.com gains "
        "kms:Encrypt, kms:GenerateDataKey",
    ),
    # issue 9, defect 7: an account named in a condition that admits callers by account
    "caller-account-gains-an-account": (
        policy(USE, allow("*", "kms:Decrypt", sid="Org", Condition=caller(["111122223333"]))),
        policy(
            USE,
            allow("*", "kms:Decrypt", sid="Org", Condition=caller(["111122223333", NEW])),
        ),
        f'account {NEW} {FIRST}: callers with kms:calleraccount = {NEW} (statement "Org") '
        "gains kms:Decrypt",
    ),
    "principal-account-condition": (
        BASE,
        policy(
            USE,
            allow(
                "*",
                "kms:Encrypt",
                sid="P",
                Condition={"StringEquals": {"aws:PrincipalAccount": NEW}},
            ),
        ),
        f'account {NEW} {FIRST}: callers with aws:principalaccount = {NEW} (statement "P") '
        "gains kms:Encrypt",
    ),
    "source-account-condition": (
        policy(USE, LOGS),
        policy(
            USE,
            {**LOGS, "Condition": {"StringEquals": {"aws:SourceAccount": ["111122223333", NEW]}}},
        ),
        f'account {NEW} {FIRST}: callers with aws:sourceaccount = {NEW} (statement "Logs") '
        "gains kms:Encrypt, kms:GenerateDataKey",
    ),
    "deny-exempts-a-new-account": (
        policy(USE),
        policy(
            USE,
            {
                **allow("*", "kms:*", sid="Fence"),
                "Effect": "Deny",
                "Condition": {"StringNotEquals": {"kms:CallerAccount": ["111122223333", NEW]}},
            },
        ),
        f'account {NEW} {FIRST}: callers with kms:calleraccount = {NEW} (statement "Fence") '
        "gains kms:*",
    ),
    "added-key-names-a-partner": (
        None,
        policy(USE, PARTNER),
        f"account {OTHER_ACCOUNT} {FIRST}: AWS:{PARTNER_ROOT} gains kms:Decrypt",
    ),
}

QUIET: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    "deny-names-an-account-it-denies": (
        BASE,
        policy(
            USE,
            {
                **allow("*", "kms:*", sid="Block"),
                "Effect": "Deny",
                "Condition": {"StringEquals": {"kms:CallerAccount": NEW}},
            },
        ),
    ),
    "caller-account-already-named": (
        policy(USE, allow("*", "kms:Decrypt", sid="Org", Condition=caller([NEW]))),
        policy(USE, allow("*", ["kms:Decrypt", "kms:Encrypt"], sid="Org", Condition=caller([NEW]))),
    ),
    "own-account-role": (BASE, policy(USE, allow(role("Reader"), "kms:Decrypt"))),
    "account-already-named-in-another-statement": (
        policy(USE, PARTNER),
        policy(USE, PARTNER, allow(READER, "kms:Encrypt", sid="Reader")),
    ),
    "account-already-named-in-a-base-condition": (
        policy(
            USE,
            allow(
                {"AWS": "*"},
                "kms:Decrypt",
                Condition={"StringEquals": {"kms:CallerAccount": OTHER_ACCOUNT}},
            ),
        ),
        policy(USE, PARTNER),
    ),
    "account-already-named-in-a-base-deny": (
        policy(USE, {**PARTNER, "Effect": "Deny", "Condition": {}}),
        policy(USE, PARTNER),
    ),
    "new-account-only-in-a-deny": (
        BASE,
        policy(USE, {**PARTNER, "Effect": "Deny", "Condition": {}}),
    ),
    "public-principal-is-not-an-account": (BASE, policy(USE, allow("*", "kms:DescribeKey"))),
    "service-gains-more-actions": (
        policy(USE, LOGS),
        policy(USE, {**LOGS, "Action": ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"]}),
    ),
    "added-key-for-own-account-only": (None, BASE),
    "removed-key": (policy(USE, PARTNER), None),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any] | None, dict[str, Any], str]) -> None:
    base, head, expected = case
    (hit,) = hits(new_account, base=base, head=head)
    assert (hit.severity or new_account.RULE.severity) is Severity.MEDIUM
    where = "added key" if base is None else "key"
    assert hit.message == f"{where} app: {expected}"


@pytest.mark.parametrize("case", QUIET.values(), ids=QUIET.keys())
def test_quiet(case: tuple[dict[str, Any] | None, dict[str, Any] | None]) -> None:
    base, head = case
    assert hits(new_account, base=base, head=head) == []


@pytest.mark.parametrize("pair", NEVER_FIRE.values(), ids=NEVER_FIRE.keys())
def test_never_fires(pair: Pair) -> None:
    base, head = pair
    assert hits(new_account, base=base, head=head) == []


def test_one_hit_per_new_party() -> None:
    head = policy(
        USE,
        allow(READER, "kms:Decrypt", sid="Reader"),
        allow({"AWS": OTHER_ACCOUNT}, "kms:DescribeKey", sid="Partner"),
        LOGS,
    )
    found = hits(new_account, base=BASE, head=head)
    assert [h.sid for h in found] == ["Reader", "Logs"]  # the statement of the first line
    assert found[0].details == (
        f"AWS:{READER['AWS']} gains kms:Decrypt",
        f"AWS:{PARTNER_ROOT} gains kms:DescribeKey",
    )
    assert found[0].message.endswith("(and 1 more, see details)")


def test_registered() -> None:
    assert rules.all_rules()["KMS106"] is new_account.RULE
