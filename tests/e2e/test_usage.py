"""Key usage through the real CLI: the plan shows the last use of the keys it retires,
apply refuses to retire a key in use (or of unknown use) without --allow-in-use, and drift
reports keys with no recorded use and what they cost.

moto has no GetKeyLastUsage: ``reconciler.moto_kms`` (applied by the conftest) records
each successful cryptographic call and answers it, with a clock a test can set
(``moto_kms.set_clock``: the moto_server runs in this process). Its tracking start date is
an assumed one; tests that move the clock put it well before the keys' creation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from reconciler import moto_kms

from .conftest import Converge, Inventory, MotoServer, RunCli
from .helpers import ALPHA, BETA, field_lines, managed_keys
from .robustness.faults import install

pytestmark = pytest.mark.e2e


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """The moto_server's clock: the test sets ``clock[0]``, None for the real time."""
    moment: list[Any] = [None]
    # tracking "began" long before any key a test makes, whatever today's date
    monkeypatch.setattr(
        moto_kms, "TRACKING_BEGAN", datetime.now(timezone.utc) - timedelta(days=1000)
    )
    moto_kms.set_clock(lambda: moment[0] or datetime.now(timezone.utc))
    try:
        yield moment
    finally:
        moto_kms.set_clock(None)


def _usage_reads(server: MotoServer) -> int:
    return server.kms_operations().count("GetKeyLastUsage")


def _use(kms: Any, key_id: str) -> None:
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"payroll")["CiphertextBlob"]
    kms.decrypt(CiphertextBlob=blob)


def test_a_key_in_use_is_shown_in_the_plan_and_not_deleted_without_allow_in_use(
    converge: Converge, inventory: Inventory, run_cli: RunCli, kms: Any, server: MotoServer
) -> None:
    keys = converge([ALPHA, BETA])
    _use(kms, keys["beta"])

    same = run_cli("plan", "--allow-destroy", "--detailed-exitcode")
    assert same.returncode == 0, same
    assert _usage_reads(server) == 0, "a plan that retires nothing reads no usage"
    assert "Key usage" not in same.stdout

    inventory.write([ALPHA])  # beta's spec removed
    server.recorder.clear()
    planned = run_cli("plan", "--allow-destroy")
    assert planned.returncode == 0, planned
    assert _usage_reads(server) == 1, "only the key the plan deletes"
    assert "# usage: last used less than a day ago: Decrypt" in field_lines(planned.stdout, "beta")
    assert "Key usage: 1 read(s) (GetKeyLastUsage) for the 1 key(s)" in planned.stdout
    as_json = json.loads(run_cli("plan", "--allow-destroy", "--format", "json").stdout)
    (beta,) = [k for k in as_json["targets"][0]["keys"] if k["name"] == "beta"]
    assert beta["last_used"] == "last used less than a day ago: Decrypt"
    assert as_json["targets"][0]["usage"][0]["operation"] == "Decrypt"
    assert as_json["summary"]["usage_reads"] == 1
    markdown = run_cli("plan", "--allow-destroy", "--format", "markdown").stdout
    assert "(last used less than a day ago: Decrypt)" in markdown

    server.recorder.clear()
    refused = run_cli("apply", "--allow-destroy", "--auto-approve")
    assert refused.returncode == 1, refused
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, refused
    assert f"ScheduleKeyDeletion key 'beta' ({keys['beta']})" in errors[0]
    assert "last used less than a day ago: Decrypt" in errors[0]
    assert "within retire_guard_days (30)" in errors[0] and "--allow-in-use" in errors[0]
    assert "ScheduleKeyDeletion" not in server.kms_operations()
    assert kms.describe_key(KeyId=keys["beta"])["KeyMetadata"]["KeyState"] == "Enabled"

    allowed = run_cli("apply", "--allow-destroy", "--allow-in-use", "--auto-approve")
    assert allowed.returncode == 0, allowed
    assert kms.describe_key(KeyId=keys["beta"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_a_key_used_before_the_guard_period_is_retired_and_the_saved_plan_reads_again(
    converge: Converge,
    inventory: Inventory,
    run_cli: RunCli,
    kms: Any,
    clock: list[datetime],
    server: MotoServer,
) -> None:
    keys = converge([ALPHA, BETA], settings={"retire_guard_days": 10})
    clock[0] = datetime.now(timezone.utc) - timedelta(days=12)
    _use(kms, keys["beta"])
    clock[0] = None
    inventory.write([ALPHA], settings={"retire_guard_days": 10})
    saved = run_cli("plan", "--allow-destroy", "--out", "plan.json")
    assert saved.returncode == 0, saved
    assert "# usage: last used 12 days ago: Decrypt" in saved.stdout

    _use(kms, keys["beta"])  # used again after the plan was saved: apply reads it again
    server.recorder.clear()
    refused = run_cli("apply", "--plan", "plan.json", "--allow-destroy", "--auto-approve")
    assert refused.returncode == 1, refused
    assert "within retire_guard_days (10)" in refused.stderr
    assert "ScheduleKeyDeletion" not in server.kms_operations()

    clock[0] = datetime.now(timezone.utc) - timedelta(days=11)
    _use(kms, keys["beta"])  # the last use is 11 days ago again
    clock[0] = None
    applied = run_cli("apply", "--plan", "plan.json", "--allow-destroy", "--auto-approve")
    assert applied.returncode == 0, applied
    assert kms.describe_key(KeyId=keys["beta"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_drift_reports_keys_unused_for_100_days_with_their_cost(
    converge: Converge, run_cli: RunCli, kms: Any, clock: list[datetime], server: MotoServer
) -> None:
    clock[0] = datetime.now(timezone.utc) - timedelta(days=100)
    keys = converge([ALPHA, BETA])
    kms.rotate_key_on_demand(KeyId=keys["beta"])
    unmanaged = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")
    unmanaged_id = unmanaged["KeyMetadata"]["KeyId"]
    clock[0] = datetime.now(timezone.utc) - timedelta(days=5)
    _use(kms, keys["alpha"])  # alpha is in use: not reported
    clock[0] = None
    server.recorder.clear()

    found = run_cli("drift", "--format", "json")
    assert found.returncode == 2, found
    report = json.loads(found.stdout)
    unused = {
        f["key_id"]: f
        for t in report["targets"]
        for f in t["findings"]
        if f["rule"] == "unused-key"
    }
    assert set(unused) == {keys["beta"], unmanaged_id}
    beta = unused[keys["beta"]]
    assert beta["severity"] == "low" and beta["key"] == "beta"
    assert beta["monthly_cost_usd"] == 2.0  # the key and its one rotation
    assert "no recorded use for 100 days" in beta["message"] and "$2.00/month" in beta["message"]
    assert unused[unmanaged_id]["monthly_cost_usd"] == 1.0
    assert "at least $1.00/month" in unused[unmanaged_id]["message"]
    # one GetKeyLastUsage per key drift reports (the apply lock's anchor is not one)
    assert _usage_reads(server) == 3 == report["targets"][0]["usage_reads"]

    text = run_cli("drift").stdout
    assert "unused-key" in text and f"unmanaged key {unmanaged_id} has no recorded use" in text
    sarif = json.loads(run_cli("drift", "--format", "sarif").stdout)
    results = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "unused-key"]
    assert {r["properties"]["monthly_cost_usd"] for r in results} == {1.0, 2.0}
    markdown = run_cli("drift", "--format", "markdown").stdout
    assert "`unused-key`" in markdown and "$2.00/month" in markdown

    later = run_cli("drift", "--format", "json", "--fail-on", "medium")
    assert later.returncode == 0, later  # unused-key is low


def test_a_denied_usage_read_stops_apply_with_a_clear_error(
    converge: Converge, inventory: Inventory, run_cli: RunCli, kms: Any, server: MotoServer
) -> None:
    keys = converge([ALPHA, BETA])
    inventory.write([ALPHA])
    with install(server) as faults:
        faults.deny("GetKeyLastUsage", keys["beta"])
        planned = run_cli("plan", "--allow-destroy")
        assert planned.returncode == 0, planned
        assert "# usage: unknown: not permitted (kms:GetKeyLastUsage)" in planned.stdout

        refused = run_cli("apply", "--allow-destroy", "--auto-approve")
        assert refused.returncode == 1, refused
        errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, refused
        assert "cannot tell whether it is in use" in errors[0]
        assert "AccessDeniedException" in errors[0] and "kms:GetKeyLastUsage" in errors[0]
        assert "ScheduleKeyDeletion" not in server.kms_operations()

        allowed = run_cli("apply", "--allow-destroy", "--allow-in-use", "--auto-approve")
        assert allowed.returncode == 0, allowed
    assert set(managed_keys(kms)) == {"alpha", "beta"}
    assert kms.describe_key(KeyId=keys["beta"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
