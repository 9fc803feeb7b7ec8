"""Benchmark: the planner's CPU time (``make_plan`` and the plan's fingerprint) from 50 to
10,000 keys, no AWS and no I/O: the pure core, on states built in memory.

Each key is as the sample's application key is: an application policy (root delegation,
administrators, users), two tags, one alias, rotation on; every policy is its own parsed
document, as KMS returns it. Two cases per size:

- no-op: KMS holds exactly what the specs say;
- 10% drift: every tenth key has another description, a missing tag and a user removed
  from its policy.

The planner's floor is linear growth: the goal (issue 11) is 10,000 keys in at most 1 s of
CPU and a 10k / 1k ratio of at most 12. With 1,000 and 10,000 among the sizes, the script
exits 1 when a case's 10k / 1k ratio of make_plan CPU is over 12 (a benchmark, not a unit
test: run it by hand, on a quiet machine if you can).

Inputs are built, then collected (``gc.collect``) before each timed call: a full collection
of the freshly built inputs is the cost of building them, not the planner's. Then they are
frozen (``gc.freeze``), exactly as the CLI freezes them when it is the whole process
(``reconciler.commands.common.freeze_inputs``, called by plan, apply and drift right before
``make_plan``: the inputs live until exit), and unfrozen after the call. Collections during
the call (all generations) count, a full one walking what the plan made, and the table says
how many were full ones. The standalone fingerprint (what ``apply --plan`` computes, which
freezes nothing) is timed unfrozen. The semantics engine's memo of verdicts is emptied
before each call, as in a CLI run (one plan a process), and so is the memo of canonical
action names: what a repeat would find memoised is paid each time (the drift case's
changes only widen: ``only_widens`` decides them, and none reaches the engine).

    python benchmarks/bench_planner.py [--sizes 50,1000,5000,10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from dataclasses import replace
from typing import Any

from reconciler import policy, semantics
from reconciler.planner import make_plan
from reconciler.state import (
    DesiredKey,
    DesiredTarget,
    KeyState,
    ObservedKey,
    ObservedTarget,
    SourceRef,
    TargetInfo,
    fingerprint,
)

ACCOUNT = "111122223333"
TARGET = TargetInfo("production", ACCOUNT, "us-east-1")
IDENTITY = "kms-reconciler:name"


def policy_text(i: int, users: int = 2) -> str:
    root = f"arn:aws:iam::{ACCOUNT}:root"
    role = f"arn:aws:iam::{ACCOUNT}:role/"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "application-key-policy",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": root},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "Allow administrators to manage the key",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"{role}AdminRole"},
                    "Action": ["kms:Describe*", "kms:Enable*", "kms:List*", "kms:Update*"],
                    "Resource": "*",
                },
                {
                    "Sid": "Allow application role to use the key",
                    "Effect": "Allow",
                    "Principal": {"AWS": [f"{role}App{i}-{u}" for u in range(users)]},
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT}},
                },
            ],
        },
        indent=2,
    )


def state(i: int, text: str) -> KeyState:
    return KeyState(
        name=f"key-{i:05d}",
        description=f"Key {i}",
        key_spec="SYMMETRIC_DEFAULT",
        key_usage="ENCRYPT_DECRYPT",
        origin="AWS_KMS",
        multi_region=False,
        enabled=True,
        rotation_enabled=True,
        rotation_period_days=365,
        tags={"Owner": "team", "Application": f"app-{i}"},
        aliases=frozenset({f"alias/key-{i:05d}"}),
        policy=json.loads(text),
        deletion_protection=False,
    )


def build(n: int, drift_every: int = 0) -> tuple[DesiredTarget, ObservedTarget]:
    desired: list[DesiredKey] = []
    observed: list[ObservedKey] = []
    aliases: dict[str, str | None] = {}
    for i in range(n):
        text = policy_text(i)
        want = state(i, text)
        desired.append(
            DesiredKey(
                state=want,
                deletion_window_days=30,
                source=SourceRef("keyspecs/keys.yaml", 1 + 12 * i, "template application.json.j2"),
                policy_text=text,
            )
        )
        have = replace(want, policy=json.loads(text))
        if drift_every and i % drift_every == 0:
            have = replace(
                have,
                description=f"Old key {i}",
                tags={"Owner": "team"},
                policy=json.loads(policy_text(i, users=1)),
            )
        key_id = f"{i:08d}-0000-4000-8000-000000000000"
        fields: dict[str, Any] = {
            "description": have.description,
            "key_spec": have.key_spec,
            "key_usage": have.key_usage,
            "origin": have.origin,
            "multi_region": False,
            "enabled": True,
            "rotation_enabled": True,
            "rotation_period_days": 365,
            "policy": have.policy,
            "aliases": have.aliases,
        }
        observed.append(
            ObservedKey(
                key_id=key_id,
                arn=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}",
                tags={**have.tags, IDENTITY: want.name},
                key_state="Enabled",
                **fields,
            )
        )
        for alias in have.aliases:
            aliases[alias] = key_id
    caller = f"arn:aws:sts::{ACCOUNT}:assumed-role/kms-reconciler/ci"
    return (
        DesiredTarget(TARGET, tuple(desired), IDENTITY),
        ObservedTarget(TARGET, tuple(observed), aliases, caller_arn=caller),
    )


def measure(n: int, drift_every: int, repeat: int) -> tuple[float, float, int, int, float]:
    """Best-of-``repeat`` CPU seconds of make_plan and of the fingerprint, the operations,
    and the full (generation 2) collections during the best make_plan and their CPU s."""
    desired, observed = build(n, drift_every)
    best_plan = best_fp = float("inf")
    operations = full_gcs = 0
    full_s = 0.0
    full: list[float] = []

    def count_full(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            full.append(time.process_time() * (1 if phase == "stop" else -1))

    gc.callbacks.append(count_full)
    try:
        for _ in range(repeat):
            # a CLI run plans once: no verdict of the semantics engine is remembered yet,
            # nor any canonical action
            semantics._compare_texts.cache_clear()
            policy._canonical_action.cache_clear()
            gc.collect()
            gc.freeze()  # as the CLI's freeze_inputs() before make_plan
            full.clear()
            started = time.process_time()
            plan = make_plan(desired, observed)
            took = time.process_time() - started
            gc.unfreeze()
            if took < best_plan:
                best_plan, full_gcs, full_s = took, len(full) // 2, sum(full)
            operations = len(plan.operations)
            del plan
            ids = [k.key_id for k in observed.keys]
            gc.collect()
            started = time.process_time()
            fingerprint(observed, IDENTITY, ids, [])
            best_fp = min(best_fp, time.process_time() - started)
    finally:
        gc.callbacks.remove(count_full)
    return best_plan, best_fp, operations, full_gcs, full_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,1000,5000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    print(
        "| keys | case | make_plan CPU s | per key ms | full GCs (their CPU s) "
        "| fingerprint CPU s | operations |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    results: dict[tuple[int, str], float] = {}
    for n in sizes:
        for case, every in (("no-op", 0), ("10% drift", 10)):
            plan_s, fp_s, ops, full, full_s = measure(n, every, args.repeat)
            results[(n, case)] = plan_s
            per_key = 1000 * plan_s / n
            print(
                f"| {n} | {case} | {plan_s:.3f} | {per_key:.3f} | {full} ({full_s:.2f}) "
                f"| {fp_s:.3f} | {ops} |"
            )
    failed = False
    if 1000 in sizes and 10000 in sizes:
        for case in ("no-op", "10% drift"):
            ratio = results[(10000, case)] / results[(1000, case)]
            total = results[(10000, case)]
            verdict = "ok" if ratio <= 12 else "OVER"
            failed = failed or ratio > 12
            print(
                f"{case}: 1k {results[(1000, case)]:.3f} s, 10k {total:.3f} s CPU (goal <= 1 s); "
                f"10k / 1k = {ratio:.1f} (floor: <= 12, linear) {verdict}"
            )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
