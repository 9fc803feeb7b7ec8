"""KMS015 corpus: key policies near and over the KMS size limit."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from reconciler import catalog
from reconciler.findings import Severity
from reconciler.review import Subject
from reconciler.rules import policy_size, rules
from tests.rules.harness import allow, change, context, hits, key, policy, review_of, role

KB = 1024


def big_policy(at_least: int) -> dict[str, Any]:
    """A policy of many role statements whose text (as the harness writes it) is at least
    ``at_least`` bytes and at most one statement more."""
    statements: list[dict[str, Any]] = []
    doc = policy()
    while len(json.dumps(doc, indent=2).encode()) < at_least:
        n = len(statements)
        statements.append(
            allow(role(f"application-role-{n:04d}"), ["kms:Decrypt", "kms:Encrypt"], f"Use{n}")
        )
        doc = policy(*statements)
    return doc


def size(doc: dict[str, Any]) -> int:
    return len(json.dumps(doc, indent=2).encode())


# target size -> the expected severity (None: no finding)
CASES: dict[str, tuple[int, Severity | None]] = {
    "small": (2 * KB, None),
    "20-kb": (20 * KB, None),
    "26-kb-low": (26 * KB, Severity.LOW),
    "31-kb-low": (31 * KB, Severity.LOW),
    "33-kb-high": (33 * KB, Severity.HIGH),
    "40-kb-high": (40 * KB, Severity.HIGH),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_by_size(case: tuple[int, Severity | None]) -> None:
    target, severity = case
    doc = big_policy(target)
    assert target <= size(doc) < target + 512
    found = hits(policy_size, head=doc)
    if severity is None:
        assert found == []
    else:
        (hit,) = found
        assert hit.sid is None
        assert (hit.severity or policy_size.RULE.severity) is severity
        assert hit.details[0].startswith(f"{size(doc)} bytes, ")


def _hits_for_text(text: str) -> list[Any]:
    head = key(policy(), text=text)
    return list(policy_size.check(Subject(change(head_key=head), context())))


@pytest.mark.parametrize(
    ("length", "severity"),
    [
        (int(0.8 * catalog.POLICY_MAX_BYTES), None),
        (int(0.8 * catalog.POLICY_MAX_BYTES) + 1, Severity.LOW),
        (catalog.POLICY_MAX_BYTES, Severity.LOW),
        (catalog.POLICY_MAX_BYTES + 1, Severity.HIGH),
    ],
    ids=["at-80-percent", "just-over-80-percent", "at-the-limit", "one-byte-over"],
)
def test_boundaries(length: int, severity: Severity | None) -> None:
    found = _hits_for_text(" " * length)
    assert [h.severity or policy_size.RULE.severity for h in found] == (
        [severity] if severity else []
    )


def test_counts_bytes_not_characters() -> None:
    # 10000 three-byte characters: 30000 bytes, over 80% although 10000 characters are not.
    (hit,) = _hits_for_text("€" * 10000)
    assert hit.details == ("30000 bytes, 91% of 32768",)


def test_removed_key_is_quiet() -> None:
    subject = Subject(change(head=None, base=big_policy(40 * KB)), context())
    assert list(policy_size.check(subject)) == []


@pytest.mark.parametrize(
    ("base_size", "introduced"),
    [(2 * KB, True), (26 * KB, False)],
    ids=["grows-past-80-percent", "already-over-80-percent"],
)
def test_introduced_only_when_the_change_crosses_the_band(base_size: int, introduced: bool) -> None:
    pair = change(head=big_policy(28 * KB), base=big_policy(base_size))
    (finding,) = review_of([pair], [policy_size], date(2026, 1, 1)).findings
    assert finding.introduced is introduced


def test_registered() -> None:
    assert policy_size in rules()
