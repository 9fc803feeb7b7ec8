"""KMS101: a principal outside the account and its trusted accounts gains decrypt-type access."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.policy import Policy, access, denied
from reconciler.review import Context, Hit, Subject
from reconciler.rules._helpers import DECRYPT_ACTIONS

RULE = Rule(
    id="KMS101",
    severity=Severity.CRITICAL,
    title="Decrypt newly granted outside the account",
    rationale=(
        "kms:Decrypt, kms:ReEncryptFrom and the GenerateDataKey actions hand out plaintext. "
        "Granting them to another account (not a trusted one), to a service principal or to "
        '"*" moves the data outside the account, unless a condition pins the caller to the '
        "account, a trusted account or the organization (aws:PrincipalOrgID). "
        "kms:ViaService alone does not: any account can call through that service. "
        "A key added by the change is compared with nothing."
    ),
)

# Operators under which a condition key really must match one of its values: no IfExists
# (a missing key passes), no Not (everything else passes), no ForAllValues (an empty set
# passes).
_MATCHING = frozenset(
    {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike"}
)
_ORG_KEYS = frozenset({"aws:principalorgid", "aws:sourceorgid"})
_ACCOUNT_KEYS = frozenset({"aws:principalaccount", "kms:calleraccount", "aws:sourceaccount"})
_ARN_KEYS = frozenset({"aws:principalarn", "aws:sourcearn"})

# (principal, action) -> the Sid of a statement that grants it (None when it has no Sid)
Exposure = dict[tuple[str, str], str | None]


def _inside_account(account: str | None, context: Context) -> bool:
    return account is not None and (
        account == context.account_id or account in context.trusted_accounts
    )


def _pins_caller_inside(conditions: str, context: Context) -> bool:
    """Whether a grant's conditions (canonical JSON) admit only callers inside."""
    if not conditions:
        return False
    condition: Mapping[str, Any] = json.loads(conditions)
    for operator, block in condition.items():
        if operator not in _MATCHING or not isinstance(block, Mapping):
            continue
        for key, values in block.items():
            if not values:
                continue
            if key in _ORG_KEYS and all(v in context.organization_ids for v in values):
                return True
            if key in _ACCOUNT_KEYS and all(_inside_account(v, context) for v in values):
                return True
            if key in _ARN_KEYS and all(
                _inside_account(context.account_of(v), context) for v in values
            ):
                return True
    return False


def _exposure(doc: Policy | None, context: Context) -> Exposure:
    """Decrypt-type actions each outside principal gets without a pinning condition."""
    if doc is None:
        return {}
    found: Exposure = {}
    for grant in access(doc, partition=context.partition):
        if context.is_inside(grant.principal):
            continue
        if _pins_caller_inside(grant.conditions, context):
            continue
        for action in sorted(grant.actions & DECRYPT_ACTIONS):
            if denied(doc, grant.principal, action, partition=context.partition):
                continue
            found.setdefault((grant.principal, action), grant.sid)
    return found


def _who(principal: str) -> str:
    if principal == "*":
        return '"*" (every AWS principal)'
    if principal.startswith("NotPrincipal:"):
        return f"every principal except {principal.removeprefix('NotPrincipal:')}"
    return principal


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.head is None:
        return
    context = subject.context
    base = _exposure(change.base.state.policy if change.base else None, context)
    head = _exposure(change.head.state.policy, context)
    # On a changed key, only what the policy-semantics engine proves newly allowed ("*"
    # stands for every principal, NotPrincipal grants included).
    proven = {(a.principal, action) for a in change.access for action in a.gained}
    gained: dict[str, list[str]] = {}
    for principal, action in sorted(set(head) - set(base)):
        if change.base is not None and not (
            (principal, action) in proven or ("*", action) in proven
        ):
            continue
        gained.setdefault(principal, []).append(action)
    where = "added key" if change.base is None else "key"
    for principal, actions in gained.items():
        sid = head[(principal, actions[0])]
        yield Hit(
            f"{where} {change.name}: {_who(principal)} gains {_join(actions)} and so can read "
            f"plaintext from outside account {context.account_id} and its trusted accounts",
            sid=sid,
            details=(
                f"no condition pins the caller to account {context.account_id}, a trusted "
                "account or the organization (aws:PrincipalOrgID); kms:ViaService alone "
                "does not",
            ),
        )
