"""KMS104 corpus: a condition removed or weakened on an Allow kept under the same Sid."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import rules
from reconciler.findings import Severity
from reconciler.rules import condition_weakened
from tests.rules.diff_pairs import (
    NEVER_FIRE,
    PARTNER,
    PARTNER_ROOT,
    USE,
    VIA_EC2,
    VIA_S3,
    Pair,
    via,
)
from tests.rules.harness import ORG, OTHER_ACCOUNT, TRUSTED_ACCOUNT, hits, policy

WHO = f'statement "Partner" allowing AWS:{PARTNER_ROOT} kms:Decrypt'


def partner(condition: dict[str, Any] | None) -> dict[str, Any]:
    return policy(USE, {**PARTNER, "Condition": condition or {}})


VIA_AND_ORG = {"StringEquals": {"kms:ViaService": VIA_S3, "aws:PrincipalOrgID": ORG}}
CALLERS = {"StringNotEquals": {"kms:CallerAccount": [OTHER_ACCOUNT, TRUSTED_ACCOUNT]}}

# id -> (base, head, what the message says after "weakens its condition: ")
FIRES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "condition-key-removed": (
        partner(VIA_AND_ORG),
        partner(via(VIA_S3)),
        "StringEquals aws:principalorgid is removed",
    ),
    "whole-condition-removed": (
        partner(via(VIA_S3)),
        partner(None),
        "StringEquals kms:viaservice is removed",
    ),
    "values-added": (
        partner(via(VIA_S3)),
        partner(via(VIA_S3, VIA_EC2)),
        f"StringEquals kms:viaservice adds {VIA_EC2}",
    ),
    "operator-made-ifexists": (
        partner(via(VIA_S3)),
        partner(via(VIA_S3, operator="StringEqualsIfExists")),
        "StringEquals kms:viaservice becomes StringEqualsIfExists: "
        "a request without kms:viaservice passes",
    ),
    "equals-made-like": (
        partner(via(VIA_S3)),
        partner(via("s3.*.amazonaws.com", operator="StringLike")),
        "StringEquals kms:viaservice becomes StringLike",
    ),
    "like-made-equals-but-more-values": (
        partner(via(VIA_S3, operator="StringLike")),
        partner(via(VIA_S3, VIA_EC2)),
        f"StringLike kms:viaservice becomes StringEquals and adds {VIA_EC2}",
    ),
}

QUIET: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    # The partner's kms:CallerAccount is always its own account, which both conditions
    # exclude, and every KMS request carries it: the policy-semantics engine proves that
    # nobody gains (issue 9), so the reworded condition weakens nothing.
    "not-operator-excludes-fewer-but-not-the-caller": (
        partner(CALLERS),
        partner({"StringNotEquals": {"kms:CallerAccount": OTHER_ACCOUNT}}),
    ),
    "not-equals-made-ifexists-on-a-key-always-present": (
        partner(CALLERS),
        partner({"StringNotEqualsIfExists": CALLERS["StringNotEquals"]}),
    ),
    # Issue 9, defect 3: a *Like value made narrower is a narrowing.
    "like-narrowed": (
        partner(via("s3.*.amazonaws.com", operator="StringLike")),
        partner(via("s3.us-*.amazonaws.com", operator="StringLike")),
    ),
    # Issue 9, defect 2: a condition on an unknown key never matches: nobody gains.
    "condition-key-misspelt": (
        partner({"StringEquals": {"aws:PrincipalOrgID": ORG}}),
        partner({"StringEquals": {"aws:PrincipalOrgIDs": ORG}}),
    ),
    "condition-added": (partner(None), partner(via(VIA_S3))),
    "values-removed": (partner(via(VIA_S3, VIA_EC2)), partner(via(VIA_S3))),
    "not-operator-excludes-more": (
        partner({"StringNotEquals": {"kms:CallerAccount": OTHER_ACCOUNT}}),
        partner(CALLERS),
    ),
    "key-moved-to-a-stricter-operator": (
        partner(via(VIA_S3, operator="StringLikeIfExists")),
        partner(via(VIA_S3)),
    ),
    # Sid renamed: nothing to pair by; KMS102 reports the widening.
    "sid-renamed-is-not-paired": (
        partner(via(VIA_S3)),
        policy(USE, {**PARTNER, "Sid": "PartnerAnywhere"}),
    ),
    "allow-turned-into-deny": (
        partner(via(VIA_S3)),
        policy(USE, {**PARTNER, "Effect": "Deny"}),
    ),
    "added-key": (None, partner(None)),
    "removed-key": (partner(via(VIA_S3)), None),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    base, head, expected = case
    (hit,) = hits(condition_weakened, base=base, head=head)
    assert (hit.severity or condition_weakened.RULE.severity) is Severity.HIGH
    assert hit.message == f"key app: {WHO} weakens its condition: {expected}"
    assert hit.sid == "Partner"


@pytest.mark.parametrize("case", QUIET.values(), ids=QUIET.keys())
def test_quiet(case: tuple[dict[str, Any] | None, dict[str, Any] | None]) -> None:
    base, head = case
    assert hits(condition_weakened, base=base, head=head) == []


@pytest.mark.parametrize("pair", NEVER_FIRE.values(), ids=NEVER_FIRE.keys())
def test_never_fires(pair: Pair) -> None:
    base, head = pair
    assert hits(condition_weakened, base=base, head=head) == []


def test_every_weakening_is_in_the_details() -> None:
    head = partner({"StringEqualsIfExists": {"kms:ViaService": [VIA_S3, VIA_EC2]}})
    (hit,) = hits(condition_weakened, base=partner(VIA_AND_ORG), head=head)
    assert hit.details == (
        "StringEquals aws:principalorgid is removed",
        "StringEquals kms:viaservice becomes StringEqualsIfExists: "
        "a request without kms:viaservice passes",
    )
    assert hit.message.endswith("is removed (and 1 more, see details)")


def test_registered() -> None:
    assert rules.all_rules()["KMS104"] is condition_weakened.RULE
