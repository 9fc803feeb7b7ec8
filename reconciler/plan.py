"""Plan value types: what changes, why, and the ordered KMS calls that make it so.

A plan is a frozen value. The planner makes it, formatters print it, the applier executes
its operations in order, and ``to_dict`` / ``from_dict`` save and load it (``plan --out``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from reconciler.catalog import DEFAULT_IDENTITY_TAG, RETIRE_GUARD_DAYS
from reconciler.policy import StatementChange
from reconciler.state import KeyUsage, RotationInfo, SourceRef, TargetInfo

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
    REPLICATE_KEY = "ReplicateKey"
    ENABLE_KEY = "EnableKey"
    UPDATE_PRIMARY_REGION = "UpdatePrimaryRegion"
    UPDATE_KEY_DESCRIPTION = "UpdateKeyDescription"
    PUT_KEY_POLICY = "PutKeyPolicy"
    TAG_RESOURCE = "TagResource"
    UNTAG_RESOURCE = "UntagResource"
    ENABLE_KEY_ROTATION = "EnableKeyRotation"
    DISABLE_KEY_ROTATION = "DisableKeyRotation"
    ROTATE_KEY_ON_DEMAND = "RotateKeyOnDemand"
    CREATE_ALIAS = "CreateAlias"
    UPDATE_ALIAS = "UpdateAlias"
    CREATE_GRANT = "CreateGrant"
    REVOKE_GRANT = "RevokeGrant"
    DISABLE_KEY = "DisableKey"
    DELETE_IMPORTED_KEY_MATERIAL = "DeleteImportedKeyMaterial"
    DELETE_ALIAS = "DeleteAlias"
    SCHEDULE_KEY_DELETION = "ScheduleKeyDeletion"


# The designed order (DESIGN section 5): recover -> create (+ import key material,
# + replicate) -> enable -> primary Region -> description -> policy -> tags -> rotation ->
# aliases (create / retarget) -> grants -> disable -> alias deletions -> key deletions.
# Operations of one phase for different keys are independent; a key's own operations of
# one phase run in plan order (CreateKey, then ImportKeyMaterial, then ReplicateKey).
PHASES: Mapping[OpKind, int] = {
    OpKind.CANCEL_KEY_DELETION: 0,
    OpKind.CREATE_KEY: 1,
    OpKind.IMPORT_KEY_MATERIAL: 1,
    OpKind.REPLICATE_KEY: 1,
    OpKind.ENABLE_KEY: 2,
    # Both the old and the new primary must be Enabled when it starts.
    OpKind.UPDATE_PRIMARY_REGION: 3,
    OpKind.UPDATE_KEY_DESCRIPTION: 4,
    OpKind.PUT_KEY_POLICY: 5,
    OpKind.TAG_RESOURCE: 6,
    OpKind.UNTAG_RESOURCE: 6,
    # After a primary move: rotation is set on the (new) primary only.
    OpKind.ENABLE_KEY_ROTATION: 7,
    OpKind.DISABLE_KEY_ROTATION: 7,
    # An EXTERNAL key's new material version (imported in phase 1) becomes current.
    OpKind.ROTATE_KEY_ON_DEMAND: 7,
    OpKind.CREATE_ALIAS: 8,
    OpKind.UPDATE_ALIAS: 8,
    OpKind.CREATE_GRANT: 9,
    OpKind.REVOKE_GRANT: 9,
    OpKind.DISABLE_KEY: 10,
    # Like disabling, and after every other change of the key: its use fails from here on.
    OpKind.DELETE_IMPORTED_KEY_MATERIAL: 10,
    OpKind.DELETE_ALIAS: 11,
    OpKind.SCHEDULE_KEY_DELETION: 12,
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
    # The Region the call goes to (None: the target's). A multi-Region key's replicas are
    # changed in their own Region; ReplicateKey and UpdatePrimaryRegion go to the primary's.
    region: str | None = None
    # UpdateAlias: the key the alias points at now, which loses it (its last use is shown).
    from_key_id: str | None = None

    @property
    def usage_key_id(self) -> str | None:
        """The key whose last use this operation's entry shows: the key losing an alias
        for UpdateAlias, else the key itself."""
        return self.from_key_id if self.kind is OpKind.UPDATE_ALIAS else self.key_id

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
    """One key's changes. A multi-Region key is planned as one unit: the key in the
    target's Region, with one nested ``KeyPlan`` per member in another Region (``region``
    set; its action says what happens to that replica)."""

    name: str
    action: Action
    key_id: str | None
    changes: tuple[FieldChange, ...] = ()
    reason: str = ""
    source: SourceRef | None = None
    region: str | None = None
    replicas: tuple[KeyPlan, ...] = ()

    @property
    def destructive(self) -> bool:
        return (
            self.action is Action.DELETE
            or any(c.destructive for c in self.changes)
            or any(r.destructive for r in self.replicas)
        )


@dataclass(frozen=True)
class Orphan:
    """A managed key that no spec declares. Left alone unless destruction is allowed."""

    name: str
    key_id: str
    reason: str


@dataclass(frozen=True)
class RetirementStatus:
    """Where a key's staged retirement (its spec's ``retire:``) stands: the stage
    (``reconciler.retire.Stage`` values) and one line for the plan."""

    key: str
    key_id: str
    stage: str
    message: str
    used_after: datetime | None = None  # stopped: the use recorded after disabling


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
    regions_read: tuple[str, ...] = ()  # the other Regions whose aliases the plan read
    # Rotation details of the managed keys that rotate (what KMS reported; details only).
    rotation: tuple[RotationInfo, ...] = ()
    # The last use of the keys this plan retires or restricts (GetKeyLastUsage, read after
    # planning: see ``reconciler.usage``), and how many reads that took.
    usage: tuple[KeyUsage, ...] = ()
    usage_reads: int = 0
    # Where the staged retirements of the keys with ``retire:`` stand.
    retirements: tuple[RetirementStatus, ...] = ()

    def usage_of(self, key_id: str | None, region: str | None = None) -> KeyUsage | None:
        for u in self.usage:
            if u.key_id == key_id and u.region == region:
                return u
        return None

    def count(self, *actions: Action) -> int:
        return sum(1 for k in self.keys if k.action in actions)

    def count_replicas(self, *actions: Action) -> int:
        """Replicas of multi-Region keys (in other Regions) with one of these actions."""
        return sum(1 for k in self.keys for r in k.replicas if r.action in actions)

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
    # ``--key``: the only keys planned (empty: every key); other keys and orphans are not
    partial_keys: tuple[str, ...] = ()
    # apply refuses to disable or delete a key used within this many days (the inventory's
    # ``retire_guard_days``) unless --allow-in-use
    retire_guard_days: int = RETIRE_GUARD_DAYS

    @property
    def has_changes(self) -> bool:
        return any(t.has_changes for t in self.targets)

    def count(self, *actions: Action) -> int:
        return sum(t.count(*actions) for t in self.targets)

    def count_replicas(self, *actions: Action) -> int:
        return sum(t.count_replicas(*actions) for t in self.targets)

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
        "partial_keys": list(plan.partial_keys),
        "identity_tag": plan.identity_tag,
        "retire_guard_days": plan.retire_guard_days,
        "summary": {
            "create": plan.count(Action.CREATE),
            "update": plan.count(Action.UPDATE, Action.RECOVER),
            "delete": plan.count(Action.DELETE),
            "unchanged": plan.count(Action.NOOP),
            "replicas": {
                "create": plan.count_replicas(Action.CREATE),
                "update": plan.count_replicas(Action.UPDATE, Action.RECOVER),
                "delete": plan.count_replicas(Action.DELETE),
            },
            "operations": sum(len(t.operations) for t in plan.targets),
            "destructive_operations": len(plan.destructive_operations),
            "usage_reads": sum(t.usage_reads for t in plan.targets),
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
        "plan_role_chain": list(t.plan_role_chain),
        "external_id": t.external_id,
        "session_name": t.session_name,
        "session_duration_seconds": t.session_duration_seconds,
        "caller_arn": tp.caller_arn,
        "fingerprint": tp.fingerprint,
        "grants_read": list(tp.grants_read),
        "regions_read": list(tp.regions_read),
        "rotation": [
            {
                "key": r.key,
                "key_id": r.key_id,
                "enabled": r.enabled,
                "period_days": r.period_days,
                "last_rotation": r.last.isoformat() if r.last else None,
                "next_rotation": r.next.isoformat() if r.next else None,
                "on_demand_rotations": r.on_demand,
            }
            for r in tp.rotation
        ],
        "usage_reads": tp.usage_reads,
        "usage": [_usage_to_dict(u) for u in tp.usage],
        "keys": [_key_to_dict(k, tp) for k in tp.keys],
        "retirements": [
            {
                "key": r.key,
                "key_id": r.key_id,
                "stage": r.stage,
                "message": r.message,
                "used_after": r.used_after.isoformat() if r.used_after else None,
            }
            for r in tp.retirements
        ],
        "orphans": [{"name": o.name, "key_id": o.key_id, "reason": o.reason} for o in tp.orphans],
        "warnings": list(tp.warnings),
        "operations": [_op_to_dict(op) for op in tp.operations],
    }


def _op_to_dict(op: Operation) -> dict[str, Any]:
    out = {
        "operation": op.kind.value,
        "key": op.key,
        "key_id": op.key_id,
        "params": dict(op.params),
        "summary": op.summary,
        "destructive": op.destructive,
    }
    if op.region is not None:
        out["region"] = op.region
    if op.from_key_id is not None:
        out["from_key_id"] = op.from_key_id
    return out


def _usage_to_dict(u: KeyUsage) -> dict[str, Any]:
    return {
        "key_id": u.key_id,
        "region": u.region,
        "read_at": u.read_at.isoformat(),
        "operation": u.operation,
        "last_used": u.last_used.isoformat() if u.last_used else None,
        "tracking_start": u.tracking_start.isoformat() if u.tracking_start else None,
        "key_created": u.created.isoformat() if u.created else None,
        "error": u.error or None,
        "text": u.describe(),
    }


def _usage_from_dict(u: Mapping[str, Any]) -> KeyUsage:
    read_at = _date(u.get("read_at"))
    if read_at is None:
        raise KeyError("read_at")
    return KeyUsage(
        key_id=u["key_id"],
        read_at=read_at,
        region=u.get("region"),
        operation=u.get("operation"),
        last_used=_date(u.get("last_used")),
        tracking_start=_date(u.get("tracking_start")),
        created=_date(u.get("key_created")),
        error=u.get("error") or "",
    )


def _key_to_dict(k: KeyPlan, tp: TargetPlan | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": k.name,
        "action": k.action.value,
        "key_id": k.key_id,
        "reason": k.reason,
        "destructive": k.destructive,
        "source": None
        if k.source is None
        else {"file": k.source.file, "line": k.source.line, "policy": k.source.policy_origin},
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
    if k.region is not None:
        out["region"] = k.region
    used = tp.usage_of(k.key_id, k.region) if tp is not None and k.key_id else None
    if used is not None:
        out["last_used"] = used.describe()
    if k.replicas:
        out["replicas"] = [_key_to_dict(r, tp) for r in k.replicas]
    return out


def _key_from_dict(k: Mapping[str, Any]) -> KeyPlan:
    src = k.get("source")
    return KeyPlan(
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
        region=k.get("region"),
        replicas=tuple(_key_from_dict(r) for r in k.get("replicas", ())),
    )


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
            partial_keys=tuple(data.get("partial_keys") or ()),
            inventory=str(data.get("inventory", "")),
            identity_tag=str(data.get("identity_tag", DEFAULT_IDENTITY_TAG)),
            retire_guard_days=int(data.get("retire_guard_days", RETIRE_GUARD_DAYS)),
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
        plan_role_chain=tuple(data.get("plan_role_chain") or ()),
        external_id=data.get("external_id"),
        session_name=data.get("session_name"),
        session_duration_seconds=data.get("session_duration_seconds"),
    )
    keys = [_key_from_dict(k) for k in data["keys"]]
    ops = tuple(
        Operation(
            kind=OpKind(o["operation"]),
            key=o["key"],
            key_id=o.get("key_id"),
            params=o["params"],
            summary=o.get("summary", ""),
            destructive=o.get("destructive", False),
            region=o.get("region"),
            from_key_id=o.get("from_key_id"),
        )
        for o in data["operations"]
    )
    return TargetPlan(
        target=target,
        keys=tuple(keys),
        operations=ops,
        fingerprint=data["fingerprint"],
        grants_read=tuple(data.get("grants_read", ())),
        regions_read=tuple(data.get("regions_read", ())),
        rotation=tuple(
            RotationInfo(
                key=r["key"],
                key_id=r["key_id"],
                enabled=r.get("enabled"),
                period_days=r.get("period_days"),
                last=_date(r.get("last_rotation")),
                next=_date(r.get("next_rotation")),
                on_demand=r.get("on_demand_rotations"),
            )
            for r in data.get("rotation", ())
        ),
        usage=tuple(_usage_from_dict(u) for u in data.get("usage", ())),
        usage_reads=int(data.get("usage_reads", 0)),
        retirements=tuple(
            RetirementStatus(
                key=r["key"],
                key_id=r["key_id"],
                stage=r["stage"],
                message=r["message"],
                used_after=_date(r.get("used_after")),
            )
            for r in data.get("retirements", ())
        ),
        orphans=tuple(Orphan(o["name"], o["key_id"], o["reason"]) for o in data["orphans"]),
        warnings=tuple(data.get("warnings", [])),
        caller_arn=data.get("caller_arn", ""),
    )


def _date(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None
