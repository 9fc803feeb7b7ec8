"""The lean read path (reconciler.wire) answers exactly as botocore does.

Every expectation here is botocore's own behaviour for the same request or answer: the
same client is asked both ways and the two results compared, against moto in-process
(its ``before-send`` hook), against a canned HTTP server on 127.0.0.1 (error shapes moto
never sends: namespaced ``__type``, a bare 503, the query-compatible header), and through
``KmsApi``'s retries (a dropped connection, a refused one).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from moto import mock_aws

from reconciler.aws import KmsApi, RateLimiter, _snake
from reconciler.observe import READS
from reconciler.wire import wire_for as wire_with

ACCOUNT = "111122223333"


def wire_for(client: Any) -> Any:
    """The lean path for ``client``'s reads, as ``aws.connect`` makes it."""
    return wire_with(client, READS)


@pytest.fixture
def kms(fake_credentials: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("kms", region_name="eu-west-1")


def both(client: Any, operation: str, **params: Any) -> tuple[Any, Any]:
    """``operation`` through botocore and through the lean path: each answer or error."""
    wire = wire_for(client)
    assert wire is not None and operation in wire.operations
    out = []
    for send in (
        lambda: getattr(client, _snake(operation))(**params),
        lambda: wire.send(operation, params),
    ):
        try:
            out.append(send())
        except botocore.exceptions.ClientError as exc:
            out.append(exc)
    return out[0], out[1]


def without_metadata(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def test_only_reads_take_the_lean_path(kms: Any) -> None:
    wire = wire_for(kms)
    assert wire is not None
    assert wire.operations <= READS
    # observe's declared calls, the tool's only reads: no write among them
    assert all(op.startswith(("Get", "List", "Describe")) for op in READS), READS
    assert {"DescribeKey", "GetKeyPolicy", "ListResourceTags", "ListKeys"} <= wire.operations
    for write in ("CreateKey", "PutKeyPolicy", "TagResource", "ScheduleKeyDeletion"):
        assert write not in wire.operations


def test_every_read_answers_as_botocore_does(kms: Any) -> None:
    key = kms.create_key(Description="d", Tags=[{"TagKey": "team", "TagValue": "a"}])
    key_id = key["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/app", TargetKeyId=key_id)
    kms.enable_key_rotation(KeyId=key_id)
    kms.create_grant(
        KeyId=key_id, GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:role/app", Operations=["Decrypt"]
    )
    kms.schedule_key_deletion(KeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    calls: list[tuple[str, dict[str, Any]]] = [
        ("ListKeys", {"Limit": 1000}),
        ("ListAliases", {}),
        ("ListResourceTags", {"KeyId": key_id}),
        ("DescribeKey", {"KeyId": key_id}),
        ("GetKeyPolicy", {"KeyId": key_id, "PolicyName": "default"}),
        ("GetKeyRotationStatus", {"KeyId": key_id}),
        ("ListGrants", {"KeyId": key_id}),
        ("ListKeyRotations", {"KeyId": key_id}),
    ]
    for operation, params in calls:
        botocore_answer, lean_answer = both(kms, operation, **params)
        assert without_metadata(lean_answer) == without_metadata(botocore_answer), operation
        assert lean_answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    described = both(kms, "DescribeKey", KeyId=key_id)[1]["KeyMetadata"]
    assert isinstance(described["CreationDate"], datetime)


def test_a_modelled_error_is_the_clients_own_exception(kms: Any) -> None:
    missing = "1234abcd-12ab-34cd-56ef-1234567890ab"
    botocore_error, lean_error = both(kms, "DescribeKey", KeyId=missing)
    assert isinstance(lean_error, kms.exceptions.NotFoundException)
    assert type(lean_error) is type(botocore_error)
    assert lean_error.response["Error"] == botocore_error.response["Error"]
    assert str(lean_error) == str(botocore_error)


def test_the_tagging_api_answers_as_botocore_does(fake_credentials: None) -> None:
    with mock_aws():
        kms = boto3.client("kms", region_name="eu-west-1")
        kms.create_key(Tags=[{"TagKey": "kms-reconciler:name", "TagValue": "app"}])
        tagging = boto3.client("resourcegroupstaggingapi", region_name="eu-west-1")
        params = {
            "ResourceTypeFilters": ["kms:key"],
            "TagFilters": [{"Key": "kms-reconciler:name"}],
            "ResourcesPerPage": 100,
        }
        botocore_answer, lean_answer = both(tagging, "GetResources", **params)
    assert without_metadata(lean_answer) == without_metadata(botocore_answer)
    assert len(lean_answer["ResourceTagMappingList"]) == 1


# -- over HTTP: a canned server on 127.0.0.1 ---------------------------------------------


class Canned:
    """Answers each request with the next of ``answers`` (status, headers, body), or closes
    the connection with no answer for ``None``; records requests and connections."""

    def __init__(self, answers: list[tuple[int, dict[str, str], bytes] | None]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.connections = 0
        self.lock = threading.Lock()
        canned = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with canned.lock:
                    canned.connections += 1

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with canned.lock:
                    canned.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    answer = canned.answers.pop(0) if canned.answers else (200, {}, b"{}")
                if answer is None:
                    self.close_connection = True
                    return
                status, headers, data = answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned(fake_credentials: None) -> Iterator[Canned]:
    server = Canned([])
    yield server
    server.close()


def client_for(url: str, **config: Any) -> Any:
    return boto3.client(
        "kms",
        region_name="eu-west-1",
        endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


JSON = {"Content-Type": "application/x-amz-json-1.1"}


@pytest.mark.parametrize(
    "answer",
    [
        (500, JSON, b'{"__type":"com.amazonaws.kms#KMSInternalException","message":"boom"}'),
        (503, {"Content-Type": "text/html"}, b"<html>Service Unavailable</html>"),
        (400, JSON, b'{"__type":"ThrottlingException","Message":"Rate exceeded"}'),
        (
            400,
            {**JSON, "x-amzn-query-error": "AWS.SimpleQueueService.Throttled;Sender"},
            b'{"__type":"ThrottlingException","message":"slow down"}',
        ),
        (400, JSON, b'{"__type":"AccessDeniedException","message":"no"}'),
        (502, JSON, b"Bad Gateway from a proxy"),
        (500, JSON, b""),
    ],
    ids=[
        "namespaced-500",
        "bare-503",
        "Message",
        "query-compatible",
        "access-denied",
        "text",
        "empty",
    ],
)
def test_error_answers_parse_as_botocore_parses_them(
    canned: Canned, answer: tuple[int, dict[str, str], bytes]
) -> None:
    canned.answers = [answer, answer]
    client = client_for(canned.url)
    botocore_error, lean_error = both(client, "DescribeKey", KeyId="k")
    assert isinstance(lean_error, botocore.exceptions.ClientError)
    assert type(lean_error) is type(botocore_error)
    assert lean_error.response["Error"] == botocore_error.response["Error"]
    lean_status = lean_error.response["ResponseMetadata"]["HTTPStatusCode"]
    assert lean_status == botocore_error.response["ResponseMetadata"]["HTTPStatusCode"]
    assert lean_status == answer[0]


def test_the_request_is_the_one_botocore_signs(canned: Canned) -> None:
    client = client_for(canned.url)
    client.meta.events.register(
        "before-sign.kms.*",
        lambda request, **_: request.headers.__setitem__("x-moto-account-id", ACCOUNT),
    )
    both(client, "GetKeyPolicy", KeyId="k", PolicyName="default")
    (botocore_headers, botocore_body), (lean_headers, lean_body) = canned.requests
    assert json.loads(lean_body) == json.loads(botocore_body)
    for name in ("x-amz-target", "content-type", "x-moto-account-id", "host"):
        assert lean_headers[name] == botocore_headers[name], name
    assert signed_headers(lean_headers) == signed_headers(botocore_headers)
    assert credential_scope(lean_headers) == credential_scope(botocore_headers)


def signed_headers(headers: dict[str, str]) -> str:
    return headers["authorization"].split("SignedHeaders=")[1].split(",")[0]


def credential_scope(headers: dict[str, str]) -> str:
    """The scope after the access key ID: date, Region, service, aws4_request."""
    return headers["authorization"].split("Credential=")[1].split(",")[0].split("/", 1)[1]


def test_a_connection_is_kept_alive_across_calls(canned: Canned) -> None:
    wire = wire_for(client_for(canned.url))
    assert wire is not None
    for _ in range(5):
        wire.send("DescribeKey", {"KeyId": "k"})
    assert len(canned.requests) == 5
    assert canned.connections == 1


def test_a_dropped_connection_is_retried_by_kmsapi(canned: Canned) -> None:
    canned.answers = [None, (200, JSON, b'{"KeyMetadata":{"KeyId":"k","CreationDate":1.5e9}}')]
    client = client_for(canned.url)
    api = KmsApi(client, wire=wire_for(client), sleep=lambda s: None)
    answer = api.call("DescribeKey", KeyId="k")
    assert answer["KeyMetadata"]["KeyId"] == "k"
    assert api.calls["DescribeKey"] == 2
    assert api.retries == {"DescribeKey (ConnectionClosedError)": 1}
    assert canned.connections == 2  # the dropped one was not reused


def test_a_refused_connection_is_an_endpoint_error(canned: Canned) -> None:
    url = canned.url
    canned.close()
    client = client_for(url)
    api = KmsApi(client, wire=wire_for(client), sleep=lambda s: None, max_attempts=2)
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        api.call("DescribeKey", KeyId="k")
    assert api.retries == {"DescribeKey (EndpointConnectionError)": 1}


def test_writes_go_through_botocore(canned: Canned) -> None:
    client = client_for(canned.url)
    sent: list[str | bytes] = []
    client.meta.events.register(
        "before-send.kms.*", lambda request, **_: sent.append(request.headers["X-Amz-Target"])
    )
    api = KmsApi(client, wire=wire_for(client))
    api.call("TagResource", KeyId="k", Tags=[{"TagKey": "a", "TagValue": "b"}])
    api.call("DescribeKey", KeyId="k")
    assert api.wire is not None and "TagResource" not in api.wire.operations
    # both emit the client's before-send hooks, each with its own operation
    assert [t.decode() if isinstance(t, bytes) else t for t in sent] == [
        "TrentService.TagResource",
        "TrentService.DescribeKey",
    ]


def test_an_http_proxy_for_the_endpoint_leaves_every_request_to_botocore(
    fake_credentials: None,
) -> None:
    client = client_for("https://kms.eu-west-1.amazonaws.com", proxies={"https": "http://p:3128"})
    assert wire_for(client) is None


def test_a_client_certificate_leaves_every_request_to_botocore(fake_credentials: None) -> None:
    client = client_for("https://kms.eu-west-1.amazonaws.com", client_cert="/nonexistent.pem")
    assert client._endpoint.http_session._cert_file == "/nonexistent.pem"
    assert wire_for(client) is None


# -- the event loop's path (observe's reads): Wire.asend and KmsApi.acall ------------------


def on_loop(coroutine: Any, wire: Any) -> Any:
    """Run ``coroutine`` on a new event loop, then close ``wire``'s connections on it."""

    async def run() -> Any:
        try:
            return await coroutine
        finally:
            await wire.aclose()

    return asyncio.run(run())


def loop_wire(client: Any) -> Any:
    wire = wire_for(client)
    assert wire is not None
    return wire


def test_asend_answers_as_send_does_over_http(canned: Canned) -> None:
    key = b'{"KeyMetadata":{"KeyId":"k","CreationDate":1.5e9,"Arn":null,"Unknown":1}}'
    canned.answers = [(200, JSON, key), (200, JSON, key)]
    wire = loop_wire(client_for(canned.url))
    sync = wire.send("DescribeKey", {"KeyId": "k"})
    on_loop_answer = on_loop(wire.asend("DescribeKey", {"KeyId": "k"}), wire)
    assert without_metadata(on_loop_answer) == without_metadata(sync)
    assert on_loop_answer["KeyMetadata"] == {"KeyId": "k", "CreationDate": ANY_DATETIME}
    assert canned.requests[0][1] == canned.requests[1][1]  # the same body


class _AnyDatetime:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, datetime)


ANY_DATETIME = _AnyDatetime()


@pytest.mark.parametrize(
    "answer",
    [
        (500, JSON, b'{"__type":"com.amazonaws.kms#KMSInternalException","message":"boom"}'),
        (503, {"Content-Type": "text/html"}, b"<html>Service Unavailable</html>"),
        (400, JSON, b'{"__type":"NotFoundException","message":"gone"}'),
    ],
    ids=["namespaced-500", "bare-503", "not-found"],
)
def test_asend_errors_are_botocores(
    canned: Canned, answer: tuple[int, dict[str, str], bytes]
) -> None:
    canned.answers = [answer, answer]
    client = client_for(canned.url)
    botocore_error = both(client, "DescribeKey", KeyId="k")[0]
    canned.answers = [answer]
    wire = loop_wire(client)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        on_loop(wire.asend("DescribeKey", {"KeyId": "k"}), wire)
    assert type(raised.value) is type(botocore_error)
    assert raised.value.response["Error"] == botocore_error.response["Error"]


def test_the_loop_keeps_its_connections_alive_and_reads_side_by_side(canned: Canned) -> None:
    wire = loop_wire(client_for(canned.url))

    async def reads() -> None:
        for _ in range(3):  # three rounds of four reads side by side
            await asyncio.gather(*(wire.asend("DescribeKey", {"KeyId": "k"}) for _ in range(4)))

    on_loop(reads(), wire)
    assert len(canned.requests) == 12
    assert canned.connections == 4  # one per read in flight, kept for the next rounds


@pytest.mark.parametrize(
    "framing",
    ["chunked", "close"],
)
def test_chunked_and_close_delimited_bodies(fake_credentials: None, framing: str) -> None:
    """Answers framed without Content-Length, as a proxy may send them."""
    body = b'{"KeyRotationEnabled":true,"RotationPeriodInDays":365}'
    if framing == "chunked":
        wire_body = b"10\r\n" + body[:16] + b"\r\n" + f"{len(body) - 16:x}\r\n".encode()
        wire_body += body[16:] + b"\r\n0\r\n\r\n"
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    else:
        wire_body, head = body, b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        for _ in range(2):
            conn, _ = server.accept()
            conn.recv(65536)
            conn.sendall(head + wire_body)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    client = client_for(f"http://127.0.0.1:{server.getsockname()[1]}")
    wire = loop_wire(client)
    expected = {"KeyRotationEnabled": True, "RotationPeriodInDays": 365}
    assert without_metadata(wire.send("GetKeyRotationStatus", {"KeyId": "k"})) == expected
    answer = on_loop(wire.asend("GetKeyRotationStatus", {"KeyId": "k"}), wire)
    assert without_metadata(answer) == expected
    server.close()


def test_acall_retries_a_dropped_connection_and_counts_it(canned: Canned) -> None:
    canned.answers = [None, (200, JSON, b'{"KeyMetadata":{"KeyId":"k"}}')]
    client = client_for(canned.url)
    api = KmsApi(client, wire=loop_wire(client), sleep=lambda s: None)
    answer = on_loop(api.acall("DescribeKey", KeyId="k"), api.wire)
    assert answer["KeyMetadata"]["KeyId"] == "k"
    assert api.calls["DescribeKey"] == 2
    assert api.retries == {"DescribeKey (ConnectionClosedError)": 1}


def test_acall_gives_up_after_max_attempts(canned: Canned) -> None:
    throttled = (400, JSON, b'{"__type":"ThrottlingException","message":"Rate exceeded"}')
    canned.answers = [throttled] * 3
    client = client_for(canned.url)
    limiter = RateLimiter({"DescribeKey": 1000.0})
    api = KmsApi(client, limiter=limiter, wire=loop_wire(client), sleep=lambda s: None)
    api.max_attempts = 3
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        on_loop(api.acall("DescribeKey", KeyId="k"), api.wire)
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert api.calls["DescribeKey"] == 3
    assert limiter.rate("DescribeKey") == 500.0  # halved once: one congestion event


def test_acall_sends_a_write_through_botocore_in_the_executor(canned: Canned) -> None:
    client = client_for(canned.url)
    api = KmsApi(client, wire=loop_wire(client))
    threads: list[str] = []
    client.meta.events.register(
        "before-send.kms.*", lambda **_: threads.append(threading.current_thread().name)
    )

    async def both_ways() -> None:
        await api.acall("TagResource", KeyId="k", Tags=[{"TagKey": "a", "TagValue": "b"}])
        await api.acall("DescribeKey", KeyId="k")

    on_loop(both_ways(), api.wire)
    main = threading.current_thread().name
    assert threads[0] != main  # botocore's call ran in the loop's executor
    assert threads[1] == main  # the read ran on the loop's own thread


def test_a_refused_connection_on_the_loop_is_an_endpoint_error(canned: Canned) -> None:
    url = canned.url
    canned.close()
    client = client_for(url)
    api = KmsApi(client, wire=loop_wire(client), sleep=lambda s: None, max_attempts=2)
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        on_loop(api.acall("DescribeKey", KeyId="k"), api.wire)
    assert api.retries == {"DescribeKey (EndpointConnectionError)": 1}


@pytest.mark.parametrize(("lean", "expected"), [(True, True), (False, False)], ids=["lean", "off"])
def test_connect_gives_each_client_the_lean_path_unless_turned_off(
    fake_credentials: None, lean: bool, expected: bool
) -> None:
    from reconciler.aws import AwsOptions, connect
    from reconciler.state import TargetInfo

    target = TargetInfo("t", "123456789012", "eu-west-1")
    with mock_aws():
        connection = connect(target, AwsOptions(lean_reads=lean))
        assert (connection.kms.wire is not None) is expected
        assert (connection.kms_in("us-east-1").wire is not None) is expected
        assert (connection.tagging().wire is not None) is expected


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), as a private CA bundle would hold it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_tls_with_the_clients_ca_bundle_and_refused_without_it(
    canned: Canned, tmp_path: Path
) -> None:
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    canned.server.socket = context.wrap_socket(canned.server.socket, server_side=True)
    url = canned.url.replace("http://", "https://")
    answer = (200, JSON, b'{"KeyMetadata":{"KeyId":"k"}}')
    canned.answers = [answer, answer]

    trusting = wire_for(
        boto3.client(
            "kms",
            region_name="eu-west-1",
            endpoint_url=url,
            verify=str(cert_file),
            config=Config(retries={"total_max_attempts": 1}),
        )
    )
    assert trusting is not None
    assert trusting.send("DescribeKey", {"KeyId": "k"})["KeyMetadata"] == {"KeyId": "k"}
    on_loop_answer = on_loop(trusting.asend("DescribeKey", {"KeyId": "k"}), trusting)
    assert on_loop_answer["KeyMetadata"] == {"KeyId": "k"}

    untrusting = loop_wire(client_for(url))  # the system's CAs: the certificate is unknown
    with pytest.raises(botocore.exceptions.SSLError):
        untrusting.send("DescribeKey", {"KeyId": "k"})
    with pytest.raises(botocore.exceptions.SSLError):
        on_loop(untrusting.asend("DescribeKey", {"KeyId": "k"}), untrusting)
