"""JSON Schemas for editors (``kms-reconciler schema``): generated from the models, committed
under schemas/ and named by every sample and example; what a schema rejects, the loader
rejects too."""

from __future__ import annotations

import copy
import json
import random
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from reconciler import schema
from reconciler.cli import main
from reconciler.errors import InputError
from reconciler.loader import load_inventory

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p for base in ("keyspecs", "examples") for p in (REPO / base).rglob("*.yaml"))
INVENTORY = {"targets": [{"name": "prod", "account_id": "111122223333", "region": "us-east-1"}]}
VALID_KEY: dict[str, Any] = {
    "name": "app-data",
    "description": "data key",
    "key_spec": "SYMMETRIC_DEFAULT",
    "key_usage": "ENCRYPT_DECRYPT",
    "aliases": ["alias/app-data"],
    "rotation": {"enabled": True, "period_days": 365},
    "deletion_window_days": 30,
    "tags": {"Owner": "team"},
}


def as_json(value: Any) -> Any:
    """YAML as an editor's YAML 1.2 schema reads it: dates stay strings."""
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema.schemas()[name])


def test_the_committed_schemas_are_the_generated_ones() -> None:
    for name, document in schema.schemas().items():
        committed = (REPO / "schemas" / name).read_text(encoding="utf-8")
        assert committed == schema.dumps(document), (
            f"schemas/{name} is stale: run kms-reconciler schema --out schemas"
        )
        jsonschema.Draft202012Validator.check_schema(document)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_sample_names_its_schema_and_is_valid_against_it(path: Path) -> None:
    name = "inventory.schema.json" if path.name == "inventory.yaml" else "keyfile.schema.json"
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=") and first.endswith(name)
    target = (path.parent / first.split("=", 1)[1]).resolve()
    assert target == (REPO / "schemas" / name).resolve()
    errors = list(validator(name).iter_errors(as_json(yaml.safe_load(path.read_text()))))
    assert errors == [], [e.message for e in errors]


def test_schema_command_prints_or_writes_both(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert set(json.loads(result.stdout)) == set(schema.FILES)
    written = CliRunner().invoke(main, ["schema", "--out", str(tmp_path / "s")])
    assert written.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(schema.FILES)


# -- what the schema rejects, the loader rejects too ---------------------------------------

# Values a hand or a bad merge might put in a key's fields.
BAD_VALUES: list[Any] = [
    None,
    "",
    "x" * 300,
    "Bad_Name",
    "alias/aws/x",
    "alias/kms-reconciler/apply-lock",
    "SYMMETRIC",
    "RSA_2048",
    "SIGN_VERIFY",
    "EXTERNAL",
    "AWS_CLOUDHSM",
    -1,
    0,
    7,
    31,
    3000,
    1.5,
    True,
    "yes",
    [],
    ["alias/ok", "alias/ok"],
    [1, 2],
    {},
    {"enabled": "yes"},
    {"period_days": 10},
    {"Owner": 5},
    {"aws:x": "y"},
]
FIELDS = [
    "name",
    "description",
    "key_spec",
    "key_usage",
    "origin",
    "aliases",
    "rotation",
    "deletion_window_days",
    "deletion_protection",
    "enabled",
    "tags",
    "multi_region",
    "colour",
]


def generated_keys(count: int) -> list[dict[str, Any]]:
    rng = random.Random(13)
    keys = []
    for _ in range(count):
        key = copy.deepcopy(VALID_KEY)
        for _ in range(rng.choice((1, 1, 2))):
            key[rng.choice(FIELDS)] = copy.deepcopy(rng.choice(BAD_VALUES))
        keys.append(key)
    return keys


def loader_accepts(tmp_path: Path, key: dict[str, Any], n: int) -> bool:
    root = tmp_path / f"inv{n}"
    root.mkdir()
    (root / "inventory.yaml").write_text(yaml.safe_dump(INVENTORY))
    (root / "keys.yaml").write_text(yaml.safe_dump({"keys": [key]}))
    try:
        load_inventory(root)
    except InputError:
        return False
    return True


def test_what_the_schema_rejects_the_loader_rejects(tmp_path: Path) -> None:
    check = validator("keyfile.schema.json")
    assert check.is_valid({"keys": [VALID_KEY]}) and loader_accepts(tmp_path, VALID_KEY, -1)
    rejected = 0
    for n, key in enumerate(generated_keys(300)):
        if not check.is_valid({"keys": [key]}):
            rejected += 1
            assert not loader_accepts(tmp_path, key, n), key
    assert rejected > 150  # the corpus does exercise the schema
