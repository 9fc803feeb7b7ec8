"""The composite GitHub Action (action.yml), run step by step as a runner would, in a
temporary inventory repository, against this worker's moto_server.

The action's own `run:` scripts are executed with their `env:` blocks evaluated from the
inputs (a small evaluator of the expressions action.yml uses; an expression it does not
know fails the test, so the test follows the action). The `uses:` step (setup-python) is
the runner's business and is skipped: the job's python3 is this interpreter's.

The install step really creates a virtual environment and pip-installs the action's
directory into it. Tests never reach the network, so pip runs with PIP_NO_INDEX and the
test environment's packages on PYTHONPATH: the dependencies are found installed, and only
kms-reconciler itself is built and installed, from a copy of this working tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Inventory, MotoServer, cli_env
from .helpers import ALPHA, BETA

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


@dataclass
class StepRun:
    returncode: int
    outputs: dict[str, str]
    log: str
    summary: str


class Runner:
    """One job's runner: its temp directory, PATH file, and the action's directory."""

    def __init__(self, root: Path, action_path: Path, temp: Path, env: dict[str, str]) -> None:
        self.root = root
        self.action_path = action_path
        self.temp = temp
        self.path_file = root / "github-path"
        self.path_file.touch()
        self.env = env

    def evaluate(self, expression: str, inputs: dict[str, str], event: dict[str, Any]) -> str:
        def value(term: str) -> str:
            term = term.strip()
            if term == "github.action_path":
                return str(self.action_path)
            if term.startswith("inputs."):
                name = term.removeprefix("inputs.")
                spec = ACTION["inputs"][name]  # KeyError: the action reads an undeclared input
                return inputs.get(name, str(spec.get("default", "")))
            if term.startswith("github.event."):
                node: Any = event
                for part in term.removeprefix("github.event.").split("."):
                    node = node.get(part, {}) if isinstance(node, dict) else {}
                return node if isinstance(node, str) else ""
            raise AssertionError(f"the test does not know the expression {term!r}")

        # `a || b`: the first non-empty value, as GitHub evaluates it for strings
        for term in expression.split("||"):
            result = value(term)
            if result:
                return result
        return ""

    def run(
        self,
        cwd: Path,
        inputs: dict[str, str],
        *,
        event: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> StepRun:
        """Run every step of the action; stop at the first that fails, as a runner does."""
        output_file = self.root / "github-output"
        summary_file = self.root / "github-summary"
        output_file.write_text("")
        summary_file.write_text("")
        log = []
        for step in ACTION["runs"]["steps"]:
            if "uses" in step:
                continue
            step_env = {
                name: EXPRESSION.sub(
                    lambda m: self.evaluate(m.group(1), inputs, event or {}), str(raw)
                )
                for name, raw in step.get("env", {}).items()
            }
            assert "${{" not in step["run"], "an expression inside run: (zizmor forbids it)"
            workdir = step.get("working-directory", ".")
            workdir = EXPRESSION.sub(lambda m: self.evaluate(m.group(1), inputs, {}), workdir)
            done = subprocess.run(
                ["bash", "-e", "-c", step["run"]],
                cwd=cwd / workdir,
                env={
                    **self.env,
                    **(env or {}),
                    **step_env,
                    "RUNNER_TEMP": str(self.temp),
                    "GITHUB_OUTPUT": str(output_file),
                    "GITHUB_STEP_SUMMARY": str(summary_file),
                    "GITHUB_PATH": str(self.path_file),
                },
                capture_output=True,
                text=True,
                timeout=300,
            )
            log.append(done.stdout + done.stderr)
            if done.returncode != 0:
                return StepRun(done.returncode, outputs(output_file), "".join(log), "")
        return StepRun(0, outputs(output_file), "".join(log), summary_file.read_text())


def outputs(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


@pytest.fixture(scope="module")
def action_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout of the action: this working tree's files (tracked and new, not ignored),
    or, outside a git checkout (an unpacked sdist), the tree without local state."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
    )
    if listed.returncode == 0 and (REPO / ".git").exists():
        names = [n for n in listed.stdout.decode().split("\0") if n]
    else:
        local = {".venv", ".venv-ci", ".kms-sandbox", "__pycache__", "build", "dist", ".git"}
        names = [
            str(path.relative_to(REPO))
            for path in REPO.rglob("*")
            if path.is_file()
            and not local & set(path.relative_to(REPO).parts)
            and not any(part.endswith(".egg-info") for part in path.parts)
        ]
    target = tmp_path_factory.mktemp("action") / "kms-reconciler"
    for name in names:
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RUNNER_TEMP, shared by the module's tests like the steps of one job: the first run
    installs the tool, later runs find it installed from the same action directory."""
    return tmp_path_factory.mktemp("runner-temp")


@pytest.fixture
def runner(
    tmp_path: Path, action_path: Path, runner_temp: Path, server: MotoServer, cli_home: Path
) -> Runner:
    env = cli_env(cli_home, server.url)
    env.update(
        {
            # offline install: the dependencies are this environment's (see the docstring)
            "PYTHONPATH": sysconfig.get_paths()["purelib"],
            "PIP_NO_INDEX": "1",
            "PIP_NO_BUILD_ISOLATION": "0",  # pip reads "0" here as: no build isolation
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            **GIT_IDENTITY,
        }
    )
    return Runner(tmp_path, action_path, runner_temp, env)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An inventory repository of its own (not this project): keyspecs/ and one commit."""
    root = tmp_path / "inventory-repo"
    Inventory(root).write([ALPHA, BETA])
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "inventory")
    return root


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_IDENTITY}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_validate_plan_apply_and_converge_from_an_inventory_repository(
    runner: Runner, repo: Path
) -> None:
    done = runner.run(repo, {"command": "validate"})
    assert done.returncode == 0, done.log
    assert done.outputs["exit-code"] == "0"
    # the install added only a kms-reconciler command to later steps' PATH (no python)
    added = Path(runner.path_file.read_text().strip())
    assert sorted(p.name for p in added.iterdir()) == ["kms-reconciler"]
    assert "kms-reconciler, version" in done.log

    done = runner.run(repo, {"command": "plan"})
    assert done.returncode == 0, done.log  # exit 2 (changes) is a success for plan
    assert done.outputs["exit-code"] == "2" and done.outputs["changes"] == "true"
    plan_json = Path(done.outputs["json"])
    assert json.loads(plan_json.read_text())["summary"]["create"] == 2
    assert "alpha" in Path(done.outputs["markdown"]).read_text()
    assert "alpha" in done.summary  # the Markdown plan is in the job summary

    # apply the reviewed plan, with arguments given through `args` (quotes honoured)
    saved = repo.parent / "reviewed plan.json"
    shutil.copy(plan_json, saved)
    done = runner.run(repo, {"command": "apply", "args": f"--plan '{saved}' --lock-timeout 30s"})
    assert done.returncode == 0, done.log
    result = json.loads(Path(done.outputs["json"]).read_text())
    assert result["ok"] and result["summary"]["failed"] == result["summary"]["not_run"] == 0
    assert result["summary"]["done"] == json.loads(plan_json.read_text())["summary"]["operations"]

    done = runner.run(repo, {"command": "plan"})
    assert done.returncode == 0, done.log
    assert done.outputs["exit-code"] == "0" and done.outputs["changes"] == "false"
    assert "kms-reconciler is already installed from" in done.log  # one install per job


def test_drift_fails_the_step_on_findings_unless_told_not_to(
    runner: Runner, repo: Path, kms: Any
) -> None:
    assert runner.run(repo, {"command": "apply"}).returncode == 0
    done = runner.run(repo, {"command": "drift"})
    assert done.returncode == 0 and done.outputs["exit-code"] == "0", done.log

    alias = kms.list_aliases()["Aliases"]
    key_id = next(a["TargetKeyId"] for a in alias if a["AliasName"] == "alias/alpha")
    kms.disable_key(KeyId=key_id)  # out of band

    done = runner.run(repo, {"command": "drift"})
    assert done.returncode == 2 and done.outputs["exit-code"] == "2"
    assert "::error title=kms-reconciler drift::" in done.log
    sarif = json.loads(Path(done.outputs["sarif"]).read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    assert json.loads(Path(done.outputs["json"]).read_text())["summary"]["findings"] >= 1

    done = runner.run(repo, {"command": "drift", "fail-on-findings": "false"})
    assert done.returncode == 0 and done.outputs["exit-code"] == "2", done.log


def test_review_of_a_pull_request_reads_its_base_from_the_event(runner: Runner, repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    keys = repo / "keyspecs" / "keys.yaml"
    document = yaml.safe_load(keys.read_text())
    document["keys"].append(
        {
            "name": "public-data",
            "policy": {
                "document": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "Root",
                            "Effect": "Allow",
                            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                            "Action": "kms:*",
                            "Resource": "*",
                        },
                        {
                            "Sid": "Everyone",
                            "Effect": "Allow",
                            "Principal": {"AWS": "*"},
                            "Action": "kms:Decrypt",
                            "Resource": "*",
                        },
                    ],
                }
            },
        }
    )
    keys.write_text(yaml.safe_dump(document, sort_keys=False))
    git(repo, "commit", "-q", "-am", "a public key")
    event = {"pull_request": {"base": {"sha": base}}}

    done = runner.run(repo, {"command": "review", "fail-on-findings": "false"}, event=event)
    assert done.returncode == 0 and done.outputs["exit-code"] == "2", done.log
    report = Path(done.outputs["markdown"]).read_text()
    assert "KMS001" in report and "public-data" in report
    assert json.loads(Path(done.outputs["json"]).read_text())["blocking"] >= 1
    assert done.outputs["sarif"]

    done = runner.run(repo, {"command": "review"}, event=event)
    assert done.returncode == 2  # fail-on-findings defaults to true

    # Outside a pull_request event the base must be given.
    done = runner.run(repo, {"command": "review"})
    assert done.returncode == 1 and "review needs input 'base'" in done.log
    done = runner.run(repo, {"command": "review", "base": base, "args": "--fail-on critical"})
    assert done.outputs["exit-code"] == "2", done.log


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"command": "destroy"}, "input 'command' must be plan, apply, drift, review or validate"),
        ({"command": "plan", "args": "--key 'unterminated"}, "input 'args' could not be split"),
        ({"command": "validate", "path": "no-such-dir"}, "failed with exit code 1"),
        ({"command": "validate", "shard": "1/2"}, "input 'shard' is for plan, apply and drift"),
        ({"command": "plan", "shard": "3/2"}, "failed with exit code 1"),
    ],
)
def test_bad_inputs_fail_the_step_with_one_error(
    runner: Runner, repo: Path, inputs: dict[str, str], message: str
) -> None:
    done = runner.run(repo, inputs)
    assert done.returncode == 1, done.log
    title = "action" if message.startswith("input") else inputs["command"]
    assert f"::error title=kms-reconciler {title}::" in done.log
    assert message in done.log


def test_args_are_split_without_expansion(runner: Runner, repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "expanded"
    done = runner.run(repo, {"command": "validate", "args": f"--target '$(touch {marker})'"})
    assert done.returncode == 1  # no such target: the text reached the tool as one word
    assert not marker.exists()
    assert "$(touch" in done.log
