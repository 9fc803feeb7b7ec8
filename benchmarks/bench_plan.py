"""Benchmark: how long plan, apply and drift take, and how many KMS calls they make.

Runs the real CLI as a subprocess against moto_server on 127.0.0.1 (never AWS):

1. the bundled sample inventory (two targets in two accounts, reached through the
   targets' role_arn via STS AssumeRole, which moto maps to the role's account);
2. an inventory of N keys (default 200) in one target, plus N unmanaged keys.

For each: apply from empty, a no-change plan, then drift, timed end to end (wall clock of the
command, Python start-up included) with the KMS calls the tool reports on stderr.

    python benchmarks/bench_plan.py [--keys 200]

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
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import moto.kms.models
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent


class _LazyKey:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._key: object | None = None

    def __getattr__(self, name: str) -> object:
        if self._key is None:
            self._key = _generate(self.spec)
        return getattr(self._key, name)


_generate = moto.kms.models.generate_private_key
moto.kms.models.generate_private_key = _LazyKey  # type: ignore[assignment]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, str, str]:
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
    return time.perf_counter() - started, proc.returncode, proc.stdout, proc.stderr


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=200)
    args = parser.parse_args()

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
        with tempfile.TemporaryDirectory() as tmp:
            sample = Path(tmp) / "sample"
            sample.mkdir()
            shutil.copytree(ROOT / "keyspecs", sample / "keyspecs")
            scenario("bundled inventory (2 targets, 13 keys)", sample, env)

            big = Path(tmp) / "big"
            (big / "keyspecs" / "policies").mkdir(parents=True)
            shutil.copy(ROOT / "keyspecs/policies/application.json.j2", big / "keyspecs/policies")
            (big / "keyspecs/inventory.yaml").write_text(
                "targets:\n  - name: bench\n    account_id: '123456789012'\n"
                "    region: eu-central-1\n"
                "defaults:\n  tags: {ManagedBy: kms-reconciler}\n"
                "  rotation: {enabled: true, period_days: 365}\n"
            )
            keys = "".join(
                f"  - name: key-{i:04d}\n    description: bench key {i}\n"
                f"    aliases: [alias/bench-{i:04d}]\n    tags: {{Owner: team-{i % 7}}}\n"
                "    policy:\n      template: application.json.j2\n"
                "      vars: {admin_roles: [KeyAdmin], user_roles: [App]}\n"
                for i in range(args.keys)
            )
            (big / "keyspecs/keys.yaml").write_text("keys:\n" + keys)
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
