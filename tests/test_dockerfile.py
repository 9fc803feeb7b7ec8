"""The Dockerfile, checked where no Docker engine runs (ci.yml builds and smoke-tests the
image on GitHub's runners): a non-root user, the tool as entrypoint, and a build stage
whose few copied files are enough to build the wheel the image installs."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            out.append([])
        if out:
            out[-1].append((word, rest))
    return out


def test_the_image_runs_the_tool_as_a_non_root_user() -> None:
    final = stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage sets no USER: the tool would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    assert any(word == "RUN" and f"--uid {uid}" in rest for word, rest in final)
    assert ("ENTRYPOINT", '["kms-reconciler"]') in final
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "PYTHONSAFEPATH=1" in env  # the mounted inventory is never on the import path


def test_the_final_stage_keeps_no_build_context() -> None:
    final = stages()[-1]
    copies = [rest for word, rest in final if word == "COPY"]
    assert copies and all(rest.startswith("--from=build ") for rest in copies), copies


def test_the_base_image_is_a_python_the_project_supports() -> None:
    image = re.search(r"^ARG PYTHON_IMAGE=python:(\d+)\.(\d+)", DOCKERFILE, re.M)
    assert image, "the base image is not an official python image with a version"
    requires = re.search(
        r'requires-python = ">=(\d+)\.(\d+)"', (REPO / "pyproject.toml").read_text()
    )
    assert requires
    assert (int(image[1]), int(image[2])) >= (int(requires[1]), int(requires[2]))


def build_sources() -> list[str]:
    build = stages()[0]
    sources = []
    for word, rest in build:
        if word == "COPY":
            *parts, _destination = rest.split()
            sources += [p for p in parts if not p.startswith("--")]
    return sources


def test_the_copied_files_exist_and_the_dockerignore_keeps_them() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".kms-sandbox"} <= ignored  # no local state in the context
    for source in build_sources():
        # scripts/check-dist runs the tests of the unpacked sdist without its reconciler/
        # folder (so that they test the installed package): look for that one installed
        path = REPO / source
        if source == "reconciler" and not path.exists():
            spec = importlib.util.find_spec("reconciler")
            assert spec is not None and spec.origin is not None
            path = Path(spec.origin).parent
        assert path.exists(), source
        assert source not in ignored, source


@pytest.mark.slow
def test_the_build_stage_files_are_enough_to_build_a_complete_wheel(tmp_path: Path) -> None:
    # What `docker build` does in the build stage, without Docker: copy only the files the
    # Dockerfile copies, build the wheel (offline: no build isolation), look inside it.
    context = tmp_path / "src"
    for source in build_sources():
        path = REPO / source
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(path, context / source)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--no-index", "--wheel-dir", str(tmp_path / "wheels"), str(context)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "wheels").glob("kms_reconciler-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = {
        str(path.relative_to(REPO))
        for pattern in ("reconciler/**/*.py", "reconciler/data/**/*")
        for path in REPO.glob(pattern)
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert packaged and packaged <= names, sorted(packaged - names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "kms-reconciler = reconciler.cli:main" in text
