"""The command line in-process, against the embedded sandbox (moto, state in tmp_path)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result

from reconciler import applier
from reconciler.aws import sandbox_session
from reconciler.cli import main
from reconciler.plan import OpKind
from tests.fakes import client_error

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, [*args, "--no-color"], input=input)


def test_validate_and_targets_on_the_bundled_inventory(workdir: Path) -> None:
    result = cli("validate")
    assert result.exit_code == 0 and "valid" in result.output
    result = cli("targets", "--format", "github-matrix")
    matrix = json.loads(result.stdout)
    assert [row["target"] for row in matrix["include"]] == ["production", "staging"]
    assert matrix["include"][0]["account_id"] == "111122223333"
    result = cli("targets", "--format", "json", "--region", "eu-west-1")
    assert [t["target"] for t in json.loads(result.stdout)["targets"]] == ["staging"]


def test_render_shows_desired_state_offline(workdir: Path) -> None:
    result = cli("render", "--key", "app-data", "--target", "staging", "--format", "json")
    assert result.exit_code == 0, result.output
    (key,) = json.loads(result.stdout)["keys"]
    assert key["name"] == "app-data" and key["account_id"] == "444455556666"
    assert key["rotation"] == {"enabled": True, "period_days": 180}
    assert key["policy"]["Statement"]
    result = cli("render", "--key", "nope")
    assert result.exit_code == 1 and "no key named 'nope'" in result.output


def test_unknown_target_is_an_input_error(workdir: Path) -> None:
    result = cli("plan", "--sandbox", "--target", "qa")
    assert result.exit_code == 1
    assert "unknown target 'qa' (the inventory has: production, staging)" in result.output


def test_apply_failure_reports_done_failed_not_run_and_rerun_converges(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise client_error("LimitExceededException", "CreateAlias", "too many aliases")

    with monkeypatch.context() as patch:
        patch.setitem(applier.HANDLERS, OpKind.CREATE_ALIAS, broken)
        result = cli("apply", "--sandbox", "--auto-approve", "--target", "production")
    assert result.exit_code == 1
    err = result.stderr
    assert "apply failed in target 'production'" in err
    assert "LimitExceededException: too many aliases" in err
    # Keys are applied side by side, each in its own order: how far the others got when the
    # first CreateAlias failed varies, but every operation is done, failed or not run, and
    # no key got past its aliases.
    counts = {
        word: int(n)
        for word, n in re.findall(r"^error: (done|failed|not run) \((\d+)\)", err, re.M)
    }
    assert set(counts) == {"done", "failed", "not run"}, err
    assert counts["failed"] >= 1 and counts["done"] >= 1
    assert sum(counts.values()) == 26  # the production target's operations
    done_line = next(line for line in err.splitlines() if line.startswith("error: done ("))
    assert "CreateKey" in done_line and "CreateAlias" not in done_line
    assert "run apply again" in err

    not_run_line = next(line for line in err.splitlines() if line.startswith("error: not run ("))
    never_made = len(re.findall(r"CreateKey [\w-]+", not_run_line))

    result = cli("apply", "--sandbox", "--auto-approve", "--target", "production")
    assert result.exit_code == 0, result.output
    # the keys the failed run made were found again: only those it never made are created
    assert f"{never_made} created" in result.output
    result = cli("plan", "--sandbox", "--detailed-exitcode", "--target", "production")
    assert result.exit_code == 0 and "No changes." in result.output


def test_apply_needs_a_terminal_or_auto_approve(workdir: Path) -> None:
    result = cli("apply", "--sandbox", "--target", "staging", input="yes\n")
    assert result.exit_code == 1
    assert "needs --auto-approve" in result.stderr
    result = cli("plan", "--sandbox", "--target", "staging", "--detailed-exitcode")
    assert result.exit_code == 2  # nothing was applied


def test_destructive_changes_are_refused_before_any_write(workdir: Path) -> None:
    assert cli("apply", "--sandbox", "--auto-approve", "--target", "staging").exit_code == 0
    spec = workdir / "keyspecs/app.yaml"
    spec.write_text(spec.read_text().replace("aliases: [alias/app-data-key]", "aliases: []"))
    result = cli("apply", "--sandbox", "--auto-approve", "--target", "staging")
    assert result.exit_code == 1
    assert "refusing to apply 1 destructive operation(s)" in result.stderr
    assert "DeleteAlias on app-data" in result.stderr
    result = cli("apply", "--sandbox", "--auto-approve", "--allow-destroy", "--target", "staging")
    assert result.exit_code == 0, result.output
    assert cli("plan", "--sandbox", "--detailed-exitcode", "--target", "staging").exit_code == 0


def test_drift_reports_and_formats(workdir: Path, tmp_path: Path) -> None:
    assert cli("apply", "--sandbox", "--auto-approve").exit_code == 0
    result = cli(
        "drift",
        "--sandbox",
        "--report",
        f"sarif={tmp_path / 'd.sarif'}",
        "--report",
        f"markdown={tmp_path / 'd.md'}",
    )
    assert result.exit_code == 0, result.output
    assert "No drift: 2 target(s) match the inventory" in result.stdout
    assert json.loads((tmp_path / "d.sarif").read_text())["version"] == "2.1.0"
    assert (tmp_path / "d.md").read_text().startswith("## KMS drift report")
    result = cli("drift", "--sandbox", "--report", "pdf=x.pdf")
    assert result.exit_code == 1 and "FORMAT=FILE" in result.stderr


def test_rotate_now_rotates_managed_symmetric_keys_and_drift_shows_it(workdir: Path) -> None:
    assert cli("apply", "--sandbox", "--auto-approve", "--target", "production").exit_code == 0
    result = cli("rotate", "--sandbox", "app-data", "--target", "production")
    assert result.exit_code == 1 and "say --now" in result.stderr
    result = cli("rotate", "--sandbox", "release-signing", "--now", "--auto-approve")
    assert result.exit_code == 1 and "RSA_2048" in result.stderr  # cannot rotate: refused
    result = cli("rotate", "--sandbox", "nope", "--now", "--auto-approve")
    assert result.exit_code == 1 and "no key named 'nope'" in result.stderr
    result = cli("rotate", "--sandbox", "app-data", "--now", "--target", "production")
    assert result.exit_code == 1 and "--auto-approve" in result.stderr  # no terminal: asks

    result = cli(
        "rotate",
        "--sandbox",
        "keyspecs",
        "app-data",
        "--now",
        "--auto-approve",
        "--target",
        "production",
    )
    assert result.exit_code == 0, result.output
    assert "0 on-demand rotation(s) so far" in result.stdout
    assert "rotation of 'app-data'" in result.stdout and "started" in result.stdout

    drift = json.loads(
        cli("drift", "--sandbox", "--format", "json", "--target", "production").stdout
    )
    rotation = {r["key"]: r for r in drift["targets"][0]["rotation"]}
    assert rotation["app-data"]["on_demand_rotations"] == 1
    assert rotation["app-data"]["last_rotation"] is not None
    assert rotation["logs"]["on_demand_rotations"] == 0
    assert "release-signing" not in rotation  # asymmetric keys have no rotation

    # The plan shows the same details when asked (ListKeyRotations is paced at 100/s, so
    # a plan reads it only with --rotation-history), in text and in its JSON.
    plain = cli("plan", "--sandbox", "--target", "production")
    assert "Rotation:" not in plain.stdout
    detailed = cli("plan", "--sandbox", "--target", "production", "--rotation-history")
    assert detailed.exit_code == 0, detailed.output
    lines = {line.split(" (")[0].strip(): line for line in detailed.stdout.splitlines()}
    assert "rotation every 180 days, last 20" in lines["app-data"]
    assert "1 on-demand (KMS allows" in lines["app-data"]
    assert "last never" in lines["logs"]
    as_json = cli(
        "plan", "--sandbox", "--target", "production", "--rotation-history", "--format", "json"
    )
    rotation = {r["key"]: r for r in json.loads(as_json.stdout)["targets"][0]["rotation"]}
    assert rotation["app-data"]["on_demand_rotations"] == 1


def test_sample_multi_region_key_converges_in_the_sandbox(workdir: Path) -> None:
    # The sandbox runs moto with reconciler.moto_kms: replicas of their own, as in real KMS.
    assert cli("apply", "--sandbox", "--auto-approve", "--target", "production").exit_code == 0
    again = cli("plan", "--sandbox", "--detailed-exitcode", "--target", "production")
    assert again.exit_code == 0, again.output
    with sandbox_session():
        west = boto3.client("kms", region_name="us-west-2")
        west.meta.events.register(
            "before-sign.*.*",
            lambda request, **_: request.headers.__setitem__("x-moto-account-id", "111122223333"),
        )
        (key,) = west.list_keys()["Keys"]
        tags = {
            t["TagKey"]: t["TagValue"] for t in west.list_resource_tags(KeyId=key["KeyId"])["Tags"]
        }
        aliases = [a["AliasName"] for a in west.list_aliases()["Aliases"] if a.get("TargetKeyId")]
    assert key["KeyId"].startswith("mrk-")
    assert tags["kms-reconciler:replica-of"] == "dr-backups" and tags["Role"] == "disaster-recovery"
    assert "alias/dr-backups" in aliases


def test_the_group_help_is_the_commands_own_and_imports_none_of_them() -> None:
    import click

    from reconciler.cli import COMMANDS, _short_help, main

    ctx = click.Context(main)
    assert main.list_commands(ctx) == sorted(COMMANDS)
    for name, (_, _, help_text) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert help_text == first, name  # the group's --help says what the command says
        for limit in (30, 45, 70):  # and cuts it as click cuts a command's short help
            assert _short_help(help_text, limit) == command.get_short_help_str(limit)
    # --help and --version load no command module, nor boto3, pydantic or jinja2
    code = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('boto3', 'botocore', 'pydantic', 'jinja2', 'yaml')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "loaded = [m for m in sys.modules if m.startswith('reconciler.commands')]\n"
        "print(heavy, loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().endswith("[] []"), done.stdout
    assert "validate" in done.stdout and "force-unlock" in done.stdout


def test_only_a_whole_process_run_freezes_its_imports() -> None:
    """``gc.freeze()`` after the command's imports saves start-up CPU (benchmarks/sandbox.md),
    and so does the collector being off while they are imported; it is on again for the
    command itself. A run inside another process (a test's CliRunner) must not freeze that
    process's objects, garbage included, for good, nor leave its collector off."""
    import gc

    from click.testing import CliRunner

    from reconciler.cli import main

    before = gc.get_freeze_count()
    assert CliRunner().invoke(main, ["validate", str(REPO / "keyspecs")]).exit_code == 0
    assert gc.get_freeze_count() == before
    assert gc.isenabled()
    code = (
        "import atexit, gc, sys\n"
        "passes = {'importing': 0, 'running': 0}\n"
        "started = False\n"
        "def count(phase, info):\n"
        "    if started and phase == 'start':\n"
        "        passes['running' if gc.get_freeze_count() else 'importing'] += 1\n"
        "gc.callbacks.append(count)\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count(), passes))\n"
        f"sys.argv = ['kms-reconciler', 'validate', {str(REPO / 'keyspecs')!r}]\n"
        "from reconciler.cli import main\n"
        "started = True\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    frozen, passes = done.stdout.split("frozen ")[-1].split(" ", 1)
    assert int(frozen) > 10_000, done.stdout  # pydantic's, jinja2's and click's objects
    # none while the command's modules are imported; some while templates are compiled
    assert passes.startswith("{'importing': 0, 'running': "), done.stdout
    assert not passes.strip().endswith("'running': 0}"), done.stdout


def test_inputs_are_frozen_before_planning_only_in_a_whole_process_run() -> None:
    """plan, apply and drift freeze a target's desired and observed states before planning
    (they live until exit; a full collection walking 10,000 keys' states costs ~0.3 s,
    benchmarks/planner.md), but only once the CLI froze its imports: a test's process
    keeps collecting its garbage."""
    code = (
        "import gc\n"
        "from reconciler.commands.common import freeze_inputs\n"
        "inputs = [[i] for i in range(5000)]\n"
        "freeze_inputs()\n"
        "print('not whole', gc.get_freeze_count())\n"
        "gc.freeze()  # as the CLI does once its imports are done\n"
        "frozen = gc.get_freeze_count()\n"
        "more = [[i] for i in range(5000)]\n"
        "freeze_inputs()\n"
        "print('whole', gc.get_freeze_count() - frozen)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    lines = dict(line.rsplit(" ", 1) for line in done.stdout.splitlines())
    assert lines["not whole"] == "0", done.stdout
    assert int(lines["whole"]) >= 5000, done.stdout


def test_plan_and_drift_freeze_their_inputs_before_planning(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The freeze happens after the target is observed and before make_plan reads it."""
    from reconciler.commands import drift, plan
    from reconciler.planner import make_plan

    calls: list[str] = []

    def planning(*args: Any, **kwargs: Any) -> Any:
        calls.append("make_plan")
        return make_plan(*args, **kwargs)

    monkeypatch.setattr(plan, "freeze_inputs", lambda: calls.append("freeze"))
    monkeypatch.setattr(drift, "freeze_inputs", lambda: calls.append("freeze"))
    monkeypatch.setattr(plan, "make_plan", planning)
    monkeypatch.setattr("reconciler.drift.make_plan", planning)
    assert cli("plan", "--sandbox", "--target", "production").exit_code == 0
    assert calls == ["freeze", "make_plan"]
    calls.clear()
    assert cli("drift", "--sandbox", "--target", "production").exit_code in (0, 2)
    assert calls == ["freeze", "make_plan"]


def test_validate_imports_nothing_that_talks_to_aws() -> None:
    """validate runs first in CI and offline: its start-up is its cost (issue 11), so it
    loads neither boto3, cryptography nor moto, nor the modules that read or write KMS, nor
    the planner."""
    code = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "try:\n"
        f"    main(['validate', {str(REPO / 'keyspecs')!r}])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "heavy = ('boto3', 'cryptography', 'moto', 'reconciler.observe', 'reconciler.applier',\n"
        "         'reconciler.lock', 'reconciler.permissions', 'reconciler.sandbox',\n"
        "         'reconciler.planner', 'reconciler.retire')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "valid." in done.stdout
    assert done.stdout.strip().endswith("[]"), done.stdout
