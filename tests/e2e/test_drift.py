"""``kms-reconciler drift`` end to end: every kind of out-of-band change, formats, read-only.

The matrix shares one converged setup: one managed key per case (the key is named after
the case), applied once; then each case changes its own key with boto3 (or adds its own
unmanaged key), and one ``drift`` subprocess reports on all of them. A case's findings
are the ones on its key or its unmanaged key, and no finding may be left over, so each
change is reported exactly once and nowhere else.

Why shared: a converge plus a drift subprocess per case costs ~2 s, ~35 s of worker time
for the matrix. The setup is captured into a value at module scope (xdist may build it
once on each worker), because every other test resets the moto_server.

Exit codes are checked on states of their own after the matrix: converged, with a
cosmetic policy rewrite and ignored keys (0); ``--fail-on high`` with low findings only
(0), then with a high one (2). In the matrix every finding is at least ``low``, the
default ``--fail-on``, and the run exits 2.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sarif_schema import sarif_errors

from .conftest import (
    CliResult,
    Converge,
    Inventory,
    MotoServer,
    Request,
    RunCli,
    cli_env,
    make_run_cli,
    make_run_cli_in_process,
    patch_moto,
)
from .helpers import (
    ACCOUNT,
    ALPHA,
    BETA,
    REGION,
    cosmetic_policy_rewrite,
    managed_keys,
    policy_of,
)

pytestmark = pytest.mark.e2e

INTRUDER = f"arn:aws:iam::{ACCOUNT}:role/Intruder"
INVENTORY_FILE = "keyspecs/inventory.yaml"
KEYS_FILE = "keyspecs/keys.yaml"


# -- the out-of-band changes: (kms client, the case's key ID) -> unmanaged key made, if any


def _policy_statement_added(kms: Any, key_id: str) -> None:
    policy = policy_of(kms, key_id)
    policy["Statement"].append(
        {
            "Sid": "Out of band",
            "Effect": "Allow",
            "Principal": {"AWS": INTRUDER},
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    )
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))


def _rotation_period(kms: Any, key_id: str) -> None:
    # Stock moto drops RotationPeriodInDays (moto-kms-notes section 9); the conftest's
    # patch stores and returns it as real KMS does.
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)


def _tag(key: str, value: str) -> Callable[[Any, str], None]:
    def change(kms: Any, key_id: str) -> None:
        kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": key, "TagValue": value}])

    return change


def unmanaged_key(kms: Any, description: str, alias: str | None = None, **create: Any) -> str:
    key_id: str = kms.create_key(
        Description=description, KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT", **create
    )["KeyMetadata"]["KeyId"]
    if alias is not None:
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def _alias_retargeted(kms: Any, key_id: str) -> str:
    stranger = unmanaged_key(kms, "holds a declared alias")
    kms.update_alias(AliasName="alias/alias-retargeted", TargetKeyId=stranger)
    return stranger


def _unmanaged(kms: Any, key_id: str) -> str:
    # A near miss of every ignore rule (see IGNORE): reported all the same.
    return unmanaged_key(
        kms,
        "made by hand",
        alias="alias/not-legacy-app",
        Tags=[{"TagKey": "Team", "TagValue": "platform-legacy"}],
    )


def _ignored_by_alias(kms: Any, key_id: str) -> str:
    return unmanaged_key(kms, "legacy billing", alias="alias/legacy-billing")


def _ignored_by_tag(kms: Any, key_id: str) -> str:
    return unmanaged_key(
        kms, "legacy payments", Tags=[{"TagKey": "Team", "TagValue": "legacy-payments"}]
    )


def _ignored_by_key_id(kms: Any, key_id: str) -> str:
    return unmanaged_key(kms, "ignored by its key ID")  # the rule names it once it exists


def ignore_rules(by_key_id: str) -> list[dict[str, Any]]:
    return [{"alias": "alias/legacy-*"}, {"key_id": by_key_id}, {"tag": {"Team": "legacy-*"}}]


@dataclass(frozen=True)
class Case:
    change: Callable[[Any, str], Any]  # returns the ID of an unmanaged key it made
    # (rule, severity, field); a finding on the case's managed key ("unmanaged-key": on the
    # unmanaged key the change made)
    expected: tuple[tuple[str, str, str | None], ...] = ()
    managed: bool = True  # whether the case has a managed key of its own
    ignored: bool = False  # the unmanaged key the change made is ignored


CASES: dict[str, Case] = {
    "unchanged": Case(lambda kms, key_id: None),
    "policy-statement-added": Case(
        _policy_statement_added, (("policy-widened", "high", "policy"),)
    ),
    "cosmetic-policy-rewrite": Case(cosmetic_policy_rewrite),
    "rotation-disabled": Case(
        lambda kms, key_id: kms.disable_key_rotation(KeyId=key_id),
        (("rotation-disabled", "medium", "rotation"),),
    ),
    "rotation-period-changed": Case(_rotation_period, (("rotation-changed", "low", "rotation"),)),
    "tag-added": Case(_tag("Extra", "x"), (("tag-changed", "low", "tags.Extra"),)),
    "tag-changed": Case(_tag("Owner", "someone-else"), (("tag-changed", "low", "tags.Owner"),)),
    "tag-removed": Case(
        lambda kms, key_id: kms.untag_resource(KeyId=key_id, TagKeys=["Owner"]),
        (("tag-changed", "low", "tags.Owner"),),
    ),
    "description-changed": Case(
        lambda kms, key_id: kms.update_key_description(KeyId=key_id, Description="edited"),
        (("description-changed", "low", "description"),),
    ),
    "key-disabled": Case(
        lambda kms, key_id: kms.disable_key(KeyId=key_id),
        (("key-disabled", "high", "enabled"),),
    ),
    # Bare key ID: moto crashes on an ARN here (moto-kms-notes section 3).
    "key-pending-deletion": Case(
        lambda kms, key_id: kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7),
        (("key-pending-deletion", "high", None),),
    ),
    # The key that now holds the alias is unmanaged: reported once as such, too.
    "alias-retargeted": Case(
        _alias_retargeted,
        (("alias-retargeted", "high", "aliases"), ("unmanaged-key", "low", None)),
    ),
    "alias-deleted": Case(
        lambda kms, key_id: kms.delete_alias(AliasName="alias/alias-deleted"),
        (("alias-missing", "medium", "aliases"),),
    ),
    "unmanaged-key": Case(_unmanaged, (("unmanaged-key", "low", None),), managed=False),
    "ignored-by-alias": Case(_ignored_by_alias, managed=False, ignored=True),
    "ignored-by-key-id": Case(_ignored_by_key_id, managed=False, ignored=True),
    "ignored-by-tag": Case(_ignored_by_tag, managed=False, ignored=True),
}


def _spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "description": f"{name} key",
        "aliases": [f"alias/{name}"],
        "tags": {"Owner": "team-a"},
    }
    if name in ("policy-statement-added", "cosmetic-policy-rewrite"):
        spec["policy"] = ALPHA["policy"]  # a template with two statements
    return spec


# -- the shared setup ---------------------------------------------------------------------


@dataclass
class Matrix:
    root: Path  # holds keyspecs/
    key_ids: dict[str, str]  # case -> its managed key
    strangers: dict[str, str]  # case -> the unmanaged key its change made
    result: CliResult  # drift --report json=... --report sarif=... --report markdown=...
    report: dict[str, Any]  # its JSON report
    requests: list[Request]  # what the moto_server answered during that run

    @property
    def findings(self) -> list[dict[str, Any]]:
        return list(self.report["targets"][0]["findings"])

    def findings_of(self, case: str) -> list[dict[str, Any]]:
        ids = {self.key_ids.get(case), self.strangers.get(case)} - {None}
        return [f for f in self.findings if f["key"] == case or f["key_id"] in ids]

    def declared_line(self, name: str) -> int:
        lines = (self.root / KEYS_FILE).read_text(encoding="utf-8").splitlines()
        return 1 + lines.index(f"- name: {name}")


@pytest.fixture(scope="module")
def matrix(
    moto_server: MotoServer, _kms_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("drift-matrix")
    (root / "home").mkdir()
    env = cli_env(root / "home", moto_server.url)
    inventory = Inventory(root)
    specs = [_spec(name) for name, case in CASES.items() if case.managed]
    # A module fixture is set up before the function-scoped ``_moto_patches``: patch here.
    with pytest.MonkeyPatch.context() as mp:
        patch_moto(mp)
        moto_server.reset()
        inventory.write(specs)
        applied = make_run_cli_in_process(root, env)("apply", "--auto-approve", "-q")
        assert applied.returncode == 0, applied

        kms = _kms_client
        key_ids = managed_keys(kms)
        assert set(key_ids) == {s["name"] for s in specs}
        strangers = {}
        for name, case in CASES.items():
            made = case.change(kms, key_ids.get(name, ""))
            if isinstance(made, str):  # the lambdas return boto3's response
                strangers[name] = made
        inventory.write(specs, settings={"ignore": ignore_rules(strangers["ignored-by-key-id"])})

        moto_server.recorder.clear()
        reports = {fmt: root / f"drift.{fmt}" for fmt in ("json", "sarif", "markdown")}
        result = make_run_cli(root, env)(
            "drift", *(a for fmt, path in reports.items() for a in ("--report", f"{fmt}={path}"))
        )
        requests = moto_server.requests
        moto_server.reset()
    report = json.loads(reports["json"].read_text(encoding="utf-8"))
    yield Matrix(root, key_ids, strangers, result, report, requests)


@pytest.mark.parametrize("name", CASES.keys())
def test_each_out_of_band_change_is_reported_once(name: str, matrix: Matrix) -> None:
    case = CASES[name]
    found = sorted((f["rule"], f["severity"], f["field"]) for f in matrix.findings_of(name))
    assert found == sorted(case.expected), json.dumps(matrix.findings_of(name), indent=2)
    for f in matrix.findings_of(name):
        if f["rule"] == "unmanaged-key":
            assert (f["key"], f["key_id"]) == (None, matrix.strangers[name]), f
        else:
            assert (f["key"], f["key_id"]) == (name, matrix.key_ids[name]), f


def test_no_finding_is_left_over(matrix: Matrix) -> None:
    attributed = [f for name in CASES for f in matrix.findings_of(name)]
    assert len(attributed) == len(matrix.findings) == 13, json.dumps(matrix.findings, indent=2)
    target = matrix.report["targets"][0]
    assert (target["managed"], target["unmanaged"], target["ignored"]) == (
        sum(c.managed for c in CASES.values()),
        2,
        3,
    )
    assert matrix.report["summary"] == {
        "findings": 13,
        "high": 4,
        "medium": 2,
        "low": 7,
        "read_calls": matrix.report["summary"]["read_calls"],
        "drifted_targets": 1,
    }
    assert matrix.result.returncode == 2, matrix.result


def test_ignored_keys_are_counted_not_reported(matrix: Matrix) -> None:
    ignored = {matrix.strangers[n] for n, c in CASES.items() if c.ignored}
    assert len(ignored) == 3
    assert not [f for f in matrix.findings if f["key_id"] in ignored]
    assert not [i for i in ignored if i in matrix.result.stdout]
    assert "3 ignored key(s)" in matrix.result.stdout


def test_policy_widened_names_who_gained_what(matrix: Matrix) -> None:
    (finding,) = matrix.findings_of("policy-statement-added")
    assert finding["details"] == [
        'statement "Out of band": only in KMS',
        f"AWS:{INTRUDER} gained kms:Decrypt",
        f"  newly allowed: {INTRUDER} may call kms:Decrypt (any request)",
    ], finding


def test_pending_deletion_names_the_key_and_date(matrix: Matrix) -> None:
    (finding,) = matrix.findings_of("key-pending-deletion")
    key_id = matrix.key_ids["key-pending-deletion"]
    assert re.fullmatch(
        rf"key 'key-pending-deletion' \({key_id}\) is scheduled for deletion on "
        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC",
        finding["message"],
    ), finding


def test_findings_are_ranked_and_located(matrix: Matrix) -> None:
    severities = [f["severity"] for f in matrix.findings]
    rank = {"high": 0, "medium": 1, "low": 2}
    assert severities == sorted(severities, key=rank.__getitem__)
    for f in matrix.findings:
        if f["rule"] == "unmanaged-key":
            assert (f["file"], f["line"]) == (INVENTORY_FILE, None), f
        else:
            assert (f["file"], f["line"]) == (KEYS_FILE, matrix.declared_line(f["key"])), f


def test_drift_makes_read_calls_only(matrix: Matrix) -> None:
    result = matrix.result
    kms_ops = [op for r in matrix.requests if (op := r.kms_operation)]
    others = [r for r in matrix.requests if not r.kms_operation]
    writes = sorted({op for op in kms_ops if not op.startswith(("List", "Describe", "Get"))})
    assert writes == [], result
    assert {"ListKeys", "ListAliases", "ListResourceTags", "DescribeKey"} <= set(kms_ops)
    assert len(others) == 1, others  # STS, once for the one target
    assert b"Action=GetCallerIdentity" in others[0].body, others
    summary = result.stdout.rstrip("\n").splitlines()[-1]
    match = re.fullmatch(
        r"Drift: 13 finding\(s\) in 1 of 1 target\(s\) .*; (\d+) read calls, no writes\.", summary
    )
    assert match, result
    assert int(match.group(1)) == len(kms_ops), (summary, kms_ops)


def test_report_files_are_written_in_the_same_run(matrix: Matrix) -> None:
    for fmt in ("json", "sarif", "markdown"):
        assert f"Wrote the {fmt} report to" in matrix.result.stderr, matrix.result
    sarif = json.loads((matrix.root / "drift.sarif").read_text(encoding="utf-8"))
    validate_sarif(sarif)
    assert len(sarif["runs"][0]["results"]) == len(matrix.findings)
    # managed keys at the line that declares them, unmanaged keys at inventory.yaml
    expected = sorted(
        (
            f["rule"],
            {"high": "error", "medium": "warning", "low": "note"}[f["severity"]],
            f["key"] or f["key_id"],
            KEYS_FILE if f["key"] else INVENTORY_FILE,
            matrix.declared_line(f["key"]) if f["key"] else 1,
        )
        for f in matrix.findings
    )
    assert _locations(sarif) == expected
    markdown = (matrix.root / "drift.markdown").read_text(encoding="utf-8")
    assert markdown.startswith("## KMS drift report\n"), markdown[:300]
    assert "13 finding(s)" in markdown


# -- outside the matrix: each test converges its own account ------------------------------


def validate_sarif(document: dict[str, Any]) -> None:
    errors = sarif_errors(document)
    assert not errors, "\n".join(errors)


def test_converged_state_is_no_drift_despite_cosmetic_rewrite_and_ignored_keys(
    converge: Converge, inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    """Exit 0 for the converged state, which a policy rewritten in form only and unmanaged
    keys that ``ignore:`` rules cover leave converged (the matrix shows each alone)."""
    ids = converge()
    cosmetic_policy_rewrite(kms, ids["alpha"])
    by_key_id = _ignored_by_key_id(kms, "")
    _ignored_by_alias(kms, "")
    _ignored_by_tag(kms, "")
    inventory.write([ALPHA, BETA], settings={"ignore": ignore_rules(by_key_id)})

    drift = run_cli("drift")
    assert drift.returncode == 0, drift
    assert drift.stdout == (
        f"No drift in target test ({ACCOUNT}, {REGION}): 2 managed, 0 unmanaged, "
        "3 ignored key(s).\n"
        f"No drift: 1 target(s) match the inventory ({_read_calls(drift.stdout)} read calls, "
        "no writes).\n"
    ), drift


def _read_calls(text: str) -> int:
    match = re.search(r"(\d+) read calls, no writes", text)
    assert match, text
    return int(match.group(1))


def _locations(sarif: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(rule, level, key name or key ID, file, line) per result, sorted."""
    return sorted(
        (
            r["ruleId"],
            r["level"],
            r["properties"]["key"] or r["properties"]["key_id"],
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for r in sarif["runs"][0]["results"]
    )


def test_fail_on_high_with_sarif_and_markdown(
    converge: Converge, inventory: Inventory, run_cli: RunCli, kms: Any
) -> None:
    ids = converge()
    kms.update_key_description(KeyId=ids["alpha"], Description="edited")  # low
    kms.tag_resource(KeyId=ids["beta"], Tags=[{"TagKey": "Extra", "TagValue": "x"}])  # low
    stranger = unmanaged_key(kms, "hand-made")  # low
    lines = (inventory.path / "keys.yaml").read_text(encoding="utf-8").splitlines()
    declared = {n: 1 + lines.index(f"- name: {n}") for n in ("alpha", "beta")}

    only_low = run_cli("drift", "--fail-on", "high", "--format", "sarif")
    assert only_low.returncode == 0, only_low
    sarif = json.loads(only_low.stdout)
    validate_sarif(sarif)
    assert _locations(sarif) == [
        ("description-changed", "note", "alpha", KEYS_FILE, declared["alpha"]),
        ("tag-changed", "note", "beta", KEYS_FILE, declared["beta"]),
        ("unmanaged-key", "note", stranger, INVENTORY_FILE, 1),
    ], only_low

    kms.disable_key(KeyId=ids["beta"])  # high
    with_high = run_cli("drift", "--fail-on", "high", "--format", "markdown")
    assert with_high.returncode == 2, with_high
    assert with_high.stdout.startswith("## KMS drift report\n"), with_high
    assert "| high | `key-disabled` | beta | key 'beta' is disabled |" in with_high.stdout
    assert stranger in with_high.stdout


def test_report_into_a_missing_directory_is_a_clean_outcome(
    inventory: Inventory, run_cli: RunCli
) -> None:
    inventory.write([])  # nothing to converge: the report is about writing the file
    result = run_cli("drift", "--report", "sarif=reports/drift.sarif")
    assert "Traceback" not in result.stderr, result
    written = (inventory.root / "reports" / "drift.sarif").is_file()
    # Either the directory is made and the report written, or one error line names it.
    named = [line for line in result.stderr.splitlines() if "reports/drift.sarif" in line]
    assert (result.returncode, written) == (0, True) or (
        result.returncode == 1 and len(named) == 1 and named[0].startswith("error: ")
    ), result
