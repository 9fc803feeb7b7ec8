"""Benchmark: how long plan, apply and drift take, and how many KMS calls they make.

Runs the real CLI as a subprocess against moto_server on 127.0.0.1 (never AWS):

1. the bundled sample inventory (two targets in two accounts, reached through the
   targets' role_arn via STS AssumeRole, which moto maps to the role's account);
2. an inventory of N keys (default 200) in one target, plus N unmanaged keys.

For each: apply from empty, a no-change plan, then drift, timed end to end (wall clock of the
command, Python start-up included) with the KMS calls the tool reports on stderr.

    python benchmarks/bench_plan.py [--keys 200]
    python benchmarks/bench_plan.py --proxy [--keys 1000] [--latency 0.025] [--parallelism N]

``--proxy``: the no-op plan of N managed keys behind ``kms_proxy.KmsProxy`` (25 ms added to
every KMS call, KMS's real per-second quotas enforced) with the tool's real pacing (no
KMS_RECONCILER_QUOTA_SCALE); the keys are set up by an apply straight to moto_server. It
prints the plan's wall time and KMS calls per key beside the floor: the tightest read
family (GetKeyPolicy and GetKeyRotationStatus, 1,000 a second: N / 1,000 s) plus four
dependent round trips (ListKeys, ListResourceTags, DescribeKey, GetKeyPolicy), and the
floor at the tool's pacing (80% of each quota: ``aws.QUOTA_HEADROOM``).

moto creates an RSA key for every CreateKey (about 50 ms); the benchmark defers that work
(see ../shared/moto-kms-notes.md, section 8) so that set-up measures the tool, not moto.
The tool paces CreateKey to 80% of the real quota (5/s); KMS_RECONCILER_QUOTA_SCALE lifts
that for the emulator, so apply times here are not what real KMS allows.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_kms  # noqa: E402
from _common import big_inventory, defer_moto_private_keys  # noqa: E402

defer_moto_private_keys()


CPU = {"last": 0.0}  # the CPU seconds (user + system) of the last command run


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, str, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["last"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, proc.returncode, proc.stdout, proc.stderr


def calls(stderr: str) -> int:
    return sum(int(n) for n in re.findall(r"with (\d+) KMS calls", stderr))


def applied_calls(stdout: str) -> int:
    match = re.search(r"Apply complete: .*\((\d+) KMS calls\)", stdout)
    return int(match.group(1)) if match else 0


def scenario(name: str, folder: Path, env: dict[str, str]) -> None:
    t_apply, rc, out, err = run(["apply", "--auto-approve", "-q"], folder, env)
    assert rc == 0, f"apply failed ({rc}): {err}\n{out[-2000:]}"
    writes = applied_calls(out)
    t_plan, rc, out, err = run(["plan", "--detailed-exitcode", "-v"], folder, env)
    assert rc == 0 and "No changes." in out, f"plan not converged ({rc}): {err}\n{out[-2000:]}"
    t_drift, rc_drift, out_drift, err_drift = run(["drift", "--format", "json"], folder, env)
    assert rc_drift in (0, 2), f"drift failed ({rc_drift}): {err_drift}"
    findings = json.loads(out_drift)["summary"]
    print(f"{name}:")
    print(f"  apply from empty: {t_apply:6.2f} s, {writes} write calls")
    print(f"  no-change plan:   {t_plan:6.2f} s, {calls(err)} KMS read calls")
    for line in err.strip().splitlines():
        print(f"    {line}")
    print(
        f"  drift:            {t_drift:6.2f} s, {findings['read_calls']} KMS read calls, "
        f"{findings['findings']} finding(s), exit {rc_drift}"
    )


def set_up(folder: Path, env: dict[str, str], attempts: int = 3) -> float:
    """Apply the inventory straight to moto; the seconds it took. moto_server is not
    thread-safe (concurrent CreateAlias calls can answer HTTP 500 after the tool's
    retries), so a failed apply is run again: it converges from what moto holds."""
    total = 0.0
    for attempt in range(attempts):
        seconds, rc, _, err = run(["apply", "--auto-approve", "-q"], folder, env)
        total += seconds
        if rc == 0:
            return total
        print(f"  set-up apply {attempt + 1} failed ({rc}), running it again: {err[:300]}")
    raise AssertionError(f"set-up apply failed {attempts} times: {err[-2000:]}")


def floors(keys: int, latency: float) -> tuple[float, float]:
    """The no-op plan's floor at KMS's quotas, and at the tool's pacing (the headroom)."""
    from reconciler.aws import QUOTA_HEADROOM
    from reconciler.catalog import REQUEST_QUOTAS

    tightest = min(REQUEST_QUOTAS["GetKeyPolicy"], REQUEST_QUOTAS["GetKeyRotationStatus"])
    trips = 4 * latency
    return keys / tightest + trips, keys / (tightest * QUOTA_HEADROOM) + trips


def proxied(args: argparse.Namespace, endpoint: str, env: dict[str, str]) -> None:
    """Set up N managed keys straight to moto, then time no-op plans through the proxy."""
    from kms_proxy import KmsProxy

    proxy = KmsProxy(endpoint, latency=args.latency)
    proxy.start()
    real = {
        **{k: v for k, v in env.items() if not k.startswith("KMS_RECONCILER_")},
        "AWS_ENDPOINT_URL": proxy.url,
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            extra = f"discovery: {args.discovery}\n" if args.discovery else ""
            big_inventory(folder, args.keys, extra)
            t_apply = set_up(folder, env)
            floor, paced = floors(args.keys, args.latency)
            print(
                f"no-op plan of {args.keys} managed keys through the proxy "
                f"({args.latency * 1000:.0f} ms, real quotas); set-up apply {t_apply:.1f} s"
            )
            print(f"  floor: {floor:.2f} s at KMS's quotas, {paced:.2f} s at the tool's pacing")
            extra_args = ["--parallelism", str(args.parallelism)] if args.parallelism else []
            for attempt in range(args.repeat):
                proxy.reset()
                t_plan, rc, out, err = run(
                    ["plan", "--detailed-exitcode", "-v", *extra_args], folder, real
                )
                assert rc == 0 and "No changes." in out, f"plan ({rc}): {err}\n{out[-2000:]}"
                seen = [(s.at, s.operation, s.throttled) for s in proxy.seen]
                report(attempt, t_plan, floor, paced, calls(err), args.keys, err, seen)
    finally:
        proxy.stop()


def report(
    attempt: int,
    seconds: float,
    floor: float,
    paced: float,
    kms_calls: int,
    keys: int,
    stderr: str,
    seen: list[tuple[float, str, bool]],
) -> None:
    """One timed plan beside its floors, the CLI's summary, and a line per operation family
    (its calls, first and last second, busiest second) from the server's log."""
    from kms_proxy import busiest_second

    throttled = sum(1 for _, _, was in seen if was)
    print(
        f"  run {attempt + 1}: {seconds:6.2f} s = {seconds / floor:.1f}x the floor "
        f"({seconds / paced:.1f}x paced); {kms_calls} KMS calls = "
        f"{kms_calls / keys:.2f} per key; {throttled} throttled; the CLI's "
        f"CPU {CPU['last']:.1f} s ({CPU['last'] / max(1, kms_calls) * 1000:.2f} ms per call)"
    )
    for line in stderr.strip().splitlines():
        print(f"    {line}")
    by_op: dict[str, list[float]] = {}
    for at, op, was_throttled in seen:
        if not was_throttled:
            by_op.setdefault(op, []).append(at)
    for op, times in sorted(by_op.items(), key=lambda kv: min(kv[1])):
        print(
            f"    {op}: {len(times)} calls, {min(times):.2f}-{max(times):.2f} s, "
            f"busiest second {busiest_second(times)}"
        )


def replayed(args: argparse.Namespace, endpoint: str, env: dict[str, str]) -> None:
    """Set up N managed keys straight to moto, record one no-op plan's requests and moto's
    answers (``KmsProxy(record=True)``), then time no-op plans against ``fake_kms.py``:
    those answers, KMS's quotas and latency, at thousands of calls a second."""
    from kms_proxy import KmsProxy

    recorder = KmsProxy(endpoint, latency=0.0, quotas={}, record=True)
    recorder.start()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        extra = f"discovery: {args.discovery}\n" if args.discovery else ""
        big_inventory(folder, args.keys, extra)
        t_apply = set_up(folder, env)
        t_record, rc, out, err = run(
            ["plan", "--detailed-exitcode"], folder, {**env, "AWS_ENDPOINT_URL": recorder.url}
        )
        assert rc == 0 and "No changes." in out, f"recording ({rc}): {err}\n{out[-2000:]}"
        recorder.stop()
        recording = folder / "recording.jsonl"
        saved = recorder.save(recording)
        with fake_kms.serving(recording, args.latency) as url:
            real = {
                **{k: v for k, v in env.items() if not k.startswith("KMS_RECONCILER_")},
                "AWS_ENDPOINT_URL": url,
            }
            if args.request_path:
                real["KMS_RECONCILER_REQUEST_PATH"] = args.request_path
            floor, paced = floors(args.keys, args.latency)
            print(
                f"no-op plan of {args.keys} managed keys against fake_kms "
                f"({args.latency * 1000:.0f} ms, real quotas, {saved} recorded answers); "
                f"set-up apply {t_apply:.1f} s, recording plan {t_record:.1f} s"
            )
            print(f"  floor: {floor:.2f} s at KMS's quotas, {paced:.2f} s at the tool's pacing")
            extra_args = ["--parallelism", str(args.parallelism)] if args.parallelism else []
            for attempt in range(args.repeat):
                _control(url, "/_reset")
                t_plan, rc, out, err = run(
                    ["plan", "--detailed-exitcode", "-v", *extra_args], folder, real
                )
                stats = json.loads(_control(url, "/_stats"))
                assert rc == 0 and "No changes." in out, f"plan ({rc}): {err}\n{out[-2000:]}"
                assert stats["missing"] == 0, f"{stats['missing']} requests were not recorded"
                report(attempt, t_plan, floor, paced, calls(err), args.keys, err, stats["seen"])


def _control(url: str, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url + path, data=b"" if path == "/_reset" else None) as answer:
        return str(answer.read().decode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=None, help="default 200, 1000 with --proxy")
    parser.add_argument("--proxy", action="store_true", help="plan behind kms_proxy")
    parser.add_argument("--latency", type=float, default=0.025)
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--discovery", default=None, help="the inventory's discovery setting")
    parser.add_argument(
        "--replay", action="store_true", help="plan against fake_kms.py (moto's answers, replayed)"
    )
    parser.add_argument(
        "--keep",
        default=None,
        help="with --replay: the folder to keep the inventory and recording in",
    )
    parser.add_argument(
        "--request-path", default=None, help="KMS_RECONCILER_REQUEST_PATH for the timed plans"
    )
    args = parser.parse_args()
    if args.keys is None:
        args.keys = 1000 if args.proxy or args.replay else 200

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "KMS_RECONCILER_QUOTA_SCALE": "1000",
    }
    try:
        if args.replay:
            replayed(args, endpoint, env)
            return
        if args.proxy:
            proxied(args, endpoint, env)
            return
        with tempfile.TemporaryDirectory() as tmp:
            sample = Path(tmp) / "sample"
            sample.mkdir()
            shutil.copytree(ROOT / "keyspecs", sample / "keyspecs")
            scenario("bundled inventory (2 targets, 13 keys)", sample, env)

            big = Path(tmp) / "big"
            big_inventory(big, args.keys)
            kms = boto3.client(
                "kms",
                region_name="eu-central-1",
                endpoint_url=endpoint,
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            )
            for i in range(args.keys):
                kms.create_key(
                    Description=f"unmanaged {i}",
                    KeySpec="SYMMETRIC_DEFAULT",
                    KeyUsage="ENCRYPT_DECRYPT",
                )
            scenario(f"{args.keys} managed keys + {args.keys} unmanaged keys (1 target)", big, env)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
