"""A fast KMS replay server for benchmarks: moto's answers, KMS's quotas and latency.

moto_server behind ``kms_proxy`` answers about 280 calls a second on this machine, far
below the 4,000 a second a no-op plan may make at KMS's quotas, so it cannot show how near
the tool comes to the floor. This server can: it answers from a *recording* of moto's own
responses (``KmsProxy(record=...)`` keeps every request body and its answer, byte for
byte), on one asyncio event loop in its own process, with the same rules as the proxy:

- every KMS and tagging API request waits ``latency`` seconds (a round trip to a Region);
- every KMS request counts against its operation's quota in
  ``reconciler.catalog.REQUEST_QUOTAS`` over a sliding one-second window
  (``kms_proxy.Window``), and a call over it is answered ``400 ThrottlingException``;
- a request it has no recording for is answered ``500 NoRecording`` and counted, so a
  benchmark can check that every request it timed was answered as moto answered it.

Only reads can be replayed: a write changes what later reads answer. Control requests
(``GET /_stats``, ``POST /_reset``) give the per-request log and clear it.

    python benchmarks/fake_kms.py RECORDING.jsonl [--latency 0.025] [--no-quotas]
    (prints "listening on http://127.0.0.1:PORT", serves until killed)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kms_proxy import KMS_PREFIX, TAGGING_PREFIX, THROTTLED, Window

Key = tuple[str, bytes]  # (X-Amz-Target, or the path for a query-protocol request; body)
NO_RECORDING = b'{"__type":"NoRecording","message":"fake_kms has no recording of this request"}'


def load(path: Path) -> dict[Key, tuple[int, str, bytes]]:
    """A recording: one JSON object a line (``kms_proxy.KmsProxy.save``)."""
    out: dict[Key, tuple[int, str, bytes]] = {}
    with path.open() as handle:
        for line in handle:
            row = json.loads(line)
            key = (row["target"], base64.b64decode(row["request"]))
            out[key] = (row["status"], row["content_type"], base64.b64decode(row["response"]))
    return out


class Replay:
    def __init__(
        self, recording: dict[Key, tuple[int, str, bytes]], latency: float, quotas: bool
    ) -> None:
        self.recording = recording
        self.latency = latency
        self.window = Window(None if quotas else {})
        self.seen: list[tuple[float, str, bool]] = []
        self.missing = 0
        self.started = time.monotonic()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                writer.write(await self.answer(path, headers.get("x-amz-target", ""), body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def answer(self, path: str, target: str, body: bytes) -> bytes:
        if path.startswith("/_"):
            return self.control(path)
        if target.startswith((KMS_PREFIX, TAGGING_PREFIX)):
            await asyncio.sleep(self.latency)
        if target.startswith(KMS_PREFIX):
            operation = target[len(KMS_PREFIX) :]
            allowed = self.window.admit(operation)
            self.seen.append((time.monotonic() - self.started, operation, not allowed))
            if not allowed:
                return _response(400, "application/x-amz-json-1.1", THROTTLED)
        found = self.recording.get((target or path, body))
        if found is None:
            self.missing += 1
            return _response(500, "application/x-amz-json-1.1", NO_RECORDING)
        return _response(*found)

    def control(self, path: str) -> bytes:
        if path == "/_reset":
            self.seen, self.missing = [], 0
            self.window = Window(self.window.quotas)
            self.started = time.monotonic()
            return _response(200, "application/json", b"{}")
        stats = {"seen": self.seen, "missing": self.missing}
        return _response(200, "application/json", json.dumps(stats).encode())


def _response(status: int, content_type: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
        f"x-amzn-RequestId: fake\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def serve(replay: Replay, port: int) -> None:
    server = await asyncio.start_server(replay.handle, "127.0.0.1", port, backlog=1024)
    host, bound = server.sockets[0].getsockname()[:2]
    print(f"listening on http://{host}:{bound}", flush=True)
    async with server:
        await server.serve_forever()


@contextmanager
def serving(recording: Path, latency: float, *, quotas: bool = True) -> Iterator[str]:
    """This server on ``recording`` in its own process, for a benchmark: its URL while the
    ``with`` block runs, stopped after."""
    command = [sys.executable, __file__, str(recording), "--latency", str(latency)]
    server = subprocess.Popen(
        [*command, *([] if quotas else ["--no-quotas"])], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().split()[-1]
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", type=Path)
    parser.add_argument("--latency", type=float, default=0.025)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-quotas", action="store_true")
    args = parser.parse_args()
    replay = Replay(load(args.recording), args.latency, not args.no_quotas)
    asyncio.run(serve(replay, args.port))


if __name__ == "__main__":
    main()
