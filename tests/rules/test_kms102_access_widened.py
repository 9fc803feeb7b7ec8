"""KMS102 corpus: any principal gaining any action."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import rules
from reconciler.findings import Severity
from reconciler.rules import access_widened
from tests.rules.diff_pairs import GUARD, NEVER_FIRE, PARTNER, USE, VIA_EC2, VIA_S3, Pair, via
from tests.rules.harness import TRUSTED_ACCOUNT, allow, hits, policy, role

BASE = policy(USE, PARTNER)
TRUSTED_ROOT = f"arn:aws:iam::{TRUSTED_ACCOUNT}:root"
APP = f"AWS:{role('App')['AWS']}"
PARTNER_WHO = f"AWS:{PARTNER['Principal']['AWS']}"

# id -> (base, head, "<principal> gains <actions>" expected in the message)
FIRES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    # Issue 9, defect 8: access regained by removing a Deny is a widening (KMS105 as well).
    "deny-removed": (
        policy(USE, {**GUARD, "Principal": USE["Principal"], "Action": "kms:Decrypt"}),
        policy(USE),
        "AWS:arn:aws:iam::111122223333:role/App gains kms:Decrypt",
    ),
    "trusted-account-gains-decrypt": (
        BASE,
        policy(USE, PARTNER, allow({"AWS": TRUSTED_ACCOUNT}, "kms:Decrypt", sid="Trusted")),
        f"AWS:{TRUSTED_ROOT} gains kms:Decrypt",
    ),
    "role-gains-an-action": (
        BASE,
        policy({**USE, "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]}, PARTNER),
        f"{APP} gains kms:GenerateDataKey",
    ),
    "public-gains-describe": (
        BASE,
        policy(USE, PARTNER, allow("*", "kms:DescribeKey", sid="Public")),
        "* gains kms:DescribeKey",
    ),
    "condition-removed": (
        BASE,
        policy(USE, {**PARTNER, "Condition": {}}),
        f"{PARTNER_WHO} gains kms:Decrypt",
    ),
    "condition-values-added": (
        BASE,
        policy(USE, {**PARTNER, "Condition": via(VIA_S3, VIA_EC2)}),
        f"{PARTNER_WHO} gains kms:Decrypt when StringEquals kms:viaservice=",
    ),
    "condition-made-ifexists": (
        BASE,
        policy(USE, {**PARTNER, "Condition": via(VIA_S3, operator="StringEqualsIfExists")}),
        f"{PARTNER_WHO} gains kms:Decrypt when StringEqualsIfExists",
    ),
    "not-action-widens": (
        policy(allow(role("Ops"), ["kms:DescribeKey"], sid="Ops")),
        policy(
            {
                "Sid": "Ops",
                "Effect": "Allow",
                "Principal": role("Ops"),
                "NotAction": "kms:ScheduleKeyDeletion",
                "Resource": "*",
            }
        ),
        f"AWS:{role('Ops')['AWS']} gains kms:CancelKeyDeletion",
    ),
}

QUIET: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    "action-removed": (BASE, policy({**USE, "Action": "kms:Encrypt"}, PARTNER)),
    "grant-removed": (BASE, policy(USE)),
    "already-covered-by-star": (
        policy(allow("*", ["kms:Decrypt", "kms:Encrypt"], sid="Any")),
        policy(allow("*", ["kms:Decrypt", "kms:Encrypt"], sid="Any"), USE),
    ),
    "gain-cancelled-by-unconditional-deny": (
        BASE,
        policy(
            USE,
            PARTNER,
            allow({"AWS": TRUSTED_ACCOUNT}, "kms:Decrypt", sid="Trusted"),
            {
                "Sid": "NoTrusted",
                "Effect": "Deny",
                "Principal": {"AWS": TRUSTED_ACCOUNT},
                "Action": "kms:*",
                "Resource": "*",
            },
        ),
    ),
    "added-key": (None, BASE),
    "removed-key": (BASE, None),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    base, head, expected = case
    (hit,) = hits(access_widened, base=base, head=head)
    assert (hit.severity or access_widened.RULE.severity) is Severity.MEDIUM
    assert hit.message.startswith("key app widens access: ")
    assert expected in hit.message
    # what is gained, then the engine's witness: a request the head newly allows
    assert len(hit.details) == 2 and expected in hit.details[0]
    assert hit.details[1].startswith("newly allowed: ")


@pytest.mark.parametrize("case", QUIET.values(), ids=QUIET.keys())
def test_quiet(case: tuple[dict[str, Any] | None, dict[str, Any] | None]) -> None:
    base, head = case
    assert hits(access_widened, base=base, head=head) == []


@pytest.mark.parametrize("pair", NEVER_FIRE.values(), ids=NEVER_FIRE.keys())
def test_never_fires(pair: Pair) -> None:
    base, head = pair
    assert hits(access_widened, base=base, head=head) == []


def test_details_list_who_gains_what() -> None:
    head = policy(
        {**USE, "Action": ["kms:Encrypt", "kms:Decrypt", "kms:Sign"]},
        PARTNER,
        allow({"AWS": TRUSTED_ACCOUNT}, ["kms:Decrypt", "kms:Encrypt"], sid="Trusted"),
    )
    (hit,) = hits(access_widened, base=BASE, head=head)
    assert hit.details == (
        f"{APP} gains kms:Sign",
        f"AWS:{TRUSTED_ROOT} gains kms:Decrypt, kms:Encrypt",
        f"newly allowed: {APP.removeprefix('AWS:')} may call kms:Sign (any request)",
        f"newly allowed: {TRUSTED_ROOT} may call kms:Decrypt, kms:Encrypt (any request)",
    )
    assert hit.message == (
        f"key app widens access: {APP} gains kms:Sign, and 1 more grant(s) widen (see details)"
    )
    assert hit.sid == "Use"


def test_registered() -> None:
    assert rules.all_rules()["KMS102"] is access_widened.RULE


ORG_PIN = {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}
EVERYONE: dict[str, tuple[dict[str, Any], Severity]] = {
    # issue 9, defect 10: every principal of the organization can now read plaintext
    # without an IAM policy of its own: high, although the org condition keeps KMS001 quiet
    "org-scoped-star-gains-decrypt": (
        policy(USE, allow("*", "kms:Decrypt", sid="Org", Condition=ORG_PIN)),
        Severity.HIGH,
    ),
    "org-scoped-star-gains-sign": (
        policy(USE, allow({"AWS": "*"}, "kms:Sign", sid="Org", Condition=ORG_PIN)),
        Severity.HIGH,
    ),
    "account-scoped-star-gains-generate-mac": (
        policy(
            USE,
            allow(
                "*",
                "kms:GenerateMac",
                sid="Acct",
                Condition={"StringEquals": {"kms:CallerAccount": "111122223333"}},
            ),
        ),
        Severity.HIGH,
    ),
    # describing or verifying is no key-holder act: a widening like any other
    "org-scoped-star-gains-describe": (
        policy(USE, allow("*", ["kms:DescribeKey", "kms:Verify"], sid="Org", Condition=ORG_PIN)),
        Severity.MEDIUM,
    ),
    "one-role-gains-decrypt": (
        policy(USE, allow(role("Reader"), "kms:Decrypt", sid="R")),
        Severity.MEDIUM,
    ),
}


@pytest.mark.parametrize("case", EVERYONE.values(), ids=EVERYONE.keys())
def test_severity_by_who_gains_what(case: tuple[dict[str, Any], Severity]) -> None:
    head, severity = case
    (hit,) = hits(access_widened, base=policy(USE), head=head)
    assert (hit.severity or access_widened.RULE.severity) is severity
