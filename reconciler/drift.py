"""Pure: (desired, observed) -> drift findings, ranked by severity.

Drift is the plan made in report-only mode, read as findings: every field that differs
from the inventory, keys pending deletion or missing, orphans, conflicts, plus the
unmanaged customer keys that no ``ignore`` rule covers. Cosmetic policy differences are
never drift, because the planner compares policies by meaning.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from reconciler import catalog, retire
from reconciler.catalog import UNUSED_AFTER_DAYS
from reconciler.findings import Rule, Severity
from reconciler.plan import Action, FieldChange, KeyPlan, RetirementStatus
from reconciler.planner import GrantDiff, PlanOptions, diff_grants, make_plan
from reconciler.policy import (
    AccessChange,
    StatementChange,
    access_changes,
    deleted_principals,
    replica_divergence,
    without_deleted_principals,
)
from reconciler.spec import IgnoreRule
from reconciler.state import (
    DesiredTarget,
    KeyUsage,
    ObservedKey,
    ObservedTarget,
    RotationInfo,
    TargetInfo,
    is_lock_anchor,
    replica_tag,
)
from reconciler.usage import unused_for

RULES: Mapping[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "key-missing",
            Severity.HIGH,
            "Declared key does not exist",
            "A key the inventory declares is not in KMS (never created, or deleted).",
        ),
        Rule(
            "key-pending-deletion",
            Severity.HIGH,
            "Managed key is pending deletion",
            "Once the waiting period ends the key and all data under it are lost.",
        ),
        Rule(
            "key-pending-import",
            Severity.HIGH,
            "Managed EXTERNAL key has no key material",
            "A key in PendingImport (never imported, or its material expired) cannot be used: "
            "every call under it fails until the material is imported.",
        ),
        Rule(
            "key-material-present",
            Severity.HIGH,
            "Imported key material present although declared deleted",
            "The inventory declares this EXTERNAL key's material deleted (key_material: "
            "{deleted: true}), yet the key has material: someone imported it again, and "
            "the key can be used.",
        ),
        Rule(
            "key-material-version",
            Severity.MEDIUM,
            "Imported key material is not the declared version",
            "An EXTERNAL key's current material (its KeyMaterialDescription) is not the "
            "version the inventory declares: the rotation to it has not run, or someone "
            "rotated the key to other material. Apply imports the declared version and "
            "rotates to it.",
        ),
        Rule(
            "key-material-expiring",
            Severity.MEDIUM,
            "Imported key material expires soon",
            "When imported key material expires, KMS deletes it and the key becomes "
            "unusable until the same material is imported again.",
        ),
        Rule(
            "key-disabled",
            Severity.HIGH,
            "Managed key disabled",
            "Every use of a disabled key fails: an outage for its callers.",
        ),
        Rule(
            "key-unavailable",
            Severity.HIGH,
            "Managed key unavailable (custom key store disconnected)",
            "A key in a custom key store is Unavailable while its store is disconnected (or "
            "its external key manager cannot be reached): every use fails until the store "
            "is connected again. The tool manages keys, not stores; connect the store.",
        ),
        Rule(
            "key-enabled",
            Severity.MEDIUM,
            "Key enabled although declared disabled",
            "A key meant to be out of use can be used again.",
        ),
        Rule(
            "policy-widened",
            Severity.HIGH,
            "Key policy grants more access",
            "Someone gained access to the key outside review, or a Deny was removed.",
        ),
        Rule(
            "policy-narrowed",
            Severity.MEDIUM,
            "Key policy grants less access",
            "Access was removed outside review; callers may fail.",
        ),
        Rule(
            "principal-deleted",
            Severity.MEDIUM,
            "Key policy names a deleted principal",
            "An IAM role or user the key policy names was deleted: KMS shows it by its "
            "unique ID (AROA..., AIDA...), which matches nobody, not even a role re-created "
            "under the same name. Its access is gone (callers fail); nobody gained any. "
            "Re-create the principal, then apply to put its ARN back.",
        ),
        Rule(
            "policy-changed",
            Severity.LOW,
            "Key policy changed without an access change",
            "The policy text differs in a way that grants and removes nothing.",
        ),
        Rule(
            "rotation-disabled",
            Severity.MEDIUM,
            "Automatic rotation disabled",
            "Key material is no longer rotated as the inventory requires.",
        ),
        Rule(
            "rotation-changed",
            Severity.LOW,
            "Rotation setting or period differs",
            "The rotation period (or state) differs from the inventory.",
        ),
        Rule(
            "alias-retargeted",
            Severity.HIGH,
            "Declared alias points at another key",
            "Callers using the alias encrypt under a key the inventory does not describe.",
        ),
        Rule(
            "alias-missing",
            Severity.MEDIUM,
            "Declared alias is gone",
            "Callers using the alias fail.",
        ),
        Rule(
            "alias-added",
            Severity.MEDIUM,
            "Undeclared alias on a managed key",
            "An alias points at a managed key without being declared.",
        ),
        Rule(
            "grant-missing",
            Severity.MEDIUM,
            "Declared grant is missing",
            "No grant on the key allows what a declared grant allows; its grantee fails.",
        ),
        Rule(
            "grant-added-sensitive",
            Severity.HIGH,
            "Undeclared grant allows decrypt, signing or passing access on",
            "A grant that no spec declares lets a principal decrypt (or re-encrypt away), "
            "sign, make MACs, derive secrets or create further grants with the key.",
        ),
        Rule(
            "grant-added",
            Severity.MEDIUM,
            "Undeclared grant on a managed key",
            "A grant that no spec declares gives a principal use of the key outside review.",
        ),
        Rule(
            "replica-missing",
            Severity.HIGH,
            "Declared replica does not exist",
            "A multi-Region key has no replica in a Region the inventory declares: callers "
            "there fail.",
        ),
        Rule(
            "replica-undeclared",
            Severity.MEDIUM,
            "Undeclared replica of a managed key",
            "A multi-Region key was replicated into a Region the inventory does not declare; "
            "its policy there is outside review.",
        ),
        Rule(
            "replica-policy-wider",
            Severity.HIGH,
            "Replica allows more than its primary",
            "A member of a multi-Region key allows a request its primary's policy denies "
            "(Region names aside), and the inventory does not declare that difference. The "
            "members share key material: a principal the replica lets decrypt can decrypt "
            "ciphertext made in every Region.",
        ),
        Rule(
            "replica-policy-narrower",
            Severity.MEDIUM,
            "Replica allows less than its primary",
            "A member of a multi-Region key denies a request its primary's policy allows "
            "(Region names aside), and the inventory does not declare that difference: "
            "callers in that Region fail.",
        ),
        Rule(
            "primary-region-changed",
            Severity.MEDIUM,
            "Primary Region of a multi-Region key moved",
            "The primary key (where rotation and replication are managed) is not in the "
            "Region the inventory declares.",
        ),
        Rule(
            "deletion-protection-changed",
            Severity.MEDIUM,
            "Deletion protection tag changed",
            "The tag that records deletion protection differs from the inventory.",
        ),
        Rule(
            "tag-changed",
            Severity.LOW,
            "Tag differs",
            "A tag was added, changed or removed outside the inventory.",
        ),
        Rule(
            "description-changed",
            Severity.LOW,
            "Description differs",
            "The key description was changed outside the inventory.",
        ),
        Rule(
            "immutable-changed",
            Severity.HIGH,
            "Conflict between the inventory and KMS",
            "The inventory cannot be applied as it stands (identity conflict, immutable "
            "field, adoption).",
        ),
        Rule(
            "orphaned-key",
            Severity.MEDIUM,
            "Managed key without a spec",
            "A key carries the identity tag but no spec declares it.",
        ),
        Rule(
            "unmanaged-key",
            Severity.LOW,
            "Unmanaged customer key",
            "A customer key that the inventory neither manages nor ignores.",
        ),
        Rule(
            "unused-key",
            Severity.LOW,
            "Customer key with no recorded use",
            "KMS recorded no cryptographic use of this key for the inventory's "
            "unused_after_days (GetKeyLastUsage), yet it is billed every month: retire it "
            "(disable it first and watch for failures), or declare why it is kept.",
        ),
        Rule(
            "retirement-used",
            Severity.HIGH,
            "Key used after it was disabled for retirement",
            "KMS recorded a use of a key after the tool disabled it to retire it (the spec's "
            "retire:): someone enabled it again and something still needs it. The retirement "
            "stopped; no deletion is offered. Find the caller before retiring the key.",
        ),
        Rule(
            "key-unreadable",
            Severity.MEDIUM,
            "Customer key that cannot be read",
            "The tool could not read this key's tags or metadata, so it cannot tell whether "
            "it is one of the inventory's keys; plans create no key while one is unreadable.",
        ),
    )
}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    key: str | None = None
    key_id: str | None = None
    field: str | None = None
    before: Any = None
    after: Any = None
    file: str | None = None
    line: int | None = None
    details: tuple[str, ...] = ()
    region: str | None = None  # a multi-Region key's member in another Region
    monthly_cost: float | None = None  # unused-key: US dollars a month to keep the key


@dataclass(frozen=True)
class TargetDrift:
    target: TargetInfo
    findings: tuple[Finding, ...]
    read_calls: int = 0
    managed: int = 0
    unmanaged: int = 0
    ignored: int = 0
    rotation: tuple[RotationInfo, ...] = ()
    usage_reads: int = 0  # GetKeyLastUsage calls (included in read_calls)
    usage_unknown: tuple[str, ...] = ()  # keys whose use could not be read: "ID (code)"

    def at_least(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity >= severity]


@dataclass(frozen=True)
class DriftReport:
    targets: tuple[TargetDrift, ...]
    inventory_file: str = "keyspecs/inventory.yaml"
    format_version: int = 1
    stats: Mapping[str, int] = field(default_factory=dict)

    @property
    def findings(self) -> list[Finding]:
        return [f for t in self.targets for f in t.findings]

    def at_least(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity >= severity]

    @property
    def read_calls(self) -> int:
        return sum(t.read_calls for t in self.targets)


def usage_candidates(
    desired: DesiredTarget, observed: ObservedTarget, ignore: Sequence[IgnoreRule] = ()
) -> list[str]:
    """The keys whose use drift reads (GetKeyLastUsage, one call each): every customer key
    in the target's Region that it reports, managed or not, but those the inventory
    ignores, those pending deletion (not billed, reported already), the apply lock's anchor
    and replicas managed from another target."""
    family_tag = replica_tag(desired.identity_tag)
    return [
        k.key_id
        for k in observed.keys
        if k.key_manager != "AWS"
        and not k.pending_deletion
        and not is_lock_anchor(k)
        and family_tag not in k.tags
        and (desired.identity_tag in k.tags or not is_ignored(k, ignore))
    ]


def detect(
    desired: DesiredTarget,
    observed: ObservedTarget,
    ignore: Sequence[IgnoreRule] = (),
    inventory_file: str = "keyspecs/inventory.yaml",
    now: datetime | None = None,
    usage: Sequence[KeyUsage] = (),
    usage_reads: int = 0,
    unused_after_days: int = UNUSED_AFTER_DAYS,
) -> TargetDrift:
    now = now or datetime.now(timezone.utc)
    plan = make_plan(
        desired,
        observed,
        PlanOptions(report_only=True, usage=retire.by_key(list(usage)), now=now),
    )
    retiring = {r.key_id: r for r in plan.retirements}
    by_id = observed.by_id()
    wanted = {dk.name: dk.state.policy for dk in desired.keys}
    grants = {dk.name: dk.state.grants or () for dk in desired.keys}
    findings: list[Finding] = []
    material_deleted = {
        dk.name for dk in desired.keys if dk.key_material is not None and dk.key_material.deleted
    }
    replica_policies = {
        (dk.name, r.region): r.state.policy for dk in desired.keys for r in dk.replicas
    }
    for key in plan.keys:
        ok = by_id.get(key.key_id or "")
        findings.extend(
            _key_findings(
                _without_retirement(key, retiring.get(key.key_id or "")), ok, wanted.get(key.name)
            )
        )
        for replica in key.replicas:
            member = ok.replicas.get(replica.region or "") if ok is not None else None
            policy = replica_policies.get((key.name, replica.region or ""))
            findings.extend(_key_findings(replica, member, policy))
        if ok is not None:
            findings.extend(_material_findings(key, ok, now, key.name in material_deleted))
            if ok.key_state == "Unavailable":
                store = (
                    f" in custom key store {ok.custom_key_store_id}"
                    if ok.custom_key_store_id
                    else ""
                )
                findings.append(
                    _finding(
                        "key-unavailable",
                        f"{_label(key)} ({ok.key_id}{store}) is Unavailable: every use fails "
                        "until its key store is connected",
                        key=key.name,
                        key_id=ok.key_id,
                        file=key.source.file if key.source else None,
                        line=key.source.line if key.source else None,
                    )
                )
            findings.extend(_replica_findings(key, ok, desired, replica_policies, inventory_file))
        if key.action is not Action.CREATE and ok is not None and ok.grants is not None:
            findings.extend(_grant_findings(key, diff_grants(grants.get(key.name, ()), ok.grants)))
    for error in plan.errors:
        findings.append(Finding("immutable-changed", Severity.HIGH, error, file=inventory_file))
    for orphan in plan.orphans:
        findings.append(
            _finding(
                "orphaned-key",
                f"managed key '{orphan.name}' ({orphan.key_id}) has no spec: {orphan.reason}",
                key=orphan.name,
                key_id=orphan.key_id,
                file=inventory_file,
            )
        )
    managed_ids = {k.key_id for k in plan.keys if k.key_id}
    # A replica of a multi-Region key managed from another target's Region carries the
    # replica tag: that target reports it, with its family.
    family_tag = replica_tag(desired.identity_tag)
    unmanaged = [
        k
        for k in observed.keys
        if desired.identity_tag not in k.tags
        and family_tag not in k.tags
        and k.key_id not in managed_ids
        and not is_lock_anchor(k)  # the apply lock's anchor is the tool's own
    ]
    ignored = [k for k in unmanaged if is_ignored(k, ignore)]
    for k in unmanaged:
        if k in ignored or k.key_manager == "AWS":
            continue
        aliases = ", ".join(sorted(k.aliases)) or "no alias"
        state = f", {k.key_state}" if k.key_state else ""
        findings.append(
            _finding(
                "unmanaged-key",
                f"unmanaged key {k.key_id} ({aliases}{state}): {k.description or 'no description'}",
                key_id=k.key_id,
                file=inventory_file,
            )
        )
    skipped = ignored_unreadable(observed, ignore)
    for key_id, error in sorted(observed.unreadable.items()):
        if key_id in skipped:
            continue
        aliases = ", ".join(sorted(_aliases_of(observed, key_id))) or "no alias"
        findings.append(
            _finding(
                "key-unreadable",
                f"key {key_id} ({aliases}) could not be read ({error}): it may or may not be "
                f"one of the inventory's keys; grant kms:{error.split(':', 1)[0]} on it, or "
                "ignore it by key_id",
                key_id=key_id,
                file=inventory_file,
            )
        )
    findings.extend(_retirement_findings(plan.keys, plan.retirements))
    findings.extend(
        _unused_findings(
            plan.keys,
            observed,
            [u for u in usage if u.key_id not in retiring],  # retire: says what becomes of it
            unused_after_days,
            desired,
            inventory_file,
        )
    )
    findings.sort(key=lambda f: (-f.severity, f.key or "~", f.key_id or "", f.rule, f.message))
    rotation = tuple(
        RotationInfo.of(k, k.name(desired.identity_tag) or "")
        for k in sorted(observed.keys, key=lambda k: k.name(desired.identity_tag) or "")
        if k.key_id in managed_ids and k.rotation_enabled is not None
    )
    return TargetDrift(
        target=desired.target,
        findings=tuple(findings),
        managed=len(managed_ids),
        unmanaged=len(unmanaged) - len(ignored),
        ignored=len(ignored),
        rotation=rotation,
        read_calls=observed.read_calls + usage_reads,
        usage_reads=usage_reads,
        usage_unknown=tuple(f"{u.key_id} ({u.error})" for u in usage if u.error),
    )


def _unused_findings(
    planned: Sequence[KeyPlan],
    observed: ObservedTarget,
    usage: Sequence[KeyUsage],
    days: int,
    desired: DesiredTarget,
    inventory_file: str,
) -> list[Finding]:
    """unused-key: a key with no recorded use for ``days``, with what keeping it costs."""
    by_id = observed.by_id()
    declared = {k.key_id: k for k in planned if k.key_id}
    out = []
    for u in usage:
        key = by_id.get(u.key_id)
        if key is None or not unused_for(u, days):
            continue
        name = key.name(desired.identity_tag)
        cost = catalog.monthly_cost(key.rotations)
        price = catalog.KMS_PRICING
        shown = f"${cost:.2f}/month" if key.rotations is not None else f"at least ${cost:.2f}/month"
        spec = declared.get(u.key_id)
        label = f"key '{name}' ({u.key_id})" if name else f"unmanaged key {u.key_id}"
        rotated = (
            f"{key.rotations} rotation(s) so far"
            if key.rotations is not None
            else "rotations not read (unmanaged key)"
        )
        out.append(
            _finding(
                "unused-key",
                f"{label} has no recorded use for {u.idle_days()} days ({u.describe()}); "
                f"keeping it costs {shown}",
                key=name,
                key_id=u.key_id,
                file=spec.source.file if spec is not None and spec.source else inventory_file,
                line=spec.source.line if spec is not None and spec.source else None,
                monthly_cost=cost,
                details=(
                    f"cost: ${price['key_per_month']:.2f}/month for the key, plus "
                    f"${price['rotation_per_month']:.2f}/month for each of its first "
                    f"{price['rotations_billed_max']} rotations ({rotated}); prices from "
                    f"{price['source']} as of {price['checked']}",
                ),
            )
        )
    return out


def _without_retirement(key: KeyPlan, status: RetirementStatus | None) -> KeyPlan:
    """The key's changes that are drift, not the retirement's own next step: the retire
    tag, the deletion it offers, and the disabling that is due (stage 1). A key re-enabled
    outside the tool while it is retired keeps its `enabled` change (key-enabled)."""
    if status is None:
        return key
    due = {
        retire.Stage.DISABLE.value: ("retirement", "enabled"),
        retire.Stage.DELETE.value: ("retirement", "key_state"),
    }.get(status.stage, ("retirement",))
    changes = tuple(c for c in key.changes if c.field not in due)
    action = Action.UPDATE if key.action is Action.DELETE else key.action
    return replace(key, changes=changes, action=action)


def _retirement_findings(
    planned: Sequence[KeyPlan], retirements: Sequence[RetirementStatus]
) -> list[Finding]:
    """retirement-used: a key used after it was disabled for retirement."""
    source = {k.key_id: k.source for k in planned if k.key_id}
    out = []
    for r in retirements:
        if r.stage != retire.Stage.STOPPED.value:
            continue
        src = source.get(r.key_id)
        out.append(
            _finding(
                "retirement-used",
                f"key '{r.key}' ({r.key_id}): retirement {r.message}",
                key=r.key,
                key_id=r.key_id,
                field="retire",
                after=r.used_after.isoformat() if r.used_after else None,
                file=src.file if src else None,
                line=src.line if src else None,
            )
        )
    return out


def _finding(rule: str, message: str, **fields: Any) -> Finding:
    return Finding(rule, RULES[rule].severity, message, **fields)


def _aliases_of(observed: ObservedTarget, key_id: str) -> frozenset[str]:
    return frozenset(a for a, target in observed.aliases.items() if target == key_id)


def ignored_unreadable(observed: ObservedTarget, rules: Iterable[IgnoreRule]) -> frozenset[str]:
    """The unreadable keys that an ``ignore`` rule (key ID or alias glob: their tags are
    unknown) says are not the inventory's."""
    rules = list(rules)
    return frozenset(
        key_id
        for key_id in observed.unreadable
        if is_ignored(ObservedKey(key_id, "", {}, aliases=_aliases_of(observed, key_id)), rules)
    )


def is_ignored(key: ObservedKey, rules: Iterable[IgnoreRule]) -> bool:
    """Whether an inventory `ignore` rule (key ID, alias glob, tag globs) covers the key."""
    for rule in rules:
        if rule.key_id is not None and rule.key_id.rsplit("/", 1)[-1] == key.key_id:
            return True
        if rule.alias is not None and any(fnmatch.fnmatchcase(a, rule.alias) for a in key.aliases):
            return True
        if rule.tag is not None and all(
            k in key.tags and fnmatch.fnmatchcase(key.tags[k], v) for k, v in rule.tag.items()
        ):
            return True
    return False


def _key_findings(
    key: KeyPlan, observed: ObservedKey | None, wanted: Mapping[str, Any] | None
) -> list[Finding]:
    where = {
        "key": key.name,
        "key_id": key.key_id,
        "file": key.source.file if key.source else None,
        "line": key.source.line if key.source else None,
        "region": key.region,
    }
    if key.action is Action.CREATE and key.region:
        return [
            _finding(
                "replica-missing",
                f"key '{key.name}': the declared replica in {key.region} does not exist",
                **where,
            )
        ]
    if key.action is Action.CREATE:
        return [_finding("key-missing", f"{_label(key)} does not exist in KMS", **where)]
    if key.action is Action.DELETE and key.region:
        return [
            _finding(
                "replica-undeclared",
                f"key '{key.name}' has a replica in {key.region} ({key.key_id}) that the "
                "inventory does not declare",
                **where,
            )
        ]
    out = []
    changes = list(key.changes)
    if key.action is Action.RECOVER:
        when = (
            observed.deletion_date.strftime("%Y-%m-%d %H:%M UTC")
            if observed is not None and observed.deletion_date is not None
            else "an unknown date"
        )
        out.append(
            _finding(
                "key-pending-deletion",
                f"{_label(key)} ({key.key_id}) is scheduled for deletion on {when}",
                **where,
            )
        )
        # enabled and rotation follow from the pending state; only real differences remain
        changes = [c for c in changes if c.field not in ("key_state", "enabled", "rotation")]
    for change in changes:
        if change.field in ("key_material", "region"):
            continue  # from the observed key state (_material_findings); the replica's own
        if change.field.startswith("grants."):
            continue  # from the grant diff itself (_grant_findings): it knows the operations
        if change.field == "policy":
            out.append(_policy_finding(key, change, observed, wanted, where))
        else:
            out.append(_change_finding(key, change, where))
    return out


def _replica_findings(
    key: KeyPlan,
    observed: ObservedKey,
    desired: DesiredTarget,
    declared_replicas: Mapping[tuple[str, str], Mapping[str, Any] | None],
    inventory_file: str,
) -> list[Finding]:
    """Undeclared members of a multi-Region key whose live policy allows other access than
    the live primary's (Region names aside).

    A declared member is compared with its own declaration (policy-widened, -narrowed),
    and review compared that declaration with the primary's (KMS113): a live divergence
    there always shows as drift of one of the two. An undeclared member has no declaration:
    only its primary says what it should allow."""
    out = []
    home = desired.target.region
    for region, member in sorted(observed.replicas.items()):
        if member.policy is None or observed.policy is None:
            continue
        if (key.name, region) in declared_replicas:
            continue
        found = replica_divergence(
            observed.policy,
            member.policy,
            primary_region=home,
            replica_region=region,
            partition=desired.target.partition,
            account_id=desired.target.account_id,
        )
        if not found:
            continue
        wider = [c for c in found if c.gained]
        lines = [
            f"{c.principal} may call {', '.join(sorted(c.gained))} in {region}, not in {home}"
            if c.gained
            else f"{c.principal} may call {', '.join(sorted(c.lost))} in {home}, not in {region}"
            for c in found
        ]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        out.append(
            _finding(
                "replica-policy-wider" if wider else "replica-policy-narrower",
                f"key '{key.name}': the replica in {region} ({member.key_id}) allows "
                f"{'more' if wider else 'less'} than the primary: {lines[0]}{more}",
                key=key.name,
                key_id=member.key_id,
                file=key.source.file if key.source else inventory_file,
                line=key.source.line if key.source else None,
                region=region,
                details=tuple([*lines, *(c.witness for c in found if c.witness)]),
            )
        )
    return out


MATERIAL_EXPIRY_WARNING = timedelta(days=30)


def _material_findings(
    key: KeyPlan, observed: ObservedKey, now: datetime, deleted: bool = False
) -> list[Finding]:
    """An EXTERNAL key without material (PendingImport), or whose material expires soon;
    with ``deleted`` (the inventory declares the material deleted) the other way round."""
    where = {
        "key": key.name,
        "key_id": key.key_id,
        "file": key.source.file if key.source else None,
        "line": key.source.line if key.source else None,
        "region": key.region,
    }
    if deleted:
        if observed.needs_key_material or observed.origin != "EXTERNAL":
            return []
        return [
            _finding(
                "key-material-present",
                f"{_label(key)} ({key.key_id}) has imported key material although the "
                "inventory declares it deleted: the key can be used",
                field="key_material",
                **where,
            )
        ]
    if observed.needs_key_material:
        return [
            _finding(
                "key-pending-import",
                f"{_label(key)} ({key.key_id}) is PendingImport: it has no key material "
                "and cannot be used until the material is imported",
                field="key_material",
                **where,
            )
        ]
    valid_to = observed.valid_to
    if valid_to is None or observed.expiration_model == "KEY_MATERIAL_DOES_NOT_EXPIRE":
        return []  # unknown (moto never reports it) or never expires
    if valid_to.tzinfo is None:
        valid_to = valid_to.replace(tzinfo=timezone.utc)
    if valid_to - now > MATERIAL_EXPIRY_WARNING:
        return []
    verb = "expired" if valid_to <= now else "expires"
    return [
        _finding(
            "key-material-expiring",
            f"{_label(key)} ({key.key_id}): its imported key material {verb} on "
            f"{valid_to.strftime('%Y-%m-%d %H:%M UTC')}; import it again with a later valid_to",
            field="key_material",
            after=valid_to.isoformat(),
            **where,
        )
    ]


def _grant_findings(key: KeyPlan, diff: GrantDiff) -> list[Finding]:
    """A declared grant missing; a grant no spec declares (the old version of a changed
    grant too: KMS holds a grant the inventory does not describe). AWS service grants
    are never findings."""
    where = {
        "key": key.name,
        "key_id": key.key_id,
        "file": key.source.file if key.source else None,
        "line": key.source.line if key.source else None,
        "region": key.region,
    }
    missing = {g.name: g for g in diff.missing}
    out = []
    for grant in diff.missing:
        out.append(
            _finding(
                "grant-missing",
                f"{_label(key)}: declared grant '{grant.name}' ({grant.text}) is missing",
                **where,
                field=f"grants.{grant.name}",
                after=grant.text,
            )
        )
    for grant in (*diff.replaced, *diff.undeclared):
        declared = missing.get(grant.name)
        note = (
            f"; the inventory's grant '{grant.name}' allows {declared.text}"
            if declared is not None
            else ""
        )
        ident = f" '{grant.name}'" if grant.name else ""
        out.append(
            _finding(
                "grant-added-sensitive" if grant.sensitive else "grant-added",
                f"{_label(key)}: grant{ident} ({grant.grant_id}) allows {grant.text} "
                f"but is not declared{note}",
                **where,
                field=f"grants.{grant.label}",
                before=grant.text,
            )
        )
    return out


def _label(key: KeyPlan) -> str:
    """How a finding names the key: ``key 'app'``, or for a multi-Region key's member in
    another Region ``key 'app' (replica in eu-west-1)``."""
    return f"key '{key.name}'" + (f" (replica in {key.region})" if key.region else "")


def _change_finding(key: KeyPlan, change: FieldChange, where: dict[str, Any]) -> Finding:
    label, f = _label(key), change.field
    common = {**where, "field": f, "before": change.before, "after": change.after}
    if f == "description":
        return _finding(
            "description-changed",
            f"{label}: description is {change.before!r}, the inventory says {change.after!r}",
            **common,
        )
    if f == "enabled":
        if change.after:
            return _finding("key-disabled", f"{label} is disabled", **common)
        return _finding("key-enabled", f"{label} is enabled, the inventory says disabled", **common)
    if f == "rotation":
        if change.before == "disabled":
            return _finding(
                "rotation-disabled",
                f"{label}: automatic rotation is disabled, the inventory says {change.after}",
                **common,
            )
        return _finding(
            "rotation-changed",
            f"{label}: rotation is {change.before}, the inventory says {change.after}",
            **common,
        )
    if f == "key_material.version":
        return _finding(
            "key-material-version",
            f"{label}: its current key material is version {change.before or 'unknown'}, "
            f"the inventory declares {change.after} ({change.reason})",
            **common,
        )
    if f == "primary_region":
        return _finding(
            "primary-region-changed",
            f"{label}: the primary key is in {change.before}, the inventory says {change.after}",
            **common,
        )
    if f == "deletion_protection":
        return _finding(
            "deletion-protection-changed",
            f"{label}: deletion protection is {'on' if change.before else 'off'}, "
            f"the inventory says {'on' if change.after else 'off'}",
            **common,
        )
    if f.startswith("tags."):
        tag = f.removeprefix("tags.")
        if change.before is None:
            text = f"tag {tag}={change.after!r} is missing"
        elif change.after is None:
            text = f"tag {tag}={change.before!r} is not in the inventory"
        else:
            text = f"tag {tag} is {change.before!r}, the inventory says {change.after!r}"
        return _finding("tag-changed", f"{label}: {text}", **common)
    if f == "aliases":
        if change.after is None:
            return _finding(
                "alias-added",
                f"{label}: alias {change.before} points at it but is not declared",
                **common,
            )
        if change.reason:
            return _finding(
                "alias-retargeted",
                f"{label}: alias {change.after} {change.reason}",
                **common,
            )
        return _finding("alias-missing", f"{label}: alias {change.after} is gone", **common)
    return _finding(
        "immutable-changed",
        f"{label}: {f} is {change.before!r}, the inventory says {change.after!r}",
        **common,
    )


def _policy_finding(
    key: KeyPlan,
    change: FieldChange,
    observed: ObservedKey | None,
    wanted: Mapping[str, Any] | None,
    where: dict[str, Any],
) -> Finding:
    """Who gained or lost which actions, relative to the inventory (inventory -> KMS now)."""
    details = [line for s in change.statements for line in _statement_lines(s)]
    changes: tuple[AccessChange, ...] = ()
    deleted = deleted_principals(observed.policy if observed is not None else None)
    if observed is not None and observed.policy is not None and wanted is not None:
        # a deleted principal (unique ID) matches nobody: it gains nothing
        changes = access_changes(wanted, without_deleted_principals(observed.policy))
    details += [line for ac in changes for line in _access_lines(ac)]
    gained = any(ac.gained for ac in changes)
    lost = any(ac.lost for ac in changes)
    # The plan diff runs KMS -> inventory: a Deny the plan adds is one KMS no longer has.
    deny_removed = any(
        s.kind == "added" and s.after is not None and s.after.get("Effect") == "Deny"
        for s in change.statements
    )
    if gained or deny_removed:
        rule, verb = "policy-widened", "grants more access than"
    elif deleted:
        where_deleted = "; ".join(
            f"{'statement ' + json.dumps(sid) if sid else 'a statement without Sid'} names "
            f"{', '.join(ids)}"
            for sid, ids in deleted
        )
        return _finding(
            "principal-deleted",
            f"{_label(key)}: a principal of the key policy was deleted ({where_deleted}: "
            "the unique ID KMS shows for a deleted IAM role or user, which matches nobody)",
            **where,
            field="policy",
            details=tuple(details),
        )
    elif lost:
        rule, verb = "policy-narrowed", "grants less access than"
    else:
        rule, verb = "policy-changed", "differs, with no access change, from"
    return _finding(
        rule,
        f"{_label(key)}: the key policy {verb} the inventory ({change.after})",
        **where,
        field="policy",
        details=tuple(details),
    )


_KIND_IN_KMS = {"added": "missing in KMS", "removed": "only in KMS", "changed": "changed in KMS"}


def _statement_lines(change: StatementChange) -> list[str]:
    label = f'statement "{change.sid}"' if change.sid else "statement (no Sid)"
    lines = [f"{label}: {_KIND_IN_KMS[change.kind]}"]
    if change.kind == "changed":
        # details run KMS -> inventory; flip the symbols to read "what KMS has"
        flipped = {"+ ": "- ", "- ": "+ "}
        for detail in change.details:
            name, _, rest = detail.partition(": ")
            lines.append(f"  {name}: {flipped.get(rest[:2], rest[:2])}{rest[2:]}")
    return lines


def _access_lines(change: AccessChange) -> list[str]:
    when = f" (when {change.conditions})" if change.conditions else ""
    lines = []
    if change.gained:
        lines.append(f"{change.principal} gained {', '.join(sorted(change.gained))}{when}")
    if change.lost:
        lines.append(f"{change.principal} lost {', '.join(sorted(change.lost))}{when}")
    if change.witness:
        lines.append(f"  {change.witness}")
    return lines
