"""KMS113 corpus: a replica of a multi-Region key allows other access than its primary.

Expected verdicts from the rules: the members of a multi-Region key share key material, so
each member's policy decides who may use that material there; a policy rendered for its
own Region (its Region in kms:ViaService, its own key ARN) allows the same as the primary's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from typing import Any

from reconciler.findings import Severity
from reconciler.review import compare, review
from reconciler.rules import replica_diverges
from reconciler.state import DesiredReplica
from tests.factories import ACCOUNT, desired
from tests.rules.harness import OTHER_ACCOUNT, allow, context, key, policy, role

PRIMARY, REPLICA = "us-east-1", "eu-west-1"


def via(region: str) -> dict[str, Any]:
    return allow(
        role("App"),
        ["kms:Decrypt", "kms:Encrypt"],
        sid="ViaS3",
        Condition={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
    )


PARTNER = allow(role("Partner", OTHER_ACCOUNT), "kms:Decrypt", sid="Partner")


def family(primary_doc: Any, replica_doc: Any) -> Any:
    home = key(primary_doc, "global", multi_region=True)
    replica = DesiredReplica(
        REPLICA,
        replace(home.state, policy=replica_doc, rotation_enabled=None, grants=None),
        json.dumps(replica_doc),
        "template regional.json.j2",
    )
    return replace(home, replicas=(replica,), primary_region=PRIMARY)


def findings(base: Any, head: Any) -> list[Any]:
    changes = compare([desired(base)], [desired(head)])
    report = review(
        changes,
        {"production": context()},
        [],
        [replica_diverges],
        today=date(2026, 11, 29),
    )
    return [f for f in report.findings if f.rule.id == "KMS113"]


def test_a_replica_that_allows_more_than_its_primary_is_high() -> None:
    base = family(policy(via(PRIMARY)), policy(via(REPLICA)))
    head = family(policy(via(PRIMARY)), policy(via(REPLICA), PARTNER))
    (finding,) = findings(base, head)
    assert finding.severity is Severity.HIGH and finding.introduced
    assert finding.key == "global@eu-west-1"
    assert finding.message == (
        "replica global@eu-west-1 allows more than its primary global: "
        f"AWS:arn:aws:iam::{OTHER_ACCOUNT}:role/Partner may call kms:Decrypt in eu-west-1 "
        "but not in the primary's Region"
    )


def test_a_replica_that_allows_less_is_medium() -> None:
    base = family(policy(via(PRIMARY)), policy(via(REPLICA)))
    head = family(policy(via(PRIMARY)), policy())
    (finding,) = findings(base, head)
    assert finding.severity is Severity.MEDIUM
    assert "allows less than its primary global" in finding.message
    assert (
        "kms:Decrypt, kms:Encrypt in the primary's Region but not in eu-west-1" in finding.message
    )


def test_a_primary_change_not_made_on_the_replica_is_caught_on_the_primary() -> None:
    # The replica is untouched; the primary gains a partner: the replica now allows less.
    base = family(policy(via(PRIMARY)), policy(via(REPLICA)))
    head = family(policy(via(PRIMARY), PARTNER), policy(via(REPLICA)))
    (finding,) = findings(base, head)
    assert finding.key == "global" and finding.introduced
    assert finding.severity is Severity.MEDIUM


def test_region_names_aside_the_policies_are_equal() -> None:
    # The same template rendered per Region: s3.us-east-1 vs s3.eu-west-1 is no divergence.
    base = family(policy(), policy())
    head = family(policy(via(PRIMARY)), policy(via(REPLICA)))
    assert findings(base, head) == []


def test_a_divergence_the_base_already_had_is_not_this_changes() -> None:
    base = family(policy(via(PRIMARY)), policy(via(REPLICA), PARTNER))
    head = family(
        policy(via(PRIMARY)),
        policy(via(REPLICA), PARTNER, allow(role("Other"), "kms:DescribeKey", sid="D")),
    )
    # The partner divergence existed; the new statement adds another: reported, with both.
    (finding,) = findings(base, head)
    assert "Other" in "\n".join(finding.details) and "Partner" in "\n".join(finding.details)
    same = family(policy(via(PRIMARY)), policy(via(REPLICA), PARTNER))
    assert findings(base, replace(same, state=replace(same.state, description="reworded"))) == []


def test_another_region_in_a_condition_is_a_divergence() -> None:
    # The replica's policy names the primary's Region: callers through S3 in eu-west-1
    # (the replica's) fail, and S3 in us-east-1 may use the replica.
    base = family(policy(via(PRIMARY)), policy(via(REPLICA)))
    head = family(policy(via(PRIMARY)), policy(via("ap-southeast-2")))
    (finding,) = findings(base, head)
    assert finding.key == "global@eu-west-1"
    assert ACCOUNT in finding.message
