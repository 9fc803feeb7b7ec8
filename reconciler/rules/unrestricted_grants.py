"""KMS007: kms:CreateGrant without kms:GrantIsForAWSResource for someone not the root."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.policy import expand_actions
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import actions, label, principals

RULE = Rule(
    id="KMS007",
    severity=Severity.MEDIUM,
    title="CreateGrant not limited to AWS services",
    rationale=(
        "A principal with kms:CreateGrant can give any other principal (itself included) "
        "the key's operations through a grant, which the key policy does not show. With "
        'a kms:GrantIsForAWSResource = "true" condition only an integrated AWS service '
        "(EBS, RDS, ...) can create grants on the principal's behalf."
    ),
)

CREATE_GRANT = "kms:CreateGrant"
FOR_AWS_RESOURCE = "kms:grantisforawsresource"
# Operators that require the key to be present and "true" (*IfExists would pass without it).
REQUIRING_OPERATORS = frozenset({"Bool", "StringEquals", "StringEqualsIgnoreCase"})


def for_aws_resource(statement: Mapping[str, Any]) -> bool:
    condition = statement.get("Condition") or {}
    for operator, block in condition.items():
        if operator not in REQUIRING_OPERATORS or not isinstance(block, Mapping):
            continue
        values = block.get(FOR_AWS_RESOURCE) or []
        if values and all(v.lower() == "true" for v in values):
            return True
    return False


def show(principal: str) -> str:
    if principal == "*":
        return '"*" (every principal)'
    kind, _, value = principal.partition(":")
    return value if kind == "AWS" else f"{kind.lower()} {value}"


def _how(statement: Mapping[str, Any]) -> str:
    """How the statement reaches CreateGrant: directly, or through which patterns."""
    if "NotAction" in statement:
        return "through NotAction " + ", ".join(statement["NotAction"])
    patterns = statement.get("Action", [])
    if CREATE_GRANT in patterns:
        return "directly"
    reaching = [p for p in patterns if CREATE_GRANT in expand_actions([p])]
    return "through " + ", ".join(reaching)


def check(subject: Subject) -> Iterable[Hit]:
    root = f"AWS:arn:{subject.context.partition}:iam::{subject.context.account_id}:root"
    for statement in subject.statements("head"):
        if statement.get("Effect") != "Allow" or "Principal" not in statement:
            continue
        if CREATE_GRANT not in actions(statement) or for_aws_resource(statement):
            continue
        others = [show(p) for p in principals(statement) if p != root]
        if not others:
            continue
        yield Hit(
            f"{label(statement)} allows kms:CreateGrant ({_how(statement)}) to "
            f'{", ".join(others)} without a kms:GrantIsForAWSResource = "true" condition',
            sid=statement.get("Sid"),
            details=("a grantee can pass the key's operations on to any principal by grant",),
        )
