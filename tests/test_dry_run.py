"""``apply --dry-run`` prints AWS CLI commands a person could run, and ``apply --format json``
one machine-readable result (done, failed, not run; timings; call counts)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler import applier
from reconciler.cli import main
from reconciler.formatters.dry_run import aws_cli, dry_run_json, dry_run_text
from reconciler.plan import Operation, OpKind, Plan
from reconciler.planner import PlanOptions, make_plan
from reconciler.state import Grant
from tests.factories import desired, desired_key, observed, observed_key
from tests.fakes import client_error

KEY = "1234abcd-0000-0000-0000-000000000000"


def words_of(command: str) -> list[str]:
    """A command line as its words (the assignment of a new key's ID unwrapped)."""
    if "=$(" in command:
        command = command.split("=$(", 1)[1].removesuffix(")")
    return shlex.split(command)


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def mixed_plan() -> Any:
    """A new key, and an existing one with a description, tags, a grant and an alias to
    change: most kinds of call, and each kind of parameter value."""
    new = desired_key("new-key", aliases=frozenset({"alias/new"}))
    grant = Grant.of(
        "arn:aws:iam::111122223333:role/App", ["Decrypt", "Encrypt"], name="app", subset={"a": "b"}
    )
    changed = desired_key("old", description="it's new", tags={"Owner": "x"}, grants=(grant,))
    existing = observed_key(
        "old", KEY, tags={"Owner": "y", "Gone": "z"}, aliases=frozenset(), grants=()
    )
    return make_plan(desired(new, changed), observed(existing), PlanOptions(allow_destroy=True))


def test_each_call_is_the_aws_cli_command_with_the_same_parameters() -> None:
    tp = mixed_plan()
    by_kind = {op.kind: (op, words_of(aws_cli(op, tp))) for op in tp.operations}
    op, create = by_kind[OpKind.CREATE_KEY]
    assert create[:3] == ["aws", "kms", "create-key"]
    assert option(create, "--region") == "us-east-1"
    assert json.loads(option(create, "--policy")) == json.loads(op.params["Policy"])
    assert json.loads(option(create, "--tags")) == list(op.params["Tags"])
    assert "--no-multi-region" in create  # a boolean is a flag
    assert aws_cli(op, tp).startswith("KEY_new_key=$(")  # the new key's ID, for later
    assert create[-4:] == ["--query", "KeyMetadata.KeyId", "--output", "text"]
    new_alias = next(
        op for op in tp.operations if op.kind is OpKind.CREATE_ALIAS and op.key == "new-key"
    )
    assert option(words_of(aws_cli(new_alias, tp)), "--target-key-id") == "$KEY_new_key"
    _, description = by_kind[OpKind.UPDATE_KEY_DESCRIPTION]
    assert option(description, "--key-id") == KEY
    assert option(description, "--description") == "it's new"  # quoted, not broken
    op, untag = by_kind[OpKind.UNTAG_RESOURCE]
    assert untag[untag.index("--tag-keys") + 1 :] == list(op.params["TagKeys"])  # words
    op, grant = by_kind[OpKind.CREATE_GRANT]
    assert grant[grant.index("--operations") + 1 : grant.index("--operations") + 3] == [
        "Decrypt",
        "Encrypt",
    ]
    assert json.loads(option(grant, "--constraints")) == op.params["Constraints"]


@pytest.mark.parametrize("kind", list(OpKind), ids=lambda k: k.value)
def test_every_operation_kind_has_its_aws_cli_command(kind: OpKind) -> None:
    params: dict[str, Any] = {"source": "env X", "root": ".", "key_spec": "SYMMETRIC_DEFAULT"}
    op = Operation(kind, "app", KEY, params if kind is OpKind.IMPORT_KEY_MATERIAL else {}, "x")
    tp = make_plan(desired(), observed())
    line = aws_cli(op, tp)
    if kind is OpKind.IMPORT_KEY_MATERIAL:
        assert line.startswith("# ") and "env X" in line  # the source, never the material
        return
    subcommand = "-".join(
        part.lower() for part in __import__("re").findall(r"[A-Z][a-z]*", kind.value)
    )
    assert words_of(line)[:3] == ["aws", "kms", subcommand]


def test_the_dry_run_is_a_shell_script_and_json_says_the_same() -> None:
    tp = mixed_plan()
    plan = Plan(targets=(tp,))
    script = dry_run_text(plan)
    checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr
    commands = [line for line in script.splitlines() if line and not line.startswith("#")]
    assert len(commands) == len(tp.operations)
    document = json.loads(dry_run_json(plan))
    assert document["dry_run"] is True
    assert [op["aws_cli"] for op in document["operations"]] == [
        aws_cli(op, tp) for op in tp.operations
    ]


# -- apply --format json -----------------------------------------------------------------------


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--sandbox", "--target", "staging", "--no-color"])


def test_apply_json_result_says_what_was_done(workdir: Path) -> None:
    result = cli("apply", "--auto-approve", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # stdout is the document alone
    (target,) = document["targets"]
    assert document["ok"] is True and target["outcome"] == "ok"
    assert {op["status"] for op in target["operations"]} == {"done"}
    assert document["summary"]["done"] == len(target["operations"]) == 14
    assert document["summary"]["calls"] == target["calls"] >= 14
    assert all(op["key_id"] for op in target["operations"])  # new keys' IDs filled in
    assert "Applying 14 operation(s)" in result.stderr  # progress on stderr
    again = json.loads(cli("apply", "--auto-approve", "--format", "json").stdout)
    assert again["targets"][0]["outcome"] == "no changes"


def test_apply_json_result_says_what_failed_and_did_not_run(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise client_error("LimitExceededException", "CreateAlias", "too many aliases")

    monkeypatch.setitem(applier.HANDLERS, OpKind.CREATE_ALIAS, broken)
    result = cli("apply", "--auto-approve", "--format", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    (target,) = document["targets"]
    assert document["ok"] is False and target["outcome"] == "failed"
    statuses = [op["status"] for op in target["operations"]]
    assert "done" in statuses and "failed" in statuses and "not run" in statuses
    failed = next(op for op in target["operations"] if op["status"] == "failed")
    assert failed["operation"] == "CreateAlias" and "LimitExceeded" in failed["error"]
    assert "apply failed in target 'staging'" in result.stderr


def test_dry_run_json_lists_the_commands(workdir: Path) -> None:
    result = cli("apply", "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.output
    operations = json.loads(result.stdout)["operations"]
    assert len(operations) == 14
    assert operations[0]["aws_cli"].startswith("KEY_")


# -- --key (Terraform's -target) and --parallelism ---------------------------------------------


def test_a_partial_plan_plans_only_the_named_keys_and_says_so(workdir: Path) -> None:
    partial = cli("plan", "--key", "app-data", "--key", "logs", "--format", "json")
    assert partial.exit_code == 0, partial.output
    document = json.loads(partial.stdout)
    assert document["partial_keys"] == ["app-data", "logs"]
    (target,) = document["targets"]
    assert sorted(k["name"] for k in target["keys"]) == ["app-data", "logs"]
    text = cli("plan", "--key", "app-data").stdout
    assert text.startswith("Partial plan: only key(s) app-data (--key)")
    applied = cli("apply", "--key", "logs", "--auto-approve", "--format", "json")
    (target,) = json.loads(applied.stdout)["targets"]
    assert {op["key"] for op in target["operations"]} == {"logs"}


def test_a_partial_plan_never_calls_the_other_keys_orphans(workdir: Path) -> None:
    extra = workdir / "keyspecs" / "extra.yaml"
    extra.write_text("keys:\n  - name: extra\n    targets: [staging]\n")
    assert cli("apply", "--auto-approve").exit_code == 0
    extra.unlink()  # 'extra' is now a managed key no spec declares: an orphan
    full = cli("plan", "--allow-destroy", "--detailed-exitcode")
    assert full.exit_code == 2 and '- key "extra"' in full.stdout, full.output
    partial = cli("plan", "--key", "logs", "--allow-destroy", "--detailed-exitcode")
    assert partial.exit_code == 0, partial.output
    assert "extra" not in partial.stdout and "No changes." in partial.stdout


def test_an_unknown_key_name_is_an_input_error(workdir: Path) -> None:
    result = cli("plan", "--key", "nope")
    assert result.exit_code == 1
    assert "error: --key: no key named 'nope' in the selected targets" in result.stderr
    assert cli("apply", "--plan", "x.json", "--key", "logs").exit_code == 1


@pytest.mark.parametrize("value", ["0", "many"])
def test_parallelism_is_checked(workdir: Path, value: str) -> None:
    result = cli("plan", "--parallelism", value)
    assert result.exit_code == 1 and "--parallelism" in result.stderr


def test_parallelism_one_still_converges(workdir: Path) -> None:
    assert cli("apply", "--auto-approve", "--parallelism", "1").exit_code == 0
    assert cli("plan", "--detailed-exitcode", "--parallelism", "1").exit_code == 0
