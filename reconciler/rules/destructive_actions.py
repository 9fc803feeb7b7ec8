"""KMS009: actions that destroy or disable the key for principals who are not admins."""

from __future__ import annotations

import re
from collections.abc import Iterable

from reconciler.findings import Rule, Severity
from reconciler.review import Context, Hit, Subject
from reconciler.rules._helpers import actions, label, principals

RULE = Rule(
    id="KMS009",
    severity=Severity.HIGH,
    title="Destructive key actions for non-administrators",
    rationale=(
        "kms:ScheduleKeyDeletion, kms:DisableKey and kms:DeleteImportedKeyMaterial make "
        "every ciphertext under the key unreadable (for deletion: for good). Only key "
        "administrators should hold them: the account root delegation, the inventory's "
        "admin principals, and principals the policy already let manage the key before the "
        "change (kms:PutKeyPolicy without a condition in the base). A principal that the "
        "reviewed policy itself makes an administrator (kms:* to an application role) is "
        "not one: otherwise granting kms:* would exempt itself from this rule."
    ),
)

DESTRUCTIVE = frozenset(
    {"kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:DeleteImportedKeyMaterial"}
)

_ACCOUNT_ID = re.compile(r"\d{12}")
_ROLE = re.compile(r"arn:([\w-]+):iam::(\d{12}):role/(?:[^/]+/)*([^/]+)")
_SESSION = re.compile(r"arn:([\w-]+):sts::(\d{12}):assumed-role/([^/]+)/[^/]+")


def identity(principal: str, partition: str) -> tuple[str, ...]:
    """Who a principal (ARN, account ID, "AWS:..." string) is: a role and its sessions are
    one identity (paths and session names aside); an account ID is its root."""
    value = principal.removeprefix("AWS:")
    if _ACCOUNT_ID.fullmatch(value):
        value = f"arn:{partition}:iam::{value}:root"
    match = _ROLE.fullmatch(value) or _SESSION.fullmatch(value)
    if match:
        return ("role", match.group(1), match.group(2), match.group(3))
    return ("arn", value)


def administrators(context: Context) -> set[tuple[str, ...]]:
    root = f"arn:{context.partition}:iam::{context.account_id}:root"
    return {identity(p, context.partition) for p in (root, *context.admin_principals)}


def show(principal: str) -> str:
    if principal == "*":
        return '"*" (every principal)'
    kind, _, value = principal.partition(":")
    return value if kind == "AWS" else f"{kind.lower()} {value}"


def policy_admins(subject: Subject, which: str = "base") -> set[tuple[str, ...]]:
    """Principals a side's policy makes key administrators: kms:PutKeyPolicy, no condition.

    The rule asks the base: who was trusted to manage the key before the change. Asking the
    head would let the change under review vouch for itself."""
    partition = subject.context.partition
    return {
        identity(p, partition)
        for statement in subject.statements(which)
        if statement.get("Effect") == "Allow"
        and not statement.get("Condition")
        and "kms:PutKeyPolicy" in actions(statement)
        for p in principals(statement)
        if p.startswith("AWS:")
    }


def check(subject: Subject) -> Iterable[Hit]:
    context = subject.context
    admins = administrators(context) | policy_admins(subject, "base")
    for statement in subject.statements("head"):
        if statement.get("Effect") != "Allow" or "Principal" not in statement:
            continue
        destructive = actions(statement) & DESTRUCTIVE
        if not destructive:
            continue
        others = [
            show(p)
            for p in principals(statement)
            if p == "*" or not p.startswith("AWS:") or identity(p, context.partition) not in admins
        ]
        if not others:
            continue
        yield Hit(
            f"{label(statement)} allows {', '.join(sorted(destructive))} to "
            f"{', '.join(others)}, who are not key administrators",
            sid=statement.get("Sid"),
            details=("admin principals: " + (", ".join(context.admin_principals) or "none"),),
        )
