"""The apply lock: one writer per target (account and Region), kept in KMS itself.

No state file, bucket or table. KMS has one atomic create-if-absent: CreateAlias answers
AlreadyExistsException when the alias exists. The lock is the alias
``alias/kms-reconciler/apply-lock``; whoever creates it holds the lock, and deleting it
releases the lock. An alias must point at a customer managed key, so each account and
Region gets one *lock anchor* the first time a run takes the lock: a symmetric key with
the default key policy, tagged ``kms-reconciler:lock-anchor`` and named by the alias
``alias/kms-reconciler/lock-anchor``. It is never used for cryptography (it costs what any
KMS key costs a month). The holder records itself in tags on the anchor (lock ID,
holder, since), so a run that finds the lock held names who holds it and since when.

Writers take it (apply, apply --plan, rotate); plan, drift, review and import only read and
take no lock, but they show it when it is held. A holder that dies (SIGKILL, a cancelled CI
job) leaves the alias behind: the next writer refuses, naming the lock, until someone
runs ``kms-reconciler force-unlock --target NAME LOCK_ID`` (Terraform's verb), which
removes the holder tags and the alias.

When the answer to the lock's own CreateAlias is lost (HTTP 5xx, a dropped connection) the
request is not resent blindly: the alias is read back. Absent: the request did not take
effect; try again. Present with a holder recorded: another run's. Present with no holder
recorded: a new holder records itself at once, so the lock is this run's if none appears
within ``GRACE`` seconds. A release removes the holder tags before the alias, so recorded
tags always mean a live holder.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import botocore.exceptions

from reconciler import catalog
from reconciler.aws import AmbiguousOutcome, KmsApi, error_code, error_message
from reconciler.errors import AwsError, LockHeldError
from reconciler.observe import KeyFinder
from reconciler.state import LockStatus

# Every KMS operation the lock calls (see ``reconciler.permissions``).
CALLS: frozenset[str] = frozenset(
    {
        "ListAliases",
        "ListKeys",
        "ListResourceTags",
        "CreateKey",
        "CreateAlias",
        "DeleteAlias",
        "TagResource",
        "UntagResource",
        "ScheduleKeyDeletion",
    }
)
GRACE = 30.0  # seconds a new holder has to record itself in the anchor's tags
POLL = 5.0  # seconds between attempts while waiting for a held lock
ANCHOR_DESCRIPTION = (
    "kms-reconciler apply lock anchor: never used for cryptography. The alias "
    f"{catalog.LOCK_ALIAS} points here while a run writes to this account and Region."
)
_TAG_VALUE_CHARS = re.compile(r"[^\w\s.:/=+\-@]")


@dataclass
class Clock:
    """Time, injectable for tests."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)


@dataclass
class Lock:
    """A held apply lock."""

    api: KmsApi
    target: str
    anchor_id: str
    lock_id: str
    holder: str
    clock: Clock = field(default_factory=Clock)

    def release(self) -> None:
        """Remove the holder tags, then the alias. A lock that is no longer this run's
        (cleared with force-unlock, and maybe taken since) is left alone."""
        try:
            status = _status(self.api, self.anchor_id)
            if status is None or status.lock_id not in ("", self.lock_id):
                return
            self.api.call("UntagResource", KeyId=self.anchor_id, TagKeys=list(catalog.LOCK_TAGS))
            _delete_alias(self.api, self.anchor_id, self.clock)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise AwsError(
                f"target '{self.target}': the apply lock (lock ID {self.lock_id}) could not be "
                f"released: {error_message(exc)}; clear it with: kms-reconciler force-unlock "
                f"--target {self.target} {self.lock_id}"
            ) from None


def holder_of(caller_arn: str) -> str:
    """Who takes the lock, as a tag value: the caller, the host and process, and the CI run
    when there is one."""
    parts = [caller_arn or "unknown caller", f"on {socket.gethostname()} pid {os.getpid()}"]
    run = os.environ.get("GITHUB_RUN_ID")
    if run:
        parts.append(f"run {os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{run}")
    return _TAG_VALUE_CHARS.sub("-", " ".join(parts))[:256]


def inspect(api: KmsApi, target: str) -> LockStatus | None:
    """The lock when it is held (ListAliases, then the anchor's tags), else None."""
    try:
        aliases = _aliases(api)
        if catalog.LOCK_ALIAS not in aliases:
            return None
        anchor = aliases[catalog.LOCK_ALIAS] or ""
        return LockStatus.of(anchor, _tags(api, anchor)) if anchor else LockStatus("")
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise AwsError(
            f"target '{target}': cannot read the apply lock: {error_message(exc)}"
        ) from None


def acquire(
    api: KmsApi,
    target: str,
    holder: str,
    timeout: float = 0.0,
    *,
    clock: Clock | None = None,
    on_wait: Callable[[LockStatus], None] = lambda status: None,
) -> Lock:
    """Take the target's apply lock, waiting up to ``timeout`` seconds while another run
    holds it; then ``LockHeldError`` names the holder."""
    clock = clock or Clock()
    try:
        anchor = _ensure_anchor(api, clock)
        lock_id = str(uuid.uuid4())
        deadline = clock.monotonic() + timeout
        waited = False
        while True:
            if _create_lock_alias(api, anchor, clock):
                since = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
                api.call(
                    "TagResource",
                    KeyId=anchor,
                    Tags=[
                        {"TagKey": catalog.LOCK_ID_TAG, "TagValue": lock_id},
                        {"TagKey": catalog.LOCK_HOLDER_TAG, "TagValue": holder},
                        {"TagKey": catalog.LOCK_SINCE_TAG, "TagValue": since},
                    ],
                )
                status = _status(api, anchor)
                if status is not None and status.lock_id == lock_id:
                    return Lock(api, target, anchor, lock_id, holder, clock)
            status = _status(api, anchor)
            if status is None:
                continue  # released meanwhile: try again at once
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                raise LockHeldError(_held_message(target, status, timeout))
            if not waited:
                on_wait(status)
                waited = True
            clock.sleep(min(POLL, remaining))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise AwsError(
            f"target '{target}': cannot take the apply lock: {error_message(exc)} (the apply "
            f"role needs kms:CreateAlias, kms:DeleteAlias, kms:TagResource and "
            f"kms:UntagResource on {catalog.LOCK_ALIAS} and its anchor key, and kms:CreateKey "
            "once to make the anchor)"
        ) from None
    except AmbiguousOutcome as exc:
        raise AwsError(f"target '{target}': cannot take the apply lock: {exc}") from None


def force_unlock(api: KmsApi, target: str, lock_id: str | None) -> LockStatus | None:
    """Clear a lock left by a run that died. With ``lock_id``, only that lock. Returns what
    was cleared (None: the lock was not held)."""
    status = inspect(api, target)
    if status is None:
        return None
    if lock_id is not None and status.lock_id != lock_id:
        raise LockHeldError(
            f"target '{target}': the apply lock is {status}, not lock ID {lock_id}; nothing "
            "was cleared"
        )
    try:
        if status.anchor_id:
            api.call("UntagResource", KeyId=status.anchor_id, TagKeys=list(catalog.LOCK_TAGS))
        api.call("DeleteAlias", AliasName=catalog.LOCK_ALIAS)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "NotFoundException":
            raise AwsError(
                f"target '{target}': cannot clear the apply lock: {error_message(exc)}"
            ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsError(f"target '{target}': cannot clear the apply lock: {exc}") from None
    return status


def _held_message(target: str, status: LockStatus, timeout: float) -> str:
    waited = f" after waiting {timeout:g}s" if timeout else ""
    unlock = f" {status.lock_id}" if status.lock_id else ""
    return (
        f"target '{target}': the apply lock is {status}{waited}; another run is writing to "
        "this account and Region. Wait for it (--lock-timeout), or, if that run died, clear "
        f"the lock with: kms-reconciler force-unlock --target {target}{unlock}"
    )


def _aliases(api: KmsApi, key_id: str | None = None) -> dict[str, str | None]:
    params: dict[str, Any] = {"KeyId": key_id} if key_id else {}
    return {
        a["AliasName"]: a.get("TargetKeyId")
        for a in api.paginate("ListAliases", "Aliases", Limit=100, **params)
    }


def _tags(api: KmsApi, key_id: str) -> dict[str, str]:
    tags = api.paginate("ListResourceTags", "Tags", KeyId=key_id, Limit=50)
    return {t["TagKey"]: t["TagValue"] for t in tags}


def _status(api: KmsApi, anchor: str) -> LockStatus | None:
    """The lock's state, read through the anchor's aliases (one call) and tags."""
    if catalog.LOCK_ALIAS not in _aliases(api, anchor):
        return None
    return LockStatus.of(anchor, _tags(api, anchor))


def _ensure_anchor(api: KmsApi, clock: Clock) -> str:
    """The anchor key's ID, made (once per account and Region) when there is none."""
    anchor = _aliases(api).get(catalog.LOCK_ANCHOR_ALIAS)
    if anchor:
        return anchor
    key_id = _create_anchor(api, clock)
    try:
        api.call("CreateAlias", AliasName=catalog.LOCK_ANCHOR_ALIAS, TargetKeyId=key_id)
        return key_id
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "AlreadyExistsException":
            raise
    theirs = _aliases(api).get(catalog.LOCK_ANCHOR_ALIAS) or ""
    if theirs != key_id:  # another run made an anchor at the same moment: use that one
        api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    return theirs


def _create_anchor(api: KmsApi, clock: Clock) -> str:
    params: dict[str, Any] = {
        "Description": ANCHOR_DESCRIPTION,
        "KeySpec": catalog.SYMMETRIC_DEFAULT,
        "KeyUsage": "ENCRYPT_DECRYPT",
        "Tags": [{"TagKey": catalog.LOCK_ANCHOR_TAG, "TagValue": "true"}],
    }
    try:
        return str(api.call("CreateKey", resend=False, **params)["KeyMetadata"]["KeyId"])
    except AmbiguousOutcome:
        finder = KeyFinder(catalog.LOCK_ANCHOR_TAG)
        for attempt in range(4):
            found = finder.find(api, "true")
            if found:
                return found
            clock.sleep(min(4.0, 0.5 * 2**attempt))
        return str(api.call("CreateKey", resend=False, **params)["KeyMetadata"]["KeyId"])


def _create_lock_alias(api: KmsApi, anchor: str, clock: Clock) -> bool:
    """CreateAlias of the lock; True when this run made it."""
    try:
        api.call("CreateAlias", resend=False, AliasName=catalog.LOCK_ALIAS, TargetKeyId=anchor)
        return True
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "AlreadyExistsException":
            return False
        raise
    except AmbiguousOutcome:
        return _unclaimed_after_grace(api, anchor, clock)


def _unclaimed_after_grace(api: KmsApi, anchor: str, clock: Clock) -> bool:
    """After a lost answer: whether the alias that exists now is this run's. A holder
    records itself at once; an alias nobody records within GRACE seconds is ours."""
    deadline = clock.monotonic() + GRACE
    while True:
        status = _status(api, anchor)
        if status is None or status.lock_id:
            return False  # not made by the lost request, or another run's
        if clock.monotonic() >= deadline:
            return True
        clock.sleep(2.0)


def _delete_alias(api: KmsApi, anchor: str, clock: Clock) -> None:
    """DeleteAlias of the lock, never resent blindly: a resend could delete the lock of a
    run that took it in between. After a lost answer the alias is read back; one that stays
    unrecorded for GRACE seconds is still ours (our tags are gone already)."""
    while True:
        try:
            api.call("DeleteAlias", resend=False, AliasName=catalog.LOCK_ALIAS)
            return
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "NotFoundException":
                return
            raise
        except AmbiguousOutcome:
            if not _unclaimed_after_grace(api, anchor, clock):
                return
