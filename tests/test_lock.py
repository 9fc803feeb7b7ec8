"""The apply lock: one writer per account and Region, kept in KMS (an alias is an atomic
create-if-absent). Expected outcomes follow the lock's rules: whoever creates the alias
holds the lock and records itself on the anchor; a held lock is refused (or waited for)
naming its holder; a lost answer is resolved by reading, never by a blind resend;
force-unlock clears only the lock it names.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ConnectionClosedError
from click.testing import CliRunner, Result
from moto import mock_aws

from reconciler import catalog
from reconciler.aws import KmsApi, sandbox_session
from reconciler.cli import main
from reconciler.errors import LockHeldError
from reconciler.lock import GRACE, Clock, acquire, force_unlock, holder_of, inspect

REPO = Path(__file__).resolve().parent.parent


class Faulty:
    """A boto3 KMS client whose next call of an operation loses its answer: the connection
    drops after KMS executed the request (``after``) or before it arrived."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.faults: dict[str, list[bool]] = {}  # operation -> [executed first?]
        self.sent: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        operation = "".join(part.capitalize() for part in name.split("_"))

        def call(**params: Any) -> Any:
            self.sent.append(operation)
            pending = self.faults.get(operation)
            if pending:
                executed = pending.pop(0)
                if executed:
                    method(**params)
                raise ConnectionClosedError(endpoint_url="https://kms.fake")
            return method(**params)

        return call


class FakeClock(Clock):
    """Time that passes only when something sleeps; ``on_sleep`` runs at each sleep."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []
        self.on_sleep: list[Any] = []
        super().__init__(
            monotonic=lambda: self.t,
            sleep=self._sleep,
            now=lambda: datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc),
        )

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds
        for action in self.on_sleep:
            action()


@pytest.fixture
def kms(fake_credentials: None) -> Iterator[Faulty]:
    with mock_aws():
        yield Faulty(boto3.client("kms", region_name="us-east-1"))


def api(kms: Faulty) -> KmsApi:
    return KmsApi(kms, sleep=lambda s: None)


def aliases(kms: Faulty) -> dict[str, str]:
    listed = kms.client.list_aliases()["Aliases"]
    return {
        a["AliasName"]: a.get("TargetKeyId") for a in listed if "kms-reconciler" in a["AliasName"]
    }


def anchor_tags(kms: Faulty) -> dict[str, str]:
    anchor = aliases(kms)[catalog.LOCK_ANCHOR_ALIAS]
    tags = kms.client.list_resource_tags(KeyId=anchor)["Tags"]
    return {t["TagKey"]: t["TagValue"] for t in tags}


def test_acquire_makes_one_anchor_records_the_holder_and_release_clears_it(kms: Faulty) -> None:
    lock = acquire(api(kms), "prod", "arn:aws:sts::1:assumed-role/ci/run-1", clock=FakeClock())
    found = aliases(kms)
    assert found[catalog.LOCK_ALIAS] == found[catalog.LOCK_ANCHOR_ALIAS] == lock.anchor_id
    tags = anchor_tags(kms)
    assert tags[catalog.LOCK_ID_TAG] == lock.lock_id
    assert tags[catalog.LOCK_HOLDER_TAG] == "arn:aws:sts::1:assumed-role/ci/run-1"
    assert tags[catalog.LOCK_SINCE_TAG] == "2026-11-29T12:00:00Z"
    assert tags[catalog.LOCK_ANCHOR_TAG] == "true"
    lock.release()
    assert catalog.LOCK_ALIAS not in aliases(kms)
    assert set(anchor_tags(kms)) == {catalog.LOCK_ANCHOR_TAG}  # no stale holder left
    again = acquire(api(kms), "prod", "run-2", clock=FakeClock())
    assert again.anchor_id == lock.anchor_id  # the anchor is made once
    assert len(kms.client.list_keys()["Keys"]) == 1
    again.release()


def test_a_held_lock_is_refused_at_once_naming_holder_since_and_id(kms: Faulty) -> None:
    first = acquire(api(kms), "prod", "holder-one", clock=FakeClock())
    with pytest.raises(LockHeldError) as caught:
        acquire(api(kms), "prod", "holder-two", clock=FakeClock())
    message = str(caught.value)
    assert "holder-one" in message and "2026-11-29T12:00:00Z" in message
    assert first.lock_id in message
    assert f"kms-reconciler force-unlock --target prod {first.lock_id}" in message
    assert anchor_tags(kms)[catalog.LOCK_ID_TAG] == first.lock_id  # untouched


def test_waiting_for_a_held_lock_takes_it_when_released(kms: Faulty) -> None:
    first = acquire(api(kms), "prod", "holder-one", clock=FakeClock())
    clock = FakeClock()
    clock.on_sleep.append(lambda: clock.t >= 10 and first.release())
    waits: list[Any] = []
    second = acquire(api(kms), "prod", "holder-two", 60, clock=clock, on_wait=waits.append)
    assert anchor_tags(kms)[catalog.LOCK_ID_TAG] == second.lock_id
    assert len(waits) == 1 and waits[0].lock_id == first.lock_id
    assert 10 <= clock.t < 60


def test_waiting_ends_after_the_timeout(kms: Faulty) -> None:
    acquire(api(kms), "prod", "holder-one", clock=FakeClock())
    clock = FakeClock()
    with pytest.raises(LockHeldError, match="after waiting 12s"):
        acquire(api(kms), "prod", "holder-two", 12, clock=clock)
    assert clock.t == pytest.approx(12)


def test_force_unlock_clears_only_the_named_lock(kms: Faulty) -> None:
    assert force_unlock(api(kms), "prod", None) is None  # nothing held
    lock = acquire(api(kms), "prod", "dead-run", clock=FakeClock())
    with pytest.raises(LockHeldError, match="not lock ID wrong-id"):
        force_unlock(api(kms), "prod", "wrong-id")
    assert catalog.LOCK_ALIAS in aliases(kms)
    cleared = force_unlock(api(kms), "prod", lock.lock_id)
    assert cleared is not None and cleared.holder == "dead-run"
    assert catalog.LOCK_ALIAS not in aliases(kms)
    assert inspect(api(kms), "prod") is None
    lock.release()  # the dead run's release (if it ever came) no longer does anything
    acquire(api(kms), "prod", "next-run", clock=FakeClock())


def test_a_release_never_removes_a_lock_another_run_took_since(kms: Faulty) -> None:
    stale = acquire(api(kms), "prod", "slow-run", clock=FakeClock())
    force_unlock(api(kms), "prod", stale.lock_id)
    newer = acquire(api(kms), "prod", "next-run", clock=FakeClock())
    stale.release()
    assert inspect(api(kms), "prod") is not None
    assert anchor_tags(kms)[catalog.LOCK_ID_TAG] == newer.lock_id


def test_lost_answer_lock_made_is_ours_after_the_grace_period(kms: Faulty) -> None:
    acquire(api(kms), "prod", "make-anchor", clock=FakeClock()).release()
    kms.sent.clear()
    kms.faults["CreateAlias"] = [True]  # executed; the answer is lost
    clock = FakeClock()
    lock = acquire(api(kms), "prod", "me", clock=clock)
    assert kms.sent.count("CreateAlias") == 1  # the lost one, never resent
    assert clock.t >= GRACE
    assert anchor_tags(kms)[catalog.LOCK_ID_TAG] == lock.lock_id


def test_lost_answer_lock_not_made_is_tried_again(kms: Faulty) -> None:
    acquire(api(kms), "prod", "make-anchor", clock=FakeClock()).release()
    kms.faults["CreateAlias"] = [False]  # never arrived
    clock = FakeClock()
    lock = acquire(api(kms), "prod", "me", clock=clock)
    assert anchor_tags(kms)[catalog.LOCK_ID_TAG] == lock.lock_id
    assert clock.t == 0  # the read showed no alias: no need to wait


def test_lost_answer_while_another_run_holds_the_lock_is_not_ours(kms: Faulty) -> None:
    holder = acquire(api(kms), "prod", "holder-one", clock=FakeClock())
    kms.faults["CreateAlias"] = [False]
    with pytest.raises(LockHeldError, match="holder-one"):
        acquire(api(kms), "prod", "me", clock=FakeClock())
    assert anchor_tags(kms)[catalog.LOCK_ID_TAG] == holder.lock_id


def test_lost_answer_on_release_is_resolved_by_reading(kms: Faulty) -> None:
    lock = acquire(api(kms), "prod", "me", clock=FakeClock())
    kms.faults["DeleteAlias"] = [True]  # deleted; the answer is lost
    lock.release()
    assert catalog.LOCK_ALIAS not in aliases(kms)
    assert kms.sent.count("DeleteAlias") == 1  # gone: nothing to resend
    lock = acquire(api(kms), "prod", "me", clock=lock.clock)
    kms.faults["DeleteAlias"] = [False]  # never arrived: still there, and still ours
    lock.release()
    assert catalog.LOCK_ALIAS not in aliases(kms)
    assert kms.sent.count("DeleteAlias") == 3


def test_holder_is_a_valid_tag_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_REPOSITORY", "org/keys#1")
    holder = holder_of("arn:aws:sts::111122223333:assumed-role/ci/gh-42")
    assert holder.startswith("arn:aws:sts::111122223333:assumed-role/ci/gh-42 on ")
    assert "run org/keys-1/actions/runs/42" in holder
    assert len(holder_of("x" * 400)) == 256


# -- through the command line (embedded sandbox) --------------------------------------------


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--sandbox", "--target", "staging", "--no-color"])


STAGING = ("444455556666", "eu-west-1")


def hold_lock_as(holder: str) -> str:
    """Take staging's lock in the sandbox as another run would, and keep it."""
    with sandbox_session():
        client = boto3.client("kms", region_name=STAGING[1])
        client.meta.events.register(
            "before-sign.*.*",
            lambda request, **_: request.headers.__setitem__("x-moto-account-id", STAGING[0]),
        )
        return acquire(KmsApi(client), "staging", holder).lock_id


def test_cli_apply_refuses_a_held_lock_and_force_unlock_clears_it(workdir: Path) -> None:
    assert cli("apply", "--auto-approve").exit_code == 0
    assert "apply lock" not in cli("plan").stderr  # released after the apply
    lock_id = hold_lock_as("arn:aws:sts::444455556666:assumed-role/ci/other-run")

    plan = cli("plan", "--detailed-exitcode")  # plan takes no lock, and shows it
    assert plan.exit_code == 0 and "No changes." in plan.stdout
    assert "the apply lock is held by arn:aws:sts::444455556666:assumed-role/ci/other-run" in (
        plan.stderr
    )
    drift = cli("drift")
    assert drift.exit_code == 0 and lock_id in drift.stderr  # never drift, never unmanaged
    assert "unmanaged" not in drift.stdout.replace("0 unmanaged", "")

    refused = cli("apply", "--auto-approve")
    assert refused.exit_code == 1
    assert f"force-unlock --target staging {lock_id}" in refused.stderr
    assert "other-run" in refused.stderr
    rotate = cli("rotate", "app-data", "--now", "--auto-approve")
    assert rotate.exit_code == 1 and lock_id in rotate.stderr

    assert cli("force-unlock", "not-the-id", "--auto-approve").exit_code == 1
    cleared = cli("force-unlock", lock_id, "--auto-approve")
    assert (
        cleared.exit_code == 0 and f"cleared the apply lock (lock ID {lock_id})" in cleared.stdout
    )
    assert cli("force-unlock", "--auto-approve").exit_code == 0  # nothing held: nothing to do
    assert cli("apply", "--auto-approve").exit_code == 0


def test_cli_saved_plan_is_not_stale_because_of_the_lock(workdir: Path) -> None:
    assert cli("plan", "--out", "plan.json").exit_code == 0
    applied = cli("apply", "--plan", "plan.json", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert cli("plan", "--detailed-exitcode").exit_code == 0


def test_cli_dry_run_takes_no_lock(workdir: Path) -> None:
    lock_id = hold_lock_as("someone")
    dry = cli("apply", "--dry-run")
    assert dry.exit_code == 0 and "Dry run" in dry.stdout and lock_id in dry.stderr


def test_cli_bad_lock_timeout_is_an_input_error(workdir: Path) -> None:
    result = cli("apply", "--lock-timeout", "soon")
    assert result.exit_code == 1 and "--lock-timeout" in result.stderr
