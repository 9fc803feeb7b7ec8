"""Unit tests of reconciler.policy: canonical form, statement diff, access analysis.

Policies are the examples of the KMS guide (shared/guides/003_*.txt): "Example 1:
Application-Specific Key Policy", "Example 2: Cross-Account Access Policy" and "Example 3:
Time-Based Access Policy" (with its "Emergency access outside business hours" statement).
"""

from __future__ import annotations

import ast
import collections
import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler import catalog
from reconciler import policy as policy_module
from reconciler.policy import (
    ALL_KMS_ACTIONS,
    AccessChange,
    Canonicals,
    Grant,
    StatementChange,
    access,
    access_changes,
    can_manage_policy,
    canonical_json,
    canonicalize,
    denied,
    diff_statements,
    expand_actions,
    policies_equal,
    removes_access,
    validate_policy,
)

ACCOUNT = "123456789012"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
WEB_ROLE = f"arn:aws:iam::{ACCOUNT}:role/WebApplicationRole"
JOB_ROLE = f"arn:aws:iam::{ACCOUNT}:role/BackgroundJobRole"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/AdminRole"
ADMIN_USER = f"arn:aws:iam::{ACCOUNT}:user/admin1"
VIA_S3 = ["s3.us-east-1.amazonaws.com", "s3.us-west-2.amazonaws.com"]

Doc = dict[str, Any]

ROOT_STATEMENT: Doc = {
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Principal": {"AWS": ROOT},
    "Action": "kms:*",
    "Resource": "*",
}

DEFAULT_POLICY: Doc = {"Version": "2012-10-17", "Id": "key-policy-1", "Statement": [ROOT_STATEMENT]}

USE_ACTIONS = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
]
ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
]

# Example 1: Application-Specific Key Policy
APP_POLICY: Doc = {
    "Version": "2012-10-17",
    "Id": "application-key-policy",
    "Statement": [
        ROOT_STATEMENT,
        {
            "Sid": "Allow application role to use the key",
            "Effect": "Allow",
            "Principal": {"AWS": [WEB_ROLE, JOB_ROLE]},
            "Action": USE_ACTIONS,
            "Resource": "*",
        },
        {
            "Sid": "Allow administrators to manage the key",
            "Effect": "Allow",
            "Principal": {"AWS": [ADMIN_USER, ADMIN_ROLE]},
            "Action": ADMIN_ACTIONS,
            "Resource": "*",
        },
        {
            "Sid": "Allow CloudTrail to describe key",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": ["kms:DescribeKey", "kms:GetKeyPolicy"],
            "Resource": "*",
        },
    ],
}

# The same policy without the root delegation statement: admin + user roles only.
APP_POLICY_NO_ROOT: Doc = {**APP_POLICY, "Statement": APP_POLICY["Statement"][1:]}

# Example 2: Cross-Account Access Policy
CROSS_ACCOUNT_POLICY: Doc = {
    "Version": "2012-10-17",
    "Id": "cross-account-key-policy",
    "Statement": [
        ROOT_STATEMENT,
        {
            "Sid": "Allow cross-account access",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::987654321098:root",
                    "arn:aws:iam::111122223333:role/CrossAccountRole",
                ]
            },
            "Action": USE_ACTIONS,
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": VIA_S3}},
        },
        {
            "Sid": "Restrict to specific encryption context",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::987654321098:role/DataProcessingRole"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:EncryptionContext:Department": "Finance",
                    "kms:EncryptionContext:Project": "DataAnalytics",
                }
            },
        },
    ],
}

EMERGENCY_STATEMENT: Doc = {
    "Sid": "Emergency access outside business hours",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/EmergencyRole"},
    "Action": ["kms:Decrypt", "kms:DescribeKey"],
    "Resource": "*",
    "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
}

# Example 3: Time-Based Access Policy
TIME_BASED_POLICY: Doc = {
    "Version": "2012-10-17",
    "Id": "time-based-key-policy",
    "Statement": [
        ROOT_STATEMENT,
        {
            "Sid": "Allow access during business hours only",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/BusinessHoursRole"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {
                "DateGreaterThan": {"aws:CurrentTime": "08:00Z"},
                "DateLessThan": {"aws:CurrentTime": "18:00Z"},
                "ForAllValues:StringEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]},
            },
        },
        EMERGENCY_STATEMENT,
    ],
}

GUIDE_POLICIES = [DEFAULT_POLICY, APP_POLICY, CROSS_ACCOUNT_POLICY, TIME_BASED_POLICY]
GUIDE_IDS = ["default", "application", "cross-account", "time-based"]

DENY_PUT_POLICY_FOR_ALL: Doc = {
    "Sid": "NoPolicyChanges",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "kms:PutKeyPolicy",
    "Resource": "*",
}


def edit(doc: Doc, change: Callable[[Doc], None]) -> Doc:
    """A deep copy of ``doc`` with ``change`` applied to it."""
    copied = copy.deepcopy(doc)
    change(copied)
    return copied


def policy(*statements: Doc, **top: Any) -> Doc:
    return {"Version": "2012-10-17", **top, "Statement": list(statements)}


def allow(principal: Any, action: Any, **extra: Any) -> Doc:
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*", **extra}


def deny(principal: Any, action: Any, **extra: Any) -> Doc:
    return {"Effect": "Deny", "Principal": principal, "Action": action, "Resource": "*", **extra}


def kms(*names: str) -> frozenset[str]:
    return frozenset(f"kms:{name}" for name in names)


USE_EXPANDED = kms(
    "Encrypt",
    "Decrypt",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "DescribeKey",
)


# --------------------------------------------------------------------------- equality


def _reverse_statements(doc: Doc) -> None:
    doc["Statement"].reverse()


def _reverse_keys(doc: Doc) -> None:
    doc["Statement"] = [dict(reversed(list(s.items()))) for s in doc["Statement"]]
    for key in list(doc):  # top-level keys too: re-insert in reverse order
        doc[key] = doc.pop(key)


def _app_use(doc: Doc) -> Doc:
    statement: Doc = doc["Statement"][1]
    return statement


EQUAL_CASES: list[tuple[Doc, Doc, str]] = [
    (APP_POLICY, edit(APP_POLICY, _reverse_statements), "aws"),
    (CROSS_ACCOUNT_POLICY, edit(CROSS_ACCOUNT_POLICY, _reverse_keys), "aws"),
    (
        json.loads(json.dumps(TIME_BASED_POLICY)),
        json.loads(json.dumps(TIME_BASED_POLICY, indent=4, sort_keys=True)),
        "aws",
    ),
    (
        policy(allow({"AWS": ROOT}, "kms:Encrypt", Sid="S")),
        policy(allow({"AWS": [ROOT]}, ["kms:Encrypt"], Sid="S")),
        "aws",
    ),
    (
        policy(allow({"AWS": WEB_ROLE}, "kms:Decrypt")),
        policy({**allow({"AWS": WEB_ROLE}, "kms:Decrypt"), "Resource": ["*"]}),
        "aws",
    ),
    (
        CROSS_ACCOUNT_POLICY,
        edit(
            CROSS_ACCOUNT_POLICY,
            lambda d: d["Statement"][2]["Condition"].update(
                StringEquals={
                    "kms:EncryptionContext:Department": ["Finance"],
                    "kms:EncryptionContext:Project": ["DataAnalytics"],
                }
            ),
        ),
        "aws",
    ),
    (
        DEFAULT_POLICY,
        edit(DEFAULT_POLICY, lambda d: d["Statement"][0].update(Principal={"AWS": ACCOUNT})),
        "aws",
    ),
    (
        policy(allow({"AWS": ACCOUNT}, "kms:*")),
        policy(allow({"AWS": f"arn:aws-cn:iam::{ACCOUNT}:root"}, "kms:*")),
        "aws-cn",
    ),
    (
        APP_POLICY,
        edit(
            APP_POLICY,
            lambda d: _app_use(d).update(
                Action=[*USE_ACTIONS, "kms:Encrypt", "kms:Decrypt"],
                Principal={"AWS": [WEB_ROLE, JOB_ROLE, WEB_ROLE]},
            ),
        ),
        "aws",
    ),
    (APP_POLICY, edit(APP_POLICY, lambda d: d["Statement"].append(ROOT_STATEMENT)), "aws"),
    (
        policy(allow({"AWS": WEB_ROLE}, ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"])),
        policy(allow({"AWS": WEB_ROLE}, ["kms:encrypt", "KMS:DECRYPT", "kms:generatedatakey"])),
        "aws",
    ),
    (
        policy(allow({"AWS": WEB_ROLE}, "kms:GenerateDataKey*")),
        policy(allow({"AWS": WEB_ROLE}, "KMS:GenerateDataKey*")),
        "aws",
    ),
    (
        CROSS_ACCOUNT_POLICY,
        edit(
            CROSS_ACCOUNT_POLICY,
            lambda d: d["Statement"][1].update(
                Condition={"StringEquals": {"kms:viaservice": list(reversed(VIA_S3))}}
            ),
        ),
        "aws",
    ),
    (
        TIME_BASED_POLICY,
        edit(
            TIME_BASED_POLICY,
            lambda d: d["Statement"][2].update(
                Condition={"Bool": {"aws:MultiFactorAuthPresent": True}}
            ),
        ),
        "aws",
    ),
    (
        policy(
            allow(
                "*",
                "kms:Decrypt",
                Condition={"NumericLessThanEquals": {"aws:MultiFactorAuthAge": "3600"}},
            )
        ),
        policy(
            allow(
                "*",
                "kms:Decrypt",
                Condition={"NumericLessThanEquals": {"aws:MultiFactorAuthAge": 3600}},
            )
        ),
        "aws",
    ),
    (policy(allow("*", "kms:Decrypt")), policy(allow({"AWS": "*"}, "kms:Decrypt")), "aws"),
    (
        {"Version": "2012-10-17", "Statement": ROOT_STATEMENT},
        {"Version": "2012-10-17", "Statement": [ROOT_STATEMENT]},
        "aws",
    ),
    (policy(ROOT_STATEMENT), policy({**ROOT_STATEMENT, "Condition": {}}), "aws"),
]
EQUAL_IDS = [
    "statement-order",
    "key-order",
    "json-formatting",
    "scalar-vs-list-action-and-principal",
    "scalar-vs-list-resource",
    "scalar-vs-list-condition-value",
    "account-id-vs-root-arn",
    "account-id-vs-root-arn-aws-cn",
    "duplicate-list-entries",
    "duplicate-statement",
    "action-name-casing",
    "service-prefix-casing-of-pattern",
    "condition-key-casing-and-value-order",
    "boolean-vs-string-true",
    "number-vs-string",
    "aws-star-vs-star",
    "single-statement-object-vs-list",
    "empty-condition-vs-none",
]


@pytest.mark.parametrize(("a", "b", "partition"), EQUAL_CASES, ids=EQUAL_IDS)
def test_cosmetic_differences_are_equal(a: Doc, b: Doc, partition: str) -> None:
    assert policies_equal(a, b, partition=partition)
    assert canonical_json(a, partition=partition) == canonical_json(b, partition=partition)
    assert diff_statements(a, b, partition=partition) == ()
    assert access_changes(a, b, partition=partition) == ()
    assert not removes_access(a, b, partition=partition)


UNEQUAL_CASES: list[tuple[Doc, Doc, str]] = [
    (
        APP_POLICY,
        edit(APP_POLICY, lambda d: _app_use(d)["Action"].append("kms:CreateGrant")),
        "aws",
    ),
    (
        APP_POLICY,
        edit(APP_POLICY, lambda d: _app_use(d).update(Principal={"AWS": [WEB_ROLE, ADMIN_ROLE]})),
        "aws",
    ),
    (APP_POLICY, edit(APP_POLICY, lambda d: _app_use(d).update(Effect="Deny")), "aws"),
    (
        CROSS_ACCOUNT_POLICY,
        edit(CROSS_ACCOUNT_POLICY, lambda d: d["Statement"][1].pop("Condition")),
        "aws",
    ),
    (APP_POLICY, edit(APP_POLICY, lambda d: _app_use(d).update(Sid="AllowUse")), "aws"),
    (
        policy(allow({"AWS": ACCOUNT}, "kms:*")),
        policy(allow({"AWS": ROOT}, "kms:*")),
        "aws-cn",
    ),
    (
        policy(allow({"AWS": ROOT}, "kms:*")),
        policy(allow({"AWS": WEB_ROLE}, "kms:*")),
        "aws",
    ),
    (
        CROSS_ACCOUNT_POLICY,
        edit(
            CROSS_ACCOUNT_POLICY,
            lambda d: d["Statement"][2]["Condition"]["StringEquals"].update(
                {"kms:EncryptionContext:Department": "finance"}
            ),
        ),
        "aws",
    ),
    (
        APP_POLICY,
        edit(
            APP_POLICY,
            lambda d: d["Statement"][3].update(Principal={"Service": "logs.amazonaws.com"}),
        ),
        "aws",
    ),
    (DEFAULT_POLICY, {**DEFAULT_POLICY, "Version": "2008-10-17"}, "aws"),
    (policy(allow("*", "kms:Decrypt")), policy(allow({"Service": "*"}, "kms:Decrypt")), "aws"),
]
UNEQUAL_IDS = [
    "added-action",
    "changed-principal",
    "changed-effect",
    "removed-condition",
    "changed-sid",
    "root-arn-of-other-partition",
    "root-vs-role",
    "condition-value-case-matters",
    "changed-service-principal",
    "changed-version",
    "service-star-is-not-star",
]


@pytest.mark.parametrize(("a", "b", "partition"), UNEQUAL_CASES, ids=UNEQUAL_IDS)
def test_real_changes_are_not_equal(a: Doc, b: Doc, partition: str) -> None:
    assert not policies_equal(a, b, partition=partition)
    assert canonical_json(a, partition=partition) != canonical_json(b, partition=partition)
    assert diff_statements(a, b, partition=partition) != ()


def test_canonical_form_of_a_messy_statement() -> None:
    doc = {
        "Statement": {
            "Sid": "Use",
            "Effect": "Allow",
            "Principal": {"AWS": [WEB_ROLE, ACCOUNT, WEB_ROLE], "Service": "logs.amazonaws.com"},
            "Action": ["kms:decrypt", "KMS:Encrypt", "kms:GenerateDataKey*", "kms:Decrypt"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"},
                "Bool": {"aws:SecureTransport": True},
                "NumericLessThan": {"aws:MultiFactorAuthAge": [300, "60"]},
                "StringLike": {},
            },
        },
        "Id": "k",
    }
    assert canonicalize(doc) == {
        "Id": "k",
        "Statement": [
            {
                "Sid": "Use",
                "Effect": "Allow",
                "Principal": {"AWS": [WEB_ROLE, ROOT], "Service": ["logs.amazonaws.com"]},
                "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"],
                "Resource": ["*"],
                "Condition": {
                    "StringEquals": {"kms:viaservice": ["s3.us-east-1.amazonaws.com"]},
                    "Bool": {"aws:securetransport": ["true"]},
                    "NumericLessThan": {"aws:multifactorauthage": ["300", "60"]},
                },
            }
        ],
    }


def test_canonical_json_is_compact_and_sorted() -> None:
    text = canonical_json({"Version": "2012-10-17", "Statement": [allow("*", "kms:Decrypt")]})
    assert text == (
        '{"Statement":[{"Action":["kms:Decrypt"],"Effect":"Allow","Principal":"*",'
        '"Resource":["*"]}],"Version":"2012-10-17"}'
    )


@pytest.mark.parametrize(
    "doc",
    [a for a, _, _ in EQUAL_CASES]
    + [b for _, b, _ in EQUAL_CASES]
    + [
        {"Statement": []},
        {"Version": "2012-10-17"},
        {"Statement": [ROOT_STATEMENT, "text", 3]},
        # a field holding the splice marker itself: the shortcut must not be taken
        {"Id": "\x00statements\x00", "Version": "2012-10-17", "Statement": [ROOT_STATEMENT]},
        {"Version": "2012-10-17", "Statement": ROOT_STATEMENT, "Zz": "\x00statements\x00"},
    ],
)
def test_canonical_json_is_the_canonical_form_as_json(doc: Doc) -> None:
    # canonical_json splices the statements' JSON into the top level's; it must be the
    # same text as encoding the canonical form whole
    expected = json.dumps(canonicalize(doc), sort_keys=True, separators=(",", ":"))
    assert canonical_json(doc) == expected
    assert json.loads(canonical_json(doc)) == canonicalize(doc)


def test_the_statement_memo_tells_apart_what_json_text_would_not() -> None:
    # the memo of canonical statements is keyed by repr: true, 1 and "true" are one JSON
    # token apart but IAM compares strings, so true == "true" != 1
    def with_value(value: Any) -> Doc:
        condition = {"Bool": {"aws:SecureTransport": value}}
        return policy({**ROOT_STATEMENT, "Condition": condition})

    values = (True, 1, "true", 1.0, "1")
    memo: dict[str, str] = {}
    texts = {repr(v): canonical_json(with_value(v), memo=memo) for v in values}
    assert texts["True"] == texts["'true'"]
    assert texts["1"] == texts["'1'"]
    assert texts["True"] != texts["1"]
    assert texts["1.0"] not in (texts["1"], texts["True"])
    assert len(memo) == len(values)  # one statement per value: none taken for another
    for value in values:  # memo hits give the text without a memo
        assert canonical_json(with_value(value), memo=memo) == canonical_json(with_value(value))


def test_the_plan_canonicalises_each_policy_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.policy as policy_module
    from reconciler.planner import make_plan
    from tests.factories import ROOT_POLICY, desired, desired_key, observed, observed_key

    calls: list[int] = []
    real = policy_module.canonical_json

    def counting(doc: Doc, *, partition: str = "aws", **memo: Any) -> str:
        calls.append(id(doc))
        return real(doc, partition=partition, **memo)

    monkeypatch.setattr(policy_module, "canonical_json", counting)
    names = [f"k{i}" for i in range(5)]
    want = desired(*(desired_key(n, policy=policy(ROOT_STATEMENT)) for n in names))
    have = observed(*(observed_key(n, policy=policy(ROOT_STATEMENT)) for n in names))
    plan = make_plan(want, have)
    assert not plan.operations
    # the observed side once (the comparison and the fingerprint share it); the desired
    # side is the same document, only strings: never canonicalised (Canonicals.equal)
    assert len(calls) == len(names) and len(set(calls)) == len(calls)
    assert set(calls) == {id(k.policy) for k in have.keys}

    calls.clear()
    secure = "aws:SecureTransport"
    (root,) = ROOT_POLICY["Statement"]  # the factories' account: no lockout
    changed = policy(root, allow({"AWS": WEB_ROLE}, "kms:Decrypt"))
    as_bool, as_int = (
        policy(root, allow({"AWS": WEB_ROLE}, "kms:Decrypt", Condition={"Bool": {secure: v}}))
        for v in (True, 1)
    )
    assert as_bool == as_int  # in Python; not in IAM ("true" is not "1")
    want = desired(desired_key("k0", policy=changed), desired_key("k1", policy=as_int))
    have = observed(observed_key("k0", policy=policy(root)), observed_key("k1", policy=as_bool))
    plan = make_plan(want, have)
    assert [op.key for op in plan.operations] == ["k0", "k1"]
    # a changed policy: each side once
    assert len(calls) == 4 and len(set(calls)) == len(calls)


def _all_test_documents() -> list[Doc]:
    """Every policy document of this module's tables and the semantics corpora."""
    from tests.test_semantics import ALL_CASES
    from tests.test_semantics_corpus import CORPUS_CASES

    docs: list[Doc] = [*GUIDE_POLICIES]
    docs += [d for a, b, _ in EQUAL_CASES + UNEQUAL_CASES for d in (a, b)]
    docs += [d for p in ALL_CASES + CORPUS_CASES for d in p.values[:2] if d is not None]
    docs += [
        {"Statement": []},
        {"Statement": [ROOT_STATEMENT, "text", 3, ROOT_STATEMENT]},
        {"Id": "\x00statements\x00", "Version": "2012-10-17", "Statement": [ROOT_STATEMENT]},
        # the same statement, its keys in another order: one canonical text, two dicts
        policy(dict(reversed(list(ROOT_STATEMENT.items()))), ROOT_STATEMENT),
    ]
    return docs


@pytest.mark.parametrize("recent", [2, Canonicals.RECENT_STATEMENTS])
def test_a_plans_canonical_forms_are_canonicalize_exactly(
    recent: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Canonicals.form takes each statement's canonical form from its memo (by repr): it
    # must give what canonicalize gives, down to the keys' order (the plan's JSON shows
    # it), whether the statement was memoised, evicted (recent=2) or never seen
    monkeypatch.setattr(Canonicals, "RECENT_STATEMENTS", recent)
    docs = _all_test_documents()
    canonicals = Canonicals()
    for doc in docs[: len(docs) // 2]:  # json's memo knows half of them first
        canonicals.json(doc)
    for doc in docs + docs[::-1]:
        form, texts = canonicals._canonicalize(doc)
        expected = canonicalize(doc)
        assert repr(form) == repr(expected), doc
        assert texts == [
            json.dumps(s, sort_keys=True, separators=(",", ":")) for s in expected["Statement"]
        ]
        assert canonicals.json(doc) == canonical_json(doc)
    assert len(canonicals._statement_forms) <= recent


def test_the_forms_memo_tells_apart_what_json_text_would_not() -> None:
    # keyed by repr, as json's memo: true, 1, 1.0 and "true" are different statements,
    # and so are two orders of one statement's keys
    def with_value(value: Any) -> Doc:
        return policy({**ROOT_STATEMENT, "Condition": {"Bool": {"aws:SecureTransport": value}}})

    docs = [with_value(v) for v in (True, 1, "true", 1.0, "1")]
    docs.append(policy(dict(reversed(list(ROOT_STATEMENT.items())))))
    docs.append(policy(ROOT_STATEMENT))
    canonicals = Canonicals()
    for _ in range(2):  # the second round from the memo
        for doc in docs:
            assert repr(canonicals.form(doc)) == repr(canonicalize(doc))
            canonicals._forms.clear()


def test_a_statement_in_many_policies_is_canonicalised_once_a_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the statements a template renders into every key: one canonical statement, shared
    calls: list[Any] = []
    real = policy_module._canonical_any_statement

    def counting(statement: Any, partition: str) -> dict[str, Any]:
        calls.append(statement)
        return real(statement, partition)

    monkeypatch.setattr(policy_module, "_canonical_any_statement", counting)
    canonicals = Canonicals()
    role = f"arn:aws:iam::{ACCOUNT}:role/"
    docs = [
        policy(dict(ROOT_STATEMENT), allow({"AWS": f"{role}R{i}"}, "kms:Decrypt"))
        for i in range(20)
    ]
    forms = [canonicals.form(doc) for doc in docs]
    assert len(calls) == 1 + len(docs)  # the root statement once, each role's once
    root = [s for f in forms for s in f["Statement"] if s["Principal"] == {"AWS": [ROOT]}]
    assert len(root) == len(docs) and all(s is root[0] for s in root)

    # a changed key: the planner compares (json) its policies, then reads their forms;
    # the forms take the statements json made
    calls.clear()
    canonicals = Canonicals()
    for doc in docs:
        canonicals.json(doc)
        canonicals.form(doc)
    assert len(calls) == 1 + len(docs)


def _reordered(value: Any) -> Any:
    """The same JSON value, every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: _reordered(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


def _equal_pairs() -> list[tuple[Doc, Doc]]:
    """Pairs for Canonicals.equal: each test document with its copy, with its keys
    reordered, with each scalar spelled as another type that Python takes as equal, and
    the hand-worked pairs of the tables and corpora, both ways."""
    from tests.test_semantics import ALL_CASES
    from tests.test_semantics_corpus import CORPUS_CASES

    pairs: list[tuple[Doc, Doc]] = []
    for doc in _all_test_documents():
        pairs += [(doc, copy.deepcopy(doc)), (doc, _reordered(doc)), (_reordered(doc), doc)]
    hand = [(a, b) for a, b, _ in EQUAL_CASES + UNEQUAL_CASES]
    hand += [tuple(p.values[:2]) for p in ALL_CASES + CORPUS_CASES if None not in p.values[:2]]
    pairs += hand + [(b, a) for a, b in hand]
    # == in Python, not in IAM: true / 1 / 1.0, false / 0 / 0.0 / -0.0
    for one, other in [(True, 1), (1, 1.0), (True, 1.0), (False, 0), (0, 0.0), (0.0, -0.0)]:
        for where in ("Condition", "Extra", "Top"):
            docs = []
            for value in (one, other):
                statement = dict(ROOT_STATEMENT)
                if where == "Condition":
                    statement["Condition"] = {"Bool": {"aws:SecureTransport": value}}
                elif where == "Extra":
                    statement["Extra"] = [value]
                docs.append(policy(statement, **({"Top": value} if where == "Top" else {})))
            assert docs[0] == docs[1]
            pairs += [(docs[0], docs[1]), (docs[1], docs[0])]
    return pairs


def test_equal_is_the_canonical_texts_compared() -> None:
    # Canonicals.equal skips canonicalising the second document when it == an only-strings
    # first one: its answer must be the canonical texts compared, every time
    pairs = _equal_pairs()
    shared = Canonicals()
    for a, b in pairs:
        expected = canonical_json(a) == canonical_json(b)
        assert Canonicals().equal(a, b) is expected, (a, b)
        assert shared.equal(a, b) is expected, (a, b)
    # the pairs include some that Python takes as equal and the canonical form does not
    assert any(canonical_json(a) != canonical_json(b) and a == b for a, b in pairs)


def test_equal_does_not_canonicalise_a_copy_of_an_only_strings_document() -> None:
    canonicals = Canonicals()
    doc = APP_POLICY
    assert _all_strings(doc)
    same = _reordered(copy.deepcopy(doc))
    assert canonicals.equal(doc, same)
    assert id(doc) in canonicals._memo and id(same) not in canonicals._memo
    with_bool = policy({**ROOT_STATEMENT, "Condition": {"Bool": {"aws:SecureTransport": True}}})
    assert canonicals.equal(with_bool, copy.deepcopy(with_bool))
    assert len(canonicals._memo) == 3  # not only strings: both sides canonicalised


def _all_strings(value: Any) -> bool:
    """_only_strings, written plainly (recursive): dicts and lists exactly, str leaves."""
    if type(value) is dict:
        return all(type(k) is str and _all_strings(v) for k, v in value.items())
    if type(value) is list:
        return all(_all_strings(v) for v in value)
    return type(value) is str


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", True),
        ({"a": ["b", {"c": "d"}], "e": []}, True),
        ({}, True),
        ({"a": ["b", 1]}, False),
        ({"a": True}, False),
        ({"a": None}, False),
        ({"a": 1.0}, False),
        ({"a": [["b"], [False]]}, False),
        ({1: "a"}, False),
        ({"a": ("b",)}, False),  # not what json.loads makes: no shortcut
        (collections.OrderedDict(a="b"), False),
    ],
    ids=[
        "string",
        "nested",
        "empty",
        "int-in-list",
        "bool",
        "null",
        "float",
        "deep-bool",
        "int-key",
        "tuple",
        "dict-subclass",
    ],
)
def test_only_strings(value: Any, expected: bool) -> None:
    assert policy_module._only_strings(value) is expected
    assert _all_strings(value) is expected


def test_canonicalize_does_not_change_its_input_and_shares_nothing_with_it() -> None:
    doc = policy({**ROOT_STATEMENT, "Extra": {"tags": ["a"]}}, Meta={"owner": ["team"]})
    original = copy.deepcopy(doc)
    canonical = canonicalize(doc)
    assert original == doc
    canonical["Statement"][0]["Extra"]["tags"].append("b")
    canonical["Meta"]["owner"].append("other")
    assert original == doc


def test_a_policy_without_statements_has_an_empty_statement_list() -> None:
    assert canonicalize({"Version": "2012-10-17"}) == {"Version": "2012-10-17", "Statement": []}


def test_canonicalize_refuses_a_document_that_is_not_an_object() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        canonicalize(["not", "an", "object"])  # type: ignore[arg-type]


def test_statements_that_are_not_objects_are_kept_and_compared() -> None:
    garbage = {"Statement": [ROOT_STATEMENT, "text", 3]}
    assert canonicalize(garbage)["Statement"][:2] == [
        {"(not an object)": "text"},
        {"(not an object)": 3},
    ]
    assert policies_equal(garbage, {"Statement": [3, "text", ROOT_STATEMENT]})
    assert not policies_equal(garbage, {"Statement": [ROOT_STATEMENT, "text"]})
    assert access(garbage) == access(DEFAULT_POLICY)


# --------------------------------------------------------------------------- statement diff

APP_USE_SID = "Allow application role to use the key"


def _app_use_changed(doc: Doc) -> None:
    use = _app_use(doc)
    use["Principal"] = {"AWS": [WEB_ROLE, f"arn:aws:iam::{ACCOUNT}:role/ReportRole"]}
    use["Action"] = ["kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    use["Condition"] = {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}


DIFF_CASES: list[tuple[Doc | None, Doc | None, list[tuple[str, str | None, tuple[str, ...]]]]] = [
    (APP_POLICY, edit(APP_POLICY, _reverse_keys), []),
    (
        APP_POLICY,
        edit(APP_POLICY, lambda d: d["Statement"].pop(3)),
        [("removed", "Allow CloudTrail to describe key", ())],
    ),
    (
        TIME_BASED_POLICY,
        edit(TIME_BASED_POLICY, lambda d: d["Statement"].pop(2)),
        [("removed", "Emergency access outside business hours", ())],
    ),
    (
        edit(TIME_BASED_POLICY, lambda d: d["Statement"].pop(2)),
        TIME_BASED_POLICY,
        [("added", "Emergency access outside business hours", ())],
    ),
    (
        APP_POLICY,
        edit(APP_POLICY, _app_use_changed),
        [
            (
                "changed",
                APP_USE_SID,
                (
                    f"Principal.AWS: - {JOB_ROLE}",
                    f"Principal.AWS: + arn:aws:iam::{ACCOUNT}:role/ReportRole",
                    "Action: - kms:Decrypt",
                    "Condition.StringEquals.kms:viaservice: + s3.us-east-1.amazonaws.com",
                ),
            )
        ],
    ),
    (
        TIME_BASED_POLICY,
        edit(
            TIME_BASED_POLICY,
            lambda d: d["Statement"][2].update(Effect="Deny", Resource=["*", "x"]),
        ),
        [
            (
                "changed",
                "Emergency access outside business hours",
                ("Effect: Allow -> Deny", "Resource: + x"),
            )
        ],
    ),
    (
        DEFAULT_POLICY,
        {**DEFAULT_POLICY, "Id": "key-default-1"},
        [("changed", "(document)", ("Id: key-policy-1 -> key-default-1",))],
    ),
    (
        policy(allow("*", "kms:Decrypt")),
        policy(allow("*", "kms:Encrypt")),
        [("removed", None, ()), ("added", None, ())],
    ),
    (
        policy(allow("*", "kms:Decrypt", Sid="B"), allow("*", "kms:Sign", Sid="A")),
        policy(
            allow("*", "kms:Decrypt", Sid="B"),
            allow({"AWS": ROOT}, "kms:Sign", Sid="A"),
            allow("*", "kms:Verify", Sid="C"),
        ),
        [("changed", "A", ("Principal: - *", f"Principal.AWS: + {ROOT}")), ("added", "C", ())],
    ),
    (
        policy(allow("*", "kms:Decrypt", Sid="X"), allow("*", "kms:Sign", Sid="Y")),
        policy(allow("*", "kms:Sign", Sid="Z"), Id="new"),
        [
            ("changed", "(document)", ("Id: (none) -> new",)),
            ("removed", "X", ()),
            ("removed", "Y", ()),
            ("added", "Z", ()),
        ],
    ),
    (None, DEFAULT_POLICY, [("added", "Enable IAM User Permissions", ())]),
    (
        APP_POLICY,
        None,
        [
            ("removed", "Allow CloudTrail to describe key", ()),
            ("removed", "Allow administrators to manage the key", ()),
            ("removed", APP_USE_SID, ()),
            ("removed", "Enable IAM User Permissions", ()),
        ],
    ),
]
DIFF_IDS = [
    "cosmetic-only",
    "removed-statement",
    "removed-emergency-access",
    "added-emergency-access",
    "changed-by-sid-principal-action-condition",
    "changed-effect-and-resource",
    "document-id",
    "no-sid-means-remove-and-add",
    "order-changed-before-added",
    "order-removed-sorted-by-sid",
    "from-no-policy",
    "to-no-policy",
]


@pytest.mark.parametrize(("before", "after", "expected"), DIFF_CASES, ids=DIFF_IDS)
def test_diff_statements(
    before: Doc | None,
    after: Doc | None,
    expected: list[tuple[str, str | None, tuple[str, ...]]],
) -> None:
    changes = diff_statements(before, after)
    assert [(c.kind, c.sid, c.details) for c in changes] == expected


def test_diff_carries_canonical_statements() -> None:
    after = edit(APP_POLICY, _app_use_changed)
    (change,) = diff_statements(APP_POLICY, after)
    assert isinstance(change, StatementChange)
    (use,) = [s for s in canonicalize(APP_POLICY)["Statement"] if s["Sid"] == APP_USE_SID]
    assert change.before == use
    assert change.after is not None
    assert change.after["Principal"] == {
        "AWS": [f"arn:aws:iam::{ACCOUNT}:role/ReportRole", WEB_ROLE]
    }
    removed = diff_statements(APP_POLICY, edit(APP_POLICY, lambda d: d["Statement"].pop(3)))
    assert removed[0].after is None
    assert removed[0].before == {
        "Sid": "Allow CloudTrail to describe key",
        "Effect": "Allow",
        "Principal": {"Service": ["cloudtrail.amazonaws.com"]},
        "Action": ["kms:DescribeKey", "kms:GetKeyPolicy"],
        "Resource": ["*"],
    }


# --------------------------------------------------------------------------- access analysis

EXPAND_CASES: list[tuple[list[str], frozenset[str]]] = [
    (["kms:*"], ALL_KMS_ACTIONS),
    (["*"], ALL_KMS_ACTIONS),
    (
        ["kms:Get*"],
        kms(
            "GetKeyLastUsage",
            "GetKeyPolicy",
            "GetKeyRotationStatus",
            "GetParametersForImport",
            "GetPublicKey",
        ),
    ),
    (
        ["kms:GenerateDataKey*"],
        kms(
            "GenerateDataKey",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext",
            "GenerateDataKeyWithoutPlaintext",
        ),
    ),
    (["kms:ReEncrypt*"], kms("ReEncryptFrom", "ReEncryptTo")),
    (["kms:encrypt", "KMS:DECRYPT"], kms("Encrypt", "Decrypt")),
    (["kms:Describe?ey"], kms("DescribeKey")),
    (["kms:*Mac"], kms("GenerateMac", "VerifyMac")),
    (["s3:*", "iam:PassRole"], frozenset()),
    (["kms:FutureAction"], frozenset({"kms:FutureAction"})),
    (USE_ACTIONS, USE_EXPANDED),
]
EXPAND_IDS = [
    "kms-star",
    "star",
    "get-star",
    "generate-data-key-star",
    "re-encrypt-star",
    "case-insensitive",
    "question-mark",
    "leading-star",
    "non-kms-ignored",
    "unknown-literal-kept",
    "guide-use-actions",
]


@pytest.mark.parametrize(("patterns", "expected"), EXPAND_CASES, ids=EXPAND_IDS)
def test_expand_actions(patterns: list[str], expected: frozenset[str]) -> None:
    assert expand_actions(patterns) == expected


def test_expand_actions_takes_a_single_string_as_one_pattern() -> None:
    assert expand_actions("kms:ReEncrypt*") == kms("ReEncryptFrom", "ReEncryptTo")


def test_all_kms_actions_is_the_catalog() -> None:
    assert len(ALL_KMS_ACTIONS) == len(catalog.KMS_ACTIONS)
    assert "kms:PutKeyPolicy" in ALL_KMS_ACTIONS


def test_access_of_the_application_policy() -> None:
    admin = expand_actions(ADMIN_ACTIONS)
    assert access(APP_POLICY) == (
        Grant(f"AWS:{ADMIN_ROLE}", admin, "", "Allow administrators to manage the key"),
        Grant(f"AWS:{JOB_ROLE}", USE_EXPANDED, "", APP_USE_SID),
        Grant(f"AWS:{WEB_ROLE}", USE_EXPANDED, "", APP_USE_SID),
        Grant(f"AWS:{ROOT}", ALL_KMS_ACTIONS, "", "Enable IAM User Permissions"),
        Grant(f"AWS:{ADMIN_USER}", admin, "", "Allow administrators to manage the key"),
        Grant(
            "Service:cloudtrail.amazonaws.com",
            kms("DescribeKey", "GetKeyPolicy"),
            "",
            "Allow CloudTrail to describe key",
        ),
    )
    assert "kms:PutKeyPolicy" in admin
    assert "kms:Decrypt" not in admin


def test_access_carries_canonical_conditions() -> None:
    grants = {g.principal: g for g in access(CROSS_ACCOUNT_POLICY)}
    cross = grants["AWS:arn:aws:iam::111122223333:role/CrossAccountRole"]
    assert cross.conditions == (
        '{"StringEquals":{"kms:viaservice":'
        '["s3.us-east-1.amazonaws.com","s3.us-west-2.amazonaws.com"]}}'
    )
    assert cross.actions == USE_EXPANDED
    assert grants[f"AWS:{ROOT}"].conditions == ""


ACCESS_CASES: list[tuple[Doc, list[tuple[str, frozenset[str], str]]]] = [
    (
        policy(allow({"AWS": ROOT}, "*")),
        [(f"AWS:{ROOT}", ALL_KMS_ACTIONS, "")],
    ),
    (
        policy(
            {
                "Effect": "Allow",
                "Principal": {"AWS": WEB_ROLE},
                "NotAction": ["kms:Put*", "kms:ScheduleKeyDeletion"],
                "Resource": "*",
            }
        ),
        [(f"AWS:{WEB_ROLE}", ALL_KMS_ACTIONS - kms("PutKeyPolicy", "ScheduleKeyDeletion"), "")],
    ),
    (
        policy(
            {
                "Effect": "Allow",
                "NotPrincipal": {"AWS": [WEB_ROLE, ROOT]},
                "Action": "kms:Decrypt",
                "Resource": "*",
            }
        ),
        [(f"NotPrincipal:AWS:{WEB_ROLE},AWS:{ROOT}", kms("Decrypt"), "")],
    ),
    (
        policy(allow({"AWS": "*"}, "kms:Decrypt"), deny("*", "kms:Decrypt")),
        [("*", kms("Decrypt"), "")],
    ),
    (policy(allow({"AWS": WEB_ROLE}, "s3:GetObject")), []),
    (
        policy(EMERGENCY_STATEMENT),
        [
            (
                f"AWS:arn:aws:iam::{ACCOUNT}:role/EmergencyRole",
                kms("Decrypt", "DescribeKey"),
                '{"Bool":{"aws:multifactorauthpresent":["true"]}}',
            )
        ],
    ),
]
ACCESS_IDS = [
    "star-action",
    "not-action",
    "not-principal",
    "aws-star-principal-and-deny-ignored",
    "no-kms-action",
    "emergency-access-condition",
]


@pytest.mark.parametrize(("doc", "expected"), ACCESS_CASES, ids=ACCESS_IDS)
def test_access(doc: Doc, expected: list[tuple[str, frozenset[str], str]]) -> None:
    assert [(g.principal, g.actions, g.conditions) for g in access(doc)] == expected


SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/WebApplicationRole/ci-run-1"

DENIED_CASES: list[tuple[Doc, str, str, bool]] = [
    (policy(ROOT_STATEMENT, DENY_PUT_POLICY_FOR_ALL), WEB_ROLE, "kms:PutKeyPolicy", True),
    (policy(ROOT_STATEMENT, DENY_PUT_POLICY_FOR_ALL), WEB_ROLE, "kms:Encrypt", False),
    (policy(deny({"AWS": WEB_ROLE}, "kms:Put*")), WEB_ROLE, "kms:PutKeyPolicy", True),
    (policy(deny({"AWS": WEB_ROLE}, "kms:putkeypolicy")), WEB_ROLE, "kms:PutKeyPolicy", True),
    (policy(deny({"AWS": WEB_ROLE}, "kms:*")), SESSION, "kms:Decrypt", True),
    (policy(deny({"AWS": WEB_ROLE}, "kms:*")), JOB_ROLE, "kms:Decrypt", False),
    (policy(deny({"AWS": ACCOUNT}, "kms:*")), WEB_ROLE, "kms:Decrypt", True),
    (
        policy(deny({"AWS": ACCOUNT}, "kms:*")),
        "arn:aws:iam::987654321098:root",
        "kms:Decrypt",
        False,
    ),
    (
        policy(deny("*", "kms:Decrypt", Condition={"Bool": {"aws:SecureTransport": "false"}})),
        WEB_ROLE,
        "kms:Decrypt",
        False,
    ),
    (
        policy(
            {
                "Effect": "Deny",
                "NotPrincipal": {"AWS": [ADMIN_ROLE, ROOT]},
                "Action": "kms:PutKeyPolicy",
                "Resource": "*",
            }
        ),
        WEB_ROLE,
        "kms:PutKeyPolicy",
        True,
    ),
    (
        policy(
            {
                "Effect": "Deny",
                "NotPrincipal": {"AWS": [ADMIN_ROLE, ROOT]},
                "Action": "kms:PutKeyPolicy",
                "Resource": "*",
            }
        ),
        ADMIN_ROLE,
        "kms:PutKeyPolicy",
        False,
    ),
    (
        policy({"Effect": "Deny", "Principal": "*", "NotAction": "kms:Decrypt", "Resource": "*"}),
        WEB_ROLE,
        "kms:Decrypt",
        False,
    ),
    (APP_POLICY, WEB_ROLE, "kms:Decrypt", False),
]
DENIED_IDS = [
    "deny-star-put-policy",
    "deny-star-other-action",
    "deny-role-wildcard-action",
    "deny-action-case-insensitive",
    "deny-role-covers-its-session",
    "deny-role-not-other-role",
    "deny-account-covers-its-roles",
    "deny-account-not-other-account",
    "conditional-deny-ignored",
    "not-principal-deny-others",
    "not-principal-deny-exempt",
    "not-action-deny",
    "allow-only-policy",
]


@pytest.mark.parametrize(("doc", "principal", "action", "expected"), DENIED_CASES, ids=DENIED_IDS)
def test_denied(doc: Doc, principal: str, action: str, expected: bool) -> None:
    assert denied(doc, principal, action) is expected


REPORT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ReportRole"
S3_CONDITION = {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
S3_CONDITION_JSON = '{"StringEquals":{"kms:viaservice":["s3.us-east-1.amazonaws.com"]}}'

CHANGE_CASES: list[tuple[Doc | None, Doc | None, list[AccessChange], bool]] = [
    (
        APP_POLICY,
        edit(APP_POLICY, lambda d: _app_use(d)["Principal"]["AWS"].append(REPORT_ROLE)),
        [AccessChange(f"AWS:{REPORT_ROLE}", USE_EXPANDED, frozenset(), "")],
        False,
    ),
    (
        APP_POLICY,
        edit(APP_POLICY, lambda d: _app_use(d)["Action"].remove("kms:Decrypt")),
        [
            AccessChange(f"AWS:{JOB_ROLE}", frozenset(), kms("Decrypt"), ""),
            AccessChange(f"AWS:{WEB_ROLE}", frozenset(), kms("Decrypt"), ""),
        ],
        True,
    ),
    (
        APP_POLICY,
        edit(APP_POLICY, lambda d: _app_use(d)["Principal"].update(AWS=WEB_ROLE)),
        [AccessChange(f"AWS:{JOB_ROLE}", frozenset(), USE_EXPANDED, "")],
        True,
    ),
    (
        APP_POLICY,
        edit(APP_POLICY, lambda d: _app_use(d).update(Condition=S3_CONDITION)),
        # A condition added narrows: requests outside it are lost, nothing is gained.
        [
            AccessChange(f"AWS:{JOB_ROLE}", frozenset(), USE_EXPANDED, ""),
            AccessChange(f"AWS:{WEB_ROLE}", frozenset(), USE_EXPANDED, ""),
        ],
        True,
    ),
    (
        APP_POLICY,
        edit(APP_POLICY, lambda d: d["Statement"].append(deny({"AWS": JOB_ROLE}, "kms:Decrypt"))),
        [AccessChange(f"AWS:{JOB_ROLE}", frozenset(), kms("Decrypt"), "")],
        True,
    ),
    (
        # Defect 8 of issue 9: access regained by removing a Deny is a widening.
        edit(APP_POLICY, lambda d: d["Statement"].append(deny({"AWS": JOB_ROLE}, "kms:Decrypt"))),
        APP_POLICY,
        [AccessChange(f"AWS:{JOB_ROLE}", kms("Decrypt"), frozenset(), "")],
        False,
    ),
    (
        APP_POLICY,
        edit(
            APP_POLICY,
            lambda d: _app_use(d).update(
                Action=[
                    "kms:generatedatakey*",
                    "kms:DescribeKey",
                    "kms:reencrypt*",
                    "kms:decrypt",
                    "kms:encrypt",
                ],
                Principal={"AWS": [JOB_ROLE, WEB_ROLE, JOB_ROLE]},
                Resource=["*"],
            ),
        ),
        [],
        False,
    ),
    (
        APP_POLICY,
        edit(APP_POLICY, lambda d: _app_use(d).update(Action="kms:*")),
        [
            AccessChange(f"AWS:{JOB_ROLE}", ALL_KMS_ACTIONS - USE_EXPANDED, frozenset(), ""),
            AccessChange(f"AWS:{WEB_ROLE}", ALL_KMS_ACTIONS - USE_EXPANDED, frozenset(), ""),
        ],
        False,
    ),
    (
        policy(allow({"AWS": ROOT}, "kms:*")),
        policy(allow({"AWS": ROOT}, "*"), allow({"AWS": ACCOUNT}, "kms:Decrypt", Sid="Dup")),
        [],
        False,
    ),
    (None, DEFAULT_POLICY, [AccessChange(f"AWS:{ROOT}", ALL_KMS_ACTIONS, frozenset(), "")], False),
    (DEFAULT_POLICY, None, [AccessChange(f"AWS:{ROOT}", frozenset(), ALL_KMS_ACTIONS, "")], True),
]
CHANGE_IDS = [
    "added-principal",
    "removed-action",
    "removed-principal",
    "added-condition",
    "added-deny",
    "removed-deny",
    "cosmetic-rewrite",
    "widened-to-kms-star",
    "star-vs-kms-star-and-overlap",
    "from-no-policy",
    "to-no-policy",
]


@pytest.mark.parametrize(
    ("before", "after", "expected", "destructive"), CHANGE_CASES, ids=CHANGE_IDS
)
def test_access_changes_and_removes_access(
    before: Doc | None, after: Doc | None, expected: list[AccessChange], destructive: bool
) -> None:
    found = access_changes(before, after)
    assert [replace(c, witness="") for c in found] == expected
    assert all(c.witness.startswith(("newly allowed: ", "newly denied: ")) for c in found)
    assert removes_access(before, after) is destructive


def test_a_widened_deny_takes_access_only_from_who_it_newly_names() -> None:
    both = policy(ROOT_STATEMENT, allow({"AWS": [JOB_ROLE, WEB_ROLE]}, "kms:Decrypt"))
    before = edit(both, lambda d: d["Statement"].append(deny({"AWS": JOB_ROLE}, "kms:Decrypt")))
    after = edit(
        both, lambda d: d["Statement"].append(deny({"AWS": [JOB_ROLE, WEB_ROLE]}, "kms:Decrypt"))
    )
    (change,) = access_changes(before, after)
    assert (change.principal, change.gained, change.lost) == (
        f"AWS:{WEB_ROLE}",
        frozenset(),
        kms("Decrypt"),
    )
    assert change.witness == (
        f"newly denied: {WEB_ROLE} may no longer call kms:Decrypt (any request)"
    )
    assert removes_access(before, after)


def test_a_deny_that_takes_nothing_away_is_not_destructive() -> None:
    before = policy(ROOT_STATEMENT, allow({"AWS": JOB_ROLE}, "kms:Decrypt"))
    after = edit(before, lambda d: d["Statement"].append(deny({"AWS": WEB_ROLE}, "kms:Decrypt")))
    assert access_changes(before, after) == ()
    assert not removes_access(before, after)


# --------------------------------------------------------------------------- lockout check

ADMIN_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/AdminRole/deploy-42"

MANAGE_CASES: list[tuple[Doc, list[str], str, str, bool]] = [
    (DEFAULT_POLICY, [], ACCOUNT, "aws", True),
    (policy(allow({"AWS": ACCOUNT}, "kms:*")), [], ACCOUNT, "aws", True),
    (DEFAULT_POLICY, [], "987654321098", "aws", False),
    (APP_POLICY_NO_ROOT, [ADMIN_ROLE], ACCOUNT, "aws", True),
    (APP_POLICY_NO_ROOT, [ADMIN_USER], ACCOUNT, "aws", True),
    (APP_POLICY_NO_ROOT, [WEB_ROLE], ACCOUNT, "aws", False),
    (APP_POLICY_NO_ROOT, [], ACCOUNT, "aws", False),
    (APP_POLICY_NO_ROOT, [ADMIN_SESSION], ACCOUNT, "aws", True),
    (APP_POLICY_NO_ROOT, [SESSION], ACCOUNT, "aws", False),
    (
        policy(allow({"AWS": f"arn:aws:iam::{ACCOUNT}:role/platform/ops/AdminRole"}, "kms:*")),
        [ADMIN_SESSION],
        ACCOUNT,
        "aws",
        True,
    ),
    (
        policy(allow({"AWS": "arn:aws:iam::987654321098:role/AdminRole"}, "kms:*")),
        [ADMIN_SESSION],
        ACCOUNT,
        "aws",
        False,
    ),
    (policy(allow({"AWS": ADMIN_ROLE}, "kms:Put*")), [ADMIN_ROLE], ACCOUNT, "aws", True),
    (policy(allow({"AWS": ADMIN_ROLE}, "kms:Get*")), [ADMIN_ROLE], ACCOUNT, "aws", False),
    (policy(allow("*", "*")), [], ACCOUNT, "aws", True),
    (
        policy(
            allow(
                {"AWS": ROOT}, "kms:*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}
            )
        ),
        [],
        ACCOUNT,
        "aws",
        False,
    ),
    (policy(ROOT_STATEMENT, DENY_PUT_POLICY_FOR_ALL), [ADMIN_ROLE], ACCOUNT, "aws", False),
    (
        policy(ROOT_STATEMENT, deny({"AWS": WEB_ROLE}, "kms:PutKeyPolicy")),
        [WEB_ROLE],
        ACCOUNT,
        "aws",
        True,
    ),
    (
        policy(
            ROOT_STATEMENT,
            deny(
                "*",
                "kms:PutKeyPolicy",
                Condition={"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}},
            ),
        ),
        [],
        ACCOUNT,
        "aws",
        True,
    ),
    (
        policy(
            {
                "Effect": "Allow",
                "Principal": {"AWS": ROOT},
                "NotAction": "kms:PutKeyPolicy",
                "Resource": "*",
            }
        ),
        [],
        ACCOUNT,
        "aws",
        False,
    ),
    (policy(allow({"AWS": ACCOUNT}, "kms:*")), [], ACCOUNT, "aws-cn", True),
    (policy(allow({"AWS": ROOT}, "kms:*")), [], ACCOUNT, "aws-cn", False),
]
MANAGE_IDS = [
    "default-root-policy",
    "root-as-bare-account-id",
    "root-of-another-account",
    "no-root-admin-role-passed",
    "no-root-admin-user-passed",
    "no-root-only-user-role-passed",
    "no-root-nobody-passed",
    "no-root-assumed-role-admin",
    "no-root-assumed-role-user",
    "role-with-path-matches-session",
    "same-role-name-other-account",
    "kms-put-star",
    "kms-get-star-only",
    "star-principal-star-action",
    "conditional-allow",
    "unconditional-deny-star",
    "deny-for-another-principal",
    "conditional-deny-ignored",
    "not-action-excludes-put-policy",
    "aws-cn-bare-id",
    "aws-root-arn-in-aws-cn",
]


@pytest.mark.parametrize(
    ("doc", "principals", "account_id", "partition", "expected"), MANAGE_CASES, ids=MANAGE_IDS
)
def test_can_manage_policy(
    doc: Doc, principals: list[str], account_id: str, partition: str, expected: bool
) -> None:
    assert (
        can_manage_policy(doc, principals, account_id=account_id, partition=partition) is expected
    )


# --------------------------------------------------------------------------- validation

VALIDATE_CASES: list[tuple[Any, list[str]]] = [
    ([ROOT_STATEMENT], ["policy is not a JSON object"]),
    ({"Version": "2012-10-17"}, ["missing Statement"]),
    ({"Statement": "Allow everything"}, ["Statement must be an object or a list of objects"]),
    ({"Statement": []}, ["Statement is empty"]),
    ({"Statement": [ROOT_STATEMENT, "x"]}, ["Statement[1]: not a JSON object"]),
    (
        policy({k: v for k, v in ROOT_STATEMENT.items() if k != "Effect"}),
        ["Statement[0] (Sid 'Enable IAM User Permissions'): missing Effect"],
    ),
    (
        policy({**ROOT_STATEMENT, "Effect": "allow"}),
        [
            "Statement[0] (Sid 'Enable IAM User Permissions'): "
            "Effect must be 'Allow' or 'Deny', not 'allow'"
        ],
    ),
    (
        policy(
            ROOT_STATEMENT,
            {"Sid": "AllowUse", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"},
        ),
        ["Statement[1] (Sid 'AllowUse'): missing Principal"],
    ),
    (
        policy({"Effect": "Allow", "Principal": "*", "Resource": "*"}),
        ["Statement[0]: missing Action"],
    ),
    (
        policy({"Effect": "Allow", "Principal": "*", "Action": "kms:*"}),
        ["Statement[0]: missing Resource"],
    ),
    (
        {**DEFAULT_POLICY, "Statment": []},
        ["unknown top-level key 'Statment'"],
    ),
    (
        policy({**ROOT_STATEMENT, "Conditions": {}}),
        ["Statement[0] (Sid 'Enable IAM User Permissions'): unknown key 'Conditions'"],
    ),
    (
        policy({**ROOT_STATEMENT, "NotPrincipal": {"AWS": WEB_ROLE}}),
        ["Statement[0] (Sid 'Enable IAM User Permissions'): both Principal and NotPrincipal"],
    ),
    (
        policy({"Effect": "Deny", "Principal": {"AWS": []}, "Action": [], "Resource": "*"}),
        [
            "Statement[0]: Principal.AWS must be a string or a list of strings",
            "Statement[0]: Action must be a string or a non-empty list of strings",
        ],
    ),
    (
        policy({"Sid": 7, "Principal": "*", "NotAction": "kms:Decrypt", "NotResource": "*"}),
        ["Statement[0]: Sid must be a string", "Statement[0]: missing Effect"],
    ),
    (
        {"Version": "2012-10-18", "Statement": ROOT_STATEMENT},
        ["Version must be '2012-10-17' or '2008-10-17', not '2012-10-18'"],
    ),
    (
        policy({**ROOT_STATEMENT, "Condition": {"Bool": "true"}}),
        [
            "Statement[0] (Sid 'Enable IAM User Permissions'): "
            "Condition must map operators to objects of condition keys"
        ],
    ),
]
VALIDATE_IDS = [
    "not-an-object",
    "no-statement",
    "statement-is-a-string",
    "statement-empty",
    "statement-not-an-object",
    "missing-effect",
    "bad-effect",
    "missing-principal-with-sid",
    "missing-action",
    "missing-resource",
    "unknown-top-level-key",
    "unknown-statement-key",
    "principal-and-not-principal",
    "empty-lists",
    "sid-not-string-and-missing-effect",
    "bad-version",
    "bad-condition",
]


@pytest.mark.parametrize(("doc", "expected"), VALIDATE_CASES, ids=VALIDATE_IDS)
def test_validate_policy_messages(doc: Any, expected: list[str]) -> None:
    assert validate_policy(doc) == expected


@pytest.mark.parametrize("doc", GUIDE_POLICIES, ids=GUIDE_IDS)
def test_guide_policies_are_valid(doc: Doc) -> None:
    assert validate_policy(doc) == []
    assert validate_policy(json.loads(json.dumps(doc))) == []


# --------------------------------------------------------------------------- purity


def test_policy_module_imports_only_stdlib_catalog_and_semantics() -> None:
    source = Path(policy_module.__file__)  # the module under test, wherever it is installed
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            imported |= {
                f"{module}.{alias.name}" if module == "reconciler" else module
                for alias in node.names
            }
    allowed = {
        "__future__",
        "json",
        "re",
        "collections.abc",
        "dataclasses",
        "functools",
        "typing",
        "reconciler.catalog",
        "reconciler.semantics",  # the policy-semantics engine, as pure
    }
    assert imported <= allowed, imported - allowed


# -- deleted principals (issue 9, defect 13) ---------------------------------------------

_GONE = "AROAEXAMPLEID1234567890"
_ROLE = "arn:aws:iam::111122223333:role/App"


def _stmt(field: str, aws: Any, effect: str = "Allow", sid: str = "S") -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": effect,
        field: {"AWS": aws},
        "Action": "kms:Decrypt",
        "Resource": "*",
    }


@pytest.mark.parametrize(
    ("statement", "evaluated"),
    [
        # the unique ID matches nobody: a statement naming only it applies to nobody
        pytest.param(_stmt("Principal", _GONE), [], id="only-principal-dropped"),
        pytest.param(
            _stmt("Principal", [_GONE, _ROLE]), [_stmt("Principal", [_ROLE])], id="others-kept"
        ),
        # excluding nobody: NotPrincipal of only a deleted role is every principal
        pytest.param(
            _stmt("NotPrincipal", _GONE, effect="Deny"),
            [
                {**_stmt("NotPrincipal", _GONE, effect="Deny"), "NotPrincipal": None}
                | {"Principal": "*"}
            ],
            id="not-principal-emptied",
        ),
        pytest.param(_stmt("Principal", _ROLE), [_stmt("Principal", _ROLE)], id="untouched"),
    ],
)
def test_without_deleted_principals(statement: dict[str, Any], evaluated: list[Any]) -> None:
    from reconciler.policy import deleted_principals, without_deleted_principals

    doc = {"Version": "2012-10-17", "Statement": [statement]}
    expected = [{k: v for k, v in s.items() if v is not None} for s in evaluated]
    assert without_deleted_principals(doc)["Statement"] == expected
    named = _GONE in json.dumps(statement)
    assert deleted_principals(doc) == ([("S", [_GONE])] if named else [])
