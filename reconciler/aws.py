"""The only place boto3 is configured: sessions, credentials, retries, pacing, sandbox.

``KmsApi`` wraps one KMS client for one target. Every call goes through it, so every HTTP
attempt is paced to the operation's request quota and counted (plans and drift reports say
how many calls they made). There is one retry policy, this one: botocore's own retries are
off (``total_max_attempts=1``), so no request is ever sent that the tool did not pace and
count. Throttling, HTTP 5xx (a bare 503 from a proxy included) and dropped connections are
retried with jittered backoff, up to ``AWS_MAX_ATTEMPTS`` attempts in all.

A failure after which the request may have been executed (HTTP 5xx, a read timeout, a
connection dropped after the request was sent) is *ambiguous*. A write that KMS cannot make
idempotent (CreateKey, RotateKeyOnDemand) is never resent after one: ``call`` raises
``AmbiguousOutcome`` and the caller reads KMS to learn what happened. Other writes are
resent, and an error that a repeat itself causes (AlreadyExists, NotFound) carries
``resent(exc)`` so the caller resolves it by reading, not by failing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import botocore.exceptions

if TYPE_CHECKING:  # boto3 and botocore.config cost ~0.1 s to import: only a connection needs them
    import boto3
    from botocore.config import Config

    from reconciler.wire import Wire

from reconciler import catalog
from reconciler.errors import AccountMismatchError, AwsError, InputError, Problem
from reconciler.state import TargetInfo

# One line per HTTP attempt at DEBUG (KMS_RECONCILER_LOG=debug, or -vvv): operation, the
# key, alias or grant it names, attempt, outcome and milliseconds. Never another parameter:
# policies, key material and tokens stay out of every log.
LOG = logging.getLogger("kms_reconciler.requests")
_LOGGED_PARAMS = ("KeyId", "TargetKeyId", "AliasName", "GrantId", "ReplicaRegion")

THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
RETRYABLE_CODES = THROTTLING_CODES | frozenset(
    {
        "KMSInternalException",
        "DependencyTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
    }
)
# Retries: total attempts per call (the first one included), as AWS_MAX_ATTEMPTS counts them
# in botocore's standard mode; the modes botocore knows that this policy implements.
DEFAULT_MAX_ATTEMPTS = 6
MAX_ATTEMPTS_LIMIT = 20
RETRY_MODES = ("standard", "adaptive")


class AmbiguousOutcome(Exception):
    """A write that must not be resent failed in a way that leaves its outcome unknown: KMS
    may or may not have executed it (HTTP 5xx, a timeout, a dropped connection)."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"{operation}: outcome unknown after {reason}")
        self.operation = operation
        self.reason = reason


_RESENT = "_kms_reconciler_resent"


def resent(exc: BaseException) -> bool:
    """True when ``exc`` answers a resent request after an attempt whose outcome is unknown:
    an AlreadyExists or NotFound may then be the first attempt's own doing."""
    return bool(getattr(exc, _RESENT, False))


def ambiguous(exc: BaseException) -> bool:
    """Whether the request may have been executed although the call failed."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return http_status(exc) >= 500
    # Connection refused or never established: nothing was sent.
    return isinstance(exc, botocore.exceptions.HTTPClientError)


def retryable(exc: botocore.exceptions.ClientError) -> bool:
    """Throttling or a server-side failure (HTTP 5xx): worth another attempt."""
    return error_code(exc) in RETRYABLE_CODES or http_status(exc) >= 500


def http_status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def retry_settings(environ: Mapping[str, str]) -> int:
    """``AWS_MAX_ATTEMPTS`` (total attempts per call) and ``AWS_RETRY_MODE``, honoured the
    way botocore's standard mode reads them, or refused in one line."""
    raw_mode = environ.get("AWS_RETRY_MODE", "").strip()
    if raw_mode and raw_mode not in RETRY_MODES:
        raise InputError(
            Problem(
                f"{raw_mode!r} is not supported: kms-reconciler retries in "
                "standard mode with client-side quota pacing that backs off on throttling "
                f"(adaptive); use one of {', '.join(RETRY_MODES)}, or unset it",
                field="AWS_RETRY_MODE",
            )
        )
    raw = environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if not raw:
        return DEFAULT_MAX_ATTEMPTS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise InputError(
            Problem(
                f"must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT} (attempts per call, "
                f"the first one included), not {raw!r}",
                field="AWS_MAX_ATTEMPTS",
            )
        )
    return value


@dataclass(frozen=True)
class Settle:
    """Errors to retry (``attempts`` times, with backoff) on a key that is still settling:
    KMS is eventually consistent right after CreateKey (NotFoundException), a new replica
    is ``Creating`` for a few seconds after ReplicateKey, and both keys of a primary move
    are ``Updating`` after UpdatePrimaryRegion (KMSInvalidStateException)."""

    attempts: int = 0
    codes: frozenset[str] = frozenset({"NotFoundException"})


NO_SETTLE = Settle()
# Connection refused, connect timeout (nothing sent), and dropped connections or read
# timeouts (maybe executed: see ``ambiguous``).
NETWORK_ERRORS = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)
# Management quotas are shared with every other principal of the account: leave headroom.
QUOTA_HEADROOM = 0.8
# Reads in flight per target at most, when the tool sizes them (observe.reads_in_flight).
MAX_READS_IN_FLIGHT = 128


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return type(exc).__name__


def error_message(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        message = err.get("Message") or ""
        return f"{err.get('Code', 'Error')}: {message}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


class RateLimiter:
    """Paces calls per operation (token bucket).

    The paced rate is the quota less the headroom (``QUOTA_HEADROOM``), and the bucket holds
    only that headroom's worth of calls: in any one second at most burst + rate = the quota
    is sent, so a KMS that counts calls per second never sees the start of a run above it
    (a bucket of one second's worth would send twice the rate in the first second).

    Adaptive: a throttled operation's rate is halved (down to a sixteenth of its quota) and
    grows back by a twentieth of the quota with each call that is not throttled (AIMD),
    since the quota is shared with every other caller in the account and Region. As TCP
    halves once per congestion event, not once per lost packet, the calls throttled within
    one second of a decrease (the calls in flight when it happened: KMS counts per second)
    do not halve the rate again.
    """

    def __init__(
        self,
        quotas: Mapping[str, float],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.quotas = dict(quotas)
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._factor: dict[str, float] = {}
        self._decreased: dict[str, float] = {}  # operation -> when its rate was last halved

    def throttled(self, operation: str) -> None:
        with self._lock:
            now = self.clock()
            if now - self._decreased.get(operation, float("-inf")) < 1.0:
                return  # the same congestion event
            self._decreased[operation] = now
            self._factor[operation] = max(1 / 16, self._factor.get(operation, 1.0) / 2)

    def succeeded(self, operation: str) -> None:
        if operation in self._factor:
            with self._lock:
                factor = self._factor.get(operation, 1.0) + 1 / 20
                if factor >= 1.0:
                    self._factor.pop(operation, None)
                else:
                    self._factor[operation] = factor

    def rate(self, operation: str) -> float | None:
        quota = self.quotas.get(operation)
        if not quota or quota <= 0:
            return None
        return quota * self._factor.get(operation, 1.0)

    def reserve(self, operation: str) -> float:
        """Take the next slot of ``operation``'s pace: the seconds to wait before sending."""
        rate = self.rate(operation)
        if rate is None:
            return 0.0
        capacity = max(1.0, rate * _BURST)
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(operation, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate) - 1.0
            self._buckets[operation] = (tokens, now)
        return -tokens / rate if tokens < 0 else 0.0  # the slot reserved for this call

    def acquire(self, operation: str) -> None:
        wait = self.reserve(operation)
        if wait > 0:
            self.sleep(wait)


# The burst a bucket holds, as a share of its rate: rate + burst = rate / QUOTA_HEADROOM.
_BURST: Final = 1 / QUOTA_HEADROOM - 1


def quotas_for(overrides: Mapping[str, float], scale: float) -> dict[str, float]:
    return {
        op: rate * QUOTA_HEADROOM * scale
        for op, rate in {**catalog.REQUEST_QUOTAS, **overrides}.items()
    }


@dataclass
class KmsApi:
    """One target's KMS client with pacing, retries and call counting."""

    client: Any
    limiter: RateLimiter | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    sleep: Callable[[float], None] = time.sleep
    calls: Counter[str] = field(default_factory=Counter)
    # retries by "Operation (reason)", e.g. "CreateKey (ThrottlingException)"
    retries: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The lean request path for this client's reads (``wire.wire_for``); None: botocore.
    wire: Wire | None = None

    def call(
        self, operation: str, *, settle: Settle = NO_SETTLE, resend: bool = True, **params: Any
    ) -> Any:
        """Call a KMS operation by its API name (``DescribeKey``). Every attempt is paced
        and counted. Retried: throttling, HTTP 5xx and network errors (up to
        ``max_attempts`` in all), and ``settle.codes`` ``settle.attempts`` times. With
        ``resend=False`` an attempt whose outcome is unknown is not repeated:
        ``AmbiguousOutcome`` is raised instead."""
        send = self._sender(operation)
        attempts = _Attempts(self, operation, settle, resend)
        while True:
            if self.limiter is not None:
                self.limiter.acquire(operation)
            attempts.begin()
            try:
                response = self._send(send, operation, params, attempts.attempt)
            except (botocore.exceptions.ClientError, *NETWORK_ERRORS) as exc:
                self.sleep(attempts.failed(exc))
                continue
            attempts.succeeded()
            return response

    async def acall(self, operation: str, **params: Any) -> Any:
        """``call`` on an event loop (observe's reads). A read the lean path can send runs
        on the loop itself (``Wire.asend``), paced, counted and retried as ``call`` does;
        anything else runs ``call`` in the loop's executor."""
        if self.wire is None or operation not in self.wire.operations:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, partial(self.call, operation, **params))
        attempts = _Attempts(self, operation, NO_SETTLE, resend=True)
        while True:
            if self.limiter is not None:
                wait = self.limiter.reserve(operation)
                if wait > 0:
                    await asyncio.sleep(wait)
            attempts.begin()
            started = time.monotonic()
            try:
                response = await self.wire.asend(operation, params)
            except (botocore.exceptions.ClientError, *NETWORK_ERRORS) as exc:
                _log(operation, params, attempts.attempt, started, exc)
                delay = attempts.failed(exc)
                if self.sleep is time.sleep:
                    await asyncio.sleep(delay)
                else:  # a test's clock
                    self.sleep(delay)
                continue
            _log(operation, params, attempts.attempt, started, None)
            attempts.succeeded()
            return response

    async def apaginate(self, operation: str, items: str, **params: Any) -> list[Any]:
        """``paginate`` on an event loop (``acall`` for each page)."""
        out: list[Any] = []
        request: dict[str, Any] | None = dict(params)
        while request is not None:
            request = _next_page(params, await self.acall(operation, **request), items, out)
        return out

    def _sender(self, operation: str) -> Callable[[Mapping[str, Any]], Any]:
        """What sends one attempt of ``operation``: the lean path for a read it can take
        (``reconciler.wire``), else the botocore client's method."""
        if self.wire is not None and operation in self.wire.operations:
            return partial(self.wire.send, operation)
        method = getattr(self.client, _snake(operation))
        return lambda params: method(**params)

    def _send(
        self,
        send: Callable[[Mapping[str, Any]], Any],
        operation: str,
        params: Mapping[str, Any],
        attempt: int,
    ) -> Any:
        """One HTTP attempt, logged at DEBUG (never a parameter but the key it names)."""
        if not LOG.isEnabledFor(logging.DEBUG):
            return send(params)
        started = time.monotonic()
        try:
            response = send(params)
        except Exception as exc:
            _log(operation, params, attempt, started, exc)
            raise
        _log(operation, params, attempt, started, None)
        return response

    def _retried(self, operation: str, reason: str) -> None:
        with self._lock:
            self.retries[f"{operation} ({reason})"] += 1

    def paginate(self, operation: str, items: str, **params: Any) -> list[Any]:
        """Every item of a KMS list operation, following ``NextMarker`` while ``Truncated``."""
        out: list[Any] = []
        request: dict[str, Any] | None = dict(params)
        while request is not None:
            request = _next_page(params, self.call(operation, **request), items, out)
        return out

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def _next_page(
    params: Mapping[str, Any], page: Mapping[str, Any], items: str, out: list[Any]
) -> dict[str, Any] | None:
    """Add ``page``'s items to ``out``; the request for the next page, or None after the
    last (not ``Truncated``, or no ``NextMarker``)."""
    out.extend(page.get(items, []))
    marker = page.get("NextMarker")
    if not page.get("Truncated") or not marker:
        return None
    return {**params, "Marker": marker}


class _Attempts:
    """One call's attempts: counting and the retry decision, shared by ``call`` and
    ``acall`` (which differ only in how they wait and send)."""

    def __init__(self, api: KmsApi, operation: str, settle: Settle, resend: bool) -> None:
        self.api = api
        self.operation = operation
        self.settle = settle
        self.resend = resend
        self.attempt = 0
        self.settle_left = settle.attempts
        self.maybe_executed = False

    def begin(self) -> None:
        self.attempt += 1
        with self.api._lock:
            self.api.calls[self.operation] += 1

    def succeeded(self) -> None:
        if self.api.limiter is not None:
            self.api.limiter.succeeded(self.operation)

    def failed(self, exc: Exception) -> float:
        """The backoff before the next attempt, or raises: ``exc`` when it is not worth
        another attempt, or ``AmbiguousOutcome`` when it may have been executed and must
        not be resent. Retried: throttling, HTTP 5xx and network errors (up to
        ``max_attempts`` in all), and ``settle.codes`` ``settle.attempts`` times."""
        api, operation = self.api, self.operation
        if isinstance(exc, botocore.exceptions.ClientError):
            code = error_code(exc)
            if self.maybe_executed:
                setattr(exc, _RESENT, True)
            if code in self.settle.codes and self.settle_left > 0:
                self.settle_left -= 1
                api._retried(operation, code)
                self.attempt -= 1
                return _backoff(self.settle.attempts - self.settle_left)
            if code in THROTTLING_CODES and api.limiter is not None:
                api.limiter.throttled(operation)
            if not retryable(exc):
                raise exc
            reason = code or str(http_status(exc))
        else:
            reason = type(exc).__name__
        if ambiguous(exc):
            if not self.resend:
                raise AmbiguousOutcome(operation, reason) from exc
            self.maybe_executed = True
        if self.attempt >= api.max_attempts:
            raise exc
        api._retried(operation, reason)
        return _backoff(self.attempt)


def _log(
    operation: str,
    params: Mapping[str, Any],
    attempt: int,
    started: float,
    failure: BaseException | None,
) -> None:
    """One HTTP attempt at DEBUG: never a parameter but the key, alias or grant it names."""
    if not LOG.isEnabledFor(logging.DEBUG):
        return
    if failure is None:
        outcome = "ok"
    elif isinstance(failure, botocore.exceptions.ClientError):
        outcome = f"{error_code(failure) or 'error'} (HTTP {http_status(failure)})"
    else:
        outcome = type(failure).__name__
    named = " ".join(f"{k}={params[k]}" for k in _LOGGED_PARAMS if k in params)
    LOG.debug(
        "%s%s attempt %d: %s in %.0f ms",
        operation,
        f" {named}" if named else "",
        attempt,
        outcome,
        (time.monotonic() - started) * 1000,
    )


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(8.0, 0.25 * 2 ** (attempt - 1)))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# -- sessions and targets -----------------------------------------------------------------


@dataclass(frozen=True)
class AwsOptions:
    """The common AWS options of the command line."""

    profile: str | None = None
    endpoint_url: str | None = None
    sandbox: bool = False
    quota_overrides: Mapping[str, float] = field(default_factory=dict)
    quota_scale: float = 1.0
    # reads in flight per target (--parallelism); None: sized from quota and latency
    workers: int | None = None
    apply_workers: int = 8  # keys applied side by side per target
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    discovery: str = catalog.DISCOVERY_LIST_TAGS  # inventory.yaml discovery:
    # Reads through the lean request path (``reconciler.wire``); False: every request
    # through botocore (KMS_RECONCILER_REQUEST_PATH=botocore).
    lean_reads: bool = True


@dataclass
class Connection:
    """A target's KMS client, and on demand the same credentials' clients in other Regions
    (a multi-Region key's replicas live there)."""

    target: TargetInfo
    kms: KmsApi
    caller_arn: str
    _regional: Callable[[str], KmsApi] | None = None
    _others: dict[str, KmsApi] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tagging_client: Callable[[], KmsApi] | None = None
    _tagging: KmsApi | None = None

    def tagging(self) -> KmsApi:
        """The Resource Groups Tagging API in the target's Region (``discovery:
        tagging-api``), with the same credentials, retries and call counting as KMS. Its
        endpoint is botocore's: ``AWS_ENDPOINT_URL_RESOURCE_GROUPS_TAGGING_API`` or
        ``AWS_ENDPOINT_URL`` (``--endpoint-url`` points KMS only)."""
        with self._lock:
            if self._tagging is None:
                if self._tagging_client is None:
                    raise AwsError(f"target '{self.target.name}': no tagging API client")
                self._tagging = self._tagging_client()
            return self._tagging

    def kms_in(self, region: str | None) -> KmsApi:
        """The KMS client for ``region`` (None or the target's Region: ``kms``). Each Region
        has its own pacing: KMS request quotas are per account and Region."""
        if region is None or region == self.target.region:
            return self.kms
        with self._lock:
            if region not in self._others:
                if self._regional is None:
                    raise AwsError(f"target '{self.target.name}': no KMS client for {region}")
                self._others[region] = self._regional(region)
            return self._others[region]

    @property
    def total_calls(self) -> int:
        """Calls made through every Region's client."""
        return self.kms.total_calls + sum(api.total_calls for api in self._others.values())

    @property
    def calls(self) -> Counter[str]:
        out = Counter(self.kms.calls)
        for api in self._others.values():
            out.update(api.calls)
        return out

    @property
    def retries(self) -> Counter[str]:
        out = Counter(self.kms.retries)
        for api in self._others.values():
            out.update(api.retries)
        return out


def _client_config(options: AwsOptions, *, botocore_retries: bool = False) -> Config:
    """The botocore configuration. KMS clients make one HTTP request per call (KmsApi
    retries); STS, called a few times per run and not paced, uses botocore's standard mode
    with the same number of attempts."""
    from botocore.config import Config

    if botocore_retries:
        return Config(
            retries={"total_max_attempts": options.max_attempts, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            user_agent_extra="kms-reconciler",
        )
    return Config(
        # One HTTP request per botocore call: KmsApi retries, paced and counted. (botocore's
        # "max_attempts" counts retries after the first attempt, so 1 would still retry.)
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max(10, (options.workers or MAX_READS_IN_FLIGHT) * 2),
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra="kms-reconciler",
    )


def connect(target: TargetInfo, options: AwsOptions, *, write: bool = False) -> Connection:
    """A KMS client for the target, after checking the credentials' account.

    The target's role (chain) is assumed first: ``role_arn`` for a command that writes
    (``write``), else ``plan_role_arn`` when the target names one (a read-only role, so the
    job that plans a pull request never holds write credentials). The caller's account (STS
    GetCallerIdentity) must equal the target's ``account_id``; otherwise the run stops
    before any call to KMS.
    """
    import boto3

    config = _client_config(options)
    sts_config = _client_config(options, botocore_retries=True)
    try:
        profile = None if options.sandbox else (target.profile or options.profile)
        session = boto3.Session(profile_name=profile, region_name=target.region)
        if not options.sandbox:
            session = _assume_chain(session, target, sts_config, write)
        sts = session.client("sts", region_name=target.region, config=sts_config)
        if options.sandbox:
            _sandbox_hook(sts, target.account_id)
        identity = sts.get_caller_identity()
    except botocore.exceptions.ProfileNotFound as exc:
        raise AwsError(f"AWS profile not found: {exc}") from None
    except botocore.exceptions.NoCredentialsError:
        raise AwsError(
            f"target '{target.name}': no AWS credentials found (set a profile, the "
            "AWS_* environment variables, or use --sandbox)"
        ) from None
    except botocore.exceptions.ClientError as exc:
        raise AwsError(
            f"target '{target.name}': cannot establish identity: {error_message(exc)}"
        ) from None
    except (botocore.exceptions.BotoCoreError, *NETWORK_ERRORS) as exc:
        raise AwsError(
            f"target '{target.name}': cannot reach AWS STS (GetCallerIdentity, AssumeRole): "
            f"{exc}; --endpoint-url and AWS_ENDPOINT_URL_KMS point KMS only: set "
            "AWS_ENDPOINT_URL_STS for STS, or AWS_ENDPOINT_URL for both"
        ) from None
    account = identity.get("Account")
    if account != target.account_id:
        raise AccountMismatchError(
            f"target '{target.name}' is account {target.account_id}, but the credentials "
            f"belong to account {account} ({identity.get('Arn')}); nothing was read or changed"
        )

    def kms_in(region: str) -> KmsApi:
        client = session.client(
            "kms", region_name=region, endpoint_url=options.endpoint_url, config=config
        )
        if options.sandbox:
            _sandbox_hook(client, target.account_id)
        limiter = (
            None
            if options.sandbox
            else RateLimiter(quotas_for(options.quota_overrides, options.quota_scale))
        )
        return KmsApi(client, limiter=limiter, max_attempts=options.max_attempts, wire=lean(client))

    def lean(client: Any) -> Wire | None:
        from reconciler.observe import READS
        from reconciler.wire import wire_for

        return wire_for(client, READS) if options.lean_reads else None

    def tagging() -> KmsApi:
        client = session.client(
            "resourcegroupstaggingapi", region_name=target.region, config=config
        )
        if options.sandbox:
            _sandbox_hook(client, target.account_id)
        # GetResources has no quota in the KMS table: not paced, throttling retried.
        return KmsApi(
            client,
            limiter=RateLimiter({}),
            max_attempts=options.max_attempts,
            wire=lean(client),
        )

    return Connection(
        target,
        kms_in(target.region),
        str(identity.get("Arn", "")),
        kms_in,
        _tagging_client=tagging,
    )


def _assume_chain(
    session: boto3.Session, target: TargetInfo, config: Config, write: bool
) -> boto3.Session:
    """Assume the target's roles one after the other; the external ID, session name and
    duration go with the last (the role in the target account)."""
    import boto3

    chain = target.role_chain or ((target.role_arn,) if target.role_arn else ())
    if not write and target.plan_role_chain:
        chain = target.plan_role_chain
    for i, role in enumerate(chain):
        last = i == len(chain) - 1
        params: dict[str, Any] = {
            "RoleArn": role,
            "RoleSessionName": (target.session_name or f"kms-reconciler-{target.name}")[:64],
        }
        if last and target.external_id:
            params["ExternalId"] = target.external_id
        if last and target.session_duration_seconds:
            params["DurationSeconds"] = target.session_duration_seconds
        sts = session.client("sts", region_name=target.region, config=config)
        creds = sts.assume_role(**params)["Credentials"]
        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=target.region,
        )
    return session


# -- the embedded sandbox -----------------------------------------------------------------


def _sandbox_hook(client: Any, account_id: str) -> None:
    """moto keeps state per account; this header makes every target's account exist."""

    def add_header(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account_id

    client.meta.events.register("before-sign.*.*", add_header)


_SANDBOX_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_ENDPOINT_URL_STS",
)


@contextmanager
def sandbox_session() -> Iterator[Path]:
    """Run the block against the embedded moto KMS (see ``reconciler.sandbox``).

    Real credentials, profiles and endpoints are hidden from the block, so a sandbox run
    can never reach AWS. Yields the folder that holds the sandbox state.
    """
    from reconciler import sandbox

    saved = {key: os.environ.pop(key, None) for key in _SANDBOX_ENV}
    os.environ["AWS_ACCESS_KEY_ID"] = "sandbox"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "sandbox"
    try:
        with sandbox.embedded_kms() as folder:
            yield folder
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
