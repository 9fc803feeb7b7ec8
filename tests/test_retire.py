"""Staged retirement (a spec's ``retire:``): the pure stage logic at its date boundaries,
the plans it makes, drift's reading of it, and the spec's validation."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from reconciler import retire
from reconciler.drift import detect
from reconciler.plan import Action, OpKind, TargetPlan
from reconciler.planner import PlanOptions, make_plan
from reconciler.retire import Enabled, Stage, decide, parse_tag, stale_retire_tags, tag_value
from reconciler.state import KeyUsage, ObservedKey, Retirement
from tests.factories import IDENTITY, desired, desired_key, observed, observed_key
from tests.test_validation import F, assert_problems, desired_of, key, only_key, problems_of

TAG = "kms-reconciler:retire-disabled-on"
NOW = datetime(2027, 3, 1, 15, 30, tzinfo=timezone.utc)
DISABLED_AT = datetime(2027, 1, 30, 14, 0, tzinfo=timezone.utc)  # the tag's time
TAGGED = tag_value(DISABLED_AT)
TRACKING = datetime(2026, 4, 1, tzinfo=timezone.utc)
KEY_ID = "0ld00000-0000-0000-0000-000000000000"


def used(days_ago: float | None, *, now: datetime = NOW, error: str = "") -> KeyUsage:
    """Usage read at ``now``: last used ``days_ago`` (None: no use since tracking began)."""
    last = None if days_ago is None else now - timedelta(days=days_ago)
    return KeyUsage(
        KEY_ID,
        now,
        operation="Decrypt" if last else None,
        last_used=last,
        tracking_start=TRACKING,
        created=TRACKING - timedelta(days=400),
        error=error,
    )


def key_of(state: str = "Enabled", tag: str | None = None, **fields: Any) -> ObservedKey:
    tags = {"Owner": "team", **({TAG: tag} if tag is not None else {})}
    return observed_key("old", KEY_ID, key_state=state, tags=tags, **fields)


ON = Retirement(disable_on=date(2027, 3, 1))
UNUSED = Retirement(after_unused_days=90)
DAY = timedelta(days=1)

# (rule, key, usage, now, protected) -> stage, enabled wanted, a fragment of the message
STAGES = [
    pytest.param(ON, key_of(), used(5), NOW - DAY, False, Stage.WAITING, Enabled.DECLARED,
                 "disable on 2027-03-01", id="disable_on-the-day-before"),
    pytest.param(ON, key_of(), used(400), NOW.replace(hour=0, minute=0), False, Stage.DISABLE,
                 Enabled.DISABLED, "disable the key now (disable_on 2027-03-01 reached)",
                 id="disable_on-at-midnight-of-the-day"),
    pytest.param(ON, key_of(), used(1), NOW + 40 * DAY, False, Stage.DISABLE, Enabled.DISABLED,
                 "disable the key now", id="disable_on-long-past-used-yesterday"),
    pytest.param(ON, key_of(), used(1, error="AccessDeniedException"), NOW, False,
                 Stage.DISABLE, Enabled.DISABLED, "needs kms:GetKeyLastUsage",
                 id="disable_on-reached-use-unknown"),
    pytest.param(ON, key_of("Disabled"), used(1), NOW, False, Stage.DISABLE, Enabled.DISABLED,
                 "mark the disabled key now", id="disable_on-reached-already-disabled"),
    pytest.param(UNUSED, key_of(), used(89.9), NOW, False, Stage.WAITING, Enabled.DECLARED,
                 "disable when unused for 90 days on 2027-03-01 at the earliest",
                 id="unused-89-days"),
    pytest.param(UNUSED, key_of(), used(90), NOW, False, Stage.DISABLE, Enabled.DISABLED,
                 "no recorded use for 90 days", id="unused-90-days"),
    pytest.param(UNUSED, key_of(), used(None, now=TRACKING + 89 * DAY), TRACKING + 89 * DAY,
                 False, Stage.WAITING, Enabled.DECLARED, "2026-06-30 at the earliest",
                 id="never-used-counts-from-tracking-start-89"),
    pytest.param(UNUSED, key_of(), used(None, now=TRACKING + 90 * DAY), TRACKING + 90 * DAY,
                 False, Stage.DISABLE, Enabled.DISABLED, "no use recorded since tracking began",
                 id="never-used-counts-from-tracking-start-90"),
    pytest.param(UNUSED, key_of(), used(None, error="AccessDeniedException"), NOW, False,
                 Stage.UNKNOWN, Enabled.DECLARED, "needs kms:GetKeyLastUsage",
                 id="unused-use-denied"),
    pytest.param(UNUSED, key_of(), None, NOW, False, Stage.UNKNOWN, Enabled.DECLARED,
                 "its last use was not read", id="unused-use-not-read"),
    pytest.param(ON, key_of("Disabled", TAGGED), used(40), DISABLED_AT + 29 * DAY, False,
                 Stage.OBSERVING, Enabled.DISABLED, "deletion offered on 2027-03-01",
                 id="observing-day-29"),
    pytest.param(ON, key_of("Disabled", TAGGED), used(40), NOW.replace(hour=0), False,
                 Stage.DELETE, Enabled.DISABLED, "schedule its deletion",
                 id="delete-day-30-at-midnight"),
    pytest.param(ON, key_of("Disabled", TAGGED), used(40), NOW, True, Stage.PROTECTED,
                 Enabled.DISABLED, "deletion_protection is on", id="delete-due-but-protected"),
    pytest.param(ON, key_of("Disabled", TAGGED), used(None), NOW, False, Stage.DELETE,
                 Enabled.DISABLED, "schedule its deletion", id="delete-never-used"),
    pytest.param(ON, key_of("Disabled", TAGGED),
                 replace(used(0), last_used=DISABLED_AT), NOW, False, Stage.DELETE,
                 Enabled.DISABLED, "schedule its deletion", id="used-at-the-tag-time-is-before"),
    pytest.param(ON, key_of("Disabled", TAGGED),
                 replace(used(0), last_used=DISABLED_AT + timedelta(seconds=1)), NOW, False,
                 Stage.STOPPED, Enabled.AS_IS, "but used on 2027-01-30 14:00 UTC (Decrypt)",
                 id="used-a-second-after-the-tag-stops"),
    pytest.param(ON, key_of("Enabled", TAGGED), used(2), NOW, False, Stage.STOPPED,
                 Enabled.AS_IS, "no deletion is offered", id="re-enabled-and-used-stops"),
    pytest.param(ON, key_of("Enabled", TAGGED), used(40), DISABLED_AT + 3 * DAY, False,
                 Stage.OBSERVING, Enabled.DISABLED, "enabled since, outside the tool",
                 id="re-enabled-unused-is-disabled-again"),
    pytest.param(ON, key_of("Disabled", TAGGED), used(1, error="ThrottlingException"), NOW,
                 False, Stage.UNKNOWN, Enabled.AS_IS, "read it again later",
                 id="observing-use-unknown"),
    pytest.param(ON, key_of("Disabled", "last tuesday"), used(40), NOW, False, Stage.UNKNOWN,
                 Enabled.AS_IS, "is not an ISO 8601 time", id="bad-tag"),
    pytest.param(ON, key_of("Disabled", "2027-01-30"), used(40), NOW, False, Stage.DELETE,
                 Enabled.DISABLED, "disabled for retirement on 2027-01-30",
                 id="hand-written-date-tag"),
    pytest.param(ON, key_of("PendingImport"), used(40), NOW, False, Stage.UNKNOWN,
                 Enabled.AS_IS, "PendingImport", id="pending-import-waits"),
    pytest.param(ON, key_of("PendingDeletion", TAGGED, deletion_date=NOW + 7 * DAY), used(40),
                 NOW, False, Stage.SCHEDULED, Enabled.DECLARED,
                 "deletion scheduled for 2027-03-08", id="scheduled"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "key", "usage", "now", "protected", "stage", "enabled", "fragment"), STAGES
)
def test_stage(
    rule: Retirement,
    key: ObservedKey,
    usage: KeyUsage | None,
    now: datetime,
    protected: bool,
    stage: Stage,
    enabled: Enabled,
    fragment: str,
) -> None:
    decision = decide(rule, key, IDENTITY, usage, now, protected)
    assert decision is not None
    assert (decision.stage, decision.enabled) == (stage, enabled), decision.message
    assert fragment in decision.message
    assert decision.schedules_deletion == (stage is Stage.DELETE)
    if stage is Stage.DISABLE:  # the tag is written with the plan's time
        assert decision.tag == tag_value(now)
    elif stage is not Stage.WAITING and TAG in key.tags:
        assert decision.tag == key.tags[TAG]  # kept as it is


def test_a_key_pending_deletion_without_the_tag_is_no_retirement_business() -> None:
    assert decide(ON, key_of("PendingDeletion"), IDENTITY, used(1), NOW, False) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-30T14:00:00Z", DISABLED_AT),
        ("2027-01-30T16:00:00+02:00", DISABLED_AT),
        ("2027-01-30T14:00:00", DISABLED_AT),
        ("2027-01-30", datetime(2027, 1, 30, tzinfo=timezone.utc)),
        ("30/01/2027", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_tag(text: str | None, expected: datetime | None) -> None:
    assert parse_tag(text) == expected


# -- the plans it makes ---------------------------------------------------------------------


def plan_of(
    key: ObservedKey,
    usage: KeyUsage | None,
    now: datetime = NOW,
    rule: Retirement = ON,
    **spec: Any,
) -> TargetPlan:
    dk = desired_key("old", retire=rule, **spec)
    return make_plan(
        desired(dk),
        observed(key),
        PlanOptions(usage={KEY_ID: usage} if usage else {}, now=now),
    )


def calls(tp: TargetPlan) -> list[tuple[str, bool, dict[str, Any]]]:
    return [(op.kind.value, op.destructive, dict(op.params)) for op in tp.operations]


def test_stage_1_tags_then_disables_and_the_next_plan_converges() -> None:
    tp = plan_of(key_of(), used(3))
    assert calls(tp) == [
        ("TagResource", False, {"Tags": [{"TagKey": TAG, "TagValue": "2027-03-01T15:30:00Z"}]}),
        ("DisableKey", True, {}),
    ]
    (kp,) = tp.keys
    assert kp.action is Action.UPDATE and kp.destructive
    fields = {c.field: (c.before, c.after) for c in kp.changes}
    assert fields == {"retirement": (None, "2027-03-01T15:30:00Z"), "enabled": (True, False)}
    assert [(r.stage, r.key_id) for r in tp.retirements] == [("disable", KEY_ID)]

    # After apply: disabled and tagged. The spec still says enabled: true (the default);
    # the plan neither enables it again nor removes the tag.
    after = plan_of(key_of("Disabled", "2027-03-01T15:30:00Z"), used(3), NOW + DAY)
    assert after.operations == () and after.keys[0].action is Action.NOOP
    assert after.retirements[0].stage == "observing"
    assert "deletion offered on 2027-03-31" in after.retirements[0].message


def test_stage_2_schedules_deletion_with_the_spec_window() -> None:
    tp = plan_of(key_of("Disabled", TAGGED), used(40), deletion_window_days=9)
    assert calls(tp) == [("ScheduleKeyDeletion", True, {"PendingWindowInDays": 9})]
    (kp,) = tp.keys
    assert kp.action is Action.DELETE
    assert [(c.field, c.after, c.destructive) for c in kp.changes] == [
        ("key_state", "PendingDeletion", True)
    ]
    # Once pending deletion, the key is retired: never recovered, no change.
    done = plan_of(key_of("PendingDeletion", TAGGED), None, NOW + DAY)
    assert done.operations == () and done.keys[0].action is Action.NOOP
    assert done.retirements[0].stage == "scheduled"


def test_deletion_protection_stops_the_final_stage_and_the_plan_says_so() -> None:
    tp = plan_of(key_of("Disabled", TAGGED), used(40), deletion_protection=True)
    assert [op.kind for op in tp.operations] == [OpKind.TAG_RESOURCE]  # the protection tag
    assert tp.retirements[0].stage == "protected"
    assert "deletion_protection is on" in tp.retirements[0].message


def test_a_use_after_disabling_stops_the_retirement_and_leaves_the_key_as_it_is() -> None:
    for state in ("Enabled", "Disabled"):
        tp = plan_of(key_of(state, TAGGED), used(2))
        assert tp.operations == (), state
        assert tp.retirements[0].stage == "stopped"
        assert tp.retirements[0].used_after == NOW - 2 * DAY


def test_a_key_enabled_outside_the_tool_unused_is_disabled_again_without_a_new_tag() -> None:
    tp = plan_of(key_of("Enabled", TAGGED), used(40), DISABLED_AT + 3 * DAY)
    assert calls(tp) == [("DisableKey", True, {})]
    assert "enabled outside the tool" in tp.operations[0].summary


def test_removing_retire_cancels_the_retirement() -> None:
    tp = make_plan(desired(desired_key("old")), observed(key_of("Disabled", TAGGED)))
    assert calls(tp) == [("EnableKey", False, {}), ("UntagResource", False, {"TagKeys": [TAG]})]
    fields = {c.field: (c.before, c.after) for c in tp.keys[0].changes}
    assert fields["retirement"] == (TAGGED, None)
    assert tp.retirements == ()


def test_waiting_shows_a_line_and_no_change() -> None:
    tp = plan_of(key_of(), used(3), rule=Retirement(disable_on=date(2027, 6, 1)))
    assert tp.operations == () and tp.keys[0].action is Action.NOOP
    assert tp.retirements[0].message.startswith("disable on 2027-06-01")


def test_usage_refs_are_the_managed_retiring_keys_not_pending_deletion() -> None:
    dt = desired(desired_key("old", retire=ON), desired_key("app"), desired_key("gone", retire=ON))
    ot = observed(
        key_of(),
        observed_key("app"),
        observed_key("gone", "90ne0000", key_state="PendingDeletion"),
        observed_key(None, "stranger"),
    )
    assert retire.usage_refs(dt, ot) == ((KEY_ID, None),)
    assert retire.usage_refs(desired(desired_key("app")), ot) == ()


def test_a_saved_plan_with_a_retire_tag_over_a_day_old_is_stale() -> None:
    tp = plan_of(key_of(), used(3))
    assert stale_retire_tags(tp, IDENTITY, NOW + DAY) == []
    assert stale_retire_tags(tp, IDENTITY, NOW + DAY + timedelta(seconds=1)) == ["old"]


# -- drift --------------------------------------------------------------------------------


def findings(key: ObservedKey, usage: KeyUsage, now: datetime = NOW) -> dict[str, str]:
    report = detect(
        desired(desired_key("old", retire=ON)),
        observed(key),
        now=now,
        usage=[usage],
        usage_reads=1,
        unused_after_days=30,
    )
    return {f.rule: f.message for f in report.findings}


def test_drift_reports_a_use_after_disabling_as_high() -> None:
    found = findings(key_of("Enabled", TAGGED), used(2))
    assert set(found) == {"retirement-used"}
    assert "used on 2027-02-27 15:30 UTC (Decrypt)" in found["retirement-used"]


def test_drift_is_quiet_about_a_retirement_on_course() -> None:
    # disabled and observing, unused for 40 days (> unused_after_days): no key-disabled,
    # no unused-key (retire: says what becomes of it), no retire tag finding
    assert findings(key_of("Disabled", TAGGED), used(40), DISABLED_AT + 3 * DAY) == {}
    assert findings(key_of("Disabled", TAGGED), used(40)) == {}  # deletion due
    assert findings(key_of(), used(40)) == {}  # stage 1 due


def test_drift_reports_a_retired_key_enabled_again() -> None:
    found = findings(key_of("Enabled", TAGGED), used(40), DISABLED_AT + 3 * DAY)
    assert set(found) == {"key-enabled"}


# -- the spec -------------------------------------------------------------------------------


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The validation helpers write ./keyspecs: in tmp_path (as test_validation does)."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("lines", "field", "fragment"),
    [
        (["retire: {}"], "retire", "give exactly one of 'disable_on' or 'after_unused_days'"),
        (
            ["retire: {disable_on: 2027-01-15, after_unused_days: 9}"],
            "retire",
            "(found disable_on, after_unused_days)",
        ),
        (["retire: {after_unused_days: 0}"], "retire.after_unused_days", "between 1 and 3650"),
        (["retire: {after_unused_days: '9'}"], "retire.after_unused_days", "whole number"),
        (["retire: {disable_on: 20270115}"], "retire.disable_on", "YYYY-MM-DD, not 20270115"),
        (["retire: {disable_on: '2027-02-30'}"], "retire.disable_on", "YYYY-MM-DD"),
        (
            ["retire: {disable_on: 2027-01-15, observe_days: 6}"],
            "retire.observe_days",
            "between 7 and 365",
        ),
        (
            ["retire: {disable_on: 2027-01-15, observe_days: 366}"],
            "retire.observe_days",
            "between 7 and 365",
        ),
        (["retire: {disable_on: 2027-01-15, when: now}"], "retire.when", "unknown field"),
        (
            ["multi_region: true", "retire: {after_unused_days: 9}"],
            "retire",
            "not supported on multi-Region keys",
        ),
    ],
)
@pytest.mark.usefixtures("in_tmp")
def test_bad_retire_is_one_line_naming_file_key_and_field(
    lines: list[str], field: str, fragment: str
) -> None:
    found = problems_of({"app.yaml": key(*lines)})
    assert_problems(found, [(f"{F}:", fragment)])
    assert f"keys[0].{field}: " in found[0] and "(key 'app')" in found[0]


@pytest.mark.usefixtures("in_tmp")
def test_retire_reaches_the_desired_key_with_its_defaults() -> None:
    dk = only_key(desired_of({"app.yaml": key("retire: {disable_on: 2027-01-15}")}))
    assert dk.retire == Retirement(disable_on=date(2027, 1, 15), observe_days=30)
    quoted = key("retire: {disable_on: '2027-01-15', observe_days: 7}")
    assert only_key(desired_of({"app.yaml": quoted})).retire == Retirement(
        disable_on=date(2027, 1, 15), observe_days=7
    )
    unused = only_key(desired_of({"app.yaml": key("retire: {after_unused_days: 120}")}))
    assert unused.retire == Retirement(after_unused_days=120)
    assert only_key(desired_of({"app.yaml": key("description: x")})).retire is None
