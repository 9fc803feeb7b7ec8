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
from typing import Any

from reconciler import catalog
from reconciler.policy import canonicalize


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

    @property
    def label(self) -> str:
        return f"{self.name} ({self.account_id}/{self.region})"


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
class DesiredKey:
    state: KeyState
    deletion_window_days: int
    source: SourceRef
    policy_text: str  # the exact JSON sent to KMS
    adopt: str | None = None
    allow_alias_takeover: bool = False
    bypass_policy_lockout_safety_check: bool = False
    waivers: tuple[Waiver, ...] = ()

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

    @property
    def protection_tag(self) -> str:
        return protection_tag(self.identity_tag)


def protection_tag(identity_tag: str) -> str:
    """The tag that records deletion protection on the key itself, beside the identity tag."""
    prefix = identity_tag.rsplit(":", 1)[0] if ":" in identity_tag else identity_tag
    return prefix + catalog.PROTECTION_TAG_SUFFIX


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

    def name(self, identity_tag: str) -> str | None:
        return self.tags.get(identity_tag)

    @property
    def pending_deletion(self) -> bool:
        return self.key_state in ("PendingDeletion", "PendingReplicaDeletion")

    def as_state(self, identity_tag: str) -> KeyState:
        """This key in the comparable shape, without the tool's own tags."""
        ours = {identity_tag, protection_tag(identity_tag)}
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
        )


@dataclass(frozen=True)
class ObservedTarget:
    """What one target holds: the customer keys read, and every alias of the account."""

    target: TargetInfo
    keys: tuple[ObservedKey, ...]
    aliases: Mapping[str, str | None]  # alias name -> target key ID (None: not yet used)
    caller_arn: str = ""
    aws_managed_key_ids: frozenset[str] = frozenset()
    read_calls: int = 0
    stats: Mapping[str, int] = field(default_factory=dict)

    def by_id(self) -> dict[str, ObservedKey]:
        return {key.key_id: key for key in self.keys}


def fingerprint(observed: ObservedTarget, identity_tag: str, also: Iterable[str] = ()) -> str:
    """A digest of the observed state a plan depends on: managed keys, the keys in ``also``
    (those the plan adopts), and every alias.

    A saved plan carries it; apply observes again and refuses the plan when it differs.
    """
    partition = observed.target.partition
    extra = set(also)
    managed = []
    for key in sorted(observed.keys, key=lambda k: k.key_id):
        if identity_tag not in key.tags and key.key_id not in extra:
            continue
        state = key.as_state(identity_tag)
        managed.append(
            {
                "key_id": key.key_id,
                "key_state": key.key_state,
                "name": state.name,
                "description": state.description,
                "enabled": state.enabled,
                "rotation": [state.rotation_enabled, state.rotation_period_days],
                "tags": dict(sorted(key.tags.items())),
                "aliases": sorted(state.aliases),
                "policy": canonicalize(state.policy, partition=partition)
                if state.policy is not None
                else None,
            }
        )
    body = {
        "account": observed.target.account_id,
        "region": observed.target.region,
        "managed": managed,
        "aliases": dict(sorted(observed.aliases.items())),
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
