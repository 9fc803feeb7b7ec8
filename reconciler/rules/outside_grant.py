"""KMS110: a declared grant newly lets a principal outside the account use the key."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject

RULE = Rule(
    id="KMS110",
    severity=Severity.HIGH,
    title="Grant to a principal outside the account",
    rationale=(
        "A grant is access that the key policy does not show: a grant to a principal of "
        "another account (not the target's, not a trusted account) lets that account use "
        "the key, and with Decrypt, signing, MAC, key agreement or CreateGrant it can read "
        "data or pass the access on. Reviewers who read only the policy miss it."
    ),
)


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.head is None:
        return
    before = set(change.base.state.grants or ()) if change.base is not None else set()
    for grant in sorted(change.head.state.grants or (), key=lambda g: g.name):
        if grant in before:
            continue  # declared already, by what it allows
        account = subject.context.account_of(grant.grantee_principal)
        if account is None or subject.context.is_inside(grant.grantee_principal):
            continue
        what = "added key" if change.base is None else "key"
        yield Hit(
            f"{what} {change.name}: grant '{grant.name}' lets {grant.grantee_principal} "
            f"(account {account}) {', '.join(grant.operations)}",
            severity=None if grant.sensitive else Severity.MEDIUM,
            details=(grant.text,),
        )
