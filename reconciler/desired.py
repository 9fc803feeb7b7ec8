"""Specs + target -> desired key states (defaults merged, policies rendered and checked).

Merge order: built-in defaults < inventory `defaults` < target `defaults` < the key's own
fields; mappings (tags) merge key by key.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reconciler import catalog
from reconciler.errors import InputError, Problem
from reconciler.loader import Inventory, LoadedKey, display_path, dotted, targets_of
from reconciler.policy import validate_policy
from reconciler.spec import (
    GrantSpec,
    KeyDefaults,
    KeyMaterialSpec,
    PolicySource,
    ReplicaSpec,
    Target,
    check_tag_count,
)
from reconciler.state import (
    DesiredKey,
    DesiredReplica,
    DesiredTarget,
    Grant,
    KeyMaterial,
    KeyState,
    Retirement,
    SourceRef,
    TargetInfo,
    Waiver,
    tool_tags,
)
from reconciler.templates import PolicyRenderer, TemplateError


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def target_info(target: Target) -> TargetInfo:
    return TargetInfo(
        name=target.name,
        account_id=target.account_id,
        region=target.region,
        role_arn=target.role_chain[-1] if target.role_chain else None,
        partition=partition_of(target.region),
        profile=target.profile,
        role_chain=target.role_chain,
        external_id=target.external_id,
        session_name=target.session_name,
        session_duration_seconds=target.session_duration_seconds,
        plan_role_chain=target.plan_role_chain,
    )


def default_policy(account_id: str, partition: str) -> dict[str, Any]:
    """The policy KMS gives a key created without one: the account root may do anything."""
    return {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


def _grant(spec: GrantSpec, account_id: str, partition: str, region: str) -> Grant:
    """A declared grant for one target: {account_id}, {partition} and {region} filled in."""

    def fill(text: str) -> str:
        return (
            text.replace("{account_id}", account_id)
            .replace("{partition}", partition)
            .replace("{region}", region)
        )

    constraints = spec.constraints
    return Grant.of(
        fill(spec.grantee_principal),
        spec.operations,
        fill(spec.retiring_principal) if spec.retiring_principal else None,
        equals=constraints.encryption_context_equals if constraints else None,
        subset=constraints.encryption_context_subset if constraints else None,
        name=spec.name,
    )


def select_targets(inventory: Inventory, names: Sequence[str] = ()) -> list[Target]:
    """The targets to run: all, or those named (unknown names are an input error)."""
    targets = list(inventory.settings.targets)
    if not names:
        return targets
    known = {t.name: t for t in targets}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(
            Problem(
                f"unknown target '{unknown[0]}' (the inventory has: {', '.join(known)})",
                field="--target",
            )
        )
    return [known[n] for n in names]


def target_weights(inventory: Inventory, targets: Iterable[Target]) -> list[tuple[str, int]]:
    """Each target's name and the work a run has in it, for packing targets into shards: one
    for the target itself (its listing calls), plus one per key it declares and per replica
    of those keys (each read in full). Offline: no template is rendered."""
    declared: dict[str, int] = {}
    for loaded in inventory.keys:
        for name in targets_of(loaded, inventory.settings):
            declared[name] = declared.get(name, 0) + 1 + len(loaded.spec.replicas)
    return [(t.name, 1 + declared.get(t.name, 0)) for t in targets]


def build_desired(
    inventory: Inventory,
    targets: Iterable[Target],
    renderer: PolicyRenderer | None = None,
    key_names: Sequence[str] = (),
    *,
    oversize_policies: bool = False,
) -> list[DesiredTarget]:
    """Desired state for each target. Raises one InputError with every problem found.

    ``oversize_policies``: a rendered policy over KMS's size limit is not an input error
    (review reports it as a finding, KMS015, beside its access change; validate and plan
    refuse it, as KMS would)."""
    renderer = renderer or PolicyRenderer(inventory.policies_dir)
    all_targets = inventory.settings.targets
    problems: list[Problem] = []
    out = []
    for target in targets:
        keys = []
        for loaded in inventory.keys:
            if target.name not in targets_of(loaded, inventory.settings):
                continue
            if key_names and loaded.spec.name not in key_names:
                continue
            desired = _desired_key(inventory, target, loaded, renderer, problems, oversize_policies)
            if desired is not None:
                keys.append(desired)
        out.append(
            DesiredTarget(
                target=target_info(target),
                keys=tuple(keys),
                identity_tag=inventory.settings.identity_tag,
                admin_principals=tuple(inventory.settings.admin_principals),
                trusted_accounts=frozenset(
                    [*inventory.settings.trusted_accounts, *(t.account_id for t in all_targets)]
                ),
                organization_ids=frozenset(inventory.settings.organization_ids),
                deployer_arns=tuple(inventory.settings.review.deployer_arns),
                fan_out_threshold=inventory.settings.review.fan_out_threshold or 5,
                require_deny_on_bypass=inventory.settings.review.require_deny_on_bypass,
                default_deletion_window_days=_first(
                    target.defaults.deletion_window_days,
                    inventory.settings.defaults.deletion_window_days,
                    catalog.DELETION_WINDOW_DEFAULT,
                ),
            )
        )
    if problems:
        raise InputError(_unique(problems))
    return out


_STATEMENT = re.compile(r"Statement\[(\d+)\]")


def _defaults_scope(
    inventory: Inventory, target: Target, has: Callable[[KeyDefaults], bool]
) -> tuple[str | int, ...]:
    """The `inventory.yaml` path of the defaults layer that provides a value to a key."""
    if has(target.defaults):
        return ("targets", inventory.settings.targets.index(target), "defaults")
    return ("defaults",)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: dict[str, Problem] = {}
    for problem in problems:
        seen.setdefault(str(problem), problem)
    return list(seen.values())


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _desired_key(
    inventory: Inventory,
    target: Target,
    loaded: LoadedKey,
    renderer: PolicyRenderer,
    problems: list[Problem],
    oversize_ok: bool = False,
) -> DesiredKey | None:
    spec = loaded.spec
    # An imported spec says `inherit_defaults: false`: it describes its key as it is.
    layers: tuple[KeyDefaults, KeyDefaults] = (
        (inventory.settings.defaults, target.defaults)
        if spec.inherit_defaults
        else (KeyDefaults(), KeyDefaults())
    )
    inventory_defaults, target_defaults = layers
    index = loaded.index

    def problem(message: str, *path: str | int) -> None:
        field = dotted(("keys", index, *path)) if path else None
        problems.append(
            Problem(message, loaded.source.file, loaded.line_of(*path), field, spec.name)
        )

    key_spec = spec.key_spec or catalog.SYMMETRIC_DEFAULT
    key_usage = spec.key_usage or catalog.default_key_usage(key_spec) or catalog.ENCRYPT_DECRYPT
    origin = spec.origin or catalog.ORIGIN_AWS_KMS
    region_problem = catalog.key_spec_region_problem(key_spec, target.region)
    if region_problem:
        problem(f"{region_problem} (target '{target.name}')", "key_spec")

    rotation_layers = [layer.rotation for layer in layers] + [spec.rotation]
    rotation_enabled: bool | None = _first(
        *(r.enabled for r in reversed(rotation_layers) if r is not None), False
    )
    period: int | None = _first(
        *(r.period_days for r in reversed(rotation_layers) if r is not None),
        catalog.ROTATION_PERIOD_DEFAULT,
    )
    if not catalog.can_rotate_automatically(key_spec, origin):
        rotation_enabled, period = None, None  # not applicable: never compared
    elif not rotation_enabled:
        period = None

    tags: dict[str, str] = {}
    for layer in layers:
        tags.update(layer.tags)
    tags.update(spec.tags)
    identity = inventory.settings.identity_tag
    if identity in tags:
        message = f"the tag '{identity}' is set by the tool itself (value = the key's name)"
        if identity in spec.tags:
            problem(message, "tags", identity)
        else:  # from defaults: one problem there, not one per key
            scope = _defaults_scope(inventory, target, lambda d: identity in d.tags)
            path = (*scope, "tags", identity)
            problems.append(
                Problem(
                    message,
                    inventory.settings_source.file,
                    inventory.settings_line(*path),
                    dotted(path),
                )
            )
    try:
        check_tag_count(tags)
    except ValueError as exc:
        problem(f"after merging defaults: {exc}", "tags")

    description = spec.description or ""
    enabled = _first(spec.enabled, target_defaults.enabled, inventory_defaults.enabled, True)
    info = target_info(target)
    policy_source: PolicySource | None = _first(
        spec.policy, target_defaults.policy, inventory_defaults.policy
    )
    primary_region = (spec.primary_region or target.region) if spec.multi_region else None
    regions = [target.region, *(r.region for r in spec.replicas)]
    context = {
        "account_id": target.account_id,
        "region": target.region,
        "partition": info.partition,
        "target": {"name": target.name, "vars": dict(target.vars)},
        "key": {
            "name": spec.name,
            "aliases": list(spec.aliases),
            "tags": dict(tags),
            "description": description,
            # multi-Region keys: every Region of the key, and the primary's
            "regions": regions,
            "primary_region": primary_region,
        },
        "vars": {},
    }
    # Where the policy source is declared: the key itself, or a defaults layer.
    if spec.policy is not None:
        policy_scope: tuple[str | int, ...] = ("keys", index)
    else:
        policy_scope = _defaults_scope(inventory, target, lambda d: d.policy is not None)

    def policy_problem(
        message: str, *path: str | int, at: tuple[str | int, ...] = (), per_key: bool = True
    ) -> None:
        """A problem with the key's policy, at its source (`at`: a finer line to show)."""
        full = (*policy_scope, "policy", *path)
        if spec.policy is not None:
            file, line = loaded.source.file, loaded.line_of(*full[2:], *at)
        else:
            file, line = inventory.settings_source.file, inventory.settings_line(*full, *at)
        # A problem of a defaults layer that is the same for every key is reported once.
        key = spec.name if per_key or spec.policy is not None else None
        problems.append(Problem(message, file, line, dotted(full), key))

    rendered_policy = _render_policy(
        policy_source,
        context,
        renderer,
        target,
        info.partition,
        problems,
        policy_problem,
        spec,
        oversize_ok,
    )
    if rendered_policy is None:
        return None
    document, policy_text, origin_text, policy_file = rendered_policy
    state = KeyState(
        name=spec.name,
        description=description,
        key_spec=key_spec,
        key_usage=key_usage,
        origin=origin,
        custom_key_store_id=spec.custom_key_store_id,
        xks_key_id=spec.xks_key_id,
        multi_region=bool(spec.multi_region),
        enabled=bool(enabled),
        rotation_enabled=rotation_enabled,
        rotation_period_days=period,
        tags=tags,
        aliases=frozenset(spec.aliases),
        policy=document,
        grants=tuple(
            _grant(g, target.account_id, info.partition, target.region) for g in spec.grants
        ),
        deletion_protection=bool(
            _first(
                spec.deletion_protection,
                target_defaults.deletion_protection,
                inventory_defaults.deletion_protection,
                False,
            )
        ),
    )
    window = _first(
        spec.deletion_window_days,
        target_defaults.deletion_window_days,
        inventory_defaults.deletion_window_days,
        catalog.DELETION_WINDOW_DEFAULT,
    )
    if spec.key_material is not None and spec.key_material.file is not None:
        material_problem = _key_material_file_problem(spec.key_material.file, inventory.root)
        if material_problem:
            problem(material_problem, "key_material", "file")
    replicas = _desired_replicas(
        loaded,
        target,
        state,
        policy_source,
        context,
        renderer,
        problems,
        policy_problem,
        tool_tags(identity),
        oversize_ok,
    )
    if primary_region is not None and primary_region not in regions:
        problem(
            f"{primary_region} is neither the target's Region ({target.region}) nor a "
            f"replica's ({', '.join(regions[1:]) or 'none declared'})",
            "primary_region",
        )
    return DesiredKey(
        state=state,
        deletion_window_days=window,
        source=SourceRef(loaded.source.file, loaded.source.line, origin_text, policy_file),
        policy_text=policy_text,
        adopt=spec.adopt,
        grants_purge=spec.grants_purge,
        allow_alias_takeover=spec.allow_alias_takeover,
        bypass_policy_lockout_safety_check=spec.bypass_policy_lockout_safety_check,
        waivers=tuple(Waiver(w.rule, w.reason, w.owner, w.expires) for w in spec.waivers),
        key_material=_key_material(spec.key_material, inventory.root),
        replicas=replicas,
        primary_region=primary_region,
        retire=None
        if spec.retire is None
        else Retirement(
            spec.retire.disable_on, spec.retire.after_unused_days, spec.retire.observe_days
        ),
    )


def _desired_replicas(
    loaded: LoadedKey,
    target: Target,
    key: KeyState,
    key_policy: PolicySource | None,
    key_context: dict[str, Any],
    renderer: PolicyRenderer,
    problems: list[Problem],
    key_policy_problem: PolicyProblem,
    reserved_tags: frozenset[str] = frozenset(),
    oversize_ok: bool = False,
) -> tuple[DesiredReplica, ...]:
    """The replicas of a multi-Region key: each field the replica leaves out is the key's
    own (tags merge key by key; the policy is rendered again with the replica's Region)."""
    spec = loaded.spec
    partition = partition_of(target.region)
    out = []
    for j, replica in enumerate(spec.replicas):

        def problem(message: str, *path: str | int, j: int = j) -> None:
            problems.append(
                Problem(
                    message,
                    loaded.source.file,
                    loaded.line_of("replicas", j, *path),
                    dotted(("keys", loaded.index, "replicas", j, *path)),
                    spec.name,
                )
            )

        region = replica.region
        if region == target.region:
            problem(
                f"{region} is the target's own Region: the key itself is there "
                "(list only the other Regions)",
                "region",
            )
            continue
        if partition_of(region) != partition:
            problem(
                f"{region} is in partition {partition_of(region)}, the target's Region "
                f"{target.region} in {partition}: replicas stay in their key's partition",
                "region",
            )
            continue
        region_problem = catalog.key_spec_region_problem(key.key_spec, region)
        if region_problem:
            problem(region_problem, "region")
            continue
        # the key's tags, then the replica's own (null: leave one of the key's off)
        for tag in sorted(reserved_tags & set(replica.tags)):
            problem(f"the tag '{tag}' is set by the tool itself", "tags", tag)
        tags = {k: v for k, v in key.tags.items() if k not in replica.tags}
        tags.update({k: v for k, v in replica.tags.items() if v is not None})
        try:
            check_tag_count(tags)
        except ValueError as exc:
            problem(f"after merging the key's tags: {exc}", "tags")
        aliases = list(spec.aliases if replica.aliases is None else replica.aliases)
        description = key.description if replica.description is None else replica.description
        context = {
            **key_context,
            "region": region,
            "key": {
                **key_context["key"],
                "aliases": aliases,
                "tags": dict(tags),
                "description": description,
            },
        }

        def policy_problem(
            message: str,
            *path: str | int,
            at: tuple[str | int, ...] = (),
            per_key: bool = True,
            j: int = j,
            replica: ReplicaSpec = replica,
        ) -> None:
            if replica.policy is None:
                key_policy_problem(f"{message} (replica {replica.region})", *path, at=at)
            else:
                problem(message, "policy", *path, *at)

        rendered = _render_policy(
            replica.policy or key_policy,
            context,
            renderer,
            target,
            partition,
            problems,
            policy_problem,
            spec,
            oversize_ok,
        )
        if rendered is None:
            continue
        document, policy_text, origin, policy_file = rendered
        state = replace(
            key,
            description=description,
            enabled=key.enabled if replica.enabled is None else replica.enabled,
            tags=tags,
            aliases=frozenset(aliases),
            policy=document,
            # shared with the primary (rotation) or not managed on replicas (grants)
            rotation_enabled=None,
            rotation_period_days=None,
            grants=None,
        )
        out.append(DesiredReplica(region, state, policy_text, origin, policy_file))
    return tuple(out)


PolicyProblem = Callable[..., None]


def _render_policy(
    policy_source: PolicySource | None,
    context: dict[str, Any],
    renderer: PolicyRenderer,
    target: Target,
    partition: str,
    problems: list[Problem],
    policy_problem: PolicyProblem,
    spec: Any,
    oversize_ok: bool = False,
) -> tuple[dict[str, Any], str, str, str | None] | None:
    """(document, exact JSON text, origin, template file) of a key's policy, checked;
    None when it cannot be rendered (the problem is recorded)."""
    if policy_source is None:
        document = default_policy(target.account_id, partition)
        origin_text, policy_file = "default key policy", None
        policy_text, messages = _formatted(json.dumps(document))
    else:
        try:
            rendered = renderer.render(policy_source, context)
        except TemplateError as exc:
            if exc.file:
                problems.append(Problem(exc.message, exc.file, exc.line, None, spec.name))
            else:
                path = (exc.field,) if exc.field else ()
                policy_problem(exc.message, *path, per_key=False)
            return None
        document, origin_text, policy_file = rendered.document, rendered.origin, rendered.file
        policy_text, messages = _formatted(rendered.text)
    from_text = f" (from {policy_file})" if policy_file else ""
    for message in messages:
        statement = _STATEMENT.match(message)
        if policy_source is not None and policy_source.document is not None and statement:
            # An inline document: point at the statement's own line.
            policy_problem(message, "document", at=("Statement", int(statement.group(1))))
        else:
            policy_problem(message + from_text)
    size = len(policy_text.encode())
    if size > catalog.POLICY_MAX_BYTES and not oversize_ok:
        policy_problem(
            f"the rendered policy is {size} bytes; KMS allows at most "
            f"{catalog.POLICY_MAX_BYTES}{from_text}"
        )
    return document, policy_text, origin_text, policy_file


@functools.lru_cache(maxsize=256)
def _formatted(text: str) -> tuple[str, tuple[str, ...]]:
    """A rendered policy's text as it is sent to KMS (two-space indents) and its problems:
    both depend on the document alone, and most keys share a few documents (json.dumps
    with an indent is pure Python: about 0.15 ms a policy)."""
    document = json.loads(text)
    return json.dumps(document, indent=2), tuple(validate_policy(document))


def _key_material_file_problem(name: str, root: Path) -> str | None:
    """What is wrong with a key material file, as far as can be told offline: it must stay
    inside the inventory after following symlinks and must not be a folder. (A file that
    does not exist yet is not an error here: it may be placed there just before apply.)"""
    path = root / name
    try:
        real = path.resolve()
    except (OSError, RuntimeError):
        return f"'{name}' cannot be resolved (a symbolic link loop?)"
    if not real.is_relative_to(root.resolve()):
        return f"'{name}' is a symbolic link that leads outside {display_path(root)}/; refused"
    if path.is_dir():
        return f"'{name}' is a folder, not a file of key material"
    if path.exists() and not path.is_file():
        return f"'{name}' is not a regular file"
    return None


def _key_material(spec: KeyMaterialSpec | None, root: Path) -> KeyMaterial | None:
    """The reference to an EXTERNAL key's material (file relative to the inventory, or env)."""
    if spec is None:
        return None
    valid_to = spec.valid_to
    if valid_to is not None and not isinstance(valid_to, datetime):
        valid_to = datetime(valid_to.year, valid_to.month, valid_to.day, tzinfo=timezone.utc)
    elif valid_to is not None and valid_to.tzinfo is None:
        valid_to = valid_to.replace(tzinfo=timezone.utc)
    # relative to the working directory when inside it, so a saved plan applies from
    # another checkout of the same repository (CI plans and applies on different runners)
    return KeyMaterial(
        spec.source,
        spec.expiration_model,
        valid_to,
        display_path(root),
        spec.encoding,
        deleted=spec.deleted,
        version=spec.version,
    )
