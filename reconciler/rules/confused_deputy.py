"""KMS010: an AWS service principal is allowed without pinning the source account or resource."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import conditions, label, sid

RULE = Rule(
    id="KMS010",
    severity=Severity.MEDIUM,
    title="Service principal without aws:SourceAccount or aws:SourceArn (confused deputy)",
    rationale=(
        "A service principal such as logs.amazonaws.com acts for every customer of that "
        "service. Without an aws:SourceAccount or aws:SourceArn condition (or aws:SourceOrgID "
        "/ aws:SourceOrgPaths), another account's resource can make the service use this key "
        "for it. kms:ViaService and encryption-context conditions do not pin the source."
    ),
)

# Condition keys that say on whose behalf the service calls (AWS's confused-deputy advice).
PINNING_KEYS = frozenset(
    {"aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid", "aws:sourceorgpaths"}
)
# Operators that require the key to be present and equal to (or match) a value. Negated
# operators, Null, IfExists variants and ForAllValues pass for other or missing sources.
PINNING_OPERATORS = frozenset(
    {"stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike"}
)


def _services(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if not isinstance(principal, Mapping):
        return []
    services = principal.get("Service")
    if isinstance(services, str):
        return [services]
    return [s for s in services or () if isinstance(s, str)]


def _pins(operator: str, values: list[str]) -> bool:
    op = operator.lower().removeprefix("foranyvalue:")
    return op in PINNING_OPERATORS and any(v != "*" for v in values)


def check(subject: Subject) -> Iterable[Hit]:
    for statement in subject.statements("head"):
        if statement.get("Effect") != "Allow":
            continue
        services = _services(statement)
        if not services:
            continue
        weak: list[str] = []
        pinned = False
        for operator, key, values in conditions(statement):
            if key not in PINNING_KEYS:
                continue
            if _pins(operator, values):
                pinned = True
            else:
                weak.append(f"{operator} {key} does not pin the source (missing or other values)")
        if pinned:
            continue
        yield Hit(
            f"{label(statement)} allows the service principal {', '.join(services)} without an "
            "aws:SourceAccount or aws:SourceArn condition, so another account's resources can "
            "make the service use this key (confused deputy); add StringEquals aws:SourceAccount "
            "or ArnLike aws:SourceArn naming your own account or resource",
            sid=sid(statement),
            details=tuple(weak),
        )
