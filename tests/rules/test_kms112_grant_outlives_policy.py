"""KMS112 corpus: the policy takes an operation away from a principal a declared grant keeps.

Expected verdicts from the KMS authorization rules: a request is allowed when the key
policy (or an IAM policy it delegates to) or a grant allows it, so a grant to the same
principal, or to a principal of an account whose delegation is removed, keeps the operation.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.policy import AccessChange
from reconciler.review import outliving_grants
from reconciler.rules import grant_outlives_policy
from reconciler.state import Grant
from tests.factories import ACCOUNT
from tests.rules.harness import OTHER_ACCOUNT, hits, policy, role

APP = f"arn:aws:iam::{ACCOUNT}:role/App"
PARTNER = f"arn:aws:iam::{OTHER_ACCOUNT}:role/Partner"
ROOT_OTHER = f"arn:aws:iam::{OTHER_ACCOUNT}:root"


def allow(principal: Any, action: Any, sid: str = "Use") -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": "*",
    }


def grants(*items: Grant) -> dict[str, Any]:
    return {"grants": tuple(items)}


USE = allow(role("App"), ["kms:Encrypt", "kms:Decrypt"])
PARTNER_USE = allow({"AWS": PARTNER}, "kms:Decrypt", sid="Partner")
PARTNER_ACCOUNT = allow({"AWS": ROOT_OTHER}, "kms:Decrypt", sid="PartnerAccount")
APP_DECRYPT = Grant.of(APP, ["Decrypt"], name="app-decrypt")
APP_SIGN = Grant.of(APP, ["GenerateDataKey"], name="app-gdk")
PARTNER_DECRYPT = Grant.of(PARTNER, ["Decrypt", "Encrypt"], name="partner")


def test_statement_removed_while_a_grant_keeps_decrypt() -> None:
    (hit,) = hits(grant_outlives_policy, base=policy(USE), head=policy(), state=grants(APP_DECRYPT))
    assert hit.message == (
        f"key app: the policy no longer allows Decrypt to AWS:{APP}, "
        "but the declared grant 'app-decrypt' still does"
    )
    assert f"grant 'app-decrypt': Decrypt to {APP}" in hit.details
    assert any(line.startswith("newly denied:") and "kms:Decrypt" in line for line in hit.details)
    assert grant_outlives_policy.RULE.severity.label == "high"


def test_account_delegation_removed_while_a_grant_to_one_of_its_roles_stays() -> None:
    # The partner account's root loses Decrypt; its role keeps it through the grant.
    (hit,) = hits(
        grant_outlives_policy,
        base=policy(PARTNER_ACCOUNT),
        head=policy(),
        state=grants(PARTNER_DECRYPT),
    )
    assert "no longer allows Decrypt" in hit.message
    assert "'partner'" in hit.message


@pytest.mark.parametrize(
    ("case", "base", "head", "declared"),
    [
        # the grant allows nothing the policy takes away
        ("other-operation", policy(USE), policy(allow(role("App"), "kms:Encrypt")), APP_SIGN),
        # the policy takes Decrypt from App, the grant is to another principal
        ("other-grantee", policy(USE), policy(), PARTNER_DECRYPT),
        # access grows: nothing is taken away
        ("widening", policy(), policy(USE), APP_DECRYPT),
        # only a reformat: no access change at all
        (
            "reordered",
            policy(USE),
            policy(allow(role("App"), ["kms:Decrypt", "kms:Encrypt"])),
            APP_DECRYPT,
        ),
        # Encrypt is taken away, the grant gives Decrypt only
        ("lost-other-action", policy(USE), policy(allow(role("App"), "kms:Decrypt")), APP_DECRYPT),
    ],
)
def test_does_not_fire(case: str, base: Any, head: Any, declared: Grant) -> None:
    assert hits(grant_outlives_policy, base=base, head=head, state=grants(declared)) == []


def test_no_grants_declared_is_silent() -> None:
    assert hits(grant_outlives_policy, base=policy(USE), head=policy()) == []


def _lost(principal: str, *actions: str) -> AccessChange:
    return AccessChange(principal, frozenset(), frozenset(actions), "", "")


@pytest.mark.parametrize(
    ("principal", "grant", "outlives"),
    [
        (f"AWS:{APP}", APP_DECRYPT, True),
        ("*", APP_DECRYPT, True),  # everyone loses it: so does App
        (f"AWS:arn:aws:iam::{ACCOUNT}:root", APP_DECRYPT, True),  # App's account
        (f"AWS:{ACCOUNT}", APP_DECRYPT, True),  # the account as an ID
        (f"AWS:{ROOT_OTHER}", APP_DECRYPT, False),  # another account
        (f"NotPrincipal:AWS:{APP}", APP_DECRYPT, False),  # everyone but App
        (f"NotPrincipal:AWS:{PARTNER}", APP_DECRYPT, True),
        ("Service:logs.amazonaws.com", APP_DECRYPT, False),
    ],
)
def test_which_grantees_a_lost_principal_covers(
    principal: str, grant: Grant, outlives: bool
) -> None:
    found = outliving_grants([_lost(principal, "kms:Decrypt")], [grant])
    assert bool(found) is outlives
    if found:
        assert found[0].operations == ("Decrypt",)
