"""``kms-reconciler import`` and ``adopt:`` end to end: existing keys come under management
without being replaced or changed.

The keys are made with boto3 the way other tools leave them (the AWS CLI, Terraform,
CloudFormation with its ``aws:cloudformation:*`` tags), then imported by the real CLI.
The import is right when the next plan only adds the identity tag, and after apply a plan
says "No changes." with every key as it was: same KeyId, state, description, policy,
aliases and rotation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Inventory, MotoServer, RunCli
from .helpers import (
    ACCOUNT,
    IDENTITY_TAG,
    NO_CHANGES,
    REGION,
    aliases,
    canonical_policy,
    field_lines,
    key_ids,
    listed_keys,
    managed_keys,
    operations,
    tags_of,
)

pytestmark = pytest.mark.e2e

CUSTOM_POLICY = {
    "Version": "2012-10-17",
    "Id": "orders-policy",
    "Statement": [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "Allow the orders service",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/OrdersService"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": f"sqs.{REGION}.amazonaws.com"}},
        },
    ],
}
CLOUDFORMATION_TAGS = {
    "aws:cloudformation:stack-name": "billing",
    "aws:cloudformation:logical-id": "BillingKey",
    "aws:cloudformation:stack-id": (
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/billing/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    ),
}


def _create(kms: Any, *, aliases: tuple[str, ...] = (), **params: Any) -> str:
    params.setdefault("KeySpec", "SYMMETRIC_DEFAULT")
    params.setdefault("KeyUsage", "ENCRYPT_DECRYPT")  # moto omits it unless given
    tags = params.pop("tags", {})
    if tags:
        params["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in tags.items()]
    key_id: str = kms.create_key(**params)["KeyMetadata"]["KeyId"]
    for alias in aliases:
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def _existing_keys(kms: Any) -> dict[str, str]:
    """Keys as other tools leave them: {label: key id}."""
    keys = {
        "symmetric-rotating": _create(
            kms,
            Description="Payments data",
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
            tags={"Owner": "payments"},
            aliases=("alias/payments-data",),
        ),
        "rsa-2048-signing": _create(
            kms,
            Description="Release signing",
            KeySpec="RSA_2048",
            KeyUsage="SIGN_VERIFY",
            aliases=("alias/release-signing",),
        ),
        "ecc-p256-signing": _create(  # no alias: named after its key ID
            kms, Description="Token signing", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY"
        ),
        "hmac-256": _create(
            kms,
            Description="Webhook MAC",
            KeySpec="HMAC_256",
            KeyUsage="GENERATE_VERIFY_MAC",
            aliases=("alias/webhook-mac",),
        ),
        "disabled": _create(
            kms,
            Description="Old archive",
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
            aliases=("alias/old-archive",),
        ),
        "cloudformation": _create(
            kms,
            Description="Billing key (CloudFormation)",
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
            tags={**CLOUDFORMATION_TAGS, "Project": "billing"},
            aliases=("alias/billing",),
        ),
        "custom-policy-two-aliases": _create(
            kms,
            Description="Orders",
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
            Policy=json.dumps(CUSTOM_POLICY, indent=2),
            aliases=("alias/orders-b", "alias/orders-a"),
        ),
    }
    # moto stores RotationPeriodInDays only with the conftest's patch (moto-kms-notes 9).
    kms.enable_key_rotation(KeyId=keys["symmetric-rotating"], RotationPeriodInDays=180)
    kms.enable_key_rotation(KeyId=keys["cloudformation"])  # 365, the default
    kms.disable_key(KeyId=keys["disabled"])
    return keys


EXPECTED_NAMES = {
    "symmetric-rotating": "payments-data",
    "rsa-2048-signing": "release-signing",
    "hmac-256": "webhook-mac",
    "disabled": "old-archive",
    "cloudformation": "billing",
    "custom-policy-two-aliases": "orders-a",  # the first alias, sorted
}


def _state(kms: Any, key_id: str) -> dict[str, Any]:
    """What an import must not change (tags aside: adoption adds the identity tag)."""
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    rotation = kms.get_key_rotation_status(KeyId=key_id)
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    return {
        "KeyId": meta["KeyId"],
        "KeyState": meta["KeyState"],
        "Description": meta["Description"],
        "KeySpec": meta["KeySpec"],
        "KeyUsage": meta["KeyUsage"],
        "policy": canonical_policy(policy),
        "aliases": sorted(a for a, target in aliases(kms).items() if target == key_id),
        "rotation": (rotation["KeyRotationEnabled"], rotation.get("RotationPeriodInDays")),
    }


def _empty_inventory(inventory: Inventory, **settings: Any) -> Path:
    return inventory.write([], settings=settings or None)


def _errors(stderr: str) -> str:
    """The error lines (stderr also has progress lines such as "read 3 customer key(s)")."""
    return "".join(line for line in stderr.splitlines(keepends=True) if line.startswith("error:"))


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_import_all_unmanaged_round_trip(
    inventory: Inventory,
    server: MotoServer,
    run_cli: RunCli,
    run_cli_in_process: RunCli,
    kms: Any,
) -> None:
    keys = _existing_keys(kms)
    names = {**EXPECTED_NAMES, "ecc-p256-signing": f"key-{keys['ecc-p256-signing'][:8]}"}
    before = {label: _state(kms, key_id) for label, key_id in keys.items()}
    tags_before = {label: tags_of(kms, key_id) for label, key_id in keys.items()}
    path = _empty_inventory(inventory)
    server.recorder.clear()

    imported = run_cli("import", "--all-unmanaged")
    assert imported.returncode == 0, imported
    for label, name in names.items():
        assert (
            f"imported {keys[label]} (test) as '{name}': keyspecs/imported/{name}.yaml, "
            f"keyspecs/policies/imported/{name}.json"
        ) in imported.stdout, imported
    assert "Imported 7 key(s)." in imported.stdout
    assert sorted(p.name for p in (path / "imported").iterdir()) == sorted(
        f"{n}.yaml" for n in names.values()
    )
    assert sorted(p.name for p in (path / "policies" / "imported").iterdir()) == sorted(
        f"{n}.json" for n in names.values()
    )
    for label, name in names.items():
        text = (path / "imported" / f"{name}.yaml").read_text(encoding="utf-8")
        assert text.startswith("# Imported by kms-reconciler on "), text
        assert f"from key {keys[label]}" in text.splitlines()[0]
        (spec,) = yaml.safe_load(text)["keys"]
        assert (spec["name"], spec["adopt"], spec["inherit_defaults"]) == (
            name,
            keys[label],
            False,
        )
        assert not [t for t in spec.get("tags", {}) if t.startswith("aws:")], spec
        document = json.loads(
            (path / "policies" / "imported" / f"{name}.json").read_text(encoding="utf-8")
        )
        assert canonical_policy(document) == before[label]["policy"], name

    validated = run_cli("validate")
    assert validated.returncode == 0, validated

    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert "Plan: 0 to create, 7 to update, 0 to delete." in planned.stdout
    assert sorted(operations(planned.stdout)) == sorted(
        ("TagResource", name, f"set tags {IDENTITY_TAG}") for name in names.values()
    ), planned
    for label, name in names.items():
        reason, *changes = field_lines(planned.stdout, name)
        assert reason.startswith(f"# adopt unmanaged key {keys[label]}"), planned
        assert changes == [f'+ tags.{IDENTITY_TAG} = "{name}" # adopt'], planned

    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 0, applied

    # The closing re-plan runs in-process, as in test_out_of_band (one start-up less).
    replanned = run_cli_in_process("plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout

    writes = [
        op for op in server.kms_operations() if not op.startswith(("List", "Describe", "Get"))
    ]
    assert writes == ["TagResource"] * 7, writes
    assert len(key_ids(kms)) == 7
    assert managed_keys(kms) == {names[label]: key_id for label, key_id in keys.items()}
    after = {label: _state(kms, key_id) for label, key_id in keys.items()}
    assert after == before
    for label, key_id in keys.items():
        assert tags_of(kms, key_id) == {**tags_before[label], IDENTITY_TAG: names[label]}


def test_import_keeps_grants_so_the_first_drift_is_clean(
    inventory: Inventory, server: MotoServer, run_cli: RunCli, kms: Any
) -> None:
    """The key's grants go into the spec (issue: import keeps grants); an AWS service's
    grant (EBS attaching a volume) is left out, as the tool never declares or revokes one."""
    key_id = _create(kms, Description="Orders", aliases=("alias/orders",))
    reporting = f"arn:aws:iam::{ACCOUNT}:role/Reporting"
    batch = f"arn:aws:iam::{ACCOUNT}:role/Batch"
    kms.create_grant(
        KeyId=key_id,
        GranteePrincipal=reporting,
        Operations=["Decrypt", "DescribeKey"],
        Constraints={"EncryptionContextSubset": {"app": "orders"}},
        Name="reporting-decrypt",
    )
    unnamed = kms.create_grant(
        KeyId=key_id,
        GranteePrincipal=batch,
        Operations=["GenerateDataKey"],
        RetiringPrincipal=reporting,
    )["GrantId"]
    # the same grant twice: one declaration matches both
    kms.create_grant(KeyId=key_id, GranteePrincipal=batch, Operations=["Encrypt"], Name="enc")
    kms.create_grant(KeyId=key_id, GranteePrincipal=batch, Operations=["Encrypt"], Name="enc")
    kms.create_grant(
        KeyId=key_id,
        GranteePrincipal=f"arn:aws:sts::{ACCOUNT}:assumed-role/aws:ec2-infrastructure/i-0abc",
        Operations=["Decrypt"],
        Constraints={"EncryptionContextSubset": {"aws:ebs:id": "vol-0abc"}},
        Name="ebs",
    )
    path = _empty_inventory(inventory)
    server.recorder.clear()

    imported = run_cli("import", "--key-id", "alias/orders")
    assert imported.returncode == 0, imported
    assert server.kms_operations().count("ListGrants") == 1
    text = (path / "imported" / "orders.yaml").read_text(encoding="utf-8")
    assert "# 1 grant(s) made by AWS services for their own resources are not written" in text
    (spec,) = yaml.safe_load(text)["keys"]
    assert spec["grants"] == [
        {"name": "enc", "grantee_principal": batch, "operations": ["Encrypt"]},
        {
            "name": f"imported-{unnamed[:8]}",
            "grantee_principal": batch,
            "operations": ["GenerateDataKey"],
            "retiring_principal": reporting,
        },
        {
            "name": "reporting-decrypt",
            "grantee_principal": reporting,
            "operations": ["Decrypt", "DescribeKey"],
            "constraints": {"encryption_context_subset": {"app": "orders"}},
        },
    ]

    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert operations(planned.stdout) == [("TagResource", "orders", f"set tags {IDENTITY_TAG}")]
    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 0, applied
    drift = run_cli("drift", "--format", "json")
    assert drift.returncode == 0, drift
    assert json.loads(drift.stdout)["targets"][0]["findings"] == []


@pytest.mark.parametrize("ref", ["key-id", "alias"])  # a key ARN: see the PendingDeletion test
def test_import_one_key(ref: str, inventory: Inventory, run_cli: RunCli, kms: Any) -> None:
    wanted = _create(kms, Description="Orders", aliases=("alias/orders",))
    other = _create(kms, Description="Other", aliases=("alias/other",))
    path = _empty_inventory(inventory)
    arg = {"key-id": wanted, "alias": "alias/orders"}[ref]

    imported = run_cli("import", "--key-id", arg)
    assert imported.returncode == 0, imported
    assert f"imported {wanted} (test) as 'orders'" in imported.stdout
    assert other not in imported.stdout
    assert "Imported 1 key(s)." in imported.stdout
    assert sorted(_files(path / "imported")) == ["orders.yaml"]
    assert sorted(_files(path / "policies" / "imported")) == ["orders.json"]
    (spec,) = yaml.safe_load((path / "imported" / "orders.yaml").read_text())["keys"]
    assert spec["adopt"] == wanted
    assert spec["aliases"] == ["alias/orders"]


def test_second_import_of_a_key_is_refused(
    inventory: Inventory, run_cli: RunCli, run_cli_in_process: RunCli, kms: Any
) -> None:
    key_id = _create(kms, Description="Orders", aliases=("alias/orders",))
    path = _empty_inventory(inventory)
    first = run_cli_in_process("import", "--key-id", key_id)
    assert first.returncode == 0, first
    files = _files(path)

    again = run_cli("import", "--key-id", "alias/orders")
    assert again.returncode == 1, again
    assert _errors(again.stderr) == (
        f"error: cannot import {key_id} (test): the spec 'orders' already adopts it "
        "(apply to finish the adoption)\n"
    ), again
    assert _files(path) == files, "nothing written"

    # A re-check, in-process: --all-unmanaged does not import it twice either.
    everything = run_cli_in_process("import", "--all-unmanaged")
    assert everything.returncode == 0, everything
    assert f"skipped {key_id} (test): the spec 'orders' already adopts it" in everything.stdout, (
        everything
    )
    assert "Imported 0 key(s)." in everything.stdout
    assert _files(path) == files, "nothing written"


def test_import_of_an_adopted_and_applied_key_says_it_is_managed(
    inventory: Inventory, run_cli: RunCli, run_cli_in_process: RunCli, kms: Any
) -> None:
    key_id = _create(kms, Description="Orders", aliases=("alias/orders",))
    _empty_inventory(inventory)
    assert run_cli_in_process("import", "--key-id", key_id).returncode == 0
    applied = run_cli_in_process("apply", "--auto-approve")
    assert applied.returncode == 0, applied
    assert managed_keys(kms) == {"orders": key_id}

    again = run_cli("import", "--key-id", key_id)
    assert again.returncode == 1, again
    # importer.importable() has this reason; the CLI reports the spec's adopt: first.
    assert _errors(again.stderr) == (
        f"error: cannot import {key_id} (test): it is already managed as 'orders'\n"
    ), again


def test_pending_deletion_and_ignored_keys_are_not_imported(
    inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    pending = _create(kms, Description="Going away", aliases=("alias/going-away",))
    kms.schedule_key_deletion(KeyId=pending, PendingWindowInDays=7)  # bare ID: moto notes 3
    ignored = _create(kms, Description="Legacy", aliases=("alias/legacy-reports",))
    kept = _create(kms, Description="Kept", aliases=("alias/kept",))
    path = _empty_inventory(inventory, ignore=[{"alias": "alias/legacy-*"}])

    refused = run_cli("import", "--key-id", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{pending}")
    assert refused.returncode == 1, refused
    assert _errors(refused.stderr) == (
        f"error: cannot import {pending} (test): it is PendingDeletion; "
        "only Enabled or Disabled keys\n"
    ), refused
    assert not (path / "imported").exists()

    everything = run_cli("import", "--all-unmanaged")
    assert everything.returncode == 0, everything
    assert f"imported {kept} (test) as 'kept'" in everything.stdout
    assert f"skipped {pending} (test): it is PendingDeletion" in everything.stdout
    assert ignored not in everything.stdout, "ignored keys are not even listed"
    assert "Imported 1 key(s)." in everything.stdout
    assert sorted(_files(path / "imported")) == ["kept.yaml"]


def test_adopt_by_alias_in_a_hand_written_spec(
    inventory: Inventory,
    server: MotoServer,
    run_cli: RunCli,
    run_cli_in_process: RunCli,
    kms: Any,
) -> None:
    """DESIGN 4.3: ``adopt: <alias>`` without the import command; only the identity tag."""
    existing = _create(
        kms,
        Description="Legacy application key",
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
        tags={"ManagedBy": "kms-reconciler", "Owner": "team-a"},
        aliases=("alias/legacy-app",),
    )
    kms.enable_key_rotation(KeyId=existing, RotationPeriodInDays=365)
    before = _state(kms, existing)
    inventory.write(
        [
            {
                "name": "legacy-app",
                "adopt": "alias/legacy-app",
                "description": "Legacy application key",
                "aliases": ["alias/legacy-app"],
                "tags": {"Owner": "team-a"},
            }
        ]
    )
    server.recorder.clear()

    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert listed_keys(planned.stdout) == {
        "legacy-app": f'~ key "legacy-app" ({existing}) will be updated in place'
    }, planned
    assert field_lines(planned.stdout, "legacy-app") == [
        f"# adopt unmanaged key {existing} (found by alias/legacy-app)",
        f'+ tags.{IDENTITY_TAG} = "legacy-app" # adopt',
    ], planned
    assert [op[0] for op in operations(planned.stdout)] == ["TagResource"]

    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 0, applied
    replanned = run_cli_in_process("plan", "--detailed-exitcode")  # a re-check
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout

    assert "CreateKey" not in server.kms_operations()
    assert managed_keys(kms) == {"legacy-app": existing}
    assert len(key_ids(kms)) == 1
    assert _state(kms, existing) == before
