"""The pre-commit hooks run real commands, offline, on an inventory repository."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli import main

REPO = Path(__file__).resolve().parent.parent
HOOKS = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}


def run_hook(hook_id: str) -> tuple[int, str]:
    words = shlex.split(HOOKS[hook_id]["entry"])
    assert words[0] == "kms-reconciler"
    result = CliRunner().invoke(main, words[1:])
    return result.exit_code, result.output


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(REPO / "keyspecs", tmp_path / "keyspecs")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "inventory")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_hooks_are_declared_for_key_files() -> None:
    assert set(HOOKS) == {"kms-reconciler-validate", "kms-reconciler-lint"}
    for hook in HOOKS.values():
        assert hook["language"] == "python" and hook["pass_filenames"] is False
        assert hook["files"] == "^keyspecs/"


def test_validate_hook_passes_a_good_inventory_and_stops_a_bad_one(repository: Path) -> None:
    assert run_hook("kms-reconciler-validate")[0] == 0
    (repository / "keyspecs" / "bad.yaml").write_text("keys:\n  - name: Bad_Name\n")
    code, output = run_hook("kms-reconciler-validate")
    assert code == 1 and "keyspecs/bad.yaml" in output and "Bad_Name" in output


def test_lint_hook_blocks_a_change_that_opens_decrypt_to_everyone(repository: Path) -> None:
    assert run_hook("kms-reconciler-lint")[0] == 0  # no change: nothing to block
    template = repository / "keyspecs" / "policies" / "application.json.j2"
    text = template.read_text()
    public = (
        '    {\n      "Sid": "Everyone",\n      "Effect": "Allow",\n'
        '      "Principal": {"AWS": "*"},\n      "Action": "kms:Decrypt",\n'
        '      "Resource": "*"\n    },\n'
    )
    template.write_text(text.replace('  "Statement": [\n', '  "Statement": [\n' + public, 1))
    code, output = run_hook("kms-reconciler-lint")
    assert code == 2, output  # blocking findings
    assert "KMS101" in output  # decrypt newly granted outside the account: to everyone
