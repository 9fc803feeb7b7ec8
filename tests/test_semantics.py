"""The policy-semantics engine against verdicts worked out by hand from the IAM evaluation rules.

Every row is a (base, head) pair of key policies and the expected differences, written
from the IAM policy evaluation logic (explicit Deny wins, an Allow is needed; condition
operators as the IAM User Guide defines them), never from the engine's output. Each row is
also checked mirrored (head -> base): what one direction gains, the other loses (a check,
not another hand-worked pair). More rows: tests/test_semantics_corpus.py.

Policies are the root delegation of account A plus the row's statements. Principals: X, a
role of account B; the account roots RA and RB; "*" any principal. ``+`` = newly allowed,
``-`` = newly denied.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import semantics
from reconciler.policy import access_changes, canonical_json, removes_access

A, B = "111122223333", "444455556666"
RA, RB = f"arn:aws:iam::{A}:root", f"arn:aws:iam::{B}:root"
X = f"arn:aws:iam::{B}:role/X"
APP = f"arn:aws:iam::{A}:role/App"
LOGS = "logs.amazonaws.com"
ROOT = {
    "Sid": "Root",
    "Effect": "Allow",
    "Principal": {"AWS": RA},
    "Action": "kms:*",
    "Resource": "*",
}
VIA = "kms:ViaService"
CTX_KEYS = "kms:EncryptionContextKeys"
WINDOW = "kms:ScheduleKeyDeletionPendingWindowInDays"
KEY_ARN = f"arn:aws:kms:us-east-1:{A}:key/*"

Doc = dict[str, Any]
Expected = set[tuple[str, str, str]]  # (principal, action, "+" or "-")


def pol(*statements: Doc) -> Doc:
    return {"Version": "2012-10-17", "Statement": [ROOT, *statements]}


def st_(effect: str, principal: Any, action: Any, condition: Any = None, **extra: Any) -> Doc:
    out: Doc = {"Effect": effect, "Resource": "*", **extra}
    if action is not None:
        out["Action"] = action
    if "NotPrincipal" not in extra:
        wrap = principal != "*" and not isinstance(principal, dict)
        out["Principal"] = {"AWS": principal} if wrap else principal
    if condition is not None:
        out["Condition"] = condition
    return out


def allow(principal: Any, action: Any, condition: Any = None, **extra: Any) -> Doc:
    return st_("Allow", principal, action, condition, **extra)


def deny(principal: Any, action: Any, condition: Any = None, **extra: Any) -> Doc:
    return st_("Deny", principal, action, condition, **extra)


def verdicts(base: Doc | None, head: Doc | None) -> Expected:
    found = semantics.compare(base, head, account_id=A, region="us-east-1")
    out: Expected = set()
    for d in found:
        principal = d.principal.removeprefix("AWS:").removeprefix("Service:")
        sign = "+" if d.change == "allowed" else "-"
        out.update((principal, a.removeprefix("kms:"), sign) for a in d.actions)
    return out


# --------------------------------------------------------------------------- condition rows
# (operator, key, action, base values, head values, verdict for X on the action).
# Values None: the statement has no Condition; "none": there is no statement at all.
# Verdict: "=" no change, "+" X gains, "-" X loses, "+-" both (some requests each way).

NO = "none"
S3 = "s3.us-east-1.amazonaws.com"
EC2 = "ec2.us-east-1.amazonaws.com"

CONDITION_ROWS: list[tuple[str, str, str, str, Any, Any, str]] = [
    # StringEquals: values are alternatives, case-sensitive; a missing key never matches.
    ("se-same", "StringEquals", VIA, "Decrypt", [S3], [S3], "="),
    ("se-add-value", "StringEquals", VIA, "Decrypt", [S3], [S3, EC2], "+"),
    ("se-drop-value", "StringEquals", VIA, "Decrypt", [S3, EC2], [S3], "-"),
    ("se-swap-value", "StringEquals", VIA, "Decrypt", [S3], [EC2], "+-"),
    ("se-to-unconditional", "StringEquals", VIA, "Decrypt", [S3], None, "+"),
    ("se-from-unconditional", "StringEquals", VIA, "Decrypt", None, [S3], "-"),
    ("se-case-matters", "StringEquals", VIA, "Decrypt", ["a"], ["A"], "+-"),
    ("se-reordered", "StringEquals", VIA, "Decrypt", [S3, EC2], [EC2, S3], "="),
    ("se-statement-removed", "StringEquals", VIA, "Decrypt", [S3], NO, "-"),
    ("se-statement-added", "StringEquals", VIA, "Decrypt", NO, [S3], "+"),
    ("se-scalar-vs-list", "StringEquals", VIA, "Decrypt", S3, [S3], "="),
    ("se-duplicate-value", "StringEquals", VIA, "Decrypt", [S3, S3], [S3], "="),
    # StringNotEquals: matches when the value is none of them, or the key is missing.
    ("sne-same", "StringNotEquals", VIA, "Decrypt", ["a"], ["a"], "="),
    ("sne-add-value", "StringNotEquals", VIA, "Decrypt", ["a"], ["a", "b"], "-"),
    ("sne-drop-value", "StringNotEquals", VIA, "Decrypt", ["a", "b"], ["a"], "+"),
    ("sne-swap", "StringNotEquals", VIA, "Decrypt", ["a"], ["b"], "+-"),
    ("sne-to-unconditional", "StringNotEquals", VIA, "Decrypt", ["a"], None, "+"),
    ("sne-from-unconditional", "StringNotEquals", VIA, "Decrypt", None, ["a"], "-"),
    # IgnoreCase: only these compare without case.
    ("seic-case", "StringEqualsIgnoreCase", VIA, "Decrypt", ["abc"], ["ABC"], "="),
    ("seic-other", "StringEqualsIgnoreCase", VIA, "Decrypt", ["abc"], ["abd"], "+-"),
    ("seic-add", "StringEqualsIgnoreCase", VIA, "Decrypt", ["abc"], ["abc", "x"], "+"),
    ("sneic-case", "StringNotEqualsIgnoreCase", VIA, "Decrypt", ["abc"], ["aBc"], "="),
    ("sneic-drop", "StringNotEqualsIgnoreCase", VIA, "Decrypt", ["a", "b"], ["a"], "+"),
    ("seic-to-unconditional", "StringEqualsIgnoreCase", VIA, "Decrypt", ["a"], None, "+"),
    # StringLike: * any run, ? one character.
    ("sl-same", "StringLike", VIA, "Decrypt", ["a*"], ["a*"], "="),
    ("sl-narrow", "StringLike", VIA, "Decrypt", ["a*"], ["ab*"], "-"),
    ("sl-widen", "StringLike", VIA, "Decrypt", ["ab*"], ["a*"], "+"),
    ("sl-to-star", "StringLike", VIA, "Decrypt", ["a*"], ["*"], "+"),
    ("sl-star-to-unconditional", "StringLike", VIA, "Decrypt", ["*"], None, "+"),
    ("sl-one-to-many", "StringLike", VIA, "Decrypt", ["a?"], ["a*"], "+"),
    ("sl-many-to-one", "StringLike", VIA, "Decrypt", ["a*"], ["a?"], "-"),
    ("sl-suffix-narrow", "StringLike", VIA, "Decrypt", ["a*"], ["a*c"], "-"),
    ("sl-reordered", "StringLike", VIA, "Decrypt", ["a*", "b*"], ["b*", "a*"], "="),
    (
        "sl-service-narrow",
        "StringLike",
        VIA,
        "Decrypt",
        ["*.amazonaws.com"],
        ["s3.*.amazonaws.com"],
        "-",
    ),
    ("sl-question-to-star", "StringLike", VIA, "Decrypt", ["?"], ["*"], "+"),
    ("sl-covered-alternative", "StringLike", VIA, "Decrypt", ["a*"], ["a*", "ab*"], "="),
    ("sl-case", "StringLike", VIA, "Decrypt", ["a*"], ["A*"], "+-"),
    ("snl-narrow", "StringNotLike", VIA, "Decrypt", ["a*"], ["ab*"], "+"),
    ("snl-widen", "StringNotLike", VIA, "Decrypt", ["ab*"], ["a*"], "-"),
    ("snl-star-to-unconditional", "StringNotLike", VIA, "Decrypt", ["*"], None, "+"),
    # Numeric*: on a key that only ScheduleKeyDeletion requests carry.
    ("nge-same", "NumericGreaterThanEquals", WINDOW, "ScheduleKeyDeletion", ["7"], ["7"], "="),
    ("nge-raise", "NumericGreaterThanEquals", WINDOW, "ScheduleKeyDeletion", ["7"], ["14"], "-"),
    ("nge-lower", "NumericGreaterThanEquals", WINDOW, "ScheduleKeyDeletion", ["14"], ["7"], "+"),
    (
        "nge-number-vs-text",
        "NumericGreaterThanEquals",
        WINDOW,
        "ScheduleKeyDeletion",
        7,
        ["7"],
        "=",
    ),
    ("ne-same", "NumericEquals", WINDOW, "ScheduleKeyDeletion", ["30"], ["30"], "="),
    ("ne-add", "NumericEquals", WINDOW, "ScheduleKeyDeletion", ["30"], ["30", "7"], "+"),
    ("ne-decimal-spelling", "NumericEquals", WINDOW, "ScheduleKeyDeletion", ["30"], ["30.0"], "="),
    ("ne-invalid-number", "NumericEquals", WINDOW, "ScheduleKeyDeletion", ["abc"], ["30"], "+"),
    (
        "nlt-to-unconditional",
        "NumericLessThanEquals",
        WINDOW,
        "ScheduleKeyDeletion",
        ["30"],
        None,
        "+",
    ),
    ("nlt-from-unconditional", "NumericLessThan", WINDOW, "ScheduleKeyDeletion", None, ["30"], "-"),
    ("nne-same", "NumericNotEquals", WINDOW, "ScheduleKeyDeletion", ["30"], ["30"], "="),
    ("nne-drop", "NumericNotEquals", WINDOW, "ScheduleKeyDeletion", ["7", "30"], ["30"], "+"),
    ("numeric-on-key-decrypt-never-has", "NumericGreaterThan", WINDOW, "Decrypt", None, ["0"], "-"),
    (
        "numeric-ifexists-on-key-decrypt-never-has",
        "NumericLessThanIfExists",
        WINDOW,
        "Decrypt",
        None,
        ["0"],
        "=",
    ),
    # Date*: ISO 8601 or epoch seconds.
    (
        "dlt-same",
        "DateLessThan",
        "aws:CurrentTime",
        "Decrypt",
        ["2030-01-01T00:00:00Z"],
        ["2030-01-01T00:00:00Z"],
        "=",
    ),
    (
        "dlt-later",
        "DateLessThan",
        "aws:CurrentTime",
        "Decrypt",
        ["2030-01-01T00:00:00Z"],
        ["2031-01-01T00:00:00Z"],
        "+",
    ),
    (
        "dlt-earlier",
        "DateLessThan",
        "aws:CurrentTime",
        "Decrypt",
        ["2031-01-01T00:00:00Z"],
        ["2030-01-01T00:00:00Z"],
        "-",
    ),
    (
        "dgt-date-vs-datetime",
        "DateGreaterThan",
        "aws:CurrentTime",
        "Decrypt",
        ["2020-01-01"],
        ["2020-01-01T00:00:00Z"],
        "=",
    ),
    (
        "dlt-iso-vs-epoch",
        "DateLessThan",
        "aws:CurrentTime",
        "Decrypt",
        ["2030-01-01T00:00:00Z"],
        ["1893456000"],
        "=",
    ),
    (
        "dlt-to-unconditional",
        "DateLessThan",
        "aws:CurrentTime",
        "Decrypt",
        ["2030-01-01T00:00:00Z"],
        None,
        "+",
    ),
    (
        "dlt-invalid-date",
        "DateLessThan",
        "aws:CurrentTime",
        "Decrypt",
        ["not-a-date"],
        ["2030-01-01T00:00:00Z"],
        "+",
    ),
    (
        "de-same",
        "DateEquals",
        "aws:CurrentTime",
        "Decrypt",
        ["2030-01-01T00:00:00Z"],
        ["2030-01-01T00:00:00Z"],
        "=",
    ),
    (
        "dne-add",
        "DateNotEquals",
        "aws:CurrentTime",
        "Decrypt",
        ["2030-01-01T00:00:00Z"],
        ["2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z"],
        "-",
    ),
    # Bool: true / false, without case.
    ("bool-same", "Bool", "aws:SecureTransport", "Decrypt", ["true"], ["true"], "="),
    ("bool-flip", "Bool", "aws:SecureTransport", "Decrypt", ["true"], ["false"], "+-"),
    ("bool-to-unconditional", "Bool", "aws:SecureTransport", "Decrypt", ["true"], None, "+"),
    ("bool-case", "Bool", "aws:SecureTransport", "Decrypt", ["true"], ["True"], "="),
    ("bool-json-true", "Bool", "aws:SecureTransport", "Decrypt", True, ["true"], "="),
    ("bool-both", "Bool", "aws:SecureTransport", "Decrypt", ["true"], ["true", "false"], "+"),
    (
        "bool-both-to-unconditional",
        "Bool",
        "aws:SecureTransport",
        "Decrypt",
        ["true", "false"],
        None,
        "+",
    ),
    ("bool-invalid-value", "Bool", "aws:SecureTransport", "Decrypt", ["yes"], ["true"], "+"),
    # Null: true = the key is missing, false = present.
    ("null-same", "Null", VIA, "Decrypt", ["true"], ["true"], "="),
    ("null-flip", "Null", VIA, "Decrypt", ["true"], ["false"], "+-"),
    ("null-false-to-unconditional", "Null", VIA, "Decrypt", ["false"], None, "+"),
    ("null-both-is-always", "Null", VIA, "Decrypt", ["true", "false"], None, "="),
    ("null-unknown-key-true-is-always", "Null", "aws:SourceAcount", "Decrypt", ["true"], None, "="),
    (
        "null-unknown-key-false-is-never",
        "Null",
        "aws:SourceAcount",
        "Decrypt",
        ["false"],
        None,
        "+",
    ),
    ("null-json-bool", "Null", VIA, "Decrypt", True, ["true"], "="),
    # IpAddress / NotIpAddress: CIDRs, IPv4 and IPv6.
    ("ip-same", "IpAddress", "aws:SourceIp", "Decrypt", ["10.0.0.0/8"], ["10.0.0.0/8"], "="),
    ("ip-narrow", "IpAddress", "aws:SourceIp", "Decrypt", ["10.0.0.0/8"], ["10.0.0.0/16"], "-"),
    ("ip-widen", "IpAddress", "aws:SourceIp", "Decrypt", ["10.0.0.0/16"], ["10.0.0.0/8"], "+"),
    (
        "ip-add-range",
        "IpAddress",
        "aws:SourceIp",
        "Decrypt",
        ["10.0.0.0/8"],
        ["10.0.0.0/8", "192.168.0.0/16"],
        "+",
    ),
    ("ip-host-bits", "IpAddress", "aws:SourceIp", "Decrypt", ["10.0.0.0/8"], ["10.1.2.3/8"], "="),
    (
        "ip-v6-narrow",
        "IpAddress",
        "aws:SourceIp",
        "Decrypt",
        ["2001:db8::/32"],
        ["2001:db8::/48"],
        "-",
    ),
    (
        "ip-single-host",
        "IpAddress",
        "aws:SourceIp",
        "Decrypt",
        ["10.0.0.0/8"],
        ["10.0.0.1/32"],
        "-",
    ),
    ("ip-invalid", "IpAddress", "aws:SourceIp", "Decrypt", ["garbage"], ["10.0.0.0/8"], "+"),
    (
        "ip-covered-range",
        "IpAddress",
        "aws:SourceIp",
        "Decrypt",
        ["10.0.0.0/8"],
        ["10.0.0.0/8", "10.2.0.0/16"],
        "=",
    ),
    (
        "notip-narrow",
        "NotIpAddress",
        "aws:SourceIp",
        "Decrypt",
        ["10.0.0.0/8"],
        ["10.0.0.0/16"],
        "+",
    ),
    (
        "notip-to-unconditional",
        "NotIpAddress",
        "aws:SourceIp",
        "Decrypt",
        ["10.0.0.0/8"],
        None,
        "+",
    ),
    # Arn*: the six colon-separated parts, each with its own wildcards; case-sensitive.
    (
        "arnlike-same",
        "ArnLike",
        "aws:SourceArn",
        "Decrypt",
        ["arn:aws:s3:::b/*"],
        ["arn:aws:s3:::b/*"],
        "=",
    ),
    (
        "arnlike-narrow",
        "ArnLike",
        "aws:SourceArn",
        "Decrypt",
        ["arn:aws:s3:::*"],
        ["arn:aws:s3:::b-*"],
        "-",
    ),
    (
        "arnlike-region-star",
        "ArnLike",
        "aws:SourceArn",
        "Decrypt",
        [f"arn:aws:logs:us-east-1:{A}:*"],
        [f"arn:aws:logs:*:{A}:*"],
        "+",
    ),
    (
        "arnlike-partition",
        "ArnLike",
        "aws:SourceArn",
        "Decrypt",
        ["arn:*:s3:::b"],
        ["arn:aws:s3:::b"],
        "-",
    ),
    (
        "arnlike-case",
        "ArnLike",
        "aws:SourceArn",
        "Decrypt",
        [f"arn:aws:sqs:us-east-1:{A}:q"],
        [f"arn:aws:sqs:us-east-1:{A}:Q"],
        "+-",
    ),
    (
        "arnlike-to-unconditional",
        "ArnLike",
        "aws:SourceArn",
        "Decrypt",
        ["arn:aws:s3:::b"],
        None,
        "+",
    ),
    (
        "arnnotlike-narrow",
        "ArnNotLike",
        "aws:SourceArn",
        "Decrypt",
        ["arn:aws:s3:::*"],
        ["arn:aws:s3:::b*"],
        "+",
    ),
    # ForAllValues / ForAnyValue over a multi-valued key.
    ("fall-same", "ForAllValues:StringEquals", CTX_KEYS, "Decrypt", ["a"], ["a"], "="),
    ("fall-add", "ForAllValues:StringEquals", CTX_KEYS, "Decrypt", ["a"], ["a", "b"], "+"),
    ("fall-drop", "ForAllValues:StringEquals", CTX_KEYS, "Decrypt", ["a", "b"], ["a"], "-"),
    ("fall-to-unconditional", "ForAllValues:StringEquals", CTX_KEYS, "Decrypt", ["a"], None, "+"),
    ("fall-like-narrow", "ForAllValues:StringLike", CTX_KEYS, "Decrypt", ["a*"], ["ab*"], "-"),
    ("fany-same", "ForAnyValue:StringEquals", CTX_KEYS, "Decrypt", ["a"], ["a"], "="),
    ("fany-add", "ForAnyValue:StringEquals", CTX_KEYS, "Decrypt", ["a"], ["a", "b"], "+"),
    ("fany-drop", "ForAnyValue:StringEquals", CTX_KEYS, "Decrypt", ["a", "b"], ["a"], "-"),
    ("fany-to-unconditional", "ForAnyValue:StringEquals", CTX_KEYS, "Decrypt", ["a"], None, "+"),
    ("fany-case", "ForAnyValue:StringEquals", CTX_KEYS, "Decrypt", ["a"], ["A"], "+-"),
    ("fany-like-widen", "ForAnyValue:StringLike", CTX_KEYS, "Decrypt", ["ab*"], ["a*"], "+"),
    (
        "fall-ifexists-same-as-plain",
        "ForAllValues:StringEqualsIfExists",
        CTX_KEYS,
        "Decrypt",
        ["a"],
        ["a"],
        "=",
    ),
    (
        "fany-ifexists-same",
        "ForAnyValue:StringEqualsIfExists",
        CTX_KEYS,
        "Decrypt",
        ["a"],
        ["a"],
        "=",
    ),
    # IfExists: a missing key matches.
    ("seifexists-same", "StringEqualsIfExists", VIA, "Decrypt", [S3], [S3], "="),
    ("seifexists-add", "StringEqualsIfExists", VIA, "Decrypt", [S3], [S3, EC2], "+"),
    (
        "boolifexists-to-unconditional",
        "BoolIfExists",
        "aws:SecureTransport",
        "Decrypt",
        ["true"],
        None,
        "+",
    ),
    (
        "ipifexists-narrow",
        "IpAddressIfExists",
        "aws:SourceIp",
        "Decrypt",
        ["10.0.0.0/8"],
        ["10.0.0.0/16"],
        "-",
    ),
    # A key that is no KMS or global condition key (a typo) is never in a request.
    (
        "unknown-key-se-to-unconditional",
        "StringEquals",
        "aws:SourceAcount",
        "Decrypt",
        [A],
        None,
        "+",
    ),
    ("unknown-key-se-statement-added", "StringEquals", "aws:SourceAcount", "Decrypt", NO, [A], "="),
    ("unknown-key-sne-is-always", "StringNotEquals", "aws:SourceAcount", "Decrypt", [A], None, "="),
    (
        "unknown-key-ifexists-is-always",
        "StringEqualsIfExists",
        "aws:SourceAcount",
        "Decrypt",
        [A],
        None,
        "=",
    ),
    (
        "unknown-key-fall-is-always",
        "ForAllValues:StringEquals",
        "kms:EncryptionContextKey",
        "Decrypt",
        ["a"],
        None,
        "=",
    ),
    (
        "unknown-key-fany-is-never",
        "ForAnyValue:StringEquals",
        "kms:EncryptionContextKey",
        "Decrypt",
        ["a"],
        NO,
        "=",
    ),
    # Keys a request carries only for some actions (the KMS condition-key reference).
    (
        "context-key-on-generate-random",
        "StringEquals",
        "kms:EncryptionContext:dept",
        "GenerateRandom",
        None,
        ["x"],
        "-",
    ),
    (
        "context-key-on-decrypt",
        "StringEquals",
        "kms:EncryptionContext:dept",
        "Decrypt",
        None,
        ["x"],
        "-",
    ),
    (
        "context-key-added-on-generate-random",
        "StringEquals",
        "kms:EncryptionContext:dept",
        "GenerateRandom",
        NO,
        ["x"],
        "=",
    ),
    (
        "grant-key-on-create-grant",
        "Bool",
        "kms:GrantIsForAWSResource",
        "CreateGrant",
        NO,
        ["true"],
        "+",
    ),
    ("grant-key-on-decrypt", "Bool", "kms:GrantIsForAWSResource", "Decrypt", NO, ["true"], "="),
    (
        "grant-operations-on-create-grant",
        "ForAllValues:StringEquals",
        "kms:GrantOperations",
        "CreateGrant",
        ["Decrypt"],
        ["Decrypt", "Encrypt"],
        "+",
    ),
    (
        "grant-operations-forall-on-encrypt",
        "ForAllValues:StringEquals",
        "kms:GrantOperations",
        "Encrypt",
        ["Decrypt"],
        None,
        "=",
    ),
    (
        "signing-algorithm-on-sign",
        "StringEquals",
        "kms:SigningAlgorithm",
        "Sign",
        ["RSASSA_PSS_SHA_256"],
        ["RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384"],
        "+",
    ),
    (
        "signing-algorithm-on-decrypt",
        "StringEquals",
        "kms:SigningAlgorithm",
        "Decrypt",
        NO,
        ["RSASSA_PSS_SHA_256"],
        "=",
    ),
    ("principal-account-of-x", "StringEquals", "aws:PrincipalAccount", "Decrypt", [B], None, "="),
    ("principal-account-not-x", "StringEquals", "aws:PrincipalAccount", "Decrypt", [A], None, "+"),
    ("caller-account-of-x", "StringEquals", "kms:CallerAccount", "Decrypt", NO, [B], "+"),
    ("caller-account-not-x", "StringEquals", "kms:CallerAccount", "Decrypt", NO, [A], "="),
    (
        "principal-arn-of-x",
        "ArnLike",
        "aws:PrincipalArn",
        "Decrypt",
        NO,
        [f"arn:aws:iam::{B}:role/*"],
        "+",
    ),
]


def _condition_policy(operator: str, key: str, action: str, values: Any) -> Doc:
    if values == NO:
        return pol()
    condition = None if values is None else {operator: {key: values}}
    return pol(allow(X, f"kms:{action}", condition))


def _expected(action: str, verdict: str) -> Expected:
    return {(X, action, sign) for sign in verdict if sign != "="}


def _mirror(expected: Expected) -> Expected:
    return {(p, a, "-" if s == "+" else "+") for p, a, s in expected}


COND_CASES = [
    pytest.param(
        _condition_policy(op, key, action, b),
        _condition_policy(op, key, action, h),
        _expected(action, verdict),
        id=row_id,
    )
    for row_id, op, key, action, b, h, verdict in CONDITION_ROWS
]


# --------------------------------------------------------------------------- statement rows
# (id, base statements, head statements, expected (principal, action, sign)).

ALL = frozenset(a.removeprefix("kms:") for a in semantics.ALL_ACTIONS)
GET = {
    "GetKeyLastUsage",
    "GetKeyPolicy",
    "GetKeyRotationStatus",
    "GetParametersForImport",
    "GetPublicKey",
}
GENERATE_DATA = {
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
}
SVC = {"Service": LOGS}
SRC = {"StringEquals": {"aws:SourceAccount": A}}


def _all(principal: str, actions: Any, sign: str) -> Expected:
    return {(principal, a, sign) for a in actions}


STATEMENT_ROWS: list[tuple[str, list[Doc], list[Doc], Expected]] = [
    # Actions: only KMS actions of the catalog; names are case-insensitive; typos grant nothing.
    (
        "action-typo-grants-nothing",
        [allow(X, "kms:Encrypt")],
        [allow(X, ["kms:Encrypt", "kms:Decrpyt"])],
        set(),
    ),
    (
        "action-added",
        [allow(X, "kms:Encrypt")],
        [allow(X, ["kms:Encrypt", "kms:Decrypt"])],
        {(X, "Decrypt", "+")},
    ),
    ("action-case", [allow(X, "kms:Encrypt")], [allow(X, "kms:encrypt")], set()),
    ("action-service-case", [allow(X, "kms:Encrypt")], [allow(X, "KMS:Encrypt")], set()),
    ("action-star-vs-kms-star", [allow(X, "kms:*")], [allow(X, "*")], set()),
    ("action-get-star", [allow(X, "kms:Get*")], [allow(X, sorted(f"kms:{a}" for a in GET))], set()),
    (
        "action-get-star-narrowed",
        [allow(X, "kms:Get*")],
        [allow(X, "kms:GetPublicKey")],
        _all(X, GET - {"GetPublicKey"}, "-"),
    ),
    (
        "action-other-service",
        [allow(X, "kms:Encrypt")],
        [allow(X, "s3:GetObject")],
        {(X, "Encrypt", "-")},
    ),
    (
        "action-other-service-star",
        [allow(X, "s3:*")],
        [allow(X, "kms:Describe*")],
        {(X, "DescribeKey", "+"), (X, "DescribeCustomKeyStores", "+")},
    ),
    ("action-question-mark", [allow(X, "kms:?ncrypt")], [allow(X, "kms:Encrypt")], set()),
    (
        "action-reencrypt-star",
        [allow(X, "kms:ReEncrypt*")],
        [allow(X, ["kms:ReEncryptFrom", "kms:ReEncryptTo"])],
        set(),
    ),
    (
        "action-generate-narrowed",
        [allow(X, "kms:Generate*")],
        [allow(X, "kms:GenerateDataKey*")],
        {(X, "GenerateMac", "-"), (X, "GenerateRandom", "-")},
    ),
    (
        "action-typo-removed",
        [allow(X, ["kms:Decrypt", "kms:Decrpyt"])],
        [allow(X, "kms:Decrypt")],
        set(),
    ),
    ("action-unknown-only", [], [allow(X, "kms:Frobnicate")], set()),
    # NotAction: every KMS action but the listed ones.
    (
        "notaction-to-star",
        [allow(X, None, NotAction="kms:Decrypt")],
        [allow(X, "kms:*")],
        {(X, "Decrypt", "+")},
    ),
    (
        "star-to-notaction",
        [allow(X, "kms:*")],
        [allow(X, None, NotAction=["kms:Decrypt", "kms:Encrypt"])],
        {(X, "Decrypt", "-"), (X, "Encrypt", "-")},
    ),
    (
        "notaction-typo-is-everything",
        [allow(X, None, NotAction="kms:Decrpyt")],
        [allow(X, "kms:*")],
        set(),
    ),
    (
        "notaction-other-service-is-everything",
        [allow(X, None, NotAction="s3:*")],
        [allow(X, "kms:*")],
        set(),
    ),
    (
        "notaction-wildcard",
        [allow(X, None, NotAction="kms:Generate*")],
        [allow(X, "kms:*")],
        _all(X, GENERATE_DATA | {"GenerateMac", "GenerateRandom"}, "+"),
    ),
    # Principals.
    ("principal-scalar-vs-list", [allow(X, "kms:Decrypt")], [allow([X], "kms:Decrypt")], set()),
    ("principal-account-id-is-root", [allow(RB, "kms:Decrypt")], [allow(B, "kms:Decrypt")], set()),
    (
        "principal-role-path",
        [allow(X, "kms:Decrypt")],
        [allow(f"arn:aws:iam::{B}:role/team/X", "kms:Decrypt")],
        set(),
    ),
    ("principal-added-role", [], [allow(APP, "kms:Decrypt")], {(APP, "Decrypt", "+")}),
    (
        "principal-root-does-not-cover-role",
        [allow(APP, "kms:Decrypt")],
        [],
        {(APP, "Decrypt", "-")},
    ),
    (
        "principal-to-everyone",
        [allow(X, "kms:Decrypt")],
        [allow("*", "kms:Decrypt")],
        {("*", "Decrypt", "+")},
    ),
    (
        "principal-star-forms",
        [allow("*", "kms:Decrypt")],
        [allow({"AWS": "*"}, "kms:Decrypt")],
        set(),
    ),
    ("principal-account-root-added", [], [allow(RB, "kms:Decrypt")], {(RB, "Decrypt", "+")}),
    (
        "principal-swapped",
        [allow(X, "kms:Decrypt")],
        [allow(APP, "kms:Decrypt")],
        {(X, "Decrypt", "-"), (APP, "Decrypt", "+")},
    ),
    (
        "principal-service-swapped",
        [allow(SVC, "kms:Encrypt")],
        [allow({"Service": "s3.amazonaws.com"}, "kms:Encrypt")],
        {(LOGS, "Encrypt", "-"), ("s3.amazonaws.com", "Encrypt", "+")},
    ),
    (
        "principal-moved-between-statements",
        [allow([X, APP], "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), allow(APP, "kms:Decrypt")],
        set(),
    ),
    ("principal-root-everything-vs-partial", [allow(RA, "kms:Decrypt")], [], set()),
    # NotPrincipal.
    (
        "allow-notprincipal-removed",
        [allow(None, "kms:Decrypt", NotPrincipal={"AWS": X})],
        [],
        {("*", "Decrypt", "-")},
    ),
    (
        "allow-notprincipal-to-star",
        [allow(None, "kms:Decrypt", NotPrincipal={"AWS": X})],
        [allow("*", "kms:Decrypt")],
        {(X, "Decrypt", "+")},
    ),
    (
        "deny-notprincipal-added",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(None, "kms:*", NotPrincipal={"AWS": RA})],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-notprincipal-exempts-x",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(None, "kms:Decrypt", NotPrincipal={"AWS": [X, RA]})],
        set(),
    ),
    # Deny: explicit Deny wins.
    (
        "deny-added",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt")],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-removed-is-widening",
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt")],
        {(X, "Decrypt", "+")},
    ),
    (
        "deny-everyone-added",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny("*", "kms:Decrypt")],
        {(X, "Decrypt", "-"), (RA, "Decrypt", "-")},
    ),
    (
        "deny-account-root-covers-its-roles",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(RB, "kms:Decrypt")],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-other-account-root",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(f"arn:aws:iam::{'9' * 12}:root", "kms:Decrypt")],
        set(),
    ),
    (
        "deny-conditional-added",
        [allow(X, "kms:Decrypt")],
        [
            allow(X, "kms:Decrypt"),
            deny("*", "kms:Decrypt", {"Bool": {"aws:SecureTransport": "false"}}),
        ],
        {(X, "Decrypt", "-"), (RA, "Decrypt", "-")},
    ),
    (
        "deny-on-unknown-key-never-applies",
        [allow(X, "kms:Decrypt")],
        [
            allow(X, "kms:Decrypt"),
            deny("*", "kms:Decrypt", {"StringEquals": {"aws:SourceAcount": A}}),
        ],
        set(),
    ),
    (
        "deny-negated-on-unknown-key-always-applies",
        [allow(X, "kms:Decrypt")],
        [
            allow(X, "kms:Decrypt"),
            deny("*", "kms:Decrypt", {"StringNotEquals": {"aws:SourceAcount": A}}),
        ],
        {(X, "Decrypt", "-"), (RA, "Decrypt", "-")},
    ),
    (
        "deny-star-to-one-action",
        [allow(X, "kms:Decrypt"), deny(X, "kms:*")],
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt")],
        set(),
    ),
    (
        "deny-loses-condition",
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt")],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-gains-condition",
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        {(X, "Decrypt", "+")},
    ),
    (
        "deny-shadowed-allow-removed",
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt")],
        [deny(X, "kms:Decrypt")],
        set(),
    ),
    (
        "deny-notaction-added",
        [allow(X, ["kms:Encrypt", "kms:Decrypt"])],
        [allow(X, ["kms:Encrypt", "kms:Decrypt"]), deny(X, None, NotAction="kms:Encrypt")],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-notresource-star-never-applies",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt", NotResource="*")],
        set(),
    ),
    (
        "deny-matching-condition-as-allow",
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        [
            allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}}),
            deny(X, "kms:Decrypt", {"StringNotEquals": {VIA: S3}}),
        ],
        set(),
    ),
    (
        "deny-on-schedule-deletion",
        [],
        [deny("*", "kms:ScheduleKeyDeletion")],
        {(RA, "ScheduleKeyDeletion", "-")},
    ),
    ("deny-of-root-removes-root-everything", [], [deny(RA, "kms:*")], _all(RA, ALL, "-")),
    # Resource: the key itself.
    (
        "resource-key-arn-pattern",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt", Resource=KEY_ARN)],
        set(),
    ),
    (
        "resource-alias-never-matches",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt", Resource=f"arn:aws:kms:us-east-1:{A}:alias/x")],
        {(X, "Decrypt", "-")},
    ),
    (
        "resource-other-account",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt", Resource=f"arn:aws:kms:us-east-1:{B}:key/*")],
        {(X, "Decrypt", "-")},
    ),
    # Several conditions: all must hold.
    (
        "two-keys-one-dropped",
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3, "kms:CallerAccount": B}})],
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        set(),
    ),
    (
        "two-keys-one-dropped-not-bound",
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3, "aws:SourceVpc": "vpc-1"}})],
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        {(X, "Decrypt", "+")},
    ),
    (
        "two-operators-one-dropped",
        [
            allow(
                X,
                "kms:Decrypt",
                {"StringEquals": {VIA: S3}, "Bool": {"aws:SecureTransport": "true"}},
            )
        ],
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        {(X, "Decrypt", "+")},
    ),
    (
        "key-name-case",
        [allow(X, "kms:Decrypt", {"StringEquals": {"kms:ViaService": S3}})],
        [allow(X, "kms:Decrypt", {"StringEquals": {"KMS:VIASERVICE": S3}})],
        set(),
    ),
    (
        "two-conditional-statements-union",
        [
            allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}}),
            allow(X, "kms:Decrypt", {"StringEquals": {VIA: EC2}}),
        ],
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: [S3, EC2]}})],
        set(),
    ),
    (
        "forall-plus-null-false",
        [
            allow(
                X,
                "kms:Decrypt",
                {"ForAllValues:StringEquals": {CTX_KEYS: "a"}, "Null": {CTX_KEYS: "false"}},
            )
        ],
        [allow(X, "kms:Decrypt", {"ForAllValues:StringEquals": {CTX_KEYS: "a"}})],
        {(X, "Decrypt", "+")},
    ),
    (
        "forany-vs-forall",
        [allow(X, "kms:Decrypt", {"ForAnyValue:StringEquals": {CTX_KEYS: "a"}})],
        [allow(X, "kms:Decrypt", {"ForAllValues:StringEquals": {CTX_KEYS: "a"}})],
        {(X, "Decrypt", "+"), (X, "Decrypt", "-")},
    ),
    (
        "single-op-on-multi-valued-is-any",
        [allow(X, "kms:Decrypt", {"StringEquals": {CTX_KEYS: "a"}})],
        [allow(X, "kms:Decrypt", {"ForAnyValue:StringEquals": {CTX_KEYS: "a"}})],
        set(),
    ),
    (
        "null-false-is-like-star",
        [allow(X, "kms:Decrypt", {"Null": {VIA: "false"}})],
        [allow(X, "kms:Decrypt", {"StringLike": {VIA: "*"}})],
        set(),
    ),
    (
        "null-true-is-notlike-star",
        [allow(X, "kms:Decrypt", {"Null": {VIA: "true"}})],
        [allow(X, "kms:Decrypt", {"StringNotLike": {VIA: "*"}})],
        set(),
    ),
    (
        "arnequals-is-arnlike",
        [allow(X, "kms:Decrypt", {"ArnEquals": {"aws:SourceArn": "arn:aws:s3:::b*"}})],
        [allow(X, "kms:Decrypt", {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::b*"}})],
        set(),
    ),
    (
        "arn-without-wildcards-is-equals",
        [allow(X, "kms:Decrypt", {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::b"}})],
        [allow(X, "kms:Decrypt", {"StringEquals": {"aws:SourceArn": "arn:aws:s3:::b"}})],
        set(),
    ),
    (
        "ipaddress-vs-notip-complement",
        [allow(X, "kms:Decrypt", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})],
        [allow(X, "kms:Decrypt", {"NotIpAddress": {"aws:SourceIp": "192.168.0.0/16"}})],
        {(X, "Decrypt", "+")},
    ),
    (
        "equals-to-notequals",
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        [allow(X, "kms:Decrypt", {"StringNotEquals": {VIA: S3}})],
        {(X, "Decrypt", "+"), (X, "Decrypt", "-")},
    ),
    (
        "seic-vs-se-case-insensitive-gain",
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: "abc"}})],
        [allow(X, "kms:Decrypt", {"StringEqualsIgnoreCase": {VIA: "abc"}})],
        {(X, "Decrypt", "+")},
    ),
    (
        "like-literal-vs-equals",
        [allow(X, "kms:Decrypt", {"StringLike": {VIA: "a*"}})],
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: "a*"}})],
        {(X, "Decrypt", "-")},
    ),
    (
        "issue-defect-3-like-narrowing",
        [
            allow(
                X,
                "kms:Decrypt",
                {"StringLike": {"kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::data-*"}},
            )
        ],
        [
            allow(
                X,
                "kms:Decrypt",
                {"StringLike": {"kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::data-prod/*"}},
            )
        ],
        {(X, "Decrypt", "-")},
    ),
    (
        "issue-defect-2-unknown-key",
        [allow(SVC, "kms:Decrypt", SRC)],
        [allow(SVC, "kms:Decrypt", {"StringEquals": {"aws:SourceAcount": A}})],
        {(LOGS, "Decrypt", "-")},
    ),
    (
        "service-condition-dropped",
        [allow(SVC, ["kms:Encrypt", "kms:GenerateDataKey"], SRC)],
        [allow(SVC, ["kms:Encrypt", "kms:GenerateDataKey"])],
        {(LOGS, "Encrypt", "+"), (LOGS, "GenerateDataKey", "+")},
    ),
    (
        "principal-type-bound-for-root",
        [],
        [allow(RB, "kms:Decrypt", {"StringEquals": {"aws:PrincipalType": "Account"}})],
        {(RB, "Decrypt", "+")},
    ),
    (
        "principal-type-mismatch-for-role",
        [],
        [allow(X, "kms:Decrypt", {"StringEquals": {"aws:PrincipalType": "Account"}})],
        set(),
    ),
    (
        "service-is-aws-service",
        [],
        [allow(SVC, "kms:Decrypt", {"Bool": {"aws:PrincipalIsAWSService": "false"}})],
        set(),
    ),
]

STATEMENT_CASES = [
    pytest.param(pol(*b), pol(*h), expected, id=row_id) for row_id, b, h, expected in STATEMENT_ROWS
]
ALL_CASES = COND_CASES + STATEMENT_CASES


@pytest.mark.parametrize(("base", "head", "expected"), ALL_CASES)
def test_verdicts_worked_out_by_hand(base: Doc, head: Doc, expected: Expected) -> None:
    assert verdicts(base, head) == expected


@pytest.mark.parametrize(("base", "head", "expected"), ALL_CASES)
def test_verdicts_mirrored(base: Doc, head: Doc, expected: Expected) -> None:
    assert verdicts(head, base) == _mirror(expected)


# The number of hand-worked pairs (these rows and those of tests/test_semantics_corpus.py,
# each distinct pair counted once, mirrors not at all) is checked in that file.


# --------------------------------------------------------------------------- witnesses


def test_witness_names_principal_action_and_the_distinguishing_context() -> None:
    base = pol(allow(X, "kms:Encrypt", {"StringEquals": {VIA: S3}}))
    head = pol(allow(X, ["kms:Encrypt", "kms:Decrypt"], {"StringEquals": {VIA: S3}}))
    (change,) = access_changes(base, head)
    assert change.witness == f"newly allowed: {X} may call kms:Decrypt when kms:ViaService = {S3}"
    assert change.gained == {"kms:Decrypt"} and not change.lost


def test_witness_of_a_narrowed_like_is_a_request_only_the_base_allows() -> None:
    key = "kms:EncryptionContext:aws:s3:arn"
    base = pol(allow(X, "kms:Decrypt", {"StringLike": {key: "arn:aws:s3:::data-*"}}))
    head = pol(allow(X, "kms:Decrypt", {"StringLike": {key: "arn:aws:s3:::data-prod/*"}}))
    (diff,) = semantics.compare(base, head)
    ((shown_key, value),) = diff.context
    assert diff.change == "denied" and shown_key == key and value is not None
    assert value.startswith("arn:aws:s3:::data-") and not value.startswith(
        "arn:aws:s3:::data-prod/"
    )


def test_witness_shows_a_missing_key_and_a_numeric_value() -> None:
    base = pol(allow(X, "kms:ScheduleKeyDeletion", {"NumericGreaterThanEquals": {WINDOW: "14"}}))
    head = pol(allow(X, "kms:ScheduleKeyDeletion", {"NumericGreaterThanEquals": {WINDOW: "7"}}))
    (diff,) = semantics.compare(base, head)
    ((key, value),) = diff.context
    assert key == WINDOW and value is not None and 7 <= float(value) < 14
    gone = semantics.compare(pol(allow(X, "kms:Decrypt", {"Null": {VIA: "true"}})), pol())
    assert (
        gone[0].witness == f"newly denied: {X} may no longer call kms:Decrypt when {VIA} is absent"
    )


def test_witness_of_an_ip_range_is_an_address_in_the_difference() -> None:
    import ipaddress

    base = pol(allow(X, "kms:Decrypt", {"IpAddress": {"aws:SourceIp": "10.0.0.0/16"}}))
    head = pol(allow(X, "kms:Decrypt", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    ((_, value),) = semantics.compare(base, head)[0].context
    assert value is not None
    address = ipaddress.ip_address(value)
    assert address in ipaddress.ip_network("10.0.0.0/8")
    assert address not in ipaddress.ip_network("10.0.0.0/16")


def test_everyone_is_one_line_not_one_per_named_principal() -> None:
    diffs = semantics.compare(pol(allow(X, "kms:Encrypt")), pol(allow("*", "kms:Decrypt")))
    assert [(d.principal, d.change, sorted(d.actions)) for d in diffs] == [
        ("*", "allowed", ["kms:Decrypt"]),
        (f"AWS:{X}", "denied", ["kms:Encrypt"]),
    ]
    assert (
        diffs[0].witness == 'newly allowed: any principal ("*") may call kms:Decrypt (any request)'
    )


def test_equal_canonical_forms_never_reach_the_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the solver was asked")

    monkeypatch.setattr(semantics, "_solve_group", boom)
    doc = pol(allow(X, ["kms:Decrypt", "kms:Encrypt"], {"StringEquals": {VIA: S3}}))
    shuffled = pol(
        allow([X], ["kms:encrypt", "kms:Decrypt"], {"StringEquals": {"KMS:ViaService": [S3]}})
    )
    assert semantics.compare(doc, shuffled) == ()
    assert semantics.equivalent(doc, copy.deepcopy(doc))


def test_removes_access_is_what_the_engine_proves() -> None:
    base = pol(allow(X, "kms:Decrypt", {"StringLike": {VIA: "s3.*"}}))
    assert removes_access(base, pol(allow(X, "kms:Decrypt", {"StringLike": {VIA: "s3.us-*"}})))
    assert not removes_access(base, pol(allow(X, "kms:Decrypt", {"StringLike": {VIA: "s*"}})))
    # A Deny that takes away nothing anyone had is not destructive.
    assert not removes_access(
        base, pol(allow(X, "kms:Decrypt", {"StringLike": {VIA: "s3.*"}}), deny(APP, "kms:Decrypt"))
    )


# --------------------------------------------------------------------------- properties

STATEMENT_POOL: list[Doc] = [
    allow(X, ["kms:Encrypt", "kms:Decrypt"], {"StringEquals": {VIA: [S3, EC2]}}),
    allow(APP, "kms:*", {"Bool": {"aws:SecureTransport": "true"}}),
    allow(SVC, ["kms:Encrypt", "kms:GenerateDataKey*"], SRC),
    allow("*", "kms:Decrypt", {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}),
    allow(RB, "kms:DescribeKey"),
    allow(X, "kms:Sign", {"ForAllValues:StringLike": {CTX_KEYS: ["a*", "b"]}}),
    deny("*", "kms:ScheduleKeyDeletion", {"NumericLessThan": {WINDOW: "14"}}),
    deny(None, "kms:PutKeyPolicy", NotPrincipal={"AWS": [RA, APP]}),
    allow(
        X,
        None,
        NotAction=["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion"],
        Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    ),
]
DENY_POOL: list[Doc] = [
    deny("*", "kms:Decrypt", {"Bool": {"aws:SecureTransport": "false"}}),
    deny(X, "kms:*"),
    deny("*", "kms:*", {"StringNotEquals": {"aws:PrincipalOrgID": "o-abc"}}),
    deny(RB, ["kms:Encrypt", "kms:Sign"], {"StringLike": {VIA: "ec2.*"}}),
    deny(APP, "kms:Decrypt", {"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}),
]
CONDITION_POOL: list[Mapping[str, Any]] = [
    {"StringEquals": {VIA: S3}},
    {"Bool": {"aws:SecureTransport": "true"}},
    {"IpAddress": {"aws:SourceIp": "10.0.0.0/16"}},
    {"StringLike": {"kms:EncryptionContext:dept": "fin*"}},
    {"ForAnyValue:StringEquals": {CTX_KEYS: "a"}},
    {"Null": {"aws:SourceVpc": "false"}},
]

statements = st.lists(
    st.sampled_from(range(len(STATEMENT_POOL))), min_size=1, max_size=4, unique=True
)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rewrite(doc: Doc, rng: random.Random) -> Doc:
    """The same policy, reordered and with scalars and one-element lists swapped."""
    out = copy.deepcopy(doc)
    rng.shuffle(out["Statement"])
    for s in out["Statement"]:
        for field in ("Action", "NotAction", "Resource"):
            if field in s:
                value = s[field]
                s[field] = (
                    value[0]
                    if isinstance(value, list) and len(value) == 1
                    else (list(reversed(value)) if isinstance(value, list) else [value])
                )
        for block in (s.get("Condition") or {}).values():
            for key in list(block):
                value = block[key]
                block[key] = (
                    value[0]
                    if isinstance(value, list) and len(value) == 1
                    else list(reversed(value))
                    if isinstance(value, list)
                    else [value]
                )
    return out


@SETTINGS
@given(chosen=statements, seed=st.integers(0, 2**16))
def test_a_policy_is_equivalent_to_its_rewrites(chosen: list[int], seed: int) -> None:
    doc = pol(*(STATEMENT_POOL[i] for i in chosen))
    rewritten = _rewrite(doc, random.Random(seed))
    assert semantics.compare(doc, rewritten) == ()
    # And without the canonical fast path: the solver itself proves it.
    texts = [semantics.json.dumps(d, sort_keys=True) for d in (doc, rewritten)]
    assert semantics._compare_texts.__wrapped__(*texts, "aws", A, "us-east-1") == ()


@SETTINGS
@given(chosen=statements, extra=st.sampled_from(range(len(DENY_POOL))))
def test_adding_a_deny_never_widens(chosen: list[int], extra: int) -> None:
    doc = pol(*(STATEMENT_POOL[i] for i in chosen))
    head = copy.deepcopy(doc)
    head["Statement"].append(DENY_POOL[extra])
    assert all(d.change == "denied" for d in semantics.compare(doc, head))


@SETTINGS
@given(
    chosen=statements, which=st.integers(0, 3), extra=st.sampled_from(range(len(CONDITION_POOL)))
)
def test_adding_a_condition_to_an_allow_never_widens(
    chosen: list[int], which: int, extra: int
) -> None:
    doc = pol(*(STATEMENT_POOL[i] for i in chosen))
    head = copy.deepcopy(doc)
    allows = [s for s in head["Statement"][1:] if s["Effect"] == "Allow"]
    if not allows:
        return
    target = allows[which % len(allows)]
    condition = dict(target.get("Condition") or {})
    for operator, block in CONDITION_POOL[extra].items():
        if set(block) & set(condition.get(operator, {})):
            return  # that would replace a condition, not add one
        condition[operator] = {**condition.get(operator, {}), **block}
    target["Condition"] = condition
    assert all(d.change == "denied" for d in semantics.compare(doc, head))


# --------------------------------------------------------------------------- robustness


def test_an_undecided_query_is_reported_never_taken_for_no_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class GivingUp(semantics.z3.Solver):  # type: ignore[misc]
        def check(self, *args: Any) -> Any:
            return semantics.z3.unknown

    monkeypatch.setattr(semantics.z3, "Solver", GivingUp)
    semantics._compare_texts.cache_clear()
    base = pol(allow(X, "kms:Decrypt", {"StringLike": {VIA: "s3.*"}}))
    head = pol(allow(X, "kms:Decrypt", {"StringLike": {VIA: "s3.us-*"}}))
    found = semantics.compare(base, head)
    assert {d.change for d in found} == {"allowed", "denied"}
    assert all("undecided: the solver gave up" in d.witness for d in found)
    assert removes_access(base, head)
    semantics._compare_texts.cache_clear()


def test_the_verdict_memo_answers_only_for_its_own_pair() -> None:
    """A plan asks the engine once per canonical pair (``_compare_texts`` memoises by the
    two canonical texts, partition, account and Region): a repeat is served from the
    memo, and nothing else is, not the pair the other way round, not a pair that JSON
    would spell alike, not the same pair for another account."""
    base = pol(allow(X, "kms:Decrypt", {"StringLike": {VIA: "s3.*"}}))
    head = pol(allow(X, "kms:Decrypt", {"StringLike": {VIA: "s3.us-*"}}))
    as_bool, as_int = (
        pol(allow(X, "kms:Decrypt", {"Bool": {"aws:SecureTransport": v}})) for v in (True, 1)
    )
    pairs = [(base, head), (head, base), (pol(), as_bool), (pol(), as_int), (as_bool, as_int)]
    semantics._compare_texts.cache_clear()
    try:
        fresh = [verdicts(a, b) for a, b in pairs]
        info = semantics._compare_texts.cache_info()
        assert info.misses == len(pairs) and info.hits == 0  # no pair taken for another
        assert fresh[0] == {(X, "Decrypt", "-")} and fresh[1] == {(X, "Decrypt", "+")}
        # aws:SecureTransport holds "true" or "false": never "1"
        assert fresh[4] == {(X, "Decrypt", "-")}
        again = [verdicts(a, b) for a, b in pairs]
        assert again == fresh
        assert semantics._compare_texts.cache_info().hits == len(pairs)
        # another account: the key's ARN differs, so does the question
        semantics.compare(base, head, account_id=B, region="us-east-1")
        assert semantics._compare_texts.cache_info().misses == len(pairs) + 1
        # and a memoised verdict is the one the engine gives without the memo
        for a, b in pairs:
            texts = (canonical_json(a), canonical_json(b), "aws", A, "us-east-1")
            assert semantics._compare_texts(*texts) == semantics._compare_texts.__wrapped__(*texts)
    finally:
        semantics._compare_texts.cache_clear()


def test_threads_get_the_same_answers() -> None:
    from concurrent.futures import ThreadPoolExecutor

    pairs = [
        (
            pol(allow(X, "kms:Decrypt", {"StringLike": {VIA: f"s{i}.*"}})),
            pol(allow(X, "kms:Decrypt", {"StringLike": {VIA: f"s{i}.us-*"}}), deny(APP, "kms:*")),
        )
        for i in range(12)
    ]
    semantics._compare_texts.cache_clear()
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda pair: verdicts(*pair), pairs))
    semantics._compare_texts.cache_clear()
    assert threaded == [verdicts(*pair) for pair in pairs]
    assert all(v == {(X, "Decrypt", "-")} for v in threaded)
