"""Credentials per target: profile, assume-role chain, external ID, session name, duration."""

from __future__ import annotations

from typing import Any, ClassVar

import boto3
import pytest

from reconciler import aws
from reconciler.state import TargetInfo


class FakeSession:
    """Stands in for boto3.Session: records every AssumeRole and which session made it."""

    made: ClassVar[list[dict[str, Any]]] = []
    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        FakeSession.made.append(kwargs)

    def client(self, service: str, **_: Any) -> Any:
        session = self

        class Sts:
            def assume_role(self, **params: Any) -> dict[str, Any]:
                FakeSession.calls.append((session.kwargs.get("aws_access_key_id", "base"), params))
                n = len(FakeSession.calls)
                return {
                    "Credentials": {
                        "AccessKeyId": f"key-{n}",
                        "SecretAccessKey": "s",
                        "SessionToken": "t",
                    }
                }

        return Sts()


@pytest.fixture(autouse=True)
def fake_boto(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeSession.made, FakeSession.calls = [], []
    # reconciler.aws imports boto3 when it connects (not at start-up): patch the module
    monkeypatch.setattr(boto3, "Session", FakeSession)


def test_role_chain_is_assumed_hop_by_hop_with_extras_on_the_last() -> None:
    target = TargetInfo(
        "prod",
        "111122223333",
        "us-east-1",
        role_chain=("arn:aws:iam::999999999999:role/hub", "arn:aws:iam::111122223333:role/kms"),
        external_id="xid",
        session_name="ci-run-42",
        session_duration_seconds=3600,
    )
    session = aws._assume_chain(
        FakeSession(), target, aws._client_config(aws.AwsOptions()), write=True
    )
    (first_by, first), (second_by, second) = FakeSession.calls
    assert first == {
        "RoleArn": "arn:aws:iam::999999999999:role/hub",
        "RoleSessionName": "ci-run-42",
    }
    assert second == {
        "RoleArn": "arn:aws:iam::111122223333:role/kms",
        "RoleSessionName": "ci-run-42",
        "ExternalId": "xid",
        "DurationSeconds": 3600,
    }
    assert (first_by, second_by) == ("base", "key-1")  # the second hop uses the first's keys
    assert session.kwargs["aws_access_key_id"] == "key-2"


def test_no_role_means_the_base_session() -> None:
    base = FakeSession()
    target = TargetInfo("dev", "111122223333", "us-east-1")
    for write in (False, True):
        assert aws._assume_chain(base, target, aws._client_config(aws.AwsOptions()), write) is base
    assert FakeSession.calls == []


WRITER = "arn:aws:iam::111122223333:role/kms-apply"
READER = "arn:aws:iam::111122223333:role/kms-plan"


@pytest.mark.parametrize(
    ("plan_role", "write", "assumed"),
    [
        ((READER,), False, READER),  # plan, drift, import, review --live
        ((READER,), True, WRITER),  # apply, rotate, force-unlock
        ((), False, WRITER),  # no read-only role named: role_arn for every command
        ((), True, WRITER),
    ],
    ids=["reader-reads", "writer-writes", "no-plan-role-read", "no-plan-role-write"],
)
def test_reads_use_the_read_only_role_and_writes_the_apply_role(
    plan_role: tuple[str, ...], write: bool, assumed: str
) -> None:
    target = TargetInfo(
        "prod", "111122223333", "us-east-1", role_chain=(WRITER,), plan_role_chain=plan_role
    )
    aws._assume_chain(FakeSession(), target, aws._client_config(aws.AwsOptions()), write)
    ((_, params),) = FakeSession.calls
    assert params["RoleArn"] == assumed
