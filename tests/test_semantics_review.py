"""Issue 9's defects 1, 2, 3, 4 and 8, through review: gains and losses come from the engine."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from reconciler.findings import Severity
from reconciler.formatters import review as fmt
from reconciler.review import ReviewReport, compare, live_findings, review
from reconciler.rules import batch_rules, rules
from tests.factories import ACCOUNT, desired
from tests.rules.harness import allow, context, key, policy, role

TODAY = date(2026, 1, 1)
APP = role("App")
APP_ARN = APP["AWS"]
LOGS = {"Service": "logs.amazonaws.com"}
S3_ARN = "kms:EncryptionContext:aws:s3:arn"


def _review(base: dict[str, Any], head: dict[str, Any]) -> ReviewReport:
    changes = compare([desired(key(base))], [desired(key(head))])
    return review(changes, {"production": context()}, rules(), batch_rules(), today=TODAY)


def _rules(report: ReviewReport) -> set[str]:
    return {f.rule.id for f in report.findings}


def _access(report: ReviewReport) -> list[tuple[str, list[str], list[str], str]]:
    return [
        (a.principal, sorted(a.gained), sorted(a.lost), a.witness)
        for c in report.changes
        for a in c.access
    ]


def test_defect_1_a_misspelt_action_grants_nothing() -> None:
    report = _review(
        policy(allow(APP, ["kms:Encrypt"])), policy(allow(APP, ["kms:Encrypt", "kms:Decrpyt"]))
    )
    assert _access(report) == []
    assert "KMS102" not in _rules(report)
    assert "KMS013" in _rules(report)  # the typo itself is still reported
    assert "No change in access." in fmt.review_text(report, Severity.CRITICAL)


def test_defect_2_a_condition_on_an_unknown_key_never_matches() -> None:
    guarded = {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    misspelt = {"StringEquals": {"aws:SourceAcount": ACCOUNT}}
    report = _review(
        policy(allow(LOGS, "kms:Decrypt", Condition=guarded)),
        policy(allow(LOGS, "kms:Decrypt", Condition=misspelt)),
    )
    assert _access(report) == [
        (
            "Service:logs.amazonaws.com",
            [],
            ["kms:Decrypt"],
            "newly denied: logs.amazonaws.com may no longer call kms:Decrypt "
            f"when aws:SourceAccount = {ACCOUNT}",
        )
    ]
    assert not _rules(report) & {"KMS101", "KMS102", "KMS104"}


def test_defect_3_a_narrower_like_is_a_narrowing() -> None:
    report = _review(
        policy(
            allow(APP, "kms:Decrypt", Condition={"StringLike": {S3_ARN: "arn:aws:s3:::data-*"}})
        ),
        policy(
            allow(
                APP, "kms:Decrypt", Condition={"StringLike": {S3_ARN: "arn:aws:s3:::data-prod/*"}}
            )
        ),
    )
    ((principal, gained, lost, witness),) = _access(report)
    assert (principal, gained, lost) == (f"AWS:{APP_ARN}", [], ["kms:Decrypt"])
    assert witness.startswith(f"newly denied: {APP_ARN} may no longer call kms:Decrypt when ")
    assert not _rules(report) & {"KMS102", "KMS104"}
    assert not report.blocking(Severity.HIGH)


def test_defect_8_access_regained_by_removing_a_deny_is_a_widening() -> None:
    deny = {
        "Sid": "D",
        "Effect": "Deny",
        "Principal": APP,
        "Action": "kms:Decrypt",
        "Resource": "*",
    }
    use = allow(APP, ["kms:Encrypt", "kms:Decrypt"], sid="Use")
    report = _review(policy(use, deny), policy(use))
    assert _access(report) == [
        (
            f"AWS:{APP_ARN}",
            ["kms:Decrypt"],
            [],
            f"newly allowed: {APP_ARN} may call kms:Decrypt (any request)",
        )
    ]
    assert {"KMS102", "KMS105"} <= _rules(report)


def test_defect_4_live_reports_an_out_of_band_statement_under_a_cosmetic_change() -> None:
    doc = policy(allow(APP, "kms:Encrypt", sid="Use"))
    base = key(doc, text=json.dumps(doc, indent=2))
    head = key(doc, text=json.dumps(doc, indent=4))  # reformatted only
    changes = compare([desired(base)], [desired(head)])
    (change,) = changes
    assert change.kind == "unchanged" and change.policy_text_changed
    sneaky = allow(role("Backdoor", "999988887777"), "kms:Decrypt", sid="Sneaky")
    live = {("production", "app"): policy(allow(APP, "kms:Encrypt", sid="Use"), sneaky)}
    (finding,) = live_findings(changes, live)
    assert finding.rule.id == "KMS201"
    assert any(
        "newly allowed: arn:aws:iam::999988887777:role/Backdoor may call kms:Decrypt" in d
        for d in finding.details
    )
    # A key whose policy text does not change is not written by the merge: not reported.
    same = compare([desired(base)], [desired(base)])
    assert live_findings(same, live) == []


def test_the_comment_json_and_text_show_the_witness() -> None:
    via = {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    partner = role("X", "444455556666")
    report = _review(policy(), policy(allow(partner, "kms:Decrypt", Condition=via)))
    witness = (
        "newly allowed: arn:aws:iam::444455556666:role/X may call kms:Decrypt "
        "when kms:ViaService = s3.us-east-1.amazonaws.com"
    )
    assert f"- {witness}" in fmt.review_markdown(report, Severity.HIGH)
    assert f"    {witness}" in fmt.review_text(report, Severity.HIGH)
    (change,) = json.loads(fmt.review_json(report, Severity.HIGH))["changes"]
    assert change["access"][0]["witness"] == witness
