"""JSON Schemas of the inventory format, generated from the pydantic models (``spec``).

Editors use them to complete and check key files and ``inventory.yaml`` as they are typed
(the YAML language server reads the ``# yaml-language-server: $schema=...`` line at the top
of each sample file). The models stay the authority: what a schema rejects, the loader
rejects too (a test checks that on generated inputs), with its one-line messages.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.spec import KeyFile, Settings

DIALECT = "https://json-schema.org/draft/2020-12/schema"
FILES: dict[str, tuple[type[KeyFile] | type[Settings], str]] = {
    "keyfile.schema.json": (KeyFile, "kms-reconciler key file: a top-level `keys:` list"),
    "inventory.schema.json": (Settings, "kms-reconciler inventory.yaml: targets and defaults"),
}


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema document."""
    out = {}
    for name, (model, title) in FILES.items():
        document = model.model_json_schema()
        out[name] = {"$schema": DIALECT, "title": title, **document}
    return out


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
