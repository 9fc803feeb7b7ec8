"""Saved plans, dry runs and the machine-readable plan formats, through the real CLI."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import Converge, Inventory, MotoServer, RunCli
from .helpers import (
    ACCOUNT,
    ALPHA,
    BETA,
    NEW_KEY_UNUSED,
    REGION,
    key_ids,
    kms_snapshot,
    policy_of,
    tags_of,
)

pytestmark = pytest.mark.e2e

# KMS operations that only read. Anything else the server sees is a write.
READ_OPERATIONS = frozenset(
    {
        "ListKeys",
        "ListAliases",
        "ListResourceTags",
        "DescribeKey",
        "GetKeyPolicy",
        "GetKeyRotationStatus",
        "ListKeyPolicies",
        "ListGrants",
        "ListKeyRotations",
        "GetKeyLastUsage",
    }
)


def test_stale_saved_plan_is_refused_and_fresh_one_applies(
    converge: Converge, run_cli: RunCli, kms: Any, server: MotoServer, tmp_path: Path
) -> None:
    keys = converge()
    kms.tag_resource(KeyId=keys["alpha"], Tags=[{"TagKey": "Owner", "TagValue": "drifted"}])

    saved = run_cli("plan", "--out", "plan.json")
    assert saved.returncode == 0, saved
    assert (tmp_path / "plan.json").is_file()
    assert "Saved the plan to plan.json" in saved.stderr

    # Something else changes KMS after the plan was made.
    kms.update_key_description(KeyId=keys["beta"], Description="changed after the plan")
    before = kms_snapshot(kms)
    server.recorder.clear()

    stale = run_cli("apply", "--plan", "plan.json", "--auto-approve")
    assert stale.returncode == 1, stale
    assert "stale" in stale.stderr
    assert "nothing was changed" in stale.stderr
    assert kms_snapshot(kms) == before, "a refused stale plan must not change anything"
    writes = [op for op in server.kms_operations() if op not in READ_OPERATIONS]
    assert writes == [], writes

    # A plan that still matches KMS applies, and converges.
    fresh = run_cli("plan", "--out", "plan.json")
    assert fresh.returncode == 0, fresh
    applied = run_cli("apply", "--plan", "plan.json", "--auto-approve")
    assert applied.returncode == 0, applied
    assert tags_of(kms, keys["alpha"])["Owner"] == "team-a"
    assert kms.describe_key(KeyId=keys["beta"])["KeyMetadata"]["Description"] == "Beta data key"


def test_saved_adoption_plan_is_stale_when_the_adopted_key_changed(
    inventory: Inventory, run_cli: RunCli, kms: Any, server: MotoServer
) -> None:
    """DESIGN 5: apply --plan refuses a plan whose observed state changed since.

    Here the change grants a role access to the key to be adopted; applying the old plan
    would silently remove that access (a destructive change nobody reviewed).
    """
    existing = kms.create_key(
        Description="hand-made", KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT"
    )["KeyMetadata"]["KeyId"]
    inventory.write([{**ALPHA, "adopt": existing}])
    saved = run_cli("plan", "--out", "plan.json")
    assert saved.returncode == 0, saved

    policy = policy_of(kms, existing)
    policy["Statement"].append(
        {
            "Sid": "Granted after the plan",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/Other"},
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    )
    kms.put_key_policy(KeyId=existing, PolicyName="default", Policy=json.dumps(policy))
    before = kms_snapshot(kms)

    applied = run_cli("apply", "--plan", "plan.json", "--auto-approve")
    assert applied.returncode == 1, applied
    assert "stale" in applied.stderr, applied
    assert kms_snapshot(kms) == before


def test_dry_run_prints_every_call_and_makes_none(
    inventory: Inventory, run_cli: RunCli, kms: Any, server: MotoServer
) -> None:
    inventory.write([ALPHA, BETA])

    dry = run_cli("apply", "--dry-run")
    assert dry.returncode == 0, dry
    assert "Dry run: apply would make these 6 KMS call(s), in order; none was made." in dry.stdout
    # a shell script of AWS CLI commands: valid shell, one command per call, in order
    script = dry.stdout
    syntax = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert syntax.returncode == 0, syntax.stderr
    commands = [line for line in script.splitlines() if line and not line.startswith("#")]
    words = [shlex.split(line.split("$(", 1)[-1].rstrip(")")) for line in commands]
    assert [w[:3] for w in words] == [["aws", "kms", "create-key"]] * 2 + [
        ["aws", "kms", "enable-key-rotation"]
    ] * 2 + [["aws", "kms", "create-alias"]] * 2, script
    create_alpha = next(w for w in words if "Alpha data key" in w)
    assert create_alpha[create_alpha.index("--description") + 1] == "Alpha data key"
    assert commands[0].startswith("KEY_alpha=$(") or commands[1].startswith("KEY_alpha=$(")
    alias = next(line for line in commands if "--alias-name alias/alpha" in line)
    assert '--target-key-id "$KEY_alpha"' in alias

    assert key_ids(kms) == []
    assert [op for op in server.kms_operations() if op not in READ_OPERATIONS] == []
    assert set(server.kms_operations()) == {"ListKeys", "ListAliases"}


def test_dry_run_lists_destructive_calls_without_allow_destroy(
    converge: Converge, inventory: Inventory, run_cli: RunCli, kms: Any, server: MotoServer
) -> None:
    keys = converge()
    inventory.write([{**ALPHA, "enabled": False}, BETA])
    before = kms_snapshot(kms)

    dry = run_cli("apply", "--dry-run")
    assert dry.returncode == 0, dry
    disable = f"aws kms disable-key --region us-east-1 --key-id {keys['alpha']}  # destructive"
    assert disable in dry.stdout, dry
    assert kms_snapshot(kms) == before
    assert [op for op in server.kms_operations() if op not in READ_OPERATIONS] == []
    # the dry run shows the disabled key's last use (one read) and is not refused by it
    assert server.kms_operations().count("GetKeyLastUsage") == 1
    assert NEW_KEY_UNUSED in dry.stderr


def test_plan_json_and_markdown(converge: Converge, run_cli: RunCli, kms: Any) -> None:
    keys = converge()
    kms.update_key_description(KeyId=keys["alpha"], Description="edited")
    kms.tag_resource(KeyId=keys["beta"], Tags=[{"TagKey": "Extra", "TagValue": "x"}])

    as_json = run_cli("plan", "--format", "json", "--detailed-exitcode")
    assert as_json.returncode == 2, as_json
    document = json.loads(as_json.stdout)
    assert document["format_version"] == 1
    assert document["summary"] == {
        "create": 0,
        "update": 2,
        "delete": 0,
        "unchanged": 0,
        "operations": 2,
        "destructive_operations": 0,
        "replicas": {"create": 0, "update": 0, "delete": 0},
        "usage_reads": 0,
    }
    (target,) = document["targets"]
    assert (target["name"], target["account_id"], target["region"]) == ("test", ACCOUNT, REGION)
    by_name = {k["name"]: k for k in target["keys"]}
    assert by_name["alpha"]["action"] == "update"
    assert by_name["alpha"]["key_id"] == keys["alpha"]
    assert [(c["field"], c["before"], c["after"]) for c in by_name["alpha"]["changes"]] == [
        ("description", "edited", "Alpha data key")
    ]
    assert [(c["field"], c["before"], c["after"]) for c in by_name["beta"]["changes"]] == [
        ("tags.Extra", "x", None)
    ]
    assert [op["operation"] for op in target["operations"]] == [
        "UpdateKeyDescription",
        "UntagResource",
    ]

    as_markdown = run_cli("plan", "--format", "markdown")
    assert as_markdown.returncode == 0, as_markdown
    assert as_markdown.stdout.startswith("## kms-reconciler plan\n")
    assert "**Plan: 0 to create, 2 to update, 0 to delete.**" in as_markdown.stdout
    assert f"| test | {ACCOUNT} | {REGION} | 0 | 2 | 0 | 0 | 0 |" in as_markdown.stdout
    assert "```diff" in as_markdown.stdout


def test_the_lean_read_path_plans_and_reports_as_botocore_does(
    converge: Converge, run_cli: RunCli, kms: Any, server: MotoServer
) -> None:
    """The same plan and drift report, byte for byte, whether observe's reads take the
    lean path (the default) or botocore (KMS_RECONCILER_REQUEST_PATH=botocore), with
    drift to show: a changed description, an extra tag, rotation off, and a hand-made key."""
    keys = converge()
    kms.update_key_description(KeyId=keys["alpha"], Description="edited")
    kms.tag_resource(KeyId=keys["beta"], Tags=[{"TagKey": "Extra", "TagValue": "x"}])
    kms.disable_key_rotation(KeyId=keys["alpha"])
    kms.create_key(Description="hand-made")
    outputs = {}
    for path in ("lean", "botocore"):
        env = {"KMS_RECONCILER_REQUEST_PATH": path}
        before = len(server.kms_operations())
        plan = run_cli("plan", "--format", "json", env_extra=env)
        drift = run_cli("drift", "--format", "json", env_extra=env)
        assert plan.returncode == 0 and drift.returncode == 2, (plan, drift)
        outputs[path] = (plan.stdout, drift.stdout, sorted(server.kms_operations()[before:]))
    assert outputs["lean"] == outputs["botocore"]
    changes = json.loads(outputs["lean"][0])["summary"]
    assert changes["update"] == 2
