"""Declarative grants end to end: apply, converge, an out-of-band grant, drift, purge.

moto and real KMS differ here (moto-kms-notes.md, CreateGrant / ListGrants rows):

- moto does not keep CreateGrant idempotent by ``Name``; the tool never relies on it
  (existing grants are matched by content), and this test checks that a re-apply makes
  no second grant;
- moto ignores ListGrants filters and never paginates: the tool lists every grant of a
  managed key and filters itself (pagination is covered with a fake in test_grants.py);
- moto's GrantIds are short hex strings (real: 64 hex characters): only compared here,
  never parsed;
- moto returns ``null`` for an absent RetiringPrincipal or Constraints, where real KMS
  leaves the field out; observe reads both the same.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import Inventory, MotoServer, RunCli
from .helpers import ACCOUNT, NEW_KEY_UNUSED, NO_CHANGES, field_lines, managed_keys, operations

pytestmark = pytest.mark.e2e

APP = f"arn:aws:iam::{ACCOUNT}:role/App"
AUDIT = f"arn:aws:iam::{ACCOUNT}:role/Audit"
INTRUDER = f"arn:aws:iam::{ACCOUNT}:role/Intruder"

VAULT: dict[str, Any] = {
    "name": "vault",
    "description": "Vault key with two grants",
    "aliases": ["alias/vault"],
    "grants": [
        {
            "name": "app-use",
            # {account_id} is filled in per target
            "grantee_principal": "arn:aws:iam::{account_id}:role/App",
            "operations": ["Encrypt", "Decrypt", "GenerateDataKey"],
            "constraints": {"encryption_context_subset": {"Team": "vault"}},
        },
        {
            "name": "audit-describe",
            "grantee_principal": AUDIT,
            "operations": ["DescribeKey"],
            "retiring_principal": f"arn:aws:iam::{ACCOUNT}:root",
        },
    ],
}


def grants_of(kms: Any, key_id: str) -> dict[str, dict[str, Any]]:
    """{GrantId: grant} of one key, with the fields moto may send as null dropped."""
    listed = kms.list_grants(KeyId=key_id)["Grants"]
    return {g["GrantId"]: {k: v for k, v in g.items() if v is not None} for g in listed}


def test_grants_apply_converge_drift_and_purge(
    inventory: Inventory, run_cli: RunCli, kms: Any, server: MotoServer
) -> None:
    inventory.write([VAULT])
    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 0, applied
    key_id = managed_keys(kms)["vault"]
    declared = grants_of(kms, key_id)
    assert sorted(
        (g["Name"], g["GranteePrincipal"], sorted(g["Operations"])) for g in declared.values()
    ) == [
        ("app-use", APP, ["Decrypt", "Encrypt", "GenerateDataKey"]),
        ("audit-describe", AUDIT, ["DescribeKey"]),
    ]
    by_name = {g["Name"]: g for g in declared.values()}
    assert by_name["app-use"]["Constraints"] == {"EncryptionContextSubset": {"Team": "vault"}}
    assert by_name["audit-describe"]["RetiringPrincipal"] == f"arn:aws:iam::{ACCOUNT}:root"

    # Converged: grants match by content, so no second CreateGrant (moto would make one).
    server.recorder.clear()
    plan = run_cli("plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan
    assert NO_CHANGES in plan.stdout
    reads = server.kms_operations()
    assert reads.count("ListGrants") == 1  # one managed key, one page
    assert not [op for op in reads if op in ("CreateGrant", "RevokeGrant")]

    # Out of band: a grant nobody declared, with Decrypt and CreateGrant.
    extra = kms.create_grant(
        KeyId=key_id,
        GranteePrincipal=INTRUDER,
        Operations=["Decrypt", "CreateGrant"],
        Name="handmade",
    )["GrantId"]

    # Without grants_purge the plan leaves it alone; drift reports it, high, exit 2.
    plan = run_cli("plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan
    drift = run_cli("drift", "--format", "json")
    assert drift.returncode == 2, drift
    (target,) = json.loads(drift.stdout)["targets"]
    findings = [(f["rule"], f["severity"], f["key"]) for f in target["findings"]]
    assert findings == [("grant-added-sensitive", "high", "vault")]
    assert extra in target["findings"][0]["message"]

    # grants_purge: true revokes it: destructive, so only with --allow-destroy.
    inventory.write([{**VAULT, "grants_purge": True}])
    plan = run_cli("plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan
    assert operations(plan.stdout) == [
        (
            "RevokeGrant",
            "vault",
            "revoke grant handmade (not declared; grants_purge is on)  [destructive]",
        )
    ]
    assert field_lines(plan.stdout, "vault") == [
        NEW_KEY_UNUSED,
        f'- grants.handmade = "CreateGrant, Decrypt to {INTRUDER}" '
        "[destructive: not declared; grants_purge is on]",
    ]
    refused = run_cli("apply", "--auto-approve")
    assert refused.returncode == 1, refused
    assert extra in grants_of(kms, key_id)

    purged = run_cli("apply", "--auto-approve", "--allow-destroy")
    assert purged.returncode == 0, purged
    assert grants_of(kms, key_id) == declared  # the declared grants kept their GrantIds

    final = run_cli("plan", "--detailed-exitcode")
    assert final.returncode == 0, final
    assert NO_CHANGES in final.stdout
