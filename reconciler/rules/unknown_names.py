"""KMS013: an action or a condition key that KMS does not know (a typo, or another service)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from reconciler import catalog
from reconciler.findings import Rule, Severity
from reconciler.policy import ALL_KMS_ACTIONS, expand_actions
from reconciler.review import Hit, Subject
from reconciler.rules._helpers import label, sid

RULE = Rule(
    id="KMS013",
    severity=Severity.MEDIUM,
    title="Unknown action or condition key",
    rationale=(
        "A misspelt action (kms:Decrpyt) or a pattern that matches no KMS action (kms:Foo*) "
        "grants or denies nothing, and a key policy only applies to KMS actions, so s3:* "
        "does nothing either. A condition on an unknown key is never present in a request: "
        "the statement never applies (or, with IfExists, always does)."
    ),
)

_ACTION_NAMES = sorted(ALL_KMS_ACTIONS)
_CONDITION_NAMES = sorted(catalog.KMS_CONDITION_KEYS | catalog.GLOBAL_CONDITION_KEYS)
_CONDITION_PREFIXES = (*catalog.KMS_CONDITION_KEY_PREFIXES, *catalog.GLOBAL_CONDITION_KEY_PREFIXES)


def _patterns(statement: Mapping[str, Any]) -> Iterator[str]:
    for field in ("Action", "NotAction"):
        value = statement.get(field)
        items = value if isinstance(value, list) else [] if value is None else [value]
        yield from (str(item) for item in items)


def _condition_keys(statement: Mapping[str, Any]) -> Iterator[str]:
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return
    for block in condition.values():
        if isinstance(block, Mapping):
            yield from (str(key).lower() for key in block)


def known_action(pattern: str) -> bool:
    """The pattern matches at least one action of the KMS catalog."""
    return bool(expand_actions([pattern]) & ALL_KMS_ACTIONS)


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=1)
    if not close:
        return ""
    original = next(c for c in candidates if c.lower() == close[0])
    return f", did you mean {original}?"


def _action_problem(pattern: str) -> str:
    service, sep, _ = pattern.partition(":")
    if sep and service.lower() != "kms":
        return f"{pattern} is not a KMS action"
    if not sep:
        return f"{pattern} is not an action (service:Name)"
    if any(c in pattern for c in "*?"):
        return f"{pattern} matches no KMS action"
    return f"{pattern} is not a KMS action{_suggest(pattern, _ACTION_NAMES)}"


def _key_problem(key: str) -> str:
    if ":" not in key:
        return f"{key} is not a condition key (service:Name)"
    known = [*_CONDITION_NAMES, *(p.rstrip(":/") for p in _CONDITION_PREFIXES)]
    return f"{key} is not a known condition key{_suggest(key, known)}"


def check(subject: Subject) -> Iterable[Hit]:
    for statement in subject.statements("head"):
        problems = [_action_problem(p) for p in _patterns(statement) if not known_action(p)]
        problems += [
            _key_problem(k)
            for k in sorted(set(_condition_keys(statement)))
            if not catalog.known_condition_key(k)
        ]
        if not problems:
            continue
        yield Hit(
            f"{label(statement)} names what KMS does not know: {'; '.join(problems)}; fix the "
            "spelling or remove it, since an unknown action grants or denies nothing and a "
            "condition on an unknown key never matches a request",
            sid=sid(statement),
            details=tuple(problems),
        )
