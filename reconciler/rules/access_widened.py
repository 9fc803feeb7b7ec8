"""KMS102: some principal gains an action it did not have before."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.findings import Rule, Severity
from reconciler.policy import access
from reconciler.review import Hit, Subject
from reconciler.rules._conditions import implies
from reconciler.rules._helpers import KEY_HOLDER_ACTIONS

RULE = Rule(
    id="KMS102",
    severity=Severity.MEDIUM,
    title="Access widened",
    rationale=(
        "Every action a principal gains is a new way to use or manage the key. A gain is "
        "counted when the base did not already allow that action to the principal (or to "
        '"*") under conditions at most as strict; so rewording, reordering, moving a '
        "principal between statements and tightening a condition are not gains. "
        'High when "*" (or every principal but some, NotPrincipal) gains a decrypt-, sign-, '
        "MAC-, key-agreement- or decapsulation-class action, even under a condition that "
        "pins the caller to the organization or an account: every principal there, with no "
        "IAM policy of its own needed, can then act as the key holder; that is the reach "
        "KMS006 and KMS101 rank high or critical for a single outside principal."
    ),
)

Conditions = Mapping[str, Mapping[str, list[str]]]


def _parse(conditions: str) -> Conditions:
    return json.loads(conditions) if conditions else {}


def _covered(
    base: dict[tuple[str, str], frozenset[str]], principal: str, conditions: str, action: str
) -> bool:
    new = _parse(conditions)
    return any(
        action in actions and who in (principal, "*") and implies(new, _parse(old))
        for (who, old), actions in base.items()
    )


def _describe(conditions: str) -> str:
    if not conditions:
        return ""
    parsed: Mapping[str, Any] = json.loads(conditions)
    parts = [
        f"{operator} {key}={','.join(values)}"
        for operator, block in sorted(parsed.items())
        if isinstance(block, Mapping)
        for key, values in sorted(block.items())
    ]
    return f" when {'; '.join(parts)}" if parts else f" when {conditions}"


def _short(actions: list[str], limit: int = 6) -> str:
    more = f" and {len(actions) - limit} more" if len(actions) > limit else ""
    return ", ".join(actions[:limit]) + more


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.base is None or change.head is None:
        return
    base_doc, head_doc = change.base.state.policy, change.head.state.policy
    if base_doc is None or head_doc is None:
        return
    partition = subject.context.partition
    gains: list[tuple[str, str, list[str]]] = []
    witnesses: list[str] = []
    for item in change.access:
        # Proven by the policy-semantics engine: a request the base denied (a Deny
        # removed counts) that the head allows.
        actions = sorted(item.gained)
        if actions:
            gains.append((item.principal, item.conditions, actions))
            if item.witness:
                witnesses.append(item.witness)
    if not gains:
        return
    lines = (
        *(f"{p} gains {', '.join(a)}{_describe(c)}" for p, c, a in gains),
        *witnesses,  # the request that shows each gain
    )
    principal, conditions, actions = gains[0]
    more = f", and {len(gains) - 1} more grant(s) widen (see details)" if len(gains) > 1 else ""
    sid = next(
        (
            g.sid
            for g in access(head_doc, partition=partition)
            if (g.principal, g.conditions) == (principal, conditions)
        ),
        None,
    )
    everyone = any(
        (p == "*" or p.startswith("NotPrincipal:")) and KEY_HOLDER_ACTIONS.intersection(a)
        for p, _, a in gains
    )
    yield Hit(
        f"key {change.name} widens access: {principal} gains {_short(actions)}"
        f"{_describe(conditions)}{more}",
        sid=sid,
        details=lines,
        severity=Severity.HIGH if everyone else None,
    )
