"""Whole lifecycles through the real CLI: create, converge, recover, adopt, the sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import SAMPLE_KEYSPECS, Converge, Inventory, RunCli, cli_env, make_run_cli
from .helpers import (
    ACCOUNT,
    ALPHA,
    BETA,
    IDENTITY_TAG,
    NO_CHANGES,
    aliases,
    canonical_policy,
    field_lines,
    key_ids,
    listed_keys,
    managed_keys,
    operations,
    policy_of,
    tags_of,
)

pytestmark = pytest.mark.e2e


def test_empty_account_plan_apply_converges(
    inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    inventory.write([ALPHA, BETA])

    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert "Plan: 2 to create, 0 to update, 0 to delete." in planned.stdout
    assert listed_keys(planned.stdout) == {
        "alpha": '+ key "alpha" will be created',
        "beta": '+ key "beta" will be created',
    }
    assert '+ description = "Alpha data key"' in field_lines(planned.stdout, "alpha")
    assert [op[0] for op in operations(planned.stdout)] == [
        "CreateKey",
        "CreateKey",
        "EnableKeyRotation",
        "EnableKeyRotation",
        "CreateAlias",
        "CreateAlias",
    ]
    assert kms.list_keys()["Keys"] == [], "plan must not create anything"

    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 0, applied
    assert "Apply complete: 6 operation(s)" in applied.stdout

    replanned = run_cli("plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout
    assert "No changes: 2 key(s) up to date." in replanned.stdout

    # What KMS holds now, read out of band.
    rendered = run_cli("render", "--format", "json")
    assert rendered.returncode == 0, rendered
    want = {doc["name"]: doc for doc in json.loads(rendered.stdout)["keys"]}

    keys = managed_keys(kms)
    assert set(keys) == {"alpha", "beta"}
    assert len(key_ids(kms)) == 2
    assert aliases(kms) == {"alias/alpha": keys["alpha"], "alias/beta": keys["beta"]}
    for name, spec in (("alpha", ALPHA), ("beta", BETA)):
        key_id = keys[name]
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert meta["KeyState"] == "Enabled"
        assert meta["Description"] == spec["description"]
        assert meta["KeySpec"] == "SYMMETRIC_DEFAULT"
        assert meta["KeyUsage"] == "ENCRYPT_DECRYPT"
        assert tags_of(kms, key_id) == {
            IDENTITY_TAG: name,
            "ManagedBy": "kms-reconciler",
            **spec["tags"],
        }
        rotation = kms.get_key_rotation_status(KeyId=key_id)
        assert rotation["KeyRotationEnabled"] is True
        assert rotation["RotationPeriodInDays"] == 365  # stored by the conftest's moto patch
        assert canonical_policy(policy_of(kms, key_id)) == canonical_policy(want[name]["policy"])
    # beta has no policy in its spec: it gets the default policy, rendered explicitly.
    assert canonical_policy(policy_of(kms, keys["beta"])) == canonical_policy(
        {
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ]
        }
    )


def test_pending_deletion_is_recovered_not_replaced(
    converge: Converge, run_cli: RunCli, kms: Any
) -> None:
    keys = converge()
    # Bare key ID: moto crashes on an ARN here (moto-kms-notes section 3).
    kms.schedule_key_deletion(KeyId=keys["alpha"], PendingWindowInDays=7)
    assert kms.describe_key(KeyId=keys["alpha"])["KeyMetadata"]["KeyState"] == "PendingDeletion"

    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert listed_keys(planned.stdout) == {
        "alpha": f'~ key "alpha" ({keys["alpha"]}) will be recovered from pending deletion'
    }
    assert '~ key_state = "PendingDeletion" -> "Disabled" # recover' in field_lines(
        planned.stdout, "alpha"
    )
    ops = [op[0] for op in operations(planned.stdout)]
    assert ops[0] == "CancelKeyDeletion"
    assert "EnableKey" in ops
    assert "CreateKey" not in ops
    assert "Plan: 0 to create, 1 to update, 0 to delete." in planned.stdout

    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 0, applied

    assert managed_keys(kms) == keys, "the same key, not a new one"
    meta = kms.describe_key(KeyId=keys["alpha"])["KeyMetadata"]
    assert meta["KeyState"] == "Enabled"
    assert meta["Enabled"] is True
    assert aliases(kms)["alias/alpha"] == keys["alpha"]

    replanned = run_cli("plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout


def test_adopt_unmanaged_key(inventory: Inventory, run_cli: RunCli, kms: Any) -> None:
    """adopt: the plan adds the identity tag and whatever else differs; the KeyId stays."""
    existing = kms.create_key(
        Description="hand-made",
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
        Tags=[
            {"TagKey": "ManagedBy", "TagValue": "kms-reconciler"},
            {"TagKey": "Owner", "TagValue": "team-a"},
        ],
    )["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=existing, RotationPeriodInDays=365)
    kms.create_alias(AliasName="alias/alpha", TargetKeyId=existing)
    # No policy in the spec: the default policy, which the key already has.
    spec = {k: v for k, v in ALPHA.items() if k != "policy"}
    inventory.write([{**spec, "adopt": existing}, BETA])

    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert listed_keys(planned.stdout) == {
        "alpha": f'~ key "alpha" ({existing}) will be updated in place',
        "beta": '+ key "beta" will be created',
    }
    reason, *changes = field_lines(planned.stdout, "alpha")
    assert reason.startswith(f"# adopt unmanaged key {existing}"), planned
    assert changes == [
        '~ description = "hand-made" -> "Alpha data key"',
        f'+ tags.{IDENTITY_TAG} = "alpha" # adopt',
    ], planned
    assert [op[:2] for op in operations(planned.stdout) if op[1] == "alpha"] == [
        ("UpdateKeyDescription", "alpha"),
        ("TagResource", "alpha"),
    ]
    assert "Plan: 1 to create, 1 to update, 0 to delete." in planned.stdout

    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 0, applied
    keys = managed_keys(kms)
    assert keys["alpha"] == existing
    assert len(key_ids(kms)) == 2
    assert aliases(kms)["alias/alpha"] == existing

    replanned = run_cli("plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout


def test_bundled_sample_in_the_sandbox(tmp_path: Path, cli_home: Path) -> None:
    """The newcomer's path: the repo's keyspecs/, --sandbox, no AWS and no moto_server."""
    shutil.copytree(SAMPLE_KEYSPECS, tmp_path / "keyspecs")
    env = cli_env(cli_home, endpoint_url=None)
    env["KMS_RECONCILER_SANDBOX_DIR"] = str(tmp_path / "sandbox")
    run = make_run_cli(tmp_path, env)

    planned = run("plan", "--sandbox", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert (
        "Plan: 14 to create, 0 to update, 0 to delete; multi-Region replicas: 1 to create, "
        "0 to update, 0 to delete." in planned.stdout
    )

    applied = run("apply", "--sandbox", "--auto-approve")
    assert applied.returncode == 0, applied
    # 33 key, rotation, alias and disable calls, plus app-data's grant in each target, plus
    # the multi-Region dr-backups: CreateKey, ReplicateKey, rotation, an alias per Region
    assert "Apply complete: 40 operation(s)" in applied.stdout
    assert applied.stdout.count("CreateGrant ... done") == 2

    replanned = run("plan", "--sandbox", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout
    assert "No changes: 8 key(s) up to date." in replanned.stdout
    assert "No changes: 6 key(s) up to date." in replanned.stdout
    assert (tmp_path / "sandbox").is_dir()
