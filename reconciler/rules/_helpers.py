"""Small helpers the rules share: reading canonical statements."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from reconciler import catalog
from reconciler.policy import expand_actions

DECRYPT_ACTIONS = frozenset(f"kms:{name}" for name in catalog.PLAINTEXT_OPERATIONS)
"""Actions that reveal plaintext (or make data keys whose plaintext the caller gets, or
recover an encapsulated shared secret): catalog.PLAINTEXT_OPERATIONS."""

KEY_HOLDER_ACTIONS = frozenset(f"kms:{name}" for name in catalog.KEY_HOLDER_OPERATIONS)
"""Every decrypt-, sign-, MAC-, key-agreement- or decapsulation-class action
(catalog.OPERATION_CLASSES): what only the key holder should do."""

PERMISSION_ACTIONS = frozenset({"kms:PutKeyPolicy", "kms:CreateGrant"})
"""Actions that hand out access to others."""


def principals(statement: Mapping[str, Any]) -> Iterator[str]:
    """``"*"`` or ``"Type:value"`` for each principal of a canonical statement."""
    value = statement.get("Principal")
    if value == "*":
        yield "*"
    elif isinstance(value, Mapping):
        for kind, items in sorted(value.items()):
            for item in items:
                yield "*" if item == "*" else f"{kind}:{item}"


def actions(statement: Mapping[str, Any]) -> frozenset[str]:
    """The KMS actions an Allow/Deny statement covers (NotAction: all others)."""
    if "NotAction" in statement:
        return expand_actions(["kms:*"]) - expand_actions(statement["NotAction"])
    return expand_actions(statement.get("Action", []))


def condition_keys(statement: Mapping[str, Any]) -> set[str]:
    """Lower-cased condition keys of a canonical statement."""
    return {k for block in (statement.get("Condition") or {}).values() for k in block}


def sid(statement: Mapping[str, Any]) -> str | None:
    """A statement's Sid, when it has a textual one (used to locate findings)."""
    value = statement.get("Sid")
    return value if isinstance(value, str) else None


def conditions(statement: Mapping[str, Any]) -> Iterator[tuple[str, str, list[str]]]:
    """(operator, lower-cased key, values) of each condition of a canonical statement."""
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return
    for operator, block in condition.items():
        if isinstance(block, Mapping):
            for key, values in block.items():
                items = values if isinstance(values, list) else [values]
                yield str(operator), str(key).lower(), [str(v) for v in items]


def label(statement: Mapping[str, Any]) -> str:
    sid = statement.get("Sid")
    return f'statement "{sid}"' if sid else "a statement without Sid"
