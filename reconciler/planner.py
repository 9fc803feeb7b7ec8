"""Pure: (desired, observed) -> plan. Identity, ownership and plan rules of DESIGN 4 and 5.

No I/O. Every rule that can refuse a plan adds a problem; all problems of a target are
raised together as one ``PlanError``, before any call is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from reconciler import catalog, retire
from reconciler.errors import PlanError, Problem
from reconciler.plan import (
    Action,
    FieldChange,
    KeyPlan,
    Operation,
    OpKind,
    Orphan,
    RetirementStatus,
    TargetPlan,
)
from reconciler.policy import (
    Canonicals,
    can_manage_policy,
    diff_statements,
    removes_access,
    without_deleted_principals,
)
from reconciler.state import (
    DesiredKey,
    DesiredReplica,
    DesiredTarget,
    Grant,
    KeyState,
    KeyUsage,
    ObservedKey,
    ObservedTarget,
    RotationInfo,
    SourceRef,
    fingerprint,
    protection_tag,
    replica_tag,
    retire_tag,
)

# Fields KMS cannot change on an existing key (DESIGN 5, "Field mutability, declared once").
IMMUTABLE_FIELDS: tuple[str, ...] = (
    "key_spec",
    "key_usage",
    "origin",
    "custom_key_store_id",
    "xks_key_id",
    "multi_region",
)
# Read with the origin (DescribeKey): absent on a key read in full means "none".
_ABSENT_MEANS_NONE = frozenset({"custom_key_store_id", "xks_key_id"})
MUTABLE_FIELDS: tuple[str, ...] = (
    "description",
    "enabled",
    "rotation",
    "tags",
    "policy",
    "aliases",
    "grants",
)

_ACTIVE_STATES = ("Enabled", "Disabled")


@dataclass(frozen=True)
class PlanOptions:
    allow_destroy: bool = False
    # Drift detection: report what differs instead of refusing. Conflicts become the
    # plan's ``errors``, alias conflicts a change without a call, and no lockout check.
    report_only: bool = False
    # Keys the inventory says are not its own (``ignore: - key_id: ...``): an unreadable
    # one among them does not stop the plan from creating keys.
    not_ours: frozenset[str] = frozenset()
    # A partial plan (``--key``): only some specs are planned, so a managed key with no spec
    # among them is not an orphan.
    partial: bool = False
    # Staged retirement (specs with ``retire:``): the last use of those keys, by key ID
    # (read before planning: ``retire.usage_refs``), and the plan's clock (None: now).
    usage: Mapping[str, KeyUsage] = field(default_factory=dict)
    now: datetime | None = None


@dataclass
class _Builder:
    """Collects one target's operations, key plans and problems while planning."""

    desired: DesiredTarget
    observed: ObservedTarget
    options: PlanOptions
    problems: list[Problem] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    canonicals: Canonicals = field(default_factory=Canonicals)
    retirements: list[RetirementStatus] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def problem(self, key: DesiredKey, message: str, field_name: str | None = None) -> None:
        self.problems.append(
            Problem(message, key.source.file, key.source.line, field_name, key.name)
        )

    _where: dict[str | None, _Where] = field(default_factory=dict)

    def op(
        self,
        kind: OpKind,
        key: str,
        key_id: str | None,
        summary: str,
        destructive: bool = False,
        *,
        region: str | None = None,
        from_key_id: str | None = None,
        **params: Any,
    ) -> None:
        region = None if region == self.desired.target.region else region
        self.operations.append(
            Operation(
                kind,
                key,
                key_id,
                params,
                summary,
                destructive,
                region=region,
                from_key_id=from_key_id,
            )
        )

    def where(self, region: str | None) -> _Where:
        """The aliases of a Region (None: the target's), who owns their keys, and which
        spec declares each alias there."""
        region = None if region == self.desired.target.region else region
        if region not in self._where:
            if region is None:
                aliases = self.observed.aliases
            else:
                aliases = self.observed.region_aliases.get(region, {})
            on_key: dict[str, set[str]] = {}
            for alias, key_id in aliases.items():
                if key_id is not None:
                    on_key.setdefault(key_id, set()).add(alias)
            frozen = {key_id: frozenset(names) for key_id, names in on_key.items()}
            self._where[region] = _Where(region, aliases, frozen, self.desired, self.observed)
        return self._where[region]


def _check_unreadable(b: _Builder, creating: list[DesiredKey]) -> None:
    """A key whose tags or metadata could not be read may already be one of the keys this
    plan creates: creating it again would give one name two keys. Refuse every such create,
    naming the key that could not be read; with nothing to create, warn."""
    unknown = {
        key_id: error
        for key_id, error in b.observed.unreadable.items()
        if key_id not in b.options.not_ours
    }
    if not creating or b.options.report_only:
        for key_id, error in sorted(unknown.items()):
            b.warnings.append(
                f"key {key_id} could not be read ({error}): the tool cannot tell whether it "
                f"manages it; grant kms:{error.split(':', 1)[0]} on it"
            )
        return
    if not unknown:
        return
    (first, error), *more = sorted(unknown.items())
    others = f" and {len(more)} more" if more else ""
    for dk in creating:
        b.problem(
            dk,
            f"cannot create the key: key {first}{others} could not be read ({error}), so it "
            f"may already be '{dk.name}'; grant kms:{error.split(':', 1)[0]} on every "
            "customer key, or list it in inventory.yaml under ignore (key_id) if it is not "
            "this inventory's",
        )


def _in(region: str | None) -> str:
    """`` in eu-west-1`` for a call or message about another Region; "" for the target's."""
    return f" in {region}" if region else ""


@dataclass(frozen=True)
class _Where:
    """One Region's alias facts, for the keys (or replicas) planned there. ``owners`` and
    ``declared`` are made when first read (only an alias that is taken over or deleted
    needs them): each is a pass over every key, which a plan of keys whose aliases are
    in place need not make."""

    region: str | None  # None: the target's Region
    aliases: Mapping[str, str | None]  # alias -> key ID
    on_key: Mapping[str, frozenset[str]]  # key ID -> the aliases pointing at it
    desired: DesiredTarget
    observed: ObservedTarget

    @property
    def suffix(self) -> str:
        return _in(self.region)

    @cached_property
    def owners(self) -> Mapping[str, str]:
        """Key ID -> name of the managed key it is (or a replica of)."""
        identity = self.desired.identity_tag
        return {
            k.key_id: name
            for k in self.observed.keys
            if (name := k.name(identity)) and (self.region is None or self.region in k.replicas)
        }

    @cached_property
    def declared(self) -> Mapping[str, str]:
        """Alias -> the spec that declares it in this Region."""
        if self.region is None:
            return {a: dk.name for dk in self.desired.keys for a in dk.state.aliases}
        return {
            a: dk.name
            for dk in self.desired.keys
            for r in dk.replicas
            if r.region == self.region
            for a in r.state.aliases
        }


def make_plan(
    desired: DesiredTarget, observed: ObservedTarget, options: PlanOptions | None = None
) -> TargetPlan:
    """The plan that makes ``observed`` match ``desired`` for one target."""
    options = options or PlanOptions()
    b = _Builder(desired, observed, options, canonicals=Canonicals(desired.target.partition))
    if options.now is not None:
        b.now = options.now
    identity = desired.identity_tag
    by_id: dict[str, ObservedKey] = {}  # made for the first adoption: only adopt reads it
    managed = _managed_by_name(b)

    matched: dict[str, ObservedKey] = {}
    claimed: dict[str, str] = {}  # key ID -> the spec that matched it
    names: set[str] = set()  # every spec's
    for dk in desired.keys:
        names.add(dk.name)
        if dk.adopt and not by_id:
            by_id = observed.by_id()
        found = _match(b, dk, managed, by_id)
        if found is None:
            continue
        other = claimed.setdefault(found.key_id, dk.name)
        if other != dk.name:
            b.problem(dk, f"key {found.key_id} is already adopted by the spec '{other}'", "adopt")
            continue
        matched[dk.name] = found

    # One pass over the keys for all that needs each key (at 10,000 keys, every further
    # pass over them is mostly cache misses): its plan, the creates, the rotation rows,
    # the keys it adopts (the fingerprint's, beside the managed ones).
    key_plans: list[KeyPlan] = []
    creating: list[DesiredKey] = []
    rotation: list[RotationInfo] = []
    adopting: list[str] = []
    for dk in desired.keys:
        ok = matched.get(dk.name)
        if ok is None:
            creating.append(dk)
            key_plans.append(_plan_create(b, dk))
        else:
            key_plans.append(_plan_existing(b, dk, ok))
            if ok.rotation_enabled is not None:
                rotation.append(RotationInfo.of(ok, dk.name))
            if identity not in ok.tags:
                adopting.append(ok.key_id)

    orphans: list[Orphan] = []
    unclaimed = () if options.partial else managed.keys() - names
    adopted_ids = {ok.key_id for ok in matched.values()} if unclaimed else set()
    for name in sorted(unclaimed):
        for ok in managed[name]:
            if ok.key_id in adopted_ids or ok.pending_deletion:
                continue
            plan = _plan_orphan(b, name, ok, orphans)
            if plan is not None:
                key_plans.append(plan)

    _check_unreadable(b, creating)
    if b.problems and not options.report_only:
        raise PlanError(b.problems)
    ordered = sorted(enumerate(b.operations), key=lambda item: (item[1].phase, item[0]))
    grants_needed = desired.grants_needed  # a pass over every key: once
    return TargetPlan(
        target=desired.target,
        keys=tuple(key_plans),
        operations=tuple(op for _, op in ordered),
        fingerprint=fingerprint(
            observed,
            identity,
            adopting,  # with the managed keys: every key matched
            grants_needed if not options.report_only else None,
            b.canonicals,
        ),
        orphans=tuple(orphans),
        warnings=tuple(b.warnings),
        caller_arn=observed.caller_arn,
        errors=tuple(str(p) for p in b.problems),
        grants_read=tuple(sorted(grants_needed)),
        regions_read=desired.replica_regions,
        rotation=tuple(sorted(rotation, key=lambda r: r.key)),  # names are unique
        retirements=tuple(b.retirements),
    )


# -- identity -----------------------------------------------------------------------------


def _managed_by_name(b: _Builder) -> dict[str, list[ObservedKey]]:
    managed: dict[str, list[ObservedKey]] = {}
    for ok in b.observed.keys:
        name = ok.name(b.desired.identity_tag)
        if name is not None:
            managed.setdefault(name, []).append(ok)
    for name, keys in managed.items():
        live = [k for k in keys if not k.pending_deletion] or keys
        if len(live) > 1:
            ids = ", ".join(sorted(k.key_id for k in live))
            b.problems.append(
                Problem(
                    f"{len(live)} keys carry the identity tag {b.desired.identity_tag}={name} "
                    f"in target '{b.desired.target.name}': {ids}; remove the tag from all but one"
                )
            )
        managed[name] = live
    return managed


def _match(
    b: _Builder,
    dk: DesiredKey,
    managed: Mapping[str, list[ObservedKey]],
    by_id: Mapping[str, ObservedKey],
) -> ObservedKey | None:
    found = managed.get(dk.name)
    if found:
        return found[0]
    if not dk.adopt:
        return None
    ref = dk.adopt
    key_id = b.observed.aliases.get(ref) if ref.startswith("alias/") else ref.rsplit("/", 1)[-1]
    ok = by_id.get(key_id or "")
    if key_id in b.observed.aws_managed_key_ids:
        b.problem(dk, f"cannot adopt {ref}: it is an AWS managed key", "adopt")
        return None
    if ok is None:
        b.problem(dk, f"adopt: no customer key {ref} in target '{b.desired.target.name}'", "adopt")
        return None
    other = ok.name(b.desired.identity_tag)
    if other is not None and other != dk.name:
        b.problem(dk, f"adopt: key {ok.key_id} is already managed as '{other}'", "adopt")
        return None
    return ok


# -- create -------------------------------------------------------------------------------


def _plan_create(b: _Builder, dk: DesiredKey) -> KeyPlan:
    want = dk.state
    _check_lockout(b, dk)
    tags = {**want.tags, b.desired.identity_tag: want.name}
    if want.deletion_protection:
        tags[b.desired.protection_tag] = "true"
    params: dict[str, Any] = {
        "Description": want.description,
        "KeySpec": want.key_spec,
        "KeyUsage": want.key_usage,
        "Origin": want.origin,
        "MultiRegion": want.multi_region,
        "Policy": dk.policy_text,
        "Tags": [{"TagKey": k, "TagValue": v} for k, v in tags.items()],
    }
    if want.custom_key_store_id:
        params["CustomKeyStoreId"] = want.custom_key_store_id
    if want.xks_key_id:
        params["XksKeyId"] = want.xks_key_id
    if dk.bypass_policy_lockout_safety_check:
        params["BypassPolicyLockoutSafetyCheck"] = True
    b.op(OpKind.CREATE_KEY, dk.name, None, f"create {want.key_spec} key", **params)
    material_change = _import_material(b, dk, None)
    changes = [
        FieldChange("key_spec", None, want.key_spec),
        FieldChange("key_usage", None, want.key_usage),
    ]
    if want.origin != "AWS_KMS":
        changes.append(FieldChange("origin", None, want.origin))
    if want.custom_key_store_id:
        changes.append(FieldChange("custom_key_store_id", None, want.custom_key_store_id))
    if want.xks_key_id:
        changes.append(FieldChange("xks_key_id", None, want.xks_key_id))
    if want.multi_region:
        changes.append(FieldChange("multi_region", None, True))
    if material_change is not None:
        changes.append(material_change)
    changes += [
        FieldChange("description", None, want.description),
        FieldChange("enabled", None, want.enabled),
    ]
    if want.rotation_enabled is not None:
        changes.append(FieldChange("rotation", None, _rotation_text(want)))
    changes += [FieldChange(f"tags.{k}", None, v) for k, v in sorted(want.tags.items())]
    changes.append(FieldChange("deletion_protection", None, want.deletion_protection))
    changes.append(
        FieldChange(
            "policy",
            None,
            dk.source.policy_origin,
            statements=diff_statements(
                None, want.policy, partition=b.desired.target.partition, canonicals=b.canonicals
            ),
        )
    )
    if want.rotation_enabled:
        b.op(
            OpKind.ENABLE_KEY_ROTATION,
            dk.name,
            None,
            f"enable rotation every {want.rotation_period_days} days",
            region=dk.primary_region,
            RotationPeriodInDays=want.rotation_period_days,
        )
    for alias in sorted(want.aliases):
        change = _plan_alias(b, dk, None, alias, b.where(None))
        if change is not None:
            changes.append(change)
    for grant in sorted(want.grants or (), key=lambda g: g.name):
        changes.append(_create_grant(b, dk, None, grant))
    if not want.enabled:
        b.op(OpKind.DISABLE_KEY, dk.name, None, "disable the new key")
    replicas = tuple(_plan_new_replica(b, dk, None, r, None) for r in dk.replicas)
    if dk.primary_region not in (None, b.desired.target.region):
        # The key is created here, so a crash never leaves a family that the identity tag
        # cannot find; the primary moves once the replica exists.
        changes.append(FieldChange("primary_region", None, dk.primary_region))
        b.op(
            OpKind.UPDATE_PRIMARY_REGION,
            dk.name,
            None,
            f"make the replica in {dk.primary_region} the primary key",
            PrimaryRegion=dk.primary_region,
        )
    return KeyPlan(dk.name, Action.CREATE, None, tuple(changes), "", dk.source, replicas=replicas)


def _replica_view(dk: DesiredKey, replica: DesiredReplica) -> DesiredKey:
    """A replica as a desired key of its own (its state, policy text and origin), so the
    same field rules plan it; what KMS shares with the primary is left out."""
    return replace(
        dk,
        state=replica.state,
        policy_text=replica.policy_text,
        source=replace(
            dk.source, policy_origin=replica.policy_origin, policy_file=replica.policy_file
        ),
        replicas=(),
        grants_purge=False,
    )


def _plan_new_replica(
    b: _Builder,
    dk: DesiredKey,
    key_id: str | None,
    replica: DesiredReplica,
    primary_region: str | None,
) -> KeyPlan:
    """ReplicateKey (sent to the primary's Region) with the replica's own description,
    policy and tags, then its key material (EXTERNAL keys), aliases and enabled state."""
    view = _replica_view(dk, replica)
    want = replica.state
    _check_lockout(b, view, replica.region)
    tags = {**want.tags, replica_tag(b.desired.identity_tag): dk.name}
    params: dict[str, Any] = {
        "ReplicaRegion": replica.region,
        "Description": want.description,
        "Policy": replica.policy_text,
        "Tags": [{"TagKey": k, "TagValue": v} for k, v in tags.items()],
    }
    if dk.bypass_policy_lockout_safety_check:
        params["BypassPolicyLockoutSafetyCheck"] = True
    b.op(
        OpKind.REPLICATE_KEY,
        dk.name,
        key_id,
        f"replicate into {replica.region}",
        region=primary_region,
        **params,
    )
    changes = [FieldChange("region", None, replica.region)]
    material = _import_material(b, view, key_id, replica.region)
    if material is not None:
        changes.append(material)
    changes.append(FieldChange("description", None, want.description))
    changes.append(FieldChange("enabled", None, want.enabled))
    changes += [FieldChange(f"tags.{k}", None, v) for k, v in sorted(want.tags.items())]
    changes.append(
        FieldChange(
            "policy",
            None,
            replica.policy_origin,
            statements=diff_statements(
                None, want.policy, partition=b.desired.target.partition, canonicals=b.canonicals
            ),
        )
    )
    where = b.where(replica.region)
    for alias in sorted(want.aliases):
        change = _plan_alias(b, view, key_id, alias, where)
        if change is not None:
            changes.append(change)
    if not want.enabled:
        b.op(
            OpKind.DISABLE_KEY,
            dk.name,
            key_id,
            f"disable the new replica in {replica.region}",
            region=replica.region,
        )
    return KeyPlan(
        dk.name, Action.CREATE, key_id, tuple(changes), "", dk.source, region=replica.region
    )


def _import_material(
    b: _Builder,
    dk: DesiredKey,
    key_id: str | None,
    region: str | None = None,
    *,
    new_version: bool = False,
) -> FieldChange | None:
    """ImportKeyMaterial from the declared source. The params name the source, never the
    material: the applier reads it at apply time. A multi-Region key's replicas need the
    same material imported in their own Region."""
    km = dk.key_material
    if km is None or km.deleted:
        return None
    params: dict[str, Any] = {
        "source": km.source,
        "root": km.root,
        "key_spec": dk.state.key_spec,  # the material is checked before any write
        "ExpirationModel": km.expiration_model,
    }
    if km.encoding is not None:
        params["encoding"] = km.encoding
    if km.version is not None:
        params["KeyMaterialDescription"] = km.version
    if new_version:
        params["ImportType"] = "NEW_KEY_MATERIAL"
    if km.valid_to is not None:
        params["ValidTo"] = km.valid_to.isoformat()
    what = f"new key material version {km.version}" if new_version else "key material"
    b.op(
        OpKind.IMPORT_KEY_MATERIAL,
        dk.name,
        key_id,
        f"import {what} from {km.source}" + (f" into {region}" if region else ""),
        region=region,
        **params,
    )
    until = f" until {km.valid_to.isoformat()}" if km.valid_to is not None else ""
    return FieldChange("key_material", None, f"imported from {km.source}{until}")


def _rotate_material(
    b: _Builder, dk: DesiredKey, ok: ObservedKey, key_id: str, changes: list[FieldChange]
) -> None:
    """A new ``key_material.version`` of an EXTERNAL key in use: import the new material
    (NEW_KEY_MATERIAL) and make it current (RotateKeyOnDemand); the old versions still
    decrypt what they encrypted. Only symmetric encryption keys rotate imported material.
    A version imported but not yet current (a run stopped between the two calls) only
    needs the rotation."""
    km = dk.key_material
    if km is None or km.deleted or km.version is None or ok.materials is None:
        return
    if ok.needs_key_material or ok.pending_deletion:
        return  # the material is imported again first (same version); rotation after
    current = next((m for m in ok.materials if m.state == "CURRENT"), None)
    if current is not None and current.version == km.version:
        return
    if dk.state.key_spec != catalog.SYMMETRIC_DEFAULT:
        b.problem(
            dk,
            f"key_material.version: only symmetric encryption keys rotate imported key "
            f"material; this {dk.state.key_spec} key holds version "
            f"{current.label if current else 'unknown'} (a new version needs a new key)",
            "key_material.version",
        )
        return
    if ok.key_state != "Enabled":
        b.warnings.append(
            f"{dk.name}: key {key_id} is {ok.key_state}: its key material rotates to version "
            f"{km.version} once it is enabled"
        )
        return
    listed = ", ".join(f"{m.label} ({m.state.lower().replace('_', ' ')})" for m in ok.materials)
    changes.append(
        FieldChange(
            "key_material.version",
            current.label if current else None,
            km.version,
            reason=f"rotated on demand; older versions still decrypt (versions: {listed})",
        )
    )
    pending = any(m.state == "PENDING_ROTATION" and m.version == km.version for m in ok.materials)
    if not pending:
        _import_material(b, dk, key_id, new_version=True)
    b.op(
        OpKind.ROTATE_KEY_ON_DEMAND,
        dk.name,
        key_id,
        f"make key material version {km.version} current",
    )


def _rotation_text(state: KeyState) -> str:
    if not state.rotation_enabled:
        return "disabled"
    return f"every {state.rotation_period_days} days" if state.rotation_period_days else "enabled"


# -- update / recover ---------------------------------------------------------------------


def _plan_existing(b: _Builder, dk: DesiredKey, ok: ObservedKey) -> KeyPlan:
    want = dk.state
    have = ok.as_state(b.desired.identity_tag)
    key_id = ok.key_id
    changes: list[FieldChange] = []
    reasons: list[str] = []

    for name in IMMUTABLE_FIELDS:
        before, after = getattr(have, name), getattr(want, name)
        known = getattr(ok, "origin" if name in _ABSENT_MEANS_NONE else name) is not None
        if known and before != after:
            b.problem(
                dk,
                f"{name} cannot change on an existing key ({before} -> {after}); KMS keys "
                f"are immutable in this field. To replace key {key_id}, give the spec a new "
                "name (the plan then shows a delete and a create)",
                name,
            )

    decision = _retirement(b, dk, ok)
    if decision is not None:
        if decision.stage is retire.Stage.SCHEDULED:
            return KeyPlan(dk.name, Action.NOOP, key_id, (), "", dk.source)
        enabled = {
            retire.Enabled.DECLARED: want.enabled,
            retire.Enabled.DISABLED: False,
            retire.Enabled.AS_IS: have.enabled,
        }[decision.enabled]
        dk = replace(dk, state=replace(want, enabled=enabled))
        want = dk.state

    action = Action.UPDATE
    if ok.pending_deletion:
        action = Action.RECOVER
        reasons.append(f"pending deletion since {ok.deletion_date or 'unknown date'}")
        _recover(b, dk, ok, None, changes)
        # CancelKeyDeletion leaves the key Disabled; enabling is decided below.
        have = replace(have, enabled=False)

    deleted = dk.key_material is not None and dk.key_material.deleted
    if deleted and not ok.needs_key_material and ok.origin == catalog.ORIGIN_EXTERNAL:
        changes.append(
            FieldChange(
                "key_material",
                "imported",
                "deleted",
                destructive=True,
                reason="every use fails until the material is imported again",
            )
        )
        b.op(
            OpKind.DELETE_IMPORTED_KEY_MATERIAL,
            dk.name,
            key_id,
            "delete the imported key material",
            destructive=True,
        )
        have = replace(have, enabled=want.enabled)  # PendingImport: KMS decides, not us
    elif ok.needs_key_material and deleted:
        have = replace(have, enabled=want.enabled)  # as declared: no material, not usable
    elif ok.needs_key_material:
        if dk.key_material is not None:
            change = _import_material(b, dk, key_id)
            assert change is not None
            changes.append(replace(change, before=ok.key_state))
            # Importing into a PendingImport key makes it Enabled.
            have = replace(have, enabled=True)
        else:
            reasons.append(
                f"key {key_id} is {ok.key_state}: it has no key material; declare "
                "key_material (file or env) to import it"
            )
            have = replace(have, enabled=want.enabled)  # KMS cannot enable it without material

    _rotate_material(b, dk, ok, key_id, changes)

    if ok.name(b.desired.identity_tag) is None:
        via = f" (found by {dk.adopt})" if dk.adopt and dk.adopt != key_id else ""
        reasons.append(f"adopt unmanaged key {key_id}{via}")

    _diff_description(b, dk, ok, have, changes)
    _diff_policy(b, dk, ok, have, changes)
    _diff_tags(b, dk, ok, changes, retiring=decision.tag if decision is not None else None)
    _diff_rotation(
        b, dk, key_id, have, changes, action is Action.RECOVER, _primary_enabled(b, dk, ok, have)
    )
    _diff_enabled(
        b,
        dk,
        ok,
        have,
        changes,
        reason=""
        if decision is None
        else "retirement stage 1"
        if decision.stage is retire.Stage.DISABLE
        else "retirement: it was enabled outside the tool",
    )
    _diff_aliases(b, dk, ok, b.where(None), changes)
    _diff_grants(b, dk, ok, changes)
    replicas = _plan_family(b, dk, ok, changes) if want.multi_region and ok.multi_region else ()
    if decision is not None and decision.schedules_deletion:
        action = Action.DELETE
        window = dk.deletion_window_days
        b.op(
            OpKind.SCHEDULE_KEY_DELETION,
            dk.name,
            key_id,
            f"schedule deletion in {window} days (retired: no use recorded while disabled)",
            destructive=True,
            PendingWindowInDays=window,
        )
        changes.append(_deleted(ok, window, "retired: no use recorded while disabled"))

    if action is Action.UPDATE and not changes and all(r.action is Action.NOOP for r in replicas):
        action = Action.NOOP
    return KeyPlan(
        dk.name,
        action,
        key_id,
        tuple(changes),
        "; ".join(reasons),
        dk.source,
        replicas=tuple(r for r in replicas if r.action is not Action.NOOP),
    )


def _retirement(b: _Builder, dk: DesiredKey, ok: ObservedKey) -> retire.Decision | None:
    """The retirement's decision for a key whose spec declares ``retire:`` (recorded for the
    plan's retirement lines); None when there is none."""
    if dk.retire is None:
        return None
    decision = retire.decide(
        dk.retire,
        ok,
        b.desired.identity_tag,
        b.options.usage.get(ok.key_id),
        b.now,
        dk.state.deletion_protection,
    )
    if decision is not None:
        b.retirements.append(
            RetirementStatus(
                dk.name, ok.key_id, decision.stage.value, decision.message, decision.used_after
            )
        )
    return decision


def _primary_enabled(b: _Builder, dk: DesiredKey, ok: ObservedKey, have: KeyState) -> bool | None:
    """Whether a multi-Region key's primary in another Region is (or becomes) enabled when
    the rotation call reaches it; None when the primary is this key."""
    primary = dk.primary_region
    if primary is None or primary == b.desired.target.region:
        return None
    want = next((r.state.enabled for r in dk.replicas if r.region == primary), False)
    member = ok.replicas.get(primary)
    return want or (member is not None and member.key_state == "Enabled")


def _recover(
    b: _Builder, dk: DesiredKey, ok: ObservedKey, region: str | None, changes: list[FieldChange]
) -> None:
    where = _in(region)
    b.op(
        OpKind.CANCEL_KEY_DELETION,
        dk.name,
        ok.key_id,
        f"cancel the scheduled deletion{where}",
        region=region,
    )
    changes.append(FieldChange("key_state", ok.key_state, "Disabled", reason="recover"))


def _diff_description(
    b: _Builder,
    dk: DesiredKey,
    ok: ObservedKey,
    have: KeyState,
    changes: list[FieldChange],
    region: str | None = None,
) -> None:
    want = dk.state
    if have.description == want.description:
        return
    changes.append(FieldChange("description", have.description, want.description))
    b.op(
        OpKind.UPDATE_KEY_DESCRIPTION,
        dk.name,
        ok.key_id,
        "update description" + _in(region),
        region=region,
        Description=want.description,
    )


# -- multi-Region families ----------------------------------------------------------------


def _plan_family(
    b: _Builder, dk: DesiredKey, ok: ObservedKey, changes: list[FieldChange]
) -> list[KeyPlan]:
    """The members of a multi-Region key in the other Regions: replicate the missing ones,
    reconcile each existing one (what KMS keeps per replica), schedule the deletion of the
    undeclared ones, and move the primary when ``primary_region`` says so."""
    home = b.desired.target.region
    current_primary = ok.primary_region or home
    wanted_primary = dk.primary_region or home
    desired = {r.region: r for r in dk.replicas}
    plans: list[KeyPlan] = []

    # Replicas are made from the primary, wherever it is when the call is made. A new
    # replica is made before the primary moves (phase order), so from the current one.
    replicate_from = None if current_primary == home else current_primary
    for region, replica in desired.items():
        member = ok.replicas.get(region)
        if member is not None:
            plans.append(_plan_member(b, dk, member, replica))
        elif region in ok.member_regions:
            b.warnings.append(
                f"{dk.name}: the replica in {region} exists but could not be read; left as it is"
            )
        else:
            plans.append(_plan_new_replica(b, dk, ok.key_id, replica, replicate_from))

    if current_primary != wanted_primary:
        _move_primary(b, dk, ok, current_primary, wanted_primary, changes)

    for region, member in sorted(ok.replicas.items()):
        if region in desired or member.pending_deletion:
            continue
        plans.append(_remove_member(b, dk, member, region))
    return plans


def _plan_member(
    b: _Builder, dk: DesiredKey, member: ObservedKey, replica: DesiredReplica
) -> KeyPlan:
    """An existing replica: its description, policy, tags, enabled state and aliases."""
    view = _replica_view(dk, replica)
    region = replica.region
    have = member.as_state(b.desired.identity_tag)
    changes: list[FieldChange] = []
    action = Action.UPDATE
    reason = ""
    if member.pending_deletion:
        action = Action.RECOVER
        reason = f"pending deletion since {member.deletion_date or 'unknown date'}"
        _recover(b, dk, member, region, changes)
        have = replace(have, enabled=False)
    _diff_description(b, view, member, have, changes, region)
    _diff_policy(b, view, member, have, changes, region)
    _diff_tags(b, view, member, changes, region)
    _diff_enabled(b, view, member, have, changes, region)
    _diff_aliases(b, view, member, b.where(region), changes)
    if action is Action.UPDATE and not changes:
        action = Action.NOOP
    return KeyPlan(dk.name, action, member.key_id, tuple(changes), reason, dk.source, region=region)


def _move_primary(
    b: _Builder,
    dk: DesiredKey,
    ok: ObservedKey,
    current: str,
    wanted: str,
    changes: list[FieldChange],
) -> None:
    """UpdatePrimaryRegion, sent to the current primary's Region. Destructive: the shared
    properties (rotation, replication) are then managed from the new Region, and the old
    primary becomes a replica that can be deleted."""
    enabled = {b.desired.target.region: dk.state.enabled}
    enabled.update({r.region: r.state.enabled for r in dk.replicas})
    if current not in enabled:  # the old primary is not declared: as KMS has it
        member = ok.replicas.get(current)
        enabled[current] = member is not None and member.key_state == "Enabled"
    stays_disabled = [r for r in (current, wanted) if not enabled.get(r, True)]
    if stays_disabled and not b.options.report_only:
        b.problem(
            dk,
            f"moving the primary from {current} to {wanted} needs both keys "
            f"Enabled (KMS refuses UpdatePrimaryRegion otherwise); the key in "
            f"{', '.join(stays_disabled)} is declared disabled",
            "primary_region",
        )
    changes.append(
        FieldChange(
            "primary_region",
            current,
            wanted,
            destructive=True,
            reason="rotation and replication are then managed from " + wanted,
        )
    )
    b.op(
        OpKind.UPDATE_PRIMARY_REGION,
        dk.name,
        ok.key_id,
        f"move the primary key from {current} to {wanted}",
        destructive=True,
        region=current,
        PrimaryRegion=wanted,
    )


def _remove_member(b: _Builder, dk: DesiredKey, member: ObservedKey, region: str) -> KeyPlan:
    """A replica the spec no longer lists: ScheduleKeyDeletion in its Region."""
    if dk.state.deletion_protection and not b.options.report_only:
        b.problem(
            dk,
            f"the replica in {region} is no longer declared, but deletion_protection is on: "
            "apply deletion_protection: false first, or declare the replica again",
            "replicas",
        )
    return _delete_replica(
        b,
        dk.name,
        member,
        dk.deletion_window_days,
        "replica not declared",
        "replica removed from the spec",
        dk.source,
    )


def _delete_replica(
    b: _Builder,
    name: str,
    member: ObservedKey,
    window: int,
    why: str,
    reason: str,
    source: SourceRef | None = None,
) -> KeyPlan:
    """ScheduleKeyDeletion of a multi-Region key's member, in its own Region."""
    region = member.region
    b.op(
        OpKind.SCHEDULE_KEY_DELETION,
        name,
        member.key_id,
        f"schedule deletion of the replica in {region} in {window} days",
        destructive=True,
        region=region,
        PendingWindowInDays=window,
    )
    return KeyPlan(
        name,
        Action.DELETE,
        member.key_id,
        (_deleted(member, window, why),),
        reason,
        source,
        region=region,
    )


def _diff_policy(
    b: _Builder,
    dk: DesiredKey,
    ok: ObservedKey,
    have: KeyState,
    changes: list[FieldChange],
    region: str | None = None,
) -> None:
    want = dk.state
    partition = b.desired.target.partition
    where = _in(region)
    if have.policy is None:
        b.warnings.append(f"{dk.name}: the key policy of {ok.key_id}{where} could not be read")
        return
    assert want.policy is not None
    if b.canonicals.equal(have.policy, want.policy):
        return
    _check_lockout(b, dk, region)
    # A deleted role or user shows as its unique ID and matches nobody: putting an ARN back
    # in its place takes no access away (not destructive).
    destructive = removes_access(
        without_deleted_principals(have.policy),
        want.policy,
        partition=partition,
        canonicals=b.canonicals,
    )
    changes.append(
        FieldChange(
            "policy",
            "current policy",
            dk.source.policy_origin,
            destructive=destructive,
            reason="removes access" if destructive else "",
            statements=diff_statements(
                have.policy, want.policy, partition=partition, canonicals=b.canonicals
            ),
        )
    )
    params: dict[str, Any] = {"PolicyName": "default", "Policy": dk.policy_text}
    if dk.bypass_policy_lockout_safety_check:
        params["BypassPolicyLockoutSafetyCheck"] = True
    b.op(
        OpKind.PUT_KEY_POLICY,
        dk.name,
        ok.key_id,
        "put key policy" + where + (" (removes access)" if destructive else ""),
        destructive,
        region=region,
        **params,
    )


def _check_lockout(b: _Builder, dk: DesiredKey, region: str | None = None) -> None:
    """A policy must leave someone able to change it again (DESIGN 5, safety checks)."""
    if dk.bypass_policy_lockout_safety_check or b.options.report_only:
        return
    policy = dk.state.policy
    assert policy is not None
    principals = [p for p in (b.observed.caller_arn, *b.desired.admin_principals) if p]
    if not can_manage_policy(
        policy,
        principals,
        account_id=b.desired.target.account_id,
        partition=b.desired.target.partition,
        canonicals=b.canonicals,
    ):
        who = ", ".join(principals) or "the deploying principal"
        b.problem(
            dk,
            f"the policy ({dk.source.policy_origin})"
            + (f" of the replica in {region}" if region else "")
            + f" would lock out {who}: no statement "
            "allows kms:PutKeyPolicy to them, to the account root or to a declared admin; "
            "fix the policy or set bypass_policy_lockout_safety_check: true",
            "policy",
        )


def _diff_tags(
    b: _Builder,
    dk: DesiredKey,
    ok: ObservedKey,
    changes: list[FieldChange],
    region: str | None = None,
    retiring: str | None = None,
) -> None:
    """The key's tags plus the tool's own: the identity tag (and deletion protection, and
    the retire tag while a retirement runs: ``retiring``) on the key in the target's Region,
    the replica tag on a replica elsewhere."""
    identity = replica_tag(b.desired.identity_tag) if region else b.desired.identity_tag
    protection = protection_tag(b.desired.identity_tag)
    retired = retire_tag(b.desired.identity_tag)
    want = dict(dk.state.tags)
    want[identity] = dk.name
    if dk.state.deletion_protection and not region:
        want[protection] = "true"
    if retiring is not None and not region:
        want[retired] = retiring
    # aws:* tags (CloudFormation's, for example) belong to AWS: nobody can remove them.
    have = {k: v for k, v in ok.tags.items() if not k.lower().startswith("aws:")}
    set_tags = {k: v for k, v in want.items() if have.get(k) != v}
    remove = sorted(k for k in have if k not in want)
    for k in sorted(set_tags):
        if k == identity:
            reason = "replica of the key" if region else "adopt"
            changes.append(FieldChange(f"tags.{k}", have.get(k), set_tags[k], reason=reason))
        elif k == protection:
            changes.append(FieldChange("deletion_protection", False, True))
        elif k == retired:
            changes.append(
                FieldChange(
                    "retirement", have.get(k), set_tags[k], reason=f"{k}: disabled to retire it"
                )
            )
        else:
            changes.append(FieldChange(f"tags.{k}", have.get(k), set_tags[k]))
    for k in remove:
        if k == protection:
            changes.append(FieldChange("deletion_protection", True, False))
        elif k == retired:
            changes.append(
                FieldChange(
                    "retirement",
                    have[k],
                    None,
                    reason="retire: is no longer declared: the retirement is cancelled",
                )
            )
        else:
            changes.append(FieldChange(f"tags.{k}", have[k], None))
    if set_tags:
        b.op(
            OpKind.TAG_RESOURCE,
            dk.name,
            ok.key_id,
            f"set tags {', '.join(sorted(set_tags))}" + _in(region),
            region=region,
            Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(set_tags.items())],
        )
    if remove:
        b.op(
            OpKind.UNTAG_RESOURCE,
            dk.name,
            ok.key_id,
            f"remove tags {', '.join(remove)}" + _in(region),
            region=region,
            TagKeys=remove,
        )


def _diff_rotation(
    b: _Builder,
    dk: DesiredKey,
    key_id: str,
    have: KeyState,
    changes: list[FieldChange],
    recovering: bool,
    primary_enabled: bool | None = None,
) -> None:
    """Rotation, set on the primary key. ``primary_enabled``: whether the key that takes the
    call (the primary, for a multi-Region key) is or becomes enabled (None: this key)."""
    want = dk.state
    if want.rotation_enabled is None:
        return  # not applicable to this key type: never a change
    if have.rotation_enabled is None and not recovering:
        return  # not readable: never a change
    # After recovery the status is unknown until read again: restate it (idempotent).
    current = have.rotation_enabled
    period_differs = (
        current
        and have.rotation_period_days is not None
        and have.rotation_period_days != want.rotation_period_days
    )
    enable = want.rotation_enabled and (not current or period_differs)
    disable = not want.rotation_enabled and current is not False
    if not (enable or disable):
        return
    enabled = have.enabled or want.enabled if primary_enabled is None else primary_enabled
    if not enabled:
        # KMS refuses rotation changes on a disabled key (DisabledException).
        where = f" (the primary, in {dk.primary_region})" if primary_enabled is not None else ""
        b.warnings.append(
            f"{dk.name}: rotation should be {_rotation_text(want)}, but key {key_id}{where} "
            "is disabled and stays disabled; KMS cannot change rotation on a disabled key"
        )
        return
    before = "unknown" if current is None else _rotation_text(have)
    changes.append(FieldChange("rotation", before, _rotation_text(want)))
    if enable:
        b.op(
            OpKind.ENABLE_KEY_ROTATION,
            dk.name,
            key_id,
            f"enable rotation every {want.rotation_period_days} days",
            region=dk.primary_region,
            RotationPeriodInDays=want.rotation_period_days,
        )
    else:
        b.op(
            OpKind.DISABLE_KEY_ROTATION,
            dk.name,
            key_id,
            "disable rotation",
            region=dk.primary_region,
        )


def _diff_enabled(
    b: _Builder,
    dk: DesiredKey,
    ok: ObservedKey,
    have: KeyState,
    changes: list[FieldChange],
    region: str | None = None,
    reason: str = "",
) -> None:
    where = _in(region)
    if ok.key_state not in _ACTIVE_STATES and not ok.pending_deletion:
        if ok.key_state is not None:
            b.warnings.append(
                f"{dk.name}: key {ok.key_id}{where} is {ok.key_state}; enabled state left as it is"
            )
        return
    want = dk.state.enabled
    if want == have.enabled:
        return
    if want:
        changes.append(FieldChange("enabled", False, True))
        b.op(OpKind.ENABLE_KEY, dk.name, ok.key_id, "enable the key" + where, region=region)
    else:
        changes.append(
            FieldChange(
                "enabled",
                True,
                False,
                destructive=True,
                reason="blocks all use" + (f"; {reason}" if reason else ""),
            )
        )
        b.op(
            OpKind.DISABLE_KEY,
            dk.name,
            ok.key_id,
            "disable the key" + where + (f" ({reason})" if reason else ""),
            destructive=True,
            region=region,
        )


def _diff_aliases(
    b: _Builder, dk: DesiredKey, ok: ObservedKey, where: _Where, changes: list[FieldChange]
) -> None:
    have = where.on_key.get(ok.key_id, frozenset())
    for alias in sorted(dk.state.aliases - have):
        change = _plan_alias(b, dk, ok.key_id, alias, where)
        if change is not None:
            changes.append(change)
    for alias in sorted(have - dk.state.aliases):
        if alias in where.declared:
            continue  # another spec takes it over in the aliases phase
        changes.append(
            FieldChange(
                "aliases",
                alias,
                None,
                destructive=True,
                reason="not declared by the spec; callers using it will fail",
            )
        )
        b.op(
            OpKind.DELETE_ALIAS,
            dk.name,
            ok.key_id,
            f"delete {alias}{where.suffix}",
            destructive=True,
            region=where.region,
            AliasName=alias,
        )


def _plan_alias(
    b: _Builder, dk: DesiredKey, key_id: str | None, alias: str, where: _Where
) -> FieldChange | None:
    """CreateAlias, or UpdateAlias when the alias exists on another key (with ownership
    rules), in the Region of ``where``."""
    if alias not in where.aliases:
        b.op(
            OpKind.CREATE_ALIAS,
            dk.name,
            key_id,
            f"create {alias}{where.suffix}",
            region=where.region,
            AliasName=alias,
        )
        return FieldChange("aliases", None, alias)
    current = where.aliases[alias]
    holder_name = where.owners.get(current or "")
    ours = holder_name is not None
    if not ours and not dk.allow_alias_takeover:
        if b.options.report_only:
            return FieldChange("aliases", None, alias, reason=f"points at unmanaged key {current}")
        b.problem(
            dk,
            f"{alias}{where.suffix} already points at key {current}, which this inventory does "
            "not manage; set allow_alias_takeover: true on the spec to take it over",
            "aliases",
        )
        return None
    destructive = not ours
    reason = (
        f"moves from managed key '{holder_name}' ({current})"
        if ours
        else f"takes over from unmanaged key {current}"
    )
    b.op(
        OpKind.UPDATE_ALIAS,
        dk.name,
        key_id,
        f"point {alias}{where.suffix} at this key ({reason})",
        destructive,
        region=where.region,
        from_key_id=current,
        AliasName=alias,
    )
    return FieldChange("aliases", None, alias, destructive=destructive, reason=reason)


# -- grants -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantDiff:
    """Declared grants against the grants on a key, matched by content (never by name:
    KMS cannot update a grant, and moto does not keep names idempotent)."""

    matched: tuple[Grant, ...] = ()  # existing grants a declared grant matches
    missing: tuple[Grant, ...] = ()  # declared grants with no existing match: create
    replaced: tuple[Grant, ...] = ()  # existing, unmatched, named like a missing one: revoke
    undeclared: tuple[Grant, ...] = ()  # existing, unmatched, no spec declares them
    aws_service: tuple[Grant, ...] = ()  # made by AWS services for their resources: kept apart


def diff_grants(declared: Iterable[Grant], existing: Iterable[Grant]) -> GrantDiff:
    """Match each declared grant to an existing grant with the same content (one each, so
    two identical grants on the key leave one over). What is left over is sorted: AWS
    service grants first (never touched, whatever their name), then the old version of a
    declared grant whose content changed (same name as a declared grant that is missing),
    then the rest, which no spec declares."""
    left = list(existing)
    matched: list[Grant] = []
    missing: list[Grant] = []
    for grant in sorted(declared, key=lambda g: g.name):
        found = next((g for g in left if g == grant), None)
        if found is None:
            missing.append(grant)
        else:
            left.remove(found)
            matched.append(found)
    aws = [g for g in left if g.for_aws_service]
    missing_names = {g.name for g in missing}
    replaced = [g for g in left if not g.for_aws_service and g.name and g.name in missing_names]
    undeclared = [g for g in left if not g.for_aws_service and g not in replaced]
    order = lambda g: (g.name, g.grant_id or "")  # noqa: E731
    return GrantDiff(
        tuple(matched),
        tuple(missing),
        tuple(sorted(replaced, key=order)),
        tuple(sorted(undeclared, key=order)),
        tuple(sorted(aws, key=order)),
    )


def _create_grant(b: _Builder, dk: DesiredKey, key_id: str | None, grant: Grant) -> FieldChange:
    params: dict[str, Any] = {
        "Name": grant.name,
        "GranteePrincipal": grant.grantee_principal,
        "Operations": list(grant.operations),
    }
    if grant.retiring_principal:
        params["RetiringPrincipal"] = grant.retiring_principal
    if grant.constraints:
        params["Constraints"] = grant.constraints
    b.op(OpKind.CREATE_GRANT, dk.name, key_id, f"create grant {grant.name}", **params)
    return FieldChange(f"grants.{grant.name}", None, grant.text)


def _revoke_grant(
    b: _Builder, dk: DesiredKey, key_id: str, grant: Grant, reason: str
) -> FieldChange:
    b.op(
        OpKind.REVOKE_GRANT,
        dk.name,
        key_id,
        f"revoke grant {grant.label} ({reason})",
        destructive=True,
        GrantId=grant.grant_id,
    )
    return FieldChange(f"grants.{grant.label}", grant.text, None, destructive=True, reason=reason)


def _diff_grants(b: _Builder, dk: DesiredKey, ok: ObservedKey, changes: list[FieldChange]) -> None:
    declared = dk.state.grants or ()
    if ok.grants is None:
        if declared:
            b.warnings.append(f"{dk.name}: the grants of {ok.key_id} could not be read")
        return
    diff = diff_grants(declared, ok.grants)
    # New grants first, then revocations: a changed grant's grantee never loses access
    # between the two calls.
    for grant in diff.missing:
        changes.append(_create_grant(b, dk, ok.key_id, grant))
    for grant in diff.replaced:
        changes.append(
            _revoke_grant(b, dk, ok.key_id, grant, "replaced: KMS cannot change a grant")
        )
    for grant in diff.undeclared:
        if dk.grants_purge:
            changes.append(
                _revoke_grant(b, dk, ok.key_id, grant, "not declared; grants_purge is on")
            )
        elif b.options.report_only:
            # Drift reports it; a plan leaves it alone (no call, no change).
            changes.append(
                FieldChange(f"grants.{grant.label}", grant.text, None, reason="not declared")
            )


# -- orphans and deletion -----------------------------------------------------------------


def _plan_orphan(b: _Builder, name: str, ok: ObservedKey, orphans: list[Orphan]) -> KeyPlan | None:
    protected = ok.tags.get(b.desired.protection_tag) == "true"
    if protected:
        orphans.append(
            Orphan(
                name,
                ok.key_id,
                "deletion protection is on: apply deletion_protection: false before removing "
                "the spec",
            )
        )
        return None
    if not b.options.allow_destroy:
        orphans.append(
            Orphan(name, ok.key_id, "no spec declares it; run with --allow-destroy to delete it")
        )
        return None
    window = b.desired.default_deletion_window_days
    # A multi-Region key goes as a family: the replicas first (KMS deletes a primary only
    # once its replicas are gone; until then it waits in PendingReplicaDeletion).
    replicas = [
        _delete_replica(b, name, member, window, "no spec declares it", "removed from the specs")
        for _, member in sorted(ok.replicas.items())
        if not member.pending_deletion
    ]
    b.op(
        OpKind.SCHEDULE_KEY_DELETION,
        name,
        ok.key_id,
        f"schedule deletion in {window} days",
        destructive=True,
        PendingWindowInDays=window,
    )
    return KeyPlan(
        name,
        Action.DELETE,
        ok.key_id,
        (_deleted(ok, window, "no spec declares it"),),
        "removed from the specs",
        replicas=tuple(replicas),
    )


def _deleted(ok: ObservedKey, window: int, why: str) -> FieldChange:
    return FieldChange(
        "key_state",
        ok.key_state,
        "PendingDeletion",
        destructive=True,
        reason=f"{why}; deleted after {window} days",
    )
