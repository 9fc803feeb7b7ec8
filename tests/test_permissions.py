"""``kms-reconciler permissions``: the least IAM policy of each command's role, kept in step
with the calls the code makes (read from the source, and recorded from real runs), and
the read-only role used by every command that only reads."""

from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result

from reconciler import applier, aws, lock, observe, permissions
from reconciler.aws import sandbox_session
from reconciler.cli import main
from reconciler.plan import OpKind

REPO = Path(__file__).resolve().parent.parent
LITERAL = re.compile(r"""(?:\.a?call|\.a?paginate|_simple)\(\s*["'](\w+)["']""")


def literals(*sources: Any) -> set[str]:
    return {m for source in sources for m in LITERAL.findall(inspect.getsource(source))}


@pytest.mark.parametrize(
    ("module", "declared", "also"),
    [
        (observe, observe.CALLS | observe.USAGE_CALLS | observe.TAGGING_CALLS, set()),
        # the applier resolves a lost CreateKey with observe's KeyFinder
        (applier, applier.CALLS | applier.ROTATE_CALLS, {k.value for k in OpKind}),
        (lock, lock.CALLS, set()),
    ],
    ids=["observe", "applier", "lock"],
)
def test_each_module_declares_exactly_the_calls_in_its_source(
    module: Any, declared: frozenset[str], also: set[str]
) -> None:
    called = literals(module)
    if module is not observe and "KeyFinder" in inspect.getsource(module):
        called |= literals(observe.KeyFinder)
    assert called <= declared, f"called but not declared: {called - declared}"
    assert declared <= called | also, f"declared but never called: {declared - called - also}"


@pytest.mark.parametrize("command", ["plan", "drift", "apply"])
def test_usage_reads_are_allowed_where_they_are_made(command: str) -> None:
    assert "GetKeyLastUsage" in permissions.operations(command)
    assert "one call per" in permissions.USAGE_NOTES[command]


def test_the_read_only_commands_get_no_write_permission() -> None:
    for command in permissions.READ_ONLY:
        for action in permissions.operations(command):
            assert re.match(r"(List|Get|Describe)", action), (command, action)
    assert "RotateKeyOnDemand" not in permissions.operations("apply")
    assert "RotateKeyOnDemand" in permissions.operations("rotate")


def test_apply_may_rotate_only_an_inventory_that_names_material_versions() -> None:
    def actions(document: dict[str, Any]) -> set[str]:
        found: set[str] = set()
        for statement in document["Statement"]:
            listed = statement["Action"]
            found.update([listed] if isinstance(listed, str) else listed)
        return found

    accounts = [("aws", "111122223333")]
    assert "kms:RotateKeyOnDemand" not in actions(permissions.policy("apply", accounts))
    with_versions = permissions.policy("apply", accounts, material_versions=True)
    assert "kms:RotateKeyOnDemand" in actions(with_versions)
    assert "kms:RotateKeyOnDemand" not in actions(
        permissions.policy("plan", accounts, material_versions=True)
    )


# -- through the command line ----------------------------------------------------------------


def cli_run(*args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--no-color"])


def test_permissions_prints_a_policy_for_the_targets_accounts(workdir: Path) -> None:
    result = cli_run("permissions", "--for", "plan")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["Version"] == "2012-10-17"
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["AccountWide"]["Resource"] == "*"
    assert by_sid["Keys"]["Resource"] == [
        "arn:aws:kms:*:111122223333:key/*",
        "arn:aws:kms:*:444455556666:key/*",
    ]
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert actions == {f"kms:{op}" for op in observe.CALLS | {"GetKeyLastUsage"}}
    assert "kms:GetKeyLastUsage" in by_sid["Keys"]["Action"]
    assert "note: kms:GetKeyLastUsage: one call per key the plan disables" in result.stderr
    staging = json.loads(cli_run("permissions", "--target", "staging").stdout)
    statements = {s["Sid"]: s for s in staging["Statement"]}
    assert "kms:CreateKey" in statements["AccountWide"]["Action"]
    assert statements["Aliases"]["Resource"] == [
        "arn:aws:kms:*:444455556666:alias/*",
        "arn:aws:kms:*:444455556666:key/*",
    ]


def sent_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every KMS request the tool sends from now on, by operation: each attempt is begun in
    ``aws._Attempts`` whether ``KmsApi.call`` or ``acall`` (observe's loop) sends it."""
    sent: list[str] = []
    real_begin = aws._Attempts.begin

    def begin(self: Any) -> None:
        sent.append(self.operation)
        real_begin(self)

    monkeypatch.setattr(aws._Attempts, "begin", begin)
    return sent


def test_every_call_a_command_makes_is_in_its_policy(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = sent_calls(monkeypatch)

    def calls_of(*args: str) -> set[str]:
        sent.clear()
        result = cli_run(*args, "--sandbox", "--target", "production")
        assert result.exit_code in (0, 2), result.output
        return set(sent)

    seen = {
        "plan": calls_of("plan", "--rotation-history"),
        "apply": calls_of("apply", "--auto-approve"),
    }
    with sandbox_session():  # a key nobody manages, for import
        kms = boto3.client("kms", region_name="us-east-1")
        kms.meta.events.register(
            "before-sign.*.*",
            lambda request, **_: request.headers.__setitem__("x-moto-account-id", "111122223333"),
        )
        kms.create_key(Description="hand-made")
    seen["drift"] = calls_of("drift")
    seen["rotate"] = calls_of("rotate", "app-data", "--now", "--auto-approve")
    seen["import"] = calls_of("import", "--all-unmanaged")
    seen["force-unlock"] = calls_of("force-unlock", "--auto-approve")
    for command, made in seen.items():
        assert made, command
        assert made <= permissions.operations(command), (
            command,
            made - permissions.operations(command),
        )
    assert "CreateKey" in seen["apply"] and "RotateKeyOnDemand" in seen["rotate"]


@pytest.mark.parametrize(
    ("args", "write"),
    [
        (["plan"], False),
        (["drift"], False),
        (["import", "--all-unmanaged"], False),
        (["apply", "--auto-approve"], True),
        (["apply", "--dry-run"], True),
        (["rotate", "app-data", "--now", "--auto-approve"], True),
        (["force-unlock", "--auto-approve"], True),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else str(v),
)
def test_readers_connect_with_the_read_only_role_and_writers_with_the_apply_role(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], write: bool
) -> None:
    seen: list[bool] = []
    real_connect = aws.connect

    def connect(target: Any, options: Any, *, write: bool = False) -> Any:
        seen.append(write)
        return real_connect(target, options, write=write)

    monkeypatch.setattr(aws, "connect", connect)
    cli_run(*args, "--sandbox", "--target", "staging")
    assert seen and set(seen) == {write}


def test_tagging_discovery_adds_get_resources_and_plans_converge_with_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = workdir / "keyspecs" / "inventory.yaml"
    plain = json.loads(cli_run("permissions", "--for", "plan").stdout)
    assert all(s["Sid"] != "TaggingDiscovery" for s in plain["Statement"])
    inventory.write_text(inventory.read_text() + "\ndiscovery: tagging-api\n")
    for command in ("plan", "drift", "apply", "import"):
        document = json.loads(cli_run("permissions", "--for", command).stdout)
        by_sid = {s["Sid"]: s for s in document["Statement"]}
        assert by_sid["TaggingDiscovery"] == {
            "Sid": "TaggingDiscovery",
            "Effect": "Allow",
            "Action": ["tag:GetResources"],
            "Resource": "*",
        }
    unlock = json.loads(cli_run("permissions", "--for", "force-unlock").stdout)
    assert all(s["Sid"] != "TaggingDiscovery" for s in unlock["Statement"])

    sent = sent_calls(monkeypatch)
    applied = cli_run("apply", "--auto-approve", "--sandbox", "--target", "production")
    assert applied.exit_code == 0, applied.output
    sent.clear()
    again = cli_run("plan", "--detailed-exitcode", "--sandbox", "--target", "production")
    assert again.exit_code == 0 and "No changes." in again.stdout, again.output
    made = Counter(sent)
    assert made["GetResources"] == 1
    assert set(made) - {"GetResources"} <= permissions.operations("plan")
    # the managed keys' tags came from the tagging API: ListResourceTags only for the
    # keys it does not name (the apply lock's anchor)
    assert made["ListResourceTags"] < made["DescribeKey"]
