"""One retry policy: every HTTP attempt paced and counted, no write blindly resent.

The outcomes expected here follow KMS's semantics: a throttled request (HTTP 400) was not
executed; an HTTP 5xx, a read timeout or a dropped connection may have been; a refused
connection sent nothing. CreateKey is never idempotent (each call makes a key), so it is
never resent after an ambiguous failure; other writes are resent and the errors a repeat
itself causes are resolved by reading.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from reconciler.applier import apply_target, rotate_now
from reconciler.aws import (
    AmbiguousOutcome,
    AwsOptions,
    KmsApi,
    RateLimiter,
    _client_config,
    retry_settings,
)
from reconciler.errors import InputError
from reconciler.plan import TargetPlan
from reconciler.planner import PlanOptions, make_plan
from tests.factories import desired, desired_key, observed, observed_key
from tests.fakes import FakeKms, client_error

KEY = "1234abcd-0000-0000-0000-000000000000"


def api_for(fake: FakeKms, max_attempts: int = 6) -> KmsApi:
    return KmsApi(fake, sleep=lambda s: None, max_attempts=max_attempts)


def new_key_plan() -> TargetPlan:
    return make_plan(desired(desired_key("a")), observed())


def no_sleep(seconds: float) -> None:
    pass


# -- the HTTP level: what botocore sends is what the tool counts ----------------------------


class _Always(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's one canned response."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server: Any = self.server
        with server.lock:
            server.count += 1
        status, content_type, body = server.answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def always() -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Always)
    server.count, server.lock = 0, threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def real_client(server: Any) -> Any:
    return boto3.client(
        "kms",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=_client_config(AwsOptions()),
    )


@pytest.mark.parametrize(
    "answer",
    [
        (400, "application/x-amz-json-1.1", b'{"__type":"ThrottlingException","message":"slow"}'),
        (500, "application/x-amz-json-1.1", b'{"__type":"KMSInternalException","message":"x"}'),
        (503, "text/html", b"<html><body>503 Service Unavailable</body></html>"),
    ],
    ids=["throttling", "http-500", "bare-503-from-a-proxy"],
)
def test_every_http_request_is_one_counted_attempt(always: Any, answer: Any) -> None:
    always.answer = answer
    api = KmsApi(real_client(always), sleep=no_sleep, max_attempts=4)
    with pytest.raises(Exception):  # noqa: B017 (the last attempt's own error)
        api.call("ListKeys")
    # botocore sends no hidden retry: the server saw exactly the attempts the tool counted
    assert always.count == 4 == api.calls["ListKeys"]
    assert sum(api.retries.values()) == 3


def test_a_limiter_paces_every_attempt_retries_included(always: Any) -> None:
    always.answer = (400, "application/x-amz-json-1.1", b'{"__type":"ThrottlingException"}')
    acquired: list[str] = []

    class Recording(RateLimiter):
        def acquire(self, operation: str) -> None:
            acquired.append(operation)

    api = KmsApi(real_client(always), Recording({}), sleep=no_sleep, max_attempts=3)
    with pytest.raises(Exception):  # noqa: B017
        api.call("DescribeKey", KeyId=KEY)
    assert acquired == ["DescribeKey"] * 3 == ["DescribeKey"] * always.count


def test_a_dropped_connection_is_retried_for_a_read() -> None:
    fake = FakeKms(responses={"DescribeKey": lambda **p: {"KeyMetadata": {"KeyId": KEY}}})
    fake.failures["DescribeKey"] = ["DROP", "503", "REFUSED"]
    api = api_for(fake)
    assert api.call("DescribeKey", KeyId=KEY)["KeyMetadata"]["KeyId"] == KEY
    assert fake.names() == ["DescribeKey"] * 4
    assert api.retries == {
        "DescribeKey (ConnectionClosedError)": 1,
        "DescribeKey (503)": 1,
        "DescribeKey (EndpointConnectionError)": 1,
    }


def test_client_errors_are_not_retried() -> None:
    fake = FakeKms()
    fake.failures["DescribeKey"] = ["AccessDeniedException"]
    with pytest.raises(Exception, match="AccessDenied"):
        api_for(fake).call("DescribeKey", KeyId=KEY)
    assert fake.names() == ["DescribeKey"]


# -- AWS_MAX_ATTEMPTS and AWS_RETRY_MODE -----------------------------------------------------


@pytest.mark.parametrize(
    ("env", "attempts"),
    [({}, 6), ({"AWS_MAX_ATTEMPTS": "3"}, 3), ({"AWS_MAX_ATTEMPTS": " 1 "}, 1)]
    + [({"AWS_RETRY_MODE": mode}, 6) for mode in ("standard", "adaptive")],
    ids=["default", "three", "one", "standard", "adaptive"],
)
def test_retry_settings_follow_the_aws_environment(env: dict[str, str], attempts: int) -> None:
    assert retry_settings(env) == attempts


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"AWS_MAX_ATTEMPTS": "0"}, "AWS_MAX_ATTEMPTS"),
        ({"AWS_MAX_ATTEMPTS": "three"}, "AWS_MAX_ATTEMPTS"),
        ({"AWS_MAX_ATTEMPTS": "500"}, "AWS_MAX_ATTEMPTS"),
        ({"AWS_RETRY_MODE": "legacy"}, "AWS_RETRY_MODE"),
        ({"AWS_RETRY_MODE": "fast"}, "AWS_RETRY_MODE"),
    ],
    ids=["zero", "not-a-number", "too-many", "legacy", "unknown-mode"],
)
def test_bad_retry_settings_are_refused_in_one_line(env: dict[str, str], field: str) -> None:
    with pytest.raises(InputError) as caught:
        retry_settings(env)
    (line,) = caught.value.lines()
    assert line.startswith(f"{field}: ")


def test_aws_max_attempts_bounds_the_attempts_of_a_throttled_call() -> None:
    fake = FakeKms()
    fake.failures["CreateKey"] = ["ThrottlingException"] * 10
    api = api_for(fake, max_attempts=retry_settings({"AWS_MAX_ATTEMPTS": "2"}))
    assert not apply_target(new_key_plan(), api).ok
    assert fake.names().count("CreateKey") == 2


# -- adaptive pacing ------------------------------------------------------------------------


def test_throttling_halves_the_operation_rate_and_successes_restore_it() -> None:
    now = [0.0]
    limiter = RateLimiter({"CreateKey": 4.0, "DescribeKey": 100.0}, clock=lambda: now[0])
    limiter.throttled("CreateKey")
    now[0] += 1.0
    limiter.throttled("CreateKey")
    assert limiter.rate("CreateKey") == pytest.approx(1.0)
    assert limiter.rate("DescribeKey") == pytest.approx(100.0)  # each family on its own
    for _ in range(100):
        now[0] += 1.0
        limiter.throttled("CreateKey")
    assert limiter.rate("CreateKey") == pytest.approx(4.0 / 16)  # a floor, never zero
    for _ in range(20):
        limiter.succeeded("CreateKey")
    assert limiter.rate("CreateKey") == pytest.approx(4.0)


def test_the_calls_throttled_in_one_burst_halve_the_rate_once() -> None:
    # Eight workers throttled within the same second are one congestion event (as TCP
    # halves once per window, not per lost packet): halving eight times would drop the rate
    # to its floor and take a minute to recover.
    now = [0.0]
    limiter = RateLimiter({"CreateKey": 4.0}, clock=lambda: now[0])
    for i in range(8):
        now[0] = i * 0.1
        limiter.throttled("CreateKey")
    assert limiter.rate("CreateKey") == pytest.approx(2.0)
    now[0] = 1.8  # a second after the decrease: a new event
    limiter.throttled("CreateKey")
    assert limiter.rate("CreateKey") == pytest.approx(1.0)


def test_a_throttled_call_slows_its_own_family() -> None:
    fake = FakeKms()
    fake.failures["CreateKey"] = ["ThrottlingException"]
    limiter = RateLimiter({"CreateKey": 4.0}, sleep=no_sleep)
    api = KmsApi(fake, limiter, sleep=no_sleep)
    api.call("CreateKey")
    assert limiter.rate("CreateKey") == pytest.approx(2.0 + 4.0 / 20)


# -- CreateKey: never resent after an ambiguous failure --------------------------------------


@pytest.mark.parametrize("fault", ["KMSInternalException@after", "503@after", "DROP@after"])
def test_create_key_executed_but_unanswered_is_found_by_its_identity_tag(fault: str) -> None:
    fake = FakeKms()
    fake.failures["CreateKey"] = [fault]
    result = apply_target(new_key_plan(), api_for(fake), sleep=no_sleep)
    assert result.ok, result.failed
    assert fake.names().count("CreateKey") == 1  # not resent
    (key_id,) = fake.keys  # exactly one key carries the name
    assert fake.keys[key_id]["kms-reconciler:name"] == "a"
    assert result.created == {"a": key_id}
    # the later operations work on that key
    alias = next(p for n, p in fake.calls if n == "CreateAlias")
    assert alias["TargetKeyId"] == key_id


@pytest.mark.parametrize("fault", ["KMSInternalException", "DROP", "503"])
def test_create_key_not_listed_after_a_lost_answer_is_never_sent_again(fault: str) -> None:
    # The request did not take effect, but the tool cannot know that: KMS may take minutes
    # to list a new key, so a second CreateKey could make the name's second key.
    fake = FakeKms()
    fake.failures["CreateKey"] = [fault]
    slept: list[float] = []
    result = apply_target(new_key_plan(), api_for(fake), sleep=slept.append)
    assert not result.ok
    (op, message), *_ = result.failed
    assert op.kind.value == "CreateKey"
    assert "no key tagged kms-reconciler:name=a is listed" in message
    assert "not sent again" in message
    names = fake.names()
    assert names.count("CreateKey") == 1
    assert names.count("ListKeys") >= 2 and sum(slept) >= 5  # looked for a few seconds
    assert fake.keys == {}
    # the next apply plans from what KMS lists then, and makes the key once
    assert apply_target(new_key_plan(), api_for(fake)).ok
    assert len(fake.keys) == 1


def test_create_key_refused_connection_is_simply_retried() -> None:
    fake = FakeKms()
    fake.failures["CreateKey"] = ["REFUSED", "ThrottlingException"]
    result = apply_target(new_key_plan(), api_for(fake), sleep=no_sleep)
    assert result.ok
    assert fake.names()[:3] == ["CreateKey"] * 3  # nothing was sent: no need to look
    assert len(fake.keys) == 1


def test_create_key_lookup_never_guesses_past_an_unreadable_key() -> None:
    fake = FakeKms()
    fake.keys["someone-elses"] = {}
    fake.failures["CreateKey"] = ["500"]
    fake.failures["ListResourceTags"] = ["AccessDeniedException"]
    result = apply_target(new_key_plan(), api_for(fake), sleep=no_sleep)
    assert not result.ok and "AccessDenied" in result.failed[0][1]
    assert fake.names().count("CreateKey") == 1


# -- other writes: resent, and a repeat's own error resolved by reading ------------------------


class AliasStore:
    """CreateAlias / DeleteAlias / ListAliases with real KMS's errors."""

    def __init__(self, **aliases: str) -> None:
        self.aliases = {f"alias/{k}": v for k, v in aliases.items()}

    def responses(self) -> dict[str, Any]:
        return {
            "CreateAlias": self.create,
            "DeleteAlias": self.delete,
            "ListAliases": lambda **p: {
                "Aliases": [
                    {"AliasName": a, "TargetKeyId": t}
                    for a, t in self.aliases.items()
                    if t == p.get("KeyId", t)
                ]
            },
        }

    def create(self, AliasName: str, TargetKeyId: str) -> dict[str, Any]:
        if AliasName in self.aliases:
            raise client_error("AlreadyExistsException", "CreateAlias")
        self.aliases[AliasName] = TargetKeyId
        return {}

    def delete(self, AliasName: str) -> dict[str, Any]:
        if AliasName not in self.aliases:
            raise client_error("NotFoundException", "DeleteAlias")
        del self.aliases[AliasName]
        return {}


def alias_plan(**existing: str) -> TargetPlan:
    key = observed_key("app", KEY, aliases=frozenset(f"alias/{a}" for a in existing))
    return make_plan(
        desired(desired_key("app", aliases=frozenset({"alias/app"}))),
        observed(key),
        PlanOptions(allow_destroy=True),
    )


@pytest.mark.parametrize("fault", ["500@after", "DROP@after"])
def test_create_alias_whose_answer_was_lost_is_done_not_failed(fault: str) -> None:
    store = AliasStore()
    fake = FakeKms(responses=store.responses())
    fake.failures["CreateAlias"] = [fault]
    result = apply_target(alias_plan(), api_for(fake))
    assert result.ok, result.failed
    assert store.aliases == {"alias/app": KEY}
    assert fake.names().count("CreateAlias") == 2


def test_create_alias_taken_by_another_key_still_fails() -> None:
    store = AliasStore(app="another-key")
    fake = FakeKms(responses=store.responses())
    fake.failures["CreateAlias"] = ["500"]  # first attempt not executed; the resend fails
    result = apply_target(alias_plan(), api_for(fake))
    assert not result.ok and "AlreadyExistsException" in result.failed[0][1]
    assert store.aliases == {"alias/app": "another-key"}


def test_create_alias_conflict_without_a_resend_is_a_failure() -> None:
    store = AliasStore(app=KEY)
    fake = FakeKms(responses=store.responses())
    result = apply_target(alias_plan(), api_for(fake))
    assert not result.ok and "AlreadyExistsException" in result.failed[0][1]
    assert "ListAliases" not in fake.names()  # nothing to resolve: it was the only attempt


def test_delete_alias_whose_answer_was_lost_is_done() -> None:
    store = AliasStore(app=KEY, old=KEY)
    fake = FakeKms(responses=store.responses())
    fake.failures["DeleteAlias"] = ["DROP@after"]
    result = apply_target(alias_plan(app=KEY, old=KEY), api_for(fake))
    assert result.ok, result.failed
    assert store.aliases == {"alias/app": KEY}


class KeyStates:
    """ScheduleKeyDeletion / CancelKeyDeletion / DescribeKey with real KMS's state errors."""

    def __init__(self, state: str) -> None:
        self.state = state

    def responses(self) -> dict[str, Any]:
        return {
            "ScheduleKeyDeletion": self.schedule,
            "CancelKeyDeletion": self.cancel,
            "DescribeKey": lambda **p: {
                "KeyMetadata": {
                    "KeyId": KEY,
                    "KeyState": self.state,
                    **({"DeletionDate": "2030-01-01"} if self.state == "PendingDeletion" else {}),
                }
            },
        }

    def schedule(self, KeyId: str, **params: Any) -> dict[str, Any]:
        if self.state == "PendingDeletion":
            raise client_error("KMSInvalidStateException", "ScheduleKeyDeletion")
        self.state = "PendingDeletion"
        return {"KeyId": KeyId, "DeletionDate": "2030-01-01"}

    def cancel(self, KeyId: str) -> dict[str, Any]:
        if self.state != "PendingDeletion":
            raise client_error("KMSInvalidStateException", "CancelKeyDeletion")
        self.state = "Disabled"
        return {"KeyId": KeyId}


def test_schedule_deletion_whose_answer_was_lost_is_done() -> None:
    states = KeyStates("Enabled")
    fake = FakeKms(responses=states.responses())
    fake.failures["ScheduleKeyDeletion"] = ["500@after"]
    plan = make_plan(desired(), observed(observed_key("old", KEY)), PlanOptions(allow_destroy=True))
    result = apply_target(plan, api_for(fake))
    assert result.ok, result.failed
    assert states.state == "PendingDeletion"
    assert fake.names() == ["ScheduleKeyDeletion", "ScheduleKeyDeletion", "DescribeKey"]


def test_schedule_deletion_of_a_key_not_pending_still_fails() -> None:
    states = KeyStates("Enabled")
    fake = FakeKms(responses={**states.responses(), "ScheduleKeyDeletion": _invalid_state})
    fake.failures["ScheduleKeyDeletion"] = ["500"]
    plan = make_plan(desired(), observed(observed_key("old", KEY)), PlanOptions(allow_destroy=True))
    result = apply_target(plan, api_for(fake))
    assert not result.ok and "KMSInvalidStateException" in result.failed[0][1]


def _invalid_state(**params: Any) -> Any:
    raise client_error("KMSInvalidStateException", "ScheduleKeyDeletion")


def test_cancel_deletion_whose_answer_was_lost_is_done() -> None:
    states = KeyStates("PendingDeletion")
    fake = FakeKms(responses=states.responses())
    fake.failures["CancelKeyDeletion"] = ["DROP@after"]
    key = observed_key("app", KEY, key_state="PendingDeletion")
    result = apply_target(make_plan(desired(desired_key("app")), observed(key)), api_for(fake))
    assert result.ok, result.failed
    assert fake.names()[:3] == ["CancelKeyDeletion", "CancelKeyDeletion", "DescribeKey"]


def test_idempotent_writes_are_resent_after_an_ambiguous_failure() -> None:
    fake = FakeKms()
    fake.failures["UpdateKeyDescription"] = ["500@after", "DROP"]
    plan = make_plan(desired(desired_key("app", description="new")), observed(observed_key("app")))
    result = apply_target(plan, api_for(fake))
    assert result.ok
    assert fake.names() == ["UpdateKeyDescription"] * 3


def test_on_demand_rotation_is_never_resent() -> None:
    fake = FakeKms()
    fake.failures["RotateKeyOnDemand"] = ["500@after"]
    with pytest.raises(AmbiguousOutcome, match="RotateKeyOnDemand: outcome unknown"):
        rotate_now(api_for(fake), KEY)
    assert fake.names() == ["RotateKeyOnDemand"]
    assert fake.executed == ["RotateKeyOnDemand"]


def test_retries_are_counted_by_operation_and_reason() -> None:
    fake = FakeKms()
    fake.failures["CreateKey"] = ["ThrottlingException", "ThrottlingException"]
    fake.failures["EnableKeyRotation"] = ["503"]
    api = api_for(fake)
    assert apply_target(new_key_plan(), api).ok
    assert api.retries == {
        "CreateKey (ThrottlingException)": 2,
        "EnableKeyRotation (503)": 1,
    }
    assert json.dumps(dict(api.calls))  # counted per operation, retries included
    assert api.calls["CreateKey"] == 3
