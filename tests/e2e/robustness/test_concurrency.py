"""Two applies at once never make two keys for one name: the apply lock.

The rules (issue 13): two applies against one target never write at the same time. The
second waits up to ``--lock-timeout`` (default 0: refuse at once) and then exits 1 naming
who holds the lock; the lock is the alias ``alias/kms-reconciler/apply-lock`` in the
target account; plan takes no lock.

The two applies run as subprocesses started at the same moment, each with its own
access key ID (moto maps both to its default account), so the injector can tell their
requests apart. Every write request is slowed down a little (``write_delay``) so that
the two runs surely overlap whatever their start-up times.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from ..conftest import CLI_TIMEOUT, CliResult, Inventory, MotoServer, RunCli, cli_env
from ..helpers import ALPHA, BETA, IDENTITY_TAG, NO_CHANGES, REGION
from .faults import (
    LOCK_ALIAS,
    FaultInjector,
    changing_writes,
    created_names,
    identity_counts,
    is_write,
    lock_held,
    run_bounded,
)

pytestmark = pytest.mark.e2e

GAMMA: dict[str, Any] = {"name": "gamma", "description": "Gamma key", "aliases": ["alias/gamma"]}
KEYS = [ALPHA, BETA, GAMMA]
NAMES = sorted(k["name"] for k in KEYS)
WRITE_DELAY = 0.15
REFUSE_WITHIN = 15  # seconds: "refuse at once", with room for a slow machine
RUNNERS = ("AKIDRUNNERA0000000001", "AKIDRUNNERB0000000002")


def applies_at_once(tmp_path: Path, cli_home: Path, url: str, *extra: str) -> list[CliResult]:
    """Start one apply per RUNNERS access key at the same moment; wait for both."""
    env = cli_env(cli_home, url)
    args = ("apply", "--auto-approve", *extra)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args],
            cwd=tmp_path,
            env={**env, "AWS_ACCESS_KEY_ID": access_key},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for access_key in RUNNERS
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        results.append(CliResult(args, proc.returncode, out, err))
    return results


Race = Callable[..., list[CliResult]]


@pytest.fixture
def race(
    inventory: Inventory,
    server: MotoServer,
    faults: FaultInjector,
    kms: Any,
    tmp_path: Path,
    cli_home: Path,
) -> Race:
    """``race(*extra)``: KEYS written and every write slowed down, ``applies_at_once``.
    Whatever the two exit, no name may have two keys."""

    def race_(*extra: str) -> list[CliResult]:
        inventory.write(KEYS)
        faults.write_delay = WRITE_DELAY

        results = applies_at_once(tmp_path, cli_home, server.url, *extra)
        faults.write_delay = 0.0

        counts = identity_counts(kms, IDENTITY_TAG)
        assert set(counts.values()) == {1}, (counts, *results)
        return results

    return race_


def caller_arn(server: MotoServer) -> str:
    sts = boto3.client(
        "sts",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=RUNNERS[0],
        aws_secret_access_key="testing",
    )
    return str(sts.get_caller_identity()["Arn"])


def creates_by_runner(faults: FaultInjector) -> dict[str, list[str]]:
    """{access key: the names of the keys its CreateKey requests asked for}."""
    return {
        runner: sorted(
            created_names([s for s in faults.seen if s.access_key == runner], IDENTITY_TAG)
        )
        for runner in RUNNERS
    }


def assert_one_key_per_name(kms: Any, run_cli: RunCli) -> None:
    counts = identity_counts(kms, IDENTITY_TAG)
    assert sorted(counts) == NAMES and set(counts.values()) == {1}, counts
    assert not lock_held(kms), "a finished apply left its lock behind"
    replanned = run_cli("plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout, replanned


def test_two_applies_at_once_one_refused_by_the_lock(
    race: Race, server: MotoServer, faults: FaultInjector, run_cli: RunCli, kms: Any
) -> None:
    results = race()

    assert sorted(r.returncode for r in results) == [0, 1], results
    winner, loser = sorted(range(2), key=lambda i: results[i].returncode)
    assert "lock" in results[loser].stderr.lower(), results[loser]
    # The holder is named: at least by its principal (both runners have moto's one).
    assert caller_arn(server) in results[loser].stderr, results[loser]
    assert "Traceback" not in results[loser].stderr, results[loser]
    created = creates_by_runner(faults)
    assert created[RUNNERS[winner]] == NAMES, created
    assert created[RUNNERS[loser]] == [], created
    assert_one_key_per_name(kms, run_cli)


def test_two_applies_at_once_the_second_waits_for_the_lock(
    race: Race, faults: FaultInjector, run_cli: RunCli, kms: Any
) -> None:
    results = race("--lock-timeout", "60")

    assert [r.returncode for r in results] == [0, 0], results
    # One created every key; the other waited, then found nothing left to create.
    created = creates_by_runner(faults)
    assert sorted(map(tuple, created.values())) == [(), tuple(NAMES)], created
    assert_one_key_per_name(kms, run_cli)


def test_apply_refused_while_the_lock_is_held(
    inventory: Inventory,
    server: MotoServer,
    faults: FaultInjector,
    kms: Any,
    tmp_path: Path,
    cli_home: Path,
) -> None:
    """The lock taken by hand (the alias on a key of one's own): the apply refuses at once
    (default --lock-timeout 0) and changes nothing; the only write request it may send is
    its own refused CreateAlias of the lock."""
    inventory.write([ALPHA, BETA])
    holder = kms.create_key(Description="someone else's apply")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=LOCK_ALIAS, TargetKeyId=holder)

    env = cli_env(cli_home, server.url)
    refused = run_bounded(tmp_path, env, "apply", "--auto-approve", timeout=REFUSE_WITHIN)

    sent = Counter(s.operation for s in faults.seen)
    assert refused.returncode == 1, (refused, f"requests it sent: {dict(sent)}")
    assert "lock" in refused.stderr.lower(), refused
    assert "Traceback" not in refused.stderr, refused
    assert changing_writes(faults.seen) == [], refused
    assert lock_held(kms), "the apply removed a lock it did not hold"
    assert identity_counts(kms, IDENTITY_TAG) == {}

    # plan takes no lock: it still plans the two keys, and writes nothing.
    faults.clear()
    planned = run_bounded(tmp_path, env, "plan", "--detailed-exitcode", timeout=REFUSE_WITHIN)
    assert planned.returncode == 2, planned
    assert [s.operation for s in faults.seen if is_write(s.operation)] == []
