"""``kms-reconciler init``: a starter inventory that validates, plans and converges on the
sandbox, named by its schemas, and never written over anything."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

from reconciler import schema
from reconciler.cli import main

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_init_writes_an_inventory_that_plans_and_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KMS_RECONCILER_SANDBOX_DIR", str(tmp_path / ".kms-sandbox"))
    made = cli("init")
    assert made.exit_code == 0, made.output
    assert cli("validate").exit_code == 0
    planned = cli("plan", "--sandbox", "--detailed-exitcode")
    assert planned.exit_code == 2 and '+ key "app-data" will be created' in planned.stdout
    assert cli("apply", "--sandbox", "--auto-approve").exit_code == 0
    again = cli("plan", "--sandbox", "--detailed-exitcode")
    assert again.exit_code == 0 and "No changes." in again.stdout


def test_init_files_name_their_schemas_and_are_valid(tmp_path: Path) -> None:
    assert cli("init", str(tmp_path / "inv")).exit_code == 0
    root = tmp_path / "inv"
    for path, name in (
        (root / "inventory.yaml", "inventory.schema.json"),
        (root / "app.yaml", "keyfile.schema.json"),
    ):
        first = path.read_text().splitlines()[0]
        schema_path = path.parent / first.split("$schema=", 1)[1]
        document = yaml.safe_load(path.read_text())
        jsonschema.validate(document, yaml.safe_load(schema_path.read_text()))
        assert schema_path.read_text() == schema.dumps(schema.schemas()[name])


def test_the_shipped_template_is_the_samples(tmp_path: Path) -> None:
    assert cli("init", str(tmp_path / "inv")).exit_code == 0
    shipped = (tmp_path / "inv" / "policies" / "application.json.j2").read_text()
    assert shipped == (REPO / "keyspecs" / "policies" / "application.json.j2").read_text()


def test_init_never_writes_over_anything(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "mine.yaml").write_text("keys: []\n")
    result = cli("init", str(tmp_path / "inv"))
    assert result.exit_code == 1
    assert "exists and is not an empty folder; nothing was written" in result.stderr
    assert sorted(p.name for p in (tmp_path / "inv").iterdir()) == ["mine.yaml"]
