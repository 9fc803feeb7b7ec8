"""import: write specs for existing keys so the next apply adopts them."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import click

from reconciler import aws
from reconciler.aws import KmsApi
from reconciler.commands.common import (
    Run,
    common_options,
    each_target,
    load,
    observe,
    path_argument,
    report_failures,
)
from reconciler.drift import ignored_unreadable, is_ignored
from reconciler.errors import (
    EXIT_OK,
    AwsError,
    InputError,
    Problem,
)
from reconciler.importer import importable, plan_imports
from reconciler.observe import Unreadable, read_grants
from reconciler.state import (
    DesiredTarget,
    ObservedKey,
    ObservedTarget,
    TargetInfo,
    is_lock_anchor,
)


@click.command("import")
@path_argument
@click.option(
    "--key-id",
    "key_ids",
    multiple=True,
    metavar="ID",
    help="Import this key (key ID, key ARN or alias; repeatable).",
)
@click.option("--all-unmanaged", is_flag=True, help="Import every unmanaged, unignored key.")
@common_options
def import_(run: Run, key_ids: tuple[str, ...], all_unmanaged: bool) -> int:
    """Write specs for existing keys so the next apply adopts them without change.

    \b
    Examples:
      kms-reconciler import --key-id alias/payments-db --target production
      kms-reconciler import --all-unmanaged
    """
    if not key_ids and not all_unmanaged:
        raise InputError(Problem("give --key-id ID (repeatable) or --all-unmanaged"))
    inventory, desired = load(run)

    apis: dict[str, KmsApi] = {}

    def one(dt: DesiredTarget) -> ObservedTarget:
        conn = aws.connect(dt.target, run.aws)
        apis[dt.target.name] = conn.kms
        # The grants of the keys it imports are read once they are known (read_grants).
        return observe(run, dt, conn, wanted=key_ids, details_for_all=all_unmanaged, grants=False)

    observed_targets, failures = each_target(desired, one)
    if failures:
        report_failures(failures)
        raise AwsError("import needs every selected target; nothing was written")
    identity = inventory.settings.identity_tag
    candidates: list[tuple[TargetInfo, ObservedKey]] = []
    for ref in key_ids:
        found = [
            (o.target, key)
            for o in observed_targets
            for key in o.keys
            if key.key_id == ref.rsplit("/", 1)[-1] or ref in key.aliases
        ]
        if not found:
            raise InputError(
                Problem(f"no customer key {ref} in the selected targets", field="--key-id")
            )
        candidates.extend(found)
    if all_unmanaged:
        candidates += [
            (o.target, key)
            for o in observed_targets
            for key in o.keys
            if identity not in key.tags
            and not is_lock_anchor(key)
            and not is_ignored(key, inventory.settings.ignore)
            and (o.target, key) not in candidates
        ]
    candidates = _with_grants(run, candidates, apis, identity)
    taken = {k.spec.name for k in inventory.keys}
    adopted = {
        (o.target.name, resolved): dk.name
        for dt, o in zip(desired, observed_targets, strict=True)
        for dk in dt.keys
        if dk.adopt
        for resolved in [o.aliases.get(dk.adopt) or dk.adopt.rsplit("/", 1)[-1]]
    }
    imported, skipped = plan_imports(candidates, identity, taken, date.today().isoformat(), adopted)
    if key_ids and skipped:
        raise InputError(
            [Problem(f"cannot import {s.key_id} ({s.target}): {s.reason}") for s in skipped]
        )
    for item in imported:
        for rel, _ in item.files:
            path = run.path / rel
            if path.exists():
                raise InputError(Problem(f"{path} already exists; nothing was overwritten"))
    for item in imported:
        for rel, text in item.files:
            path = run.path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        click.echo(
            f"imported {item.key_id} ({item.target}) as '{item.name}': "
            f"{run.path / item.spec_path}, {run.path / item.policy_path}"
        )
    for s in skipped:
        click.echo(f"skipped {s.key_id} ({s.target}): {s.reason}")
    if all_unmanaged:
        for o in observed_targets:
            not_ours = ignored_unreadable(o, inventory.settings.ignore)
            for key_id, error in sorted(o.unreadable.items()):
                if key_id not in not_ours:
                    click.echo(
                        f"warning: skipped {key_id} ({o.target.name}): it could not be read "
                        f"({error})",
                        err=True,
                    )
    click.echo(
        f"Imported {len(imported)} key(s). Review the files, then run 'kms-reconciler plan': "
        "it adopts each key (adds the identity tag) and changes nothing else."
    )
    return EXIT_OK


def _with_grants(
    run: Run,
    candidates: list[tuple[TargetInfo, ObservedKey]],
    apis: dict[str, KmsApi],
    identity: str,
) -> list[tuple[TargetInfo, ObservedKey]]:
    """The candidates with their grants (ListGrants for the keys import will write), so
    the first drift after a migration finds every grant declared. A key whose grants cannot
    be read stops the import: a spec without them would make them undeclared grants."""
    out = list(candidates)
    problems: list[str] = []
    for target_name, api in apis.items():
        wanted = [
            key.key_id
            for target, key in candidates
            if target.name == target_name and importable(key, identity) is None
        ]
        found, calls = read_grants(api, wanted, workers=run.aws.workers)
        run.info(f"{target_name}: read the grants of {len(wanted)} key(s) with {calls} KMS calls")
        for i, (target, key) in enumerate(out):
            if target.name != target_name or key.key_id not in found:
                continue
            grants = found[key.key_id]
            if isinstance(grants, Unreadable):
                problems.append(
                    f"{target_name}: cannot read the grants of {key.key_id} ({grants}); "
                    "grant kms:ListGrants on it"
                )
            else:
                out[i] = (target, replace(key, grants=grants))
    if problems:
        for line in problems:
            click.echo(f"error: {line}", err=True)
        raise AwsError("import needs the grants of every key it writes; nothing was written")
    return out
