"""SIGKILL of an apply at any write: the next apply converges, never two keys for one name.

The fault injector holds the k-th write request of an apply (before moto executed it, or
after: the write happened but its reply never arrives), the test kills the apply's whole
process group with SIGKILL, then lets the held request go (its connection is dropped).
k covers every write a clean apply of the inventory makes (counted from a reference
apply, whatever the tool's own writes are, lock included).

After the kill, by the rules (issue 13), independently of what the tool prints:

- no identity-tag value is carried by two keys;
- if the killed apply left its lock behind (the alias ``alias/kms-reconciler/apply-lock``),
  an apply exits 1 naming the lock and changes nothing (its one write request, if any, is
  the refused CreateAlias of the lock), and ``force-unlock`` clears it;
- then ``apply --auto-approve`` exits 0, ``plan --detailed-exitcode`` exits 0 with
  "No changes.", each name has exactly one key, and the end state equals the one of an
  apply that was never interrupted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import (
    Inventory,
    MotoServer,
    RunCli,
    cli_env,
    make_run_cli_in_process,
)
from ..helpers import ALPHA, BETA, IDENTITY_TAG, NO_CHANGES
from .faults import (
    LOCK_ALIAS,
    FaultInjector,
    Seen,
    changing_writes,
    created_names,
    duplicates,
    end_state,
    identity_counts,
    is_write,
    lock_held,
    report,
    state_diff,
)

pytestmark = pytest.mark.e2e

GAMMA: dict[str, Any] = {
    "name": "gamma",
    "description": "Gamma key: two aliases, no rotation",
    "aliases": ["alias/gamma", "alias/gamma-old"],
    "rotation": {"enabled": False},
    "tags": {"Owner": "team-c"},
}
KEYS = [ALPHA, BETA, GAMMA]
NAMES = sorted(k["name"] for k in KEYS)
FAST_POINTS = 3
SEED = 13
PAUSE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Reference:
    writes: list[Seen]  # the write requests of a clean apply, in arrival order
    state: dict[str, Any]


_reference: dict[str, Reference] = {}


def reference(
    server: MotoServer, faults: FaultInjector, kms: Any, tmp_path: Path, cli_home: Path
) -> Reference:
    """The writes and end state of an uninterrupted apply (in-process, once per worker)."""
    if not _reference:
        run = make_run_cli_in_process(tmp_path, cli_env(cli_home, server.url))
        server.reset()
        faults.clear()
        applied = run("apply", "--auto-approve")
        assert applied.returncode == 0, applied
        writes = [s for s in faults.seen if is_write(s.operation)]
        _reference["r"] = Reference(writes, end_state(kms, IDENTITY_TAG))
        server.reset()
        faults.clear()
    return _reference["r"]


@pytest.fixture
def expected(
    inventory: Inventory,
    server: MotoServer,
    faults: FaultInjector,
    kms: Any,
    tmp_path: Path,
    cli_home: Path,
) -> Reference:
    """KEYS written, and what an uninterrupted apply of them writes and leaves."""
    inventory.write(KEYS)
    return reference(server, faults, kms, tmp_path, cli_home)


def start_apply(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: killpg reaches every child
    )


def kill_at(
    k: int,
    after: bool,
    *,
    server: MotoServer,
    faults: FaultInjector,
    run_cli: RunCli,
    kms: Any,
    tmp_path: Path,
    env: dict[str, str],
    expected: Reference,
) -> dict[str, Any]:
    """Kill an apply at its k-th write, then converge; returns what happened."""
    server.reset()
    faults.clear()
    pause = faults.pause_at_write(k, after=after)
    proc = start_apply(tmp_path, env)
    deadline = time.monotonic() + PAUSE_TIMEOUT
    try:
        while not pause.reached.wait(0.05):
            assert proc.poll() is None, f"the apply exited {proc.returncode} before write {k}"
            assert time.monotonic() < deadline, f"write {k} never came"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        pause.release()
    outcome: dict[str, Any] = {"k": k, "after": after, "write": pause.operation}

    assert duplicates(kms, IDENTITY_TAG) == {}, "the killed apply left two keys for one name"
    outcome["lock_left"] = lock_held(kms)
    if outcome["lock_left"]:
        faults.clear()
        refused = run_cli("apply", "--auto-approve")
        assert refused.returncode == 1, refused
        assert "lock" in refused.stderr.lower(), refused
        assert changing_writes(faults.seen) == [], refused
        unlocked = run_cli("force-unlock", "keyspecs", "--target", "test", "--auto-approve")
        assert unlocked.returncode == 0, unlocked
        assert not lock_held(kms), unlocked

    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 0, applied
    replanned = run_cli("plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout, replanned
    counts = identity_counts(kms, IDENTITY_TAG)
    assert sorted(counts) == NAMES and set(counts.values()) == {1}, counts
    assert state_diff(end_state(kms, IDENTITY_TAG), expected.state) == []
    assert not lock_held(kms), "a finished apply left its lock behind"
    return outcome


Sweep = Callable[[list[tuple[int, bool]]], None]


@pytest.fixture
def sweep(
    expected: Reference,
    server: MotoServer,
    faults: FaultInjector,
    run_cli: RunCli,
    kms: Any,
    tmp_path: Path,
    cli_home: Path,
) -> Sweep:
    """``sweep(points)``: ``kill_at`` each point in turn; report, then fail naming every
    point that did not converge."""
    env = cli_env(cli_home, server.url)

    def sweep_(points: list[tuple[int, bool]]) -> None:
        converged, failed = [], []
        for k, after in points:
            try:
                converged.append(
                    kill_at(
                        k,
                        after,
                        server=server,
                        faults=faults,
                        run_cli=run_cli,
                        kms=kms,
                        tmp_path=tmp_path,
                        env=env,
                        expected=expected,
                    )
                )
            except AssertionError as exc:
                failed.append(f"k={k} {'after' if after else 'before'}: {str(exc)[:1500]}")
        report(
            "kill",
            {
                "points": len(points),
                "converged": len(converged),
                "lock_left": sum(1 for c in converged if c["lock_left"]),
                "writes_killed": sorted({str(c["write"]) for c in converged}),
                "at": [f"{c['k']}{'a' if c['after'] else 'b'}:{c['write']}" for c in converged],
                "failed": [f.split(":", 1)[0] for f in failed],
            },
        )
        assert not failed, f"{len(failed)} of {len(points)} kill points did not converge:\n" + (
            "\n".join(failed)
        )

    return sweep_


def all_points(writes: list[Seen]) -> list[tuple[int, bool]]:
    return [(k, after) for k in range(1, len(writes) + 1) for after in (False, True)]


def test_kill_at_seeded_writes_then_converge(expected: Reference, sweep: Sweep) -> None:
    """The fast subset: killed just after moto created the first key (its reply lost),
    and seeded other points."""
    # Killed just after moto created an inventory key (its reply lost); just after the
    # lock's CreateAlias (a lock left with no holder recorded); one seeded other point.
    created = [created_names([w], IDENTITY_TAG) for w in expected.writes]
    assert sorted(n for names in created for n in names) == NAMES, expected.writes
    first_create = next(i for i, names in enumerate(created, 1) if names)
    lock_alias = next(
        i
        for i, w in enumerate(expected.writes, 1)
        if w.operation == "CreateAlias" and LOCK_ALIAS.encode() in w.body
    )
    chosen = [(first_create, True), (lock_alias, True)]
    others = [p for p in all_points(expected.writes) if p not in chosen]
    points = chosen + random.Random(SEED).sample(others, FAST_POINTS - len(chosen))
    sweep(points)


@pytest.mark.slow
def test_kill_at_every_write_then_converge(expected: Reference, sweep: Sweep) -> None:
    """Every write of the apply, each before and after moto executed it."""
    sweep(all_points(expected.writes))
