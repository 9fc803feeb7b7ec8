"""Builders of desired and observed states for pure planner and formatter tests."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from reconciler.desired import default_policy
from reconciler.state import (
    DesiredKey,
    DesiredTarget,
    KeyState,
    ObservedKey,
    ObservedTarget,
    SourceRef,
    TargetInfo,
)

ACCOUNT = "111122223333"
TARGET = TargetInfo("production", ACCOUNT, "us-east-1")
IDENTITY = "kms-reconciler:name"
PROTECTION = "kms-reconciler:deletion-protection"
CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/kms-reconciler/ci"
ROOT_POLICY = default_policy(ACCOUNT, "aws")


def policy_with(*extra: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(ROOT_POLICY))
    doc["Statement"].extend(extra)
    return dict(doc)


USE_STATEMENT = {
    "Sid": "AllowUse",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/App"},
    "Action": ["kms:Encrypt", "kms:Decrypt"],
    "Resource": "*",
}


def state(name: str = "app", **fields: Any) -> KeyState:
    base = KeyState(
        name=name,
        description=f"{name} key",
        key_spec="SYMMETRIC_DEFAULT",
        key_usage="ENCRYPT_DECRYPT",
        origin="AWS_KMS",
        multi_region=False,
        enabled=True,
        rotation_enabled=True,
        rotation_period_days=365,
        tags={"Owner": "team"},
        aliases=frozenset({f"alias/{name}"}),
        policy=ROOT_POLICY,
        deletion_protection=False,
    )
    return replace(base, **fields)


def desired_key(name: str = "app", *, line: int = 1, **fields: Any) -> DesiredKey:
    extra = {
        k: fields.pop(k)
        for k in (
            "adopt",
            "allow_alias_takeover",
            "bypass_policy_lockout_safety_check",
            "grants_purge",
            "retire",
        )
        if k in fields
    }
    window = fields.pop("deletion_window_days", 30)
    s = state(name, **fields)
    return DesiredKey(
        state=s,
        deletion_window_days=window,
        source=SourceRef("keyspecs/app.yaml", line, "template application.json.j2"),
        policy_text=json.dumps(s.policy, indent=2),
        **extra,
    )


def desired(*keys: DesiredKey, admins: tuple[str, ...] = ()) -> DesiredTarget:
    return DesiredTarget(TARGET, keys, IDENTITY, admin_principals=admins)


def observed_key(
    name: str | None = "app",
    key_id: str = "",
    *,
    key_state: str = "Enabled",
    tags: dict[str, str] | None = None,
    **fields: Any,
) -> ObservedKey:
    key_id = key_id or f"{(name or 'x'):0<8.8}-0000-0000-0000-000000000000"
    base_tags = {"Owner": "team"} if tags is None else dict(tags)
    if name is not None:
        base_tags[IDENTITY] = name
    values: dict[str, Any] = {
        "description": f"{name} key",
        "key_spec": "SYMMETRIC_DEFAULT",
        "key_usage": "ENCRYPT_DECRYPT",
        "origin": "AWS_KMS",
        "multi_region": False,
        "enabled": key_state == "Enabled",
        "rotation_enabled": True,
        "rotation_period_days": 365,
        "policy": ROOT_POLICY,
        "aliases": frozenset({f"alias/{name}"}) if name else frozenset(),
    }
    values.update(fields)
    return ObservedKey(
        key_id=key_id,
        arn=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}",
        tags=base_tags,
        key_state=key_state,
        **values,
    )


def observed(*keys: ObservedKey, aliases: dict[str, str | None] | None = None) -> ObservedTarget:
    if aliases is None:
        aliases = {alias: k.key_id for k in keys for alias in k.aliases}
    return ObservedTarget(TARGET, keys, aliases, caller_arn=CALLER)
