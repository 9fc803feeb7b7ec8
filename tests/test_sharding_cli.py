"""targets --max-jobs and --shard on the command line, in-process: the matrix, the one-line
errors (exit 1, no AWS call), and that a shard runs exactly the targets its entry lists."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler import aws
from reconciler.cli import main
from reconciler.errors import AwsError

ACCOUNTS = ("111111111111", "222222222222", "333333333333", "444444444444", "555555555555")
REGIONS = ("us-east-1", "eu-west-1")
NAMES = [f"a{i}-{region}" for i in range(len(ACCOUNTS)) for region in REGIONS]


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--no-color"])


@pytest.fixture
def org(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """keyspecs/ with 10 targets (5 accounts x 2 Regions); some keys in some targets only,
    so targets differ in weight. Returns the target names in inventory order."""
    monkeypatch.chdir(tmp_path)
    keyspecs = tmp_path / "keyspecs"
    keyspecs.mkdir()
    targets = "".join(
        f"  - name: {name}\n    account_id: '{ACCOUNTS[i // 2]}'\n    region: {REGIONS[i % 2]}\n"
        f"    role_arn: arn:aws:iam::{ACCOUNTS[i // 2]}:role/kms-reconciler\n"
        for i, name in enumerate(NAMES)
    )
    (keyspecs / "inventory.yaml").write_text(f"targets:\n{targets}")
    keys = "keys:\n  - name: everywhere\n"
    for n in range(6):  # a0-us-east-1 gets 6 more keys, a1-eu-west-1 3 more
        where = [NAMES[0]] if n < 3 else [NAMES[0], NAMES[3]]
        keys += f"  - name: extra-{n}\n    targets: [{', '.join(where)}]\n"
    (keyspecs / "keys.yaml").write_text(keys)
    return NAMES


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection attempt is recorded (the target's name) and fails: a command that
    must not reach AWS leaves the list empty."""
    attempts: list[str] = []
    mutex = threading.Lock()

    def connect(target: Any, *args: Any, **kwargs: Any) -> Any:
        with mutex:
            attempts.append(target.name)
        raise AwsError(f"target '{target.name}': no AWS in this test")

    monkeypatch.setattr(aws, "connect", connect)
    return attempts


def matrix(*args: str) -> list[dict[str, Any]]:
    result = cli("targets", "--format", "github-matrix", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1  # one line, for $GITHUB_OUTPUT
    entries: list[dict[str, Any]] = json.loads(result.stdout)["include"]
    return entries


def test_up_to_max_jobs_targets_the_matrix_is_one_entry_per_target(org: list[str]) -> None:
    today = matrix()
    assert [e["target"] for e in today] == org
    assert today[0] == {
        "target": org[0],
        "account_id": ACCOUNTS[0],
        "region": REGIONS[0],
        "role_arn": f"arn:aws:iam::{ACCOUNTS[0]}:role/kms-reconciler",
        "plan_role_arn": f"arn:aws:iam::{ACCOUNTS[0]}:role/kms-reconciler",
    }
    assert matrix("--max-jobs", "10") == today == matrix("--max-jobs", "256")


@pytest.mark.parametrize("jobs", [1, 3, 4, 9])
def test_more_targets_than_jobs_are_packed_into_shards(org: list[str], jobs: int) -> None:
    rows = {e["target"]: e for e in matrix()}
    entries = matrix("--max-jobs", str(jobs))
    assert [e["shard"] for e in entries] == [f"{i}/{jobs}" for i in range(1, jobs + 1)]
    assert all(set(e) == {"shard", "label", "targets"} and e["targets"] for e in entries)
    assert [e["label"] for e in entries] == [f"shard-{i}-of-{jobs}" for i in range(1, jobs + 1)]
    listed = [t["target"] for e in entries for t in e["targets"]]
    assert sorted(listed) == sorted(org)  # each target in exactly one shard
    assert all(t == rows[t["target"]] for e in entries for t in e["targets"])
    assert matrix("--max-jobs", str(jobs)) == entries  # deterministic
    if jobs == 4:  # balanced by keys: the target with 7 keys is alone in its shard
        assert [t["target"] for t in entries[0]["targets"]] == [org[0]]


def test_a_region_is_packed_the_same_way_by_targets_and_by_the_shard(
    org: list[str], no_aws: list[str]
) -> None:
    entries = matrix("--max-jobs", "2", "--region", "eu-west-1")
    for entry in entries:
        result = cli("plan", "--shard", entry["shard"], "--region", "eu-west-1")
        assert result.exit_code == 1
    assert sorted(no_aws) == sorted(t["target"] for e in entries for t in e["targets"])
    assert all(name.endswith("eu-west-1") for name in no_aws)


@pytest.mark.parametrize("command", ["plan", "drift", "apply"])
def test_a_shard_runs_exactly_the_targets_its_matrix_entry_lists(
    org: list[str], no_aws: list[str], command: str
) -> None:
    entries = matrix("--max-jobs", "3")
    seen: list[list[str]] = []
    for entry in entries:
        no_aws.clear()
        result = cli(command, "--shard", entry["shard"])
        assert result.exit_code == 1, result.output  # every target failed to connect
        names = [t["target"] for t in entry["targets"]]
        assert sorted(no_aws) == sorted(names)
        # each target's outcome is reported, in inventory order
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert [e.split("'")[1] for e in errors] == names
        assert f"shard {entry['shard']}: {len(names)} of 10 target(s)" in result.stderr
        seen.append(sorted(no_aws))
    assert sorted(n for s in seen for n in s) == sorted(org)


def test_a_shard_past_the_targets_is_empty_and_reaches_nothing(
    org: list[str], no_aws: list[str]
) -> None:
    result = cli("plan", "--shard", "11/11")
    assert result.exit_code == 0, result.output
    assert "shard 11/11: 0 of 10 target(s)" in result.stderr and not no_aws


@pytest.mark.parametrize("command", ["plan", "apply", "drift"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "2"], "--shard: '2' is not I/N (shard I of N, e.g. 3/256)"),
        (["--shard", "2-4"], "--shard: '2-4' is not I/N"),
        (["--shard", "0/4"], "--shard: '0/4': the shard number must be from 1 to 4"),
        (["--shard", "5/4"], "--shard: '5/4': the shard number must be from 1 to 4"),
        (
            ["--shard", "1/4", "--target", NAMES[0]],
            "--shard: give --shard or --target, not both (a shard names its targets)",
        ),
    ],
    ids=["no-count", "dash", "zero", "past-the-end", "with-target"],
)
def test_bad_shard_is_one_line_exit_1_and_no_aws_call(
    org: list[str], no_aws: list[str], command: str, args: list[str], message: str
) -> None:
    result = cli(command, *args)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {message}"), line
    assert not no_aws and not result.stdout


def test_shard_with_a_saved_plan_is_refused(org: list[str], no_aws: list[str]) -> None:
    saved = Path("plan.json")
    saved.write_text("{}")
    result = cli("apply", "--plan", str(saved), "--shard", "1/2")
    assert result.exit_code == 1 and not no_aws
    (line,) = result.stderr.splitlines()
    assert line == (
        "error: --shard: give --shard when planning, not with --plan (the plan names its targets)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-jobs", "0"], "Invalid value for '--max-jobs'"),
        (["--max-jobs", "x"], "Invalid value for '--max-jobs'"),
        (["--format", "json", "--max-jobs", "3"], "--max-jobs: only with --format github-matrix"),
    ],
    ids=["zero", "word", "not-a-matrix"],
)
def test_bad_max_jobs_is_one_line_exit_1(org: list[str], args: list[str], message: str) -> None:
    result = cli("targets", *args)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line
