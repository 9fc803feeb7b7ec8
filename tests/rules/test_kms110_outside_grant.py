"""KMS110 corpus: a declared grant newly lets an outside principal use the key."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.findings import Severity
from reconciler.review import Subject, _pair
from reconciler.rules import outside_grant
from reconciler.state import Grant
from tests.rules.harness import (
    ACCOUNT,
    OTHER_ACCOUNT,
    TARGET,
    TRUSTED_ACCOUNT,
    context,
    key,
    policy,
)

PARTNER = f"arn:aws:iam::{OTHER_ACCOUNT}:role/Partner"
TRUSTED = f"arn:aws:iam::{TRUSTED_ACCOUNT}:role/Reporting"
OWN = f"arn:aws:iam::{ACCOUNT}:role/App"


def with_grants(*grants: Grant) -> object:
    base = key(policy(), "app")
    return replace(base, state=replace(base.state, grants=grants))


def hits(base: tuple[Grant, ...] | None, head: tuple[Grant, ...]) -> list[object]:
    b = with_grants(*base) if base is not None else None
    change = _pair(TARGET, "app", b, with_grants(*head))  # type: ignore[arg-type]
    return list(outside_grant.check(Subject(change, context())))


DECRYPT = Grant.of(PARTNER, ["Decrypt"], name="partner-decrypt")
ENCRYPT = Grant.of(PARTNER, ["Encrypt", "DescribeKey"], name="partner-encrypt")


def test_new_decrypt_grant_to_another_account_is_high() -> None:
    (hit,) = hits((), (DECRYPT,))
    assert hit.message == (
        f"key app: grant 'partner-decrypt' lets {PARTNER} (account {OTHER_ACCOUNT}) Decrypt"
    )
    assert hit.severity is None  # the rule's own: high
    assert outside_grant.RULE.severity is Severity.HIGH


def test_new_grant_without_sensitive_operations_is_medium() -> None:
    (hit,) = hits((), (ENCRYPT,))
    assert hit.severity is Severity.MEDIUM


def test_added_key_with_an_outside_grant() -> None:
    (hit,) = hits(None, (DECRYPT,))
    assert hit.message.startswith("added key app: grant 'partner-decrypt'")


@pytest.mark.parametrize(
    "base, head",
    [
        pytest.param((DECRYPT,), (DECRYPT,), id="already-declared"),
        pytest.param((), (Grant.of(OWN, ["Decrypt"], name="own"),), id="own-account"),
        pytest.param((), (Grant.of(TRUSTED, ["Decrypt"], name="trusted"),), id="trusted-account"),
        pytest.param((DECRYPT,), (replace(DECRYPT, name="renamed"),), id="same-content-new-name"),
        pytest.param((DECRYPT,), (), id="grant-removed"),
    ],
)
def test_quiet(base: tuple[Grant, ...], head: tuple[Grant, ...]) -> None:
    assert hits(base, head) == []
