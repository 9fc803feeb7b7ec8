"""Benchmark: how long the embedded sandbox takes to save and load its state, and its size.

Creates N keys in moto in-process (two thirds SYMMETRIC_DEFAULT with rotation on, one
sixth RSA_2048 and one sixth ECC_NIST_P256 for signing; each with two tags and an alias,
every tenth with a grant), then times, in a temporary folder:

- save: moto's backends -> kms-state.json (first save, DER encoded from moto's keys);
- load: kms-state.json -> empty moto backends (what every ``--sandbox`` command pays);
- first use: GetPublicKey on every asymmetric key after a load (the private keys are
  validated by ``cryptography`` on first use only, ~30 ms per RSA key);
- no-op run: a whole ``embedded_kms()`` block that changes nothing (load, no write).

Then (``--part cli``) the real CLI as a subprocess on an inventory of the same N keys
(same mix of specs, each with an alias and a tag): ``apply --sandbox`` from an empty
sandbox, and ``plan --sandbox --detailed-exitcode`` with nothing to change (issue 11: under
5 s for 300 keys), each with its wall time and CPU time (user + system of the child).

    python benchmarks/bench_sandbox.py [--keys 300] [--repeat 5] [--part state|cli|all]

Set-up of the state part is slow (moto generates a real RSA-2048 key for every key, ~50 ms
each); the timings are not. Times are the best of --repeat runs (of 3 for the CLI plan);
note the machine's load (printed) beside them.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from moto.kms.models import kms_backends

from reconciler import moto_kms, sandbox

ACCOUNT = "123456789012"
REGION = "us-east-1"


def kms_client() -> Any:
    return boto3.client(
        "kms",
        region_name=REGION,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def spec_for(i: int, n: int) -> tuple[str, str]:
    if i < n * 2 // 3:
        return "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"
    if i < n * 5 // 6:
        return "RSA_2048", "SIGN_VERIFY"
    return "ECC_NIST_P256", "SIGN_VERIFY"


def populate(n: int) -> list[str]:
    """N keys in the current mock; returns the IDs of the asymmetric ones."""
    kms = kms_client()
    asymmetric = []
    for i in range(n):
        spec, usage = spec_for(i, n)
        key_id = kms.create_key(
            KeySpec=spec,
            KeyUsage=usage,
            Description=f"bench key {i}",
            Tags=[
                {"TagKey": "kms-reconciler:name", "TagValue": f"key-{i}"},
                {"TagKey": "ManagedBy", "TagValue": "kms-reconciler"},
            ],
        )["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=f"alias/key-{i}", TargetKeyId=key_id)
        if spec == "SYMMETRIC_DEFAULT":
            kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=365)
        else:
            asymmetric.append(key_id)
        if i % 10 == 0:
            kms.create_grant(
                KeyId=key_id,
                GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:role/reader",
                Operations=["DescribeKey"],
            )
    return asymmetric


def inventory(folder: Path, n: int) -> Path:
    """An inventory of N keys in one target, the specs mixed as in ``spec_for``."""
    keyspecs = folder / "keyspecs"
    keyspecs.mkdir(parents=True)
    (keyspecs / "inventory.yaml").write_text(
        f"targets:\n  - name: bench\n    account_id: '{ACCOUNT}'\n    region: {REGION}\n"
        "defaults:\n  tags: {ManagedBy: kms-reconciler}\n"
        "  rotation: {enabled: true, period_days: 365}\n"
    )
    keys = []
    for i in range(n):
        spec, usage = spec_for(i, n)
        rotation = "" if spec == "SYMMETRIC_DEFAULT" else "    rotation: {enabled: false}\n"
        keys.append(
            f"  - name: key-{i:04d}\n    description: bench key {i}\n"
            f"    key_spec: {spec}\n    key_usage: {usage}\n"
            f"    aliases: [alias/key-{i:04d}]\n    tags: {{Owner: team-{i % 7}}}\n{rotation}"
        )
    (keyspecs / "keys.yaml").write_text("keys:\n" + "".join(keys))
    return keyspecs


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str], *, check: bool = True
) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one ``python -m reconciler`` run; with
    ``check=False`` a failed run gives a negative wall time."""
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
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0 and not check:
        return -wall, cpu, proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return wall, cpu, proc.stdout


def cli_part(n: int, repeat: int) -> None:
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inventory(folder, n)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "PYTHONPATH": str(root),
            sandbox.SANDBOX_DIR_ENV: str(folder / ".kms-sandbox"),
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "KMS_RECONCILER_QUOTA_SCALE": "1000",  # no pacing: the emulator has no quota
        }
        load = os.getloadavg()[0]
        apply = ["apply", "--sandbox", "--auto-approve", "-q"]
        failed = 0
        wall, cpu, err = run_cli(apply, folder, env, check=False)
        while wall < 0 and failed < 3:  # before the sandbox served one request at a time,
            failed += 1  # concurrent CreateAlias/CreateKey could crash moto; apply converges
            print(f"  (apply failed: {err.splitlines()[0][:150]}; applying again)")
            again, more, err = run_cli(apply, folder, env, check=False)
            wall, cpu = (-1 if again < 0 else 1) * (abs(wall) + abs(again)), cpu + more
        assert wall >= 0, err
        state = folder / ".kms-sandbox" / sandbox.STATE_FILE
        size = state.stat().st_size
        print(f"CLI, {n} keys (load {load:.1f}):")
        print(
            f"  apply --sandbox from empty: {wall:.2f} s wall, {cpu:.2f} s CPU"
            + (f" (all {failed + 1} attempts)" if failed else "")
        )
        print(f"  state file: {size / 1024:.0f} KiB ({size / n:.0f} bytes a key)")
        written = state.stat().st_mtime_ns
        runs = []
        for _ in range(max(repeat, 3)):
            wall, cpu, out = run_cli(["plan", "--sandbox", "--detailed-exitcode"], folder, env)
            assert "No changes." in out, out[-2000:]
            runs.append((wall, cpu))
        assert state.stat().st_mtime_ns == written, "a no-op plan rewrote the state"
        wall, cpu = min(runs)
        print(
            f"  no-op plan --sandbox: {wall:.2f} s wall, {cpu:.2f} s CPU "
            f"(best of {len(runs)}; target < 5 s wall; load now {os.getloadavg()[0]:.1f})"
        )


def best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--part", choices=["state", "cli", "all"], default="all")
    args = parser.parse_args()
    if args.part != "state":
        cli_part(args.keys, args.repeat)
    if args.part != "cli":
        state_part(args)


def state_part(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / ".kms-sandbox"
        path = folder / sandbox.STATE_FILE
        os.environ[sandbox.SANDBOX_DIR_ENV] = str(folder)
        os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "bench"

        started = time.perf_counter()
        with mock_aws(), moto_kms.patched():
            asymmetric = populate(args.keys)
            setup = time.perf_counter() - started

            def save() -> float:
                path.unlink(missing_ok=True)
                t0 = time.perf_counter()
                sandbox.save_from(path, kms_backends)
                return time.perf_counter() - t0

            save_s = best(args.repeat, save)
        size = path.stat().st_size

        def load() -> float:
            with mock_aws(), moto_kms.patched():
                t0 = time.perf_counter()
                sandbox.load_into(path, kms_backends)
                return time.perf_counter() - t0

        load_s = best(args.repeat, load)

        def first_use() -> float:
            with mock_aws(), moto_kms.patched():
                sandbox.load_into(path, kms_backends)
                kms = kms_client()
                t0 = time.perf_counter()
                for key_id in asymmetric:
                    kms.get_public_key(KeyId=key_id)
                return time.perf_counter() - t0

        use_s = best(min(args.repeat, 2), first_use)

        def no_op() -> float:
            before = path.stat().st_mtime_ns
            t0 = time.perf_counter()
            with sandbox.embedded_kms():
                pass
            elapsed = time.perf_counter() - t0
            assert path.stat().st_mtime_ns == before, "an unchanged state was rewritten"
            return elapsed

        no_op_s = best(args.repeat, no_op)

    n = args.keys
    print(f"keys: {n} ({n * 2 // 3} SYMMETRIC_DEFAULT, RSA_2048 and ECC_NIST_P256 the rest)")
    print(f"set-up (moto CreateKey etc.): {setup:.1f} s")
    print(f"state file: {size / 1024:.0f} KiB ({size / n:.0f} bytes a key)")
    print(f"save: {save_s * 1000:.1f} ms")
    print(f"load: {load_s * 1000:.1f} ms")
    print(f"first use of {len(asymmetric)} asymmetric keys (GetPublicKey): {use_s * 1000:.0f} ms")
    print(f"no-op --sandbox block (load, nothing written): {no_op_s * 1000:.1f} ms")


if __name__ == "__main__":
    main()
