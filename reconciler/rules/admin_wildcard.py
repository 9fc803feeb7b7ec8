"""KMS008: wildcard actions that include PutKeyPolicy / CreateGrant for a non-root principal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.policy import expand_actions
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import PERMISSION_ACTIONS, actions, label, principals

RULE = Rule(
    id="KMS008",
    severity=Severity.HIGH,
    title="Wildcard administration lets a principal grant itself decrypt",
    rationale=(
        "kms:*, kms:Create*, kms:Put* (and NotAction) include kms:PutKeyPolicy or "
        "kms:CreateGrant: whoever holds them can rewrite the policy or create a grant that "
        "gives itself (or anyone) Decrypt, so 'administrators' who are not meant to read "
        "data can. Only the account root delegation should hold them through a wildcard; "
        "list the management actions explicitly for everyone else."
    ),
)


def wildcard_sources(statement: Mapping[str, Any]) -> tuple[list[str], frozenset[str]]:
    """The patterns of the statement that reach PutKeyPolicy / CreateGrant through a
    wildcard (or "every action except" of NotAction), and the actions they reach."""
    if "NotAction" in statement:
        reached = actions(statement) & PERMISSION_ACTIONS
        return (["NotAction " + ", ".join(statement["NotAction"])] if reached else []), reached
    sources: list[str] = []
    reached_all: set[str] = set()
    for pattern in statement.get("Action", []):
        if not any(c in pattern for c in "*?"):
            continue
        reached = expand_actions([pattern]) & PERMISSION_ACTIONS
        if reached:
            sources.append(pattern)
            reached_all |= reached
    return sources, frozenset(reached_all)


def show(principal: str) -> str:
    if principal == "*":
        return '"*" (every principal)'
    kind, _, value = principal.partition(":")
    return value if kind == "AWS" else f"{kind.lower()} {value}"


def check(subject: Subject) -> Iterable[Hit]:
    root = f"AWS:arn:{subject.context.partition}:iam::{subject.context.account_id}:root"
    for statement in subject.statements("head"):
        if statement.get("Effect") != "Allow" or "Principal" not in statement:
            continue
        sources, reached = wildcard_sources(statement)
        if not sources:
            continue
        others = [show(p) for p in principals(statement) if p != root]
        if not others:
            continue
        yield Hit(
            f"{label(statement)} gives {', '.join(others)} {', '.join(sorted(reached))} "
            f"through {', '.join(sources)}: they can grant themselves decrypt",
            sid=statement.get("Sid"),
            details=(
                "list the management actions explicitly, without kms:PutKeyPolicy and "
                "kms:CreateGrant, or leave them to the account root delegation",
            ),
        )
