"""Observed unmanaged keys -> key specs and policy documents that describe them as they are.

Pure: returns the files to write; the CLI writes them. An imported spec adopts its key
(``adopt: <key id>``) and does not inherit the inventory's defaults, so the next plan
only adds the identity tag and changes nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler import catalog
from reconciler.state import Grant, ObservedKey, TargetInfo

IMPORT_DIR = "imported"
_IMPORTABLE_STATES = ("Enabled", "Disabled")


@dataclass(frozen=True)
class ImportedKey:
    name: str
    key_id: str
    target: str
    spec_path: str  # relative to the inventory root
    spec_text: str
    policy_path: str  # relative to the inventory root
    policy_text: str
    # Multi-Region keys: the policies of replicas whose policy differs from the key's.
    replica_policies: tuple[tuple[str, str], ...] = ()  # (path, text)

    @property
    def files(self) -> list[tuple[str, str]]:
        """Every file to write: (path relative to the inventory root, text)."""
        return [
            (self.spec_path, self.spec_text),
            (self.policy_path, self.policy_text),
            *self.replica_policies,
        ]


@dataclass(frozen=True)
class Skipped:
    key_id: str
    target: str
    reason: str


def derive_name(key: ObservedKey, taken: set[str]) -> str:
    """A spec name from the key's first alias, else its ID; never one already taken."""
    source = sorted(key.aliases)[0].removeprefix("alias/") if key.aliases else ""
    base = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")[:100]
    if not base:
        base = "key-" + re.sub(r"[^a-z0-9]+", "", key.key_id.lower())[:8]
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def importable(key: ObservedKey, identity_tag: str) -> str | None:
    """Why a key cannot be imported, or None when it can."""
    if key.key_manager == "AWS":
        return "it is an AWS managed key"
    if identity_tag in key.tags:
        return f"it is already managed as '{key.tags[identity_tag]}'"
    if key.key_state not in _IMPORTABLE_STATES:
        return f"it is {key.key_state or 'in an unknown state'}; only Enabled or Disabled keys"
    if key.policy is None:
        return "its key policy could not be read"
    return None


def import_key(key: ObservedKey, name: str, target: TargetInfo, today: str) -> ImportedKey:
    """The spec file and policy document for one key, as KMS holds it now."""
    policy_file = f"{IMPORT_DIR}/{name}.json"
    spec: dict[str, Any] = {
        "name": name,
        "targets": [target.name],
        "adopt": key.key_id,
        "inherit_defaults": False,
        "description": key.description or "",
        "key_spec": key.key_spec or catalog.SYMMETRIC_DEFAULT,
    }
    if key.key_usage:
        spec["key_usage"] = key.key_usage
    if key.origin and key.origin != catalog.ORIGIN_AWS_KMS:
        spec["origin"] = key.origin
    if key.custom_key_store_id:
        spec["custom_key_store_id"] = key.custom_key_store_id
    if key.xks_key_id:
        spec["xks_key_id"] = key.xks_key_id
    if key.multi_region:
        spec["multi_region"] = True
        if key.primary_region and key.primary_region != target.region:
            spec["primary_region"] = key.primary_region
    spec["enabled"] = key.key_state == "Enabled"
    if key.aliases:
        spec["aliases"] = sorted(key.aliases)
    if key.rotation_enabled is not None:
        rotation: dict[str, Any] = {"enabled": key.rotation_enabled}
        if key.rotation_enabled and key.rotation_period_days:
            rotation["period_days"] = key.rotation_period_days
        spec["rotation"] = rotation
    tags = {k: v for k, v in sorted(key.tags.items()) if not k.lower().startswith("aws:")}
    if tags:
        spec["tags"] = tags
    spec["policy"] = {"file": policy_file}
    grants, left_out = _grants(key.grants or ())
    if grants:
        spec["grants"] = grants
    replicas, replica_policies = _replicas(key, name, tags)
    if replicas:
        spec["replicas"] = replicas
    header = [
        f"# Imported by kms-reconciler on {today} from key {key.key_id}",
        f"# in target '{target.name}' (account {target.account_id}, {target.region}).",
        "# It describes the key exactly as KMS held it. The next apply adopts the key (adds",
        "# the identity tag) and changes nothing else. Remove `inherit_defaults: false` to",
        "# let the inventory's defaults apply; the plan then shows what they change.",
    ]
    if key.creation_date is not None:
        header.insert(2, f"# The key was created on {key.creation_date:%Y-%m-%d}.")
    header += left_out
    body = yaml.safe_dump({"keys": [spec]}, sort_keys=False, width=100, allow_unicode=True)
    assert key.policy is not None
    return ImportedKey(
        name=name,
        key_id=key.key_id,
        target=target.name,
        spec_path=f"{IMPORT_DIR}/{name}.yaml",
        spec_text="\n".join(header) + "\n" + body,
        policy_path=f"policies/{policy_file}",
        policy_text=json.dumps(key.policy, indent=2) + "\n",
        replica_policies=tuple(replica_policies),
    )


def _grant_entry(grant: Grant, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "grantee_principal": grant.grantee_principal,
        "operations": list(grant.operations),
    }
    if grant.retiring_principal:
        entry["retiring_principal"] = grant.retiring_principal
    if grant.encryption_context_equals:
        entry["constraints"] = {"encryption_context_equals": dict(grant.encryption_context_equals)}
    elif grant.encryption_context_subset:
        entry["constraints"] = {"encryption_context_subset": dict(grant.encryption_context_subset)}
    return entry


def _grants(grants: Iterable[Grant]) -> tuple[list[dict[str, Any]], list[str]]:
    """The key's grants as ``grants:`` entries, so the first plan and drift after the import
    find every grant declared: by name where KMS has a valid unique one, else
    ``imported-<grant ID prefix>``. Left out, with a header line saying why: the grants AWS
    services make for their own resources (``Grant.for_aws_service``: never declared, never
    revoked), a second grant that allows the same as one written (grants match by what they
    allow), and a grant with both constraints (a spec declares one)."""
    entries: list[dict[str, Any]] = []
    notes: list[str] = []
    written: list[Grant] = []
    names: set[str] = set()
    service = 0
    for grant in sorted(grants, key=lambda g: (g.name, g.grant_id or "")):
        if grant.for_aws_service:
            service += 1
            continue
        if grant.encryption_context_equals and grant.encryption_context_subset:
            notes.append(
                f"# Grant {grant.label} is not written: it has both encryption context "
                "constraints, a spec declares one (drift will report it)."
            )
            continue
        if grant in written:
            continue  # the same grantee, operations and constraints: one declaration matches both
        name = grant.name if catalog.GRANT_NAME.fullmatch(grant.name) else ""
        if not name or name in names:
            stem = name or "imported-" + re.sub(r"[^A-Za-z0-9]", "", grant.grant_id or "")[:8]
            name, n = stem, 1
            while name in names:
                n += 1
                name = f"{stem}-{n}"
        names.add(name)
        written.append(grant)
        entries.append(_grant_entry(grant, name))
    if service:
        notes.append(
            f"# {service} grant(s) made by AWS services for their own resources are not "
            "written: the tool never declares or revokes them."
        )
    return sorted(entries, key=lambda e: e["name"]), notes


def _replicas(
    key: ObservedKey, name: str, tags: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """A multi-Region key's members in other Regions, as ``replicas:`` entries that set
    only what differs from the key itself (a replica leaves out what it shares)."""
    entries: list[dict[str, Any]] = []
    policies: list[tuple[str, str]] = []
    for region, member in sorted(key.replicas.items()):
        if member.pending_deletion:
            continue  # on its way out: not part of the family any more
        entry: dict[str, Any] = {"region": region}
        if (member.description or "") != (key.description or ""):
            entry["description"] = member.description or ""
        if (member.key_state == "Enabled") != (key.key_state == "Enabled"):
            entry["enabled"] = member.key_state == "Enabled"
        member_tags = {k: v for k, v in member.tags.items() if not k.lower().startswith("aws:")}
        own: dict[str, str | None] = {
            k: v for k, v in sorted(member_tags.items()) if tags.get(k) != v
        }
        own.update({k: None for k in sorted(tags) if k not in member_tags})  # null: not here
        if own:
            entry["tags"] = own
        if member.aliases != key.aliases:
            entry["aliases"] = sorted(member.aliases)
        if member.policy is not None and member.policy != key.policy:
            policy_file = f"{IMPORT_DIR}/{name}.{region}.json"
            entry["policy"] = {"file": policy_file}
            policies.append((f"policies/{policy_file}", json.dumps(member.policy, indent=2) + "\n"))
        entries.append(entry)
    return entries, policies


def plan_imports(
    candidates: Iterable[tuple[TargetInfo, ObservedKey]],
    identity_tag: str,
    taken: set[str],
    today: str,
    adopted: Mapping[tuple[str, str], str] | None = None,
) -> tuple[list[ImportedKey], list[Skipped]]:
    """Specs for the importable candidates; ``adopted``: (target, key ID) -> the spec
    that already adopts that key (it is not imported twice)."""
    imported, skipped = [], []
    for target, key in candidates:
        already = (adopted or {}).get((target.name, key.key_id))
        reason = importable(key, identity_tag)  # "already managed" first: it is the truth
        if reason is None and already:
            reason = f"the spec '{already}' already adopts it (apply to finish the adoption)"
        if reason is not None:
            skipped.append(Skipped(key.key_id, target.name, reason))
            continue
        imported.append(import_key(key, derive_name(key, taken), target, today))
    return imported, skipped
