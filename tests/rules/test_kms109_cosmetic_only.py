"""KMS109 corpus: a policy change that changes nothing IAM evaluates (defect 5 of issue 9:
a Sid-only change used to give no finding at all). Expected verdicts from the IAM policy
grammar: Sid and the policy Id are optional identifiers that evaluation ignores."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.review import Subject
from reconciler.rules import cosmetic_only
from tests.rules.harness import allow, change, context, key, policy, role

USE = allow(role("App"), ["kms:Encrypt", "kms:Decrypt"], sid="Use")
BASE = policy(USE)


def named(doc: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**doc, **top}


COSMETIC: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]] = {
    "sid-renamed": (BASE, policy({**USE, "Sid": "AppUse"}), ('Sid "Use" -> "AppUse"',)),
    "sid-removed": (
        BASE,
        policy({k: v for k, v in USE.items() if k != "Sid"}),
        ('Sid "Use" -> null',),
    ),
    "policy-id-added": (BASE, named(BASE, Id="app-key-policy"), ('Id null -> "app-key-policy"',)),
    "reordered-only": (
        policy(USE, allow(role("B"), "kms:Encrypt", sid="B")),
        policy(allow(role("B"), "kms:Encrypt", sid="B"), USE),
        (),
    ),
}
NOT_COSMETIC: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "sid-renamed-and-action-added": (
        BASE,
        policy({**USE, "Sid": "AppUse", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:Sign"]}),
    ),
    "sid-renamed-and-deny-added": (
        BASE,
        policy(
            {**USE, "Sid": "AppUse"},
            {**allow("*", "kms:ScheduleKeyDeletion", sid="NoDelete"), "Effect": "Deny"},
        ),
    ),
    "version-changed": (BASE, named(BASE, Version="2008-10-17")),
}


@pytest.mark.parametrize("case", COSMETIC.values(), ids=COSMETIC.keys())
def test_cosmetic(case: tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]) -> None:
    base, head, details = case
    subject = Subject(change(head, base), context())
    (hit,) = cosmetic_only.check(subject)
    assert "cosmetic only" in hit.message
    assert (hit.severity or cosmetic_only.RULE.severity) is Severity.INFO
    assert hit.details == details


@pytest.mark.parametrize("case", NOT_COSMETIC.values(), ids=NOT_COSMETIC.keys())
def test_not_cosmetic(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    base, head = case
    assert list(cosmetic_only.check(Subject(change(head, base), context()))) == []


def test_same_text_is_no_finding() -> None:
    text = json.dumps(BASE)
    same = change(base_key=key(BASE, text=text), head_key=key(BASE, text=text))
    assert list(cosmetic_only.check(Subject(same, context()))) == []
