"""Benchmark: the client's CPU per KMS read, botocore against the tool's lean request path.

``fake_kms.py`` answers (moto's answers for 300 keys, recorded once through
``kms_proxy.KmsProxy``; 25 ms of latency, no quota), so the server is not the limit. The
client runs in its own process, 64 DescribeKey calls in flight, and reports its CPU time
(user + system) per call and the calls a second:

- ``botocore``: ``client.describe_key`` on 64 threads (what the tool did before);
- ``wire``: ``reconciler.wire.Wire.send`` on 64 threads (apply's reads);
- ``loop``: ``Wire.asend`` on one event loop, 64 in flight (observe's reads, plan and drift).

    python benchmarks/bench_request_path.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_kms
from _common import defer_moto_private_keys
from kms_proxy import KmsProxy

CLIENT = r"""
import asyncio, sys, time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from reconciler.observe import READS
from reconciler.wire import wire_for

url, ids = sys.argv[1], sys.argv[2].split(",")
config = Config(max_pool_connections=128, retries={"total_max_attempts": 1})
client = boto3.client("kms", region_name="eu-central-1", endpoint_url=url,
                      aws_access_key_id="bench", aws_secret_access_key="bench", config=config)
wire = wire_for(client, READS)
client.list_keys()


def threads(read):
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(read, ids))


def loop():
    async def reads():
        queue = list(ids)

        async def one_at_a_time():
            while queue:
                await wire.asend("DescribeKey", {"KeyId": queue.pop()})

        await asyncio.gather(*(one_at_a_time() for _ in range(64)))
        await wire.aclose()

    asyncio.run(reads())


paths = {
    "botocore": lambda: threads(lambda k: client.describe_key(KeyId=k)),
    "wire": lambda: threads(lambda k: wire.send("DescribeKey", {"KeyId": k})),
    "loop": loop,
}
for name in ("botocore", "wire", "loop") * 2:
    cpu, wall = time.process_time(), time.perf_counter()
    paths[name]()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"  {name:8s} {cpu / len(ids) * 1000:.2f} ms client CPU per call, "
          f"{len(ids) / wall:.0f} calls/s")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.025)
    args = parser.parse_args()
    defer_moto_private_keys()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    recorder = KmsProxy(f"http://{host}:{port}", latency=0.0, quotas={}, record=True)
    recorder.start()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            kms = boto3.client(
                "kms",
                region_name="eu-central-1",
                endpoint_url=recorder.url,
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            )
            kms.list_keys()
            keys = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(300)]
            for key_id in keys:
                kms.describe_key(KeyId=key_id)
            recording = Path(tmp) / "recording.jsonl"
            recorder.save(recording)
        finally:
            recorder.stop()
            server.stop()
        with fake_kms.serving(recording, args.latency, quotas=False) as url:
            ids = (keys * (args.calls // len(keys) + 1))[: args.calls]
            print(f"{args.calls} DescribeKey against fake_kms ({args.latency * 1000:.0f} ms):")
            subprocess.run([sys.executable, "-c", CLIENT, url, ",".join(ids)], check=True)


if __name__ == "__main__":
    main()
