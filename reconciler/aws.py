"""The only place boto3 is configured: sessions, credentials, retries, pacing, sandbox.

``KmsApi`` wraps one KMS client for one target. Every call goes through it, so every call
is paced to the operation's request quota, retried on throttling with jittered backoff,
and counted (plans and drift reports say how many calls they made).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from reconciler import catalog
from reconciler.errors import AccountMismatchError, AwsError
from reconciler.state import TargetInfo

RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "KMSInternalException",
        "DependencyTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
    }
)


@dataclass(frozen=True)
class Settle:
    """Errors to retry (``attempts`` times, with backoff) on a key that is still settling:
    KMS is eventually consistent right after CreateKey (NotFoundException), a new replica
    is ``Creating`` for a few seconds after ReplicateKey, and both keys of a primary move
    are ``Updating`` after UpdatePrimaryRegion (KMSInvalidStateException)."""

    attempts: int = 0
    codes: frozenset[str] = frozenset({"NotFoundException"})


NO_SETTLE = Settle()
NETWORK_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
)
# Management quotas are shared with every other principal of the account: leave headroom.
QUOTA_HEADROOM = 0.8


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
    """Paces calls per operation (token bucket, burst of one second's worth)."""

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

    def acquire(self, operation: str) -> None:
        rate = self.quotas.get(operation)
        if not rate or rate <= 0:
            return
        capacity = max(1.0, rate)  # a burst of up to one second's worth
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(operation, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate) - 1.0
            self._buckets[operation] = (tokens, now)
        if tokens < 0:
            self.sleep(-tokens / rate)  # the slot reserved for this call


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
    max_attempts: int = 6
    sleep: Callable[[float], None] = time.sleep
    calls: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, operation: str, *, settle: Settle = NO_SETTLE, **params: Any) -> Any:
        """Call a KMS operation by its API name (``DescribeKey``) with retries: throttling
        and network errors always, and ``settle.codes`` ``settle.attempts`` times."""
        method = getattr(self.client, _snake(operation))
        attempt = 0
        settle_left = settle.attempts
        while True:
            attempt += 1
            if self.limiter is not None:
                self.limiter.acquire(operation)
            with self._lock:
                self.calls[operation] += 1
            try:
                return method(**params)
            except botocore.exceptions.ClientError as exc:
                code = error_code(exc)
                if code in settle.codes and settle_left > 0:
                    settle_left -= 1
                    self.sleep(_backoff(settle.attempts - settle_left))
                    attempt -= 1
                    continue
                if code not in RETRYABLE_CODES or attempt >= self.max_attempts:
                    raise
            except NETWORK_ERRORS:
                if attempt >= self.max_attempts:
                    raise
            self.sleep(_backoff(attempt))

    def paginate(self, operation: str, items: str, **params: Any) -> list[Any]:
        """Every item of a KMS list operation, following ``NextMarker`` while ``Truncated``."""
        out: list[Any] = []
        marker: str | None = None
        while True:
            request = dict(params)
            if marker:
                request["Marker"] = marker
            page = self.call(operation, **request)
            out.extend(page.get(items, []))
            if not page.get("Truncated"):
                return out
            marker = page.get("NextMarker")
            if not marker:
                return out

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


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
    workers: int = 16
    max_attempts: int = 6


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


def _client_config(options: AwsOptions) -> Config:
    return Config(
        retries={"max_attempts": 1, "mode": "standard"},  # KmsApi retries, visibly
        max_pool_connections=max(10, options.workers * 2),
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra="kms-reconciler",
    )


def connect(target: TargetInfo, options: AwsOptions) -> Connection:
    """A KMS client for the target, after checking the credentials' account.

    With ``role_arn`` the target's role is assumed first. The caller's account (STS
    GetCallerIdentity) must equal the target's ``account_id``; otherwise the run stops
    before any call to KMS.
    """
    config = _client_config(options)
    try:
        profile = None if options.sandbox else (target.profile or options.profile)
        session = boto3.Session(profile_name=profile, region_name=target.region)
        if not options.sandbox:
            session = _assume_chain(session, target, config)
        sts = session.client("sts", region_name=target.region, config=config)
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
        raise AwsError(f"target '{target.name}': cannot reach AWS: {exc}") from None
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
        return KmsApi(client, limiter=limiter, max_attempts=options.max_attempts)

    return Connection(target, kms_in(target.region), str(identity.get("Arn", "")), kms_in)


def _assume_chain(session: boto3.Session, target: TargetInfo, config: Config) -> boto3.Session:
    """Assume the target's roles one after the other; the external ID, session name and
    duration go with the last (the role in the target account)."""
    chain = target.role_chain or ((target.role_arn,) if target.role_arn else ())
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
