"""KMS017: a principal written as an IAM unique ID (AROA..., AIDA...): a deleted role or user."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler import catalog
from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import label, sid

RULE = Rule(
    id="KMS017",
    severity=Severity.MEDIUM,
    title="Principal is a unique ID (deleted role or user)",
    rationale=(
        "When an IAM role or user named in a key policy is deleted, KMS shows it by its "
        "unique ID (AROA... for a role, AIDA... for a user). The statement then matches "
        "nobody, and a new role or user of the same name does not match it either: access "
        "silently breaks when the name is reused. Remove it, or name the principal by ARN."
    ),
)

UNIQUE_ID = catalog.UNIQUE_ID_PRINCIPAL


def unique_ids(statement: Mapping[str, Any]) -> list[str]:
    """The AWS principals (Principal or NotPrincipal) written as role / user unique IDs."""
    found: list[str] = []
    for field in ("Principal", "NotPrincipal"):
        value = statement.get(field)
        if not isinstance(value, Mapping):
            continue
        items = value.get("AWS")
        items = [items] if isinstance(items, str) else items or []
        found += [v for v in items if isinstance(v, str) and UNIQUE_ID.fullmatch(v)]
    return sorted(set(found))


def check(subject: Subject) -> Iterable[Hit]:
    for statement in subject.statements("head"):
        ids = unique_ids(statement)
        if not ids:
            continue
        yield Hit(
            f"{label(statement)} names {', '.join(ids)}, the unique ID KMS shows for a deleted "
            "IAM role or user, so it matches nobody now and will not match a new principal of "
            "the same name; remove it, or name the current principal by its ARN",
            sid=sid(statement),
            details=tuple(ids),
        )
