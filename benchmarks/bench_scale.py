"""Benchmark: the CLI end to end from 50 to 10,000 keys: wall time, CPU time and peak RSS of
``apply`` (from empty) and of a no-op ``plan``, against moto_server on 127.0.0.1 (never AWS).

For each size, a fresh moto_server and an inventory of N keys in one target, as
``bench_plan.py`` builds it (the application template, one alias, a tag each). Each command
runs as a subprocess under ``/usr/bin/time``: its own peak RSS (``ru_maxrss``) and CPU (user +
system), never moto's (moto runs in this process).

Floors (issue 11): peak RSS <= 150 MB at 1,000 keys and <= 300 MB at 10,000 (a no-op plan and
an apply); a no-op plan's wall time against real KMS is bounded below by the GetKeyPolicy
quota, N / 1000 s (moto answers faster or slower than KMS: the figure is the tool's, not the
quota's).

``--trace`` also runs the no-op plan in-process under tracemalloc and prints the top
allocation sites when the plan text is made (everything the plan holds is alive then).

    python benchmarks/bench_scale.py [--sizes 50,200,1000] [--trace]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import big_inventory, defer_moto_private_keys  # noqa: E402

MB = 1024 * 1024


defer_moto_private_keys()


def inventory(folder: Path, n: int) -> None:
    big_inventory(folder, n)


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[dict[str, float], str, str]:
    """Run the CLI under /usr/bin/time: wall s, CPU s (user + system), peak RSS MB."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        proc = subprocess.run(
            [
                *("/usr/bin/time", "-o", out.name, "-f", "%M %U %S %e"),
                *(sys.executable, "-m", "reconciler", *args),
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        rss_kb, user, system, wall = out.read().split()[-4:]
    if proc.returncode not in (0, 2):
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    figures = {
        "wall": float(wall),
        "cpu": float(user) + float(system),
        "rss": int(rss_kb) * 1024 / MB,
        "stdout_mb": len(proc.stdout) / MB,
    }
    return figures, proc.stdout, proc.stderr


def traced_plan(cwd: Path, env: dict[str, str]) -> None:
    """The no-op plan in a subprocess under tracemalloc: top sites when the text is made."""
    code = f"""
import os, sys, tracemalloc
sys.path.insert(0, {str(ROOT)!r})
os.chdir({str(cwd)!r})
tracemalloc.start(1)
import reconciler.formatters as formatters
from reconciler.formatters import plan as plan_module
def snapshot(name, real):
    def wrapper(*args, **kwargs):
        current, peak = tracemalloc.get_traced_memory()
        print(f"at {{name}}: traced {{current / 2**20:.1f}} MB "
              f"(peak so far {{peak / 2**20:.1f}} MB)", file=sys.stderr)
        for stat in tracemalloc.take_snapshot().statistics("lineno")[:15]:
            print(f"  {{stat.size / 2**20:7.1f}} MB {{stat.count:>8}} {{stat.traceback}}",
                  file=sys.stderr)
        return real(*args, **kwargs)
    return wrapper
for name in ("plan_text", "plan_chunks"):
    if hasattr(plan_module, name):
        setattr(formatters, name, snapshot(name, getattr(plan_module, name)))
import reconciler.commands.plan as command
command.make_plan = snapshot("make_plan", command.make_plan)
from reconciler.cli import main
try:
    main(["plan", "-q"], standalone_mode=False)
finally:
    current, peak = tracemalloc.get_traced_memory()
    print(f"end: traced {{current / 2**20:.1f}} MB, peak {{peak / 2**20:.1f}} MB", file=sys.stderr)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    print(proc.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,1000")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    print(
        "| keys | command | wall s | CPU s | CPU ms/key | peak RSS MB | RSS floor MB "
        "| quota floor s | stdout MB |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in [int(s) for s in args.sizes.split(",")]:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "eu-central-1",
            "KMS_RECONCILER_QUOTA_SCALE": "1000",
            "PYTHONPATH": str(ROOT),
        }
        boto3.client(  # the account is reachable (a cheap first call warms moto)
            "kms",
            region_name="eu-central-1",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).list_keys()
        floor = 150 if n <= 1000 else 300
        try:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                inventory(folder, n)
                apply, _, _ = timed(["apply", "--auto-approve", "--no-color"], folder, env)
                plan, out, err = timed(["plan", "--detailed-exitcode", "--no-color"], folder, env)
                assert "No changes." in out, f"not converged after apply: {out[-2000:]}{err}"
                for name, f in (("apply (from empty)", apply), ("plan (no-op)", plan)):
                    quota = f"{n / 1000:.2f}" if name.startswith("plan") else ""
                    print(
                        f"| {n} | {name} | {f['wall']:.1f} | {f['cpu']:.1f} "
                        f"| {1000 * f['cpu'] / n:.2f} | {f['rss']:.0f} | {floor} | {quota} "
                        f"| {f['stdout_mb']:.2f} |",
                        flush=True,
                    )
                if args.trace:
                    traced_plan(folder, env)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
