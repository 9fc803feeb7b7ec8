"""Benchmark: the read calls that key-usage checks (GetKeyLastUsage) add, on N keys.

Runs the CLI in this process against moto_server on 127.0.0.1 (never AWS), with the
tool's moto corrections (``reconciler.moto_kms``: moto has no GetKeyLastUsage). An
inventory of N managed keys (default 200) plus 20 unmanaged keys is applied, then:

1. a plan with no change (must read no usage);
2. a plan with 10 key specs removed and ``--allow-destroy`` (one read per deleted key);
3. drift (one read per customer key it reports).

The server counts the requests by operation, so the figures are what reached KMS.

    python benchmarks/bench_usage.py [--keys 200]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import yaml
from click.testing import CliRunner
from moto.server import ThreadedMotoServer

from reconciler import moto_kms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import defer_moto_private_keys

from reconciler.cli import main as cli_main


class Counting:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.ops: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("TrentService."):
            with self.lock:
                self.ops[target.split(".", 1)[1]] += 1
        return self.app(environ, start_response)


READS = ("Get", "List", "Describe")


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_main, [*args, "--no-color"])
    return result.exit_code, result.stdout, result.stderr


def write(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = {"name": "bench", "account_id": "123456789012", "region": "us-east-1"}
    inventory = {"targets": [target]}
    (folder / "inventory.yaml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    keys = [{"name": n, "description": f"key {n}", "aliases": [f"alias/{n}"]} for n in names]
    (folder / "keys.yaml").write_text(yaml.safe_dump({"keys": keys}), encoding="utf-8")


def measure(counter: Counting, label: str, *args: str) -> dict[str, Any]:
    counter.ops.clear()
    started = time.perf_counter()
    code, _, _ = cli(*args)
    seconds = time.perf_counter() - started
    figures = {
        "step": label,
        "exit": code,
        "GetKeyLastUsage": counter.ops["GetKeyLastUsage"],
        "all_reads": sum(n for op, n in counter.ops.items() if op.startswith(READS)),
        "seconds": round(seconds, 2),
    }
    print(figures)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=200)
    options = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    defer_moto_private_keys()
    with moto_kms.patched():
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        counter = Counting(server._server.app)
        server._server.app = counter
        url = f"http://{host}:{port}"
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "KMS_RECONCILER_QUOTA_SCALE": "1000",
            }
        )
        try:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp) / "keyspecs"
                names = [f"key-{i:04d}" for i in range(options.keys)]
                write(folder, names)
                kms = boto3.client("kms", endpoint_url=url, region_name="us-east-1")
                for _ in range(20):
                    kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")
                code, _, err = cli("apply", str(folder), "--auto-approve", "-q")
                assert code == 0, err
                measure(counter, f"no-op plan, {options.keys} managed keys", "plan", str(folder))
                write(folder, names[10:])
                measure(counter, "plan deleting 10 keys", "plan", str(folder), "--allow-destroy")
                write(folder, names)
                label = f"drift, {options.keys} managed + 20 unmanaged"
                measure(counter, label, "drift", str(folder))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
