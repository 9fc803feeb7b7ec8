"""review: compare two git refs of the inventory offline; access changes and findings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from reconciler.aws import sandbox_session
from reconciler.cli import main
from reconciler.findings import Severity
from reconciler.formatters import review as fmt
from reconciler.review import compare, review
from reconciler.rules import batch_rules, public_principal, rules
from reconciler.state import Waiver
from tests.factories import desired
from tests.rules.harness import OTHER_ACCOUNT, allow, context, key, policy, role
from tests.sarif_schema import sarif_errors
from tests.test_formatters import check_golden

REPO = Path(__file__).resolve().parent.parent
TODAY = date(2026, 11, 22)


def _review(base_keys: list[Any], head_keys: list[Any]) -> Any:
    changes = compare([desired(*base_keys)], [desired(*head_keys)])
    return review(changes, {"production": context()}, rules(), batch_rules(), today=TODAY)


# -- compare ------------------------------------------------------------------------------


def test_compare_pairs_keys_and_reports_access_not_text() -> None:
    partner = allow(role("Partner", OTHER_ACCOUNT), ["kms:Decrypt", "kms:Encrypt"], sid="P")
    changes = compare(
        [desired(key(policy(), "same"), key(policy(), "changed"), key(policy(), "gone"))],
        [
            desired(
                key(policy(), "same"),
                key(policy(partner), "changed", description="new words"),
                key(policy(), "new"),
            )
        ],
    )
    kinds = {c.name: c.kind for c in changes}
    assert kinds == {"same": "unchanged", "changed": "changed", "new": "added", "gone": "removed"}
    changed = next(c for c in changes if c.name == "changed")
    (access,) = changed.access
    assert access.principal == f"AWS:arn:aws:iam::{OTHER_ACCOUNT}:role/Partner"
    assert access.gained == {"kms:Decrypt", "kms:Encrypt"} and not access.lost
    assert [f.field for f in changed.fields] == ["description"]


def test_cosmetic_rewrite_changes_text_but_not_access() -> None:
    before = policy(allow(role("App"), ["kms:Encrypt", "kms:Decrypt"], sid="Use"))
    after = {
        "Statement": [
            allow(role("App"), ["kms:Decrypt", "kms:Encrypt", "kms:Decrypt"], sid="Use"),
            {**before["Statement"][0], "Principal": {"AWS": "111122223333"}},
        ],
        "Version": "2012-10-17",
    }
    report = _review([key(before)], [key(after)])
    (change,) = report.changes
    assert change.policy_text_changed and not change.policy_changed and not change.access
    assert [f.rule.id for f in report.findings] == ["KMS109"]
    assert fmt.verdict(report, Severity.HIGH) == "No change in access."


# -- waivers ------------------------------------------------------------------------------

PUBLIC = policy(allow("*", "kms:Decrypt", sid="Public"))


@pytest.mark.parametrize(
    ("expires", "waived", "blocking"),
    [(date(2027, 1, 1), True, 0), (date(2026, 1, 1), False, 1)],
    ids=["in-force", "expired"],
)
def test_waivers_mark_findings_and_expire(expires: date, waived: bool, blocking: int) -> None:
    waiver = Waiver("KMS001", "public bucket key, reviewed", "security-team", expires)
    report = _review([key(policy())], [key(PUBLIC, waivers=[waiver])])
    (finding,) = [f for f in report.findings if f.rule.id == "KMS001"]
    assert finding.waived is waived
    assert len(report.blocking(Severity.HIGH)) >= blocking
    public_blocks = [f for f in report.blocking(Severity.HIGH) if f.rule.id == "KMS001"]
    assert bool(public_blocks) is bool(blocking)
    if not waived:
        assert any("expired on 2026-01-01" in d for d in finding.details)
        assert finding.expired_waiver == waiver
    markdown = fmt.review_markdown(report)
    assert ("~~" in markdown) is waived


def test_findings_are_located_at_the_statement_of_the_template(tmp_path: Path) -> None:
    template = tmp_path / "keyspecs/policies/public.json.j2"
    template.parent.mkdir(parents=True)
    template.write_text('{\n  "Statement": [\n    {\n      "Sid": "Public",\n  ]\n}\n')
    head = key(PUBLIC)
    source = type(head.source)(
        "keyspecs/app.yaml", 3, "template public.json.j2", "keyspecs/policies/public.json.j2"
    )
    head = type(head)(head.state, 30, source, head.policy_text)
    from reconciler.commands.review import _locator

    changes = compare([desired(key(policy()))], [desired(head)])
    report = review(
        changes,
        {"production": context()},
        [public_principal],
        today=TODAY,
        locate=_locator(tmp_path),
    )
    (finding,) = report.findings
    assert (finding.file, finding.line) == ("keyspecs/policies/public.json.j2", 4)


# -- formats ------------------------------------------------------------------------------


def realistic_report() -> Any:
    """A template used by 50 keys gains a cross-account principal."""
    partner = allow(role("Partner", OTHER_ACCOUNT), ["kms:Decrypt", "kms:DescribeKey"], sid="P")
    base = [key(policy(), f"svc-{i:02d}", template="template shared.json.j2") for i in range(50)]
    head = [
        key(policy(partner), f"svc-{i:02d}", template="template shared.json.j2") for i in range(50)
    ]
    return _review(base, head)


def test_review_golden_comment(update_golden: bool) -> None:
    partner = allow(role("Partner", OTHER_ACCOUNT), "kms:Decrypt", sid="Partner")
    report = _review(
        [key(policy(), "app"), key(policy(), "logs")],
        [key(policy(partner), "app"), key(PUBLIC, "logs"), key(policy(), "new-key")],
    )
    report = type(report)(report.changes, report.findings, "main", "feature", rules=report.rules)
    check_golden("review.md", fmt.review_markdown(report), update_golden)
    check_golden("review.txt", fmt.review_text(report), update_golden)


def test_large_template_change_fits_a_comment_and_says_how_many_keys() -> None:
    report = realistic_report()
    text = fmt.review_markdown(report)
    assert len(text) <= 60_000
    assert "changes the policy of **50 keys**" in text
    data = json.loads(fmt.review_json(report))
    assert len(data["changes"]) == 50


def test_sarif_is_valid_and_has_security_severity() -> None:
    report = _review([key(policy())], [key(PUBLIC)])
    document = json.loads(fmt.review_sarif(report))
    assert sarif_errors(document) == []
    rules_meta = {r["id"]: r for r in document["runs"][0]["tool"]["driver"]["rules"]}
    assert rules_meta["KMS001"]["properties"]["security-severity"] == "8.0"
    results = document["runs"][0]["results"]
    assert any(r["ruleId"] == "KMS001" and r["level"] == "error" for r in results)


# -- end to end in a git repository -------------------------------------------------------


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    shutil.copytree(REPO / "keyspecs", root / "keyspecs")
    git(root, "add", ".")
    git(root, "commit", "-qm", "base")
    yield root


def run_review(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # offline: no credentials, and every AWS endpoint points at a closed port
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "HOME": str(repo)})
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "review", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cosmetic_commit_exits_0_and_says_no_access_changed(repo: Path) -> None:
    template = repo / "keyspecs/policies/cross-account.json.j2"
    text = template.read_text()
    template.write_text(text.replace('"Version": "2012-10-17",', '"Version" : "2012-10-17" ,'))
    app = repo / "keyspecs/app.yaml"
    app.write_text(
        app.read_text().replace(
            "user_roles: [WebApplicationRole, BackgroundJobRole]",
            "user_roles: [BackgroundJobRole, WebApplicationRole]",
        )
    )
    git(repo, "commit", "-qam", "reorder")
    done = run_review(repo, "--base", "HEAD~1", "--head", "HEAD")
    assert done.returncode == 0, done.stderr
    assert "No change in access" in done.stdout
    assert "KMS109" in done.stdout


def test_public_decrypt_exits_2_naming_key_principal_and_action(repo: Path) -> None:
    data = repo / "keyspecs/data/platform.yaml"
    text = data.read_text()
    start = text.index("- name: logs")
    public = (
        "- name: public-data\n"
        "    description: oops\n"
        "    rotation: {enabled: false}\n"
        "    policy:\n"
        "      document:\n"
        "        Version: '2012-10-17'\n"
        "        Statement:\n"
        "          - {Sid: Root, Effect: Allow, Principal: {AWS: "
        "'arn:aws:iam::111122223333:root'}, Action: 'kms:*', Resource: '*'}\n"
        "          - Sid: Everyone\n"
        "            Effect: Allow\n"
        "            Principal: {AWS: '*'}\n"
        "            Action: kms:Decrypt\n"
        "            Resource: '*'\n"
        "            Condition: {StringEquals: {'kms:ViaService': s3.us-east-1.amazonaws.com}}\n"
        "  "
    )
    data.write_text(text[:start] + public + text[start:])
    done = run_review(repo, "--base", "main", "--format", "text")  # head: the work tree
    assert done.returncode == 2, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("CRITICAL KMS001"))
    assert "public-data" in line and '"Everyone"' in line and "kms:Decrypt" in line
    assert "+ * gains kms:Decrypt" in done.stdout
    done = run_review(repo, "--base", "main", "--fail-on", "critical", "--format", "json")
    document = json.loads(done.stdout)
    assert done.returncode == 2 and document["blocking"] >= 1


def test_a_change_is_judged_by_the_settings_of_the_base(repo: Path) -> None:
    # The pull request trusts an outside account in inventory.yaml and, in the same change,
    # gives it decrypt: judged by its own settings the account would be "inside". The base's
    # settings judge it, so the grant to 999988887777 is outside use (KMS006) and blocks.
    inventory = repo / "keyspecs/inventory.yaml"
    inventory.write_text(inventory.read_text() + "trusted_accounts: ['999988887777']\n")
    app = repo / "keyspecs/app.yaml"
    app.write_text(
        app.read_text().replace(
            "user_roles: [WebApplicationRole, BackgroundJobRole]",
            "user_roles: [WebApplicationRole, BackgroundJobRole, 'arn:aws:iam::999988887777:root']",
        )
    )
    git(repo, "commit", "-qam", "trust and grant")
    done = run_review(repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "text")
    assert done.returncode == 2, done.stdout + done.stderr
    outside = [x for x in done.stdout.splitlines() if " KMS006 " in x and "999988887777" in x]
    assert outside and all(x.startswith("CRITICAL") for x in outside), done.stdout


def test_unknown_ref_is_a_clear_error(repo: Path) -> None:
    done = run_review(repo, "--base", "no-such-branch")
    assert done.returncode == 1
    assert "'no-such-branch' is not a commit" in done.stderr


def _applied_staging(repo: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The sample's staging target applied in a sandbox of the repository's own."""
    monkeypatch.chdir(repo)
    monkeypatch.setenv("KMS_RECONCILER_SANDBOX_DIR", str(repo / ".kms-sandbox"))
    runner = CliRunner()
    applied = runner.invoke(main, ["apply", "--sandbox", "--auto-approve", "--target", "staging"])
    assert applied.exit_code == 0, applied.output
    return runner


@contextmanager
def _staging_kms() -> Iterator[Any]:
    """A KMS client of the sandbox, as the staging account (444455556666) in eu-west-1."""
    with sandbox_session():
        kms = boto3.client("kms", region_name="eu-west-1")
        kms.meta.events.register(
            "before-sign.*.*",
            lambda request, **_: request.headers.__setitem__("x-moto-account-id", "444455556666"),
        )
        yield kms


def test_live_review_flags_drift_the_change_would_overwrite(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _applied_staging(repo, monkeypatch)
    with _staging_kms() as kms:
        for k in kms.list_keys()["Keys"]:
            tags = {
                t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=k["KeyId"])["Tags"]
            }
            if tags.get("kms-reconciler:name") == "app-data":
                live = json.loads(
                    kms.get_key_policy(KeyId=k["KeyId"], PolicyName="default")["Policy"]
                )
                live["Statement"].append(
                    allow(role("HandAdded", "444455556666"), "kms:Decrypt", sid="Hand")
                )
                kms.put_key_policy(KeyId=k["KeyId"], PolicyName="default", Policy=json.dumps(live))
    app = repo / "keyspecs/app.yaml"
    app.write_text(
        app.read_text().replace("admin_roles: [AdminRole]", "admin_roles: [KeyAdminRole]")
    )
    done = runner.invoke(
        main,
        [
            "review",
            "--base",
            "main",
            "--live",
            "--sandbox",
            "--target",
            "staging",
            "--format",
            "text",
        ],
    )
    assert "KMS201" in done.output and "staging/app-data" in done.output, done.output
    assert "HandAdded" in done.output


def test_live_review_flags_a_grant_that_keeps_access_the_change_removes(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BackgroundJobRole loses Decrypt in the policy, but a grant made outside the
    repository still gives it Decrypt: KMS allows what a grant allows (KMS202)."""
    runner = _applied_staging(repo, monkeypatch)
    job = "arn:aws:iam::444455556666:role/BackgroundJobRole"
    with _staging_kms() as kms:
        key_id = kms.describe_key(KeyId="alias/app-data-key")["KeyMetadata"]["KeyId"]
        grant_id = kms.create_grant(
            KeyId=key_id, GranteePrincipal=job, Operations=["Decrypt"], Name="by-hand"
        )["GrantId"]
    app = repo / "keyspecs/app.yaml"
    app.write_text(
        app.read_text().replace(
            "user_roles: [WebApplicationRole, BackgroundJobRole]",
            "user_roles: [WebApplicationRole]",
        )
    )
    args = ["review", "--base", "main", "--sandbox", "--target", "staging", "--format", "json"]
    offline = runner.invoke(main, args)
    assert "KMS202" not in offline.stdout  # the grants exist only in KMS
    done = runner.invoke(main, [*args, "--live"])
    data = json.loads(done.stdout)
    (finding,) = [f for f in data["findings"] if f["rule"] == "KMS202"]
    assert finding["severity"] == "high" and finding["key"] == "app-data"
    assert f"takes Decrypt away from AWS:{job}" in finding["message"]
    assert grant_id in finding["message"] and "grants_purge is off" in finding["message"]
    assert done.exit_code == 2
    # The declared reporting grant's grantee loses nothing: no finding names it.
    assert not any(
        "ReportingRole" in f["message"] for f in data["findings"] if f["rule"] == "KMS202"
    )


def test_live_review_reports_drift_a_cosmetic_change_overwrites(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Sid renamed in the template changes no access, but applying it rewrites the
    policy: the statement someone added by hand is lost (defect 4 of the policy issue)."""
    runner = _applied_staging(repo, monkeypatch)
    with _staging_kms() as kms:
        key_id = kms.describe_key(KeyId="alias/app-data-key")["KeyMetadata"]["KeyId"]
        live = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
        live["Statement"].append(allow(role("HandAdded", "444455556666"), "kms:Decrypt", sid="H"))
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(live))
    template = repo / "keyspecs/policies/application.json.j2"
    template.write_text(
        template.read_text().replace(
            '"Allow application role to use the key"', '"Application roles use the key"'
        )
    )
    args = ["review", "--base", "main", "--sandbox", "--target", "staging", "--format", "json"]
    quiet = runner.invoke(main, args)
    offline = json.loads(quiet.stdout)
    # cosmetic (KMS109) on every key of the template (KMS108, low): nothing blocks
    assert {f["rule"] for f in offline["findings"] if f["introduced"]} == {"KMS108", "KMS109"}
    assert quiet.exit_code == 0
    done = runner.invoke(main, [*args, "--live"])
    data = json.loads(done.stdout)
    live_findings = [f for f in data["findings"] if f["rule"] == "KMS201"]
    assert {(f["target"], f["key"]) for f in live_findings} == {("staging", "app-data")}
    (finding,) = live_findings
    assert any("HandAdded" in line for line in finding["details"])
    assert done.exit_code == 2


# -- multi-Region keys ----------------------------------------------------------------------


def _family(base_doc: Any, replica_doc: Any, regions: tuple[str, ...] = ("eu-west-1",)) -> Any:
    from dataclasses import replace as _replace

    from reconciler.state import DesiredReplica

    home = key(base_doc, "global", multi_region=True)
    replicas = tuple(
        DesiredReplica(
            region,
            _replace(home.state, policy=replica_doc, rotation_enabled=None, grants=None),
            json.dumps(replica_doc),
            "template regional.json.j2",
        )
        for region in regions
    )
    return _replace(home, replicas=replicas, primary_region="us-east-1")


def test_a_replica_policy_is_reviewed_as_a_key_of_its_own() -> None:
    public = allow({"AWS": "*"}, ["kms:Decrypt"], sid="Public")
    report = _review([_family(policy(), policy())], [_family(policy(), policy(public))])
    changed = {c.name: c for c in report.changed}
    assert set(changed) == {"global@eu-west-1"}
    (access,) = changed["global@eu-west-1"].access
    assert access.principal == "*" and "kms:Decrypt" in access.gained
    blocking = report.blocking(Severity.HIGH)
    assert blocking and {f.key for f in blocking} == {"global@eu-west-1"}


def test_adding_or_removing_a_replica_region_is_a_field_change() -> None:
    report = _review(
        [_family(policy(), policy())],
        [_family(policy(), policy(), regions=("eu-west-1", "ap-southeast-2"))],
    )
    home = next(c for c in report.changes if c.name == "global")
    assert [(f.field, f.before, f.after) for f in home.fields] == [
        ("replica_regions", ["eu-west-1"], ["ap-southeast-2", "eu-west-1"])
    ]
    assert {c.name: c.kind for c in report.changes}["global@ap-southeast-2"] == "added"


def test_spec_only_bypass_is_reviewed_and_fails_on_low(repo: Path) -> None:
    # issue 9, defect 11: no policy text changes, only the spec's lockout bypass
    app = repo / "keyspecs/app.yaml"
    app.write_text(
        app.read_text().replace(
            "    deletion_protection: true\n",
            "    deletion_protection: true\n    bypass_policy_lockout_safety_check: true\n",
            1,
        )
    )
    git(repo, "commit", "-qam", "bypass")
    done = run_review(repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "json")
    assert done.returncode == 2, done.stderr
    data = json.loads(done.stdout)
    changed = {c["key"] for c in data["changes"] if c["kind"] == "changed"}
    assert {"app-data"} <= changed
    kms111 = [f for f in data["findings"] if f["rule"] == "KMS111"]
    assert kms111 and all(f["severity"] == "high" for f in kms111)


@pytest.mark.parametrize(
    "line",
    [
        "    deletion_window_days: 7\n",
        "    grants_purge: true\n",
        "    allow_alias_takeover: true\n",
        "    waivers:\n      - {rule: KMS006, reason: r, owner: o, expires: 2099-01-01}\n",
    ],
    ids=["deletion-window-shortened", "grants-purge", "alias-takeover", "waiver-added"],
)
def test_spec_only_medium_changes_block_at_fail_on_low_only(repo: Path, line: str) -> None:
    app = repo / "keyspecs/app.yaml"
    app.write_text(
        app.read_text().replace(
            "    deletion_protection: true\n", "    deletion_protection: true\n" + line, 1
        )
    )
    git(repo, "commit", "-qam", "spec only")
    assert run_review(repo, "--base", "HEAD~1", "--head", "HEAD").returncode == 0
    done = run_review(repo, "--base", "HEAD~1", "--head", "HEAD", "--fail-on", "low")
    assert done.returncode == 2, done.stderr
    assert "KMS111" in done.stdout


def test_oversized_head_policy_is_a_finding_in_the_report(repo: Path) -> None:
    # issue 9, defect 9: KMS refuses a policy over 32 KB; review reports it (KMS015, high)
    # with the access change instead of stopping with an input error
    roles = ", ".join(
        f'"arn:{{{{ partition }}}}:iam::{{{{ account_id }}}}:role/reader-{i:04d}-{"x" * 40}"'
        for i in range(400)
    )
    (repo / "keyspecs/policies/big.json.j2").write_text(
        '{"Version": "2012-10-17", "Statement": ['
        '{"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": '
        '"arn:{{ partition }}:iam::{{ account_id }}:root"}, "Action": "kms:*", "Resource": "*"},'
        '{"Sid": "Readers", "Effect": "Allow", "Principal": {"AWS": [' + roles + "]}, "
        '"Action": "kms:Decrypt", "Resource": "*"}]}'
    )
    app = repo / "keyspecs/app.yaml"
    app.write_text(
        app.read_text().replace(
            "      template: application.json.j2\n", "      template: big.json.j2\n", 1
        )
    )
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "big")
    done = run_review(repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "json")
    assert done.returncode == 2, done.stderr
    data = json.loads(done.stdout)
    oversize = [f for f in data["findings"] if f["rule"] == "KMS015" and f["key"] == "app-data"]
    assert oversize and oversize[0]["severity"] == "high"
    assert "over the KMS limit of 32768 bytes" in oversize[0]["message"]
    (app_data,) = [
        c for c in data["changes"] if c["key"] == "app-data" and c["target"] == "production"
    ]
    assert any("reader-0000" in json.dumps(a) for a in app_data["access"])
    # validate (and so plan) still refuse it: KMS would
    refused = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 1 and "KMS allows at most 32768" in refused.stderr
