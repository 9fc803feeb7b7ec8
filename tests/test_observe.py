"""Observe: reads only what the plan needs, once per target where it can."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from reconciler.aws import MAX_READS_IN_FLIGHT, KmsApi, RateLimiter
from reconciler.commands.common import expected_tags
from reconciler.errors import AwsError
from reconciler.observe import (
    MIN_READS_IN_FLIGHT,
    READS,
    ObserveOptions,
    observe_target,
    reads_in_flight,
)
from reconciler.plan import OpKind
from reconciler.planner import make_plan
from reconciler.state import DesiredTarget
from reconciler.wire import wire_for
from tests.factories import IDENTITY, TARGET, desired, desired_key
from tests.fakes import FakeKms, client_error


@pytest.fixture
def kms(fake_credentials: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


def make_key(kms: Any, name: str | None, alias: str | None = None, **extra: Any) -> str:
    tags = [{"TagKey": IDENTITY, "TagValue": name}] if name else []
    key_id: str = kms.create_key(
        Description=f"{name} key",
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
        Tags=tags,
        **extra,
    )["KeyMetadata"]["KeyId"]
    if alias:
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def test_managed_keys_are_read_in_full_and_unmanaged_keys_only_tagged(kms: Any) -> None:
    managed = [make_key(kms, f"k{i}", f"alias/k{i}") for i in range(3)]
    kms.enable_key_rotation(KeyId=managed[0])
    unmanaged = [make_key(kms, None, f"alias/other{i}") for i in range(4)]
    api = KmsApi(kms)
    obs = observe_target(api, TARGET, ObserveOptions(IDENTITY))
    by_id = obs.by_id()
    assert set(by_id) == set(managed) | set(unmanaged)
    assert by_id[managed[0]].rotation_enabled is True
    assert by_id[managed[1]].rotation_enabled is False
    assert by_id[managed[0]].aliases == frozenset({"alias/k0"})
    assert by_id[managed[0]].policy is not None and by_id[managed[0]].key_state == "Enabled"
    assert by_id[unmanaged[0]].policy is None and by_id[unmanaged[0]].key_state is None
    assert obs.aliases["alias/other1"] == unmanaged[1]
    # once per target: ListKeys, ListAliases; per customer key: ListResourceTags;
    # per managed key: DescribeKey, GetKeyPolicy, GetKeyRotationStatus, ListGrants.
    assert dict(api.calls) == {
        "ListKeys": 1,
        "ListAliases": 1,
        "ListResourceTags": 7,
        "DescribeKey": 3,
        "GetKeyPolicy": 3,
        "GetKeyRotationStatus": 3,
        "ListGrants": 3,
    }
    assert obs.read_calls == 21
    assert by_id[managed[0]].grants == () and by_id[unmanaged[0]].grants is None


def test_wanted_unmanaged_keys_are_read_in_full_by_id_or_alias(kms: Any) -> None:
    a = make_key(kms, None, "alias/legacy-a")
    b = make_key(kms, None)
    c = make_key(kms, None)
    api = KmsApi(kms)
    obs = observe_target(api, TARGET, ObserveOptions(IDENTITY, wanted=("alias/legacy-a", b)))
    by_id = obs.by_id()
    assert by_id[a].policy is not None and by_id[b].policy is not None
    assert by_id[c].policy is None
    assert api.calls["DescribeKey"] == 2


def test_pending_deletion_keys_are_observed_without_rotation(kms: Any) -> None:
    key_id = make_key(kms, "gone")
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    api = KmsApi(kms)
    obs = observe_target(api, TARGET, ObserveOptions(IDENTITY))
    (key,) = obs.keys
    assert key.pending_deletion and key.deletion_date is not None
    assert key.rotation_enabled is None  # real KMS refuses or reports false: unknown
    assert "GetKeyRotationStatus" not in api.calls


def test_asymmetric_keys_skip_the_rotation_read(kms: Any) -> None:
    kms.create_key(
        KeySpec="ECC_NIST_P256",
        KeyUsage="SIGN_VERIFY",
        Tags=[{"TagKey": IDENTITY, "TagValue": "signer"}],
    )
    api = KmsApi(kms)
    (key,) = observe_target(api, TARGET, ObserveOptions(IDENTITY)).keys
    assert key.key_spec == "ECC_NIST_P256" and key.rotation_enabled is None
    assert "GetKeyRotationStatus" not in api.calls


def test_policy_is_parsed_and_unparseable_text_never_equals_a_policy(kms: Any) -> None:
    key_id = make_key(kms, "app")
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy="not json")
    (key,) = observe_target(KmsApi(kms), TARGET, ObserveOptions(IDENTITY)).keys
    assert key.policy is not None and key.policy["Statement"] == []


def fake_account(keys: dict[str, dict[str, str]], **responses: Any) -> FakeKms:
    aliases = [
        {"AliasName": "alias/aws/s3", "TargetKeyId": "aws-managed-1"},
        {"AliasName": "alias/aws/ebs"},  # predefined, never used
    ]
    default: dict[str, Any] = {
        "ListKeys": lambda **p: {"Keys": [{"KeyId": k} for k in [*keys, "aws-managed-1"]]},
        "ListAliases": lambda **p: {"Aliases": aliases},
        "ListResourceTags": lambda **p: {
            "Tags": [{"TagKey": k, "TagValue": v} for k, v in keys[p["KeyId"]].items()]
        },
        "DescribeKey": lambda **p: {
            "KeyMetadata": {
                "KeyId": p["KeyId"],
                "KeyState": "Enabled",
                "KeyManager": "CUSTOMER",
                "KeySpec": "SYMMETRIC_DEFAULT",
                "KeyUsage": "ENCRYPT_DECRYPT",
                "Origin": "AWS_KMS",
            }
        },
        "GetKeyPolicy": lambda **p: {"Policy": json.dumps({"Statement": []})},
        "GetKeyRotationStatus": lambda **p: {
            "KeyRotationEnabled": True,
            "RotationPeriodInDays": 180,
        },
    }
    default.update(responses)
    return FakeKms(responses=default)


def test_aws_managed_keys_are_never_read_and_real_rotation_period_is_kept() -> None:
    fake = fake_account({"k1": {IDENTITY: "one"}})
    obs = observe_target(KmsApi(fake), TARGET, ObserveOptions(IDENTITY))
    assert [k.key_id for k in obs.keys] == ["k1"]
    assert obs.keys[0].rotation_period_days == 180
    assert "aws-managed-1" in obs.aws_managed_key_ids
    assert all(p.get("KeyId") != "aws-managed-1" for _, p in fake.calls)
    assert "alias/aws/s3" not in obs.aliases


@pytest.mark.parametrize(
    ("operation", "code", "check"),
    [
        ("ListResourceTags", "NotFoundException", lambda obs: obs.keys == ()),
        # maybe ours: neither managed nor unmanaged, but listed as unreadable
        ("ListResourceTags", "AccessDeniedException", lambda obs: obs.unreadable and not obs.keys),
        ("DescribeKey", "NotFoundException", lambda obs: obs.keys == ()),
        (
            "GetKeyRotationStatus",
            "KMSInvalidStateException",
            lambda obs: obs.keys[0].rotation_enabled is None,
        ),
        ("GetKeyPolicy", "AccessDeniedException", lambda obs: obs.keys[0].policy is None),
    ],
    ids=[
        "deleted-while-listing",
        "tags-not-readable-means-unknown-not-unmanaged",
        "deleted-before-describe",
        "rotation-state-invalid",
        "policy-not-readable",
    ],
)
def test_real_kms_errors_on_reads_degrade_to_unknown(operation: str, code: str, check: Any) -> None:
    fake = fake_account({"k1": {IDENTITY: "one"}})
    fake.failures[operation] = [code]
    obs = observe_target(KmsApi(fake, sleep=lambda s: None), TARGET, ObserveOptions(IDENTITY))
    assert check(obs)


# -- pipelined reads ------------------------------------------------------------------------


def test_a_keys_reads_go_on_while_another_keys_tags_are_still_in_flight() -> None:
    # No barrier across keys: "slow"'s ListResourceTags answers only once "fast" has been
    # described. Reading every key's tags before any DescribeKey would wait out the timeout.
    described = threading.Event()
    keys = {"fast": {IDENTITY: "fast"}, "slow": {IDENTITY: "slow"}}

    def tags(**p: Any) -> Any:
        if p["KeyId"] == "slow":
            assert described.wait(5), "slow's tags were needed before fast was described"
        return {"Tags": [{"TagKey": k, "TagValue": v} for k, v in keys[p["KeyId"]].items()]}

    fake = fake_account(keys)
    describe = fake.responses["DescribeKey"]

    def describe_key(**p: Any) -> Any:
        if p["KeyId"] == "fast":
            described.set()
        return describe(**p)

    fake.responses.update(ListResourceTags=tags, DescribeKey=describe_key)
    obs = observe_target(KmsApi(fake), TARGET, ObserveOptions(IDENTITY, workers=2))
    assert sorted(k.key_id for k in obs.keys) == ["fast", "slow"]


def test_a_keys_policy_and_rotation_reads_run_side_by_side() -> None:
    # GetKeyPolicy answers only once GetKeyRotationStatus of the same key has started.
    started = threading.Event()
    fake = fake_account({"k1": {IDENTITY: "one"}})
    policy, rotation = fake.responses["GetKeyPolicy"], fake.responses["GetKeyRotationStatus"]

    def get_policy(**p: Any) -> Any:
        assert started.wait(5), "the rotation status was read only after the policy"
        return policy(**p)

    def get_rotation(**p: Any) -> Any:
        started.set()
        return rotation(**p)

    fake.responses.update(GetKeyPolicy=get_policy, GetKeyRotationStatus=get_rotation)
    (key,) = observe_target(KmsApi(fake), TARGET, ObserveOptions(IDENTITY, workers=2)).keys
    assert key.policy == {"Statement": []} and key.rotation_enabled is True


class InFlight:
    """Wraps a fake's answers: each takes ``seconds``; counts the most calls at once."""

    def __init__(self, fake: FakeKms, seconds: float) -> None:
        self.now = self.most = 0
        self._lock = threading.Lock()
        for operation, answer in list(fake.responses.items()):
            fake.responses[operation] = self._slow(answer, seconds)

    def _slow(self, answer: Any, seconds: float) -> Any:
        def call(**p: Any) -> Any:
            with self._lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                time.sleep(seconds)
                return answer(**p)
            finally:
                with self._lock:
                    self.now -= 1

        return call


def test_parallelism_bounds_the_calls_in_flight() -> None:
    fake = fake_account({f"k{i}": {IDENTITY: f"n{i}"} for i in range(40)})
    gauge = InFlight(fake, 0.005)
    obs = observe_target(KmsApi(fake), TARGET, ObserveOptions(IDENTITY, workers=3))
    assert len(obs.keys) == 40
    assert gauge.most == 3


def test_without_parallelism_the_calls_in_flight_follow_quota_and_latency() -> None:
    # 20 ms a call: Little's law wants 800 keys/s x 4 calls x 0.02 s x 1.25 = 80 in flight,
    # more than the fixed 16 of before.
    assert reads_in_flight(800, 0.02) == 80
    assert reads_in_flight(800, 0.0005) == MIN_READS_IN_FLIGHT  # loopback: the least
    assert reads_in_flight(800, 2.0) == MAX_READS_IN_FLIGHT
    fake = fake_account({f"k{i}": {IDENTITY: f"n{i}"} for i in range(150)})
    gauge = InFlight(fake, 0.02)
    options = ObserveOptions(IDENTITY, grants=False)
    obs = observe_target(KmsApi(fake, limiter=RateLimiter({})), TARGET, options)
    assert len(obs.keys) == 150 and obs.read_calls == 2 + 150 * 4
    assert gauge.most > MIN_READS_IN_FLIGHT


def test_a_managed_key_that_cannot_be_described_stops_the_target() -> None:
    fake = fake_account({f"k{i}": {IDENTITY: f"n{i}"} for i in range(20)})
    fake.responses["DescribeKey"] = _deny_for("k7", fake.responses["DescribeKey"])
    with pytest.raises(AwsError, match=r"managed key k7 \('n7'\): DescribeKey"):
        observe_target(KmsApi(fake), TARGET, ObserveOptions(IDENTITY, workers=4))


def test_an_unmanaged_key_that_cannot_be_described_is_listed_unreadable() -> None:
    fake = fake_account({"mine": {IDENTITY: "mine"}, "theirs": {}})
    fake.responses["DescribeKey"] = _deny_for("theirs", fake.responses["DescribeKey"])
    obs = observe_target(
        KmsApi(fake), TARGET, ObserveOptions(IDENTITY, describe_unmanaged=True, workers=4)
    )
    assert [k.key_id for k in obs.keys] == ["mine"]
    assert obs.unreadable == {"theirs": "DescribeKey: AccessDeniedException"}


def _deny_for(key_id: str, answer: Any) -> Any:
    def call(**p: Any) -> Any:
        if p["KeyId"] == key_id:
            raise client_error("AccessDeniedException", "DescribeKey")
        return answer(**p)

    return call


def test_progress_counts_keys_whose_reads_are_all_done() -> None:
    fake = fake_account({f"k{i}": {IDENTITY: f"n{i}"} if i % 2 else {} for i in range(10)})
    told: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    def progress(phase: str, done: int, total: int) -> None:
        with lock:
            told.append((phase, done, total))

    observe_target(KmsApi(fake), TARGET, ObserveOptions(IDENTITY, progress=progress))
    assert told[0] == ("keys", 0, 10) and max(told) == ("keys", 10, 10)
    assert sorted(d for _, d, _ in told) == list(range(11))


# -- discovery through the Resource Groups Tagging API ------------------------------------
# moto 5.2 answers GetResources for KMS keys from the live KMS state: never stale, never
# lagging (PendingDeletion keys included, tags as ListResourceTags has them; a page ends at
# 100 tags as well as at ResourcesPerPage, where real KMS fills 100 resources; the last
# page's PaginationToken is ""). The real index is eventually consistent, so these tests
# make it lag with a wrapper (``Index``) that leaves out keys or answers older tags.


class Index:
    """A tagging API client that lags: ``omit`` key IDs are not listed yet, ``stale`` maps
    key IDs to the tags an older snapshot still shows."""

    def __init__(
        self,
        client: Any,
        omit: frozenset[str] | set[str] = frozenset(),
        stale: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.client = client
        self.omit = omit
        self.stale = stale or {}
        self.pages = 0

    def get_resources(self, **params: Any) -> Any:
        self.pages += 1
        answer = self.client.get_resources(**params)
        listed = []
        for resource in answer["ResourceTagMappingList"]:
            key_id = resource["ResourceARN"].rsplit("/", 1)[-1]
            if key_id in self.omit:
                continue
            if key_id in self.stale:
                tags = [{"Key": k, "Value": v} for k, v in self.stale[key_id].items()]
                resource = {**resource, "Tags": tags}
            listed.append(resource)
        return {**answer, "ResourceTagMappingList": listed}


def tagged_key(kms: Any, tags: dict[str, str]) -> str:
    key_id: str = kms.create_key(
        Description="app key",
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
        Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()],
    )["KeyMetadata"]["KeyId"]
    return key_id


def by_tagging_api(kms: Any, index: Index, specs: DesiredTarget) -> tuple[Any, KmsApi]:
    api = KmsApi(kms)
    options = ObserveOptions(IDENTITY, grants=False, expected_tags=expected_tags(specs))
    return observe_target(api, TARGET, options, tagging=KmsApi(index)), api


def test_no_op_reads_three_kms_calls_per_managed_key_with_the_tagging_api(kms: Any) -> None:
    specs = desired(*(desired_key(f"k{i}") for i in range(6)))
    for dk in specs.keys:
        tagged_key(kms, {"Owner": "team", IDENTITY: dk.name})
    unmanaged = [tagged_key(kms, {"Owner": "someone"}) for _ in range(2)]
    index = Index(boto3.client("resourcegroupstaggingapi", region_name="us-east-1"))
    obs, api = by_tagging_api(kms, index, specs)
    assert len(obs.keys) == 8
    # the tagging API's one page names the six managed keys; only the unmanaged keys'
    # tags are read from KMS.
    assert index.pages == 1 and obs.stats["tag:GetResources"] == 1
    assert api.calls["ListResourceTags"] == len(unmanaged)
    per_key = {op: api.calls[op] for op in ("DescribeKey", "GetKeyPolicy", "GetKeyRotationStatus")}
    assert per_key == {"DescribeKey": 6, "GetKeyPolicy": 6, "GetKeyRotationStatus": 6}
    assert obs.read_calls == 1 + 1 + 1 + len(unmanaged) + 3 * 6  # lists, page, tags, details
    # the default path: one ListResourceTags more per managed key (4 KMS calls a key)
    default = KmsApi(kms)
    again = observe_target(default, TARGET, ObserveOptions(IDENTITY, grants=False))
    assert default.calls["ListResourceTags"] == 8 and again.keys == obs.keys


def test_a_key_the_tagging_api_does_not_list_yet_is_still_found(kms: Any) -> None:
    # Created seconds ago: the index does not have it. It is read with ListResourceTags
    # like any listed key without a trusted index entry, so the plan never creates a
    # second key for its name.
    specs = desired(desired_key("app"))
    key_id = tagged_key(kms, {"Owner": "team", IDENTITY: "app"})
    index = Index(boto3.client("resourcegroupstaggingapi", region_name="us-east-1"), {key_id})
    obs, api = by_tagging_api(kms, index, specs)
    assert [k.name(IDENTITY) for k in obs.keys] == ["app"]
    assert api.calls["ListResourceTags"] == 1
    plan = make_plan(specs, obs)
    assert not [op for op in plan.operations if op.kind is OpKind.CREATE_KEY]


def test_stale_tags_from_the_tagging_api_are_read_again_so_a_replan_converges(
    kms: Any,
) -> None:
    # apply just changed Owner from "old" to "team" (what the spec wants); the index still
    # shows "old". Trusting it would plan the same TagResource again; it differs from the
    # spec, so the key's tags are read from KMS.
    specs = desired(desired_key("app"))
    key_id = tagged_key(kms, {"Owner": "old", IDENTITY: "app"})
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "Owner", "TagValue": "team"}])
    stale = {key_id: {"Owner": "old", IDENTITY: "app"}}
    index = Index(boto3.client("resourcegroupstaggingapi", region_name="us-east-1"), stale=stale)
    obs, api = by_tagging_api(kms, index, specs)
    (key,) = obs.keys
    assert key.tags == {"Owner": "team", IDENTITY: "app"}
    assert api.calls["ListResourceTags"] == 1
    plan = make_plan(specs, obs)
    kinds = {op.kind for op in plan.operations}
    assert OpKind.TAG_RESOURCE not in kinds and OpKind.UNTAG_RESOURCE not in kinds


def test_a_stale_identity_tag_never_names_a_key_for_a_spec(kms: Any) -> None:
    # The index still shows an identity tag that was removed (the key was released): the
    # tags differ from the spec's (no Owner), so KMS's own tags decide: unmanaged, and the
    # spec's key is created, not taken over.
    specs = desired(desired_key("app"))
    key_id = tagged_key(kms, {"Owner": "team"})
    index = Index(
        boto3.client("resourcegroupstaggingapi", region_name="us-east-1"),
        stale={key_id: {IDENTITY: "app"}},
    )
    obs, _ = by_tagging_api(kms, index, specs)
    assert [k.name(IDENTITY) for k in obs.keys] == [None]


def test_a_key_only_the_tagging_api_lists_is_read(kms: Any) -> None:
    # ListKeys lags behind a new key that the index already has: it is read all the same.
    specs = desired(desired_key("app"))
    key_id = tagged_key(kms, {"Owner": "team", IDENTITY: "app"})

    class Lagging:
        def __getattr__(self, name: str) -> Any:
            return getattr(kms, name)

        def list_keys(self, **params: Any) -> Any:
            answer = kms.list_keys(**params)
            return {**answer, "Keys": [k for k in answer["Keys"] if k["KeyId"] != key_id]}

    index = Index(boto3.client("resourcegroupstaggingapi", region_name="us-east-1"))
    obs, api = by_tagging_api(Lagging(), index, specs)
    assert [k.key_id for k in obs.keys] == [key_id]
    assert obs.keys[0].policy is not None and api.calls["ListResourceTags"] == 0


def test_keys_on_an_index_page_are_read_before_the_next_page_arrives() -> None:
    # The index is no barrier: page 2 answers only once a key of page 1 was described.
    keys = {"a": {IDENTITY: "a"}, "b": {IDENTITY: "b"}, "other": {}}
    fake = fake_account(keys)
    described = threading.Event()
    describe = fake.responses["DescribeKey"]

    def describe_key(**p: Any) -> Any:
        if p["KeyId"] == "a":
            described.set()
        return describe(**p)

    fake.responses["DescribeKey"] = describe_key
    arn = f"arn:aws:kms:us-east-1:{TARGET.account_id}:key/"

    class Paged:
        def __init__(self) -> None:
            self.requests: list[dict[str, Any]] = []

        def get_resources(self, **p: Any) -> Any:
            self.requests.append(p)
            if not p.get("PaginationToken"):
                entry = {"ResourceARN": arn + "a", "Tags": [{"Key": IDENTITY, "Value": "a"}]}
                return {"ResourceTagMappingList": [entry], "PaginationToken": "page-2"}
            assert described.wait(5), "page 2 was needed before page 1's key was described"
            entry = {"ResourceARN": arn + "b", "Tags": [{"Key": IDENTITY, "Value": "b"}]}
            return {"ResourceTagMappingList": [entry], "PaginationToken": ""}

    specs = {"a": {IDENTITY: "a"}, "b": {IDENTITY: "b"}}
    options = ObserveOptions(IDENTITY, grants=False, expected_tags=specs, workers=2)
    paged = Paged()
    obs = observe_target(KmsApi(fake), TARGET, options, tagging=KmsApi(paged))
    assert sorted(k.key_id for k in obs.keys) == ["a", "b", "other"]
    assert [r.get("PaginationToken") for r in paged.requests] == [None, "page-2"]
    assert paged.requests[0]["ResourcesPerPage"] == 100
    assert paged.requests[0]["TagFilters"] == [{"Key": IDENTITY}]
    assert paged.requests[0]["ResourceTypeFilters"] == ["kms:key"]
    # only the key the index does not name had its tags read from KMS
    assert [p["KeyId"] for op, p in fake.calls if op == "ListResourceTags"] == ["other"]


def test_the_lean_paths_reads_on_the_loop_keep_to_the_parallelism(
    fake_credentials: None,
) -> None:
    """Over HTTP (moto_server on 127.0.0.1), every read on the observe loop's lean path:
    at most ``workers`` in flight, and that many reached."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client("kms", region_name="us-east-1", endpoint_url=f"http://{host}:{port}")
        for i in range(12):
            make_key(client, f"n{i}", f"alias/n{i}")
        api = KmsApi(client, wire=wire_for(client, READS))
        assert api.wire is not None
        now = most = 0
        real = api.wire.asend

        async def counted(operation: str, params: Any) -> Any:
            nonlocal now, most
            now += 1
            most = max(most, now)
            try:
                await asyncio.sleep(0.005)  # a round trip long enough to overlap
                return await real(operation, params)
            finally:
                now -= 1

        api.wire.asend = counted  # type: ignore[method-assign]
        obs = observe_target(api, TARGET, ObserveOptions(IDENTITY, workers=3))
    finally:
        server.stop()
    assert len(obs.keys) == 12 and all(k.policy for k in obs.keys)
    assert api.calls["DescribeKey"] == 12
    assert most == 3
