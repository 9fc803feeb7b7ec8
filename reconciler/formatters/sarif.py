"""SARIF 2.1.0 documents, for GitHub code scanning. Shared by drift and review."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler import __version__

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/kms-reconciler/kms-reconciler"

# severity label -> (SARIF level, GitHub security-severity score)
LEVELS: Mapping[str, tuple[str, str]] = {
    "critical": ("error", "9.5"),
    "high": ("error", "8.0"),
    "medium": ("warning", "5.0"),
    "low": ("note", "2.0"),
}


@dataclass(frozen=True)
class SarifRule:
    id: str
    severity: str
    title: str
    rationale: str


@dataclass(frozen=True)
class SarifResult:
    rule: str
    severity: str
    message: str
    file: str | None
    line: int | None
    fingerprint: str  # stable identity of the finding across runs
    properties: Mapping[str, Any]


def _camel(rule_id: str) -> str:
    return "".join(part.capitalize() for part in rule_id.replace("_", "-").split("-"))


def sarif_document(
    rules: Iterable[SarifRule], results: Iterable[SarifResult], *, category: str
) -> dict[str, Any]:
    rule_list = sorted(rules, key=lambda r: r.id)
    index = {rule.id: i for i, rule in enumerate(rule_list)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "kms-reconciler",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [
                            {
                                "id": rule.id,
                                "name": _camel(rule.id),
                                "shortDescription": {"text": rule.title},
                                "fullDescription": {"text": rule.rationale},
                                "help": {"text": rule.rationale},
                                "defaultConfiguration": {"level": LEVELS[rule.severity][0]},
                                "properties": {
                                    "security-severity": LEVELS[rule.severity][1],
                                    "tags": ["security", "kms"],
                                },
                            }
                            for rule in rule_list
                        ],
                    }
                },
                "automationDetails": {"id": f"{category}/"},
                "results": [_result(r, index) for r in results],
            }
        ],
    }


def _result(result: SarifResult, index: Mapping[str, int]) -> dict[str, Any]:
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {"uri": (result.file or "keyspecs/inventory.yaml")},
            "region": {"startLine": max(1, result.line or 1)},
        }
    }
    return {
        "ruleId": result.rule,
        "ruleIndex": index[result.rule],
        "level": LEVELS[result.severity][0],
        "message": {"text": result.message},
        "locations": [location],
        "partialFingerprints": {
            "kmsReconciler/v1": hashlib.sha256(result.fingerprint.encode()).hexdigest()[:32]
        },
        "properties": dict(result.properties),
    }
