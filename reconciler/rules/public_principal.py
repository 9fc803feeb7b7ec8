"""KMS001: an Allow to every principal, without a condition that restricts the caller."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.review import Context, Hit, Subject
from reconciler.rules._helpers import DECRYPT_ACTIONS, actions, label, principals

RULE = Rule(
    id="KMS001",
    severity=Severity.HIGH,
    title="Public principal without a restricting condition",
    rationale=(
        'An Allow to "*" (or {"AWS": "*"}) lets any AWS account use the key unless a '
        "condition pins the caller: aws:PrincipalOrgID, aws:PrincipalAccount, "
        "kms:CallerAccount, aws:PrincipalArn, aws:SourceAccount or aws:SourceArn, naming the "
        "inventory's own or trusted accounts or organizations. "
        "kms:ViaService alone does not: any account can call through that service."
    ),
)

# Condition keys that really limit who the caller is, by what their values name.
ACCOUNT_KEYS = frozenset({"aws:principalaccount", "kms:calleraccount", "aws:sourceaccount"})
ORG_KEYS = frozenset({"aws:principalorgid", "aws:sourceorgid", "aws:principalorgpaths"})
ARN_KEYS = frozenset({"aws:principalarn", "aws:sourcearn"})
RESTRICTING = ACCOUNT_KEYS | ORG_KEYS | ARN_KEYS | {"aws:userid"}
# Only positive operators pin the caller; IfExists passes when the key is absent.
PINNING = re.compile(r"^(ForAnyValue:)?(StringEquals|StringLike|ArnEquals|ArnLike)$")


def _pins(statement: Mapping[str, Any], context: Context) -> tuple[bool, list[str]]:
    """Whether a condition pins the caller, and to which outsiders it still lets in."""
    pinned, outsiders = False, []
    inside = {context.account_id, *context.trusted_accounts}
    for operator, block in (statement.get("Condition") or {}).items():
        if not PINNING.match(operator):
            continue
        for key, values in block.items():
            if key not in RESTRICTING:
                continue
            pinned = True
            for value in values:
                if key in ACCOUNT_KEYS and value not in inside:
                    outsiders.append(f"account {value}")
                elif key in ORG_KEYS and value.split("/")[0] not in context.organization_ids:
                    outsiders.append(f"organization {value}")
                elif key in ARN_KEYS:
                    parts = value.split(":")
                    account = parts[4] if len(parts) > 4 else "*"
                    if account not in inside:
                        outsiders.append(f"principals {value}")
    return pinned, outsiders


def check(subject: Subject) -> Iterable[Hit]:
    for statement in subject.statements("head"):
        if statement.get("Effect") != "Allow" or "*" not in principals(statement):
            continue
        pinned, outsiders = _pins(statement, subject.context)
        if pinned and not outsiders:
            continue
        granted = actions(statement)
        decrypt = sorted(granted & DECRYPT_ACTIONS)
        shown = f"{', '.join(sorted(granted)[:6])}{'...' if len(granted) > 6 else ''}"
        if outsiders:
            message = (
                f"{label(statement)} allows every AWS principal ({shown}) of "
                f"{', '.join(outsiders)}, outside the inventory's accounts and organizations"
            )
        else:
            message = (
                f"{label(statement)} allows every AWS principal ({shown}) "
                "with no condition that restricts the caller"
            )
        yield Hit(
            message,
            sid=statement.get("Sid"),
            severity=Severity.CRITICAL if decrypt else None,
            details=(f"plaintext reachable through {', '.join(decrypt)}",) if decrypt else (),
        )
