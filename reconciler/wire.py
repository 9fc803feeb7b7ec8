"""A lean request path for the JSON-protocol reads of KMS and the tagging API.

A no-op plan is thousands of small reads. Through botocore each costs about 1 ms of client
CPU (request building, the event chain, urllib3, parsing), so at KMS's read quotas the
client, not KMS, would bound a plan (``benchmarks/plan.md``). This path does the same
request with less: the JSON body by hand; the **client's own request signer** (SigV4 with
the client's credential chain, refreshed credentials included, its Region and its
``before-sign`` hooks); the client's resolved endpoint (``--endpoint-url``,
``AWS_ENDPOINT_URL_KMS``, FIPS and dual-stack settings: botocore's endpoint rules decide
it, once per operation); its ``before-send`` hooks (moto's in-process mock answers there,
as it does for botocore); one kept-alive ``http.client`` connection per thread, with the
client's TLS verification settings and timeouts; and the answer parsed as botocore parses
it, from the operation's output shape: only modelled members, nulls dropped, timestamps
and blobs converted, ``ResponseMetadata`` added, errors raised as the client's own
modelled ``ClientError`` classes with the same code, message and HTTP status.

Used only for the reads it is given (``wire_for``: observe's declared reads, ``observe.READS``,
the tool's only reads): a read can be resent whatever happened to it, so the
network failures here need no finer outcome than "retry" (``KmsApi`` retries them). Writes
go through botocore. Not used where botocore does something this path does not: an HTTP
proxy for the endpoint, a client certificate, a service that does not speak JSON (one
that speaks it besides another, as the tagging API speaks CBOR to botocore 1.44, is
spoken to in JSON), an operation whose input has a blob or a timestamp, or a member
serialised under another name.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import http.client
import json
import select
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions
from botocore.awsrequest import AWSRequest
from botocore.model import OperationModel, Shape
from botocore.utils import parse_timestamp

Convert = Callable[[Any], Any]


class Wire:
    """The lean path for one botocore client (KMS or the tagging API)."""

    def __init__(self, client: Any, operations: frozenset[str], parse: _Parsers) -> None:
        self.client = client
        self.operations = operations
        self._parse = parse
        model = client.meta.service_model
        self._prefix = model.metadata["targetPrefix"]
        self._content_type = f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}"
        self._event = model.service_id.hyphenize()
        self._endpoints: dict[str, _Endpoint] = {}
        self._local = threading.local()
        self._pools: dict[asyncio.AbstractEventLoop, _Pool] = {}
        self._verify = client._endpoint.http_session._verify
        config = client.meta.config
        self._connect_timeout = config.connect_timeout
        self._read_timeout = config.read_timeout
        creator = getattr(client, "_user_agent_creator", None)
        self._user_agent = creator.to_string() if creator is not None else config.user_agent

    @functools.cached_property
    def _context(self) -> ssl.SSLContext:
        """TLS as the client verifies it (its CA bundle, or none with verify=False); made
        on the first https connection (loading a CA bundle takes tens of milliseconds)."""
        if self._verify is False:
            return ssl._create_unverified_context()
        if isinstance(self._verify, str):
            return ssl.create_default_context(cafile=self._verify)
        return ssl.create_default_context()

    def send(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One HTTP attempt of ``operation``: its parsed answer, or the ClientError, or a
        botocore network error (for ``KmsApi`` to retry)."""
        model, endpoint, prepared = self._prepare(operation, params)
        answered = self._hooked(operation, prepared)
        if answered is None:
            answered = self._http(endpoint, prepared)
        return self._parse(self.client, model, *answered)

    async def asend(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """``send`` on an event loop: the request goes out on one of this loop's kept-alive
        connections (``_Pool``), so thousands of reads share one thread."""
        model, endpoint, prepared = self._prepare(operation, params)
        answered = self._hooked(operation, prepared)
        if answered is None:
            answered = await self._pool().exchange(endpoint, self._head(endpoint, prepared))
        return self._parse(self.client, model, *answered)

    async def aclose(self) -> None:
        """Close the running loop's connections (at the end of the loop's reads)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    def _prepare(
        self, operation: str, params: Mapping[str, Any]
    ) -> tuple[OperationModel, _Endpoint, Any]:
        """The signed request: the JSON body, the endpoint's URL and headers, signed by the
        client's own signer (its credentials and ``before-sign`` hooks)."""
        model = self.client.meta.service_model.operation_model(operation)
        endpoint = self._endpoint(model)
        headers = {
            "Host": endpoint.host,
            "X-Amz-Target": f"{self._prefix}.{operation}",
            "Content-Type": self._content_type,
            **endpoint.headers,
        }
        request = AWSRequest(
            method="POST", url=endpoint.url, data=json.dumps(params).encode(), headers=headers
        )
        self.client._request_signer.sign(operation, request)
        return model, endpoint, request.prepare()

    def _hooked(self, operation: str, prepared: Any) -> tuple[int, dict[str, str], bytes] | None:
        """The answer of a ``before-send`` hook, as botocore asks them (moto's in-process
        mock answers there); None: send it."""
        answered = self.client.meta.events.emit_until_response(
            f"before-send.{self._event}.{operation}", request=prepared
        )[1]
        if answered is None:
            return None
        return answered.status_code, dict(answered.headers), answered.content

    def _head(self, endpoint: _Endpoint, prepared: Any) -> bytes:
        """The request as written: request line, headers, Content-Length, body."""
        head = [f"POST {endpoint.path} HTTP/1.1", f"User-Agent: {self._user_agent}"]
        head.extend(f"{name}: {value}" for name, value in prepared.headers.items())
        if any("\r" in line or "\n" in line for line in head):  # as http.client refuses
            raise ValueError("a request header holds a line break; refused")
        head.append(f"Content-Length: {len(prepared.body)}\r\n\r\n")
        return "\r\n".join(head).encode("latin-1") + bytes(prepared.body)

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = _Pool(
                lambda: self._context, self._connect_timeout, self._read_timeout
            )
        return pool

    def _endpoint(self, model: OperationModel) -> _Endpoint:
        found = self._endpoints.get(model.name)
        if found is None:
            url, headers, _ = self.client._resolve_endpoint_ruleset(model, {}, {})
            found = self._endpoints[model.name] = _Endpoint.of(url, headers)
        return found

    # -- HTTP -----------------------------------------------------------------------------

    def _http(self, endpoint: _Endpoint, prepared: Any) -> tuple[int, dict[str, str], bytes]:
        """One request on this thread's kept-alive connection to the endpoint: written in
        one piece (headers and body, TCP_NODELAY as urllib3 sets it), answered with its
        status, lower-cased headers and body."""
        connections: dict[tuple[str, str, int], _Connection] | None = getattr(
            self._local, "connections", None
        )
        if connections is None:
            connections = self._local.connections = {}
        conn = connections.get(endpoint.key)
        if conn is not None and conn.dropped():
            conn.close()  # the server closed it while it was idle: connect again
            conn = None
        if conn is None:
            try:
                conn = _Connection.open(endpoint, lambda: self._context, self._connect_timeout)
            except ssl.SSLError as exc:  # certificate not trusted, or no TLS at that address
                raise botocore.exceptions.SSLError(endpoint_url=endpoint.url, error=exc) from exc
            except OSError as exc:
                raise botocore.exceptions.EndpointConnectionError(
                    endpoint_url=endpoint.url, error=exc
                ) from exc
            connections[endpoint.key] = conn
        request = self._head(endpoint, prepared)
        try:
            conn.sock.settimeout(self._read_timeout)
            answer = conn.exchange(request)
        except TimeoutError as exc:
            conn.close()
            del connections[endpoint.key]
            raise botocore.exceptions.ReadTimeoutError(
                endpoint_url=endpoint.url, error=exc
            ) from exc
        except (OSError, ValueError) as exc:
            conn.close()
            del connections[endpoint.key]
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=endpoint.url) from exc
        status, reply_headers, data, keep = answer
        if not keep:
            conn.close()
            del connections[endpoint.key]
        return status, reply_headers, data


@dataclass(frozen=True)
class _Endpoint:
    url: str
    host: str  # the Host header, as botocore's signer writes it (the port if not default)
    path: str
    key: tuple[str, str, int]  # scheme, host name, port: what a connection is kept for
    headers: dict[str, str]

    @classmethod
    def of(cls, url: str, headers: Mapping[str, str]) -> _Endpoint:
        parts = urlsplit(url)
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        name = parts.hostname or ""
        host = name if port == default else f"{name}:{port}"
        if ":" in name:  # an IPv6 literal keeps its brackets
            host = f"[{name}]" if port == default else f"[{name}]:{port}"
        path = parts.path or "/"  # botocore's request URL for a JSON operation ends in "/"
        url = f"{parts.scheme}://{parts.netloc}{path}"
        return cls(url, host, path, (parts.scheme, name, port), dict(headers))


class _Connection:
    """One kept-alive HTTP/1.1 connection (TLS for https), read through a buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb")

    @classmethod
    def open(
        cls, endpoint: _Endpoint, context: Callable[[], ssl.SSLContext], timeout: float
    ) -> _Connection:
        scheme, host, port = endpoint.key
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = context().wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def dropped(self) -> bool:
        """Closed by the server while idle (readable with nothing to read), as urllib3
        checks before it reuses a pooled connection."""
        try:
            return bool(select.select([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        self._reader.close()
        self.sock.close()

    def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes, bool]:
        """Send ``request``; the answer's status, headers, body, and whether the connection
        may be used again."""
        self.sock.sendall(request)
        lines = [self._reader.readline(_LINE)]
        if not lines[0]:
            raise ConnectionResetError("the server closed the connection without an answer")
        while lines[-1] not in (b"\r\n", b"\n", b""):
            lines.append(self._reader.readline(_LINE))
        status, headers, keep = _head(b"".join(lines))
        framing = _framing(headers)
        if framing == "chunked":
            body = b""
            while size := _chunk_size(self._reader.readline(_LINE)):
                body += self._reader.read(size)
                self._reader.readline(_LINE)
            while self._reader.readline(_LINE) not in (b"\r\n", b"\n", b""):
                pass  # trailers
        elif framing == "close":  # the body runs to the end of the connection
            body, keep = self._reader.read(), False
        else:
            body = self._reader.read(int(framing))
            if len(body) != framing:
                raise ConnectionResetError("the answer ended before its Content-Length")
        return status, headers, body, keep


class _Pool:
    """Kept-alive connections on one event loop, each carrying one request at a time."""

    def __init__(
        self, context: Callable[[], ssl.SSLContext], connect_timeout: float, read_timeout: float
    ):
        self._context = context
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
        self._idle: dict[tuple[str, str, int], list[Stream]] = {}

    async def exchange(
        self, endpoint: _Endpoint, request: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        idle = self._idle.setdefault(endpoint.key, [])
        while idle:
            reader, writer = idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                break
            writer.close()  # the server closed it while it was idle
        else:
            reader, writer = await self._open(endpoint)
        try:
            writer.write(request)
            status, headers, body, keep = await asyncio.wait_for(
                _read_answer(reader), self._read_timeout
            )
        except asyncio.TimeoutError as exc:
            writer.close()
            raise botocore.exceptions.ReadTimeoutError(
                endpoint_url=endpoint.url, error=exc
            ) from exc
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=endpoint.url) from exc
        if keep:
            idle.append((reader, writer))
        else:
            writer.close()
        return status, headers, body

    async def _open(self, endpoint: _Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        scheme, host, port = endpoint.key
        tls = scheme == "https"
        try:
            return await asyncio.wait_for(  # asyncio sets TCP_NODELAY on TCP connections
                asyncio.open_connection(
                    host,
                    port,
                    ssl=self._context() if tls else None,
                    server_hostname=host if tls else None,
                ),
                self._connect_timeout,
            )
        except ssl.SSLError as exc:  # certificate not trusted, or no TLS at that address
            raise botocore.exceptions.SSLError(endpoint_url=endpoint.url, error=exc) from exc
        except (OSError, asyncio.TimeoutError) as exc:
            raise botocore.exceptions.EndpointConnectionError(
                endpoint_url=endpoint.url, error=exc
            ) from exc

    async def close(self) -> None:
        for streams in self._idle.values():
            for _, writer in streams:
                writer.close()
        self._idle.clear()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes, bool]:
    raw = await reader.readuntil(b"\r\n\r\n")
    status, headers, keep = _head(raw)
    framing = _framing(headers)
    if framing == "chunked":
        body = b""
        while size := _chunk_size(await reader.readline()):
            body += await reader.readexactly(size)
            await reader.readline()
        while await reader.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
    elif framing == "close":
        body, keep = await reader.read(), False
    else:
        body = await reader.readexactly(int(framing))
    return status, headers, body, keep


def _head(raw: bytes) -> tuple[int, dict[str, str], bool]:
    """The status line and headers of an answer: status, lower-cased headers (repeated
    ones joined with ", "), and whether the connection may be kept."""
    lines = raw.decode("latin-1").split("\r\n") if b"\r\n" in raw else raw.decode().split("\n")
    version, status, *_ = lines[0].split(None, 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return int(status), headers, keep


def _framing(headers: Mapping[str, str]) -> int | str:
    """How the body ends: "chunked", its Content-Length, or "close" (at the end of the
    connection)."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return "chunked"
    if "content-length" in headers:
        return int(headers["content-length"])
    return "close"


def _chunk_size(line: bytes) -> int:
    return int(line.split(b";", 1)[0].strip() or b"0", 16)


_LINE = 65537  # the longest status or header line read (as http.client)


# -- parsing, as botocore's JSON parser does ------------------------------------------------


class _Parsers:
    """Converters from each output shape, built once per (service, operation)."""

    def __init__(self, timestamp: Convert) -> None:
        self._timestamp = timestamp
        self._built: dict[tuple[str, str], Convert] = {}
        self._lock = threading.Lock()

    def __call__(
        self,
        client: Any,
        model: OperationModel,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
    ) -> dict[str, Any]:
        headers = {k.lower(): v for k, v in headers.items()}
        metadata = {
            "RequestId": headers.get("x-amzn-requestid", ""),
            "HTTPStatusCode": status,
            "HTTPHeaders": headers,
            "RetryAttempts": 0,
        }
        if status >= 300:
            raise _error(client, model.name, status, headers, body, metadata)
        data = json.loads(body) if body else {}
        parsed = self._converter(model)(data) if model.output_shape is not None else {}
        parsed["ResponseMetadata"] = metadata
        return dict(parsed)

    def _converter(self, model: OperationModel) -> Convert:
        key = (model.service_model.service_name, model.name)
        found = self._built.get(key)
        if found is None:
            with self._lock:
                found = self._built[key] = self._shape(model.output_shape)
        return found

    def _shape(self, shape: Shape) -> Convert:
        kind = shape.type_name
        if kind == "structure":
            members = [(name, self._shape(member)) for name, member in shape.members.items()]

            def structure(value: Any) -> dict[str, Any]:
                return {
                    name: convert(value[name])
                    for name, convert in members
                    if value.get(name) is not None
                }

            return structure
        if kind == "list":
            item = self._shape(shape.member)
            return lambda value: [item(v) for v in value]
        if kind == "map":
            of = self._shape(shape.value)
            return lambda value: {k: of(v) for k, v in value.items()}
        if kind == "timestamp":
            return self._timestamp
        if kind == "blob":
            return base64.b64decode
        return _same


def _same(value: Any) -> Any:
    return value


def _error(
    client: Any,
    operation: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    metadata: dict[str, Any],
) -> botocore.exceptions.ClientError:
    """The ClientError botocore raises for this answer (its JSON parser's rules): a 5xx
    with no body or an HTML one is generic (the status and its reason); otherwise the code
    is ``__type`` after its namespace, or the status, and the query-compatible header's
    code wins; the exception is the client's modelled class for that code."""
    error: dict[str, Any]
    stripped = body.strip()
    if status >= 500 and (not stripped or stripped.startswith(b"<html>")):
        error = {"Code": str(status), "Message": http.client.responses.get(status, "")}
    else:
        data = _json_or_message(body)
        error = {"Message": data.get("message", data.get("Message", "")), "Code": ""}
        code = str(data.get("__type", status))
        code = code.split(":", 1)[0].rsplit("#", 1)[-1]
        query = headers.get("x-amzn-query-error", "").split(";")
        if len(query) == 2 and query[0]:
            error["QueryErrorCode"], error["Type"] = code, query[1]
            code = query[0]
        error["Code"] = code
    if "x-amzn-requestid" not in headers:
        metadata = {k: v for k, v in metadata.items() if k != "RequestId"}
    response = {"Error": error, "ResponseMetadata": metadata}
    cls = client.exceptions.from_code(error["Code"])
    return cls(response, operation)


def _json_or_message(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    text = body.decode("utf-8")
    try:
        data = json.loads(text)
    except ValueError:
        return {"message": text}
    return data if isinstance(data, dict) else {}


def _usable_operations(client: Any, reads: frozenset[str]) -> frozenset[str]:
    """The ``reads`` of ``client`` this path can send: a service that speaks JSON, input with
    no blob or timestamp, every member under its own name in both directions."""
    model = client.meta.service_model
    # botocore 1.44 talks CBOR (smithy-rpc-v2-cbor) to the tagging API, which also speaks
    # JSON: this path speaks JSON to any service that lists it among its protocols.
    protocols = model.metadata.get("protocols") or [model.protocol]
    if "json" not in protocols or "targetPrefix" not in model.metadata:
        return frozenset()
    usable = set()
    for name in reads & set(model.operation_names):
        operation = model.operation_model(name)
        if _plain(operation.input_shape, inputs=True) and _plain(
            operation.output_shape, inputs=False
        ):
            usable.add(name)
    return frozenset(usable)


def _plain(shape: Shape | None, *, inputs: bool, depth: int = 0) -> bool:
    if shape is None:
        return True
    if depth > 20:  # a recursive shape: leave it to botocore
        return False
    kind = shape.type_name
    if inputs and kind in ("blob", "timestamp"):
        return False
    if kind == "structure":
        return all(
            member.serialization.get("name", name) == name
            and _plain(member, inputs=inputs, depth=depth + 1)
            for name, member in shape.members.items()
        )
    if kind == "list":
        return _plain(shape.member, inputs=inputs, depth=depth + 1)
    if kind == "map":
        return _plain(shape.value, inputs=inputs, depth=depth + 1)
    return bool(kind != "document")


def wire_for(client: Any, reads: frozenset[str]) -> Wire | None:
    """The lean path for ``client``'s ``reads`` (operations that only read: a write must
    keep botocore's path), or None where botocore must do the requests."""
    try:
        operations = _usable_operations(client, reads)
        session = client._endpoint.http_session
        url = client.meta.endpoint_url or ""
        if not operations or session._proxy_config.proxy_url_for(url):
            return None
        if session._cert_file:  # a client certificate: botocore sends it
            return None
        parser = getattr(client._response_parser, "_timestamp_parser", None) or parse_timestamp
        return Wire(client, operations, _Parsers(parser))
    except (AttributeError, KeyError):  # a botocore without what this path reads
        return None
