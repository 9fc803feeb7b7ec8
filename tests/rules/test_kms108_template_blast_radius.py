"""KMS108: one template changes many keys; medium from review.fan_out_threshold keys."""

from __future__ import annotations

import pytest

from reconciler.findings import Severity
from reconciler.review import Subject
from reconciler.rules import template_blast_radius
from tests.rules.harness import allow, change, context, policy, role

BASE = policy()
HEAD = policy(allow(role("App"), "kms:Decrypt"))


@pytest.mark.parametrize(
    ("keys", "threshold", "expected"),
    [
        pytest.param(1, 5, None, id="one-key-is-no-fan-out"),
        pytest.param(2, 5, Severity.LOW, id="two-keys-low"),
        pytest.param(4, 5, Severity.LOW, id="below-the-default"),
        pytest.param(5, 5, Severity.MEDIUM, id="at-the-default"),
        pytest.param(3, 3, Severity.MEDIUM, id="lowered-threshold"),
        pytest.param(5, 6, Severity.LOW, id="raised-threshold"),
    ],
)
def test_severity_follows_the_fan_out_threshold(
    keys: int, threshold: int, expected: Severity | None
) -> None:
    ctx = context(fan_out_threshold=threshold)
    subjects = [Subject(change(HEAD, BASE, name=f"k{i}"), ctx) for i in range(keys)]
    found = list(template_blast_radius.check_all(subjects))
    if expected is None:
        assert found == []
        return
    ((_, hit),) = found
    assert hit.message.endswith(f"changes for {keys} keys at once")
    assert (hit.severity or template_blast_radius.RULE.severity) is expected
