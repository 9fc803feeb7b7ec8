"""``permissions``: the least IAM policy a command's role needs (offline).

Its own module: ``reconciler.permissions`` is made from the call lists of the observer, the
applier and the lock, which the other offline commands (validate first) need not import.
"""

from __future__ import annotations

import json

import click

from reconciler import catalog, permissions
from reconciler.commands.common import Run, common_options, load, path_argument
from reconciler.errors import EXIT_OK


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
    versions = any(
        dk.key_material is not None and dk.key_material.version is not None
        for dt in desired
        for dk in dt.keys
    )
    document = permissions.policy(
        command, accounts, tagging_api=tagging_api, material_versions=versions
    )
    click.echo(json.dumps(document, indent=2))
    if command in permissions.USAGE_NOTES:
        run.info(f"note: {permissions.USAGE_NOTES[command]}")
    return EXIT_OK
