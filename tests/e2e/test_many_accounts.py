"""Two accounts, two regions, one run: each target through its own assumed role(s).

moto maps the credentials STS AssumeRole returns to the role's account (see
../shared/moto-kms-notes.md, section 4), so the same moto_server serves both accounts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import MotoServer, RunCli
from .helpers import kms_client

pytestmark = pytest.mark.e2e

HUB = "arn:aws:iam::123456789012:role/ci-hub"
ONE = ("111111111111", "us-east-1")
TWO = ("222222222222", "eu-west-1")


def write(root: Path, extra_target: str = "") -> None:
    keys = root / "keyspecs"
    keys.mkdir(exist_ok=True)
    (keys / "inventory.yaml").write_text(
        "targets:\n"
        f"  - name: one\n    account_id: '{ONE[0]}'\n    region: {ONE[1]}\n"
        f"    role_arn: arn:aws:iam::{ONE[0]}:role/kms-reconciler\n"
        "    session_name: e2e-one\n"
        f"  - name: two\n    account_id: '{TWO[0]}'\n    region: {TWO[1]}\n"
        f"    role_arn: ['{HUB}', 'arn:aws:iam::{TWO[0]}:role/kms-reconciler']\n"
        "    external_id: shared-secret\n    session_duration_seconds: 3600\n"
        + extra_target
        + "defaults: {rotation: {enabled: true, period_days: 365}}\n"
    )
    (keys / "keys.yaml").write_text(
        "keys:\n"
        "  - name: shared\n    description: in every account\n    aliases: [alias/shared]\n"
        "  - name: only-two\n    targets: [two]\n    description: only in account two\n"
    )


def kms_in(server: MotoServer, account: str, region: str) -> Any:
    client = kms_client(server.url, region)
    client.meta.events.register(
        "before-sign.*.*",
        lambda request, **_: request.headers.__setitem__("x-moto-account-id", account),
    )
    return client


def names(client: Any) -> set[str]:
    out = set()
    for key in client.list_keys()["Keys"]:
        tags = client.list_resource_tags(KeyId=key["KeyId"])["Tags"]
        out |= {t["TagValue"] for t in tags if t["TagKey"] == "kms-reconciler:name"}
    return out


def test_two_accounts_two_regions_in_one_run(
    server: MotoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    write(tmp_path)
    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 2, planned
    assert "Target one: account 111111111111, us-east-1" in planned.stdout
    assert "Target two: account 222222222222, eu-west-1" in planned.stdout
    assert "Plan: 3 to create, 0 to update, 0 to delete." in planned.stdout

    assert run_cli("apply", "--auto-approve").returncode == 0
    assert names(kms_in(server, *ONE)) == {"shared"}
    assert names(kms_in(server, *TWO)) == {"shared", "only-two"}
    assert names(kms_in(server, "123456789012", "us-east-1")) == set()  # nothing in the hub
    again = run_cli("plan", "--detailed-exitcode")
    assert again.returncode == 0, again

    matrix = json.loads(run_cli("targets", "--format", "github-matrix").stdout)
    assert [(t["target"], t["account_id"], t["region"]) for t in matrix["include"]] == [
        ("one", *ONE),
        ("two", *TWO),
    ]
    one_only = run_cli("plan", "--target", "one", "--detailed-exitcode")
    assert one_only.returncode == 0 and "Target two" not in one_only.stdout


def test_a_failing_target_never_hides_the_others(
    server: MotoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    # a target whose role lives in another account than it declares: refused before KMS
    write(
        tmp_path,
        "  - name: wrong\n    account_id: '333333333333'\n    region: us-east-1\n"
        "    role_arn: arn:aws:iam::444444444444:role/kms-reconciler\n",
    )
    planned = run_cli("plan", "--detailed-exitcode")
    assert planned.returncode == 1, planned
    assert "Target one:" in planned.stdout and "Target two:" in planned.stdout
    assert "error: target 'wrong':" in planned.stderr
    assert "belong to account 444444444444" in planned.stderr

    applied = run_cli("apply", "--auto-approve")
    assert applied.returncode == 1, applied
    assert "targets: one ok, two ok, wrong NOT PLANNED" in applied.stderr
    assert names(kms_in(server, *TWO)) == {"shared", "only-two"}  # the others were applied

    drift = run_cli("drift")
    assert drift.returncode == 1 and "No drift in target one" in drift.stdout
