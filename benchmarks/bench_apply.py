"""Benchmark: apply N new keys through a KMS-like proxy (real quotas, 25 ms latency).

Runs the real CLI against moto_server behind ``kms_proxy.KmsProxy`` (127.0.0.1 only), with
the tool's real pacing (no KMS_RECONCILER_QUOTA_SCALE). Each key is created with an alias,
tags, a templated policy and rotation: CreateKey, EnableKeyRotation and CreateAlias.

The floor is KMS's CreateKey quota: N keys / 5 per second (``../shared/kms-quotas.md``);
CreateAlias has the same quota, so the two families can at best overlap. The tool paces
each family at 80% of its quota (``request_quotas:`` headroom), which alone puts it at
1.25x the floor. Printed: wall time against the floor, calls and throttled calls per
family, the busiest one-second window per family against its quota, and whether a second
plan is empty. ``--steal CreateKey=0.5`` lets another client use half the CreateKey quota
during the apply: it must end converged, slower, not failed.

    python benchmarks/bench_apply.py [--keys 200] [--latency 0.025] [--steal CreateKey=0.5]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import defer_moto_private_keys
from kms_proxy import KmsProxy, busiest_second

from reconciler.catalog import REQUEST_QUOTAS

ROOT = Path(__file__).resolve().parent.parent


def inventory(folder: Path, keys: int, region: str) -> None:
    (folder / "keyspecs" / "policies").mkdir(parents=True)
    template = ROOT / "keyspecs/policies/application.json.j2"
    (folder / "keyspecs/policies/application.json.j2").write_text(template.read_text())
    (folder / "keyspecs/inventory.yaml").write_text(
        f"targets:\n  - name: bench\n    account_id: '123456789012'\n    region: {region}\n"
        "defaults:\n  tags: {ManagedBy: kms-reconciler}\n"
        "  rotation: {enabled: true, period_days: 365}\n"
    )
    (folder / "keyspecs/keys.yaml").write_text(
        "keys:\n"
        + "".join(
            f"  - name: key-{i:04d}\n    aliases: [alias/bench-{i:04d}]\n"
            "    policy:\n      template: application.json.j2\n"
            "      vars: {admin_roles: [KeyAdmin], user_roles: [App]}\n"
            for i in range(keys)
        )
    )


def cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )


def scenario(name: str, proxy: KmsProxy, keys: int, region: str, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inventory(folder, keys, region)
        proxy.reset()
        started = time.monotonic()
        done = cli(["apply", "--auto-approve", "-q"], folder, env)
        seconds = time.monotonic() - started
        seen = list(proxy.seen)
        again = cli(["plan", "--detailed-exitcode", "-q"], folder, env)
    floor = keys / REQUEST_QUOTAS["CreateKey"]
    print(f"{name}: {keys} keys, apply exit {done.returncode}, {seconds:.1f} s")
    if done.returncode != 0:
        print(done.stderr[-3000:])
    print(f"  floor (CreateKey quota): {floor:.1f} s; apply / floor = {seconds / floor:.2f}")
    by_family: dict[str, list[float]] = defaultdict(list)
    throttled: dict[str, int] = defaultdict(int)
    for s in seen:
        if s.throttled:
            throttled[s.operation] += 1
        else:
            by_family[s.operation].append(s.at)
    print("  | operation | calls | throttled | first s | last s | busiest 1 s | quota |")
    print("  |---|---:|---:|---:|---:|---:|---:|")
    for operation in sorted(by_family, key=lambda op: min(by_family[op])):
        times = by_family[operation]
        quota = REQUEST_QUOTAS.get(operation)
        print(
            f"  | {operation} | {len(times)} | {throttled.get(operation, 0)} | "
            f"{min(times):.1f} | {max(times):.1f} | {busiest_second(times)} | "
            f"{quota if quota is not None else '-'} |"
        )
    converged = again.returncode == 0
    print(f"  plan after apply: exit {again.returncode} ({'converged' if converged else 'NOT'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.025)
    parser.add_argument("--steal", default="", help="OPERATION=share, e.g. CreateKey=0.5")
    args = parser.parse_args()
    defer_moto_private_keys()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    steal = dict(
        (op, float(share))
        for op, share in (item.split("=") for item in args.steal.split(",") if item)
    )
    proxy = KmsProxy(f"http://{host}:{port}", latency=args.latency, steal=steal)
    proxy.start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KMS_RECONCILER_"))},
        "AWS_ENDPOINT_URL": proxy.url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        title = f"apply through the proxy ({args.latency * 1000:.0f} ms"
        title += f", another client takes {args.steal})" if steal else ")"
        scenario(title, proxy, args.keys, "eu-central-1", env)
    finally:
        proxy.stop()
        server.stop()


if __name__ == "__main__":
    main()
