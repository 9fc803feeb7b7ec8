"""Observation never guesses ownership (partial permissions, SCPs, other teams' keys).

Rules, from the identity design: a key whose tags cannot be read may carry our identity
tag, so it is never taken for an unmanaged key, and no plan creates a key whose name it
could not rule out. A managed key that cannot be described stops its target with an error
naming the key and the permission. Drift reports unreadable keys (``key-unreadable``,
medium) and everything else it could read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from reconciler.aws import KmsApi
from reconciler.drift import detect, ignored_unreadable
from reconciler.errors import AwsError, PlanError
from reconciler.findings import Severity
from reconciler.observe import ObserveOptions, observe_target
from reconciler.planner import PlanOptions, make_plan
from reconciler.spec import IgnoreRule
from reconciler.state import fingerprint
from tests.factories import IDENTITY, TARGET, desired, desired_key
from tests.fakes import client_error


class Denying:
    """A boto3 KMS client that answers AccessDeniedException (or another code) for some
    (operation, key ID) pairs, as a key policy without root delegation or an SCP does."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.denied: dict[tuple[str, str], str] = {}

    def deny(self, operation: str, key_id: str, code: str = "AccessDeniedException") -> None:
        self.denied[(operation, key_id)] = code

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        operation = "".join(part.capitalize() for part in name.split("_"))

        def call(**params: Any) -> Any:
            code = self.denied.get((operation, params.get("KeyId", "")))
            if code:
                raise client_error(code, operation, "denied by the fake")
            return method(**params)

        return call


@pytest.fixture
def kms(fake_credentials: None) -> Iterator[Denying]:
    with mock_aws():
        yield Denying(boto3.client("kms", region_name="us-east-1"))


def make_key(kms: Denying, name: str | None, alias: str | None = None) -> str:
    tags = [{"TagKey": IDENTITY, "TagValue": name}] if name else []
    key_id: str = kms.client.create_key(
        KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT", Tags=tags
    )["KeyMetadata"]["KeyId"]
    if alias:
        kms.client.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def observe(kms: Denying, **options: Any) -> Any:
    api = KmsApi(kms, sleep=lambda s: None, max_attempts=2)
    return observe_target(api, TARGET, ObserveOptions(IDENTITY, **options))


def test_a_managed_key_with_unreadable_tags_is_not_taken_for_unmanaged(kms: Denying) -> None:
    app = make_key(kms, "app")
    kms.deny("ListResourceTags", app)
    obs = observe(kms)
    assert obs.unreadable == {app: "ListResourceTags: AccessDeniedException"}
    assert app not in obs.by_id()  # neither managed nor unmanaged: unknown


def test_no_key_is_created_while_a_key_that_may_be_it_cannot_be_read(kms: Denying) -> None:
    app = make_key(kms, "app")
    kms.deny("ListResourceTags", app)
    with pytest.raises(PlanError) as caught:
        make_plan(desired(desired_key("app"), desired_key("web")), observe(kms))
    lines = caught.value.lines()
    assert len(lines) == 2  # one per key the plan would create, each naming the culprit
    for line, name in zip(lines, ("app", "web"), strict=True):
        assert f"key '{name}'" in line
        assert app in line and "kms:ListResourceTags" in line


def test_a_key_the_inventory_ignores_by_id_does_not_block_creation(kms: Denying) -> None:
    theirs = make_key(kms, None, "alias/other-team")
    kms.deny("ListResourceTags", theirs)
    obs = observe(kms)
    for rule in (IgnoreRule(key_id=theirs), IgnoreRule(alias="alias/other-*")):
        not_ours = ignored_unreadable(obs, [rule])
        assert not_ours == {theirs}
        plan = make_plan(desired(desired_key("app")), obs, PlanOptions(not_ours=not_ours))
        assert plan.operations[0].kind.value == "CreateKey"
    # a tag rule cannot vouch for a key whose tags are unknown
    assert ignored_unreadable(obs, [IgnoreRule(tag={"Team": "*"})]) == frozenset()


def test_with_nothing_to_create_an_unreadable_key_is_a_warning(kms: Denying) -> None:
    app = make_key(kms, "app", "alias/app")
    other = make_key(kms, None)
    kms.deny("ListResourceTags", other)
    plan = make_plan(desired(desired_key("app", aliases=frozenset({"alias/app"}))), observe(kms))
    assert any(other in w and "kms:ListResourceTags" in w for w in plan.warnings)
    assert plan.keys[0].key_id == app


def test_a_managed_key_that_cannot_be_described_stops_the_target(kms: Denying) -> None:
    app = make_key(kms, "app")
    kms.deny("DescribeKey", app)
    with pytest.raises(AwsError) as caught:
        observe(kms)
    (line,) = caught.value.lines()
    assert app in line and "'app'" in line and "kms:DescribeKey" in line
    assert "AccessDeniedException" in line and line.startswith("target 'production': ")


def test_throttling_that_outlives_the_retries_is_an_error_not_an_unreadable_key(
    kms: Denying,
) -> None:
    app = make_key(kms, "app")
    kms.deny("ListResourceTags", app, "ThrottlingException")
    with pytest.raises(AwsError, match="ListResourceTags"):
        observe(kms)


def test_drift_reports_unreadable_keys_and_everything_else(kms: Denying) -> None:
    make_key(kms, "app")
    locked = make_key(kms, None, "alias/locked")  # another team's key, no root delegation
    visible = make_key(kms, None, "alias/visible")
    untagged = make_key(kms, None)
    kms.deny("DescribeKey", locked)
    kms.deny("ListResourceTags", untagged)
    obs = observe(kms, describe_unmanaged=True)
    assert obs.unreadable == {
        locked: "DescribeKey: AccessDeniedException",
        untagged: "ListResourceTags: AccessDeniedException",
    }
    drift = detect(desired(desired_key("app")), obs)
    unreadable = [f for f in drift.findings if f.rule == "key-unreadable"]
    assert {f.key_id for f in unreadable} == {locked, untagged}
    assert all(f.severity is Severity.MEDIUM for f in unreadable)
    assert any("alias/locked" in f.message for f in unreadable)
    assert [f.key_id for f in drift.findings if f.rule == "unmanaged-key"] == [visible]
    # an ignore rule silences it like any unmanaged key
    quiet = detect(desired(desired_key("app")), obs, [IgnoreRule(alias="alias/locked")])
    assert {f.key_id for f in quiet.findings if f.rule == "key-unreadable"} == {untagged}


def test_import_of_every_unmanaged_key_reads_around_an_unreadable_one(kms: Denying) -> None:
    locked = make_key(kms, None, "alias/locked")
    readable = make_key(kms, None, "alias/readable")
    kms.deny("DescribeKey", locked)
    obs = observe(kms, details_for_all=True, grants=False)
    assert obs.unreadable == {locked: "DescribeKey: AccessDeniedException"}
    assert obs.by_id()[readable].policy is not None


def test_a_key_that_becomes_unreadable_makes_a_saved_plan_stale(kms: Denying) -> None:
    other = make_key(kms, None)
    before = fingerprint(observe(kms), IDENTITY)
    kms.deny("ListResourceTags", other)
    assert fingerprint(observe(kms), IDENTITY) != before
