"""KMS106: an AWS account or a service principal appears in the key policy for the first time."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import conditions, label, principals

RULE = Rule(
    id="KMS106",
    severity=Severity.MEDIUM,
    title="New account or service principal",
    rationale=(
        "An account or AWS service that the key policy did not mention before is a new party "
        "to the key: someone should know why it needs the key. That holds as much for an "
        "account named in a condition that admits callers by account (kms:CallerAccount, "
        "aws:PrincipalAccount, aws:SourceAccount, aws:ResourceAccount, or an account in "
        "aws:PrincipalArn / aws:SourceArn) as for a principal: `Principal: *` with "
        "kms:CallerAccount 444455556666 lets that account in. The key's own account is not "
        "news; for a key added by the change every other account and service is."
    ),
)

# Condition keys whose values admit callers (or calling resources) by account.
_ACCOUNT_CONDITION_KEYS = frozenset(
    {
        "kms:calleraccount",
        "aws:principalaccount",
        "aws:sourceaccount",
        "aws:resourceaccount",
        "aws:principalarn",
        "aws:sourcearn",
    }
)

_ARN_ACCOUNT = re.compile(r"arn:[\w-]+:[^:]*:[^:]*:(\d{12}):.*")
_ACCOUNT_ID = re.compile(r"\d{12}")


def _account(value: str) -> str | None:
    """The account of an account ID or of an ARN that names one."""
    if _ACCOUNT_ID.fullmatch(value):
        return value
    match = _ARN_ACCOUNT.fullmatch(value)
    return match.group(1) if match else None


def _parties(principal: str) -> list[str]:
    """``account:<id>`` / ``service:<name>`` for a ``Type:value`` principal string."""
    kind, _, value = principal.partition(":")
    if kind == "Service":
        return [f"service:{value}"]
    account = _account(value)
    return [f"account:{account}"] if account else []


def _mentioned(statements: list[dict[str, Any]]) -> set[str]:
    """Every account and service a policy names: principals, and ARNs/IDs in conditions."""
    found: set[str] = set()
    for statement in statements:
        for field in ("Principal", "NotPrincipal"):
            if field in statement:
                for principal in principals({"Principal": statement[field]}):
                    found.update(_parties(principal))
        condition = statement.get("Condition") or {}
        if isinstance(condition, Mapping):
            for block in condition.values():
                if isinstance(block, Mapping):
                    for values in block.values():
                        found.update(
                            f"account:{a}" for v in values if (a := _account(str(v))) is not None
                        )
    return found


def _admits(statement: Mapping[str, Any], operator: str) -> bool:
    """Whether an account in this condition lets callers in: in an Allow, under any
    operator but a negated one; in a Deny, under a negated one (the account is exempt)."""
    negated = "Not" in operator
    return negated if statement.get("Effect") == "Deny" else not negated


def _action_text(statement: Mapping[str, Any]) -> list[str]:
    """The statement's actions as written (canonical), ``kms:*`` kept short."""
    if "Action" in statement:
        return [str(a) for a in statement["Action"]]
    return [f"every KMS action but {', '.join(statement.get('NotAction', []))}"]


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.head is None:
        return
    own = f"account:{subject.context.account_id}"
    known = _mentioned(subject.statements("base")) | {own}
    # party -> (principal -> actions), and the Sid of a statement naming each principal
    new: dict[str, dict[str, set[str]]] = {}
    sids: dict[str, str | None] = {}
    for statement in subject.statements("head"):
        if statement.get("Effect") != "Allow":
            continue
        for principal in principals(statement):
            for party in _parties(principal):
                if party in known:
                    continue
                granted = new.setdefault(party, {}).setdefault(principal, set())
                granted.update(_action_text(statement))
                sids.setdefault(principal, statement.get("Sid"))
    for statement in subject.statements("head"):
        for operator, key, values in conditions(statement):
            if key not in _ACCOUNT_CONDITION_KEYS or not _admits(statement, operator):
                continue
            for value in values:
                account = _account(value)
                party = f"account:{account}"
                if account is None or party in known:
                    continue
                who = f"callers with {key} = {value} ({label(statement)})"
                new.setdefault(party, {}).setdefault(who, set()).update(_action_text(statement))
                sids.setdefault(who, statement.get("Sid"))
    where = "added key" if change.base is None else "key"
    for party, grants in sorted(new.items()):
        kind, _, name = party.partition(":")
        what = f"account {name}" if kind == "account" else f"service principal {name}"
        lines = tuple(
            f"{p} gains {', '.join(sorted(a)) or 'no KMS action'}"
            for p, a in sorted(grants.items())
        )
        more = f" (and {len(lines) - 1} more, see details)" if len(lines) > 1 else ""
        yield Hit(
            f"{where} {change.name}: {what} appears in the policy for the first time: "
            f"{lines[0]}{more}",
            sid=sids[min(grants)],
            details=lines,
        )
