"""Comparing IAM conditions: is one set of conditions at least as strict as another?

Shared by the diff-aware rules (a widening, a removed Deny). Canonical conditions:
operator -> lower-cased key -> list of string values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Conditions = Mapping[str, Any]

# Operators whose values must match exactly: any change of values is a different rule.
_EXACT = ("Bool", "Null", "Numeric", "Date")


def values_at_least_as_strict(operator: str, new: list[str], old: list[str]) -> bool:
    if "Not" in operator:  # StringNotEquals etc.: more values exclude more callers
        return set(new) >= set(old)
    base = operator.split(":")[-1].removesuffix("IfExists")
    if base.startswith(_EXACT):
        return set(new) == set(old)
    return set(new) <= set(old)  # Equals, Like, IpAddress...: fewer values admit fewer


def implies(new: Conditions, old: Conditions) -> bool:
    """Whether every constraint of ``old`` is enforced at least as strictly by ``new``."""
    for operator, block in old.items():
        if not isinstance(block, Mapping):
            if new.get(operator) != block:
                return False
            continue
        # the same operator, or a stricter form of it (no IfExists, Equals for Like)
        equals = operator if "Not" in operator else operator.replace("Like", "Equals")
        candidates = {operator, operator.removesuffix("IfExists"), equals}
        candidates.add(equals.removesuffix("IfExists"))
        for key, values in block.items():
            if not any(
                isinstance(new.get(op), Mapping)
                and key in new[op]
                and values_at_least_as_strict(op, list(new[op][key]), list(values))
                for op in candidates
            ):
                return False
    return True
