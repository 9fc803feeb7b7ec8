"""The shipped GitHub workflows keep a pull request from running its own code with
credentials or write tokens, and follow the hardening rules zizmor checks (also run by
.ci/run): actions pinned by commit, no persisted checkout token, no ``${{ }}`` expanded
into a shell script."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
# ci.yml tests the pull request's own code by design: no secrets, a read-only token.
PROJECT_CI = "ci.yml"


def load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def triggers(workflow: dict[Any, Any]) -> set[str]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    return set(on) if isinstance(on, dict | list) else {on}


def steps(workflow: dict[Any, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (job_name, step)
        for job_name, job in workflow["jobs"].items()
        for step in job.get("steps", [])
    ]


ACTION = REPO / "action.yml"
# The project's own composite action, from a checkout in the workspace: `./tool` (the base
# commit, in pull request jobs) or `./` (main's own checkout).
LOCAL_ACTIONS = ("./", "./tool")


def action_steps(path: Path) -> list[dict[str, Any]]:
    return (
        list(load(path)["runs"]["steps"]) if path == ACTION else [s for _, s in steps(load(path))]
    )


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit(path: Path) -> None:
    for step in action_steps(path):
        if "uses" in step and step["uses"] not in LOCAL_ACTIONS:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    # and the pin says which release it is, for the reader and for update tools
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"\s*(- )?uses: (?!\./)", line):
            assert re.search(r"@[0-9a-f]{40}  # v\d+\.\d+\.\d+$", line), line


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=lambda p: p.name)
def test_no_checkout_keeps_its_token_and_no_script_expands_an_expression(path: Path) -> None:
    for step in action_steps(path):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, step
        if "run" in step:
            assert "${{" not in step["run"], step["run"]


@pytest.mark.parametrize(
    "path", [p for p in WORKFLOWS if p.name != PROJECT_CI], ids=lambda p: p.name
)
def test_a_pull_request_never_runs_its_own_code(path: Path) -> None:
    workflow = load(path)
    if "pull_request" not in triggers(workflow) and "pull_request_target" not in triggers(workflow):
        return
    for job_name, job in workflow["jobs"].items():
        runs_on_prs = "pull_request" in str(job.get("if", "")) or job_name != "apply"
        if not runs_on_prs:
            continue  # runs on pushes to main only: main's own code
        checkouts = {
            step["with"].get("path", "."): step["with"].get("ref", "")
            for step in job["steps"]
            if step.get("uses", "").startswith("actions/checkout@")
        }
        # the tool comes from the base commit; the pull request's checkout is data
        assert "github.event.pull_request.base.sha" in checkouts.get("tool", ""), job_name
        for step in job["steps"]:
            if step.get("uses", "").startswith("./"):
                # the action of the base commit, run on the pull request's checkout
                assert step["uses"] == "./tool", (job_name, step)
                assert step["with"].get("working-directory") == "change", (job_name, step)
            script = step.get("run", "")
            for install in re.findall(r"pip install[^\n]*", script):
                assert install.rstrip().endswith("./tool"), (job_name, install)
            assert "python -m reconciler" not in script, job_name
            if re.search(r"(?m)(^\s*|\$\()kms-reconciler ", script):  # runs the tool
                assert step.get("env", {}).get("PYTHONSAFEPATH") == "1", (job_name, step)
                assert step.get("working-directory") == "change", (job_name, step)


def test_the_tool_runs_from_a_pull_request_checkout_without_importing_it(
    tmp_path: Path,
) -> None:
    # A pull request could add its own `reconciler` package beside keyspecs/; with
    # PYTHONSAFEPATH=1 (the workflows set it) Python does not put the working directory on
    # sys.path, so the installed tool is the one that runs, even as `python -m`.
    marker = tmp_path / "pwned"
    evil = tmp_path / "reconciler"
    evil.mkdir()
    (evil / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (evil / "__main__.py").write_text("")
    for command in ([sys.executable, "-m", "reconciler", "--version"],):
        done = subprocess.run(
            command,
            cwd=tmp_path,
            env={"PYTHONSAFEPATH": "1", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "kms-reconciler, version" in done.stdout
    assert not marker.exists()


def test_the_workflows_use_the_action_as_it_is_declared() -> None:
    """Every input a workflow gives the project's action is one action.yml declares, every
    output a workflow reads is one it sets, and every command is one it accepts."""
    action = load(ACTION)
    inputs, outputs = set(action["inputs"]), set(action["outputs"])
    used = 0
    for path in WORKFLOWS:
        workflow = load(path)
        for job_name, job in workflow["jobs"].items():
            local = {
                step["id"]: step
                for step in job.get("steps", [])
                if step.get("uses", "").startswith("./") and "id" in step
            }
            for step in job.get("steps", []):
                if not step.get("uses", "").startswith("./"):
                    continue
                used += 1
                given = set(step.get("with", {}))
                assert given <= inputs, (path.name, job_name, given - inputs)
                assert step["with"]["command"] in {"plan", "apply", "drift", "review", "validate"}
            text = yaml.safe_dump(job)
            for step_id, name in re.findall(r"steps\.([\w-]+)\.outputs\.([\w-]+)", text):
                if step_id in local:
                    assert name in outputs, (path.name, job_name, step_id, name)
    assert used >= 8  # review, plan, validate, apply, convergence, drift ...


def test_the_action_passes_inputs_through_the_environment_only() -> None:
    action = load(ACTION)
    run_steps = [s for s in action["runs"]["steps"] if "run" in s]
    assert run_steps and all(s["shell"] == "bash" for s in run_steps)
    run = next(s for s in run_steps if s.get("id") == "run")
    passed = " ".join(str(v) for v in run["env"].values())
    for name in action["inputs"]:
        if name != "python-version":  # used by the setup-python step
            assert f"inputs.{name}" in passed or name == "working-directory", name
    script = (REPO / "scripts" / "action" / "run.sh").read_text(encoding="utf-8")
    assert 'PYTHONSAFEPATH=1 "$kmsr"' in script
    assert "eval" not in script


def test_the_readme_workflow_for_an_inventory_repository_uses_the_action_as_declared() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The GitHub Action", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    workflow = yaml.safe_load(next(b for b in blocks if "jobs:" in b))
    inputs = set(load(ACTION)["inputs"])
    pins = {
        step["uses"]
        for path in WORKFLOWS
        for _, step in steps(load(path))
        if "@" in step.get("uses", "")
    }
    ours = 0
    for _, step in steps(workflow):
        uses = step.get("uses", "")
        if uses.startswith("kms-reconciler/kms-reconciler@"):
            ours += 1
            assert set(step["with"]) <= inputs, step
        elif uses:
            assert uses in pins, uses  # the same pinned releases as the shipped workflows
        if uses.startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
    assert ours == 3
    assert workflow["permissions"] == {}
