"""KMS006: decrypt or permission management for principals outside the trusted accounts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler import catalog
from reconciler.findings import Rule, Severity
from reconciler.review import Context, Hit, Subject
from reconciler.rules._helpers import (
    DECRYPT_ACTIONS,
    KEY_HOLDER_ACTIONS,
    PERMISSION_ACTIONS,
    actions,
    label,
    principals,
)

RULE = Rule(
    id="KMS006",
    severity=Severity.HIGH,
    title="Key-holder operations or permission management for principals outside the organization",
    rationale=(
        "A principal of an account that is neither the key's account, an inventory trusted "
        "account nor (by an aws:PrincipalOrgID / aws:PrincipalOrgPaths condition) a member "
        "of the organization can act as the key holder (any decrypt-, sign-, MAC-, "
        "key-agreement- or decapsulation-class operation: Decrypt, ReEncryptFrom, "
        "GenerateDataKey, GenerateDataKeyPair, Sign, GenerateMac, DeriveSharedSecret, "
        "Decapsulate) or hand out access (PutKeyPolicy, CreateGrant). kms:ViaService or an "
        "encryption context does not change who the caller is. High, as drift ranks an "
        "undeclared grant of the same operations (one table: catalog.OPERATION_CLASSES); "
        "critical when plaintext or an encapsulated secret is reachable."
    ),
)

SENSITIVE = KEY_HOLDER_ACTIONS | PERMISSION_ACTIONS

ORG_ID = "aws:principalorgid"
ORG_PATHS = "aws:principalorgpaths"

# Operators under which a condition on the org keys admits only the named organizations.
# *IfExists and ForAllValues:* pass when the key is missing (a caller outside any
# organization); negated operators admit every other organization.
PINNING_OPERATORS = frozenset(
    {
        "StringEquals",
        "StringLike",
        "ForAnyValue:StringEquals",
        "ForAnyValue:StringLike",
    }
)


def _named_org(key: str, value: str) -> str | None:
    """The organization a condition value names exactly (no wildcard), else None."""
    org = value.split("/", 1)[0] if key == ORG_PATHS else value
    return None if any(c in org for c in "*?") else org


def in_organization(statement: Mapping[str, Any], organization_ids: frozenset[str]) -> bool:
    """The statement only applies to callers of the inventory's organizations: an org
    condition under a pinning operator whose every value names one of them."""
    condition = statement.get("Condition") or {}
    for operator, block in condition.items():
        if operator not in PINNING_OPERATORS or not isinstance(block, Mapping):
            continue
        for key in (ORG_ID, ORG_PATHS):
            values = block.get(key) or []
            if values and all(_named_org(key, v) in organization_ids for v in values):
                return True
    return False


def outsiders(statement: Mapping[str, Any], context: Context) -> list[str]:
    """The AWS principals of the statement whose account is neither the target's nor a
    trusted one. "*" is KMS001's; services and principals without an account are left out."""
    found: list[str] = []
    for principal in principals(statement):
        if principal == "*" or not principal.startswith("AWS:"):
            continue
        if context.account_of(principal) is not None and not context.is_inside(principal):
            found.append(principal.removeprefix("AWS:"))
    return found


def check(subject: Subject) -> Iterable[Hit]:
    context = subject.context
    for statement in subject.statements("head"):
        if statement.get("Effect") != "Allow" or "Principal" not in statement:
            continue
        sensitive = actions(statement) & SENSITIVE
        if not sensitive:
            continue
        outside = outsiders(statement, context)
        if not outside or in_organization(statement, context.organization_ids):
            continue
        decrypt = sorted(sensitive & DECRYPT_ACTIONS)
        holder = sorted(sensitive & KEY_HOLDER_ACTIONS - DECRYPT_ACTIONS)
        manage = sorted(sensitive & PERMISSION_ACTIONS)
        accounts = sorted({context.account_of(p) or "?" for p in outside})
        details: list[str] = []
        if decrypt:
            details.append(f"plaintext reachable through {', '.join(decrypt)}")
        for action in holder:
            kind = catalog.operation_class(action)
            details.append(f"acts as the key holder ({kind}) through {action}")
        if manage:
            details.append(f"access can be handed out through {', '.join(manage)}")
        details.append(
            "outside account(s) "
            + ", ".join(accounts)
            + ": not the key's account, not trusted, not pinned to the organization"
        )
        yield Hit(
            f"{label(statement)} allows {', '.join(sorted(sensitive))} to "
            f"{', '.join(outside)}, outside the key's account, the trusted accounts and "
            "the organization",
            sid=statement.get("Sid"),
            severity=Severity.CRITICAL if decrypt else None,
            details=tuple(details),
        )
