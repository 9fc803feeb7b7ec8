"""Out-of-band changes after a converged apply: plan shows exactly that change, apply fixes it.

Each case starts from ``alpha`` and ``beta`` applied by the CLI, changes one field of
``alpha`` with boto3 behind the tool's back, then checks the whole loop:
``plan --detailed-exitcode`` exits 2 listing only ``alpha`` and the expected field lines
and operations; ``apply`` (with ``--allow-destroy`` where the plan marks the change
destructive) exits 0; ``plan --detailed-exitcode`` exits 0 with "No changes.".

The first plan and the apply run the CLI as a subprocess. The matrix's closing re-plan runs
the same CLI in-process (``run_cli_in_process``): it checks the same exit code and text,
and saves one interpreter start-up per case, which keeps the suite within its time budget.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest

from .conftest import Converge, Inventory, RunCli
from .helpers import (
    ACCOUNT,
    ALPHA,
    BETA,
    NEW_KEY_UNUSED,
    NO_CHANGES,
    aliases,
    cosmetic_policy_rewrite,
    field_lines,
    listed_keys,
    managed_keys,
    operations,
    policy_of,
    tags_of,
)

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Case:
    change: Callable[[Any, dict[str, str]], None]  # (kms client, {name: key id})
    lines: tuple[str, ...]  # expected change lines under alpha (blanks collapsed)
    ops: tuple[str, ...]  # expected operations, in order
    destructive: bool = False
    check: Callable[[Any, dict[str, str]], None] | None = None  # after apply


def _extra_statement(kms: Any, keys: dict[str, str]) -> None:
    policy = policy_of(kms, keys["alpha"])
    policy["Statement"].append(
        {
            "Sid": "Out of band",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/Intruder"},
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    )
    kms.put_key_policy(KeyId=keys["alpha"], PolicyName="default", Policy=json.dumps(policy))


def _rotation_period(kms: Any, keys: dict[str, str]) -> None:
    # Stock moto drops RotationPeriodInDays (moto-kms-notes section 9). The conftest
    # patches moto to store and return it as real KMS does, so this change is observable.
    kms.enable_key_rotation(KeyId=keys["alpha"], RotationPeriodInDays=90)


def _check_rotation(kms: Any, keys: dict[str, str]) -> None:
    status = kms.get_key_rotation_status(KeyId=keys["alpha"])
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 365)


def _check_enabled(kms: Any, keys: dict[str, str]) -> None:
    meta = kms.describe_key(KeyId=keys["alpha"])["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("Enabled", True)


def _check_alias(kms: Any, keys: dict[str, str]) -> None:
    assert aliases(kms) == {"alias/alpha": keys["alpha"], "alias/beta": keys["beta"]}


def _check_tags(kms: Any, keys: dict[str, str]) -> None:
    assert tags_of(kms, keys["alpha"]) == {
        "kms-reconciler:name": "alpha",
        "ManagedBy": "kms-reconciler",
        "Owner": "team-a",
    }


CASES = {
    "description-changed": Case(
        lambda kms, k: kms.update_key_description(KeyId=k["alpha"], Description="edited"),
        ('~ description = "edited" -> "Alpha data key"',),
        ("UpdateKeyDescription",),
        check=lambda kms, k: (
            kms.describe_key(KeyId=k["alpha"])["KeyMetadata"]["Description"] == "Alpha data key"
            or pytest.fail("description not restored")
        ),
    ),
    # Re-enabling is not destructive (the tool marks only DisableKey as destructive).
    "key-disabled": Case(
        lambda kms, k: kms.disable_key(KeyId=k["alpha"]),
        ("~ enabled = false -> true",),
        ("EnableKey",),
        check=_check_enabled,
    ),
    "rotation-disabled": Case(
        lambda kms, k: kms.disable_key_rotation(KeyId=k["alpha"]),
        ('~ rotation = "disabled" -> "every 365 days"',),
        ("EnableKeyRotation",),
        check=_check_rotation,
    ),
    "rotation-period-changed": Case(
        _rotation_period,
        ('~ rotation = "every 90 days" -> "every 365 days"',),
        ("EnableKeyRotation",),
        check=_check_rotation,
    ),
    "tag-added": Case(
        lambda kms, k: kms.tag_resource(
            KeyId=k["alpha"], Tags=[{"TagKey": "Extra", "TagValue": "x"}]
        ),
        ('- tags.Extra = "x"',),
        ("UntagResource",),
        check=_check_tags,
    ),
    "tag-changed": Case(
        lambda kms, k: kms.tag_resource(
            KeyId=k["alpha"], Tags=[{"TagKey": "Owner", "TagValue": "someone-else"}]
        ),
        ('~ tags.Owner = "someone-else" -> "team-a"',),
        ("TagResource",),
        check=_check_tags,
    ),
    "tag-removed": Case(
        lambda kms, k: kms.untag_resource(KeyId=k["alpha"], TagKeys=["Owner"]),
        ('+ tags.Owner = "team-a"',),
        ("TagResource",),
        check=_check_tags,
    ),
    # Removing the extra statement takes access away from someone: destructive.
    "policy-statement-added": Case(
        _extra_statement,
        (
            "~ policy (template application.json.j2) [destructive: removes access]",
            '- statement "Out of band"',
            "Effect: Allow",
            f"Principal: AWS: arn:aws:iam::{ACCOUNT}:role/Intruder",
            "Action: kms:Decrypt",
        ),
        ("PutKeyPolicy",),
        destructive=True,
        check=lambda kms, k: (
            "Out of band" not in json.dumps(policy_of(kms, k["alpha"]))
            or pytest.fail("statement not removed")
        ),
    ),
    "alias-deleted": Case(
        lambda kms, k: kms.delete_alias(AliasName="alias/alpha"),
        ('+ aliases = "alias/alpha"',),
        ("CreateAlias",),
        check=_check_alias,
    ),
    # Moving an alias back from another key this inventory manages is not destructive.
    "alias-moved-to-managed-key": Case(
        lambda kms, k: kms.update_alias(AliasName="alias/alpha", TargetKeyId=k["beta"]),
        ("+ aliases = \"alias/alpha\" # moves from managed key 'beta' ({beta})",),
        ("UpdateAlias",),
        check=_check_alias,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_out_of_band_change_is_planned_and_reverted(
    case: Case, converge: Converge, run_cli: RunCli, run_cli_in_process: RunCli, kms: Any
) -> None:
    keys = converge()
    case.change(kms, keys)

    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    header = f'~ key "alpha" ({keys["alpha"]}) will be updated in place'
    if case.destructive:
        header += " [destructive]"
    assert listed_keys(planned.stdout) == {"alpha": header}, planned
    expected = [line.format(**keys) for line in case.lines]
    if case.destructive:  # the plan shows the last use of a key it takes access from
        expected = [NEW_KEY_UNUSED, *expected]
    assert field_lines(planned.stdout, "alpha") == expected, planned
    assert [op[0] for op in operations(planned.stdout)] == list(case.ops), planned
    assert "Plan: 0 to create, 1 to update, 0 to delete." in planned.stdout
    assert "1 key(s) up to date." in planned.stdout  # beta
    assert ("[destructive]" in planned.stdout) is case.destructive, planned

    applied = run_cli("apply", "--auto-approve", *(["--allow-destroy"] if case.destructive else []))
    assert applied.returncode == 0, applied

    replanned = run_cli_in_process("plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout
    assert managed_keys(kms) == keys
    if case.check is not None:
        case.check(kms, keys)


def test_alias_retargeted_to_unmanaged_key_is_a_conflict(
    converge: Converge, inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    """DESIGN 4.4: an alias on a key we do not own is a conflict unless takeover is allowed."""
    keys = converge()
    stranger = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")
    stranger_id = stranger["KeyMetadata"]["KeyId"]
    kms.update_alias(AliasName="alias/alpha", TargetKeyId=stranger_id)

    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 1, planned
    assert (
        f"alias/alpha already points at key {stranger_id}, which this inventory does not "
        "manage; set allow_alias_takeover: true on the spec to take it over"
    ) in planned.stderr
    assert planned.stdout == ""

    inventory.write([{**ALPHA, "allow_alias_takeover": True}, BETA])
    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert field_lines(planned.stdout, "alpha") == [
        f'+ aliases = "alias/alpha" [destructive: takes over from unmanaged key {stranger_id}]'
    ]
    assert operations(planned.stdout) == [
        (
            "UpdateAlias",
            "alpha",
            f"point alias/alpha at this key (takes over from unmanaged key {stranger_id}) "
            # the last use of the key that loses the alias (made by hand just now, unused)
            f"(key {stranger_id}: no use recorded since its creation on "
            f"{datetime.now(timezone.utc):%Y-%m-%d})  [destructive]",
        )
    ]
    applied = run_cli("apply", "--auto-approve", "--allow-destroy")
    assert applied.returncode == 0, applied
    assert aliases(kms)["alias/alpha"] == keys["alpha"]

    replanned = run_cli("plan", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned
    assert NO_CHANGES in replanned.stdout


def test_cosmetic_policy_rewrite_is_no_change(
    converge: Converge, run_cli: RunCli, kms: Any
) -> None:
    """Same statements, other form: reordered, scalar vs list, account ID, whitespace."""
    keys = converge()
    cosmetic_policy_rewrite(kms, keys["alpha"])

    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 0, planned
    assert NO_CHANGES in planned.stdout
    assert listed_keys(planned.stdout) == {}
