"""A scriptable stand-in for a boto3 KMS client that raises real KMS error codes.

moto never raises KMSInvalidStateException, ThrottlingException and friends (see
../shared/moto-kms-notes.md, section 1): the applier's and observer's error handling is
tested against this fake instead.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

# HTTP status of the error codes that are server-side failures (the rest answer 400).
STATUS = {
    "KMSInternalException": 500,
    "InternalFailure": 500,
    "ServiceUnavailableException": 503,
    "DependencyTimeoutException": 503,
    "503": 503,
    "500": 500,
}


def client_error(code: str, operation: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": STATUS.get(code, status)},
        },
        operation,
    )


class FakeKms:
    """Records every call; answers from ``responses`` or raises from ``failures``.

    ``failures[operation]`` is a list of faults for the next calls of that operation, in
    order (then the call succeeds): an error code (HTTP 500/503 for server-side codes and
    for "500"/"503", else 400), ``DROP`` (the connection closes before an answer),
    ``REFUSED`` (no connection: nothing was sent). A fault ending in ``@after`` happens
    after the call took effect (the answer is lost: the outcome is ambiguous).

    Keys made by CreateKey are listed by ListKeys and their tags by ListResourceTags.
    """

    def __init__(self, responses: dict[str, Callable[..., Any]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failures: dict[str, list[str]] = {}
        self.responses = responses or {}
        self.keys: dict[str, dict[str, str]] = {}  # made by CreateKey: key ID -> tags
        self.executed: list[str] = []  # operations that took effect
        self._lock = threading.Lock()
        self._next_id = 0

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        operation = "".join(part.capitalize() for part in name.split("_"))

        def call(**params: Any) -> Any:
            with self._lock:
                self.calls.append((operation, params))
                pending = self.failures.get(operation)
                fault = pending.pop(0) if pending else None
            after = bool(fault and fault.endswith("@after"))
            if fault and not after:
                raise self._fault(fault, operation)
            if operation in self.responses:
                response = self.responses[operation](**params)
            else:
                response = self._default(operation, params)
            with self._lock:
                self.executed.append(operation)
            if fault:
                raise self._fault(fault.removesuffix("@after"), operation)
            return response

        return call

    @staticmethod
    def _fault(fault: str, operation: str) -> Exception:
        if fault == "DROP":
            return ConnectionClosedError(endpoint_url="https://kms.fake")
        if fault == "REFUSED":
            return EndpointConnectionError(endpoint_url="https://kms.fake")
        return client_error(fault, operation, f"fake {fault}")

    def _default(self, operation: str, params: dict[str, Any]) -> Any:
        if operation == "CreateKey":
            with self._lock:
                self._next_id += 1
                key_id = f"new-{self._next_id:04d}"
                self.keys[key_id] = {t["TagKey"]: t["TagValue"] for t in params.get("Tags", ())}
            return {"KeyMetadata": {"KeyId": key_id, "Arn": f"arn:aws:kms:::key/{key_id}"}}
        if operation == "ListKeys":
            return {"Keys": [{"KeyId": k} for k in self.keys], "Truncated": False}
        if operation == "ListResourceTags" and params["KeyId"] in self.keys:
            tags = self.keys[params["KeyId"]]
            return {"Tags": [{"TagKey": k, "TagValue": v} for k, v in tags.items()]}
        if operation == "ScheduleKeyDeletion":
            return {"KeyId": params["KeyId"], "DeletionDate": "2030-01-01T00:00:00Z"}
        return {}

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def writes(self) -> list[str]:
        return [n for n in self.names() if not re.match(r"(Get|List|Describe)", n)]
