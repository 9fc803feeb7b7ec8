"""The least IAM permissions each command needs, made from the calls the code makes.

Each module that calls KMS declares its calls (``observe.CALLS``, ``applier.CALLS``,
``applier.ROTATE_CALLS``, ``lock.CALLS``; the tagging API's: ``observe.TAGGING_CALLS``); a
test checks those tables against the calls in the source and against what the commands
really send. A command's permissions are the union of the modules it runs:

- read-only (``plan_role_arn``): plan, drift, import and review --live observe only;
- writing (``role_arn``): apply, rotate and force-unlock also take the apply lock, and
  apply makes every kind of operation.

The policy scopes key operations to the targets' accounts (any Region: a multi-Region
key's replicas live in others); ListKeys, ListAliases and CreateKey take no resource in
IAM, so they are allowed on ``*``. STS GetCallerIdentity needs no permission; a role
chain needs ``sts:AssumeRole`` on each hop, granted where the chain starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler import applier, lock, observe

READ_ONLY = ("plan", "drift", "import", "review")
COMMANDS: Mapping[str, frozenset[str]] = {
    # GetKeyLastUsage (observe.USAGE_CALLS): plan and apply read it for the keys a plan
    # retires or restricts, drift for every customer key it reports (one call per key).
    "plan": observe.CALLS | observe.USAGE_CALLS,
    "drift": observe.CALLS | observe.USAGE_CALLS,
    "import": observe.CALLS,
    "review": observe.CALLS,  # review --live; review alone makes no AWS call
    "apply": observe.CALLS | observe.USAGE_CALLS | applier.CALLS | lock.CALLS,
    "rotate": observe.CALLS | applier.ROTATE_CALLS | lock.CALLS,
    "force-unlock": lock.CALLS,
}
# Operations IAM authorises without a resource ARN.
UNSCOPED = frozenset({"ListKeys", "ListAliases", "CreateKey"})
# Alias operations are authorised on the alias and on the key it points at.
ALIAS_CALLS = frozenset({"CreateAlias", "UpdateAlias", "DeleteAlias"})


# What each command's kms:GetKeyLastUsage is for (the permissions command says it).
USAGE_NOTES: Mapping[str, str] = {
    "plan": "kms:GetKeyLastUsage: one call per key the plan disables, schedules for deletion "
    "or takes an alias, a grant or policy access from (none for a plan without such a change)",
    "apply": "kms:GetKeyLastUsage: one call per key the plan disables, schedules for deletion "
    "or takes an alias, a grant or policy access from; apply refuses to retire a key whose "
    "use it cannot read (unless --allow-in-use)",
    "drift": "kms:GetKeyLastUsage: one call per customer key drift reports (managed and "
    "unmanaged, not ignored), for the unused-key finding; without it those keys are "
    "reported as of unknown use",
}


def operations(command: str) -> frozenset[str]:
    return COMMANDS[command]


def policy(
    command: str,
    accounts: Iterable[tuple[str, str]],
    *,
    tagging_api: bool = False,
    material_versions: bool = False,
) -> dict[str, Any]:
    """The IAM policy document for ``command`` in the given (partition, account) pairs;
    with ``tagging_api`` (``discovery: tagging-api``) also ``tag:GetResources`` for the
    commands that observe (it takes no resource in IAM); with ``material_versions`` (a spec
    names ``key_material.version``) apply may also rotate keys on demand."""
    ops = operations(command)
    if material_versions and command == "apply":
        ops = ops | applier.ROTATE_CALLS
    pairs = sorted(set(accounts))
    keys = [f"arn:{partition}:kms:*:{account}:key/*" for partition, account in pairs]
    aliases = [f"arn:{partition}:kms:*:{account}:alias/*" for partition, account in pairs]
    statements: list[dict[str, Any]] = []

    def allow(sid: str, names: Iterable[str], resource: str | list[str]) -> None:
        actions = sorted(f"kms:{name}" for name in names)
        if actions:
            statements.append(
                {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}
            )

    allow("AccountWide", ops & UNSCOPED, "*")
    allow("Keys", ops - UNSCOPED - ALIAS_CALLS, keys)
    allow("Aliases", ops & ALIAS_CALLS, aliases + keys)
    if tagging_api and ops & observe.CALLS == observe.CALLS:
        statements.append(
            {
                "Sid": "TaggingDiscovery",
                "Effect": "Allow",
                "Action": sorted(f"tag:{name}" for name in observe.TAGGING_CALLS),
                "Resource": "*",
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
