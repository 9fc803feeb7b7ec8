"""Drift findings from (desired, observed), their severities, and the report formats."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from reconciler.drift import RULES, DriftReport, detect
from reconciler.findings import Severity
from reconciler.formatters import drift as fmt
from reconciler.spec import IgnoreRule
from reconciler.state import KeyUsage, Retirement
from tests.factories import (
    ACCOUNT,
    IDENTITY,
    PROTECTION,
    USE_STATEMENT,
    desired,
    desired_key,
    observed,
    observed_key,
    policy_with,
)
from tests.sarif_schema import sarif_errors
from tests.test_formatters import check_golden

PUBLIC = {
    "Sid": "Sneaky",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
    "Action": "kms:Decrypt",
    "Resource": "*",
}
DENY = {
    "Sid": "DenyOutsideOrg",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "kms:Decrypt",
    "Resource": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*",
    "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": "o-123"}},
}

DELETED_ROLE = "AROAEXAMPLEID1234567890"
APP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/App"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/Other"

# one case per kind of out-of-band change: (desired fields, observed fields) -> rule, severity
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str, Severity]] = {
    "policy-statement-added": (
        {},
        {"policy": policy_with(PUBLIC)},
        "policy-widened",
        Severity.HIGH,
    ),
    "deny-removed": (
        {"policy": policy_with(DENY)},
        {},
        "policy-widened",
        Severity.HIGH,
    ),
    "policy-statement-removed": (
        {"policy": policy_with(USE_STATEMENT)},
        {},
        "policy-narrowed",
        Severity.MEDIUM,
    ),
    "policy-sid-renamed": (
        {"policy": policy_with(USE_STATEMENT)},
        {"policy": policy_with(dict(USE_STATEMENT, Sid="Renamed"))},
        "policy-changed",
        Severity.LOW,
    ),
    # issue 9, defect 13: KMS shows a deleted role by its unique ID; that entry matches
    # nobody, so nobody gained anything: the role's access is gone (medium), not a widening
    "role-deleted": (
        {"policy": policy_with(USE_STATEMENT)},
        {"policy": policy_with(dict(USE_STATEMENT, Principal={"AWS": DELETED_ROLE}))},
        "principal-deleted",
        Severity.MEDIUM,
    ),
    "one-of-two-roles-deleted": (
        {"policy": policy_with(dict(USE_STATEMENT, Principal={"AWS": [APP_ROLE, OTHER_ROLE]}))},
        {"policy": policy_with(dict(USE_STATEMENT, Principal={"AWS": [OTHER_ROLE, DELETED_ROLE]}))},
        "principal-deleted",
        Severity.MEDIUM,
    ),
    # a deleted principal beside a real out-of-band grant: the grant still ranks high
    "role-deleted-and-outsider-added": (
        {"policy": policy_with(USE_STATEMENT)},
        {"policy": policy_with(dict(USE_STATEMENT, Principal={"AWS": DELETED_ROLE}), PUBLIC)},
        "policy-widened",
        Severity.HIGH,
    ),
    "rotation-disabled": (
        {},
        {"rotation_enabled": False, "rotation_period_days": None},
        "rotation-disabled",
        Severity.MEDIUM,
    ),
    "rotation-period": ({}, {"rotation_period_days": 90}, "rotation-changed", Severity.LOW),
    "tag-added": ({}, {"tags": {"Owner": "team", "Extra": "x"}}, "tag-changed", Severity.LOW),
    "tag-changed": ({}, {"tags": {"Owner": "other"}}, "tag-changed", Severity.LOW),
    "tag-removed": ({}, {"tags": {}}, "tag-changed", Severity.LOW),
    "description": ({}, {"description": "hand edited"}, "description-changed", Severity.LOW),
    "key-disabled": ({}, {"key_state": "Disabled"}, "key-disabled", Severity.HIGH),
    "key-enabled": ({"enabled": False}, {}, "key-enabled", Severity.MEDIUM),
    "protection-removed": (
        {"deletion_protection": True},
        {},
        "deletion-protection-changed",
        Severity.MEDIUM,
    ),
    "alias-deleted": ({}, {"aliases": frozenset()}, "alias-missing", Severity.MEDIUM),
    "alias-added": (
        {},
        {"aliases": frozenset({"alias/app", "alias/extra"})},
        "alias-added",
        Severity.MEDIUM,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_out_of_band_change_is_reported_once_with_its_severity(
    case: tuple[dict[str, Any], dict[str, Any], str, Severity],
) -> None:
    want, have, rule, severity = case
    key_state = have.pop("key_state", "Enabled")
    report = detect(
        desired(desired_key("app", **want)),
        observed(observed_key("app", "a-1", key_state=key_state, **have)),
    )
    assert [(f.rule, f.severity) for f in report.findings] == [(rule, severity)]
    (finding,) = report.findings
    assert finding.key == "app" and finding.file == "keyspecs/app.yaml" and finding.line == 1
    assert RULES[finding.rule].severity is finding.severity


def test_policy_widening_names_who_gained_what() -> None:
    report = detect(
        desired(desired_key("app")), observed(observed_key("app", policy=policy_with(PUBLIC)))
    )
    (finding,) = report.findings
    assert "AWS:arn:aws:iam::999999999999:root gained kms:Decrypt" in finding.details
    assert 'statement "Sneaky": only in KMS' in finding.details


def test_deleted_principal_finding_names_the_statement_and_the_unique_id() -> None:
    report = detect(
        desired(desired_key("app", policy=policy_with(USE_STATEMENT))),
        observed(
            observed_key(
                "app",
                policy=policy_with(dict(USE_STATEMENT, Principal={"AWS": DELETED_ROLE})),
            )
        ),
    )
    (finding,) = report.findings
    assert finding.rule == "principal-deleted"
    assert f'statement "{USE_STATEMENT["Sid"]}" names {DELETED_ROLE}' in finding.message
    assert not any("gained" in line for line in finding.details)


def test_cosmetic_policy_rewrite_is_not_drift() -> None:
    cosmetic = {
        "Id": "key-default-1",
        "Version": "2012-10-17",
        "Statement": {
            "Resource": "*",
            "Action": ["kms:*"],
            "Principal": {"AWS": ACCOUNT},
            "Effect": "Allow",
            "Sid": "Enable IAM User Permissions",
        },
    }
    report = detect(desired(desired_key("app")), observed(observed_key("app", policy=cosmetic)))
    assert report.findings == ()


def test_pending_deletion_is_high_and_hides_the_state_it_implies() -> None:
    ok = observed_key(
        "app",
        "a-1",
        key_state="PendingDeletion",
        rotation_enabled=None,
        deletion_date=datetime(2030, 1, 2, 3, 4, tzinfo=timezone.utc),
    )
    (finding,) = detect(desired(desired_key("app")), observed(ok)).findings
    assert finding.rule == "key-pending-deletion" and finding.severity is Severity.HIGH
    assert "2030-01-02 03:04 UTC" in finding.message


def test_key_of_a_disconnected_custom_key_store_is_high_and_nothing_else() -> None:
    # KMS shows a key whose custom key store is disconnected as Unavailable; the plan
    # leaves its enabled state alone (EnableKey would fail), drift says why it fails.
    store = "cks-1234567890abcdef0"
    want = desired_key(
        "app",
        origin="AWS_CLOUDHSM",
        custom_key_store_id=store,
        rotation_enabled=None,
        rotation_period_days=None,
    )
    ok = observed_key(
        "app",
        "a-1",
        key_state="Unavailable",
        origin="AWS_CLOUDHSM",
        custom_key_store_id=store,
        rotation_enabled=None,
        rotation_period_days=None,
    )
    (finding,) = detect(desired(want), observed(ok)).findings
    assert finding.rule == "key-unavailable" and finding.severity is Severity.HIGH
    assert finding.message == (
        f"key 'app' (a-1 in custom key store {store}) is Unavailable: every use fails until "
        "its key store is connected"
    )


def test_missing_key_orphan_and_unmanaged_keys() -> None:
    stranger = observed_key(None, "stranger-1", aliases=frozenset({"alias/handmade"}))
    report = detect(
        desired(desired_key("gone")),
        observed(observed_key("orphan", "o-1"), stranger),
        inventory_file="keyspecs/inventory.yaml",
    )
    rules = sorted((f.rule, f.key_id) for f in report.findings)
    assert rules == [
        ("key-missing", None),
        ("orphaned-key", "o-1"),
        ("unmanaged-key", "stranger-1"),
    ]
    unmanaged = next(f for f in report.findings if f.rule == "unmanaged-key")
    assert unmanaged.file == "keyspecs/inventory.yaml" and "alias/handmade" in unmanaged.message
    assert report.managed == 0 and report.unmanaged == 1


@pytest.mark.parametrize(
    "rule",
    [
        IgnoreRule(key_id="stranger-1"),
        IgnoreRule(key_id=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/stranger-1"),
        IgnoreRule(alias="alias/legacy-*"),
        IgnoreRule(tag={"Team": "leg*"}),
    ],
    ids=["key-id", "key-arn", "alias-glob", "tag-glob"],
)
def test_ignore_rules_hide_unmanaged_keys(rule: IgnoreRule) -> None:
    stranger = observed_key(
        None, "stranger-1", aliases=frozenset({"alias/legacy-db"}), tags={"Team": "legacy"}
    )
    report = detect(desired(), observed(stranger), ignore=[rule])
    assert report.findings == () and report.ignored == 1


def test_ignore_rules_never_hide_managed_keys() -> None:
    report = detect(
        desired(desired_key("app", description="x", tags={"Team": "legacy"})),
        observed(observed_key("app", tags={"Team": "legacy", IDENTITY: "app"})),
        ignore=[IgnoreRule(tag={"Team": "*"})],
    )
    assert [f.rule for f in report.findings] == ["description-changed"]


def test_alias_retargeted_to_an_unmanaged_key_is_high() -> None:
    stranger = observed_key(None, "stranger-1", aliases=frozenset({"alias/app"}))
    app = observed_key("app", "a-1", aliases=frozenset())
    report = detect(desired(desired_key("app")), observed(app, stranger))
    rules = {f.rule: f.severity for f in report.findings}
    assert rules["alias-retargeted"] is Severity.HIGH


def test_identity_conflict_is_a_finding_not_an_error() -> None:
    report = detect(
        desired(desired_key("app")),
        observed(observed_key("app", "a-1"), observed_key("app", "a-2"), aliases={}),
    )
    conflict = [f for f in report.findings if f.rule == "immutable-changed"]
    assert conflict and "a-1" in conflict[0].message and "a-2" in conflict[0].message


def test_protection_tag_is_not_reported_as_a_tag() -> None:
    report = detect(
        desired(desired_key("app")),
        observed(observed_key("app", tags={"Owner": "team", PROTECTION: "true"})),
    )
    assert [f.rule for f in report.findings] == ["deletion-protection-changed"]


def sample_report() -> DriftReport:
    stranger = observed_key(None, "5tranger-0000", description="made by hand")
    # "old" was disabled for retirement on 2026-02-01, then enabled and used on 2026-02-10
    retired_at = datetime(2026, 2, 1, 12, tzinfo=timezone.utc)
    target = detect(
        desired(
            desired_key("app", line=4),
            desired_key("logs", line=20),
            desired_key("quiet", line=30),
            desired_key("old", line=40, retire=Retirement(disable_on=date(2026, 2, 1))),
        ),
        observed(
            observed_key("app", "a0000000-1", policy=policy_with(PUBLIC)),
            observed_key("logs", "b0000000-2", rotation_enabled=False, description="x"),
            observed_key("quiet", "c0000000-3"),
            observed_key(
                "old",
                "d0000000-4",
                tags={"Owner": "team", "kms-reconciler:retire-disabled-on": "2026-02-01T12:00:00Z"},
            ),
            stranger,
        ),
        now=retired_at + timedelta(days=20),
        usage=[
            KeyUsage(
                "d0000000-4",
                retired_at + timedelta(days=20),
                operation="Decrypt",
                last_used=retired_at + timedelta(days=9),
                tracking_start=retired_at - timedelta(days=300),
            )
        ],
        usage_reads=1,
    )
    return DriftReport((target,))


@pytest.mark.parametrize(
    ("name", "render"),
    [
        ("drift.txt", fmt.drift_text),
        ("drift.md", fmt.drift_markdown),
        ("drift.json", fmt.drift_json),
        ("drift.sarif", fmt.drift_sarif),
    ],
)
def test_drift_golden(name: str, render: Any, update_golden: bool) -> None:
    check_golden(name, render(sample_report()), update_golden)


def test_clean_report_says_no_drift() -> None:
    report = DriftReport((detect(desired(desired_key("app")), observed(observed_key("app"))),))
    assert fmt.drift_text(report).rstrip().endswith("read calls, no writes).")
    assert "No drift" in fmt.drift_markdown(report)
    assert json.loads(fmt.drift_json(report))["summary"]["findings"] == 0


def test_sarif_is_valid_against_the_sarif_2_1_0_schema() -> None:
    document = json.loads(fmt.drift_sarif(sample_report()))
    assert sarif_errors(document) == []
    assert sarif_errors({**document, "version": "2.0.0"})  # the schema does check
    results = document["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"policy-widened", "unmanaged-key"}
    located = {
        r["ruleId"]: r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in results
    }
    assert located["policy-widened"] == "keyspecs/app.yaml"
    assert located["unmanaged-key"] == "keyspecs/inventory.yaml"
    rules = document["runs"][0]["tool"]["driver"]["rules"]
    assert all("security-severity" in r["properties"] for r in rules)


def test_markdown_of_a_huge_drift_report_fits_a_github_issue() -> None:
    strangers = [
        observed_key(None, f"{i:08d}-0000", description="x" * 80, aliases=frozenset())
        for i in range(3000)
    ]
    drifted = observed_key("app", policy=policy_with(PUBLIC))
    report = DriftReport((detect(desired(desired_key("app")), observed(drifted, *strangers)),))
    text = fmt.drift_markdown(report)
    assert len(text) <= 60_000 and "left out to fit" in text
    assert "3001 finding(s)" in text and text.count("```") % 2 == 0
