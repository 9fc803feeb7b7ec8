"""Keys in custom key stores (CloudHSM and external key stores) through the real CLI.

moto ignores CustomKeyStoreId and XksKeyId; the tool's moto corrections (``moto_kms``)
keep them on the key and show them in DescribeKey, as KMS does. moto has no key stores, so
every store ID stands for a connected store (real KMS would refuse a store that is not).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from .conftest import Inventory, RunCli
from .helpers import NO_CHANGES, managed_keys, operations

pytestmark = pytest.mark.e2e

HSM_STORE = "cks-1234567890abcdef0"
XKS_STORE = "cks-0fedcba9876543210"
HSM = {
    "name": "hsm",
    "description": "Key in the CloudHSM key store",
    "origin": "AWS_CLOUDHSM",
    "custom_key_store_id": HSM_STORE,
    "aliases": ["alias/hsm"],
}
XKS = {
    "name": "xks",
    "description": "Key in the external key store",
    "origin": "EXTERNAL_KEY_STORE",
    "custom_key_store_id": XKS_STORE,
    "xks_key_id": "ext-key-0001",
}


def test_custom_key_store_keys_are_created_converge_and_stay_in_their_store(
    inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    inventory.write([HSM, XKS])  # the inventory's defaults turn rotation on: not for these

    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert sorted(op[0] for op in operations(planned.stdout)) == [
        "CreateAlias",
        "CreateKey",
        "CreateKey",
    ]
    shown = [" ".join(line.split()) for line in planned.stdout.splitlines()]
    assert f'+ custom_key_store_id = "{HSM_STORE}"' in shown
    assert '+ xks_key_id = "ext-key-0001"' in shown

    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 0, applied
    keys = managed_keys(kms)
    hsm = kms.describe_key(KeyId=keys["hsm"])["KeyMetadata"]
    xks = kms.describe_key(KeyId=keys["xks"])["KeyMetadata"]
    assert (hsm["Origin"], hsm["CustomKeyStoreId"]) == ("AWS_CLOUDHSM", HSM_STORE)
    assert "XksKeyConfiguration" not in hsm
    assert (xks["Origin"], xks["CustomKeyStoreId"]) == ("EXTERNAL_KEY_STORE", XKS_STORE)
    assert xks["XksKeyConfiguration"] == {"Id": "ext-key-0001"}

    replanned = run_cli("plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout

    # The store is immutable, like the origin: a spec naming another one is refused.
    inventory.write([{**HSM, "custom_key_store_id": "cks-99999999999999999"}, XKS])
    moved = run_cli("plan")
    assert moved.returncode == 1, moved
    assert "custom_key_store_id cannot change on an existing key" in moved.stderr
    assert f"({HSM_STORE} -> cks-99999999999999999)" in moved.stderr
    drift = run_cli("drift", "--format", "json")
    findings = json.loads(drift.stdout)["targets"][0]["findings"]
    assert [f["rule"] for f in findings] == ["immutable-changed"], findings


def test_import_writes_the_store_of_a_key(inventory: Inventory, run_cli: RunCli, kms: Any) -> None:
    key_id = kms.create_key(
        Description="made by hand",
        Origin="EXTERNAL_KEY_STORE",
        CustomKeyStoreId=XKS_STORE,
        XksKeyId="ext-key-0002",
    )["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/by-hand", TargetKeyId=key_id)
    path = inventory.write([])

    imported = run_cli("import", "--key-id", "alias/by-hand")
    assert imported.returncode == 0, imported
    (spec,) = yaml.safe_load((path / "imported" / "by-hand.yaml").read_text())["keys"]
    assert (spec["origin"], spec["custom_key_store_id"], spec["xks_key_id"]) == (
        "EXTERNAL_KEY_STORE",
        XKS_STORE,
        "ext-key-0002",
    )
    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert [op[0] for op in operations(planned.stdout)] == ["TagResource"]
