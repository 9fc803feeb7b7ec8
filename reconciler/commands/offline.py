"""The commands that never reach AWS: validate, render, targets, permissions."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler import catalog, permissions
from reconciler import schema as schema_module
from reconciler.commands.common import (
    Run,
    common_options,
    load,
    path_argument,
)
from reconciler.desired import build_desired, select_targets, target_weights
from reconciler.errors import (
    EXIT_OK,
    InputError,
    Problem,
)
from reconciler.loader import load_inventory
from reconciler.scaffold import scaffold
from reconciler.shards import GITHUB_MATRIX_MAX_JOBS, matrix_shards


@click.command()
@path_argument
@common_options
def validate(run: Run) -> int:
    """Check specs, templates and policies offline. Reports every problem at once.

    \b
    Examples:
      kms-reconciler validate
      kms-reconciler validate examples/multi-team
    """
    inventory, desired = load(run)
    keys = sum(len(d.keys) for d in desired)
    click.echo(
        f"{run.path}: valid. {len(inventory.keys)} key spec(s), {keys} key(s) "
        f"across {len(desired)} target(s), every policy rendered."
    )
    return EXIT_OK


@click.command()
@path_argument
@click.option("--key", "keys", multiple=True, help="Only this key (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@common_options
def render(run: Run, keys: tuple[str, ...], fmt: str) -> int:
    """Show the desired state and rendered policies, offline.

    \b
    Examples:
      kms-reconciler render --key app-data --target production
      kms-reconciler render --format json | jq '.keys[].policy'
    """
    inventory = load_inventory(run.path)
    targets = select_targets(inventory, run.target_names)
    if run.region:
        targets = [t for t in targets if t.region == run.region]
        if not targets:
            raise InputError(Problem(f"no target in Region {run.region}", field="--region"))
    known = {k.spec.name for k in inventory.keys}
    for name in keys:
        if name not in known:
            raise InputError(Problem(f"no key named '{name}' in {run.path}", field="--key"))
    desired = build_desired(inventory, targets, key_names=keys)
    documents = []
    for dt in desired:
        for dk in dt.keys:
            s = dk.state
            documents.append(
                {
                    "target": dt.target.name,
                    "account_id": dt.target.account_id,
                    "region": dt.target.region,
                    "name": s.name,
                    "source": f"{dk.source.file}:{dk.source.line}",
                    "description": s.description,
                    "key_spec": s.key_spec,
                    "key_usage": s.key_usage,
                    "origin": s.origin,
                    "multi_region": s.multi_region,
                    "enabled": s.enabled,
                    "rotation": {
                        "enabled": s.rotation_enabled,
                        "period_days": s.rotation_period_days,
                    },
                    "aliases": sorted(s.aliases),
                    "tags": dict(s.tags),
                    "deletion_window_days": dk.deletion_window_days,
                    "deletion_protection": s.deletion_protection,
                    "grants": {g.name: g.text for g in s.grants or ()},
                    "grants_purge": dk.grants_purge,
                    "policy_source": dk.source.policy_origin,
                    "policy": s.policy,
                }
            )
    if fmt == "json":
        click.echo(json.dumps({"format_version": 1, "keys": documents}, indent=2))
        return EXIT_OK
    for doc in documents:
        policy = doc.pop("policy")
        click.echo(run.style(f"# {doc['target']} / {doc['name']}  ({doc.pop('source')})", "bold"))
        for field_name, value in doc.items():
            if field_name not in ("target", "name"):
                click.echo(f"{field_name}: {json.dumps(value)}")
        click.echo("policy:")
        click.echo(json.dumps(policy, indent=2))
        click.echo("")
    return EXIT_OK


@click.command()
@path_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github-matrix"]),
    default="text",
)
@click.option(
    "--max-jobs",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help=f"github-matrix: at most N entries (default {GITHUB_MATRIX_MAX_JOBS}, the most a "
    "GitHub Actions matrix holds). Up to N targets: one entry per target. More: N shards "
    "balanced by keys, each entry {shard: 'I/N', targets: [...]}, for 'plan/apply/drift "
    "--shard I/N'.",
)
@common_options
def targets(run: Run, fmt: str, max_jobs: int | None) -> int:
    """List the inventory's targets (github-matrix: JSON for a strategy.matrix).

    \b
    Examples:
      kms-reconciler targets
      echo "matrix=$(kms-reconciler targets --format github-matrix)" >> "$GITHUB_OUTPUT"
      kms-reconciler targets --format github-matrix --max-jobs 256   # then plan --shard I/N
    """
    if max_jobs is not None and fmt != "github-matrix":
        raise InputError(Problem("only with --format github-matrix", field="--max-jobs"))
    inventory = load_inventory(run.path)
    chosen = select_targets(inventory, run.target_names)
    if run.region:
        chosen = [t for t in chosen if t.region == run.region]
    rows = [
        {
            "target": t.name,
            "account_id": t.account_id,
            "region": t.region,
            "role_arn": t.role_arn,
            "plan_role_arn": t.plan_role_chain[-1] if t.plan_role_chain else t.role_arn,
        }
        for t in chosen
    ]
    if fmt == "json":
        click.echo(json.dumps({"format_version": 1, "targets": rows}, indent=2))
    elif fmt == "github-matrix":
        shards = matrix_shards(
            target_weights(inventory, chosen), max_jobs or GITHUB_MATRIX_MAX_JOBS
        )
        if shards is None:  # one job per target
            click.echo(json.dumps({"include": rows}, separators=(",", ":")))
            return EXIT_OK
        by_name = {row["target"]: row for row in rows}
        entries = [
            {
                "shard": str(ref),
                # for artifact names, job names and comment markers, which cannot hold "/"
                "label": f"shard-{ref.index}-of-{ref.count}",
                "targets": [by_name[name] for name in names],
            }
            for ref, names in shards
        ]
        click.echo(json.dumps({"include": entries}, separators=(",", ":")))
    else:
        for row in rows:
            click.echo(f"{row['target']}\t{row['account_id']}\t{row['region']}")
    return EXIT_OK


@click.command("permissions")
@path_argument
@click.option(
    "--for",
    "command",
    type=click.Choice(sorted(permissions.COMMANDS)),
    default="apply",
    show_default=True,
    help="The command whose role the policy is for: plan, drift, import and review read "
    "(plan_role_arn); apply, rotate and force-unlock write (role_arn).",
)
@common_options
def permissions_(run: Run, command: str) -> int:
    """Print the least IAM policy (JSON) a command's role needs in the selected targets.

    \b
    Examples:
      kms-reconciler permissions --for plan > plan-role-policy.json
      kms-reconciler permissions --for apply --target production
    """
    inventory, desired = load(run)
    accounts = [(dt.target.partition, dt.target.account_id) for dt in desired]
    tagging_api = inventory.settings.discovery == catalog.DISCOVERY_TAGGING_API
    click.echo(json.dumps(permissions.policy(command, accounts, tagging_api=tagging_api), indent=2))
    if command in permissions.USAGE_NOTES:
        run.info(f"note: {permissions.USAGE_NOTES[command]}")
    return EXIT_OK


@click.command("schema")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write keyfile.schema.json and inventory.schema.json into this folder "
    "(default: print both as one JSON object).",
)
def schema_(out_dir: Path | None) -> int:
    """Write the JSON Schemas of key files and inventory.yaml, for editors.

    \b
    Examples:
      kms-reconciler schema --out schemas
      # then, as the first line of a key file:
      # yaml-language-server: $schema=../schemas/keyfile.schema.json
    """
    documents = schema_module.schemas()
    if out_dir is None:
        click.echo(json.dumps(documents, indent=2, sort_keys=True))
        return EXIT_OK
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, document in documents.items():
            (out_dir / name).write_text(schema_module.dumps(document), encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(
            f"--out: cannot write {out_dir}: {exc.strerror or exc}"
        ) from None
    click.echo(f"Wrote {', '.join(str(out_dir / n) for n in documents)}")
    return EXIT_OK


@click.command("init")
@click.argument("folder", required=False, type=click.Path(path_type=Path), default="keyspecs")
def init_(folder: Path) -> int:
    """Write a commented starter inventory: one target, the defaults, one key and its
    policy template; it validates, and plans on the sandbox.

    \b
    Examples:
      kms-reconciler init
      kms-reconciler plan --sandbox && kms-reconciler apply --sandbox --auto-approve
    """
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise click.ClickException(
            f"{folder} exists and is not an empty folder; nothing was written"
        )
    try:
        written = scaffold(folder)
    except OSError as exc:
        raise click.ClickException(f"cannot write {folder}: {exc.strerror or exc}") from None
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(
        f"Next: put your account ID in {folder / 'inventory.yaml'}, then "
        "kms-reconciler validate; kms-reconciler plan (or try it now with --sandbox)."
    )
    return EXIT_OK
