"""Staged retirement (a spec's ``retire:``) through the real CLI, across simulated dates.

Two clocks are set together: moto's (``moto_kms.set_clock``: when a use is recorded and
when a key is created; the moto_server runs in this process) and the CLI's
(``KMS_RECONCILER_NOW`` in the subprocess's environment: the plan's date, the retire tag it
writes, the usage's read time). The days are simulated from ``T0``, a fixed date.

Real KMS refuses Encrypt and Decrypt on a disabled key (DisabledException); moto does not
(moto-kms-notes section 6). So a "use after disabling" is made here the only way real KMS
allows it: someone enables the key again out of band, then uses it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from reconciler import moto_kms

from .conftest import CliResult, Converge, Inventory, MotoServer, RunCli
from .helpers import ALPHA, BETA, NO_CHANGES, operations, tags_of
from .robustness.faults import install

pytestmark = pytest.mark.e2e

T0 = datetime(2030, 1, 10, 12, 0, tzinfo=timezone.utc)
TAG = "kms-reconciler:retire-disabled-on"


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


@pytest.fixture
def moto_clock() -> Iterator[list[datetime]]:
    """moto's clock: the test sets ``moto_clock[0]``."""
    moment = [T0]
    moto_kms.set_clock(lambda: moment[0])
    try:
        yield moment
    finally:
        moto_kms.set_clock(None)


@pytest.fixture
def beta(converge: Converge, moto_clock: list[datetime]) -> str:
    """alpha and beta applied, made at T0 by moto's clock: beta's key id (the key each
    test retires)."""
    return converge([ALPHA, BETA])["beta"]


def at(run_cli: RunCli, when: datetime, *args: str) -> CliResult:
    """The CLI as of ``when`` (its clock; moto's is the test's business)."""
    return run_cli(*args, env_extra={"KMS_RECONCILER_NOW": when.isoformat()})


def _state(kms: Any, key_id: str) -> str:
    return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])


def _retirement_line(text: str) -> str:
    (line,) = [x for x in text.splitlines() if x.startswith('  retirement of "beta"')]
    return line


def test_disable_on_then_observe_then_delete_across_simulated_dates(
    beta: str,
    inventory: Inventory,
    run_cli: RunCli,
    kms: Any,
    server: MotoServer,
    moto_clock: list[datetime],
) -> None:
    moto_clock[0] = day(1)
    blob = kms.encrypt(KeyId=beta, Plaintext=b"payroll")["CiphertextBlob"]
    kms.decrypt(CiphertextBlob=blob)
    retiring = {**BETA, "retire": {"disable_on": day(10).date().isoformat()}}
    inventory.write([ALPHA, retiring])

    # not due: no change, a line saying when; only the retiring key's use is read
    server.recorder.clear()
    early = at(run_cli, day(5), "plan", "--detailed-exitcode")
    assert early.returncode == 0, early
    assert NO_CHANGES in early.stdout
    assert _retirement_line(early.stdout).endswith(
        f"disable on {day(10).date()}; deletion offered 30 days after, if no use is recorded"
    )
    assert server.kms_operations().count("GetKeyLastUsage") == 1
    assert "Key usage: 1 read(s) (GetKeyLastUsage)" in early.stdout
    assert "clock: KMS_RECONCILER_NOW=2030-01-15" in early.stderr

    # due: tag, then disable (destructive)
    due = at(run_cli, day(10), "plan", "--detailed-exitcode")
    assert due.returncode == 2, due
    assert [(op, key) for op, key, _ in operations(due.stdout)] == [
        ("TagResource", "beta"),
        ("DisableKey", "beta"),
    ]
    assert "disable the key now (disable_on 2030-01-20 reached)" in _retirement_line(due.stdout)
    assert "# usage: last used 9 days ago: Decrypt" in due.stdout

    # apply: refused without --allow-destroy; then by the in-use guard (used 9 days ago,
    # within retire_guard_days 30): a disable_on date does not override it
    server.recorder.clear()
    refused = at(run_cli, day(10), "apply", "--auto-approve")
    assert refused.returncode == 1 and "--allow-destroy" in refused.stderr, refused
    guarded = at(run_cli, day(10), "apply", "--auto-approve", "--allow-destroy")
    assert guarded.returncode == 1, guarded
    assert "refusing to DisableKey key 'beta'" in guarded.stderr
    assert "within retire_guard_days (30)" in guarded.stderr
    assert not {"DisableKey", "TagResource"} & set(server.kms_operations())
    assert _state(kms, beta) == "Enabled"

    applied = at(run_cli, day(10), "apply", "--auto-approve", "--allow-destroy", "--allow-in-use")
    assert applied.returncode == 0, applied
    assert _state(kms, beta) == "Disabled"
    assert tags_of(kms, beta)[TAG] == "2030-01-20T12:00:00Z"

    # converged: the spec's enabled: true (default) does not enable it again
    again = at(run_cli, day(10), "plan", "--detailed-exitcode")
    assert again.returncode == 0, again
    assert NO_CHANGES in again.stdout
    assert "observing: disabled for retirement on 2030-01-20, no use recorded since; " in (
        _retirement_line(again.stdout)
    )
    assert "deletion offered on 2030-02-19" in _retirement_line(again.stdout)

    # the day before the observation ends: still nothing
    before = at(run_cli, day(39), "plan", "--detailed-exitcode")
    assert before.returncode == 0, before
    assert "ScheduleKeyDeletion" not in before.stdout

    # observe_days (30) passed, no use since: deletion offered, with the spec's window
    offered = at(run_cli, day(40), "plan", "--detailed-exitcode")
    assert offered.returncode == 2, offered
    ((op, key, summary),) = operations(offered.stdout)
    assert (op, key) == ("ScheduleKeyDeletion", "beta") and "in 30 days" in summary
    assert "Plan: 0 to create, 0 to update, 1 to delete." in offered.stdout

    no_destroy = at(run_cli, day(40), "apply", "--auto-approve")
    assert no_destroy.returncode == 1 and "--allow-destroy" in no_destroy.stderr
    assert _state(kms, beta) == "Disabled"
    deleted = at(run_cli, day(40), "apply", "--auto-approve", "--allow-destroy")
    assert deleted.returncode == 0, deleted  # last use 39 days ago: the guard lets it pass
    assert _state(kms, beta) == "PendingDeletion"

    # retired: never recovered, no change, nothing drifted about it
    final = at(run_cli, day(41), "plan", "--detailed-exitcode")
    assert final.returncode == 0, final
    assert NO_CHANGES in final.stdout
    assert "retired: deletion scheduled for" in _retirement_line(final.stdout)
    drift = json.loads(at(run_cli, day(41), "drift", "--format", "json").stdout)
    assert [f for t in drift["targets"] for f in t["findings"] if f["key"] == "beta"] == []


def test_a_use_after_disabling_stops_the_retirement_and_drift_reports_it(
    beta: str,
    inventory: Inventory,
    run_cli: RunCli,
    kms: Any,
    moto_clock: list[datetime],
) -> None:
    inventory.write([ALPHA, {**BETA, "retire": {"after_unused_days": 20, "observe_days": 7}}])

    waiting = at(run_cli, day(19.5), "plan", "--detailed-exitcode")
    assert waiting.returncode == 0, waiting
    assert (
        f"disable when unused for 20 days on {day(20).date()} at the earliest (no use "
        f"recorded since its creation on {T0.date()})"
    ) in _retirement_line(waiting.stdout)

    # unused for 20 days since its creation: stage 1, and the guard has nothing to refuse
    applied = at(run_cli, day(20), "apply", "--auto-approve", "--allow-destroy")
    assert applied.returncode == 0, applied
    assert _state(kms, beta) == "Disabled"
    assert tags_of(kms, beta)[TAG] == "2030-01-30T12:00:00Z"

    # out of band, as real KMS requires: enabled again, then used
    moto_clock[0] = day(23)
    kms.enable_key(KeyId=beta)
    kms.generate_data_key(KeyId=beta, KeySpec="AES_256")

    later = at(run_cli, day(40), "plan", "--detailed-exitcode")
    assert later.returncode == 0, later  # no deletion offered, the key is left enabled
    assert NO_CHANGES in later.stdout
    line = _retirement_line(later.stdout)
    assert "stopped: disabled for retirement on 2030-01-30, but used on 2030-02-02 12:00" in line
    assert "(GenerateDataKey)" in line
    applied_again = at(run_cli, day(40), "apply", "--auto-approve", "--allow-destroy")
    assert applied_again.returncode == 0 and NO_CHANGES in applied_again.stdout
    assert _state(kms, beta) == "Enabled"

    found = at(run_cli, day(40), "drift", "--format", "json")
    assert found.returncode == 2, found
    report = json.loads(found.stdout)
    (used,) = [f for t in report["targets"] for f in t["findings"] if f["key"] == "beta"]
    assert (used["rule"], used["severity"], used["key_id"]) == ("retirement-used", "high", beta)
    assert used["after"] == "2030-02-02T12:00:00+00:00"
    assert "retirement-used" in at(run_cli, day(40), "drift").stdout
    assert "`retirement-used`" in at(run_cli, day(40), "drift", "--format", "markdown").stdout
    sarif = json.loads(at(run_cli, day(40), "drift", "--format", "sarif").stdout)
    results = sarif["runs"][0]["results"]
    assert [r["level"] for r in results if r["ruleId"] == "retirement-used"] == ["error"]


def test_without_get_key_last_usage_the_retirement_waits_and_apply_refuses(
    beta: str, inventory: Inventory, run_cli: RunCli, kms: Any, server: MotoServer
) -> None:
    with install(server) as faults:
        faults.deny("GetKeyLastUsage", beta)
        inventory.write([ALPHA, {**BETA, "retire": {"after_unused_days": 5}}])
        unknown = at(run_cli, day(30), "plan", "--detailed-exitcode")
        assert unknown.returncode == 0, unknown
        assert (
            "cannot tell whether it was unused for 5 days: GetKeyLastUsage answered "
            "AccessDeniedException (the tool needs kms:GetKeyLastUsage on it)"
        ) in _retirement_line(unknown.stdout)

        inventory.write([ALPHA, {**BETA, "retire": {"disable_on": day(1).date().isoformat()}}])
        refused = at(run_cli, day(30), "apply", "--auto-approve", "--allow-destroy")
        assert refused.returncode == 1, refused
        assert "cannot tell whether it is in use" in refused.stderr
        assert "kms:GetKeyLastUsage" in refused.stderr
    assert _state(kms, beta) == "Enabled" and TAG not in tags_of(kms, beta)
