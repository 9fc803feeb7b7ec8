"""KMS005 corpus: key specs that bypass the policy lockout safety check."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.review import Subject
from reconciler.rules import bypass_lockout_check
from tests.rules.guide_policies import APPLICATION
from tests.rules.harness import allow, change, context, hits, key, policy, role

LOCKED_OUT = policy(allow(role("App"), "kms:Decrypt"), root=False)

# policy the key is declared with; the spec sets bypass_policy_lockout_safety_check.
FIRES: dict[str, dict[str, Any]] = {
    "root-policy": policy(),
    "policy-that-locks-out": LOCKED_OUT,
    "guide-application": APPLICATION,
}
# the same policies without the flag.
QUIET: dict[str, dict[str, Any]] = {
    "root-policy": policy(),
    "lockout-without-bypass-is-kms004s": LOCKED_OUT,
}


@pytest.mark.parametrize("doc", FIRES.values(), ids=FIRES.keys())
def test_fires(doc: dict[str, Any]) -> None:
    state = {"bypass_policy_lockout_safety_check": True}
    (hit,) = hits(bypass_lockout_check, head=doc, state=state)
    assert hit.sid is None
    assert (hit.severity or bypass_lockout_check.RULE.severity) is Severity.MEDIUM
    assert "bypass_policy_lockout_safety_check" in hit.message


@pytest.mark.parametrize("doc", QUIET.values(), ids=QUIET.keys())
def test_quiet(doc: dict[str, Any]) -> None:
    assert hits(bypass_lockout_check, head=doc) == []
    state = {"bypass_policy_lockout_safety_check": False}
    assert hits(bypass_lockout_check, head=doc, state=state) == []


def test_a_removed_key_that_bypassed_is_not_flagged() -> None:
    removed = change(base_key=key(policy(), bypass_policy_lockout_safety_check=True))
    assert list(bypass_lockout_check.check(Subject(removed, context()))) == []


def test_the_flag_is_read_from_the_head_only() -> None:
    turned_off = change(
        head=policy(), base_key=key(policy(), bypass_policy_lockout_safety_check=True)
    )
    assert list(bypass_lockout_check.check(Subject(turned_off, context()))) == []
    turned_on = change(
        head_key=key(policy(), bypass_policy_lockout_safety_check=True), base=policy()
    )
    assert len(list(bypass_lockout_check.check(Subject(turned_on, context())))) == 1
