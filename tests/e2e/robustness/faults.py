"""Fault injection in front of moto_server: the harness of test_faults, test_kill and
test_concurrency.

``FaultInjector`` is a WSGI middleware installed between the conftest's request recorder
and moto's application (``install``), so it sees every request the CLI sends to the
worker's moto_server on 127.0.0.1. For KMS requests (``X-Amz-Target: TrentService.<Op>``)
it can, per request:

- answer a fault *before* the request reaches moto (nothing executed), or *after* moto
  executed it (the write happened, the client cannot tell: the ambiguous outcome);
- the fault is one of ``FAULT_KINDS``:

  ``throttle``    HTTP 400 ``{"__type": "ThrottlingException", "message": "Rate exceeded"}``
  ``internal``    HTTP 500 ``{"__type": "KMSInternalException", ...}``
  ``unavailable`` a bare HTTP 503 with a text/html body, as a proxy or load balancer sends
  ``drop``        no response at all: the client socket is shut down (werkzeug exposes it
                  as ``environ["werkzeug.socket"]``) and the handler ends as werkzeug's own
                  "client went away" path (a ``ConnectionError``), so the client reads EOF
                  where the status line should be;

- deny an operation on one key (``deny``: e.g. ListResourceTags on key K answers
  AccessDeniedException);
- hold the k-th *write* request (``pause_at_write``), before or after moto executed it,
  until the test has killed the client and calls ``release``; the held request then ends
  in a dropped connection.

Which requests get a random fault is decided by a hash of (seed, operation, body, how
many times this exact request was seen), not by a shared random stream: the apply runs
keys' operations in threads, so the arrival order varies from run to run, but a seed
still gives the same faults to the same requests. moto's random key IDs are replaced in
the hashed body by the key's identity-tag value (learnt from CreateKey), so a seed means
the same faults in every test run. Every request is recorded
(``seen``): operation, key, fault and phase, and whether moto executed it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULT_KINDS = ("throttle", "internal", "unavailable", "drop")
PHASES = ("before", "after")
READ_PREFIXES = ("Describe", "Get", "List")

KMS_PREFIX = "TrentService."
# The test's own reads (``reader``) carry this header: never faulted, never recorded.
EXEMPT_HEADER = "x-fault-injection"
EXEMPT_ENVIRON = "HTTP_X_FAULT_INJECTION"
JSON_TYPE = "application/x-amz-json-1.1"


def is_write(operation: str) -> bool:
    """Every KMS operation that is not a Describe*, Get* or List* read."""
    return not operation.startswith(READ_PREFIXES)


@dataclass(frozen=True)
class FaultPlan:
    """Which KMS requests get a random fault, of which kind, at which phase.

    A throttle is only answered before execution (KMS never executes a throttled request);
    the other kinds at either phase.
    ``phases`` applies to every operation except those named in ``phases_by_operation``
    (e.g. ``{"CreateKey": ("after",)}``: CreateKey faults only after execution).
    ``operations`` limits the faults to these operations (None: every KMS operation);
    ``rates_by_operation`` overrides ``rate`` for the operations it names.
    """

    seed: int
    rate: float = 0.2
    kinds: tuple[str, ...] = FAULT_KINDS
    phases: tuple[str, ...] = PHASES
    phases_by_operation: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    operations: frozenset[str] | None = None
    rates_by_operation: Mapping[str, float] = field(default_factory=dict)

    def decide(self, operation: str, body: bytes, occurrence: int) -> tuple[str, str] | None:
        """(kind, phase) for this request, or None (no fault)."""
        if self.operations is not None and operation not in self.operations:
            return None
        phases = self.phases_by_operation.get(operation, self.phases)
        digest = hashlib.sha256(
            b"%d|%s|%d|" % (self.seed, operation.encode(), occurrence) + body
        ).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw >= self.rates_by_operation.get(operation, self.rate) or not phases:
            return None
        phase = phases[digest[8] % len(phases)]
        # KMS never executes a throttled request (a retry of it is always safe), so a
        # throttle is only ever answered before execution.
        kinds = [k for k in self.kinds if phase == "before" or k != "throttle"]
        if not kinds:
            return None
        return kinds[digest[9] % len(kinds)], phase


@dataclass
class Seen:
    """One KMS request as the injector saw it."""

    operation: str
    key_id: str | None
    fault: str | None  # a FAULT_KINDS member, "deny:<code>", "pause", or None
    phase: str | None  # "before" / "after" / None
    executed: bool  # moto executed it (whatever the client was told)
    status: int | None  # HTTP status the client got; None when the connection was dropped
    occurrence: int = 1
    access_key: str = ""  # from the SigV4 Authorization header: tells two clients apart
    body: bytes = b""
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass(frozen=True)
class DenyRule:
    operation: str
    key_id: str
    code: str = "AccessDeniedException"
    message: str = ""


class Pause:
    """Hold the k-th write request until released (the kill tests' hook)."""

    def __init__(self, k: int, after: bool) -> None:
        self.k = k
        self.after = after
        self.reached = threading.Event()
        self._released = threading.Event()
        self.operation: str | None = None
        self.executed = False

    def release(self) -> None:
        self._released.set()

    def wait_released(self, timeout: float = 120.0) -> None:
        self._released.wait(timeout)


class DroppedConnection(ConnectionAbortedError):
    """Raised after shutting the client socket: werkzeug treats a ``ConnectionError``
    from the application as a client that went away, and writes nothing more."""


class FaultInjector:
    """WSGI middleware in front of moto (see the module doc)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.plan: FaultPlan | None = None
        self.denials: list[DenyRule] = []
        self.pause: Pause | None = None
        self.write_delay = 0.0  # seconds every write request waits before moto runs it
        self.read_delay = 0.0  # and every read request (network latency, for progress)
        self.seen: list[Seen] = []
        self._occurrences: Counter[tuple[str, bytes]] = Counter()
        self._names: dict[bytes, bytes] = {}  # key ID -> b"<identity tag value>"
        self._writes = 0
        self._lock = threading.Lock()

    # -- configuration ------------------------------------------------------------------

    def set_plan(self, plan: FaultPlan | None) -> None:
        """Random faults from now on (None: none)."""
        with self._lock:
            self.plan = plan

    def deny(self, operation: str, key_id: str, code: str = "AccessDeniedException") -> None:
        """Answer ``operation`` on this key (ID or an ARN ending in it) with ``code``."""
        with self._lock:
            self.denials.append(DenyRule(operation, key_id, code))

    def pause_at_write(self, k: int, *, after: bool = False) -> Pause:
        """Hold the k-th write request from now on (1-based), before or after moto ran it."""
        with self._lock:
            self.pause = Pause(k, after)
            self._writes = 0
            return self.pause

    def clear(self) -> None:
        """No faults, no denials, no pause; forget what was seen."""
        with self._lock:
            self.plan = None
            self.denials = []
            if self.pause is not None:
                self.pause.release()
            self.pause = None
            self.write_delay = 0.0
            self.read_delay = 0.0
            self.seen = []
            self._occurrences.clear()
            self._names.clear()
            self._writes = 0

    # -- figures ------------------------------------------------------------------------

    def faults(self) -> list[Seen]:
        return [s for s in self.seen if s.fault in FAULT_KINDS]

    def by_kind(self) -> dict[str, int]:
        counts = Counter(f"{s.fault}/{s.phase}" for s in self.faults())
        return dict(sorted(counts.items()))

    def ambiguous(self, operation: str) -> list[Seen]:
        """Requests of ``operation`` that moto executed but whose reply the client lost."""
        return [
            s
            for s in self.seen
            if s.operation == operation and s.executed and s.fault in FAULT_KINDS
        ]

    def operations(self) -> list[str]:
        return [s.operation for s in self.seen]

    def executed(self, operation: str) -> int:
        return sum(1 for s in self.seen if s.operation == operation and s.executed)

    # -- WSGI ---------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(KMS_PREFIX) or environ.get(EXEMPT_ENVIRON):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        operation = target[len(KMS_PREFIX) :]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        key_id = _key_id(body)

        with self._lock:
            canonical = self._canonical(body)
            self._occurrences[(operation, canonical)] += 1
            occurrence = self._occurrences[(operation, canonical)]
            pause: Pause | None = None
            if is_write(operation) and self.pause is not None and not self.pause.reached.is_set():
                self._writes += 1
                if self._writes == self.pause.k:
                    pause = self.pause
            denial = next(
                (
                    d
                    for d in self.denials
                    if d.operation == operation and key_id and key_id.endswith(d.key_id)
                ),
                None,
            )
            decided = (
                self.plan.decide(operation, canonical, occurrence)
                if self.plan is not None and pause is None and denial is None
                else None
            )
            seen = Seen(
                operation,
                key_id,
                None,
                None,
                False,
                None,
                occurrence,
                _access_key(environ.get("HTTP_AUTHORIZATION", "")),
                body,
            )
            self.seen.append(seen)

        if self.write_delay and is_write(operation):
            time.sleep(self.write_delay)
        if self.read_delay and not is_write(operation):
            time.sleep(self.read_delay)
        if pause is not None:
            return self._paused(pause, seen, environ, start_response)
        if denial is not None:
            seen.fault = f"deny:{denial.code}"
            seen.phase = "before"
            seen.status = 400
            return _json_error(start_response, 400, denial.code, denial.message)
        if decided is None:
            status, headers, chunks = self._execute(environ)
            seen.executed = True
            seen.status = status_code(status)
            start_response(status, headers)
            return chunks
        kind, phase = decided
        seen.fault, seen.phase = kind, phase
        if phase == "after":
            self._execute(environ)
            seen.executed = True
        return self._fault(kind, seen, environ, start_response)

    def _execute(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        """Run moto to completion; return its status, headers and body."""
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: captured.setdefault("written", []).append(data)

        result = self.app(environ, capture)
        try:
            chunks = list(captured.get("written", [])) + [bytes(c) for c in result]
        finally:
            if hasattr(result, "close"):
                result.close()
        if environ.get("HTTP_X_AMZ_TARGET") == KMS_PREFIX + "CreateKey":
            self._learn(environ["wsgi.input"], b"".join(chunks))
        return captured["status"], captured["headers"], chunks

    def _learn(self, request: Any, response: bytes) -> None:
        """Remember the new key's ID under a stable name (its identity-tag value: the tag
        whose key ends in ``:name``; else its first tag), so that later requests naming
        the key hash the same in every run although moto gives it a random ID."""
        request.seek(0)
        try:
            tags = json.loads(request.read() or b"{}").get("Tags") or []
            key_id = json.loads(response)["KeyMetadata"]["KeyId"]
        except (ValueError, KeyError, TypeError):
            return
        named = [t for t in tags if str(t.get("TagKey", "")).endswith(":name")] or tags[:1]
        if named:
            name = f"<{named[0].get('TagKey')}={named[0].get('TagValue')}>"
            with self._lock:
                self._names[key_id.encode()] = name.encode()

    def _canonical(self, body: bytes) -> bytes:
        """The body without what differs from run to run (caller holds the lock): known
        key IDs become their names; other UUIDs (lock IDs), timestamps and process IDs
        become placeholders."""
        for key_id, name in self._names.items():
            if key_id in body:
                body = body.replace(key_id, name)
        for pattern, placeholder in _VARYING:
            body = pattern.sub(placeholder, body)
        return body

    def _paused(
        self, pause: Pause, seen: Seen, environ: dict[str, Any], start_response: Any
    ) -> Iterable[bytes]:
        seen.fault, seen.phase = "pause", "after" if pause.after else "before"
        pause.operation = seen.operation
        if pause.after:
            self._execute(environ)
            seen.executed = pause.executed = True
        pause.reached.set()
        pause.wait_released()
        return self._fault("drop", seen, environ, start_response)

    def _fault(
        self, kind: str, seen: Seen, environ: dict[str, Any], start_response: Any
    ) -> Iterable[bytes]:
        if kind == "throttle":
            seen.status = 400
            return _json_error(start_response, 400, "ThrottlingException", "Rate exceeded")
        if kind == "internal":
            seen.status = 500
            return _json_error(
                start_response, 500, "KMSInternalException", "An internal error occurred"
            )
        if kind == "unavailable":
            seen.status = 503
            page = (
                b"<html><head><title>503 Service Temporarily Unavailable</title></head>"
                b"<body><center><h1>503 Service Temporarily Unavailable</h1></center>"
                b"</body></html>\n"
            )
            start_response(
                "503 Service Temporarily Unavailable",
                [("Content-Type", "text/html"), ("Content-Length", str(len(page)))],
            )
            return [page]
        if kind == "drop":
            seen.status = None
            sock = environ.get("werkzeug.socket")
            if sock is None:
                raise RuntimeError("werkzeug did not expose the client socket")
            with contextlib.suppress(OSError):  # the client may be gone already (killed)
                sock.shutdown(socket.SHUT_RDWR)
            raise DroppedConnection("fault injection: connection dropped")
        raise ValueError(f"unknown fault kind {kind!r}")


_VARYING = (
    (re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), b"<uuid>"),
    (re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?"), b"<time>"),
    (re.compile(rb"pid \d+"), b"pid <pid>"),
)


def status_code(status: str) -> int:
    return int(status.split(None, 1)[0])


def _key_id(body: bytes) -> str | None:
    try:
        params = json.loads(body or b"{}")
    except ValueError:
        return None
    if not isinstance(params, dict):
        return None
    value = params.get("KeyId") or params.get("TargetKeyId")
    return str(value) if value else None


def _access_key(authorization: str) -> str:
    _, found, rest = authorization.partition("Credential=")
    return rest.split("/", 1)[0] if found else ""


def created_names(seen: Iterable[Seen], identity_tag: str) -> list[str]:
    """The identity-tag values of the CreateKey requests among ``seen``."""
    out = []
    for s in seen:
        if s.operation != "CreateKey":
            continue
        for tag in json.loads(s.body or b"{}").get("Tags") or []:
            if tag.get("TagKey") == identity_tag:
                out.append(str(tag.get("TagValue")))
    return out


def _json_error(start_response: Any, status: int, code: str, message: str) -> list[bytes]:
    payload = json.dumps({"__type": code, "message": message}).encode()
    reason = {400: "Bad Request", 500: "Internal Server Error"}[status]
    start_response(
        f"{status} {reason}",
        [("Content-Type", JSON_TYPE), ("Content-Length", str(len(payload)))],
    )
    return [payload]


@contextmanager
def install(server: Any) -> Iterator[FaultInjector]:
    """Put a FaultInjector in front of the worker's moto app for the block.

    ``server`` is the conftest's ``MotoServer``: its recorder (outermost, so it still
    records every request) gets the injector as its app; moto's app is put back after.
    """
    recorder = server.recorder
    original = recorder.app
    injector = FaultInjector(original)
    recorder.app = injector
    try:
        yield injector
    finally:
        injector.clear()  # a paused request must not stay blocked
        recorder.app = original


# -- figures ------------------------------------------------------------------------------


def report(kind: str, figures: dict[str, Any]) -> None:
    """Print a test's figures (seen with ``-s``); with ``KMS_FAULT_FIGURES=FILE`` also
    append them to FILE as one JSON line (works under xdist, which hides prints)."""
    line = json.dumps({"kind": kind, **figures}, sort_keys=True, default=str)
    print(f"{kind} figures: {line}")
    path = os.environ.get("KMS_FAULT_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


# -- the CLI with a deadline -----------------------------------------------------------


def run_bounded(cwd: Path, env: dict[str, str], *args: str, timeout: float) -> Any:
    """``python -m reconciler ARGS`` that must end within ``timeout`` seconds: a run that
    does not is killed and reported as exit -9 (the conftest's ``CliResult``)."""
    from ..conftest import CliResult

    try:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return CliResult(args, -9, "", f"{err}[still running after {timeout:g}s: killed]\n")
    return CliResult(args, done.returncode, done.stdout, done.stderr)


# -- reading the end state back (boto3, out of band) --------------------------------------


# botocore's retries config of a client that sees each fault as it came: one attempt.
ONE_ATTEMPT = {"total_max_attempts": 1, "mode": "standard"}


def reader(endpoint_url: str, region: str) -> Any:
    """A boto3 KMS client for the test's own reads and writes: the injector lets its
    requests through untouched and unrecorded (the conftest's recorder still sees them)."""
    from ..helpers import kms_client

    client = kms_client(endpoint_url, region, ONE_ATTEMPT)

    def exempt(request: Any, **_: Any) -> None:
        request.headers[EXEMPT_HEADER] = "off"

    client.meta.events.register("before-sign.kms.*", exempt)
    return client


LOCK_ALIAS = "alias/kms-reconciler/apply-lock"


def identity_counts(kms: Any, identity_tag: str) -> Counter[str]:
    """How many keys carry each identity-tag value (every key, whatever its state)."""
    counts: Counter[str] = Counter()
    for key in kms.list_keys()["Keys"]:
        for tag in kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]:
            if tag["TagKey"] == identity_tag:
                counts[tag["TagValue"]] += 1
    return counts


def duplicates(kms: Any, identity_tag: str) -> dict[str, int]:
    """{name: count} of every identity that more than one key carries."""
    return {n: c for n, c in identity_counts(kms, identity_tag).items() if c != 1}


def changing_writes(seen: Iterable[Seen]) -> list[str]:
    """The write requests among ``seen`` except a refused attempt to take the apply lock
    (CreateAlias of the lock alias answered AlreadyExists: it changed nothing)."""
    out = []
    for s in seen:
        if not is_write(s.operation):
            continue
        refused_lock = (
            s.operation == "CreateAlias"
            and json.loads(s.body or b"{}").get("AliasName") == LOCK_ALIAS
            and s.status == 400
        )
        if not refused_lock:
            out.append(f"{s.operation} {s.body[:120]!r} -> {s.status}")
    return out


def lock_held(kms: Any) -> bool:
    return any(a["AliasName"] == LOCK_ALIAS for a in kms.list_aliases()["Aliases"])


def end_state(kms: Any, identity_tag: str) -> dict[str, Any]:
    """The managed keys by name, by content (no key IDs, ARNs or dates): what two applies
    of one inventory into two empty accounts must both leave behind."""
    names: dict[str, str] = {}
    keys: dict[str, Any] = {}
    for key in kms.list_keys()["Keys"]:
        key_id = key["KeyId"]
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
        name = tags.get(identity_tag)
        if name is None:
            continue
        names[key_id] = name
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        rotation = kms.get_key_rotation_status(KeyId=key_id)
        policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
        grants = sorted(
            json.dumps(
                {
                    "Name": g.get("Name"),
                    "GranteePrincipal": g.get("GranteePrincipal"),
                    "RetiringPrincipal": g.get("RetiringPrincipal"),
                    "Operations": sorted(g.get("Operations") or []),
                    "Constraints": g.get("Constraints"),
                },
                sort_keys=True,
            )
            for g in kms.list_grants(KeyId=key_id)["Grants"]
        )
        keys[name] = {
            "state": meta["KeyState"],
            "enabled": meta["Enabled"],
            "description": meta.get("Description"),
            "key_spec": meta.get("KeySpec"),
            "key_usage": meta.get("KeyUsage"),
            "tags": tags,
            "policy": policy,
            "rotation": (rotation["KeyRotationEnabled"], rotation.get("RotationPeriodInDays")),
            "grants": grants,
        }
    # An alias of a key that is not managed (the tool's lock anchor, say) is compared by
    # name only: such a key's ID differs from account to account.
    aliases = {
        a["AliasName"]: names.get(a.get("TargetKeyId") or "", "<a key without identity>")
        for a in kms.list_aliases()["Aliases"]
        if not a["AliasName"].startswith("alias/aws/")
    }
    return {"keys": keys, "aliases": aliases}


def state_diff(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Where two ``end_state`` values differ, one line per key field or alias."""
    out = []
    for name in sorted(set(got["keys"]) | set(want["keys"])):
        a, b = got["keys"].get(name), want["keys"].get(name)
        if a is None or b is None:
            out.append(f"key {name}: {'missing' if a is None else 'unexpected'}")
            continue
        out.extend(
            f"key {name} {field}: {a.get(field)!r} != {b.get(field)!r}"
            for field in sorted(set(a) | set(b))
            if a.get(field) != b.get(field)
        )
    for alias in sorted(set(got["aliases"]) | set(want["aliases"])):
        if got["aliases"].get(alias) != want["aliases"].get(alias):
            out.append(f"{alias}: {got['aliases'].get(alias)} != {want['aliases'].get(alias)}")
    return out
