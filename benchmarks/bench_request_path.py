"""Benchmark: the client's CPU per KMS read, botocore against a lean JSON request path.

Measures what a lean request path for KMS's JSON protocol would save before building it
into the tool (issue 11: client CPU is the limit once the reads are pipelined). moto_server
and ``kms_proxy.KmsProxy`` (25 ms, no quotas) on 127.0.0.1; the client runs in its own
process, 64 DescribeKey calls in flight, and reports its CPU time (user + system) per call:

- ``botocore``: ``client.describe_key``;
- ``lean``: the JSON body by hand, signed by the same client's request signer (SigV4, its
  credentials, its ``before-sign`` hooks), sent through its own HTTP session (endpoint,
  TLS, pool, timeouts), the answer parsed with ``json.loads`` and its timestamp converted.

    python benchmarks/bench_request_path.py [--calls 900]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_plan  # noqa: F401  (defers moto's RSA key per CreateKey)
from kms_proxy import KmsProxy

CLIENT = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.utils import parse_timestamp

url, ids = sys.argv[1], sys.argv[2].split(",")
config = Config(max_pool_connections=128, retries={"total_max_attempts": 1})
client = boto3.client("kms", region_name="eu-central-1", endpoint_url=url,
                      aws_access_key_id="bench", aws_secret_access_key="bench", config=config)
client.list_keys()


def lean(key_id):
    request = AWSRequest(
        method="POST", url=client.meta.endpoint_url + "/",
        data=json.dumps({"KeyId": key_id}).encode(),
        headers={"X-Amz-Target": "TrentService.DescribeKey",
                 "Content-Type": "application/x-amz-json-1.1"},
    )
    client._request_signer.sign("DescribeKey", request)
    response = client._endpoint.http_session.send(request.prepare())
    data = json.loads(response.content)
    data["KeyMetadata"]["CreationDate"] = parse_timestamp(data["KeyMetadata"]["CreationDate"])
    return data


paths = {"botocore": lambda k: client.describe_key(KeyId=k), "lean": lean}
for name in ("botocore", "lean", "botocore", "lean"):
    cpu, wall = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(paths[name], ids))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"  {name:8s} {cpu / len(ids) * 1000:.2f} ms client CPU per call, "
          f"{len(ids) / wall:.0f} calls/s")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=900)
    parser.add_argument("--latency", type=float, default=0.025)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    proxy = KmsProxy(f"http://{host}:{port}", latency=args.latency, quotas={})
    proxy.start()
    try:
        kms = boto3.client(
            "kms",
            region_name="eu-central-1",
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        keys = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(300)]
        ids = (keys * (args.calls // len(keys) + 1))[: args.calls]
        print(f"{args.calls} DescribeKey through the proxy ({args.latency * 1000:.0f} ms):")
        subprocess.run([sys.executable, "-c", CLIENT, proxy.url, ",".join(ids)], check=True)
    finally:
        proxy.stop()
        server.stop()


if __name__ == "__main__":
    main()
