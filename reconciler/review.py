"""Pure: two desired states (a pull request's base and head) -> access changes and findings.

``compare`` pairs every key of every target across the two states and says, per key, which
fields changed and, for the policy, who gained or lost which actions under which
conditions (not a text diff). ``review`` runs the rules of ``reconciler.rules`` over the
pairs, applies the specs' waivers and ranks the findings.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Protocol

from reconciler.findings import Rule, Severity
from reconciler.policy import (
    AccessChange,
    StatementChange,
    access_changes,
    canonicalize,
    diff_statements,
)
from reconciler.state import DesiredKey, DesiredTarget, Grant, KeyState, TargetInfo, Waiver

# KeyState fields compared for "fields changed" (the policy is compared by access).
_FIELDS = (
    "description",
    "key_spec",
    "key_usage",
    "origin",
    "multi_region",
    "enabled",
    "rotation_enabled",
    "rotation_period_days",
    "tags",
    "aliases",
    "deletion_protection",
    "grants",
)


@dataclass(frozen=True)
class FieldDiff:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class KeyChange:
    """One key of one target, as the base and the head of the change declare it."""

    target: TargetInfo
    name: str
    base: DesiredKey | None
    head: DesiredKey | None
    fields: tuple[FieldDiff, ...] = ()
    access: tuple[AccessChange, ...] = ()
    statements: tuple[StatementChange, ...] = ()

    @property
    def kind(self) -> str:
        if self.base is None:
            return "added"
        if self.head is None:
            return "removed"
        if self.fields or self.statements:
            return "changed"
        return "unchanged"

    @property
    def policy_text_changed(self) -> bool:
        """The JSON sent to KMS differs (maybe only cosmetically)."""
        return (self.base.policy_text if self.base else None) != (
            self.head.policy_text if self.head else None
        )

    @property
    def policy_changed(self) -> bool:
        """The policy differs by meaning."""
        return bool(self.statements)

    @property
    def current(self) -> DesiredKey:
        """The head key, or the base key for a removed one."""
        key = self.head or self.base
        assert key is not None
        return key

    @property
    def template(self) -> str:
        return self.current.source.policy_origin


@dataclass(frozen=True)
class Context:
    """What rules know about the inventory besides the key: who is inside, who is admin."""

    account_id: str
    partition: str
    trusted_accounts: frozenset[str] = frozenset()
    organization_ids: frozenset[str] = frozenset()
    admin_principals: tuple[str, ...] = ()
    deployer_arns: tuple[str, ...] = ()  # inventory.yaml review.deployer_arns
    fan_out_threshold: int = 5  # review.fan_out_threshold: KMS108 medium from this many keys
    require_deny_on_bypass: bool = False  # review.require_deny_on_bypass: KMS018 on

    def account_of(self, principal: str) -> str | None:
        """The account of an ``AWS:`` principal string (ARN or ID), else None."""
        return account_of(principal)

    def is_inside(self, principal: str) -> bool:
        """An AWS principal of the target's or a trusted account. Services are not inside
        (they act for whoever calls them) and "*" is not inside."""
        account = self.account_of(principal)
        return account is not None and (
            account == self.account_id or account in self.trusted_accounts
        )


@dataclass(frozen=True)
class Subject:
    """What a rule looks at: one key change, in its context."""

    change: KeyChange
    context: Context
    _canonical: dict[str, dict[str, Any] | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def head(self) -> DesiredKey | None:
        return self.change.head

    @property
    def base(self) -> DesiredKey | None:
        return self.change.base

    def policy(self, which: str = "head") -> dict[str, Any] | None:
        """The canonical policy of the head (or "base"), None when that side has no key.

        Every rule asks for it: it is canonicalised once per side. Do not mutate it."""
        if which not in self._canonical:
            key = self.head if which == "head" else self.base
            policy = key.state.policy if key is not None else None
            self._canonical[which] = (
                None if policy is None else canonicalize(policy, partition=self.context.partition)
            )
        return self._canonical[which]

    def statements(self, which: str = "head") -> list[dict[str, Any]]:
        policy = self.policy(which)
        return list(policy["Statement"]) if policy else []

    def state(self, which: str = "head") -> KeyState | None:
        key = self.head if which == "head" else self.base
        return key.state if key else None


@dataclass(frozen=True)
class Hit:
    """A rule's finding about one subject. ``sid`` names the statement it is about (it
    locates the result at that statement in the template); ``severity`` overrides the
    rule's default (e.g. critical when the action is Decrypt)."""

    message: str
    sid: str | None = None
    details: tuple[str, ...] = ()
    severity: Severity | None = None
    waivable: bool = True  # False: no waiver accepts it (a waiver cannot accept itself)


class RuleModule(Protocol):
    """A module of ``reconciler.rules``: one rule, its metadata and its check."""

    RULE: Rule

    def check(self, subject: Subject) -> Iterable[Hit]: ...


class BatchRuleModule(Protocol):
    """A rule that looks at all the changes at once (e.g. one template, many keys)."""

    RULE: Rule

    def check_all(self, subjects: Sequence[Subject]) -> Iterable[tuple[Subject, Hit]]: ...


@dataclass(frozen=True)
class ReviewFinding:
    rule: Rule
    severity: Severity
    message: str
    target: str
    key: str | None
    file: str | None
    line: int | None
    details: tuple[str, ...] = ()
    waiver: Waiver | None = None  # in force: the finding is accepted
    expired_waiver: Waiver | None = None  # expired: the finding counts again
    introduced: bool = True  # False: on a key this change leaves as it is

    @property
    def waived(self) -> bool:
        return self.waiver is not None


@dataclass(frozen=True)
class ReviewReport:
    changes: tuple[KeyChange, ...]
    findings: tuple[ReviewFinding, ...]
    base_ref: str = ""
    head_ref: str = ""
    format_version: int = 1
    rules: Mapping[str, Rule] = field(default_factory=dict)  # every rule that ran

    def blocking(self, fail_on: Severity) -> list[ReviewFinding]:
        """Unwaived findings at or above ``fail_on`` on keys this change touches.

        Findings on keys the change leaves alone are shown, but never block a pull
        request that did not cause them (waive or fix them in a change of their own)."""
        return [f for f in self.findings if f.introduced and not f.waived and f.severity >= fail_on]

    @property
    def changed(self) -> list[KeyChange]:
        return [c for c in self.changes if c.kind != "unchanged" or c.policy_text_changed]


# -- comparing ----------------------------------------------------------------------------


def _state_value(state: KeyState, name: str) -> Any:
    value = getattr(state, name)
    if name == "grants":  # declared grants, by name: what each allows
        return sorted(f"{g.name}: {g.text}" for g in value or ())
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, Mapping):
        return dict(sorted(value.items()))
    return value


def compare(base: Sequence[DesiredTarget], head: Sequence[DesiredTarget]) -> list[KeyChange]:
    """Pair every (target, key) of base and head; unchanged keys are included."""
    base_by = {dt.target.name: dt for dt in base}
    head_by = {dt.target.name: dt for dt in head}
    out: list[KeyChange] = []
    for target_name in [*head_by, *(n for n in base_by if n not in head_by)]:
        b_dt, h_dt = base_by.get(target_name), head_by.get(target_name)
        target = (h_dt or b_dt).target  # type: ignore[union-attr]
        b_keys = _with_replicas(b_dt.keys if b_dt else ())
        h_keys = _with_replicas(h_dt.keys if h_dt else ())
        for name in [*h_keys, *(n for n in b_keys if n not in h_keys)]:
            out.append(_pair(target, name, b_keys.get(name), h_keys.get(name)))
    return out


def _with_replicas(keys: Iterable[DesiredKey]) -> dict[str, DesiredKey]:
    """The keys by name, and each multi-Region key's replicas as keys of their own, named
    ``NAME@REGION``: a replica has its own policy (rendered for its Region, or its own
    template), so the same rules review it."""
    out: dict[str, DesiredKey] = {}
    for key in keys:
        out[key.name] = key
        for replica in key.replicas:
            out[f"{key.name}@{replica.region}"] = replace(
                key,
                state=replace(replica.state, name=f"{key.name}@{replica.region}"),
                policy_text=replica.policy_text,
                source=replace(
                    key.source,
                    policy_origin=replica.policy_origin,
                    policy_file=replica.policy_file,
                ),
                replicas=(),
            )
    return out


# Settings of the key spec that are not part of the key's state but change what apply may
# do (bypass the lockout check, take aliases, revoke grants, how long a deletion waits) or
# what review accepts (waivers): a change to one is a change of the key (KMS111).
SPEC_FIELDS = (
    "bypass_policy_lockout_safety_check",
    "deletion_window_days",
    "grants_purge",
    "allow_alias_takeover",
    "waivers",
)


def _spec_value(key: DesiredKey, name: str) -> Any:
    value = getattr(key, name)
    if name == "waivers":
        return sorted(f"{w.rule} until {w.expires} ({w.owner}): {w.reason}" for w in value)
    return value


def _spec_fields(base: DesiredKey, head: DesiredKey) -> list[FieldDiff]:
    out = []
    for name in SPEC_FIELDS:
        before, after = _spec_value(base, name), _spec_value(head, name)
        if before != after:
            out.append(FieldDiff(name, before, after))
    return out


def _family_fields(base: DesiredKey, head: DesiredKey) -> list[FieldDiff]:
    """What a multi-Region key declares beyond its state: replica Regions, primary."""
    out = []
    before = sorted(r.region for r in base.replicas)
    after = sorted(r.region for r in head.replicas)
    if before != after:
        out.append(FieldDiff("replica_regions", before, after))
    if base.primary_region != head.primary_region:
        out.append(FieldDiff("primary_region", base.primary_region, head.primary_region))
    return out


def _pair(
    target: TargetInfo, name: str, base: DesiredKey | None, head: DesiredKey | None
) -> KeyChange:
    fields: list[FieldDiff] = []
    if base is not None and head is not None:
        for f in _FIELDS:
            before, after = _state_value(base.state, f), _state_value(head.state, f)
            if before != after:
                fields.append(FieldDiff(f, before, after))
        fields += _family_fields(base, head)
        fields += _spec_fields(base, head)
    before_policy = base.state.policy if base else None
    after_policy = head.state.policy if head else None
    partition = target.partition
    return KeyChange(
        target=target,
        name=name,
        base=base,
        head=head,
        fields=tuple(fields),
        access=access_changes(
            before_policy,
            after_policy,
            partition=partition,
            account_id=target.account_id,
            region=name.partition("@")[2] or target.region,  # a replica is NAME@REGION
        ),
        statements=diff_statements(before_policy, after_policy, partition=partition),
    )


def context_for(desired: DesiredTarget) -> Context:
    return Context(
        account_id=desired.target.account_id,
        partition=desired.target.partition,
        trusted_accounts=desired.trusted_accounts,
        organization_ids=desired.organization_ids,
        admin_principals=desired.admin_principals,
        deployer_arns=desired.deployer_arns,
        fan_out_threshold=desired.fan_out_threshold,
        require_deny_on_bypass=desired.require_deny_on_bypass,
    )


def canonical_policy_diff(change: KeyChange) -> str:
    """A unified diff of the canonical JSON of both policies (empty when equal)."""

    def text(key: DesiredKey | None) -> list[str]:
        if key is None or key.state.policy is None:
            return []
        doc = canonicalize(key.state.policy, partition=change.target.partition)
        return json.dumps(doc, indent=2, sort_keys=True).splitlines()

    where = f"{change.target.name}/{change.name}"
    return "\n".join(
        difflib.unified_diff(
            text(change.base), text(change.head), f"base {where}", f"head {where}", lineterm=""
        )
    )


# -- reviewing ----------------------------------------------------------------------------

Locate = Callable[[KeyChange, str | None], tuple[str | None, int | None]]


def _default_locate(change: KeyChange, sid: str | None) -> tuple[str | None, int | None]:
    source = change.current.source
    return source.file, source.line


def review(
    changes: Sequence[KeyChange],
    contexts: Mapping[str, Context],
    rules: Sequence[RuleModule],
    batch_rules: Sequence[BatchRuleModule] = (),
    *,
    today: date,
    locate: Locate = _default_locate,
    base_ref: str = "",
    head_ref: str = "",
) -> ReviewReport:
    """Run every rule over every key change; waivers from the head spec apply.

    A finding is *introduced* when the change touches the key and the same finding does
    not already hold for the base version of the key (rules are run on it too): only
    introduced findings block, so a pull request is not held up by what it did not cause.
    """
    subjects = [Subject(c, contexts[c.target.name]) for c in changes]
    raw: list[tuple[Subject, Rule, Hit]] = []
    before: set[tuple[str, str, str, str]] = set()  # (target, key, rule, message) on base
    for subject in subjects:
        for rule in rules:
            raw.extend((subject, rule.RULE, hit) for hit in rule.check(subject))
        change = subject.change
        if change.base is not None and change.kind != "unchanged":
            as_it_was = Subject(
                _pair(change.target, change.name, change.base, change.base), subject.context
            )
            for rule in rules:
                before.update(
                    (change.target.name, change.name, rule.RULE.id, hit.message)
                    for hit in rule.check(as_it_was)
                )
    for batch in batch_rules:
        raw.extend((subject, batch.RULE, hit) for subject, hit in batch.check_all(subjects))
    findings = [
        _finding(
            s,
            rule,
            hit,
            today,
            locate,
            introduced=s.change.kind != "unchanged"
            and (s.change.target.name, s.change.name, rule.id, hit.message) not in before,
        )
        for s, rule, hit in raw
    ]
    table = {m.RULE.id: m.RULE for m in rules}
    table.update((m.RULE.id, m.RULE) for m in batch_rules)
    return ReviewReport(
        tuple(changes), _sorted(findings), base_ref, head_ref, rules={**table, **_LIVE}
    )


def _sorted(findings: Iterable[ReviewFinding]) -> tuple[ReviewFinding, ...]:
    return tuple(
        sorted(
            findings,
            key=lambda f: (
                not f.introduced,
                f.waived,
                -f.severity,
                f.target,
                f.key or "",
                f.rule.id,
                f.message,
            ),
        )
    )


# -- grants that keep what the policy takes away ------------------------------------------


@dataclass(frozen=True)
class OutlivingGrant:
    """A grant on a key whose grantee loses, in the policy, operations the grant still
    allows: KMS evaluates grants beside the key policy, so the grantee keeps them."""

    grant: Grant
    access: AccessChange  # the engine's proof of what the policy takes away
    operations: tuple[str, ...]  # the grant's operations among the lost actions ("Decrypt")


def account_of(principal: str) -> str | None:
    """The account of an ``AWS:`` principal string (ARN or ID), else None."""
    value = principal.removeprefix("AWS:")
    if value.isdigit() and len(value) == 12:
        return value
    parts = value.split(":")
    if len(parts) >= 5 and parts[0] == "arn" and parts[4].isdigit():
        return parts[4]
    return None


def _grantee_covered(principal: str, grant: Grant) -> bool:
    """The access change's principal includes the grant's grantee: the same principal, its
    account (root or account ID), or "*"."""
    if principal == "*":
        return True
    if grant.grantee_service_principal and not grant.grantee_principal:
        return principal == f"Service:{grant.grantee_service_principal}"
    grantee = grant.grantee_principal
    if principal.startswith("NotPrincipal:"):
        return f"AWS:{grantee}" not in principal.removeprefix("NotPrincipal:").split(",")
    value = principal.removeprefix("AWS:")
    if value == grantee:
        return True
    # the account itself (its ID or root ARN) covers its principals; a role does not
    account = account_of(value) if value.isdigit() or value.endswith(":root") else None
    return account is not None and account_of(grantee) == account


def outliving_grants(
    access: Iterable[AccessChange], grants: Iterable[Grant]
) -> list[OutlivingGrant]:
    """The grants whose grantee loses, by the policy, some operation the grant allows."""
    out = []
    lost = [a for a in access if a.lost]
    for grant in grants:
        for change in lost:
            ops = tuple(op for op in grant.operations if f"kms:{op}" in change.lost)
            if ops and _grantee_covered(change.principal, grant):
                out.append(OutlivingGrant(grant, change, ops))
                break
    return out


# -- --live: what merging would overwrite -------------------------------------------------

LIVE_DRIFT_RULE = Rule(
    id="KMS201",
    severity=Severity.HIGH,
    title="Merging overwrites a live policy change",
    rationale=(
        "The key's live policy differs from what the base branch declares: someone changed "
        "it outside the repository. Applying this change would silently undo that."
    ),
)
LIVE_GRANT_RULE = Rule(
    id="KMS202",
    severity=Severity.HIGH,
    title="A live grant keeps access the change removes",
    rationale=(
        "KMS allows a request when the key policy, an IAM policy it delegates to, or a grant "
        "allows it. The change takes an operation away from a principal in the key policy, "
        "but a grant on the live key gives that operation to the same principal (or to one "
        "in the account that loses it): after the merge the principal keeps it. Retire or "
        "revoke the grant, declare it and set grants_purge so apply revokes what is not "
        "declared, or say why it stays."
    ),
)
_LIVE = {r.id: r for r in (LIVE_DRIFT_RULE, LIVE_GRANT_RULE)}


def grants_to_read(changes: Sequence[KeyChange]) -> dict[str, frozenset[str]]:
    """Per target, the keys whose live grants ``--live`` reads: those the change takes
    policy access from (a replica ``NAME@REGION`` is read as its own key in its Region
    only by drift; here the primary Region's key)."""
    out: dict[str, set[str]] = {}
    for change in changes:
        pair = change.base is not None and change.head is not None and "@" not in change.name
        if pair and any(a.lost for a in change.access):
            out.setdefault(change.target.name, set()).add(change.name)
    return {target: frozenset(names) for target, names in out.items()}


def live_findings(
    changes: Sequence[KeyChange],
    live_policies: Mapping[tuple[str, str], Mapping[str, Any] | None],
    locate: Locate = _default_locate,
    live_grants: Mapping[tuple[str, str], Sequence[Grant]] | None = None,
) -> list[ReviewFinding]:
    """For keys the change touches: the live policy (by (target, key)) differs from base
    (KMS201), and a live grant keeps an operation the change takes away (KMS202).

    ``live_policies`` holds the managed keys read from KMS; a key absent from it does not
    exist yet and has nothing to overwrite. ``live_grants`` holds the grants read for the
    keys ``grants_to_read`` names.
    """
    out = [
        finding
        for change in changes
        for finding in _grant_findings(change, (live_grants or {}).get(key_of(change)), locate)
    ]
    for change in changes:
        if change.base is None or change.head is None:
            continue
        if change.kind == "unchanged" and not change.policy_text_changed:
            continue  # the merge does not write this key's policy
        live = live_policies.get(key_of(change))
        base_policy = change.base.state.policy
        if live is None or base_policy is None:
            continue
        drift = access_changes(base_policy, live, partition=change.target.partition)
        if not drift and not diff_statements(base_policy, live, partition=change.target.partition):
            continue
        file, line = locate(change, None)
        details = [
            f"{a.principal}: live has {', '.join(sorted(a.gained)) or '-'} more, "
            f"{', '.join(sorted(a.lost)) or '-'} less than the base"
            + (f" ({a.witness})" if a.witness else "")
            for a in drift
        ]
        out.append(
            ReviewFinding(
                rule=LIVE_DRIFT_RULE,
                severity=LIVE_DRIFT_RULE.severity,
                message=f"the live policy of '{change.name}' differs from the base branch; "
                "merging this change overwrites that out-of-band change",
                target=change.target.name,
                key=change.name,
                file=file,
                line=line,
                details=tuple(details) or ("the difference does not change access",),
            )
        )
    return out


def key_of(change: KeyChange) -> tuple[str, str]:
    return change.target.name, change.name


def _grant_findings(
    change: KeyChange, grants: Sequence[Grant] | None, locate: Locate
) -> list[ReviewFinding]:
    if not grants or change.head is None:
        return []
    declared = set(change.head.state.grants or ())
    out = []
    for found in outliving_grants(change.access, grants):
        grant = found.grant
        if grant not in declared and change.head.grants_purge:
            continue  # apply revokes it: grants_purge is on and no spec declares it
        why = (
            "the head still declares it"
            if grant in declared
            else "no spec declares it and grants_purge is off, so apply leaves it"
        )
        file, line = locate(change, None)
        out.append(
            ReviewFinding(
                rule=LIVE_GRANT_RULE,
                severity=LIVE_GRANT_RULE.severity,
                message=f"key {change.name}: the change takes {', '.join(found.operations)} "
                f"away from {found.access.principal} in the policy, but live grant "
                f"{grant.grant_id or grant.label} still allows it ({why})",
                target=change.target.name,
                key=change.name,
                file=file,
                line=line,
                details=(
                    f"grant {grant.grant_id or '?'}"
                    + (f" '{grant.name}'" if grant.name else "")
                    + f": {grant.text}",
                    *([found.access.witness] if found.access.witness else []),
                ),
            )
        )
    return out


def with_findings(report: ReviewReport, extra: Iterable[ReviewFinding]) -> ReviewReport:
    return replace(report, findings=_sorted([*report.findings, *extra]))


def _finding(
    subject: Subject, rule: Rule, hit: Hit, today: date, locate: Locate, *, introduced: bool
) -> ReviewFinding:
    change = subject.change
    file, line = locate(change, hit.sid)
    waiver = expired = None
    for w in change.head.waivers if change.head and hit.waivable else ():
        if w.rule == rule.id:
            if w.expires >= today:
                waiver = w
            else:
                expired = w
    details = hit.details
    if expired is not None and waiver is None:
        details = (
            *details,
            f"waiver by {expired.owner} expired on {expired.expires}: {expired.reason}",
        )
    return ReviewFinding(
        rule=rule,
        severity=hit.severity if hit.severity is not None else rule.severity,
        message=hit.message,
        target=change.target.name,
        key=change.name,
        file=file,
        line=line,
        details=details,
        waiver=waiver,
        expired_waiver=expired if waiver is None else None,
        introduced=introduced,
    )
