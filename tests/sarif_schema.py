"""The official SARIF 2.1.0 JSON Schema, vendored under tests/schemas/ (see its README)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_FILE = Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json"
SCHEMA_ID = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)


@cache
def sarif_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["id"] == SCHEMA_ID
    jsonschema.validators.validator_for(schema).check_schema(schema)
    return schema


def sarif_errors(document: dict[str, Any]) -> list[str]:
    """Where ``document`` breaks the SARIF 2.1.0 schema (the first ten places)."""
    schema = sarif_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    return [f"{list(e.path)}: {e.message}" for e in errors[:10]]
