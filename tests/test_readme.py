"""The README's examples are true: its ```console blocks are run on the sample inventory
and their output compared (a line ``...`` stands for any lines), every command has an
example of its output, and no document calls a shipped command "planned"."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from reconciler.cli import main

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
CONSOLE = re.findall(r"```console\n(.*?)```", README, re.S)


def examples() -> list[tuple[str, list[str]]]:
    """(command line, expected output lines) of every ``$ kms-reconciler`` in a console block."""
    out: list[tuple[str, list[str]]] = []
    for block in CONSOLE:
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out:
                out[-1][1].append(line)
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` equals ``actual``, each ``...`` line standing for zero or more lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line == "..." else re.escape(line) + r"\n" for line in expected
    )
    return (
        re.fullmatch(
            pattern + r"(?:[^\n]*\n)*" * (expected[-1:] == ["..."]),
            "".join(line + "\n" for line in actual),
        )
        is not None
    )


@pytest.mark.parametrize(("command", "expected"), examples(), ids=lambda v: str(v)[:40])
def test_a_console_example_prints_what_the_readme_shows(
    command: str, expected: list[str], tmp_path: Path
) -> None:
    shutil.copytree(REPO / "keyspecs", tmp_path / "keyspecs")
    argv = shlex.split(command)
    assert argv[0] == "kms-reconciler"
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *argv[1:]],
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    actual = (done.stdout + done.stderr).splitlines()
    assert matches(expected, actual), "\n".join(["README:", *expected, "actual:", *actual])


def test_the_matcher_can_fail() -> None:
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert not matches(["a", "...", "d"], ["a", "b", "c"])
    assert not matches(["a", "b"], ["a", "b", "c"])
    assert matches(["a", "..."], ["a", "b", "c"])


def test_every_command_has_an_example_of_its_output_in_the_readme() -> None:
    assert isinstance(main, click.Group)
    missing = []
    for name in main.list_commands(click.Context(main)):
        # a line "$ kms-reconciler NAME ..." followed by at least one line of output
        if not re.search(rf"^\s*\$ kms-reconciler {re.escape(name)}\b.*\n\s*[^`\s$]", README, re.M):
            missing.append(name)
    assert not missing, f"no example output in the README for: {', '.join(missing)}"


@pytest.mark.parametrize(
    "path",
    [
        REPO / "README.md",
        *sorted((REPO / "examples").rglob("*.md")),
        *sorted((REPO / "examples").rglob("*.yaml")),
    ],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_no_document_calls_a_command_planned_or_not_implemented(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\*\*planned\*\*|not implemented|the planned `kms-reconciler", text)
