"""Run one review rule on a (base, head) policy pair. Shared by the rule corpus tests.

hits(module, head=policy)                 # a lint rule on the head policy
hits(module, base=old, head=new)          # a diff-aware rule
hits(module, head=p, state={"rotation_enabled": False})
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from types import ModuleType
from typing import Any

from reconciler.review import Context, Hit, KeyChange, Subject, _pair, review
from reconciler.state import DesiredKey, Waiver
from tests.factories import ACCOUNT, ROOT_POLICY, TARGET, desired_key

OTHER_ACCOUNT = "999988887777"
TRUSTED_ACCOUNT = "444455556666"
ORG = "o-a1b2c3d4e5"

ROOT = {
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "kms:*",
    "Resource": "*",
}


def policy(*statements: Mapping[str, Any], root: bool = True) -> dict[str, Any]:
    """A policy of the given statements, with the root delegation first unless root=False."""
    body = [dict(ROOT)] if root else []
    body += [dict(s) for s in statements]
    return {"Version": "2012-10-17", "Statement": body}


def allow(principal: Any, action: Any, sid: str = "S", **extra: Any) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": "*",
        **extra,
    }


def role(name: str, account: str = ACCOUNT) -> dict[str, str]:
    return {"AWS": f"arn:aws:iam::{account}:role/{name}"}


def context(**fields: Any) -> Context:
    values: dict[str, Any] = {
        "account_id": ACCOUNT,
        "partition": "aws",
        "trusted_accounts": frozenset({TRUSTED_ACCOUNT}),
        "organization_ids": frozenset({ORG}),
        "admin_principals": (f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin",),
    }
    values.update(fields)
    return Context(**values)


def key(
    doc: Mapping[str, Any] | None,
    name: str = "app",
    template: str = "template app.json.j2",
    text: str | None = None,
    **state: Any,
) -> DesiredKey:
    waivers = state.pop("waivers", ())
    bypass = state.pop("bypass_policy_lockout_safety_check", False)
    dk = desired_key(
        name,
        policy=dict(doc) if doc is not None else ROOT_POLICY,
        bypass_policy_lockout_safety_check=bypass,
        **state,
    )
    source = type(dk.source)(dk.source.file, dk.source.line, template, None)
    return DesiredKey(
        state=dk.state,
        deletion_window_days=dk.deletion_window_days,
        source=source,
        policy_text=text if text is not None else json.dumps(dk.state.policy, indent=2),
        bypass_policy_lockout_safety_check=bypass,
        waivers=tuple(waivers),
    )


def change(
    head: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
    *,
    name: str = "app",
    head_key: DesiredKey | None = None,
    base_key: DesiredKey | None = None,
    state: Mapping[str, Any] | None = None,
) -> KeyChange:
    h = head_key if head_key is not None else (key(head, name, **(state or {})) if head else None)
    b = base_key if base_key is not None else (key(base, name) if base else None)
    return _pair(TARGET, name, b, h)


def hits(
    module: ModuleType,
    head: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
    *,
    state: Mapping[str, Any] | None = None,
    ctx: Context | None = None,
) -> list[Hit]:
    subject = Subject(change(head, base, state=state), ctx or context())
    return list(module.check(subject))


def batch_hits(module: ModuleType, changes: Sequence[KeyChange]) -> list[tuple[Subject, Hit]]:
    subjects = [Subject(c, context()) for c in changes]
    return list(module.check_all(subjects))


def review_of(changes: Sequence[KeyChange], modules: Sequence[ModuleType], today: date) -> Any:
    return review(
        changes,
        {"production": context()},
        [m for m in modules if hasattr(m, "check")],  # type: ignore[misc]
        [m for m in modules if hasattr(m, "check_all")],  # type: ignore[misc]
        today=today,
    )


__all__ = [
    "ORG",
    "OTHER_ACCOUNT",
    "ROOT",
    "TRUSTED_ACCOUNT",
    "Waiver",
    "allow",
    "batch_hits",
    "change",
    "context",
    "hits",
    "key",
    "policy",
    "review_of",
    "role",
]
