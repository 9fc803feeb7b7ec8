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

from botocore.exceptions import ClientError


def client_error(code: str, operation: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class FakeKms:
    """Records every call; answers from ``responses`` or raises from ``failures``.

    ``failures[operation]`` is a list of error codes raised by the next calls of that
    operation, in order (then the call succeeds).
    """

    def __init__(self, responses: dict[str, Callable[..., Any]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failures: dict[str, list[str]] = {}
        self.responses = responses or {}
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
                code = pending.pop(0) if pending else None
            if code:
                raise client_error(code, operation, f"fake {code}")
            if operation in self.responses:
                return self.responses[operation](**params)
            return self._default(operation, params)

        return call

    def _default(self, operation: str, params: dict[str, Any]) -> Any:
        if operation == "CreateKey":
            with self._lock:
                self._next_id += 1
                key_id = f"new-{self._next_id:04d}"
            return {"KeyMetadata": {"KeyId": key_id, "Arn": f"arn:aws:kms:::key/{key_id}"}}
        if operation == "ScheduleKeyDeletion":
            return {"KeyId": params["KeyId"], "DeletionDate": "2030-01-01T00:00:00Z"}
        return {}

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def writes(self) -> list[str]:
        return [n for n in self.names() if not re.match(r"(Get|List|Describe)", n)]
