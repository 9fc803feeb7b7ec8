"""Key usage, pure parts: which plan entries need it, how it reads, apply's guard, drift's
unused-key finding and its cost, and the plan's JSON round trip."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from reconciler import catalog, formatters, usage
from reconciler.drift import detect, usage_candidates
from reconciler.formatters.drift import drift_json, drift_markdown, drift_sarif, drift_text
from reconciler.plan import Plan, from_dict, to_dict
from reconciler.planner import PlanOptions, make_plan
from reconciler.state import KeyUsage
from tests.factories import (
    USE_STATEMENT,
    desired,
    desired_key,
    observed,
    observed_key,
    policy_with,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
TRACKING = datetime(2026, 4, 1, tzinfo=timezone.utc)
GONE = "dead0000-0000-0000-0000-000000000004"
CHANGED = "c0ffee00-0000-0000-0000-000000000001"
SAME = "5a5e0000-0000-0000-0000-000000000003"


def used(key_id: str, days: float | None, op: str = "Decrypt", **fields: object) -> KeyUsage:
    last = NOW - timedelta(days=days) if days is not None else None
    values: dict[str, object] = {
        "operation": op if days is not None else None,
        "last_used": last,
        "tracking_start": TRACKING,
        "created": TRACKING - timedelta(days=200),
    }
    values.update(fields)
    return KeyUsage(key_id, NOW, **values)  # type: ignore[arg-type]


def retiring_plan(**options: object):  # type: ignore[no-untyped-def]
    """A plan that deletes one key, disables one and narrows its policy, and leaves one."""
    narrowed = dict(USE_STATEMENT, Action=["kms:Decrypt"])
    return make_plan(
        desired(
            desired_key("changed", enabled=False, policy=policy_with(narrowed)),
            desired_key("same"),
        ),
        observed(
            observed_key("changed", CHANGED, policy=policy_with(USE_STATEMENT)),
            observed_key("same", SAME),
            observed_key("retired", GONE),
        ),
        PlanOptions(allow_destroy=True, **options),  # type: ignore[arg-type]
    )


# -- which entries read usage -------------------------------------------------------------


def test_only_the_keys_a_plan_retires_or_restricts_need_usage() -> None:
    tp = retiring_plan()
    assert usage.needed(tp) == ((CHANGED, None), (GONE, None))  # once each, plan order


def test_a_plan_that_retires_nothing_needs_no_usage() -> None:
    tp = make_plan(
        desired(desired_key("same"), desired_key("new")),
        observed(observed_key("same", SAME)),
        PlanOptions(allow_destroy=True),
    )
    assert tp.operations and usage.needed(tp) == ()


def test_an_alias_moved_between_keys_shows_the_last_use_of_the_key_that_loses_it() -> None:
    # alias/shared moves from "old" to "new": callers of the alias will reach another key,
    # so the plan shows how recently the old key was used (by them, as far as KMS knows).
    tp = make_plan(
        desired(
            desired_key("old", aliases=frozenset()),
            desired_key("new", aliases=frozenset({"alias/shared"})),
        ),
        observed(
            observed_key("old", GONE, aliases=frozenset({"alias/shared"})),
            observed_key("new", SAME, aliases=frozenset()),
        ),
        PlanOptions(allow_destroy=True),
    )
    (moved,) = [op for op in tp.operations if op.kind.value == "UpdateAlias"]
    assert (moved.key_id, moved.from_key_id) == (SAME, GONE)
    assert usage.needed(tp) == ((GONE, None),)
    the_plan = Plan(targets=(usage.annotate(tp, [used(GONE, 2)], 1),), allow_destroy=True)
    line = next(
        line for line in formatters.plan_text(the_plan).splitlines() if "UpdateAlias" in line
    )
    assert line.endswith(f"(key {GONE}: last used 2 days ago: Decrypt)")
    assert f"(key {GONE}: last used 2 days ago: Decrypt)" in formatters.plan_markdown(the_plan)
    again = from_dict(json.loads(json.dumps(to_dict(the_plan))))
    assert again.targets[0].operations == tp.operations


# -- how usage reads ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "text"),
    [
        (used(GONE, 3), "last used 3 days ago: Decrypt"),
        (used(GONE, 1, "Sign"), "last used 1 day ago: Sign"),
        (used(GONE, 0.2, "GenerateDataKey"), "last used less than a day ago: GenerateDataKey"),
        (used(GONE, None), "no use recorded since tracking began on 2026-04-01"),
        (
            used(
                GONE,
                None,
                created=TRACKING + timedelta(days=3),
                tracking_start=TRACKING + timedelta(days=3),
            ),
            "no use recorded since its creation on 2026-04-04",
        ),
        (
            KeyUsage(GONE, NOW, error="AccessDeniedException"),
            "unknown: not permitted (kms:GetKeyLastUsage)",
        ),
        (
            KeyUsage(GONE, NOW, error="KMSInternalException"),
            "unknown: GetKeyLastUsage answered KMSInternalException",
        ),
    ],
    ids=[
        "days",
        "one-day",
        "today",
        "never-since-tracking",
        "never-since-creation",
        "denied",
        "error",
    ],
)
def test_usage_phrases(record: KeyUsage, text: str) -> None:
    assert record.describe() == text


# -- apply's guard ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gone", "refused"),
    [
        (
            used(GONE, 3),
            "last used 3 days ago: Decrypt (2026-11-17 12:00 UTC), within retire_guard_days (30)",
        ),
        (used(GONE, 31), None),
        (used(GONE, None), None),  # tracking covers the guard period: unused
        (
            used(GONE, None, tracking_start=NOW - timedelta(days=10)),
            "fewer than retire_guard_days (30) ago, so a use before then is unknown",
        ),
        (
            used(
                GONE, None, created=NOW - timedelta(days=2), tracking_start=NOW - timedelta(days=2)
            ),
            None,  # created two days ago, never used
        ),
        (KeyUsage(GONE, NOW, error="AccessDeniedException"), "the tool needs kms:GetKeyLastUsage"),
        (None, "its last use was not read"),
    ],
    ids=[
        "used",
        "used-before-guard",
        "unused",
        "tracking-too-recent",
        "new-unused",
        "denied",
        "not-read",
    ],
)
def test_the_guard_refuses_to_retire_keys_in_use_or_of_unknown_use(
    gone: KeyUsage | None, refused: str | None
) -> None:
    tp = retiring_plan()
    # 'changed' is disabled and was used 40 days ago: never refused here
    records = [used(CHANGED, 40)] + ([gone] if gone is not None else [])
    lines = usage.in_use(usage.annotate(tp, records, len(records)), 30)
    if refused is None:
        assert lines == []
    else:
        assert len(lines) == 1
        assert lines[0].startswith(f"refusing to ScheduleKeyDeletion key 'retired' ({GONE})")
        assert refused in lines[0]


def test_the_guard_covers_disabling_too_and_respects_the_guard_days() -> None:
    tp = usage.annotate(retiring_plan(), [used(CHANGED, 5), used(GONE, 40)], 2)
    assert usage.in_use(tp, 30) == [
        f"refusing to DisableKey key 'changed' ({CHANGED}): last used 5 days ago: Decrypt "
        "(2026-11-15 12:00 UTC), within retire_guard_days (30)"
    ]
    assert usage.in_use(tp, 5) == []


# -- the plan shows it --------------------------------------------------------------------


def test_formats_show_the_last_use_beside_the_entries_and_the_reads_in_the_header() -> None:
    tp = usage.annotate(retiring_plan(), [used(CHANGED, 40), used(GONE, 3)], 2)
    the_plan = Plan(targets=(tp,), allow_destroy=True, retire_guard_days=21)
    text = formatters.plan_text(the_plan)
    assert "  Key usage: 2 read(s) (GetKeyLastUsage) for the 2 key(s)" in text
    retired = text.split('key "retired"', 1)[1]
    assert retired.splitlines()[2].strip() == "# usage: last used 3 days ago: Decrypt"
    assert "# usage: last used 40 days ago: Decrypt" in text.split('key "changed"', 1)[1]
    markdown = formatters.plan_markdown(the_plan)
    assert (
        "`ScheduleKeyDeletion` on `retired`: schedule deletion in 30 days "
        "(last used 3 days ago: Decrypt)" in markdown
    )
    document = json.loads(formatters.plan_json(the_plan))
    keys = {k["name"]: k for k in document["targets"][0]["keys"]}
    assert keys["retired"]["last_used"] == "last used 3 days ago: Decrypt"
    assert "last_used" not in keys["same"]
    assert document["summary"]["usage_reads"] == 2 and document["retire_guard_days"] == 21
    again = from_dict(json.loads(json.dumps(to_dict(the_plan))))
    assert again.targets[0].usage == tp.usage and again.retire_guard_days == 21
    assert formatters.plan_text(again) == text


# -- drift: unused-key --------------------------------------------------------------------


def test_drift_reports_keys_idle_for_unused_after_days_with_their_monthly_cost() -> None:
    dt = desired(desired_key("idle"), desired_key("busy"))
    obs = observed(
        observed_key("idle", CHANGED, rotations=5),
        observed_key("busy", SAME, rotations=0),
        observed_key(None, GONE),  # unmanaged
    )
    assert usage_candidates(dt, obs) == [CHANGED, SAME, GONE]
    records = [
        used(CHANGED, 120),
        used(SAME, 2),
        used(GONE, None, tracking_start=NOW - timedelta(days=95)),
    ]
    report = detect(dt, obs, usage=records, usage_reads=3, unused_after_days=90, now=NOW)
    unused = {f.key_id: f for f in report.findings if f.rule == "unused-key"}
    assert set(unused) == {CHANGED, GONE}
    idle = unused[CHANGED]
    assert idle.severity.label == "low" and idle.key == "idle"
    assert idle.monthly_cost == 3.0  # $1 + the first two of five rotations
    assert idle.message == (
        f"key 'idle' ({CHANGED}) has no recorded use for 120 days (last used 120 days ago: "
        "Decrypt); keeping it costs $3.00/month"
    )
    assert catalog.KMS_PRICING["source"] in idle.details[0]
    assert unused[GONE].monthly_cost == 1.0 and "at least $1.00/month" in unused[GONE].message
    assert report.usage_reads == 3 and report.read_calls == 3
    shorter = detect(dt, obs, usage=records, unused_after_days=200, now=NOW)
    assert not [f for f in shorter.findings if f.rule == "unused-key"]


def test_unused_key_in_every_drift_format_and_unknown_use_is_said() -> None:
    from reconciler.drift import DriftReport

    dt = desired(desired_key("idle"), desired_key("denied"))
    obs = observed(observed_key("idle", CHANGED, rotations=1), observed_key("denied", SAME))
    records = [used(CHANGED, 100), KeyUsage(SAME, NOW, error="AccessDeniedException")]
    report = DriftReport((detect(dt, obs, usage=records, usage_reads=2, now=NOW),))
    assert "unused-key" in drift_text(report) and "$2.00/month" in drift_text(report)
    assert f"could not be read (GetKeyLastUsage): {SAME} (AccessDeniedException)" in drift_text(
        report
    )
    (finding,) = [
        f
        for f in json.loads(drift_json(report))["targets"][0]["findings"]
        if f["rule"] == "unused-key"
    ]
    assert finding["monthly_cost_usd"] == 2.0
    assert "`unused-key`" in drift_markdown(report)
    sarif = json.loads(drift_sarif(report))
    assert any(r["ruleId"] == "unused-key" for r in sarif["runs"][0]["results"])


def test_the_price_table_is_one_data_file_with_its_source_and_date() -> None:
    pricing = catalog.KMS_PRICING
    assert pricing["source"].startswith("https://aws.amazon.com/kms/pricing")
    datetime.strptime(pricing["checked"], "%Y-%m-%d")
    assert [catalog.monthly_cost(n) for n in (None, 0, 1, 2, 3, 10)] == [
        1.0,
        1.0,
        2.0,
        3.0,
        3.0,
        3.0,
    ]
