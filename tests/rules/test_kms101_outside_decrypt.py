"""KMS101 corpus: decrypt-type access newly granted outside the account and trusted accounts."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import rules
from reconciler.findings import Severity
from reconciler.rules import outside_decrypt
from tests.factories import ACCOUNT
from tests.rules.diff_pairs import NEVER_FIRE, PARTNER_ROOT, USE, VIA_S3, Pair, via
from tests.rules.harness import ORG, OTHER_ACCOUNT, TRUSTED_ACCOUNT, allow, hits, policy, role

BASE = policy(USE)
STAR = '"*" (every AWS principal)'
DENY_PARTNER_DECRYPT = {
    "Sid": "DenyPartner",
    "Effect": "Deny",
    "Principal": {"AWS": OTHER_ACCOUNT},
    "Action": "kms:Decrypt",
    "Resource": "*",
}
ALL_BUT_INTERN = {
    "Sid": "AllButIntern",
    "Effect": "Allow",
    "NotPrincipal": role("Intern"),
    "Action": "kms:Decrypt",
    "Resource": "*",
}


def org(*ids: str, operator: str = "StringEquals") -> dict[str, Any]:
    return {operator: {"aws:PrincipalOrgID": list(ids)}}


# id -> (base, head, "<principal> gains <action>" expected in the message)
FIRES: dict[str, tuple[dict[str, Any] | None, dict[str, Any], str]] = {
    "other-account-id-gains-decrypt": (
        BASE,
        policy(USE, allow({"AWS": OTHER_ACCOUNT}, "kms:Decrypt")),
        f"AWS:{PARTNER_ROOT} gains kms:Decrypt",
    ),
    "other-account-role-gains-generate-data-key": (
        BASE,
        policy(USE, allow(role("Reader", OTHER_ACCOUNT), "kms:GenerateDataKey")),
        f"AWS:arn:aws:iam::{OTHER_ACCOUNT}:role/Reader gains kms:GenerateDataKey",
    ),
    "aws-star-with-only-via-service-gains-decrypt": (
        BASE,
        policy(USE, allow({"AWS": "*"}, "kms:Decrypt", Condition=via(VIA_S3))),
        f"{STAR} gains kms:Decrypt",
    ),
    "star-gains-kms-wildcard": (
        BASE,
        policy(USE, allow("*", "kms:*")),
        # kms:* covers kms:Decapsulate (ML-KEM), which recovers a secret like Decrypt
        f"{STAR} gains kms:Decapsulate, kms:Decrypt, kms:GenerateDataKey",
    ),
    "org-condition-removed": (
        policy(USE, allow({"AWS": PARTNER_ROOT}, "kms:Decrypt", Condition=org(ORG))),
        policy(USE, allow({"AWS": PARTNER_ROOT}, "kms:Decrypt")),
        f"AWS:{PARTNER_ROOT} gains kms:Decrypt",
    ),
    "org-condition-names-a-foreign-org": (
        BASE,
        policy(USE, allow("*", "kms:Decrypt", Condition=org("o-zzzzzzzzzz"))),
        f"{STAR} gains kms:Decrypt",
    ),
    "org-condition-also-names-a-foreign-org": (
        BASE,
        policy(USE, allow("*", "kms:Decrypt", Condition=org(ORG, "o-zzzzzzzzzz"))),
        f"{STAR} gains kms:Decrypt",
    ),
    "org-condition-ifexists-lets-a-missing-key-pass": (
        BASE,
        policy(USE, allow("*", "kms:Decrypt", Condition=org(ORG, operator="StringEqualsIfExists"))),
        f"{STAR} gains kms:Decrypt",
    ),
    "caller-account-is-another-account": (
        BASE,
        policy(
            USE,
            allow(
                {"AWS": "*"},
                "kms:ReEncryptFrom",
                Condition={"StringEquals": {"kms:CallerAccount": OTHER_ACCOUNT}},
            ),
        ),
        f"{STAR} gains kms:ReEncryptFrom",
    ),
    "service-without-source-condition": (
        BASE,
        policy(USE, allow({"Service": "logs.amazonaws.com"}, ["kms:Decrypt", "kms:Encrypt"])),
        "Service:logs.amazonaws.com gains kms:Decrypt",
    ),
    "not-principal-allow": (
        BASE,
        policy(USE, ALL_BUT_INTERN),
        "every principal except AWS:arn:aws:iam::111122223333:role/Intern gains kms:Decrypt",
    ),
    "unconditional-deny-lifted": (
        policy(USE, allow({"AWS": PARTNER_ROOT}, "kms:Decrypt"), DENY_PARTNER_DECRYPT),
        policy(USE, allow({"AWS": PARTNER_ROOT}, "kms:Decrypt")),
        f"AWS:{PARTNER_ROOT} gains kms:Decrypt",
    ),
    "added-key-with-public-decrypt": (
        None,
        policy(allow({"AWS": "*"}, ["kms:Decrypt", "kms:DescribeKey"])),
        f"{STAR} gains kms:Decrypt",
    ),
}

QUIET: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    "trusted-account-gains-decrypt": (
        BASE,
        policy(USE, allow({"AWS": TRUSTED_ACCOUNT}, "kms:Decrypt")),
    ),
    "own-account-role-gains-decrypt": (
        BASE,
        policy(USE, allow(role("Reader"), ["kms:Decrypt", "kms:GenerateDataKey"])),
    ),
    "other-account-pinned-to-our-org": (
        BASE,
        policy(USE, allow({"AWS": PARTNER_ROOT}, "kms:Decrypt", Condition=org(ORG))),
    ),
    "aws-star-pinned-to-own-caller-account": (
        BASE,
        policy(
            USE,
            allow(
                {"AWS": "*"},
                "kms:Decrypt",
                Condition={
                    "StringEquals": {"kms:CallerAccount": ACCOUNT, "kms:ViaService": VIA_S3}
                },
            ),
        ),
    ),
    "outside-principal-gains-only-encrypt": (
        BASE,
        policy(USE, allow({"AWS": PARTNER_ROOT}, ["kms:Encrypt", "kms:DescribeKey"])),
    ),
    "already-had-decrypt-now-only-via-service": (
        policy(USE, allow({"AWS": PARTNER_ROOT}, "kms:Decrypt")),
        policy(USE, allow({"AWS": PARTNER_ROOT}, "kms:Decrypt", Condition=via(VIA_S3))),
    ),
    "decrypt-granted-but-denied-unconditionally": (
        BASE,
        policy(USE, allow({"AWS": PARTNER_ROOT}, "kms:Decrypt"), DENY_PARTNER_DECRYPT),
    ),
    "service-pinned-to-own-source-account": (
        BASE,
        policy(
            USE,
            allow(
                {"Service": "logs.amazonaws.com"},
                "kms:Decrypt",
                Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            ),
        ),
    ),
    "service-pinned-to-own-source-arn": (
        BASE,
        policy(
            USE,
            allow(
                {"Service": "cloudtrail.amazonaws.com"},
                "kms:GenerateDataKey",
                Condition={"ArnLike": {"aws:SourceArn": f"arn:aws:cloudtrail:*:{ACCOUNT}:trail/*"}},
            ),
        ),
    ),
    "added-key-for-own-account-only": (None, policy(USE)),
    "removed-key": (policy(allow("*", "kms:Decrypt")), None),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: tuple[dict[str, Any] | None, dict[str, Any], str]) -> None:
    base, head, expected = case
    (hit,) = hits(outside_decrypt, base=base, head=head)
    assert (hit.severity or outside_decrypt.RULE.severity) is Severity.CRITICAL
    assert expected in hit.message
    assert hit.message.startswith("added key app:" if base is None else "key app:")


@pytest.mark.parametrize("case", QUIET.values(), ids=QUIET.keys())
def test_quiet(case: tuple[dict[str, Any] | None, dict[str, Any] | None]) -> None:
    base, head = case
    assert hits(outside_decrypt, base=base, head=head) == []


@pytest.mark.parametrize("pair", NEVER_FIRE.values(), ids=NEVER_FIRE.keys())
def test_never_fires(pair: Pair) -> None:
    base, head = pair
    assert hits(outside_decrypt, base=base, head=head) == []


def test_one_hit_per_outside_principal_naming_each_action() -> None:
    head = policy(
        USE,
        allow({"AWS": OTHER_ACCOUNT}, ["kms:Decrypt", "kms:GenerateDataKey"], sid="Partner"),
        allow("*", "kms:ReEncryptFrom", sid="Public", Condition=via(VIA_S3)),
    )
    found = hits(outside_decrypt, base=BASE, head=head)
    assert [(h.sid, h.message) for h in found] == [
        (
            "Public",
            f"key app: {STAR} gains kms:ReEncryptFrom and so can read plaintext from outside "
            f"account {ACCOUNT} and its trusted accounts",
        ),
        (
            "Partner",
            f"key app: AWS:{PARTNER_ROOT} gains kms:Decrypt and kms:GenerateDataKey and so can "
            f"read plaintext from outside account {ACCOUNT} and its trusted accounts",
        ),
    ]


def test_registered() -> None:
    assert rules.all_rules()["KMS101"] is outside_decrypt.RULE
