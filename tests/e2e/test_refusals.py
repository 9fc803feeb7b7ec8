"""What the CLI refuses, and that a refusal changes nothing (and, where promised, reads nothing)."""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from .conftest import Converge, Inventory, MotoServer, RunCli, cli_env, make_run_cli
from .helpers import (
    ACCOUNT,
    ALPHA,
    BETA,
    IDENTITY_TAG,
    NEW_KEY_UNUSED,
    NO_CHANGES,
    aliases,
    field_lines,
    key_ids,
    kms_snapshot,
    listed_keys,
    managed_keys,
    operations,
    tags_of,
)

pytestmark = pytest.mark.e2e

INVALID_KEYS = """\
keys:
  - name: alpha
    description: Alpha data key
    rotation:
      enabled: true
      period_days: 10
"""


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on: any AWS call would fail to connect."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "args",
    [("validate",), ("plan", "--detailed-exitcode"), ("apply", "--auto-approve")],
    ids=["validate", "plan", "apply"],
)
def test_invalid_inventory_fails_before_any_call(
    args: tuple[str, ...],
    inventory: Inventory,
    tmp_path: Path,
    cli_home: Path,
    closed_port: int,
) -> None:
    inventory.write([], raw_keys=INVALID_KEYS)
    run = make_run_cli(tmp_path, cli_env(cli_home, f"http://127.0.0.1:{closed_port}"))

    result = run(*args)

    assert result.returncode == 1, result
    assert result.stdout == ""
    assert (
        "error: keyspecs/keys.yaml:6: keys[0].rotation.period_days: must be between 90 "
        "and 2560 (key 'alpha')"
    ) in result.stderr, result
    for symptom in ("connect", "reach", "Endpoint", "Traceback"):
        assert symptom not in result.stderr, result


DESTRUCTIVE_SPEC_CHANGES = {
    # The alias is owned by the spec; dropping it from the spec deletes it.
    "alias-removed": (
        {**ALPHA, "aliases": []},
        [
            '- aliases = "alias/alpha" [destructive: not declared by the spec; callers using it '
            "will fail]"
        ],
        "DeleteAlias",
    ),
    "key-disabled": (
        {**ALPHA, "enabled": False},
        ["~ enabled = true -> false [destructive: blocks all use]"],
        "DisableKey",
    ),
}


@pytest.mark.parametrize(
    ("spec", "lines", "operation"),
    DESTRUCTIVE_SPEC_CHANGES.values(),
    ids=DESTRUCTIVE_SPEC_CHANGES.keys(),
)
def test_destructive_change_needs_allow_destroy(
    spec: dict[str, Any],
    lines: list[str],
    operation: str,
    converge: Converge,
    inventory: Inventory,
    run_cli: RunCli,
    kms: Any,
) -> None:
    keys = converge()
    inventory.write([spec, BETA])
    before = kms_snapshot(kms)

    refused = run_cli("apply", "--auto-approve")
    assert refused.returncode == 1, refused
    assert field_lines(refused.stdout, "alpha") == [NEW_KEY_UNUSED, *lines]
    assert (
        f"error: refusing to apply 1 destructive operation(s) without --allow-destroy "
        f"({operation} on alpha); nothing was changed"
    ) in refused.stderr
    assert kms_snapshot(kms) == before

    applied = run_cli("apply", "--auto-approve", "--allow-destroy")
    assert applied.returncode == 0, applied
    if operation == "DeleteAlias":
        assert aliases(kms) == {"alias/beta": keys["beta"]}
    else:
        meta = kms.describe_key(KeyId=keys["alpha"])["KeyMetadata"]
        assert (meta["KeyState"], meta["Enabled"]) == ("Disabled", False)

    replanned = run_cli("plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout


def test_removed_spec_is_orphaned_unless_destruction_is_allowed(
    converge: Converge, inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    keys = converge()
    inventory.write([ALPHA])  # beta's spec is gone

    planned = run_cli("plan", "--detailed-exitcode")
    # The tool's choice: an orphan is reported, but it is not a change (no operation).
    assert planned.returncode == 0, planned
    assert (
        f'! key "beta" ({keys["beta"]}) is orphaned: no spec declares it; run with '
        "--allow-destroy to delete it"
    ) in planned.stdout
    assert NO_CHANGES in planned.stdout
    assert listed_keys(planned.stdout) == {}

    destroy = run_cli("plan", "--allow-destroy", "--detailed-exitcode")
    assert destroy.returncode == 2, destroy
    assert listed_keys(destroy.stdout) == {
        "beta": f'- key "beta" ({keys["beta"]}) will be scheduled for deletion [destructive]'
    }
    assert operations(destroy.stdout) == [
        ("ScheduleKeyDeletion", "beta", "schedule deletion in 30 days  [destructive]")
    ]
    assert "Plan: 0 to create, 0 to update, 1 to delete." in destroy.stdout

    applied = run_cli("apply", "--auto-approve", "--allow-destroy")
    assert applied.returncode == 0, applied
    beta = kms.describe_key(KeyId=keys["beta"])["KeyMetadata"]
    assert beta["KeyState"] == "PendingDeletion"
    assert kms.describe_key(KeyId=keys["alpha"])["KeyMetadata"]["KeyState"] == "Enabled"

    replanned = run_cli("plan", "--allow-destroy", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout


def test_deletion_protection_survives_the_removal_of_the_spec(
    converge: Converge, inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    keys = converge([ALPHA, {**BETA, "deletion_protection": True}])
    inventory.write([ALPHA])

    destroy = run_cli("plan", "--allow-destroy", "--detailed-exitcode")
    assert destroy.returncode == 0, destroy
    assert (
        f'! key "beta" ({keys["beta"]}) is orphaned: deletion protection is on'
    ) in destroy.stdout
    assert "ScheduleKeyDeletion" not in destroy.stdout
    assert kms.describe_key(KeyId=keys["beta"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_account_mismatch_stops_before_any_kms_call(
    inventory: Inventory, run_cli: RunCli, kms: Any, server: MotoServer
) -> None:
    inventory.write([ALPHA], account_id="111111111111")

    for args in (("plan", "--detailed-exitcode"), ("apply", "--auto-approve")):
        result = run_cli(*args)
        assert result.returncode == 1, result
        assert "111111111111" in result.stderr, result
        assert ACCOUNT in result.stderr, result
        assert "nothing was read or changed" in result.stderr, result
    assert server.kms_operations() == [], "only STS may be called"
    assert len(server.requests) == 2  # one GetCallerIdentity per run
    assert key_ids(kms) == []


def test_duplicate_identity_tags_are_an_error(
    inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    twins = [
        kms.create_key(
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
            Tags=[{"TagKey": IDENTITY_TAG, "TagValue": "alpha"}],
        )["KeyMetadata"]["KeyId"]
        for _ in range(2)
    ]
    inventory.write([ALPHA, BETA])
    before = kms_snapshot(kms)

    for args in (("plan", "--detailed-exitcode"), ("apply", "--auto-approve")):
        result = run_cli(*args)
        assert result.returncode == 1, result
        assert f"2 keys carry the identity tag {IDENTITY_TAG}=alpha" in result.stderr, result
        for key_id in twins:
            assert key_id in result.stderr, result
    assert kms_snapshot(kms) == before, "nothing is applied, not even beta"


def test_alias_held_by_unmanaged_key_blocks_creation_unless_takeover(
    inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    stranger = kms.create_key(
        Description="someone else's", KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT"
    )["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/alpha", TargetKeyId=stranger)
    inventory.write([ALPHA])

    conflict = run_cli("plan", "--detailed-exitcode")
    assert conflict.returncode == 1, conflict
    assert (
        f"alias/alpha already points at key {stranger}, which this inventory does not manage; "
        "set allow_alias_takeover: true on the spec to take it over"
    ) in conflict.stderr
    assert "keyspecs/keys.yaml:2" in conflict.stderr  # the spec that declares the alias

    inventory.write([{**ALPHA, "allow_alias_takeover": True}])
    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert listed_keys(planned.stdout) == {"alpha": '+ key "alpha" will be created [destructive]'}
    assert (
        f'+ aliases = "alias/alpha" [destructive: takes over from unmanaged key {stranger}]'
    ) in field_lines(planned.stdout, "alpha")
    ops = operations(planned.stdout)
    assert ("CreateAlias", "alpha", "create alias/alpha") not in ops
    assert ops[-1] == (
        "UpdateAlias",
        "alpha",
        f"point alias/alpha at this key (takes over from unmanaged key {stranger}) "
        # the last use of the key that loses the alias (made by hand just now, unused)
        f"(key {stranger}: no use recorded since its creation on "
        f"{datetime.now(timezone.utc):%Y-%m-%d})  [destructive]",
    )

    applied = run_cli("apply", "--auto-approve", "--allow-destroy")
    assert applied.returncode == 0, applied
    keys = managed_keys(kms)
    assert aliases(kms) == {"alias/alpha": keys["alpha"]}
    # The unmanaged key itself is never touched.
    assert kms.describe_key(KeyId=stranger)["KeyMetadata"]["KeyState"] == "Enabled"
    assert tags_of(kms, stranger) == {}

    replanned = run_cli("plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout
