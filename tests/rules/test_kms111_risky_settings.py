"""KMS111 corpus: spec-only changes that loosen a safeguard (issue 9, defect 11: turning
on bypass_policy_lockout_safety_check gave `changes: []` and exit 0 even with
`--fail-on low`). Expected severities from what each setting lets apply do."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from reconciler import rules
from reconciler.findings import Severity
from reconciler.review import Subject
from reconciler.rules import risky_settings
from tests.rules.harness import Waiver, change, context, key, policy, review_of

TODAY = date(2026, 11, 29)
WAIVER = Waiver("KMS006", "analytics reads through S3", "data-team", date(2027, 6, 30))
BASE = key(policy())


def head(**fields: Any) -> Any:
    return replace(BASE, **fields)


# id -> (head fields, the message fragment, severity); the base is the default spec
FIRES: dict[str, tuple[dict[str, Any], str, Severity]] = {
    "bypass-turned-on": (
        {"bypass_policy_lockout_safety_check": True},
        "bypass_policy_lockout_safety_check is turned on",
        Severity.HIGH,
    ),
    "deletion-window-shortened": (
        {"deletion_window_days": 7},
        "deletion_window_days shortened from 30 to 7",
        Severity.MEDIUM,
    ),
    "grants-purge-turned-on": (
        {"grants_purge": True},
        "grants_purge is turned on",
        Severity.MEDIUM,
    ),
    "alias-takeover-turned-on": (
        {"allow_alias_takeover": True},
        "allow_alias_takeover is turned on",
        Severity.MEDIUM,
    ),
    "waiver-added": (
        {"waivers": (WAIVER,)},
        "a waiver is added: KMS006 until 2027-06-30 (data-team): analytics reads through S3",
        Severity.MEDIUM,
    ),
}
# safer or unchanged settings: (base fields, head fields)
QUIET: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "bypass-turned-off": ({"bypass_policy_lockout_safety_check": True}, {}),
    "deletion-window-lengthened": ({"deletion_window_days": 7}, {"deletion_window_days": 30}),
    "grants-purge-turned-off": ({"grants_purge": True}, {}),
    "waiver-removed": ({"waivers": (WAIVER,)}, {}),
    "unchanged": ({"grants_purge": True}, {"grants_purge": True}),
}


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_fires_and_blocks_at_fail_on_low(case: tuple[dict[str, Any], str, Severity]) -> None:
    fields, fragment, severity = case
    c = change(base_key=BASE, head_key=head(**fields))
    assert c.kind == "changed"
    (hit,) = risky_settings.check(Subject(c, context()))
    assert fragment in hit.message
    assert (hit.severity or risky_settings.RULE.severity) is severity
    report = review_of([c], [*rules._modules()], TODAY)
    blocking = [f for f in report.blocking(Severity.LOW) if f.rule.id == "KMS111"]
    assert [f.severity for f in blocking] == [severity]


@pytest.mark.parametrize("case", QUIET.values(), ids=QUIET.keys())
def test_quiet(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    before, after = case
    c = change(base_key=head(**before), head_key=head(**after))
    assert list(risky_settings.check(Subject(c, context()))) == []


def test_a_waiver_for_kms111_does_not_hide_the_waivers_it_adds() -> None:
    self_waiver = Waiver("KMS111", "trust me", "someone", date(2027, 1, 1))
    c = change(base_key=BASE, head_key=head(waivers=(self_waiver,)))
    report = review_of([c], [risky_settings], TODAY)
    (finding,) = report.findings
    assert not finding.waived and report.blocking(Severity.MEDIUM) == [finding]
