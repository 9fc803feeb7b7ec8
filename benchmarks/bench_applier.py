"""Benchmark: the applier's own CPU per key, from 1,000 to 10,000 new keys, no AWS and no
moto: what the apply adds on top of botocore and the KMS calls themselves.

The plan is real: ``bench_scale.py``'s inventory (the application template, one alias, a tag
each) loaded, rendered and planned against an empty account (CreateKey, EnableKeyRotation
and CreateAlias a key). It is applied through the command's own path
(``commands.apply._apply_one``: progress events, plan-order lines) and the real ``KmsApi``
(pacing off, counting, retries), against a client that answers every call at once. The
printed CPU is the apply alone (``time.process_time``, all threads); the figure should stay
flat per key as the plan grows (issue 11: it doubled from 1,000 to 10,000 keys end to end,
benchmarks/scaling.md).

``--profile`` runs the keys one after another in the calling thread (cProfile sees only
that thread) and prints the top functions by own time.

    python benchmarks/bench_applier.py [--sizes 1000,4000,10000] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_scale  # its inventory (on import it defers moto's RSA keys: not used here)

from reconciler import applier
from reconciler.aws import AwsOptions, KmsApi
from reconciler.commands import apply as apply_command
from reconciler.commands.common import Run
from reconciler.desired import build_desired, select_targets
from reconciler.loader import load_inventory
from reconciler.plan import TargetPlan
from reconciler.planner import make_plan
from reconciler.state import ObservedTarget


class InstantKms:
    """A boto3 KMS client stand-in: CreateKey answers a new key ID, every other call {}."""

    def __init__(self) -> None:
        self._made = 0
        self._lock = threading.Lock()

    def create_key(self, **params: Any) -> dict[str, Any]:
        with self._lock:
            self._made += 1
            key_id = f"{self._made:08d}-0000-0000-0000-000000000000"
        return {"KeyMetadata": {"KeyId": key_id}}

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda **params: {}


class Connection:
    """What ``_apply_one`` uses of a ``reconciler.aws.Connection``."""

    def __init__(self, kms: KmsApi) -> None:
        self.kms = kms
        self.retries: dict[str, int] = {}

    def kms_in(self, region: str) -> KmsApi:
        return self.kms


class InThisThread:
    """A ThreadPoolExecutor stand-in that runs each job when it is submitted (--profile)."""

    def __init__(self, max_workers: int | None = None) -> None:
        pass

    def __enter__(self) -> InThisThread:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def plan_for(n: int) -> TargetPlan:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bench_scale.inventory(folder, n)
        inventory = load_inventory(folder / "keyspecs")
        (desired,) = build_desired(inventory, select_targets(inventory, ()))
    empty = ObservedTarget(desired.target, (), {}, caller_arn="arn:aws:iam::123456789012:root")
    return make_plan(desired, empty)


def apply_cpu(plan: TargetPlan, profile: cProfile.Profile | None) -> float:
    run = Run(Path("."), (), None, AwsOptions(), False, 0)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # its lines
        conn = Connection(KmsApi(InstantKms(), sleep=lambda seconds: None))
        started = time.process_time()
        if profile:
            profile.enable()
        result = apply_command._apply_one(run, plan, conn, "kms-reconciler:name", {})  # type: ignore[arg-type]
        if profile:
            profile.disable()
        cpu = time.process_time() - started
    assert result.ok and len(result.done) == len(plan.operations), result.failed[:3]
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,4000,10000")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        applier.ThreadPoolExecutor = InThisThread  # type: ignore[attr-defined,assignment]
    print(f"load: {os.getloadavg()[0]:.2f} (1 min)")
    print("| keys | operations | apply CPU s | CPU ms/key |")
    print("|---:|---:|---:|---:|")
    for n in [int(s) for s in args.sizes.split(",")]:
        plan = plan_for(n)
        profile = cProfile.Profile() if args.profile else None
        cpu = apply_cpu(plan, profile)
        print(f"| {n} | {len(plan.operations)} | {cpu:.2f} | {1000 * cpu / n:.3f} |", flush=True)
        if profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
