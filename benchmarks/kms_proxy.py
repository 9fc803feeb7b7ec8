"""A KMS-like front for moto_server, for benchmarks: real request quotas, network latency.

Listens on 127.0.0.1 only and forwards every request to an upstream (moto_server). For a
KMS request (``X-Amz-Target: TrentService.<Operation>``) it first waits ``latency``
seconds (a round trip to a Region), then counts the call against the operation's quota in
``reconciler.catalog.REQUEST_QUOTAS`` (the one table of KMS's per-second quotas, as
``../shared/kms-quotas.md`` lists them), over a sliding one-second window as KMS counts
them: a call over the quota is answered ``400 ThrottlingException`` and never reaches
moto. ``steal`` simulates another client of the same account using a share of an
operation's quota (say CreateKey=0.5: half of the 5 a second is taken every second).

A Resource Groups Tagging API request (``discovery: tagging-api``) gets the same latency
and no quota. Every KMS request is recorded (time, operation, throttled), so a benchmark can draw a
timeline per operation family and find the busiest one-second window.

    proxy = KmsProxy(upstream="http://127.0.0.1:5000", latency=0.025)
    proxy.start(); ...; proxy.url; ...; proxy.stop()
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.catalog import REQUEST_QUOTAS

KMS_PREFIX = "TrentService."
TAGGING_PREFIX = "ResourceGroupsTaggingAPI_20170126."
THROTTLED = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'


@dataclass(frozen=True)
class Seen:
    at: float  # seconds since the proxy started
    operation: str
    throttled: bool


class Window:
    """KMS's per-second quotas over a sliding one-second window, as KMS counts them
    (``quotas``: operation -> calls a second; None: ``catalog.REQUEST_QUOTAS``)."""

    def __init__(self, quotas: dict[str, float] | None = None) -> None:
        self.quotas = dict(REQUEST_QUOTAS if quotas is None else quotas)
        self.windows: dict[str, deque[float]] = defaultdict(deque)

    def admit(self, operation: str, now: float | None = None) -> bool:
        """Count one call; False when it would exceed the quota in the last second."""
        quota = self.quotas.get(operation)
        now = time.monotonic() if now is None else now
        window = self.windows[operation]
        while window and window[0] <= now - 1.0:
            window.popleft()
        allowed = quota is None or len(window) < quota
        if allowed:
            window.append(now)
        return allowed


class _Server(ThreadingHTTPServer):
    # http.server's listen backlog is 5: a client with a hundred reads in flight would see
    # connections reset (ConnectionClosedError) that a real endpoint never resets.
    request_queue_size = 512
    daemon_threads = True


class KmsProxy:
    def __init__(
        self,
        upstream: str,
        *,
        latency: float = 0.025,
        quotas: dict[str, float] | None = None,
        steal: dict[str, float] | None = None,
        record: bool = False,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.latency = latency
        self.quotas = dict(REQUEST_QUOTAS if quotas is None else quotas)
        self.steal = dict(steal or {})
        self.seen: list[Seen] = []
        self._window = Window(self.quotas)
        # (X-Amz-Target or path, request body) -> (status, content type, response body)
        self.recording: dict[tuple[str, bytes], tuple[int, str, bytes]] | None = (
            {} if record else None
        )
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._stealer: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()
        if self.steal:
            self._stealer = threading.Thread(target=self._steal, daemon=True)
            self._stealer.start()

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.seen = []
            self._window = Window(self.quotas)
            self._started = time.monotonic()

    def save(self, path: Path) -> int:
        """Write the recording (``record=True``) for ``fake_kms.py``; the requests saved."""
        assert self.recording is not None, "KmsProxy(record=True) keeps a recording"
        with path.open("w") as handle:
            for (target, request), (status, content_type, response) in self.recording.items():
                row = {
                    "target": target,
                    "request": base64.b64encode(request).decode(),
                    "status": status,
                    "content_type": content_type,
                    "response": base64.b64encode(response).decode(),
                }
                handle.write(json.dumps(row) + "\n")
        return len(self.recording)

    # -- quota --------------------------------------------------------------------------

    def admit(self, operation: str) -> bool:
        """Count one call; False when it would exceed the quota in the last second."""
        now = time.monotonic()
        with self._lock:
            allowed = self._window.admit(operation, now)
            self.seen.append(Seen(now - self._started, operation, not allowed))
            return allowed

    def _steal(self) -> None:
        """Another client: ``share`` of each stolen operation's quota, spread over a second."""
        while not self._stop.is_set():
            for operation, share in self.steal.items():
                calls = int(self.quotas.get(operation, 0) * share)
                now = time.monotonic()
                with self._lock:
                    self._window.windows[operation].extend([now] * calls)
            self._stop.wait(1.0)

    # -- HTTP ---------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                target = self.headers.get("X-Amz-Target", "")
                if target.startswith(TAGGING_PREFIX):
                    time.sleep(proxy.latency)  # the tagging API is as far away; no quota here
                if target.startswith(KMS_PREFIX):
                    time.sleep(proxy.latency)
                    if not proxy.admit(target[len(KMS_PREFIX) :]):
                        self.send_response(400)
                        self.send_header("Content-Type", "application/x-amz-json-1.1")
                        self.send_header("Content-Length", str(len(THROTTLED)))
                        self.end_headers()
                        self.wfile.write(THROTTLED)
                        return
                connection = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    if proxy.recording is not None and response.status < 300:
                        content_type = response.getheader("Content-Type") or ""
                        with proxy._lock:
                            proxy.recording[(target or self.path, body)] = (
                                response.status,
                                content_type,
                                data,
                            )
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    connection.close()

            do_POST = _forward
            do_GET = _forward

        return Handler


def busiest_second(times: list[float]) -> int:
    """The most calls in any one-second window."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best
