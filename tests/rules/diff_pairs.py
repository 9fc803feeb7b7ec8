"""(base, head) policy pairs on which no diff-aware rule (KMS101-KMS107) may fire.

Cosmetic rewrites, a Deny added, a condition tightened, a principal moved between
statements with the same access: none of these gives anybody anything.
"""

from __future__ import annotations

from typing import Any

from tests.factories import ACCOUNT
from tests.rules.harness import ORG, OTHER_ACCOUNT, ROOT, TRUSTED_ACCOUNT, allow, policy, role

Pair = tuple[dict[str, Any], dict[str, Any]]

PARTNER_ROOT = f"arn:aws:iam::{OTHER_ACCOUNT}:root"
VIA_S3 = "s3.us-east-1.amazonaws.com"
VIA_EC2 = "ec2.us-east-1.amazonaws.com"


def via(*services: str, operator: str = "StringEquals") -> dict[str, Any]:
    return {operator: {"kms:ViaService": list(services)}}


USE = allow(role("App"), ["kms:Encrypt", "kms:Decrypt"], sid="Use")
PARTNER = allow({"AWS": PARTNER_ROOT}, "kms:Decrypt", sid="Partner", Condition=via(VIA_S3))
LOGS = allow(
    {"Service": "logs.amazonaws.com"},
    ["kms:Encrypt", "kms:GenerateDataKey"],
    sid="Logs",
    Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}},
)
GUARD = {
    "Sid": "DenyOutsideOrg",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "kms:*",
    "Resource": "*",
    "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": ORG}},
}
NO_DELETION = {
    "Sid": "NoDeletion",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "kms:ScheduleKeyDeletion",
    "Resource": "*",
}
BASE = policy(USE, PARTNER, LOGS)

NEVER_FIRE: dict[str, Pair] = {
    "statement-order": (BASE, policy(LOGS, PARTNER, USE)),
    "root-statement-last": (
        BASE,
        policy(USE, PARTNER, LOGS, dict(ROOT), root=False),
    ),
    "scalar-vs-list": (
        policy({**USE, "Principal": {"AWS": [role("App")["AWS"]]}}, PARTNER, LOGS),
        policy(
            USE,
            {**PARTNER, "Action": ["kms:Decrypt"], "Principal": {"AWS": [PARTNER_ROOT]}},
            {**LOGS, "Condition": {"StringEquals": {"aws:SourceAccount": [ACCOUNT]}}},
        ),
    ),
    "account-id-vs-root-arn": (
        policy(USE, {**PARTNER, "Principal": {"AWS": OTHER_ACCOUNT}}, LOGS),
        policy(
            USE,
            {**PARTNER, "Principal": {"AWS": PARTNER_ROOT}},
            LOGS,
            {**ROOT, "Principal": {"AWS": ACCOUNT}},
            root=False,
        ),
    ),
    "action-and-condition-key-case": (
        BASE,
        policy(
            {**USE, "Action": ["KMS:encrypt", "kms:DECRYPT"]},
            {**PARTNER, "Condition": {"StringEquals": {"KMS:VIASERVICE": VIA_S3}}},
            LOGS,
        ),
    ),
    "aws-star-vs-star": (
        policy(USE, allow({"AWS": "*"}, "kms:Decrypt", sid="Any", Condition=via(VIA_S3))),
        policy(USE, allow("*", ["kms:Decrypt"], sid="Any", Condition=via(VIA_S3))),
    ),
    "deny-added": (BASE, policy(USE, PARTNER, LOGS, GUARD)),
    "unconditional-deny-added": (
        BASE,
        policy(
            USE,
            PARTNER,
            LOGS,
            {
                "Sid": "NoDeletion",
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["kms:ScheduleKeyDeletion", "kms:Decrypt"],
                "Resource": "*",
            },
        ),
    ),
    "condition-values-removed": (
        policy(USE, {**PARTNER, "Condition": via(VIA_S3, VIA_EC2)}, LOGS),
        BASE,
    ),
    "condition-key-added": (
        BASE,
        policy(
            USE,
            {
                **PARTNER,
                "Condition": {
                    "StringEquals": {"kms:ViaService": VIA_S3, "aws:PrincipalOrgID": ORG}
                },
            },
            LOGS,
        ),
    ),
    "ifexists-made-strict": (
        policy(USE, {**PARTNER, "Condition": via(VIA_S3, operator="StringEqualsIfExists")}, LOGS),
        BASE,
    ),
    "like-made-equals": (
        policy(USE, {**PARTNER, "Condition": via(VIA_S3, operator="StringLike")}, LOGS),
        BASE,
    ),
    "principal-moved-between-statements": (
        policy(
            allow(role("App"), "kms:Decrypt", sid="Readers"),
            allow(
                {"AWS": [role("Batch")["AWS"], f"arn:aws:iam::{TRUSTED_ACCOUNT}:root"]},
                "kms:Decrypt",
                sid="Batch",
            ),
            PARTNER,
        ),
        policy(
            allow(
                {"AWS": [role("App")["AWS"], role("Batch")["AWS"]]}, "kms:Decrypt", sid="Readers"
            ),
            allow({"AWS": f"arn:aws:iam::{TRUSTED_ACCOUNT}:root"}, "kms:Decrypt", sid="Trusted"),
            {**PARTNER, "Sid": "PartnerViaS3"},
        ),
    ),
    "deny-principal-moved-between-statements": (
        policy(
            USE,
            {
                "Sid": "DenyPartners",
                "Effect": "Deny",
                "Principal": {"AWS": [PARTNER_ROOT, f"arn:aws:iam::{TRUSTED_ACCOUNT}:root"]},
                "Action": "kms:Decrypt",
                "Resource": "*",
            },
        ),
        policy(
            USE,
            {
                "Sid": "DenyPartner",
                "Effect": "Deny",
                "Principal": {"AWS": PARTNER_ROOT},
                "Action": "kms:Decrypt",
                "Resource": "*",
            },
            {
                "Sid": "DenyTrusted",
                "Effect": "Deny",
                "Principal": {"AWS": TRUSTED_ACCOUNT},
                "Action": ["kms:Decrypt"],
                "Resource": "*",
            },
        ),
    ),
    "deny-condition-tightened": (
        policy(
            USE,
            {
                **GUARD,
                "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": [ORG, "o-zzzzzzzzzz"]}},
            },
        ),
        policy(USE, GUARD),
    ),
    "deny-condition-removed": (
        policy(
            USE, {**NO_DELETION, "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}}
        ),
        policy(USE, NO_DELETION),
    ),
}
