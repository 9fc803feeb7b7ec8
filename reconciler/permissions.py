"""The least IAM permissions each command needs, made from the calls the code makes.

Each module that calls KMS declares its calls (``observe.CALLS``, ``applier.CALLS``,
``applier.ROTATE_CALLS``, ``lock.CALLS``); a test checks those tables against the calls in
the source and against what the commands really send. A command's permissions are the
union of the modules it runs:

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
    "plan": observe.CALLS,
    "drift": observe.CALLS,
    "import": observe.CALLS,
    "review": observe.CALLS,  # review --live; review alone makes no AWS call
    "apply": observe.CALLS | applier.CALLS | lock.CALLS,
    "rotate": observe.CALLS | applier.ROTATE_CALLS | lock.CALLS,
    "force-unlock": lock.CALLS,
}
# Operations IAM authorises without a resource ARN.
UNSCOPED = frozenset({"ListKeys", "ListAliases", "CreateKey"})
# Alias operations are authorised on the alias and on the key it points at.
ALIAS_CALLS = frozenset({"CreateAlias", "UpdateAlias", "DeleteAlias"})


def operations(command: str) -> frozenset[str]:
    return COMMANDS[command]


def policy(command: str, accounts: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The IAM policy document for ``command`` in the given (partition, account) pairs."""
    ops = operations(command)
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
    return {"Version": "2012-10-17", "Statement": statements}
