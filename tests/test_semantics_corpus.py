"""More policy pairs for the policy-semantics engine, each verdict worked out by hand.

The same method as ``tests/test_semantics.py`` (whose helpers and principals this file
reuses): every row is a (base, head) pair of key policies and the differences the IAM
policy evaluation logic gives for it, written from the rules (IAM User Guide: "Policy
evaluation logic", "IAM JSON policy elements: Condition operators", "Single-valued vs.
multivalued context keys"; KMS Developer Guide: "AWS KMS condition keys"), never from the
engine's output. Each row is also checked mirrored. The comment on a row names the rule
that gives its verdict when it is not obvious.

Policies are the root delegation of account A plus the row's statements. X is a role of
account B, APP a role of account A, RA / RB the account roots, LOGS a service principal.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import policy
from tests.test_semantics import (
    ALL,
    ALL_CASES,
    APP,
    CTX_KEYS,
    EC2,
    KEY_ARN,
    LOGS,
    NO,
    RA,
    RB,
    ROOT,
    S3,
    SVC,
    VIA,
    WINDOW,
    A,
    B,
    Doc,
    Expected,
    X,
    _all,
    _mirror,
    allow,
    deny,
    pol,
    verdicts,
)

MFA_AGE = "aws:MultiFactorAuthAge"  # numeric; absent when the caller used no MFA
MFA = "aws:MultiFactorAuthPresent"  # boolean; absent for long-term credentials
ST = "aws:SecureTransport"
NOW = "aws:CurrentTime"
TOKEN = "aws:TokenIssueTime"  # absent for long-term credentials
SRC_ARN = "aws:SourceArn"
UA = "aws:UserAgent"
VPC = "aws:SourceVpc"
GRANT_OPS = "kms:GrantOperations"
CTX_DEPT = "kms:EncryptionContext:dept"
T30, T31 = "2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z"
OTHER_A = f"arn:aws:iam::{A}:(another principal)"
OTHER_B = f"arn:aws:iam::{B}:(another principal)"
WEST_ARN = f"arn:aws:kms:us-west-2:{A}:key/*"
S3_SVC = {"Service": "s3.amazonaws.com"}


def c(operator: str, key: str, values: Any) -> dict[str, dict[str, Any]]:
    return {operator: {key: values}}


# --------------------------------------------------------------------------- condition rows
# (id, action, base condition, head condition, verdict for X on the action). A condition is
# the Condition of the one Allow for X on the action; None: the Allow has no Condition;
# NO: there is no such Allow. Verdict: "=" no change, "+" X gains, "-" X loses, "+-" both.

OP_ROWS: list[tuple[str, str, Any, Any, str]] = [
    # ---- Numeric*: on aws:MultiFactorAuthAge (may be absent) and the deletion window.
    # LessThan excludes the bound, LessThanEquals admits it: the value 3600 itself.
    (
        "num-lt-to-lte-admits-the-bound",
        "Decrypt",
        c("NumericLessThan", MFA_AGE, "3600"),
        c("NumericLessThanEquals", MFA_AGE, "3600"),
        "+",
    ),
    (
        "num-gt-to-gte-admits-the-bound",
        "ScheduleKeyDeletion",
        c("NumericGreaterThan", WINDOW, "7"),
        c("NumericGreaterThanEquals", WINDOW, "7"),
        "+",
    ),
    (
        "num-lte-to-lt-drops-the-bound",
        "ScheduleKeyDeletion",
        c("NumericLessThanEquals", WINDOW, "30"),
        c("NumericLessThan", WINDOW, "30"),
        "-",
    ),
    (
        "num-equals-to-gte",
        "ScheduleKeyDeletion",
        c("NumericEquals", WINDOW, "7"),
        c("NumericGreaterThanEquals", WINDOW, "7"),
        "+",
    ),
    # 7 only vs everything but 7 (and the missing key: a negated operator matches it).
    (
        "num-equals-to-not-equals",
        "ScheduleKeyDeletion",
        c("NumericEquals", WINDOW, "7"),
        c("NumericNotEquals", WINDOW, "7"),
        "+-",
    ),
    # ...IfExists matches a missing key, the plain operator does not.
    (
        "num-ifexists-to-plain",
        "Decrypt",
        c("NumericLessThanIfExists", MFA_AGE, "3600"),
        c("NumericLessThan", MFA_AGE, "3600"),
        "-",
    ),
    (
        "num-ifexists-to-unconditional",
        "Decrypt",
        c("NumericLessThanIfExists", MFA_AGE, "3600"),
        None,
        "+",
    ),
    # A negated operator already matches a missing key: IfExists adds nothing.
    (
        "num-not-equals-ifexists-is-plain",
        "ScheduleKeyDeletion",
        c("NumericNotEquals", WINDOW, "7"),
        c("NumericNotEqualsIfExists", WINDOW, "7"),
        "=",
    ),
    # Values are alternatives (OR): > 7 or > 14 is > 7.
    (
        "num-gt-two-values-lowest-decides",
        "ScheduleKeyDeletion",
        c("NumericGreaterThan", WINDOW, ["7", "14"]),
        c("NumericGreaterThan", WINDOW, "7"),
        "=",
    ),
    (
        "num-lt-drop-the-higher-value",
        "Decrypt",
        c("NumericLessThan", MFA_AGE, ["600", "3600"]),
        c("NumericLessThan", MFA_AGE, "600"),
        "-",
    ),
    (
        "num-lt-raise-bound",
        "Decrypt",
        c("NumericLessThan", MFA_AGE, "3600"),
        c("NumericLessThan", MFA_AGE, "7200"),
        "+",
    ),
    # < 3600 and >= 3600 split the present values; neither matches a missing key.
    (
        "num-lt-vs-gte-complement",
        "Decrypt",
        c("NumericLessThan", MFA_AGE, "3600"),
        c("NumericGreaterThanEquals", MFA_AGE, "3600"),
        "+-",
    ),
    # Two operators in one Condition: both must hold (AND); dropping the upper bound widens.
    (
        "num-window-to-lower-bound",
        "ScheduleKeyDeletion",
        {
            "NumericGreaterThanEquals": {WINDOW: "7"},
            "NumericLessThanEquals": {WINDOW: "30"},
        },
        c("NumericGreaterThanEquals", WINDOW, "7"),
        "+",
    ),
    # > 30 and < 7 together: no number satisfies both, the Allow never matches.
    (
        "num-empty-range-is-no-statement",
        "ScheduleKeyDeletion",
        {"NumericGreaterThan": {WINDOW: "30"}, "NumericLessThan": {WINDOW: "7"}},
        NO,
        "=",
    ),
    (
        "num-rotation-period-raised",
        "EnableKeyRotation",
        c("NumericGreaterThanEquals", "kms:RotationPeriodInDays", "90"),
        c("NumericGreaterThanEquals", "kms:RotationPeriodInDays", "180"),
        "-",
    ),
    # kms:RotationPeriodInDays is only in EnableKeyRotation requests: here it never matches.
    (
        "num-rotation-period-on-rotate-on-demand",
        "RotateKeyOnDemand",
        c("NumericGreaterThanEquals", "kms:RotationPeriodInDays", "90"),
        None,
        "+",
    ),
    # ---- Date*: aws:CurrentTime, aws:TokenIssueTime.
    (
        "date-lt-to-lte-admits-the-instant",
        "Decrypt",
        c("DateLessThan", NOW, T30),
        c("DateLessThanEquals", NOW, T30),
        "+",
    ),
    (
        "date-gt-to-gte-admits-the-instant",
        "Decrypt",
        c("DateGreaterThan", NOW, T30),
        c("DateGreaterThanEquals", NOW, T30),
        "+",
    ),
    (
        "date-lte-to-lt-drops-the-instant",
        "Decrypt",
        c("DateLessThanEquals", NOW, T31),
        c("DateLessThan", NOW, T31),
        "-",
    ),
    (
        "date-equals-to-not-equals",
        "Decrypt",
        c("DateEquals", NOW, T30),
        c("DateNotEquals", NOW, T30),
        "+-",
    ),
    # ISO 8601 with an offset: 01:00 at +01:00 is 00:00 UTC, the same instant.
    (
        "date-offset-same-instant",
        "Decrypt",
        c("DateLessThan", NOW, T30),
        c("DateLessThan", NOW, "2030-01-01T01:00:00+01:00"),
        "=",
    ),
    # 1893456000 epoch seconds is 2030-01-01T00:00:00Z.
    (
        "date-epoch-vs-iso-gte",
        "Decrypt",
        c("DateGreaterThanEquals", NOW, "1893456000"),
        c("DateGreaterThanEquals", NOW, T30),
        "=",
    ),
    (
        "date-one-second-later",
        "Decrypt",
        c("DateLessThan", NOW, T30),
        c("DateLessThan", NOW, "2030-01-01T00:00:01Z"),
        "+",
    ),
    (
        "date-fraction-of-second-zero",
        "Decrypt",
        c("DateLessThan", NOW, T30),
        c("DateLessThan", NOW, "2030-01-01T00:00:00.000Z"),
        "=",
    ),
    # Values are alternatives: before 2030 or before 2031 is before 2031.
    (
        "date-two-values-later-decides",
        "Decrypt",
        c("DateLessThan", NOW, [T30, T31]),
        c("DateLessThan", NOW, T31),
        "=",
    ),
    (
        "date-token-ifexists-to-plain",
        "Decrypt",
        c("DateGreaterThanIfExists", TOKEN, "2024-01-01T00:00:00Z"),
        c("DateGreaterThan", TOKEN, "2024-01-01T00:00:00Z"),
        "-",
    ),
    (
        "date-window-to-upper-bound",
        "Decrypt",
        {"DateGreaterThan": {NOW: "2025-01-01T00:00:00Z"}, "DateLessThan": {NOW: T30}},
        c("DateLessThan", NOW, T30),
        "+",
    ),
    # After 2031 and before 2030: never.
    (
        "date-empty-window-is-no-statement",
        "Decrypt",
        {"DateGreaterThan": {NOW: T31}, "DateLessThan": {NOW: T30}},
        NO,
        "=",
    ),
    # ---- Bool.
    (
        "bool-ifexists-to-plain",
        "Decrypt",
        c("BoolIfExists", MFA, "false"),
        c("Bool", MFA, "false"),
        "-",
    ),
    ("bool-false-to-unconditional", "Decrypt", c("Bool", ST, "false"), None, "+"),
    # Bool true already needs the key present: Null false adds nothing.
    (
        "bool-true-implies-present",
        "Decrypt",
        c("Bool", MFA, "true"),
        {"Bool": {MFA: "true"}, "Null": {MFA: "false"}},
        "=",
    ),
    # aws:SecureTransport is boolean: present means true or false.
    (
        "bool-both-values-is-present",
        "Decrypt",
        c("Bool", ST, ["true", "false"]),
        c("Null", ST, "false"),
        "=",
    ),
    # Bool compares the key's value with true / false: a kms:ViaService of S3 is neither,
    # so the head stops matching it; a value "true" is matched by the head only.
    ("bool-on-a-string-key", "Decrypt", c("StringEquals", VIA, S3), c("Bool", VIA, "true"), "+-"),
    (
        "bool-grant-for-aws-resource-on-list-grants",
        "ListGrants",
        NO,
        c("Bool", "kms:GrantIsForAWSResource", "true"),
        "+",
    ),
    (
        "bool-reencrypt-on-same-key-dropped",
        "ReEncryptFrom",
        c("Bool", "kms:ReEncryptOnSameKey", "false"),
        None,
        "+",
    ),
    # kms:GrantIsForAWSResource is never in an Encrypt request: IfExists matches.
    (
        "boolifexists-grant-key-on-encrypt",
        "Encrypt",
        None,
        c("BoolIfExists", "kms:GrantIsForAWSResource", "true"),
        "=",
    ),
    # ---- Null, and Null together with other operators.
    # Null true (missing) and StringEquals (present) together: never.
    (
        "null-true-and-equals-contradict",
        "Decrypt",
        NO,
        {"Null": {VIA: "true"}, "StringEquals": {VIA: S3}},
        "=",
    ),
    # StringNotEquals also matches a missing key; Null false took that away.
    (
        "null-false-with-not-equals-dropped",
        "Decrypt",
        {"Null": {VIA: "false"}, "StringNotEquals": {VIA: S3}},
        c("StringNotEquals", VIA, S3),
        "+",
    ),
    (
        "null-false-redundant-with-equals",
        "Decrypt",
        {"StringEquals": {VIA: S3}, "Null": {VIA: "false"}},
        c("StringEquals", VIA, S3),
        "=",
    ),
    # DescribeKey carries no encryption context: the key is always missing.
    ("null-true-context-on-describe-key", "DescribeKey", c("Null", CTX_DEPT, "true"), None, "="),
    ("null-false-context-on-describe-key", "DescribeKey", c("Null", CTX_DEPT, "false"), None, "+"),
    ("null-true-grant-operations-on-decrypt", "Decrypt", c("Null", GRANT_OPS, "true"), None, "="),
    # A present multi-valued key has a value, and any value matches "*".
    (
        "null-false-is-forany-like-star",
        "Decrypt",
        c("Null", CTX_KEYS, "false"),
        c("ForAnyValue:StringLike", CTX_KEYS, "*"),
        "=",
    ),
    # ForAllValues:StringNotLike "*": no value may match "*", so no value at all.
    (
        "null-true-is-forall-not-like-star",
        "Decrypt",
        c("Null", CTX_KEYS, "true"),
        c("ForAllValues:StringNotLike", CTX_KEYS, "*"),
        "=",
    ),
    # ---- ArnLike / ArnEquals / ArnNotLike on aws:SourceArn: six parts, each its own glob.
    (
        "arn-service-part-star-to-logs",
        "Decrypt",
        c("ArnLike", SRC_ARN, f"arn:aws:*:us-east-1:{A}:*"),
        c("ArnLike", SRC_ARN, f"arn:aws:logs:us-east-1:{A}:*"),
        "-",
    ),
    (
        "arn-account-part-star-to-account",
        "Decrypt",
        c("ArnLike", SRC_ARN, "arn:aws:logs:us-east-1:*:*"),
        c("ArnLike", SRC_ARN, f"arn:aws:logs:us-east-1:{A}:*"),
        "-",
    ),
    # 11112222333? covers 111122223333 and nine other accounts.
    (
        "arn-account-part-question",
        "Decrypt",
        c("ArnLike", SRC_ARN, "arn:aws:logs:us-east-1:11112222333?:*"),
        c("ArnLike", SRC_ARN, f"arn:aws:logs:us-east-1:{A}:*"),
        "-",
    ),
    (
        "arn-region-part-question",
        "Decrypt",
        c("ArnLike", SRC_ARN, f"arn:aws:logs:us-east-?:{A}:*"),
        c("ArnLike", SRC_ARN, f"arn:aws:logs:us-east-1:{A}:*"),
        "-",
    ),
    (
        "arn-partition-part-star",
        "Decrypt",
        c("ArnLike", SRC_ARN, "arn:aws*:s3:::b"),
        c("ArnLike", SRC_ARN, "arn:aws:s3:::b"),
        "-",
    ),
    # The resource part is everything after the fifth colon, colons included.
    (
        "arn-resource-part-with-colons-widened",
        "Decrypt",
        c("ArnLike", SRC_ARN, f"arn:aws:logs:us-east-1:{A}:log-group:*"),
        c("ArnLike", SRC_ARN, f"arn:aws:logs:us-east-1:{A}:*"),
        "+",
    ),
    # Only the last part is free: the two globs accept the same strings.
    (
        "arn-like-vs-string-like-resource-star",
        "Decrypt",
        c("ArnLike", SRC_ARN, "arn:aws:s3:::*"),
        c("StringLike", SRC_ARN, "arn:aws:s3:::*"),
        "=",
    ),
    # ArnLike's * stays inside its part; StringLike's also matches arn:aws:s3:x:y:z:b.
    (
        "arn-like-star-stays-in-its-part",
        "Decrypt",
        c("ArnLike", SRC_ARN, "arn:aws:s3:*:*:b"),
        c("StringLike", SRC_ARN, "arn:aws:s3:*:*:b"),
        "+",
    ),
    (
        "arn-not-like-one-more-value",
        "Decrypt",
        c("ArnNotLike", SRC_ARN, "arn:aws:s3:::b"),
        c("ArnNotLike", SRC_ARN, ["arn:aws:s3:::b", "arn:aws:s3:::c"]),
        "-",
    ),
    (
        "arn-not-like-statement-added",
        "Decrypt",
        NO,
        c("ArnNotLike", SRC_ARN, "arn:aws:s3:::b"),
        "+",
    ),
    (
        "arn-like-to-ifexists",
        "Decrypt",
        c("ArnLike", SRC_ARN, "arn:aws:s3:::b"),
        c("ArnLikeIfExists", SRC_ARN, "arn:aws:s3:::b"),
        "+",
    ),
    # q? is q plus one character; q* also q itself and longer names.
    (
        "arn-resource-question-to-star",
        "Decrypt",
        c("ArnLike", SRC_ARN, f"arn:aws:sqs:us-east-1:{A}:q?"),
        c("ArnLike", SRC_ARN, f"arn:aws:sqs:us-east-1:{A}:q*"),
        "+",
    ),
    (
        "arn-equals-to-like-with-star",
        "Decrypt",
        c("ArnEquals", SRC_ARN, "arn:aws:s3:::b"),
        c("ArnLike", SRC_ARN, "arn:aws:s3:::b*"),
        "+",
    ),
    # X's aws:PrincipalArn is its role ARN: ArnNotLike of it never matches X.
    (
        "arn-not-like-own-principal-arn",
        "Decrypt",
        NO,
        c("ArnNotLike", "aws:PrincipalArn", f"arn:aws:iam::{B}:role/X"),
        "=",
    ),
    (
        "arn-like-other-account-principal-arn",
        "Decrypt",
        NO,
        c("ArnLike", "aws:PrincipalArn", f"arn:aws:iam::{A}:*"),
        "=",
    ),
    # ---- StringLike: * any run (also none), ? exactly one character; ${*} ${?} ${$} escapes.
    (
        "like-two-questions-to-star",
        "Decrypt",
        c("StringLike", VIA, "a??"),
        c("StringLike", VIA, "a*"),
        "+",
    ),
    (
        "like-one-vs-two-questions",
        "Decrypt",
        c("StringLike", VIA, "a?"),
        c("StringLike", VIA, "a??"),
        "+-",
    ),
    (
        "like-star-middle-to-prefix",
        "Decrypt",
        c("StringLike", VIA, "a*z"),
        c("StringLike", VIA, "a*"),
        "+",
    ),
    (
        "like-double-star-is-star",
        "Decrypt",
        c("StringLike", VIA, "a**"),
        c("StringLike", VIA, "a*"),
        "=",
    ),
    # Both mean: at least one character.
    (
        "like-star-question-either-order",
        "Decrypt",
        c("StringLike", VIA, "*?"),
        c("StringLike", VIA, "?*"),
        "=",
    ),
    # * matches the empty value, ?* does not.
    (
        "like-star-to-at-least-one",
        "Decrypt",
        c("StringLike", UA, "*"),
        c("StringLike", UA, "?*"),
        "-",
    ),
    (
        "like-without-wildcards-is-equals",
        "Decrypt",
        c("StringLike", VIA, "abc"),
        c("StringEquals", VIA, "abc"),
        "=",
    ),
    # StringNotLike's values: the value must match none of them.
    (
        "not-like-drop-a-value",
        "Decrypt",
        c("StringNotLike", VIA, ["a*", "b*"]),
        c("StringNotLike", VIA, "a*"),
        "+",
    ),
    (
        "like-a-b-c-to-a-c",
        "Decrypt",
        c("StringLike", VIA, "a*b*c"),
        c("StringLike", VIA, "a*c"),
        "+",
    ),
    # StringLike is case-sensitive.
    (
        "like-domain-case",
        "Decrypt",
        c("StringLike", VIA, "*.AMAZONAWS.COM"),
        c("StringLike", VIA, "*.amazonaws.com"),
        "+-",
    ),
    (
        "like-ifexists-to-plain",
        "Decrypt",
        c("StringLikeIfExists", VIA, "s3.*"),
        c("StringLike", VIA, "s3.*"),
        "-",
    ),
    # ${*} is a literal * (policy variables, Version 2012-10-17).
    (
        "like-escaped-star-is-literal",
        "Decrypt",
        c("StringLike", VIA, "a${*}"),
        c("StringEquals", VIA, "a*"),
        "=",
    ),
    (
        "like-escaped-star-to-wildcard",
        "Decrypt",
        c("StringLike", VIA, "a${*}"),
        c("StringLike", VIA, "a*"),
        "+",
    ),
    (
        "like-escaped-question-is-literal",
        "Decrypt",
        c("StringLike", VIA, "a${?}"),
        c("StringEquals", VIA, "a?"),
        "=",
    ),
    (
        "like-escaped-dollar-is-literal",
        "Decrypt",
        c("StringLike", VIA, "${$}x"),
        c("StringEquals", VIA, "$x"),
        "=",
    ),
    (
        "equals-escaped-star-is-literal",
        "Decrypt",
        c("StringEquals", VIA, "a${*}"),
        c("StringEquals", VIA, "a*"),
        "=",
    ),
    # ---- StringEqualsIgnoreCase / StringNotEqualsIgnoreCase.
    (
        "ignorecase-upper-to-equals-lower",
        "Decrypt",
        c("StringEqualsIgnoreCase", VIA, "ABC"),
        c("StringEquals", VIA, "abc"),
        "-",
    ),
    (
        "ignorecase-service-name-spelling",
        "Decrypt",
        c("StringEqualsIgnoreCase", VIA, "s3.US-EAST-1.amazonaws.com"),
        c("StringEqualsIgnoreCase", VIA, S3),
        "=",
    ),
    # StringNotEquals "abc" also matches "ABC", which the IgnoreCase form excluded.
    (
        "not-ignorecase-to-not-equals",
        "Decrypt",
        c("StringNotEqualsIgnoreCase", VIA, "abc"),
        c("StringNotEquals", VIA, "abc"),
        "+",
    ),
    (
        "ignorecase-ifexists-to-plain",
        "Decrypt",
        c("StringEqualsIgnoreCaseIfExists", VIA, "abc"),
        c("StringEqualsIgnoreCase", VIA, "abc"),
        "-",
    ),
    # The four spellings of "ab" are exactly what IgnoreCase accepts.
    (
        "ignorecase-is-every-spelling",
        "Decrypt",
        c("StringEqualsIgnoreCase", VIA, "ab"),
        c("StringLike", VIA, ["ab", "AB", "aB", "Ab"]),
        "=",
    ),
    # ---- ForAllValues / ForAnyValue: kms:EncryptionContextKeys, kms:GrantOperations.
    # ForAllValues is true when the request has no context at all.
    ("forall-statement-added", "Decrypt", NO, c("ForAllValues:StringEquals", CTX_KEYS, "a"), "+"),
    ("forany-statement-added", "Decrypt", NO, c("ForAnyValue:StringEquals", CTX_KEYS, "a"), "+"),
    (
        "forall-like-star-is-always",
        "Decrypt",
        c("ForAllValues:StringLike", CTX_KEYS, "*"),
        None,
        "=",
    ),
    # ForAnyValue needs at least one value: a request without context is not matched.
    (
        "forany-like-star-needs-a-value",
        "Decrypt",
        c("ForAnyValue:StringLike", CTX_KEYS, "*"),
        None,
        "+",
    ),
    # "no key is a" vs "some key is a": complements.
    (
        "forall-not-equals-vs-forany-equals",
        "Decrypt",
        c("ForAllValues:StringNotEquals", CTX_KEYS, "a"),
        c("ForAnyValue:StringEquals", CTX_KEYS, "a"),
        "+-",
    ),
    # "some key is not a" vs "every key is a (or none)": complements.
    (
        "forany-not-equals-vs-forall-equals",
        "Decrypt",
        c("ForAnyValue:StringNotEquals", CTX_KEYS, "a"),
        c("ForAllValues:StringEquals", CTX_KEYS, "a"),
        "+-",
    ),
    # Base accepts {Dept}; head only subsets of {dept}, which base accepts too.
    (
        "forall-ignorecase-to-equals",
        "Decrypt",
        c("ForAllValues:StringEqualsIgnoreCase", CTX_KEYS, "Dept"),
        c("ForAllValues:StringEquals", CTX_KEYS, "dept"),
        "-",
    ),
    (
        "forany-like-drop-a-value",
        "Decrypt",
        c("ForAnyValue:StringLike", CTX_KEYS, ["a*", "b*"]),
        c("ForAnyValue:StringLike", CTX_KEYS, "a*"),
        "-",
    ),
    # {} and {b} only the base; {a, c} only the head.
    (
        "forall-two-values-vs-forany-one",
        "Decrypt",
        c("ForAllValues:StringEquals", CTX_KEYS, ["a", "b"]),
        c("ForAnyValue:StringEquals", CTX_KEYS, "a"),
        "+-",
    ),
    (
        "grant-operations-forall-added",
        "CreateGrant",
        NO,
        c("ForAllValues:StringEquals", GRANT_OPS, "Decrypt"),
        "+",
    ),
    (
        "grant-operations-forall-drop-one",
        "CreateGrant",
        c("ForAllValues:StringEquals", GRANT_OPS, ["Decrypt", "RetireGrant"]),
        c("ForAllValues:StringEquals", GRANT_OPS, "Decrypt"),
        "-",
    ),
    (
        "grant-operations-forany-swapped",
        "CreateGrant",
        c("ForAnyValue:StringEquals", GRANT_OPS, "Decrypt"),
        c("ForAnyValue:StringEquals", GRANT_OPS, "Encrypt"),
        "+-",
    ),
    # kms:GrantOperations is only in CreateGrant requests: ForAnyValue never matches Encrypt.
    (
        "grant-operations-forany-on-encrypt",
        "Encrypt",
        c("ForAnyValue:StringEquals", GRANT_OPS, "Decrypt"),
        None,
        "+",
    ),
    (
        "context-keys-forall-on-describe-key",
        "DescribeKey",
        c("ForAllValues:StringEquals", CTX_KEYS, "a"),
        None,
        "=",
    ),
    # On a single-valued key: ForAllValues is "missing or matches", ForAnyValue "matches".
    (
        "forall-on-single-valued-is-ifexists",
        "Decrypt",
        c("ForAllValues:StringEquals", VIA, S3),
        c("StringEqualsIfExists", VIA, S3),
        "=",
    ),
    (
        "forany-on-single-valued-is-plain",
        "Decrypt",
        c("ForAnyValue:StringEquals", VIA, S3),
        c("StringEquals", VIA, S3),
        "=",
    ),
    # ---- Several keys in one block (AND) vs several values (OR).
    (
        "and-second-operator-narrows",
        "Decrypt",
        c("StringEquals", VIA, S3),
        {"StringEquals": {VIA: S3}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        "-",
    ),
    (
        "and-equals-and-not-equals-contradict",
        "Decrypt",
        NO,
        {"StringEquals": {VIA: S3}, "StringNotEquals": {VIA: S3}},
        "=",
    ),
    (
        "and-equals-vs-like-without-wildcards",
        "Decrypt",
        {"StringEquals": {VIA: S3, VPC: "vpc-1"}},
        {"StringEquals": {VIA: S3}, "StringLike": {VPC: "vpc-1"}},
        "=",
    ),
    # S3 or EC2 vs (S3 and *.us-east-1.amazonaws.com) = S3 only.
    (
        "or-values-to-and-operators",
        "Decrypt",
        c("StringEquals", VIA, [S3, EC2]),
        {"StringEquals": {VIA: S3}, "StringLike": {VIA: "*.us-east-1.amazonaws.com"}},
        "-",
    ),
    (
        "and-like-narrows-or-values",
        "Decrypt",
        c("StringEquals", VIA, [S3, EC2]),
        {"StringEquals": {VIA: [S3, EC2]}, "StringLike": {VIA: "s3.*"}},
        "-",
    ),
    (
        "and-like-covering-both-values",
        "Decrypt",
        c("StringEquals", VIA, [S3, EC2]),
        {"StringEquals": {VIA: [S3, EC2]}, "StringLike": {VIA: "*.amazonaws.com"}},
        "=",
    ),
    # ---- Unknown and action-bound keys, key-name case.
    # A key that is no KMS or global key is never in a request: StringLike "*" never matches,
    ("unknown-key-like-star-never", "Decrypt", NO, c("StringLike", "aws:SourceAcount", "*"), "="),
    # and StringNotLike "*" always does.
    (
        "unknown-key-not-like-star-always",
        "Decrypt",
        c("StringNotLike", "aws:SourceAcount", "*"),
        None,
        "=",
    ),
    (
        "unknown-context-prefix",
        "Decrypt",
        NO,
        c("StringEquals", "kms:EncryptionContex:dept", "fin"),
        "=",
    ),
    # Condition key names are case-insensitive.
    (
        "global-key-name-case",
        "Decrypt",
        c("StringEquals", "AWS:SOURCEACCOUNT", A),
        c("StringEquals", "aws:SourceAccount", A),
        "=",
    ),
    # So is the context key inside kms:EncryptionContext:<key> (KMS condition keys guide).
    (
        "context-key-name-case",
        "Decrypt",
        c("StringEquals", "kms:EncryptionContext:Dept", "fin"),
        c("StringEquals", CTX_DEPT, "fin"),
        "=",
    ),
    # but not the value.
    (
        "context-value-case",
        "Decrypt",
        c("StringEquals", CTX_DEPT, "fin"),
        c("StringEquals", CTX_DEPT, "Fin"),
        "+-",
    ),
    # kms:EncryptionAlgorithm is not in Sign requests.
    (
        "encryption-algorithm-on-sign",
        "Sign",
        c("StringEquals", "kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT"),
        None,
        "+",
    ),
    (
        "message-type-value-added",
        "Sign",
        c("StringEquals", "kms:MessageType", "RAW"),
        c("StringEquals", "kms:MessageType", ["RAW", "DIGEST"]),
        "+",
    ),
    # ---- Keys the principal fixes (X: a role session of account B).
    (
        "principal-type-of-a-role",
        "Decrypt",
        NO,
        c("StringEquals", "aws:PrincipalType", "AssumedRole"),
        "+",
    ),
    (
        "principal-is-not-a-service",
        "Decrypt",
        c("Bool", "aws:PrincipalIsAWSService", "false"),
        None,
        "=",
    ),
    (
        "caller-account-not-own-added",
        "Decrypt",
        NO,
        c("StringNotEquals", "kms:CallerAccount", B),
        "=",
    ),
    (
        "principal-account-like-added",
        "Decrypt",
        NO,
        c("StringLike", "aws:PrincipalAccount", "4444*"),
        "+",
    ),
]


def _x_policy(action: str, condition: Any) -> Doc:
    if condition is NO:
        return pol()
    return pol(allow(X, f"kms:{action}", condition))


OP_CASES = [
    pytest.param(
        _x_policy(action, base),
        _x_policy(action, head),
        {(X, action, sign) for sign in verdict if sign != "="},
        id=row_id,
    )
    for row_id, action, base, head, verdict in OP_ROWS
]


# --------------------------------------------------------------------------- statement rows
# (id, base statements, head statements, expected (principal, action, sign)).

# Actions of the catalog whose name contains "key" (case-insensitive), read off the list.
KEY_ACTIONS = {
    "CancelKeyDeletion",
    "ConnectCustomKeyStore",
    "CreateCustomKeyStore",
    "CreateKey",
    "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial",
    "DescribeCustomKeyStores",
    "DescribeKey",
    "DisableKey",
    "DisableKeyRotation",
    "DisconnectCustomKeyStore",
    "EnableKey",
    "EnableKeyRotation",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GetKeyLastUsage",
    "GetKeyPolicy",
    "GetKeyRotationStatus",
    "GetPublicKey",
    "ImportKeyMaterial",
    "ListKeyPolicies",
    "ListKeyRotations",
    "ListKeys",
    "PutKeyPolicy",
    "ReplicateKey",
    "RotateKeyOnDemand",
    "ScheduleKeyDeletion",
    "SynchronizeMultiRegionKey",
    "UpdateCustomKeyStore",
    "UpdateKeyDescription",
}
LIST_ACTIONS = {
    "ListAliases",
    "ListGrants",
    "ListKeyPolicies",
    "ListKeyRotations",
    "ListKeys",
    "ListResourceTags",
    "ListRetirableGrants",
}
SECURE = {"Bool": {ST: "false"}}

ROWS: list[tuple[str, list[Doc], list[Doc], Expected]] = [
    # ---- Deny with conditions against unconditional Allows (explicit Deny wins).
    # BoolIfExists false also denies a missing key; plain Bool false does not.
    (
        "deny-boolifexists-to-bool",
        [allow(X, "kms:Decrypt"), deny("*", "kms:Decrypt", {"BoolIfExists": {ST: "false"}})],
        [allow(X, "kms:Decrypt"), deny("*", "kms:Decrypt", SECURE)],
        {(X, "Decrypt", "+"), (RA, "Decrypt", "+")},
    ),
    # The Deny covers requests the Allow never allowed.
    (
        "deny-outside-the-allowed-condition",
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        [
            allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}}),
            deny(X, "kms:Decrypt", {"StringEquals": {VIA: EC2}}),
        ],
        set(),
    ),
    # X is of account B: always denied; RA (account A) never.
    (
        "deny-other-accounts-by-principal-account",
        [allow(X, "kms:Decrypt")],
        [
            allow(X, "kms:Decrypt"),
            deny("*", "kms:Decrypt", {"StringNotEquals": {"aws:PrincipalAccount": A}}),
        ],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-caller-account-b-every-action",
        [allow(X, ["kms:Decrypt", "kms:Encrypt"])],
        [
            allow(X, ["kms:Decrypt", "kms:Encrypt"]),
            deny("*", "kms:*", {"StringEquals": {"kms:CallerAccount": B}}),
        ],
        {(X, "Decrypt", "-"), (X, "Encrypt", "-")},
    ),
    (
        "deny-direct-calls",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt", {"Null": {VIA: "true"}})],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-same-condition-as-the-allow",
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        [
            allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}}),
            deny(X, "kms:Decrypt", {"StringEquals": {VIA: S3}}),
        ],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-forany-context-key",
        [allow(X, "kms:Decrypt")],
        [
            allow(X, "kms:Decrypt"),
            deny(X, "kms:Decrypt", {"ForAnyValue:StringEquals": {CTX_KEYS: "secret"}}),
        ],
        {(X, "Decrypt", "-")},
    ),
    # kms:GrantOperations is never in a Decrypt request: ForAllValues of it is true.
    (
        "deny-forall-grant-operations-on-decrypt-always-applies",
        [allow(X, "kms:Decrypt")],
        [
            allow(X, "kms:Decrypt"),
            deny(X, "kms:Decrypt", {"ForAllValues:StringEquals": {GRANT_OPS: "Decrypt"}}),
        ],
        {(X, "Decrypt", "-")},
    ),
    # ...and ForAnyValue of it false.
    (
        "deny-forany-grant-operations-on-decrypt-never-applies",
        [allow(X, "kms:Decrypt")],
        [
            allow(X, "kms:Decrypt"),
            deny(X, "kms:Decrypt", {"ForAnyValue:StringEquals": {GRANT_OPS: "Decrypt"}}),
        ],
        set(),
    ),
    (
        "deny-short-deletion-window",
        [allow(X, "kms:ScheduleKeyDeletion")],
        [
            allow(X, "kms:ScheduleKeyDeletion"),
            deny("*", "kms:ScheduleKeyDeletion", {"NumericLessThan": {WINDOW: "14"}}),
        ],
        {(X, "ScheduleKeyDeletion", "-"), (RA, "ScheduleKeyDeletion", "-")},
    ),
    # A Deny with two keys needs both; with one of them it denies more.
    (
        "deny-two-keys-to-one",
        [
            allow(X, "kms:Decrypt"),
            deny("*", "kms:Decrypt", {"StringEquals": {VIA: S3, VPC: "vpc-1"}}),
        ],
        [allow(X, "kms:Decrypt"), deny("*", "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        {(X, "Decrypt", "-"), (RA, "Decrypt", "-")},
    ),
    # Two Denies, one key each: either denies (the statements are alternatives).
    (
        "deny-keys-split-into-two-denies",
        [
            allow(X, "kms:Decrypt"),
            deny(X, "kms:Decrypt", {"StringEquals": {VIA: S3, VPC: "vpc-1"}}),
        ],
        [
            allow(X, "kms:Decrypt"),
            deny(X, "kms:Decrypt", {"StringEquals": {VIA: S3}}),
            deny(X, "kms:Decrypt", {"StringEquals": {VPC: "vpc-1"}}),
        ],
        {(X, "Decrypt", "-")},
    ),
    # A Deny naming the account root applies to the account's roles.
    (
        "deny-account-root-conditional-covers-role",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(RB, "kms:Decrypt", SECURE)],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-unconditional-shadows-conditional-allow",
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}}), deny(X, "kms:Decrypt")],
        [deny(X, "kms:Decrypt")],
        set(),
    ),
    (
        "deny-conditional-on-one-of-two-actions",
        [allow(X, ["kms:Decrypt", "kms:Encrypt"])],
        [allow(X, ["kms:Decrypt", "kms:Encrypt"]), deny(X, "kms:Encrypt", SECURE)],
        {(X, "Encrypt", "-")},
    ),
    # NotAction of a name that is no action excludes nothing: the Deny covers every action.
    (
        "deny-notaction-typo-denies-everything",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(X, None, NotAction="kms:Decrpyt")],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-misspelt-action-denies-nothing",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrpyt")],
        set(),
    ),
    (
        "deny-notaction-keeps-two",
        [allow(X, "kms:*")],
        [allow(X, "kms:*"), deny(X, None, NotAction=["kms:Decrypt", "kms:Encrypt"])],
        _all(X, ALL - {"Decrypt", "Encrypt"}, "-"),
    ),
    (
        "deny-list-star",
        [allow(X, "kms:*")],
        [allow(X, "kms:*"), deny(X, "kms:List*")],
        _all(X, LIST_ACTIONS, "-"),
    ),
    # kms:GrantIsForAWSResource is never in an Encrypt request: ...IfExists matches.
    (
        "deny-ifexists-on-a-key-encrypt-never-has",
        [allow(X, "kms:Encrypt")],
        [
            allow(X, "kms:Encrypt"),
            deny(X, "kms:Encrypt", {"BoolIfExists": {"kms:GrantIsForAWSResource": "false"}}),
        ],
        {(X, "Encrypt", "-")},
    ),
    (
        "deny-ifexists-on-unknown-key-always-applies",
        [allow(X, "kms:Decrypt")],
        [
            allow(X, "kms:Decrypt"),
            deny(X, "kms:Decrypt", {"StringEqualsIfExists": {"aws:SourceAcount": A}}),
        ],
        {(X, "Decrypt", "-")},
    ),
    # ---- NotPrincipal.
    (
        "allow-notprincipal-excludes-one-more",
        [allow(None, "kms:Decrypt", NotPrincipal={"AWS": X})],
        [allow(None, "kms:Decrypt", NotPrincipal={"AWS": [X, APP]})],
        {(APP, "Decrypt", "-")},
    ),
    (
        "allow-notprincipal-swapped",
        [allow(None, "kms:Decrypt", NotPrincipal={"AWS": X})],
        [allow(None, "kms:Decrypt", NotPrincipal={"AWS": APP})],
        {(X, "Decrypt", "+"), (APP, "Decrypt", "-")},
    ),
    # Everyone but RA loses; what "*" loses is not repeated for each named principal.
    (
        "deny-notprincipal-root-under-allow-star",
        [allow("*", "kms:Decrypt")],
        [allow("*", "kms:Decrypt"), deny(None, "kms:Decrypt", NotPrincipal={"AWS": RA})],
        {("*", "Decrypt", "-")},
    ),
    (
        "deny-notprincipal-service",
        [allow(SVC, "kms:Encrypt"), allow(X, "kms:Decrypt")],
        [
            allow(SVC, "kms:Encrypt"),
            allow(X, "kms:Decrypt"),
            deny(None, "kms:*", NotPrincipal=SVC),
        ],
        {(X, "Decrypt", "-")} | _all(RA, ALL, "-"),
    ),
    (
        "deny-notprincipal-exempts-only-those-named",
        [allow(X, "kms:Decrypt"), allow(APP, "kms:Decrypt")],
        [
            allow(X, "kms:Decrypt"),
            allow(APP, "kms:Decrypt"),
            deny(None, "kms:Decrypt", NotPrincipal={"AWS": [X, RA]}),
        ],
        {(APP, "Decrypt", "-")},
    ),
    # ---- Resource / NotResource: the key is arn:aws:kms:us-east-1:A:key/<id>.
    (
        "allow-notresource-other-account-is-this-key",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt", NotResource=f"arn:aws:kms:us-east-1:{B}:key/*")],
        set(),
    ),
    (
        "allow-notresource-this-account-keys",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt", NotResource=KEY_ARN)],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-notresource-alias-covers-the-key",
        [allow(X, "kms:Decrypt")],
        [
            allow(X, "kms:Decrypt"),
            deny(X, "kms:Decrypt", NotResource=f"arn:aws:kms:us-east-1:{A}:alias/x"),
        ],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-notresource-key-arn-never-applies",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt", NotResource=KEY_ARN)],
        set(),
    ),
    (
        "resource-any-region",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt", Resource=f"arn:aws:kms:*:{A}:key/*")],
        set(),
    ),
    (
        "resource-other-region",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt", Resource=WEST_ARN)],
        {(X, "Decrypt", "-")},
    ),
    (
        "resource-account-wide",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt", Resource=f"arn:aws:kms:us-east-1:{A}:*")],
        set(),
    ),
    (
        "resource-list-one-matches",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt", Resource=[WEST_ARN, KEY_ARN])],
        set(),
    ),
    (
        "resource-other-partition",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt", Resource="arn:aws-cn:kms:*:*:key/*")],
        {(X, "Decrypt", "-")},
    ),
    (
        "deny-resource-other-region-never-applies",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt", Resource=WEST_ARN)],
        set(),
    ),
    (
        "resource-region-question-mark",
        [allow(X, "kms:Decrypt")],
        [allow(X, "kms:Decrypt", Resource=f"arn:aws:kms:us-east-?:{A}:key/*")],
        set(),
    ),
    # ---- Action wildcards over the catalog's actions (case-insensitive).
    ("action-key-substring", [], [allow(X, "kms:*Key*")], _all(X, KEY_ACTIONS, "+")),
    (
        "action-notaction-key-substring",
        [allow(X, None, NotAction="kms:*Key*")],
        [allow(X, "kms:*")],
        _all(X, KEY_ACTIONS, "+"),
    ),
    (
        "action-reencrypt-star-to-re-star",
        [allow(X, "kms:ReEncrypt*")],
        [allow(X, "kms:Re*")],
        _all(X, {"ReplicateKey", "RetireGrant", "RevokeGrant"}, "+"),
    ),
    (
        "action-generate-star-to-one",
        [allow(X, "kms:Generate*")],
        [allow(X, "kms:GenerateDataKey")],
        _all(
            X,
            {
                "GenerateDataKeyPair",
                "GenerateDataKeyPairWithoutPlaintext",
                "GenerateDataKeyWithoutPlaintext",
                "GenerateMac",
                "GenerateRandom",
            },
            "-",
        ),
    ),
    (
        "action-grant-substring",
        [],
        [allow(X, "kms:*Grant*")],
        _all(
            X,
            {"CreateGrant", "ListGrants", "ListRetirableGrants", "RetireGrant", "RevokeGrant"},
            "+",
        ),
    ),
    (
        "action-crypt-suffix-is-two",
        [allow(X, "kms:*crypt")],
        [allow(X, ["kms:Decrypt", "kms:Encrypt"])],
        set(),
    ),
    (
        "action-crypt-suffix-to-substring",
        [allow(X, "kms:*crypt")],
        [allow(X, "kms:*crypt*")],
        _all(X, {"ReEncryptFrom", "ReEncryptTo"}, "+"),
    ),
    (
        "action-de-star-to-decrypt",
        [allow(X, "kms:De*")],
        [allow(X, "kms:Decrypt")],
        _all(
            X,
            {
                "Decapsulate",
                "DeleteAlias",
                "DeleteCustomKeyStore",
                "DeleteImportedKeyMaterial",
                "DeriveSharedSecret",
                "DescribeCustomKeyStores",
                "DescribeKey",
            },
            "-",
        ),
    ),
    ("action-wildcard-upper-case", [allow(X, "kms:Generate*")], [allow(X, "KMS:GENERATE*")], set()),
    (
        "action-encrypt-star-is-encrypt",
        [allow(X, "kms:Encrypt")],
        [allow(X, "kms:Encrypt*")],
        set(),
    ),
    (
        "action-alias-substring",
        [],
        [allow(X, "kms:*Alias*")],
        _all(X, {"CreateAlias", "DeleteAlias", "ListAliases", "UpdateAlias"}, "+"),
    ),
    # An action without the service prefix is no KMS action.
    (
        "action-without-prefix-grants-nothing",
        [allow(X, "kms:Encrypt")],
        [allow(X, ["kms:Encrypt", "Decrypt"])],
        set(),
    ),
    # Sign is the only four-letter action.
    ("action-four-question-marks", [], [allow(X, "kms:????")], {(X, "Sign", "+")}),
    (
        "action-describe-star-to-describe-key",
        [allow(X, "kms:Describe*")],
        [allow(X, "kms:DescribeKey")],
        {(X, "DescribeCustomKeyStores", "-")},
    ),
    # *able* also matches ListRetirableGrants.
    (
        "action-enable-star-to-able-substring",
        [allow(X, "kms:Enable*")],
        [allow(X, "kms:*able*")],
        _all(X, {"DisableKey", "DisableKeyRotation", "ListRetirableGrants"}, "+"),
    ),
    (
        "action-verify-star-to-mac-suffix",
        [allow(X, "kms:Verify*")],
        [allow(X, "kms:*Mac")],
        {(X, "Verify", "-"), (X, "GenerateMac", "+")},
    ),
    # ---- Principals.
    # X and the unnamed principals of B gain unconditionally; "*" when its account is B.
    (
        "principal-star-of-account-b",
        [allow(X, "kms:Encrypt")],
        [
            allow(X, "kms:Encrypt"),
            allow("*", "kms:Decrypt", {"StringEquals": {"aws:PrincipalAccount": B}}),
        ],
        {(X, "Decrypt", "+"), (OTHER_B, "Decrypt", "+"), ("*", "Decrypt", "+")},
    ),
    # RA has everything already; the other principals of A gain through a service.
    (
        "principal-star-caller-account-via-service",
        [],
        [allow("*", "kms:Decrypt", {"StringEquals": {"kms:CallerAccount": A, VIA: S3}})],
        {(OTHER_A, "Decrypt", "+"), ("*", "Decrypt", "+")},
    ),
    (
        "principal-service-list-split",
        [allow({"Service": [LOGS, "s3.amazonaws.com"]}, "kms:Encrypt")],
        [allow(SVC, "kms:Encrypt"), allow(S3_SVC, "kms:Encrypt")],
        set(),
    ),
    (
        "principal-deny-account-id-is-root",
        [allow(X, "kms:Decrypt"), deny(RB, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), deny(B, "kms:Decrypt")],
        set(),
    ),
    (
        "principal-aws-and-service-in-one",
        [allow({"AWS": X, "Service": LOGS}, "kms:Decrypt")],
        [allow(X, "kms:Decrypt"), allow(SVC, "kms:Decrypt")],
        set(),
    ),
    # The only principal whose aws:PrincipalArn is X's role ARN is X (its sessions).
    (
        "principal-star-with-principal-arn-of-x",
        [allow(X, "kms:Decrypt")],
        [
            allow(
                "*",
                "kms:Decrypt",
                {"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{B}:role/X"}},
            )
        ],
        set(),
    ),
    # Only the service LOGS has aws:PrincipalServiceName LOGS.
    (
        "principal-star-with-service-name-of-logs",
        [allow(SVC, "kms:Encrypt")],
        [allow("*", "kms:Encrypt", {"StringEquals": {"aws:PrincipalServiceName": LOGS}})],
        set(),
    ),
    (
        "principal-service-name-bound",
        [],
        [allow(SVC, "kms:Encrypt", {"StringEquals": {"aws:PrincipalServiceName": LOGS}})],
        {(LOGS, "Encrypt", "+")},
    ),
    (
        "principal-service-source-arn-narrowed",
        [allow(SVC, "kms:Encrypt", {"ArnLike": {SRC_ARN: f"arn:aws:logs:us-east-1:{A}:*"}})],
        [
            allow(
                SVC,
                "kms:Encrypt",
                {"ArnLike": {SRC_ARN: f"arn:aws:logs:us-east-1:{A}:log-group:app*"}},
            )
        ],
        {(LOGS, "Encrypt", "-")},
    ),
    # ---- Statement order, duplication, splitting: the same requests.
    (
        "deny-duplicated",
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt", SECURE)],
        [allow(X, "kms:Decrypt"), deny(X, "kms:Decrypt", SECURE), deny(X, "kms:Decrypt", SECURE)],
        set(),
    ),
    (
        "statements-reordered",
        [allow(X, ["kms:Decrypt", "kms:Encrypt"]), deny(X, "kms:Encrypt")],
        [deny(X, "kms:Encrypt"), allow(X, ["kms:Decrypt", "kms:Encrypt"])],
        set(),
    ),
    (
        "split-by-action",
        [allow(X, ["kms:Decrypt", "kms:Encrypt"])],
        [allow(X, "kms:Decrypt"), allow(X, "kms:Encrypt")],
        set(),
    ),
    (
        "split-by-principal-conditional",
        [allow([X, APP], "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        [
            allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}}),
            allow(APP, "kms:Decrypt", {"StringEquals": {VIA: S3}}),
        ],
        set(),
    ),
    (
        "split-by-resource",
        [allow(X, "kms:Decrypt", Resource=[KEY_ARN, WEST_ARN])],
        [allow(X, "kms:Decrypt", Resource=KEY_ARN), allow(X, "kms:Decrypt", Resource=WEST_ARN)],
        set(),
    ),
    (
        "split-deny-by-action",
        [allow(X, "kms:*"), deny(X, ["kms:Decrypt", "kms:Encrypt"])],
        [allow(X, "kms:*"), deny(X, "kms:Decrypt"), deny(X, "kms:Encrypt")],
        set(),
    ),
    (
        "split-deny-by-value",
        [allow(X, "kms:Decrypt"), deny("*", "kms:Decrypt", {"StringEquals": {VIA: [S3, EC2]}})],
        [
            allow(X, "kms:Decrypt"),
            deny("*", "kms:Decrypt", {"StringEquals": {VIA: S3}}),
            deny("*", "kms:Decrypt", {"StringEquals": {VIA: EC2}}),
        ],
        set(),
    ),
    # Two Allows are alternatives (OR); one Allow with both conditions needs both (AND).
    (
        "merge-two-conditional-allows-is-and",
        [
            allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}}),
            allow(X, "kms:Decrypt", {"Bool": {ST: "true"}}),
        ],
        [allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}, "Bool": {ST: "true"}})],
        {(X, "Decrypt", "-")},
    ),
    (
        "sid-renamed",
        [allow(X, "kms:Decrypt", Sid="One")],
        [allow(X, "kms:Decrypt", Sid="Two")],
        set(),
    ),
    ("root-statement-duplicated", [], [ROOT], set()),
    # "missing" or "S3", as two Allows, is StringEqualsIfExists S3.
    (
        "null-true-or-equals-is-ifexists",
        [
            allow(X, "kms:Decrypt", {"Null": {VIA: "true"}}),
            allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}}),
        ],
        [allow(X, "kms:Decrypt", {"StringEqualsIfExists": {VIA: S3}})],
        set(),
    ),
    (
        "conditional-allow-under-unconditional-removed",
        [allow(X, "kms:Decrypt"), allow(X, "kms:Decrypt", {"StringEquals": {VIA: S3}})],
        [allow(X, "kms:Decrypt")],
        set(),
    ),
]

STATEMENT_CASES = [
    pytest.param(pol(*b), pol(*h), expected, id=row_id) for row_id, b, h, expected in ROWS
]


def pol_2008(*statements: Doc) -> Doc:
    return {"Version": "2008-10-17", "Statement": [ROOT, *statements]}


# Version 2008-10-17 has no policy variables: ${*} is text, and its * a wildcard.
VERSION_CASES = [
    pytest.param(
        pol_2008(allow(X, "kms:Decrypt", c("StringLike", VIA, "a${*}"))),
        pol_2008(allow(X, "kms:Decrypt", c("StringEquals", VIA, "a${*}"))),
        {(X, "Decrypt", "-")},
        id="version-2008-escape-is-text",
    ),
    # The same Condition, read under each Version: "a*" (2012) vs "a${" ... "}" (2008).
    pytest.param(
        pol(allow(X, "kms:Decrypt", c("StringLike", VIA, "a${*}"))),
        pol_2008(allow(X, "kms:Decrypt", c("StringLike", VIA, "a${*}"))),
        {(X, "Decrypt", "+"), (X, "Decrypt", "-")},
        id="version-changes-the-escape",
    ),
    pytest.param(
        pol_2008(allow(X, "kms:Decrypt", c("StringEquals", VIA, "a"))),
        pol(allow(X, "kms:Decrypt", c("StringEquals", VIA, "a"))),
        set(),
        id="version-without-escapes-is-no-change",
    ),
]
CORPUS_CASES = OP_CASES + STATEMENT_CASES + VERSION_CASES


@pytest.mark.parametrize(("base", "head", "expected"), CORPUS_CASES)
def test_more_verdicts_worked_out_by_hand(base: Doc, head: Doc, expected: Expected) -> None:
    assert verdicts(base, head) == expected


@pytest.mark.parametrize(("base", "head", "expected"), CORPUS_CASES)
def test_more_verdicts_mirrored(base: Doc, head: Doc, expected: Expected) -> None:
    assert verdicts(head, base) == _mirror(expected)


def _pair(param: Any) -> tuple[str, ...]:
    base, head, _ = param.values
    return tuple(sorted(policy.canonical_json(d) for d in (base, head)))


def test_at_least_300_distinct_pairs_worked_out_by_hand() -> None:
    """Rows of both files, each counted once: a row that repeats another (or its mirror)
    in canonical form does not count, and mirrored checks are not counted at all."""
    rows = ALL_CASES + CORPUS_CASES
    ids = [p.id for p in rows]
    assert len(set(ids)) == len(ids)
    distinct = {_pair(p) for p in rows}
    assert len(distinct) >= 300, len(distinct)
