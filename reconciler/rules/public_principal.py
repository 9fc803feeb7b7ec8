"""KMS001: an Allow to every principal, without a condition that restricts the caller."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import DECRYPT_ACTIONS, actions, condition_keys, label, principals

RULE = Rule(
    id="KMS001",
    severity=Severity.HIGH,
    title="Public principal without a restricting condition",
    rationale=(
        'An Allow to "*" (or {"AWS": "*"}) lets any AWS account use the key unless a '
        "condition pins the caller: aws:PrincipalOrgID, aws:PrincipalAccount, "
        "kms:CallerAccount, aws:PrincipalArn, aws:SourceAccount or aws:SourceArn. "
        "kms:ViaService alone does not: any account can call through that service."
    ),
)

# Condition keys that really limit who the caller is.
RESTRICTING = frozenset(
    {
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:principalaccount",
        "kms:calleraccount",
        "aws:principalarn",
        "aws:sourceaccount",
        "aws:sourcearn",
        "aws:sourceorgid",
        "aws:userid",
    }
)


def check(subject: Subject) -> Iterable[Hit]:
    for statement in subject.statements("head"):
        if statement.get("Effect") != "Allow" or "*" not in principals(statement):
            continue
        if condition_keys(statement) & RESTRICTING:
            continue
        granted = actions(statement)
        decrypt = sorted(granted & DECRYPT_ACTIONS)
        yield Hit(
            f"{label(statement)} allows every AWS principal "
            f"({', '.join(sorted(granted)[:6])}{'...' if len(granted) > 6 else ''}) "
            "with no condition that restricts the caller",
            sid=statement.get("Sid"),
            severity=Severity.CRITICAL if decrypt else None,
            details=(f"plaintext reachable through {', '.join(decrypt)}",) if decrypt else (),
        )
