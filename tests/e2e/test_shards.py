"""An organisation in shards: the matrix of 'targets --max-jobs', then plan, apply and drift
--shard against moto_server, three accounts x two Regions (six targets, four jobs).

Each shard's job runs only its own targets, side by side, every target's output whole and
in inventory order; the shards together cover every target once. moto maps the credentials
of an assumed role to the role's account (../shared/moto-kms-notes.md, section 4), so one
server serves all three accounts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import MotoServer, RunCli
from .test_many_accounts import kms_in, names

pytestmark = pytest.mark.e2e

ACCOUNTS = ("111111111111", "222222222222", "333333333333")
REGIONS = ("us-east-1", "eu-west-1")
TARGETS = {
    f"t{a}-{region}": (account, region) for a, account in enumerate(ACCOUNTS) for region in REGIONS
}
JOBS = 4


def write(root: Path) -> None:
    """Every target has the key 'shared' and one key of its own, 'own-<target>'."""
    keyspecs = root / "keyspecs"
    keyspecs.mkdir()
    (keyspecs / "inventory.yaml").write_text(
        "targets:\n"
        + "".join(
            f"  - name: {name}\n    account_id: '{account}'\n    region: {region}\n"
            f"    role_arn: arn:aws:iam::{account}:role/kms-reconciler\n"
            for name, (account, region) in TARGETS.items()
        )
        + "defaults: {rotation: {enabled: true, period_days: 365}}\n"
    )
    (keyspecs / "keys.yaml").write_text(
        "keys:\n  - name: shared\n    aliases: [alias/shared]\n"
        + "".join(f"  - name: own-{name}\n    targets: [{name}]\n" for name in TARGETS)
    )


def blocks(text: str, head: str) -> list[tuple[str, str]]:
    """The text cut at each line that matches ``head`` (its group 1 names the target):
    [(target, the block's text)], in order."""
    pattern = re.compile(head, re.MULTILINE)
    starts = list(pattern.finditer(text))
    return [
        (m[1], text[m.start() : starts[i + 1].start() if i + 1 < len(starts) else len(text)])
        for i, m in enumerate(starts)
    ]


def own_keys(block: str) -> set[str]:
    return set(re.findall(r"own-(t\d-[a-z]+-[a-z]+-\d)", block))


def test_shards_cover_their_own_targets_and_together_all(
    server: MotoServer, run_cli: RunCli, run_cli_in_process: RunCli, tmp_path: Path
) -> None:
    write(tmp_path)
    order = list(TARGETS)
    matrix = json.loads(
        run_cli("targets", "--format", "github-matrix", "--max-jobs", str(JOBS)).stdout
    )["include"]
    assert [e["shard"] for e in matrix] == [f"{i}/{JOBS}" for i in range(1, JOBS + 1)]
    shards = {e["shard"]: [t["target"] for t in e["targets"]] for e in matrix}
    assert sorted(n for s in shards.values() for n in s) == sorted(order)
    assert max(len(s) for s in shards.values()) == 2  # six equal targets in four jobs

    # plan: each shard plans its own targets, each target's plan whole, in inventory order
    planned: list[str] = []
    for shard, members in shards.items():
        result = run_cli("plan", "--shard", shard, "--detailed-exitcode", "--no-color")
        assert result.returncode == 2, result
        parts = blocks(result.stdout, r"^Target (\S+): account")
        assert [name for name, _ in parts] == members, result
        for name, block in parts:
            assert own_keys(block) == {name}, block  # never another target's lines
            assert f"account {TARGETS[name][0]}, {TARGETS[name][1]}" in block
        assert f"Plan: {2 * len(members)} to create, 0 to update, 0 to delete." in result.stdout
        assert f"shard {shard}: {len(members)} of 6 target(s)" in result.stderr
        planned += members
    assert sorted(planned) == sorted(order)

    # apply one shard of two targets (side by side): only its targets change
    two = next(shard for shard, members in shards.items() if len(members) == 2)
    applied = run_cli("apply", "--shard", two, "--auto-approve", "--no-color")
    assert applied.returncode == 0, applied
    progress = blocks(applied.stdout, r"^Applying \d+ operation\(s\) to target (\S+):")
    assert [name for name, _ in progress] == shards[two]
    for name, block in progress:
        steps = [line for line in block.splitlines() if line.startswith("  [")]
        assert steps and all(f"] {name} " in line for line in steps), block
    for name, (account, region) in TARGETS.items():
        expected = {"shared", f"own-{name}"} if name in shards[two] else set()
        assert names(kms_in(server, account, region)) == expected
    # the rest in one run (every target, side by side), then a change out of band in one
    assert run_cli_in_process("apply", "--auto-approve").returncode == 0
    drifted = order[3]
    client = kms_in(server, *TARGETS[drifted])
    client.create_key(Description="made by hand")  # an unmanaged key

    # drift: each shard reads its own targets, reports them whole, in order
    reported: list[str] = []
    for shard, members in shards.items():
        result = run_cli("drift", "--shard", shard, "--no-color", "--report", "json=d.json")
        assert result.returncode == (2 if drifted in members else 0), result
        parts = blocks(result.stdout, r"^(?:No drift|Drift) in target (\S+) \(")
        assert [name for name, _ in parts] == members, result
        for name, block in parts:
            assert ("unmanaged" in block and "Drift in" in block) == (name == drifted), block
        document = json.loads((tmp_path / "d.json").read_text())
        assert [t["name"] for t in document["targets"]] == members
        reported += members
    assert sorted(reported) == sorted(order)
