"""Plan value types: what changes, why, and the ordered KMS calls that make it so.

A plan is a frozen value. The planner makes it, formatters print it, the applier executes
its operations in order, and ``to_dict`` / ``from_dict`` save and load it (``plan --out``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from reconciler.catalog import DEFAULT_IDENTITY_TAG
from reconciler.policy import StatementChange
from reconciler.state import SourceRef, TargetInfo

FORMAT_VERSION = 1


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    RECOVER = "recover"
    DELETE = "delete"
    NOOP = "no-op"


class OpKind(str, Enum):
    """One KMS API call each; the value is the API operation name."""

    CANCEL_KEY_DELETION = "CancelKeyDeletion"
    CREATE_KEY = "CreateKey"
    IMPORT_KEY_MATERIAL = "ImportKeyMaterial"
    ENABLE_KEY = "EnableKey"
    UPDATE_KEY_DESCRIPTION = "UpdateKeyDescription"
    PUT_KEY_POLICY = "PutKeyPolicy"
    TAG_RESOURCE = "TagResource"
    UNTAG_RESOURCE = "UntagResource"
    ENABLE_KEY_ROTATION = "EnableKeyRotation"
    DISABLE_KEY_ROTATION = "DisableKeyRotation"
    CREATE_ALIAS = "CreateAlias"
    UPDATE_ALIAS = "UpdateAlias"
    CREATE_GRANT = "CreateGrant"
    REVOKE_GRANT = "RevokeGrant"
    DISABLE_KEY = "DisableKey"
    DELETE_ALIAS = "DeleteAlias"
    SCHEDULE_KEY_DELETION = "ScheduleKeyDeletion"


# The designed order (DESIGN section 5): recover -> create (+ import key material) -> enable
# -> description -> policy -> tags -> rotation -> aliases (create / retarget) -> grants
# -> disable -> alias deletions -> key deletions. Operations of one phase for different
# keys are independent.
PHASES: Mapping[OpKind, int] = {
    OpKind.CANCEL_KEY_DELETION: 0,
    OpKind.CREATE_KEY: 1,
    # Right after CreateKey, in the same phase: a key's operations run in plan order.
    OpKind.IMPORT_KEY_MATERIAL: 1,
    OpKind.ENABLE_KEY: 2,
    OpKind.UPDATE_KEY_DESCRIPTION: 3,
    OpKind.PUT_KEY_POLICY: 4,
    OpKind.TAG_RESOURCE: 5,
    OpKind.UNTAG_RESOURCE: 5,
    OpKind.ENABLE_KEY_ROTATION: 6,
    OpKind.DISABLE_KEY_ROTATION: 6,
    OpKind.CREATE_ALIAS: 7,
    OpKind.UPDATE_ALIAS: 7,
    OpKind.CREATE_GRANT: 8,
    OpKind.REVOKE_GRANT: 8,
    OpKind.DISABLE_KEY: 9,
    OpKind.DELETE_ALIAS: 10,
    OpKind.SCHEDULE_KEY_DELETION: 11,
}


@dataclass(frozen=True)
class Operation:
    """One KMS call. ``key_id`` is None for a key this plan creates (known at apply time)."""

    kind: OpKind
    key: str
    key_id: str | None
    params: Mapping[str, Any]
    summary: str
    destructive: bool = False

    @property
    def phase(self) -> int:
        return PHASES[self.kind]

    @property
    def calls(self) -> int:
        """KMS calls it makes: ImportKeyMaterial needs GetParametersForImport first."""
        return 2 if self.kind is OpKind.IMPORT_KEY_MATERIAL else 1


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any
    destructive: bool = False
    reason: str = ""
    statements: tuple[StatementChange, ...] = ()


@dataclass(frozen=True)
class KeyPlan:
    name: str
    action: Action
    key_id: str | None
    changes: tuple[FieldChange, ...] = ()
    reason: str = ""
    source: SourceRef | None = None

    @property
    def destructive(self) -> bool:
        return self.action is Action.DELETE or any(c.destructive for c in self.changes)


@dataclass(frozen=True)
class Orphan:
    """A managed key that no spec declares. Left alone unless destruction is allowed."""

    name: str
    key_id: str
    reason: str


@dataclass(frozen=True)
class TargetPlan:
    target: TargetInfo
    keys: tuple[KeyPlan, ...]
    operations: tuple[Operation, ...]
    fingerprint: str
    orphans: tuple[Orphan, ...] = ()
    warnings: tuple[str, ...] = ()
    caller_arn: str = ""
    errors: tuple[str, ...] = ()  # conflicts found in report-only planning (drift)
    grants_read: tuple[str, ...] = ()  # the keys whose grants the plan (and fingerprint) read

    def count(self, *actions: Action) -> int:
        return sum(1 for k in self.keys if k.action in actions)

    @property
    def has_changes(self) -> bool:
        return bool(self.operations)


@dataclass(frozen=True)
class Plan:
    targets: tuple[TargetPlan, ...]
    allow_destroy: bool = False
    inventory: str = ""
    identity_tag: str = DEFAULT_IDENTITY_TAG
    format_version: int = FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return any(t.has_changes for t in self.targets)

    def count(self, *actions: Action) -> int:
        return sum(t.count(*actions) for t in self.targets)

    @property
    def destructive_operations(self) -> list[Operation]:
        return [op for t in self.targets for op in t.operations if op.destructive]


# -- saving and loading -------------------------------------------------------------------


def to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as a stable JSON document (``format_version`` says how to read it)."""
    return {
        "format_version": plan.format_version,
        "inventory": plan.inventory,
        "allow_destroy": plan.allow_destroy,
        "identity_tag": plan.identity_tag,
        "summary": {
            "create": plan.count(Action.CREATE),
            "update": plan.count(Action.UPDATE, Action.RECOVER),
            "delete": plan.count(Action.DELETE),
            "unchanged": plan.count(Action.NOOP),
            "operations": sum(len(t.operations) for t in plan.targets),
            "destructive_operations": len(plan.destructive_operations),
        },
        "targets": [_target_to_dict(t) for t in plan.targets],
    }


def _target_to_dict(tp: TargetPlan) -> dict[str, Any]:
    t = tp.target
    return {
        "name": t.name,
        "account_id": t.account_id,
        "region": t.region,
        "partition": t.partition,
        "role_arn": t.role_arn,
        "profile": t.profile,
        "role_chain": list(t.role_chain),
        "external_id": t.external_id,
        "session_name": t.session_name,
        "session_duration_seconds": t.session_duration_seconds,
        "caller_arn": tp.caller_arn,
        "fingerprint": tp.fingerprint,
        "grants_read": list(tp.grants_read),
        "keys": [
            {
                "name": k.name,
                "action": k.action.value,
                "key_id": k.key_id,
                "reason": k.reason,
                "destructive": k.destructive,
                "source": None
                if k.source is None
                else {
                    "file": k.source.file,
                    "line": k.source.line,
                    "policy": k.source.policy_origin,
                },
                "changes": [
                    {
                        "field": c.field,
                        "before": c.before,
                        "after": c.after,
                        "destructive": c.destructive,
                        "reason": c.reason,
                        "statements": [
                            {
                                "kind": s.kind,
                                "sid": s.sid,
                                "before": s.before,
                                "after": s.after,
                                "details": list(s.details),
                            }
                            for s in c.statements
                        ],
                    }
                    for c in k.changes
                ],
            }
            for k in tp.keys
        ],
        "orphans": [{"name": o.name, "key_id": o.key_id, "reason": o.reason} for o in tp.orphans],
        "warnings": list(tp.warnings),
        "operations": [
            {
                "operation": op.kind.value,
                "key": op.key,
                "key_id": op.key_id,
                "params": dict(op.params),
                "summary": op.summary,
                "destructive": op.destructive,
            }
            for op in tp.operations
        ],
    }


def from_dict(data: Mapping[str, Any]) -> Plan:
    """Load a saved plan. Raises ValueError with a clear message when it cannot be read."""
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"plan format_version {version!r} is not supported (this tool reads {FORMAT_VERSION})"
        )
    try:
        targets = tuple(_target_from_dict(t) for t in data["targets"])
        return Plan(
            targets=targets,
            allow_destroy=bool(data.get("allow_destroy", False)),
            inventory=str(data.get("inventory", "")),
            identity_tag=str(data.get("identity_tag", DEFAULT_IDENTITY_TAG)),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"the plan file is incomplete or damaged ({exc!r})") from None


def _target_from_dict(data: Mapping[str, Any]) -> TargetPlan:
    target = TargetInfo(
        name=data["name"],
        account_id=data["account_id"],
        region=data["region"],
        role_arn=data.get("role_arn"),
        partition=data.get("partition", "aws"),
        profile=data.get("profile"),
        role_chain=tuple(data.get("role_chain") or ()),
        external_id=data.get("external_id"),
        session_name=data.get("session_name"),
        session_duration_seconds=data.get("session_duration_seconds"),
    )
    keys = []
    for k in data["keys"]:
        src = k.get("source")
        keys.append(
            KeyPlan(
                name=k["name"],
                action=Action(k["action"]),
                key_id=k.get("key_id"),
                reason=k.get("reason", ""),
                source=SourceRef(src["file"], src["line"], src.get("policy", "")) if src else None,
                changes=tuple(
                    FieldChange(
                        field=c["field"],
                        before=c["before"],
                        after=c["after"],
                        destructive=c.get("destructive", False),
                        reason=c.get("reason", ""),
                        statements=tuple(
                            StatementChange(
                                kind=s["kind"],
                                sid=s["sid"],
                                before=s["before"],
                                after=s["after"],
                                details=tuple(s["details"]),
                            )
                            for s in c.get("statements", [])
                        ),
                    )
                    for c in k["changes"]
                ),
            )
        )
    ops = tuple(
        Operation(
            kind=OpKind(o["operation"]),
            key=o["key"],
            key_id=o.get("key_id"),
            params=o["params"],
            summary=o.get("summary", ""),
            destructive=o.get("destructive", False),
        )
        for o in data["operations"]
    )
    return TargetPlan(
        target=target,
        keys=tuple(keys),
        operations=ops,
        fingerprint=data["fingerprint"],
        grants_read=tuple(data.get("grants_read", ())),
        orphans=tuple(Orphan(o["name"], o["key_id"], o["reason"]) for o in data["orphans"]),
        warnings=tuple(data.get("warnings", [])),
        caller_arn=data.get("caller_arn", ""),
    )
