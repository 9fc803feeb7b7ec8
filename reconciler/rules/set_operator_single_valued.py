"""KMS011: ForAnyValue / ForAllValues on a condition key that has one value per request."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler import catalog
from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import conditions, label, sid

RULE = Rule(
    id="KMS011",
    severity=Severity.MEDIUM,
    title="Set operator on a single-valued condition key",
    rationale=(
        "ForAnyValue and ForAllValues compare sets of values: they belong on multi-valued keys "
        "such as kms:EncryptionContextKeys or aws:TagKeys. On a single-valued key "
        "(aws:SourceAccount, kms:ViaService, kms:EncryptionContext:<key>) they are misleading, "
        "and ForAllValues also passes when the key is missing from the request."
    ),
)

SET_PREFIXES = ("foranyvalue:", "forallvalues:")


def single_valued(key: str) -> bool:
    """A known condition key with one value per request (kms:EncryptionContext:<k> is one;
    kms:EncryptionContextKeys is not). Unknown keys are KMS013's business."""
    k = key.lower()
    return catalog.known_condition_key(k) and k not in catalog.MULTI_VALUED_CONDITION_KEYS


def check(subject: Subject) -> Iterable[Hit]:
    for statement in subject.statements("head"):
        found = [
            (operator, key)
            for operator, key, _values in conditions(statement)
            if operator.lower().startswith(SET_PREFIXES) and single_valued(key)
        ]
        if not found:
            continue
        pairs = [f"{operator} on {key}" for operator, key in found]
        plain = sorted({operator.split(":", 1)[1] for operator, _ in found})
        yield Hit(
            f"{label(statement)} uses a set operator on a single-valued condition key "
            f"({'; '.join(pairs)}); use the plain operator ({', '.join(plain)}) instead, "
            "since ForAnyValue/ForAllValues are for multi-valued keys and ForAllValues "
            "also passes when the key is missing",
            sid=sid(statement),
            details=tuple(pairs),
        )
