"""The applier: plan order, ids of new keys, retries, and honest failure reports."""

from __future__ import annotations

import threading

import pytest

from reconciler.applier import OpEvent, apply_target, describe_call
from reconciler.aws import KmsApi, RateLimiter
from reconciler.plan import Operation, TargetPlan
from reconciler.planner import PlanOptions, make_plan
from tests.factories import IDENTITY, desired, desired_key, observed, observed_key
from tests.fakes import FakeKms, client_error

BUILDING = {"CreateKey", "EnableKeyRotation", "CreateAlias", "TagResource", "PutKeyPolicy"}


def api_for(fake: FakeKms) -> KmsApi:
    return KmsApi(fake, sleep=lambda s: None)


def two_new_keys() -> TargetPlan:
    return make_plan(desired(desired_key("a"), desired_key("b")), observed())


def test_each_keys_operations_run_in_plan_order_and_new_key_ids_flow_to_later_calls() -> None:
    fake = FakeKms()
    plan = two_new_keys()
    result = apply_target(plan, api_for(fake))
    assert result.ok and result.not_run == []
    assert len(result.done) == len(plan.operations) == 6
    created = set(result.created.values())
    assert created == {"new-0001", "new-0002"}
    for name in ("a", "b"):
        key_id = result.created[name]
        own = [
            n
            for n, p in fake.calls
            if key_id in (p.get("KeyId"), p.get("TargetKeyId"))
            or (n == "CreateKey" and {"TagKey": IDENTITY, "TagValue": name} in p.get("Tags", []))
        ]
        assert own == ["CreateKey", "EnableKeyRotation", "CreateAlias"]
    by_alias = {p["AliasName"]: p["TargetKeyId"] for n, p in fake.calls if n == "CreateAlias"}
    assert by_alias == {f"alias/{k}": result.created[k] for k in ("a", "b")}


def test_keys_are_pipelined_not_phased() -> None:
    # Key a's CreateAlias must not wait for key b's CreateKey: b's CreateKey is held until
    # a's alias exists. Applied phase by phase (every CreateKey first), it would wait out.
    alias_made = threading.Event()
    waited: list[bool] = []

    def create_alias(**params: object) -> dict[str, object]:
        if params["AliasName"] == "alias/a":
            alias_made.set()
        return {}

    fake = FakeKms()

    def create_key(**params: object) -> dict[str, object]:
        tags = params.get("Tags", [])
        assert isinstance(tags, list)
        if {"TagKey": IDENTITY, "TagValue": "b"} in tags:
            waited.append(alias_made.wait(timeout=10))
        return fake._default("CreateKey", dict(params))

    fake.responses = {"CreateKey": create_key, "CreateAlias": create_alias}
    result = apply_target(two_new_keys(), api_for(fake), workers=2)
    assert result.ok, result.failed
    assert waited == [True]


def test_what_takes_away_waits_until_every_key_is_built() -> None:
    # b is new; old is an orphan scheduled for deletion, and c is disabled by its spec
    c = observed_key("c", "cccccccc-0000-0000-0000-000000000000")
    old = observed_key("old", "dddddddd-0000-0000-0000-000000000000")
    plan = make_plan(
        desired(desired_key("b"), desired_key("c", enabled=False)),
        observed(c, old),
        PlanOptions(allow_destroy=True),
    )
    kinds = [op.kind.value for op in plan.operations]
    assert "DisableKey" in kinds and "ScheduleKeyDeletion" in kinds
    fake = FakeKms()
    result = apply_target(plan, api_for(fake), workers=4)
    assert result.ok, result.failed
    names = fake.names()
    last_building = max(i for i, n in enumerate(names) if n in BUILDING)
    first_taking = min(i for i, n in enumerate(names) if n in ("DisableKey", "ScheduleKeyDeletion"))
    assert last_building < first_taking
    # and when building fails, nothing is taken away
    fake = FakeKms()
    fake.failures["CreateAlias"] = ["KMSInvalidStateException"]
    result = apply_target(plan, api_for(fake), workers=4)
    assert not result.ok
    assert "DisableKey" not in fake.names() and "ScheduleKeyDeletion" not in fake.names()
    assert {op.kind.value for op in result.not_run} >= {"DisableKey", "ScheduleKeyDeletion"}


def test_state_changing_calls_use_the_bare_key_id() -> None:
    ok = observed_key("app", "1234abcd-0000-0000-0000-000000000000", key_state="Disabled")
    fake = FakeKms()
    apply_target(make_plan(desired(desired_key("app")), observed(ok)), api_for(fake))
    assert fake.calls == [("EnableKey", {"KeyId": "1234abcd-0000-0000-0000-000000000000"})]


def test_first_failure_stops_the_run_and_reports_done_failed_not_run() -> None:
    fake = FakeKms()
    fake.failures["EnableKeyRotation"] = ["KMSInvalidStateException", "KMSInvalidStateException"]
    events: list[OpEvent] = []
    plan = two_new_keys()
    result = apply_target(plan, api_for(fake), on_event=events.append, workers=1)
    assert not result.ok
    # one key at a time (workers=1): a's CreateKey, then a's EnableKeyRotation fails
    assert [(op.kind.value, op.key) for op in result.done] == [("CreateKey", "a")]
    (failed, message), *_ = result.failed
    assert (failed.kind.value, failed.key) == ("EnableKeyRotation", "a")
    assert "KMSInvalidStateException" in message
    assert sorted((op.kind.value, op.key) for op in result.not_run) == [
        ("CreateAlias", "a"),
        ("CreateAlias", "b"),
        ("CreateKey", "b"),
        ("EnableKeyRotation", "b"),
    ]
    assert len(result.done) + len(result.failed) + len(result.not_run) == len(plan.operations)
    assert "CreateAlias" not in fake.names()
    assert any(e.status == "failed" for e in events)


@pytest.mark.parametrize("fails", [False, True], ids=["all done", "one fails"])
def test_the_applier_never_compares_operations_with_each_other(
    fails: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is still pending is kept by identity: a list's remove() and ``in`` compared an
    operation with every one before it, quadratic in the plan's size (10,000 new keys: ~40
    s of the apply's CPU, benchmarks/scaling.md). The report stays the same."""
    compared: list[Operation] = []

    def counting_eq(self: Operation, other: object) -> bool:
        compared.append(self)
        return self is other

    monkeypatch.setattr(Operation, "__eq__", counting_eq)
    fake = FakeKms()
    if fails:
        fake.failures["CreateAlias"] = ["KMSInvalidStateException"]
    plan = make_plan(desired(*(desired_key(f"k{i}") for i in range(6))), observed())
    result = apply_target(plan, api_for(fake), workers=1)
    assert compared == []
    assert result.ok is not fails
    assert len(result.done) + len(result.failed) + len(result.not_run) == len(plan.operations)
    not_run = [(op.kind.value, op.key) for op in result.not_run]
    if fails:  # k0's alias failed (one key at a time): the other keys' ops after it did not run
        assert [(op.kind.value, op.key) for op, _ in result.failed] == [("CreateAlias", "k0")]
        assert not_run == [
            *(("CreateKey", f"k{i}") for i in range(1, 6)),
            *(("EnableKeyRotation", f"k{i}") for i in range(1, 6)),
            *(("CreateAlias", f"k{i}") for i in range(1, 6)),
        ]
    else:
        assert not_run == []


def test_a_stop_from_another_thread_lets_the_operation_under_way_finish_and_no_other() -> None:
    # Targets applied side by side run in worker threads, where Ctrl-C never arrives: the
    # main thread sets ``stop`` instead.
    stop = threading.Event()
    plan = two_new_keys()

    def on_event(event: OpEvent) -> None:
        if event.status == "done":
            stop.set()

    fake = FakeKms()
    result = apply_target(plan, api_for(fake), on_event=on_event, workers=1, stop=stop)
    assert result.interrupted and not result.failed
    assert [op.kind.value for op in result.done] == ["CreateKey"]
    assert fake.names() == ["CreateKey"]
    assert len(result.not_run) == len(plan.operations) - 1


def test_throttling_is_retried_with_backoff_then_succeeds() -> None:
    fake = FakeKms()
    fake.failures["CreateKey"] = ["ThrottlingException", "ThrottlingException"]
    sleeps: list[float] = []
    api = KmsApi(fake, sleep=sleeps.append)
    result = apply_target(make_plan(desired(desired_key("a")), observed()), api)
    assert result.ok
    assert fake.names().count("CreateKey") == 3
    assert len(sleeps) == 2


def test_throttling_gives_up_after_max_attempts() -> None:
    fake = FakeKms()
    fake.failures["CreateKey"] = ["ThrottlingException"] * 10
    api = KmsApi(fake, sleep=lambda s: None, max_attempts=3)
    result = apply_target(make_plan(desired(desired_key("a")), observed()), api)
    assert not result.ok and fake.names().count("CreateKey") == 3


def test_not_found_right_after_create_is_retried() -> None:
    fake = FakeKms()
    fake.failures["EnableKeyRotation"] = ["NotFoundException", "NotFoundException"]
    result = apply_target(make_plan(desired(desired_key("a")), observed()), api_for(fake))
    assert result.ok
    assert fake.names().count("EnableKeyRotation") == 3


def test_not_found_on_an_existing_key_is_not_retried() -> None:
    fake = FakeKms()
    fake.failures["UpdateKeyDescription"] = ["NotFoundException"]
    plan = make_plan(desired(desired_key("app", description="new")), observed(observed_key("app")))
    result = apply_target(plan, api_for(fake))
    assert not result.ok and fake.names() == ["UpdateKeyDescription"]


def test_schedule_deletion_without_a_deletion_date_is_a_failure() -> None:
    # moto answers HTTP 200 without DeletionDate and changes nothing for a bad window.
    fake = FakeKms(responses={"ScheduleKeyDeletion": lambda **p: {"KeyId": p["KeyId"]}})
    plan = make_plan(desired(), observed(observed_key("old")), PlanOptions(allow_destroy=True))
    result = apply_target(plan, api_for(fake))
    assert not result.ok and "DeletionDate" in result.failed[0][1]


def test_a_crash_in_a_handler_is_reported_not_raised() -> None:
    fake = FakeKms(responses={"CreateKey": lambda **p: {}})  # no KeyMetadata
    result = apply_target(make_plan(desired(desired_key("a")), observed()), api_for(fake))
    assert not result.ok and "KeyError" in result.failed[0][1]


def test_describe_call_names_the_api_and_shortens_policies() -> None:
    plan = two_new_keys()
    create, *_ = plan.operations
    line = describe_call(create, None)
    assert line.startswith("CreateKey ")
    assert "-byte policy>" in line and '"Statement"' not in line
    alias = next(op for op in plan.operations if op.kind.value == "CreateAlias")
    assert "TargetKeyId=<id of new key a>" in describe_call(alias, None).replace('"', "")


def test_rate_limiter_paces_an_operation_to_its_quota() -> None:
    now = [0.0]
    sent: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    # quota 5/s, paced at 80% of it: 4/s, as quotas_for gives the limiter
    limiter = RateLimiter({"CreateKey": 4.0}, clock=lambda: now[0], sleep=sleep)
    for _ in range(41):
        limiter.acquire("CreateKey")
        sent.append(now[0])
    assert sent[-1] == pytest.approx(10.0)  # 4 a second once under way
    # no one-second window ever holds more than the quota (5): not even the first
    for start in sent:
        in_window = [t for t in sent if start <= t < start + 1.0]
        assert len(in_window) <= 5, (start, in_window)
    before = now[0]
    limiter.acquire("DescribeKey")  # no quota configured: never waits
    assert now[0] == before


def test_paginate_follows_markers() -> None:
    pages = {
        None: {"Keys": [{"KeyId": "a"}], "Truncated": True, "NextMarker": "m1"},
        "m1": {"Keys": [{"KeyId": "b"}], "Truncated": True, "NextMarker": "m2"},
        "m2": {"Keys": [{"KeyId": "c"}], "Truncated": False},
    }
    fake = FakeKms(responses={"ListKeys": lambda **p: pages[p.get("Marker")]})
    keys = api_for(fake).paginate("ListKeys", "Keys", Limit=1000)
    assert [k["KeyId"] for k in keys] == ["a", "b", "c"]
    assert [p.get("Marker") for _, p in fake.calls] == [None, "m1", "m2"]


def test_client_errors_other_than_throttling_are_raised_at_once() -> None:
    fake = FakeKms()
    fake.failures["DescribeKey"] = ["AccessDeniedException"]
    with pytest.raises(Exception) as err:
        api_for(fake).call("DescribeKey", KeyId="x")
    assert err.value.__class__ is client_error("x", "y").__class__
    assert fake.names() == ["DescribeKey"]
