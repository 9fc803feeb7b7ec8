"""KMS009 corpus: ScheduleKeyDeletion / DisableKey / DeleteImportedKeyMaterial for
principals that are neither the account root delegation nor admin principals."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from reconciler.findings import Severity
from reconciler.review import Context
from reconciler.rules import destructive_actions
from tests.factories import ACCOUNT
from tests.rules.guide_policies import APPLICATION, CROSS_ACCOUNT, GUIDE_CONTEXT, TIME_BASED
from tests.rules.harness import (
    ORG,
    OTHER_ACCOUNT,
    TRUSTED_ACCOUNT,
    allow,
    context,
    hits,
    policy,
    role,
)

APP = role("App")
ADMIN = role("KeyAdmin")
MFA = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


def all_but(principal: Any, excluded: Any) -> dict[str, Any]:
    return {
        "Sid": "S",
        "Effect": "Allow",
        "Principal": principal,
        "NotAction": excluded,
        "Resource": "*",
    }


class Fires(NamedTuple):
    doc: dict[str, Any]
    sids: list[str]
    ctx: Context | None = None


FIRES: dict[str, Fires] = {
    "schedule-deletion-to-an-app-role": Fires(policy(allow(APP, "kms:ScheduleKeyDeletion")), ["S"]),
    "disable-wildcard-reaches-disable-key": Fires(policy(allow(APP, "kms:Disable*")), ["S"]),
    "delete-wildcard-reaches-imported-material": Fires(policy(allow(APP, "kms:Delete*")), ["S"]),
    "kms-star-with-a-condition-is-no-admin": Fires(
        policy(allow(APP, "kms:*", Condition=MFA)), ["S"]
    ),
    "not-action": Fires(policy(all_but(APP, ["kms:PutKeyPolicy", "kms:CreateGrant"])), ["S"]),
    "mfa-condition-does-not-make-an-admin": Fires(
        policy(allow(APP, "kms:ScheduleKeyDeletion", Condition=MFA)), ["S"]
    ),
    "admin-name-in-another-account": Fires(
        policy(allow(role("KeyAdmin", OTHER_ACCOUNT), "kms:DisableKey")), ["S"]
    ),
    "role-in-a-trusted-account": Fires(
        policy(allow(role("Ops", TRUSTED_ACCOUNT), "kms:DisableKey")), ["S"]
    ),
    "trusted-account-root-is-not-the-root-delegation": Fires(
        policy(allow({"AWS": TRUSTED_ACCOUNT}, "kms:ScheduleKeyDeletion")), ["S"]
    ),
    "public-star-restricted-to-the-org": Fires(
        policy(
            allow(
                "*",
                "kms:ScheduleKeyDeletion",
                Condition={"StringEquals": {"aws:PrincipalOrgID": ORG}},
            )
        ),
        ["S"],
    ),
    "aws-star": Fires(policy(allow({"AWS": "*"}, "kms:DisableKey")), ["S"]),
    "service-principal": Fires(
        policy(allow({"Service": "logs.amazonaws.com"}, "kms:DisableKey")), ["S"]
    ),
    "admin-and-app-in-one-statement": Fires(
        policy(allow({"AWS": [ADMIN["AWS"], APP["AWS"]]}, "kms:ScheduleKeyDeletion")), ["S"]
    ),
    "two-statements-two-hits": Fires(
        policy(
            allow(APP, "kms:DisableKey", sid="A"),
            allow(role("Batch"), "kms:DeleteImportedKeyMaterial", sid="B"),
        ),
        ["A", "B"],
    ),
}
# kms:* includes kms:PutKeyPolicy, but the policy under review cannot make App a key
# administrator and so exempt itself (issue 9, defect 6): only the base can.
FIRES["kms-star-to-an-app-role"] = Fires(policy(allow(APP, "kms:*")), ["S"])
FIRES["put-key-policy-in-the-same-statement"] = Fires(
    policy(allow(APP, ["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion"])), ["S"]
)

QUIET: dict[str, dict[str, Any]] = {
    "root-delegation": policy(),
    "root-as-account-id": policy(allow({"AWS": ACCOUNT}, "kms:*"), root=False),
    "admin-role": policy(allow(ADMIN, ["kms:ScheduleKeyDeletion", "kms:Disable*"])),
    "admin-role-with-a-path": policy(
        allow({"AWS": f"arn:aws:iam::{ACCOUNT}:role/admins/KeyAdmin"}, "kms:*")
    ),
    "admin-role-session": policy(
        allow(
            {"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/KeyAdmin/alice"},
            "kms:ScheduleKeyDeletion",
        )
    ),
    "root-and-admin-in-one-statement": policy(
        allow({"AWS": [f"arn:aws:iam::{ACCOUNT}:root", ADMIN["AWS"]]}, "kms:DisableKey"), root=False
    ),
    "deny-schedule-deletion-to-everyone": policy(
        {**allow("*", "kms:ScheduleKeyDeletion"), "Effect": "Deny"}
    ),
    "enable-and-cancel-are-not-destructive": policy(
        allow(APP, ["kms:EnableKey", "kms:CancelKeyDeletion", "kms:Enable*"])
    ),
    "disable-key-rotation-is-not-disable-key": policy(allow(APP, "kms:DisableKeyRotation")),
    "delete-alias-is-not-destructive": policy(allow(APP, "kms:DeleteAlias")),
    "get-wildcard": policy(allow(APP, ["kms:Get*", "kms:Describe*"])),
    "not-action-excluding-destructive": policy(
        all_but(APP, ["kms:ScheduleKeyDeletion", "kms:Disable*", "kms:Delete*"])
    ),
}
GUIDES: dict[str, dict[str, Any]] = {
    "guide-application-with-its-admins": APPLICATION,
    "guide-cross-account": CROSS_ACCOUNT,
    "guide-time-based-emergency-mfa": TIME_BASED,
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires(case: Fires) -> None:
    found = hits(destructive_actions, head=case.doc, ctx=case.ctx)
    assert sorted(h.sid or "" for h in found) == sorted(case.sids)
    for hit in found:
        assert (hit.severity or destructive_actions.RULE.severity) is Severity.HIGH


@pytest.mark.parametrize("doc", QUIET.values(), ids=QUIET.keys())
def test_quiet(doc: dict[str, Any]) -> None:
    assert hits(destructive_actions, head=doc) == []


@pytest.mark.parametrize("doc", GUIDES.values(), ids=GUIDES.keys())
def test_guide_policies_are_quiet(doc: dict[str, Any]) -> None:
    assert hits(destructive_actions, head=doc, ctx=GUIDE_CONTEXT) == []


def test_guide_admins_who_already_held_put_are_administrators_without_a_declaration() -> None:
    undeclared = context(account_id="123456789012", admin_principals=())
    assert hits(destructive_actions, head=APPLICATION, base=APPLICATION, ctx=undeclared) == []
    # an added key's policy cannot vouch for its own administrators
    assert hits(destructive_actions, head=APPLICATION, ctx=undeclared) != []


def test_decrypt_widened_to_kms_star_for_an_app_role_fires() -> None:
    # issue 9, defect 6: ["kms:Decrypt"] -> "kms:*" lets App ScheduleKeyDeletion and DisableKey
    base = policy(allow(APP, ["kms:Decrypt"]))
    (hit,) = hits(destructive_actions, base=base, head=policy(allow(APP, "kms:*")))
    assert hit.sid == "S"
    assert "kms:DisableKey, kms:ScheduleKeyDeletion" in hit.message
    assert f"arn:aws:iam::{ACCOUNT}:role/App, who are not key administrators" in hit.message


def test_a_role_that_already_administered_the_key_stays_an_administrator() -> None:
    base = policy(allow(APP, "kms:*"))
    head = policy(allow(APP, "kms:*"), allow(role("Reader"), "kms:Decrypt", sid="R"))
    assert hits(destructive_actions, base=base, head=head) == []


def test_admin_principals_given_as_role_sessions_still_match_the_role() -> None:
    ctx = context(admin_principals=(f"arn:aws:sts::{ACCOUNT}:assumed-role/Ops/bob",))
    assert (
        hits(destructive_actions, head=policy(allow(role("Ops"), "kms:DisableKey")), ctx=ctx) == []
    )


def test_message_names_statement_non_admins_and_actions() -> None:
    doc = policy(allow({"AWS": [ADMIN["AWS"], APP["AWS"]]}, ["kms:Disable*", "kms:Delete*"]))
    (hit,) = hits(destructive_actions, head=doc)
    assert hit.message == (
        'statement "S" allows kms:DeleteImportedKeyMaterial, kms:DisableKey to '
        f"arn:aws:iam::{ACCOUNT}:role/App, who are not key administrators"
    )
