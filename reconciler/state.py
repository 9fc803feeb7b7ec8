"""The comparable shape of a key (``KeyState``), what is desired and what is observed.

Desired state is built from the specs (``desired``), observed state is read from KMS
(``observe``); both end as ``KeyState`` so the planner compares like with like.
Pure values, no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any

from reconciler import catalog
from reconciler.policy import Canonicals


@dataclass(frozen=True)
class TargetInfo:
    """One (account, Region) to reconcile."""

    name: str
    account_id: str
    region: str
    role_arn: str | None = None  # the last role of the chain (kept for reports)
    partition: str = "aws"
    profile: str | None = None
    role_chain: tuple[str, ...] = ()
    external_id: str | None = None
    session_name: str | None = None
    session_duration_seconds: int | None = None
    # the read-only role chain of plan, drift, import and review --live (empty: role_chain)
    plan_role_chain: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} ({self.account_id}/{self.region})"


Context = tuple[tuple[str, str], ...]  # an encryption context, as sorted (key, value) pairs


@dataclass(frozen=True)
class Grant:
    """One grant in comparable form.

    Equality and hashing use the content only (grantee, sorted operations, retiring
    principal, constraints), never the name or ID: KMS cannot update a grant, and moto
    does not keep names idempotent, so an existing grant matches a declared one by what it
    allows. ``grant_id`` and ``name`` say which existing grant it is.
    """

    grantee_principal: str
    operations: tuple[str, ...]
    retiring_principal: str | None = None
    encryption_context_equals: Context | None = None
    encryption_context_subset: Context | None = None
    name: str = field(default="", compare=False)
    grant_id: str | None = field(default=None, compare=False)
    # Grants with no GranteePrincipal but a GranteeServicePrincipal (newer KMS API).
    grantee_service_principal: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", tuple(sorted(set(self.operations))))
        for name in ("encryption_context_equals", "encryption_context_subset"):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(sorted(value)) if value else None)

    @classmethod
    def of(
        cls,
        grantee_principal: str,
        operations: Iterable[str],
        retiring_principal: str | None = None,
        *,
        equals: Mapping[str, str] | None = None,
        subset: Mapping[str, str] | None = None,
        name: str = "",
        grant_id: str | None = None,
    ) -> Grant:
        return cls(
            grantee_principal,
            tuple(operations),
            retiring_principal or None,
            tuple(equals.items()) if equals else None,
            tuple(subset.items()) if subset else None,
            name=name,
            grant_id=grant_id,
        )

    @property
    def label(self) -> str:
        """How the plan names it: the name, else the grant ID."""
        return self.name or self.grant_id or "?"

    @property
    def constraints(self) -> dict[str, dict[str, str]] | None:
        """The Constraints parameter of CreateGrant (None when unconstrained)."""
        out = {}
        if self.encryption_context_equals:
            out["EncryptionContextEquals"] = dict(self.encryption_context_equals)
        if self.encryption_context_subset:
            out["EncryptionContextSubset"] = dict(self.encryption_context_subset)
        return out or None

    @property
    def text(self) -> str:
        """One line: ``Decrypt, Encrypt to arn:...`` with the retiring principal and
        constraints when there are any."""
        grantee = self.grantee_principal or self.grantee_service_principal or "?"
        out = f"{', '.join(self.operations)} to {grantee}"
        if self.retiring_principal:
            out += f"; retiring principal {self.retiring_principal}"
        for what, pairs in (
            ("equals", self.encryption_context_equals),
            ("includes", self.encryption_context_subset),
        ):
            if pairs:
                out += f"; encryption context {what} " + ", ".join(f"{k}={v}" for k, v in pairs)
        return out

    @property
    def sensitive(self) -> bool:
        """Whether it allows reading data, acting as the key, or passing access on."""
        return bool(catalog.GRANT_SENSITIVE_OPERATIONS.intersection(self.operations))

    @property
    def for_aws_service(self) -> bool:
        """A grant an AWS service made for its own resource: never declared, never revoked.

        Recognised by (1) a service principal as grantee or retiring principal (ListGrants
        shows ``rds.us-east-1.amazonaws.com``, or a GranteeServicePrincipal field, when an
        AWS service is the grantee); (2) a grantee that is a session of a role named
        ``aws:...`` (IAM role names cannot contain ':', so only AWS has them: EBS attaches
        volumes as ``assumed-role/aws:ec2-infrastructure/i-...``, the KMS guide's
        "Examining grants" example); (3) a constraint on an encryption context key that
        starts with ``aws:`` (the context AWS services set, such as ``aws:ebs:id``).
        Service-linked roles (``role/aws-service-role/...``) are not enough: the AWS guides
        tell users to create grants for them (EBS encryption with Auto Scaling).
        """
        if self.grantee_service_principal:
            return True
        for principal in (self.grantee_principal, self.retiring_principal):
            if principal and catalog.SERVICE_PRINCIPAL.match(principal):
                return True
        if ":assumed-role/aws:" in self.grantee_principal:
            return True
        pairs = (*(self.encryption_context_equals or ()), *(self.encryption_context_subset or ()))
        return any(k.lower().startswith("aws:") for k, _ in pairs)


@dataclass(frozen=True)
class KeyState:
    """Everything the tool manages about one key, in one comparable shape.

    ``None`` means unknown (not readable, or not applicable) and never counts as a change.
    """

    name: str
    description: str
    key_spec: str
    key_usage: str
    origin: str
    multi_region: bool
    enabled: bool
    rotation_enabled: bool | None
    rotation_period_days: int | None
    tags: Mapping[str, str]
    aliases: frozenset[str]
    policy: Mapping[str, Any] | None
    deletion_protection: bool
    # Declared grants (desired) or every grant on the key (observed); None: not read.
    grants: tuple[Grant, ...] | None = None
    # Keys in a custom key store (origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE): the store and,
    # for an external key store, the external key's ID. Immutable, like origin.
    custom_key_store_id: str | None = None
    xks_key_id: str | None = None


@dataclass(frozen=True)
class SourceRef:
    """Where a desired key is declared, for messages and reports."""

    file: str
    line: int
    policy_origin: str = ""
    policy_file: str | None = None


@dataclass(frozen=True)
class Waiver:
    """A review finding accepted for a key: rule ID, why, who owns it, until when."""

    rule: str
    reason: str
    owner: str
    expires: date


@dataclass(frozen=True)
class KeyMaterial:
    """Where an EXTERNAL key's material is read at apply time. Never the material itself.

    ``source`` is ``file <path relative to root>`` or ``env <VARIABLE>``; ``root`` is the
    inventory directory the file path is relative to.
    """

    source: str
    expiration_model: str = "KEY_MATERIAL_DOES_NOT_EXPIRE"
    valid_to: datetime | None = None
    root: str = "."
    encoding: str | None = None  # binary, base64 or hex; None: by the source's kind
    deleted: bool = False  # the material is to be deleted (DeleteImportedKeyMaterial)
    version: str | None = None  # KeyMaterialDescription; a new one rotates (symmetric keys)


@dataclass(frozen=True)
class MaterialVersion:
    """One version of an EXTERNAL key's imported material (ListKeyRotations with
    IncludeKeyMaterial ALL_KEY_MATERIAL). ``version`` is its KeyMaterialDescription: the
    tool writes the spec's ``key_material.version`` there."""

    material_id: str
    version: str | None
    state: str  # CURRENT, NON_CURRENT or PENDING_ROTATION
    imported: bool  # ImportState IMPORTED (False: PENDING_IMPORT, deleted or expired)
    valid_to: datetime | None = None
    rotated: datetime | None = None

    @property
    def label(self) -> str:
        return self.version or f"id {self.material_id[:12]}"


@dataclass(frozen=True)
class DesiredReplica:
    """One replica of a multi-Region key, in a Region other than the target's.

    ``state`` holds what KMS keeps per replica (description, enabled, tags, aliases,
    policy); the shared properties (key spec, usage, origin, rotation) are the key's own.
    """

    region: str
    state: KeyState
    policy_text: str
    policy_origin: str = ""
    policy_file: str | None = None  # the template or document file, when there is one


@dataclass(frozen=True)
class Retirement:
    """A spec's ``retire:``: when to disable the key (on a date, or after so many days with
    no recorded use), and how many days it stays disabled, unused, before plans offer its
    deletion. Where a retirement stands is read from KMS (``reconciler.retire``)."""

    disable_on: date | None = None
    after_unused_days: int | None = None
    observe_days: int = catalog.RETIRE_OBSERVE_DAYS_DEFAULT

    @property
    def trigger(self) -> str:
        """How the spec says it, for plans: 'disable_on 2027-01-15', 'after_unused_days 90'."""
        if self.disable_on is not None:
            return f"disable_on {self.disable_on.isoformat()}"
        return f"after_unused_days {self.after_unused_days}"


@dataclass(frozen=True)
class DesiredKey:
    state: KeyState
    deletion_window_days: int
    source: SourceRef
    policy_text: str  # the exact JSON sent to KMS
    adopt: str | None = None
    grants_purge: bool = False  # revoke grants on the key that no spec declares
    allow_alias_takeover: bool = False
    bypass_policy_lockout_safety_check: bool = False
    waivers: tuple[Waiver, ...] = ()
    key_material: KeyMaterial | None = None  # EXTERNAL keys: imported at apply time
    replicas: tuple[DesiredReplica, ...] = ()  # multi-Region keys: the other Regions
    primary_region: str | None = None  # multi-Region keys: where the primary key is
    retire: Retirement | None = None  # staged retirement, when the spec declares it

    @property
    def name(self) -> str:
        return self.state.name


@dataclass(frozen=True)
class DesiredTarget:
    target: TargetInfo
    keys: tuple[DesiredKey, ...]
    identity_tag: str
    admin_principals: tuple[str, ...] = ()
    default_deletion_window_days: int = catalog.DELETION_WINDOW_DEFAULT
    trusted_accounts: frozenset[str] = frozenset()
    organization_ids: frozenset[str] = frozenset()
    # inventory.yaml `review:` settings (the review rules read them through its Context)
    deployer_arns: tuple[str, ...] = ()
    fan_out_threshold: int = 5
    require_deny_on_bypass: bool = False

    @property
    def replica_regions(self) -> tuple[str, ...]:
        """Every Region other than the target's where a desired key has a replica."""
        return tuple(sorted({r.region for k in self.keys for r in k.replicas}))

    @property
    def grants_needed(self) -> frozenset[str]:
        """The keys whose grants a plan must read: they declare grants or purge them."""
        return frozenset(k.name for k in self.keys if k.state.grants or k.grants_purge)

    @property
    def protection_tag(self) -> str:
        return protection_tag(self.identity_tag)


def _tag_prefix(identity_tag: str) -> str:
    return identity_tag.rsplit(":", 1)[0] if ":" in identity_tag else identity_tag


@cache  # a pure function of the inventory's identity tag, asked per key
def protection_tag(identity_tag: str) -> str:
    """The tag that records deletion protection on the key itself, beside the identity tag."""
    return _tag_prefix(identity_tag) + catalog.PROTECTION_TAG_SUFFIX


@cache  # a pure function of the inventory's identity tag, asked per key
def replica_tag(identity_tag: str) -> str:
    """The tag on a multi-Region key's members outside the target's Region (value: the
    key's name). Not the identity tag: a target of that Region must not take the member
    for a key of its own, or for its orphan."""
    return _tag_prefix(identity_tag) + catalog.REPLICA_TAG_SUFFIX


@cache  # a pure function of the inventory's identity tag, asked per key
def retire_tag(identity_tag: str) -> str:
    """The tag the tool writes when it disables a key to retire it (value: when, as an ISO
    8601 UTC time); the retirement's observation period counts from it."""
    return _tag_prefix(identity_tag) + catalog.RETIRE_TAG_SUFFIX


@cache  # a pure function of the inventory's identity tag, asked per key
def tool_tags(identity_tag: str) -> frozenset[str]:
    """The tags the tool itself keeps on keys (never part of a spec's tags)."""
    return frozenset(
        {
            identity_tag,
            protection_tag(identity_tag),
            replica_tag(identity_tag),
            retire_tag(identity_tag),
        }
    )


@dataclass(frozen=True)
class ObservedKey:
    """A customer key as KMS reports it. Fields the tool did not read are ``None``."""

    key_id: str
    arn: str
    tags: Mapping[str, str]
    key_manager: str = "CUSTOMER"
    key_state: str | None = None  # Enabled, Disabled, PendingDeletion, PendingImport, ...
    description: str | None = None
    key_spec: str | None = None
    key_usage: str | None = None
    origin: str | None = None
    multi_region: bool | None = None
    enabled: bool | None = None
    rotation_enabled: bool | None = None
    rotation_period_days: int | None = None
    policy: Mapping[str, Any] | None = None
    aliases: frozenset[str] = frozenset()
    deletion_date: datetime | None = None
    creation_date: datetime | None = None
    next_rotation_date: datetime | None = None  # GetKeyRotationStatus (real KMS only)
    last_rotation_date: datetime | None = None  # ListKeyRotations, when read
    on_demand_rotations: int | None = None  # ListKeyRotations, when read
    rotations: int | None = None  # every rotation so far (ListKeyRotations), when read
    grants: tuple[Grant, ...] | None = None  # ListGrants (managed keys only), when read
    # EXTERNAL keys: every version of the imported material, when read (ListKeyRotations).
    materials: tuple[MaterialVersion, ...] | None = None
    # DescribeKey's CustomKeyStoreId and XksKeyConfiguration.Id (custom key store keys).
    custom_key_store_id: str | None = None
    xks_key_id: str | None = None
    # EXTERNAL keys: DescribeKey's ExpirationModel / ValidTo (moto omits them: unknown).
    expiration_model: str | None = None
    valid_to: datetime | None = None
    # Multi-Region keys (DescribeKey's MultiRegionConfiguration).
    region: str | None = None  # None: the target's Region
    multi_region_type: str | None = None  # PRIMARY or REPLICA
    primary_region: str | None = None
    member_regions: tuple[str, ...] = ()  # every Region of the family, primary first
    # The family's members in other Regions, as read there (multi-Region keys we own).
    replicas: Mapping[str, ObservedKey] = field(default_factory=dict)

    @property
    def needs_key_material(self) -> bool:
        """An EXTERNAL key without usable material: PendingImport (or its material expired)."""
        return self.key_state == "PendingImport"

    def name(self, identity_tag: str) -> str | None:
        return self.tags.get(identity_tag)

    @property
    def pending_deletion(self) -> bool:
        return self.key_state in ("PendingDeletion", "PendingReplicaDeletion")

    def as_state(self, identity_tag: str) -> KeyState:
        """This key in the comparable shape, without the tool's own tags."""
        ours = tool_tags(identity_tag)
        return KeyState(
            name=self.tags.get(identity_tag, ""),
            description=self.description or "",
            key_spec=self.key_spec or catalog.SYMMETRIC_DEFAULT,
            key_usage=self.key_usage or catalog.ENCRYPT_DECRYPT,
            origin=self.origin or catalog.ORIGIN_AWS_KMS,
            multi_region=bool(self.multi_region),
            enabled=self.key_state == "Enabled" if self.key_state else bool(self.enabled),
            rotation_enabled=self.rotation_enabled,
            rotation_period_days=self.rotation_period_days,
            tags={
                k: v
                for k, v in self.tags.items()
                if k not in ours and not k.lower().startswith("aws:")
            },
            aliases=self.aliases,
            policy=self.policy,
            deletion_protection=self.tags.get(protection_tag(identity_tag)) == "true",
            grants=self.grants,
            custom_key_store_id=self.custom_key_store_id,
            xks_key_id=self.xks_key_id,
        )


@dataclass(frozen=True)
class KeyUsage:
    """A key's last cryptographic use as GetKeyLastUsage reported it at ``read_at``.

    ``error`` is the error code when it could not be read (AccessDeniedException: the
    caller lacks kms:GetKeyLastUsage); then every other field but the key's is unknown.
    ``operation`` and ``last_used`` are None when no use was recorded since
    ``tracking_start`` (the later of the day KMS began tracking and the key's creation).
    """

    key_id: str
    read_at: datetime
    region: str | None = None  # None: the target's Region (replicas track use apart)
    operation: str | None = None
    last_used: datetime | None = None
    tracking_start: datetime | None = None
    created: datetime | None = None
    error: str = ""

    @property
    def known(self) -> bool:
        return not self.error

    def idle_days(self) -> int | None:
        """Whole days without recorded use at ``read_at`` (since the last use, or since
        tracking started); None when unknown."""
        since = self.last_used or self.tracking_start
        if self.error or since is None:
            return None
        return max(0, (self.read_at - since).days)

    def tracked_before_creation(self) -> bool:
        """Whether tracking covers the key's whole life (it was created after KMS began
        tracking), so no recorded use means never used."""
        return (
            self.created is not None
            and self.tracking_start is not None
            and self.created >= self.tracking_start
        )

    def describe(self) -> str:
        """One phrase for a plan entry: 'last used 3 days ago: Decrypt', ..."""
        if self.error:
            if self.error == "AccessDeniedException":
                return "unknown: not permitted (kms:GetKeyLastUsage)"
            return f"unknown: GetKeyLastUsage answered {self.error}"
        if self.last_used is not None:
            days = self.idle_days() or 0
            ago = (
                "less than a day ago"
                if days == 0
                else "1 day ago"
                if days == 1
                else f"{days} days ago"
            )
            return f"last used {ago}: {self.operation or 'an unknown operation'}"
        if self.tracking_start is None:
            return "no use recorded"
        since = self.tracking_start.strftime("%Y-%m-%d")
        if self.tracked_before_creation():
            return f"no use recorded since its creation on {since}"
        return f"no use recorded since tracking began on {since}"


@dataclass(frozen=True)
class RotationInfo:
    """Where a managed key stands in its rotation (details, not drift): last rotation and
    on-demand count from ListKeyRotations, next rotation from GetKeyRotationStatus."""

    key: str
    key_id: str
    enabled: bool | None
    period_days: int | None
    last: datetime | None
    next: datetime | None
    on_demand: int | None

    @classmethod
    def of(cls, key: ObservedKey, name: str) -> RotationInfo:
        return cls(
            key=name,
            key_id=key.key_id,
            enabled=key.rotation_enabled,
            period_days=key.rotation_period_days,
            last=key.last_rotation_date,
            next=key.next_rotation_date,
            on_demand=key.on_demand_rotations,
        )


@dataclass(frozen=True)
class ObservedTarget:
    """What one target holds: the customer keys read, and every alias of the account."""

    target: TargetInfo
    keys: tuple[ObservedKey, ...]
    aliases: Mapping[str, str | None]  # alias name -> target key ID (None: not yet used)
    caller_arn: str = ""
    # The aliases of the other Regions the plan needs (replica Regions): Region -> aliases.
    region_aliases: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    aws_managed_key_ids: frozenset[str] = frozenset()
    read_calls: int = 0
    stats: Mapping[str, int] = field(default_factory=dict)
    # Customer keys that could not be read (key ID -> "Operation: ErrorCode"): maybe ours,
    # maybe not. Never taken for unmanaged keys; the planner creates no key while one is.
    unreadable: Mapping[str, str] = field(default_factory=dict)

    def by_id(self) -> dict[str, ObservedKey]:
        return {key.key_id: key for key in self.keys}

    @property
    def lock(self) -> LockStatus | None:
        """The apply lock, when a run holds it (read from ListAliases and the anchor's tags,
        which every observation reads anyway)."""
        anchor_id = self.aliases.get(catalog.LOCK_ALIAS, "")
        if catalog.LOCK_ALIAS not in self.aliases:
            return None
        anchor = next((k for k in self.keys if k.key_id == anchor_id), None)
        return LockStatus.of(anchor_id or "", anchor.tags if anchor is not None else {})


@dataclass(frozen=True)
class LockStatus:
    """Who holds a target's apply lock: the lock ID, holder and time it recorded (empty
    when the holder has not recorded itself yet, or crashed before it could)."""

    anchor_id: str
    lock_id: str = ""
    holder: str = ""
    since: str = ""

    @classmethod
    def of(cls, anchor_id: str, tags: Mapping[str, str]) -> LockStatus:
        return cls(
            anchor_id,
            tags.get(catalog.LOCK_ID_TAG, ""),
            tags.get(catalog.LOCK_HOLDER_TAG, ""),
            tags.get(catalog.LOCK_SINCE_TAG, ""),
        )

    def __str__(self) -> str:
        if not self.lock_id:
            return "held by a run that has not recorded itself (lock ID unknown)"
        holder = self.holder or "an unknown holder"
        return f"held by {holder} since {self.since} (lock ID {self.lock_id})"


def is_lock_anchor(key: ObservedKey) -> bool:
    """The key that the apply lock's alias points at (never reported, never imported)."""
    return catalog.LOCK_ANCHOR_TAG in key.tags


def tool_alias(alias: str) -> bool:
    """An alias the tool keeps for itself (the apply lock): never declared, never drift."""
    return alias.startswith(catalog.TOOL_ALIAS_PREFIX)


def _digest(
    key: ObservedKey, identity_tag: str, with_grants: set[str] | None, canon: Canonicals
) -> dict[str, Any]:
    """One key (and its replicas) in the fingerprint: what ``as_state`` would give."""
    name = key.tags.get(identity_tag, "")
    return {
        "key_id": key.key_id,
        "key_state": key.key_state,
        "name": name,
        "description": key.description or "",
        "enabled": key.key_state == "Enabled" if key.key_state else bool(key.enabled),
        "rotation": [key.rotation_enabled, key.rotation_period_days],
        # the encoder sorts every object's keys: a dict as it is (any other Mapping copied)
        "tags": key.tags if type(key.tags) is dict else dict(key.tags),
        "aliases": sorted(key.aliases),
        "policy": canon.json(key.policy) if key.policy is not None else None,
        "grants": None
        if key.grants is None or (with_grants is not None and name not in with_grants)
        else sorted(
            [g.grant_id or "", g.name, g.text, g.grantee_service_principal or ""]
            for g in key.grants
        ),
        "primary_region": key.primary_region,
        "members": list(key.member_regions),
        "replicas": {
            region: _digest(r, identity_tag, with_grants, canon)
            for region, r in sorted(key.replicas.items())
        },
    }


# The fingerprint's JSON (compact, sorted keys): one encoder for every piece of it.
_FINGERPRINT_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def fingerprint(
    observed: ObservedTarget,
    identity_tag: str,
    also: Iterable[str] = (),
    grants_for: Iterable[str] | None = None,
    canonicals: Canonicals | None = None,
) -> str:
    """A digest of the observed state a plan depends on: managed keys, the keys in ``also``
    (those the plan adopts), every alias, and the grants of the keys named in
    ``grants_for`` (those the plan read; None: every key's grants that were read).

    A saved plan carries it; apply observes again and refuses the plan when it differs.
    ``canonicals``: the plan's memo of canonical policies (each is then computed once).

    The digest is the SHA-256 of one JSON document (compact, sorted keys)::

        {"account", "aliases", "managed": [one object per key, by key ID], "region",
         "region_aliases"[, "unreadable"]}

    hashed piece by piece, each key's object as it is made, so that no text of the whole
    (about 1 KB a key) is ever held.
    """
    canon = canonicals or Canonicals(observed.target.partition)
    extra = set(also)
    with_grants = None if grants_for is None else set(grants_for)
    encode = _FINGERPRINT_JSON

    managed = sorted(
        (key for key in observed.keys if identity_tag in key.tags or key.key_id in extra),
        key=lambda k: k.key_id,
    )
    # the apply lock's aliases come and go with every apply: not part of the state
    aliases = {a: t for a, t in sorted(observed.aliases.items()) if not tool_alias(a)}
    region_aliases = {
        region: dict(sorted(aliases.items()))
        for region, aliases in sorted(observed.region_aliases.items())
    }
    hashed = hashlib.sha256(
        f'{{"account":{encode(observed.target.account_id)},"aliases":{encode(aliases)},'
        '"managed":['.encode()
    )
    for i, key in enumerate(managed):
        if i:
            hashed.update(b",")
        hashed.update(encode(_digest(key, identity_tag, with_grants, canon)).encode())
    tail = f'],"region":{encode(observed.target.region)},"region_aliases":{encode(region_aliases)}'
    if observed.unreadable:  # a key that became unreadable may be one the plan would create
        tail += f',"unreadable":{encode(sorted(observed.unreadable))}'
    hashed.update((tail + "}").encode())
    return "sha256:" + hashed.hexdigest()
