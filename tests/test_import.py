"""import: specs for existing keys that the next apply adopts without changing them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from click.testing import CliRunner

from reconciler.aws import sandbox_session
from reconciler.cli import main
from reconciler.importer import derive_name, import_key, importable
from reconciler.loader import load_inventory
from reconciler.state import Grant
from tests.factories import IDENTITY, ROOT_POLICY, TARGET, observed_key

ACCOUNT = "111122223333"


@pytest.mark.parametrize(
    ("aliases", "taken", "expected"),
    [
        ({"alias/payments_DB"}, set(), "payments-db"),
        ({"alias/b", "alias/a-first"}, set(), "a-first"),
        (set(), set(), "key-1234abcd"),
        ({"alias/___"}, set(), "key-1234abcd"),
        ({"alias/app"}, {"app", "app-2"}, "app-3"),
        ({"alias/team/App.Key"}, set(), "team-app-key"),
    ],
    ids=["alias", "first-alias", "no-alias", "alias-without-letters", "collision", "path-alias"],
)
def test_names_come_from_the_first_alias_and_never_collide(
    aliases: set[str], taken: set[str], expected: str
) -> None:
    key = observed_key(None, "1234ABCD-0000", aliases=frozenset(aliases))
    assert derive_name(key, set(taken)) == expected


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"key_manager": "AWS"}, "AWS managed"),
        ({"name": "app"}, "already managed as 'app'"),
        ({"key_state": "PendingDeletion"}, "PendingDeletion"),
        ({"policy": None}, "could not be read"),
    ],
    ids=["aws-managed", "managed", "pending-deletion", "policy-unreadable"],
)
def test_keys_that_cannot_be_imported_say_why(fields: dict[str, Any], reason: str) -> None:
    name = fields.pop("name", None)
    key = observed_key(name, "k-1", **fields)
    if "key_manager" in fields:
        key = observed_key(name, "k-1")
        object.__setattr__(key, "key_manager", "AWS")
    assert reason in (importable(key, IDENTITY) or "")


def test_imported_spec_loads_and_describes_the_key(tmp_path: Path) -> None:
    key = observed_key(
        None,
        "1234abcd-0000",
        tags={"Team": "payments", "aws:cloudformation:stack-name": "app", "Flag": "yes"},
        aliases=frozenset({"alias/payments"}),
        rotation_period_days=180,
        creation_date=datetime(2024, 5, 6, tzinfo=timezone.utc),
    )
    item = import_key(key, "payments", TARGET, "2026-11-22")
    assert item.spec_path == "imported/payments.yaml"
    assert item.policy_path == "policies/imported/payments.json"
    assert "# Imported by kms-reconciler on 2026-11-22 from key 1234abcd-0000" in item.spec_text
    assert "created on 2024-05-06" in item.spec_text
    root = tmp_path / "keyspecs"
    (root / "imported").mkdir(parents=True)
    (root / "policies/imported").mkdir(parents=True)
    (root / "inventory.yaml").write_text(
        f"targets:\n  - {{name: production, account_id: '{ACCOUNT}', region: us-east-1}}\n"
        "defaults: {tags: {ManagedBy: kms-reconciler}}\n"
    )
    (root / item.spec_path).write_text(item.spec_text)
    (root / item.policy_path).write_text(item.policy_text)
    (spec_key,) = load_inventory(root).keys
    spec = spec_key.spec
    assert spec.adopt == "1234abcd-0000" and spec.inherit_defaults is False
    assert spec.tags == {"Team": "payments", "Flag": "yes"}  # aws: tags belong to AWS
    assert spec.rotation is not None and spec.rotation.period_days == 180
    assert spec.aliases == ["alias/payments"]


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KMS_RECONCILER_SANDBOX_DIR", str(tmp_path / ".kms-sandbox"))
    root = tmp_path / "keyspecs"
    root.mkdir()
    (root / "inventory.yaml").write_text(
        f"targets:\n  - {{name: production, account_id: '{ACCOUNT}', region: us-east-1}}\n"
        "defaults:\n  tags: {ManagedBy: kms-reconciler}\n"
        "  rotation: {enabled: true, period_days: 365}\n"
    )
    (root / "keys.yaml").write_text("keys: []\n")
    yield root


def kms_client() -> Any:
    client = boto3.client("kms", region_name="us-east-1")

    def header(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = ACCOUNT

    client.meta.events.register("before-sign.*.*", header)
    return client


def snapshot() -> dict[str, tuple[str, dict[str, str]]]:
    with sandbox_session():
        kms = kms_client()
        out = {}
        for k in kms.list_keys()["Keys"]:
            meta = kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]
            tags = kms.list_resource_tags(KeyId=k["KeyId"])["Tags"]
            found = {t["TagKey"]: t["TagValue"] for t in tags}
            if "kms-reconciler:lock-anchor" not in found:  # the apply lock's own key
                out[k["KeyId"]] = (meta["KeyState"], found)
        return out


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, [*args, "--sandbox", "--no-color"])


def test_import_round_trip_adopts_every_key_without_changing_it(sandbox: Path) -> None:
    with sandbox_session():
        kms = kms_client()
        made_by_cli = kms.create_key(
            Description="made with the AWS CLI",
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
            Tags=[{"TagKey": "Team", "TagValue": "payments"}],
        )["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/payments-db", TargetKeyId=made_by_cli)
        kms.enable_key_rotation(KeyId=made_by_cli)
        terraform = kms.create_key(
            Description="terraform signing key",
            KeySpec="ECC_NIST_P256",
            KeyUsage="SIGN_VERIFY",
            Tags=[{"TagKey": "ManagedBy", "TagValue": "terraform"}],
        )["KeyMetadata"]["KeyId"]
        cloudformation = kms.create_key(
            Description="cfn key",
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
            Tags=[{"TagKey": "aws:cloudformation:stack-name", "TagValue": "app"}],
        )["KeyMetadata"]["KeyId"]
        kms.disable_key(KeyId=cloudformation)
        hmac = kms.create_key(Description="", KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")[
            "KeyMetadata"
        ]["KeyId"]
        kms.put_key_policy(
            KeyId=hmac,
            PolicyName="default",
            Policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
            f'{{"AWS":"{ACCOUNT}"}},"Action":"kms:*","Resource":"*"}}]}}',
        )
    before = snapshot()

    result = cli("import", "--all-unmanaged")
    assert result.exit_code == 0, result.output
    assert "Imported 4 key(s)" in result.output
    assert (sandbox / "imported/payments-db.yaml").is_file()
    assert (sandbox / "policies/imported/payments-db.json").is_file()

    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "Plan: 0 to create, 4 to update, 0 to delete." in result.output
    operations = re.findall(r"^\s+\d+\. (\w+)", result.output, re.MULTILINE)
    assert operations == ["TagResource"] * 4
    assert "kms-reconciler:name" in result.output

    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 0 and "No changes." in result.output, result.output

    after = snapshot()
    assert set(after) == set(before)  # no key was created
    for key_id, (state, tags) in after.items():
        assert state == before[key_id][0]  # no key changed state
        assert tags == {**before[key_id][1], IDENTITY: tags[IDENTITY]}
    assert after[cloudformation][0] == "Disabled"
    assert {terraform, hmac, made_by_cli} <= set(after)


def test_import_of_one_key_by_alias_and_refusals(sandbox: Path) -> None:
    with sandbox_session():
        kms = kms_client()
        key_id = kms.create_key(Description="one")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/one", TargetKeyId=key_id)
        pending = kms.create_key(Description="going")["KeyMetadata"]["KeyId"]
        kms.schedule_key_deletion(KeyId=pending, PendingWindowInDays=7)
    result = cli("import", "--key-id", "alias/one")
    assert result.exit_code == 0, result.output
    assert f"imported {key_id} (production) as 'one'" in result.output
    result = cli("import", "--key-id", "alias/one")
    assert result.exit_code == 1 and "the spec 'one' already adopts it" in result.output
    result = cli("import", "--key-id", pending)
    assert result.exit_code == 1 and "PendingDeletion" in result.output
    result = cli("import", "--key-id", "nope-0000")
    assert result.exit_code == 1 and "no customer key nope-0000" in result.output
    result = cli("import")
    assert result.exit_code == 1 and "--all-unmanaged" in result.output
    assert ROOT_POLICY  # the factories' default policy is untouched by imports


def test_imported_grants_get_valid_unique_names_and_odd_ones_are_said_not_written() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/R"
    grants = (
        Grant.of(role, ["Decrypt"], name="dup", grant_id="aaaa1111"),
        Grant.of(role, ["Encrypt"], name="dup", grant_id="bbbb2222"),  # a name KMS repeats
        Grant.of(role, ["Sign"], name="not valid!", grant_id="cccc3333"),
        Grant.of(role, ["Decrypt"], name="zz-again", grant_id="dddd4444"),  # same as "dup"
        Grant.of(role, ["Verify"], grant_id="eeee5555", equals={"a": "1"}, subset={"b": "2"}),
        Grant.of(role, ["Decrypt"], "logs.us-east-1.amazonaws.com", grant_id="ffff6666"),
    )
    key = observed_key(None, "1234abcd-0000-0000-0000-000000000000", grants=grants)
    imported = import_key(key, "app", TARGET, "2026-11-29")
    spec = imported.spec_text
    lines = [line for line in spec.splitlines() if line.startswith("# ")]
    assert (
        "# Grant eeee5555 is not written: it has both encryption context constraints, "
        "a spec declares one (drift will report it)." in lines
    )
    assert any(line.startswith("# 1 grant(s) made by AWS services") for line in lines)
    (entry,) = yaml.safe_load(spec)["keys"]
    assert [(g["name"], g["operations"]) for g in entry["grants"]] == [
        ("dup", ["Decrypt"]),
        ("dup-2", ["Encrypt"]),
        ("imported-cccc3333", ["Sign"]),
    ]
