"""Review rules: one rule per module, each with an ID, a severity, a title, a rationale.

A module defines ``RULE`` (``reconciler.findings.Rule``) and either ``check(subject)`` (one
key change at a time) or ``check_all(subjects)`` (all changes at once). Modules are found
here by name, so adding a rule is adding a file; a test checks that every module is a
well-formed rule and that IDs are unique. Lint rules look at the head policy and state;
diff-aware rules compare base and head.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import ModuleType

from reconciler.findings import Rule
from reconciler.review import BatchRuleModule, RuleModule


@cache
def _modules() -> tuple[ModuleType, ...]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return tuple(importlib.import_module(f"{__name__}.{name}") for name in names)


def rules() -> tuple[RuleModule, ...]:
    """The rules that check one key change at a time, by ID."""
    found = [m for m in _modules() if hasattr(m, "check")]
    return tuple(sorted(found, key=lambda m: m.RULE.id))


def batch_rules() -> tuple[BatchRuleModule, ...]:
    """The rules that look at every change at once."""
    found = [m for m in _modules() if hasattr(m, "check_all")]
    return tuple(sorted(found, key=lambda m: m.RULE.id))


def all_rules() -> dict[str, Rule]:
    return {m.RULE.id: m.RULE for m in _modules()}
