"""Multi-Region key families, pure: spec validation, desired replicas, plans, drift, text.

A multi-Region key is one spec: the key in the target's Region (it carries the identity
tag) and one replica per other Region (each carries the replica tag, never the identity
tag). KMS keeps description, enabled state, tags, policy and aliases per member, and
shares rotation (managed on the primary) and the key ID.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.desired import build_desired
from reconciler.drift import detect
from reconciler.errors import InputError, PlanError
from reconciler.findings import Severity
from reconciler.formatters.plan import plan_text, summary_line
from reconciler.loader import load_inventory
from reconciler.plan import (
    PHASES,
    Action,
    KeyPlan,
    OpKind,
    Plan,
    TargetPlan,
    from_dict,
    to_dict,
)
from reconciler.planner import PlanOptions, make_plan
from reconciler.state import (
    DesiredKey,
    DesiredReplica,
    DesiredTarget,
    ObservedKey,
    ObservedTarget,
    fingerprint,
    replica_tag,
)
from tests.factories import (
    ACCOUNT,
    IDENTITY,
    PROTECTION,
    ROOT_POLICY,
    TARGET,
    USE_STATEMENT,
    desired,
    desired_key,
    observed,
    observed_key,
    policy_with,
    state,
)

HOME = TARGET.region  # us-east-1
EU = "eu-west-1"
AP = "ap-southeast-2"
MRK = "mrk-1234abcd12ab34cd56ef1234567890ab"
OTHER_MRK = "mrk-99999999aaaabbbbccccddddeeeeffff"
REPLICA = replica_tag(IDENTITY)
PUBLIC = {
    "Sid": "Sneaky",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
    "Action": "kms:Decrypt",
    "Resource": "*",
}


# -- builders -----------------------------------------------------------------------------


def replica(region: str, name: str = "app", **fields: Any) -> DesiredReplica:
    """A desired replica: the key's factory state, minus what KMS shares (rotation) or
    what replicas do not manage (grants)."""
    s = state(
        name,
        multi_region=True,
        rotation_enabled=None,
        rotation_period_days=None,
        grants=None,
        **fields,
    )
    return DesiredReplica(
        region, s, json.dumps(s.policy, indent=2), f"template application.json.j2 ({region})"
    )


def mr_key(
    name: str = "app",
    *replicas: DesiredReplica,
    primary_region: str | None = HOME,
    **fields: Any,
) -> DesiredKey:
    """A desired multi-Region key (the loader always sets primary_region for these)."""
    dk = desired_key(name, multi_region=True, **fields)
    return replace(dk, replicas=replicas, primary_region=primary_region)


def member(
    region: str,
    name: str = "app",
    key_id: str = MRK,
    *,
    key_state: str = "Enabled",
    tags: dict[str, str] | None = None,
    primary: str = HOME,
    **fields: Any,
) -> ObservedKey:
    """A family member read in another Region: same key ID, the replica tag."""
    values: dict[str, Any] = {
        "description": f"{name} key",
        "key_spec": "SYMMETRIC_DEFAULT",
        "key_usage": "ENCRYPT_DECRYPT",
        "origin": "AWS_KMS",
        "multi_region": True,
        "enabled": key_state == "Enabled",
        "policy": ROOT_POLICY,
        "aliases": frozenset({f"alias/{name}"}),
        "multi_region_type": "PRIMARY" if region == primary else "REPLICA",
        "primary_region": primary,
    }
    values.update(fields)
    return ObservedKey(
        key_id=key_id,
        arn=f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}",
        tags={"Owner": "team", REPLICA: name} if tags is None else tags,
        key_state=key_state,
        region=region,
        **values,
    )


def family(
    name: str = "app",
    *members: ObservedKey,
    key_id: str = MRK,
    primary: str = HOME,
    **fields: Any,
) -> ObservedKey:
    """The family's key in the target's Region, with its members elsewhere."""
    regions = [primary, *sorted(r for r in {HOME, *(m.region or "" for m in members)} - {primary})]
    return observed_key(
        name,
        key_id,
        multi_region=True,
        multi_region_type="PRIMARY" if primary == HOME else "REPLICA",
        primary_region=primary,
        member_regions=tuple(regions),
        replicas={m.region or "": m for m in members},
        **fields,
    )


def observed_family(
    *keys: ObservedKey,
    aliases: dict[str, str | None] | None = None,
    region_aliases: dict[str, dict[str, str | None]] | None = None,
    **fields: Any,
) -> ObservedTarget:
    """The target, its aliases, and the aliases of the members' Regions (from the members'
    own aliases unless given)."""
    if region_aliases is None:
        region_aliases = {}
        for k in keys:
            for region, m in k.replicas.items():
                region_aliases.setdefault(region, {}).update({a: m.key_id for a in m.aliases})
    return replace(observed(*keys, aliases=aliases), region_aliases=region_aliases, **fields)


def summary(plan: TargetPlan) -> list[tuple[str, str | None]]:
    return [(op.kind.value, op.region) for op in plan.operations]


def only_replica(plan: TargetPlan) -> tuple[KeyPlan, KeyPlan]:
    (key,) = plan.keys
    (rep,) = key.replicas
    return key, rep


def assert_sorted_by_phase(plan: TargetPlan) -> None:
    phases = [PHASES[op.kind] for op in plan.operations]
    assert phases == sorted(phases)


# -- spec validation (loader + desired), in ./keyspecs ----------------------------------

ROOT = "keyspecs"
F = "keyspecs/app.yaml"
INVENTORY = """\
targets:
  - name: prod
    account_id: "111122223333"
    region: us-east-1
"""


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def key(*fields: str, name: str = "app") -> str:
    """A key file with one key named `name` (line 2); `fields` are its lines from line 3."""
    return f"keys:\n  - name: {name}\n" + "".join(f"    {line}\n" for line in fields)


def write_inventory(files: dict[str, str], policies: dict[str, str] | None = None) -> None:
    root = Path(ROOT)
    (root / "policies").mkdir(parents=True, exist_ok=True)
    (root / "inventory.yaml").write_text(INVENTORY, encoding="utf-8")
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    for name, text in (policies or {}).items():
        (root / "policies" / name).write_text(text, encoding="utf-8")


def problems_of(files: dict[str, str], policies: dict[str, str] | None = None) -> list[str]:
    write_inventory(files, policies)
    try:
        loaded = load_inventory(ROOT)
        build_desired(loaded, loaded.settings.targets)
    except InputError as exc:
        return [str(p) for p in exc.problems]
    return []


def desired_of(files: dict[str, str], policies: dict[str, str] | None = None) -> DesiredTarget:
    found = problems_of(files, policies)
    assert found == [], "\n".join(found)
    loaded = load_inventory(ROOT)
    (target,) = build_desired(loaded, loaded.settings.targets)
    return target


MR = "multi_region: true"

SPEC_CASES = [
    pytest.param(
        key("replicas:", "  - region: eu-west-1"),
        [(f"{F}:3: keys[0].replicas: ", "only multi-Region keys have replicas")],
        id="replicas-without-multi-region",
    ),
    pytest.param(
        key("multi_region: false", "replicas:", "  - region: eu-west-1"),
        [(f"{F}:4: keys[0].replicas: ", "set multi_region: true")],
        id="replicas-with-multi-region-false",
    ),
    pytest.param(
        key("primary_region: eu-west-1"),
        [(f"{F}:3: keys[0].primary_region: ", "only multi-Region keys have replicas")],
        id="primary-region-without-multi-region",
    ),
    pytest.param(
        key(
            MR,
            "replicas:",
            "  - region: eu-west-1",
            "  - region: ap-southeast-2",
            "  - region: eu-west-1",
        ),
        [
            (
                f"{F}:7: keys[0].replicas[2].region: ",
                "eu-west-1 is already listed as replicas[0]; KMS allows one replica",
            )
        ],
        id="duplicate-replica-region",
    ),
    pytest.param(
        key(MR, "replicas:", "  - region: eu-west-1", "  - region: us-east-1"),
        [(f"{F}:6: keys[0].replicas[1].region: ", "us-east-1 is the target's own Region")],
        id="replica-in-the-targets-region",
    ),
    pytest.param(
        key(MR, "replicas:", "  - region: cn-north-1"),
        [
            (
                f"{F}:5: keys[0].replicas[0].region: ",
                "cn-north-1 is in partition aws-cn, the target's Region us-east-1 in aws",
            )
        ],
        id="replica-in-another-partition",
    ),
    pytest.param(
        key(MR, "replicas:", "  - region: us-gov-west-1"),
        [(f"{F}:5: keys[0].replicas[0].region: ", "partition aws-us-gov")],
        id="replica-in-govcloud",
    ),
    pytest.param(
        key(MR, "primary_region: ap-south-1", "replicas:", "  - region: eu-west-1"),
        [
            (
                f"{F}:4: keys[0].primary_region: ",
                "ap-south-1 is neither the target's Region (us-east-1) nor a replica's (eu-west-1)",
            )
        ],
        id="primary-region-not-in-the-family",
    ),
    pytest.param(
        key(MR, "primary_region: eu-west-1"),
        [(f"{F}:4: keys[0].primary_region: ", "nor a replica's (none declared)")],
        id="primary-region-without-replicas",
    ),
    pytest.param(
        key(MR, "replicas:", "  - region: eu-west"),
        [(f"{F}:5: keys[0].replicas[0].region: ", "'eu-west' is not an AWS Region name")],
        id="bad-replica-region-name",
    ),
    pytest.param(
        key(MR, "primary_region: Europe"),
        [(f"{F}:4: keys[0].primary_region: ", "'Europe' is not an AWS Region name")],
        id="bad-primary-region-name",
    ),
    pytest.param(
        key(MR, "replicas:", "  - region: eu-west-1", "    grants: []"),
        [(f"{F}:6: keys[0].replicas[0].grants: ", "unknown field (key 'app')")],
        id="grants-on-a-replica",
    ),
    pytest.param(
        key(MR, "replicas:", "  - region: eu-west-1", "    rotation: {enabled: true}"),
        [(f"{F}:6: keys[0].replicas[0].rotation: ", "unknown field")],
        id="rotation-on-a-replica",
    ),
    pytest.param(
        key(MR, "replicas:", "  - description: no region"),
        [(f"{F}:5: keys[0].replicas[0].region: ", "is required")],
        id="replica-without-region",
    ),
    pytest.param(
        key(MR, "replicas:", "  - region: eu-west-1", "    aliases: [alias/x, alias/y, alias/x]"),
        [(f"{F}:6: keys[0].replicas[0].aliases[2]: ", "alias/x is already listed as aliases[0]")],
        id="duplicate-alias-in-a-replica",
    ),
    pytest.param(
        key(MR, "replicas:", "  - region: eu-west-1", "    enabled: 'no'"),
        [(f"{F}:6: keys[0].replicas[0].enabled: ", "must be true or false")],
        id="replica-enabled-not-a-bool",
    ),
]


@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize(("text", "expected"), SPEC_CASES)
def test_spec_problems_name_file_line_and_field(text: str, expected: list[tuple[str, str]]) -> None:
    found = problems_of({"app.yaml": text})
    assert len(found) == len(expected), "\n".join(found)
    for line, (prefix, fragment) in zip(found, expected, strict=True):
        assert line.startswith(prefix), f"{line!r} does not start with {prefix!r}"
        assert fragment in line, f"{fragment!r} not in {line!r}"
        assert "\n" not in line


@pytest.mark.usefixtures("in_tmp")
def test_replica_alias_declared_by_two_keys_in_one_region_is_refused() -> None:
    text = (
        "keys:\n"
        "  - name: a\n"  # 2
        "    multi_region: true\n"
        "    aliases: [alias/a]\n"
        "    replicas:\n"
        "      - region: eu-west-1\n"  # 6: inherits alias/a there
        "      - region: ap-southeast-2\n"
        "        aliases: [alias/x]\n"  # 8
        "  - name: b\n"  # 9
        "    multi_region: true\n"
        "    aliases: [alias/x]\n"  # 11: inherited by b's replica in ap-southeast-2
        "    replicas:\n"
        "      - region: eu-west-1\n"
        "        aliases: [alias/b, alias/a]\n"  # 14: alias/a is a's in eu-west-1
        "      - region: ap-southeast-2\n"
    )
    found = problems_of({"app.yaml": text})
    assert sorted(found) == sorted(
        [
            f"{F}:14: keys[1].replicas[0].aliases[1]: alias/a in eu-west-1 is already declared "
            f"by key 'a' ({F}:2) in target 'prod' (key 'b')",
            f"{F}:11: keys[1].aliases[0]: alias/x in ap-southeast-2 is already declared "
            f"by key 'a' ({F}:2) in target 'prod' (key 'b')",
        ]
    )


@pytest.mark.usefixtures("in_tmp")
def test_same_alias_in_different_regions_or_at_home_is_no_clash() -> None:
    """alias/a at home (us-east-1) and alias/a on b's replica in eu-west-1 name different
    keys in different Regions; a's replica is in ap-southeast-2 only."""
    text = (
        "keys:\n"
        "  - name: a\n"
        "    multi_region: true\n"
        "    aliases: [alias/a]\n"
        "    replicas: [{region: ap-southeast-2}]\n"
        "  - name: b\n"
        "    multi_region: true\n"
        "    replicas: [{region: eu-west-1, aliases: [alias/a]}]\n"
    )
    assert problems_of({"app.yaml": text}) == []


@pytest.mark.usefixtures("in_tmp")
def test_validate_prints_replica_problems_one_line_each_and_exits_1() -> None:
    write_inventory(
        {
            "app.yaml": key(
                MR,
                "primary_region: ap-south-1",
                "replicas:",
                "  - region: us-east-1",
                "  - region: cn-north-1",
            )
        }
    )
    result = CliRunner().invoke(main, ["validate", ROOT])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert all(line.startswith(f"error: {F}:") for line in lines)
    assert {line.split(": ")[2] for line in lines} == {
        "keys[0].replicas[0].region",
        "keys[0].replicas[1].region",
        "keys[0].primary_region",
    }


ROOT_TEMPLATE_HOME_ONLY = """\
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "Root",
      "Effect": "Allow",
{% if region == "us-east-1" %}
      "Principal": {"AWS": "arn:aws:iam::{{ account_id }}:root"},
{% endif %}
      "Action": "kms:*",
      "Resource": "*"
    }
  ]
}
"""


@pytest.mark.usefixtures("in_tmp")
def test_policy_problems_of_replicas_point_at_the_policy_that_made_them() -> None:
    """The key's template renders a bad policy only for eu-west-1: blamed on the key's
    policy, naming the replica; a replica's own missing template: blamed on the replica."""
    text = key(
        MR,
        "policy: {template: t.json.j2}",
        "replicas:",
        "  - region: eu-west-1",
        "  - region: ap-southeast-2",
        "    policy:",
        "      template: missing.json.j2",
    )
    found = problems_of({"app.yaml": text}, {"t.json.j2": ROOT_TEMPLATE_HOME_ONLY})
    assert found == [
        f"{F}:4: keys[0].policy: Statement[0] (Sid 'Root'): missing Principal (from "
        "keyspecs/policies/t.json.j2) (replica eu-west-1) (key 'app')",
        f"{F}:9: keys[0].replicas[1].policy.template: policy template 'missing.json.j2' not "
        "found in keyspecs/policies (key 'app')",
    ]


@pytest.mark.usefixtures("in_tmp")
def test_replica_tags_count_after_merging_the_keys() -> None:
    key_tags = ", ".join(f"K{i}: v" for i in range(48))
    text = key(
        MR,
        f"tags: {{{key_tags}}}",
        "replicas:",
        "  - region: eu-west-1",
        "    tags: {R1: v, R2: v}",
        "  - region: ap-southeast-2",
        "    tags: {R1: v, R2: v, R3: v}",
    )
    found = problems_of({"app.yaml": text})
    assert len(found) == 1, found
    assert found[0].startswith(f"{F}:9: keys[0].replicas[1].tags: after merging the key's tags")
    assert "51 tags" in found[0]


@pytest.mark.usefixtures("in_tmp")
def test_identity_tag_in_a_replicas_tags_is_refused() -> None:
    text = key(
        MR,
        "replicas:",
        "  - region: eu-west-1",
        '    tags: {"kms-reconciler:name": app}',
    )
    found = problems_of({"app.yaml": text})
    assert any(
        "keys[0].replicas[0].tags" in line and "kms-reconciler:name" in line for line in found
    ), found


@pytest.mark.usefixtures("in_tmp")
def test_empty_primary_region_is_not_a_region_name() -> None:
    found = problems_of({"app.yaml": key(MR, 'primary_region: ""')})
    assert [line for line in found if "keys[0].primary_region: " in line], found


# -- desired replicas -------------------------------------------------------------------

MR_TEMPLATE = """\
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "Root",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:{{ partition }}:iam::{{ account_id }}:root"},
      "Action": "kms:*",
      "Resource": "*"
    },
    {
      "Sid": "UseViaS3",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::{{ account_id }}:role/App"},
      "Action": "kms:Decrypt",
      "Resource": "*",
      "Condition": {"StringEquals": {"kms:ViaService": "s3.{{ region }}.amazonaws.com"}}
    }
  ]
}
"""

REPLICA_TEMPLATE = """\
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "Root",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::{{ account_id }}:root"},
      "Action": "kms:*",
      "Resource": "*",
      "Condition": {
        "StringEquals": {
          "aws:RequestedRegion": "{{ region }}",
          "kms:CallerAccount": "{{ key.primary_region }}-{{ key.regions | join('+') }}"
        }
      }
    }
  ]
}
"""

MR_KEY = key(
    "description: app key",
    MR,
    "enabled: false",
    "aliases: [alias/app]",
    "tags: {Owner: team, Tier: gold}",
    "rotation: {enabled: true, period_days: 180}",
    "policy: {template: mr.json.j2}",
    "grants:",
    "  - name: app-use",
    '    grantee_principal: "arn:aws:iam::111122223333:role/App"',
    "    operations: [Decrypt]",
    "replicas:",
    "  - region: eu-west-1",
    "  - region: ap-southeast-2",
    "    description: sydney copy",
    "    enabled: true",
    "    tags: {Tier: silver, Site: syd}",
    "    aliases: [alias/app-syd]",
    "    policy: {template: replica.json.j2}",
)


def _statement(doc: Any, sid: str) -> dict[str, Any]:
    return next(s for s in doc["Statement"] if s.get("Sid") == sid)


@pytest.mark.usefixtures("in_tmp")
def test_replica_left_out_fields_come_from_the_key_and_policy_is_rendered_per_region() -> None:
    target = desired_of(
        {"app.yaml": MR_KEY}, {"mr.json.j2": MR_TEMPLATE, "replica.json.j2": REPLICA_TEMPLATE}
    )
    (dk,) = target.keys
    assert dk.primary_region == HOME
    assert target.replica_regions == (AP, EU)
    eu, ap = dk.replicas
    assert (eu.region, ap.region) == (EU, AP)
    # eu-west-1 declares only its Region: everything is the key's own ...
    assert eu.state.description == "app key"
    assert eu.state.enabled is False
    assert eu.state.aliases == frozenset({"alias/app"})
    assert eu.state.tags == {"Owner": "team", "Tier": "gold"}
    assert eu.state.multi_region is True
    # ... except the policy's `region`, which is the replica's
    home_via = _statement(dk.state.policy, "UseViaS3")["Condition"]["StringEquals"]
    eu_via = _statement(eu.state.policy, "UseViaS3")["Condition"]["StringEquals"]
    assert home_via == {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    assert eu_via == {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    assert "s3.eu-west-1.amazonaws.com" in eu.policy_text
    assert "us-east-1" not in eu.policy_text
    assert json.loads(eu.policy_text) == eu.state.policy
    # ap-southeast-2 sets its own: tags merge key by key, the rest replaces
    assert ap.state.description == "sydney copy"
    assert ap.state.enabled is True
    assert ap.state.aliases == frozenset({"alias/app-syd"})
    assert ap.state.tags == {"Owner": "team", "Tier": "silver", "Site": "syd"}
    condition = _statement(ap.state.policy, "Root")["Condition"]["StringEquals"]
    assert condition == {
        "aws:RequestedRegion": AP,
        "kms:CallerAccount": "us-east-1-us-east-1+eu-west-1+ap-southeast-2",
    }
    assert "replica.json.j2" in ap.policy_origin
    # what KMS shares with the primary (rotation) or replicas do not manage (grants)
    assert dk.state.rotation_enabled is True and dk.state.rotation_period_days == 180
    assert dk.state.grants and dk.state.grants[0].name == "app-use"
    for rep in (eu, ap):
        assert rep.state.rotation_enabled is None
        assert rep.state.rotation_period_days is None
        assert rep.state.grants is None


@pytest.mark.usefixtures("in_tmp")
def test_primary_region_is_set_for_multi_region_keys_only() -> None:
    target = desired_of(
        {
            "app.yaml": key(MR, "primary_region: eu-west-1", "replicas: [{region: eu-west-1}]")
            + "  - name: plain\n"
        }
    )
    mr, plain = target.keys
    assert mr.primary_region == EU
    assert plain.primary_region is None and plain.replicas == ()


@pytest.mark.usefixtures("in_tmp")
def test_replica_without_any_policy_gets_the_default_policy_of_its_partition() -> None:
    target = desired_of({"app.yaml": key(MR, "replicas: [{region: eu-west-1}]")})
    (rep,) = target.keys[0].replicas
    assert rep.state.policy == ROOT_POLICY


@pytest.mark.usefixtures("in_tmp")
def test_replica_tag_null_leaves_a_key_tag_off_and_empty_aliases_mean_none() -> None:
    target = desired_of(
        {
            "app.yaml": key(
                MR,
                "aliases: [alias/app]",
                "tags: {Owner: team, Tier: gold}",
                "replicas:",
                "  - region: eu-west-1",
                "    tags: {Tier: null, Site: eu}",
                "    aliases: []",
            )
        }
    )
    (rep,) = target.keys[0].replicas
    assert rep.state.tags == {"Owner": "team", "Site": "eu"}
    assert rep.state.aliases == frozenset()
    assert target.keys[0].state.tags == {"Owner": "team", "Tier": "gold"}


# -- planner: create ----------------------------------------------------------------------


def test_create_family_creates_the_key_then_replicates_with_the_replicas_own_fields() -> None:
    eu = replica(EU, description="eu copy", tags={"Owner": "team", "Site": "eu"})
    plan = make_plan(desired(mr_key("app", eu)), observed())
    assert summary(plan) == [
        ("CreateKey", None),
        ("ReplicateKey", None),
        ("EnableKeyRotation", None),
        ("CreateAlias", None),
        ("CreateAlias", EU),
    ]
    create, replicate = plan.operations[0], plan.operations[1]
    assert create.params["MultiRegion"] is True
    assert replicate.key == "app" and replicate.key_id is None
    assert replicate.params["ReplicaRegion"] == EU
    assert replicate.params["Description"] == "eu copy"
    assert replicate.params["Policy"] == eu.policy_text
    tags = {t["TagKey"]: t["TagValue"] for t in replicate.params["Tags"]}
    assert tags == {"Owner": "team", "Site": "eu", REPLICA: "app"}
    assert IDENTITY not in tags
    assert plan.operations[4].params == {"AliasName": "alias/app"}
    assert not any(op.destructive for op in plan.operations)
    key, rep = only_replica(plan)
    assert key.action is Action.CREATE and rep.action is Action.CREATE
    assert rep.region == EU and rep.key_id is None
    assert {c.field for c in rep.changes} >= {"region", "description", "enabled", "policy"}
    assert plan.regions_read == (EU,)
    assert_sorted_by_phase(plan)


def test_create_family_disables_a_replica_declared_disabled_in_its_region() -> None:
    plan = make_plan(desired(mr_key("app", replica(EU, enabled=False))), observed())
    disable = [op for op in plan.operations if op.kind is OpKind.DISABLE_KEY]
    assert [(op.region, op.destructive) for op in disable] == [(EU, False)]
    assert plan.operations[-1] is disable[0]


def test_create_family_with_primary_elsewhere_moves_it_after_replicating() -> None:
    plan = make_plan(
        desired(mr_key("app", replica(EU), replica(AP), primary_region=EU)), observed()
    )
    assert summary(plan) == [
        ("CreateKey", None),
        ("ReplicateKey", None),
        ("ReplicateKey", None),
        ("UpdatePrimaryRegion", None),
        ("EnableKeyRotation", EU),
        ("CreateAlias", None),
        ("CreateAlias", EU),
        ("CreateAlias", AP),
    ]
    move = next(op for op in plan.operations if op.kind is OpKind.UPDATE_PRIMARY_REGION)
    assert move.params == {"PrimaryRegion": EU}
    assert not move.destructive  # nothing uses a new key yet
    (key,) = plan.keys
    assert any(c.field == "primary_region" and c.after == EU for c in key.changes)
    assert not key.destructive
    assert_sorted_by_phase(plan)


def test_create_family_checks_the_replica_policy_for_lockout() -> None:
    locked = policy_with()
    locked["Statement"] = [USE_STATEMENT]
    with pytest.raises(PlanError) as err:
        make_plan(desired(mr_key("app", replica(EU, policy=locked))), observed())
    assert "of the replica in eu-west-1 would lock out" in str(err.value)


def test_create_replica_alias_held_by_an_unmanaged_key_in_its_region_is_a_conflict() -> None:
    seen = replace(observed(), region_aliases={EU: {"alias/app": "unmanaged-1"}})
    with pytest.raises(PlanError) as err:
        make_plan(desired(mr_key("app", replica(EU))), seen)
    assert "alias/app in eu-west-1 already points at key unmanaged-1" in str(err.value)
    plan = make_plan(desired(mr_key("app", replica(EU), allow_alias_takeover=True)), seen)
    update = [op for op in plan.operations if op.kind is OpKind.UPDATE_ALIAS]
    assert [(op.region, op.destructive) for op in update] == [(EU, True)]


# -- planner: existing family -------------------------------------------------------------


def test_family_matching_the_spec_is_a_no_op() -> None:
    seen = observed_family(family("app", member(EU), member(AP)))
    plan = make_plan(desired(mr_key("app", replica(EU), replica(AP))), seen)
    (key,) = plan.keys
    assert key.action is Action.NOOP and key.replicas == ()
    assert plan.operations == ()
    assert plan.warnings == ()
    assert plan.regions_read == (AP, EU)


REPLICA_DRIFT = [
    pytest.param(
        {},
        {"description": "hand edited"},
        [("UpdateKeyDescription", {"Description": "app key"}, False)],
        id="description",
    ),
    pytest.param(
        {},
        {"tags": {"Owner": "other", REPLICA: "app"}},
        [("TagResource", {"Tags": [{"TagKey": "Owner", "TagValue": "team"}]}, False)],
        id="tag-changed",
    ),
    pytest.param(
        {},
        {"tags": {"Owner": "team", REPLICA: "app", "Extra": "x"}},
        [("UntagResource", {"TagKeys": ["Extra"]}, False)],
        id="tag-added",
    ),
    pytest.param(
        {},
        {"tags": {"Owner": "team"}},
        [("TagResource", {"Tags": [{"TagKey": REPLICA, "TagValue": "app"}]}, False)],
        id="replica-tag-missing",
    ),
    pytest.param(
        {"policy": policy_with(USE_STATEMENT)},
        {},
        [("PutKeyPolicy", None, False)],
        id="policy-adds-access",
    ),
    pytest.param(
        {},
        {"policy": policy_with(USE_STATEMENT)},
        [("PutKeyPolicy", None, True)],
        id="policy-removes-access",
    ),
    pytest.param({}, {"key_state": "Disabled"}, [("EnableKey", {}, False)], id="disabled"),
    pytest.param({"enabled": False}, {}, [("DisableKey", {}, True)], id="declared-disabled"),
    pytest.param(
        {"aliases": frozenset({"alias/app", "alias/app-eu"})},
        {},
        [("CreateAlias", {"AliasName": "alias/app-eu"}, False)],
        id="alias-missing",
    ),
    pytest.param(
        {},
        {"aliases": frozenset({"alias/app", "alias/hand-made"})},
        [("DeleteAlias", {"AliasName": "alias/hand-made"}, True)],
        id="alias-added",
    ),
]


@pytest.mark.parametrize(("want", "have", "expected"), REPLICA_DRIFT)
def test_replica_drift_is_fixed_in_the_replicas_region(
    want: dict[str, Any], have: dict[str, Any], expected: list[tuple[str, Any, bool]]
) -> None:
    eu = replica(EU, **want)
    if "policy" in want:
        eu = replace(eu, policy_text=json.dumps(want["policy"]))
    seen = observed_family(family("app", member(EU, **have)))
    plan = make_plan(desired(mr_key("app", eu)), seen)
    got = [(op.kind.value, op.region, op.key_id, op.destructive) for op in plan.operations]
    assert got == [(kind, EU, MRK, destructive) for kind, _, destructive in expected]
    for op, (_, params, _) in zip(plan.operations, expected, strict=True):
        if params is not None:
            assert dict(op.params) == params
    if expected[0][0] == "PutKeyPolicy":
        assert plan.operations[0].params["Policy"] == eu.policy_text
    key, rep = only_replica(plan)
    assert key.action is Action.UPDATE and key.changes == ()
    assert rep.action is Action.UPDATE and rep.region == EU and rep.key_id == MRK
    assert rep.changes
    assert key.destructive is any(d for _, _, d in expected)


def test_home_key_drift_stays_in_the_targets_region() -> None:
    seen = observed_family(family("app", member(EU), description="hand edited"))
    plan = make_plan(desired(mr_key("app", replica(EU))), seen)
    assert summary(plan) == [("UpdateKeyDescription", None)]
    (key,) = plan.keys
    assert key.replicas == ()


def test_missing_replica_is_replicated_from_the_primary_in_the_targets_region() -> None:
    seen = observed_family(family("app", member(EU)))
    plan = make_plan(desired(mr_key("app", replica(EU), replica(AP))), seen)
    assert summary(plan) == [("ReplicateKey", None), ("CreateAlias", AP)]
    replicate = plan.operations[0]
    assert replicate.key_id == MRK and replicate.params["ReplicaRegion"] == AP
    (key,) = plan.keys
    assert key.action is Action.UPDATE
    assert [(r.region, r.action) for r in key.replicas] == [(AP, Action.CREATE)]


def test_missing_replica_is_replicated_from_the_primary_in_another_region() -> None:
    seen = observed_family(family("app", member(EU, primary=EU), primary=EU))
    plan = make_plan(desired(mr_key("app", replica(EU), replica(AP), primary_region=EU)), seen)
    replicate = [op for op in plan.operations if op.kind is OpKind.REPLICATE_KEY]
    assert [(op.region, op.params["ReplicaRegion"]) for op in replicate] == [(EU, AP)]
    assert not any(op.kind is OpKind.UPDATE_PRIMARY_REGION for op in plan.operations)


def test_member_listed_but_unreadable_is_left_alone_with_a_warning() -> None:
    home = replace(family("app"), member_regions=(HOME, EU))
    plan = make_plan(desired(mr_key("app", replica(EU))), observed_family(home))
    assert plan.operations == ()
    assert any("eu-west-1 exists but could not be read" in w for w in plan.warnings)


def test_undeclared_replica_is_scheduled_for_deletion_in_its_region() -> None:
    seen = observed_family(family("app", member(EU), member(AP)))
    plan = make_plan(
        desired(mr_key("app", replica(EU), deletion_window_days=7)),
        seen,
        PlanOptions(allow_destroy=True),
    )
    assert summary(plan) == [("ScheduleKeyDeletion", AP)]
    op = plan.operations[0]
    assert op.destructive and op.key_id == MRK and op.params == {"PendingWindowInDays": 7}
    key, rep = only_replica(plan)
    assert rep.action is Action.DELETE and rep.region == AP
    assert key.action is Action.UPDATE and key.destructive


def test_undeclared_replica_of_a_protected_key_is_a_plan_error() -> None:
    seen = observed_family(
        family("app", member(EU), member(AP), tags={"Owner": "team", PROTECTION: "true"})
    )
    with pytest.raises(PlanError) as err:
        make_plan(desired(mr_key("app", replica(EU), deletion_protection=True)), seen)
    (problem,) = err.value.problems
    assert problem.field == "replicas" and problem.key == "app"
    assert "replica in ap-southeast-2 is no longer declared" in problem.message


def test_undeclared_replica_pending_deletion_is_left_alone() -> None:
    seen = observed_family(
        family("app", member(EU), member(AP, key_state="PendingDeletion", enabled=False))
    )
    plan = make_plan(desired(mr_key("app", replica(EU))), seen)
    assert plan.operations == ()
    assert plan.keys[0].action is Action.NOOP


def test_primary_region_change_moves_the_primary_from_its_current_region() -> None:
    """The primary is in eu-west-1, the spec wants it home: the call goes to eu-west-1,
    before the rotation change, which goes to the new primary (home)."""
    seen = observed_family(
        family("app", member(EU, primary=EU), primary=EU, rotation_period_days=180)
    )
    plan = make_plan(desired(mr_key("app", replica(EU), primary_region=HOME)), seen)
    assert summary(plan) == [("UpdatePrimaryRegion", EU), ("EnableKeyRotation", None)]
    move = plan.operations[0]
    assert move.destructive and move.params == {"PrimaryRegion": HOME} and move.key_id == MRK
    (key,) = plan.keys
    change = next(c for c in key.changes if c.field == "primary_region")
    assert (change.before, change.after, change.destructive) == (EU, HOME, True)
    assert key.destructive


def test_primary_region_change_from_home_sends_rotation_to_the_new_primary() -> None:
    seen = observed_family(family("app", member(EU), rotation_period_days=180))
    plan = make_plan(desired(mr_key("app", replica(EU), primary_region=EU)), seen)
    assert summary(plan) == [("UpdatePrimaryRegion", None), ("EnableKeyRotation", EU)]
    assert plan.operations[0].destructive and plan.operations[0].params == {"PrimaryRegion": EU}
    assert_sorted_by_phase(plan)


def test_moving_the_primary_to_a_replica_declared_disabled_is_a_plan_error() -> None:
    seen = observed_family(family("app", member(EU)))
    with pytest.raises(PlanError) as err:
        make_plan(desired(mr_key("app", replica(EU, enabled=False), primary_region=EU)), seen)
    (problem,) = err.value.problems
    assert problem.field == "primary_region"
    assert "eu-west-1 is declared disabled" in problem.message


def test_moving_the_primary_away_from_a_key_declared_disabled_is_a_plan_error() -> None:
    seen = observed_family(family("app", member(EU)))
    with pytest.raises(PlanError, match="us-east-1 is declared disabled"):
        make_plan(desired(mr_key("app", replica(EU), primary_region=EU, enabled=False)), seen)


def test_replica_pending_deletion_is_recovered_in_its_region() -> None:
    gone = member(
        EU,
        key_state="PendingDeletion",
        enabled=False,
        deletion_date=datetime(2030, 1, 1, tzinfo=timezone.utc),
    )
    plan = make_plan(desired(mr_key("app", replica(EU))), observed_family(family("app", gone)))
    assert summary(plan) == [("CancelKeyDeletion", EU), ("EnableKey", EU)]
    key, rep = only_replica(plan)
    assert rep.action is Action.RECOVER and "pending deletion since 2030-01-01" in rep.reason
    assert key.action is Action.UPDATE


def test_alias_in_a_replica_region_on_an_unmanaged_key_is_a_conflict() -> None:
    home = family("app", member(EU, aliases=frozenset()))
    seen = observed_family(home, region_aliases={EU: {"alias/app": "unmanaged-1"}})
    with pytest.raises(PlanError) as err:
        make_plan(desired(mr_key("app", replica(EU))), seen)
    (problem,) = err.value.problems
    assert problem.field == "aliases"
    assert "alias/app in eu-west-1 already points at key unmanaged-1" in problem.message
    plan = make_plan(desired(mr_key("app", replica(EU), allow_alias_takeover=True)), seen)
    assert [(op.kind, op.region, op.destructive) for op in plan.operations] == [
        (OpKind.UPDATE_ALIAS, EU, True)
    ]


def test_alias_in_a_replica_region_moves_between_managed_replicas() -> None:
    """alias/app in eu-west-1 is on old's replica; app's replica declares it. It moves (not
    destructive, no takeover needed), and old's replica does not delete it."""
    old = family("old", member(EU, "old", OTHER_MRK), key_id=OTHER_MRK)
    app = family("app", member(EU, aliases=frozenset()))
    seen = observed_family(
        old, app, region_aliases={EU: {"alias/old": OTHER_MRK, "alias/app": OTHER_MRK}}
    )
    plan = make_plan(desired(mr_key("old", replica(EU, "old")), mr_key("app", replica(EU))), seen)
    assert [(op.kind, op.key, op.region, op.destructive) for op in plan.operations] == [
        (OpKind.UPDATE_ALIAS, "app", EU, False)
    ]


def test_undeclared_current_primary_is_deleted_after_the_primary_moves_home() -> None:
    seen = observed_family(family("app", member(EU, primary=EU), primary=EU))
    plan = make_plan(desired(mr_key("app")), seen, PlanOptions(allow_destroy=True))
    assert summary(plan) == [("UpdatePrimaryRegion", EU), ("ScheduleKeyDeletion", EU)]
    assert plan.operations[0].params == {"PrimaryRegion": HOME}


def test_primary_moves_to_a_new_replica_once_it_is_replicated() -> None:
    seen = observed_family(family("app", member(EU)))
    plan = make_plan(desired(mr_key("app", replica(EU), replica(AP), primary_region=AP)), seen)
    assert summary(plan) == [
        ("ReplicateKey", None),
        ("UpdatePrimaryRegion", None),
        ("CreateAlias", AP),
    ]
    assert plan.operations[1].params == {"PrimaryRegion": AP}


def test_rotation_is_not_sent_to_a_primary_that_stays_disabled() -> None:
    seen = observed_family(
        family(
            "app",
            member(EU, primary=EU, key_state="Disabled", enabled=False),
            primary=EU,
            rotation_period_days=180,
        )
    )
    plan = make_plan(desired(mr_key("app", replica(EU, enabled=False), primary_region=EU)), seen)
    assert not any(op.kind is OpKind.ENABLE_KEY_ROTATION for op in plan.operations)
    assert any("disabled" in w for w in plan.warnings)


def test_rotation_goes_to_an_enabled_primary_although_the_home_replica_is_disabled() -> None:
    seen = observed_family(
        family(
            "app",
            member(EU, primary=EU),
            primary=EU,
            key_state="Disabled",
            rotation_period_days=180,
        )
    )
    plan = make_plan(desired(mr_key("app", replica(EU), primary_region=EU, enabled=False)), seen)
    assert summary(plan) == [("EnableKeyRotation", EU)]


# -- planner: orphaned families -------------------------------------------------------------


def test_orphaned_family_is_deleted_replicas_first_with_allow_destroy() -> None:
    seen = observed_family(
        family(
            "gone",
            member(EU, "gone"),
            member(AP, "gone"),
            member("eu-central-1", "gone", key_state="PendingDeletion", enabled=False),
        )
    )
    plan = make_plan(desired(), seen, PlanOptions(allow_destroy=True))
    assert summary(plan) == [
        ("ScheduleKeyDeletion", AP),
        ("ScheduleKeyDeletion", EU),
        ("ScheduleKeyDeletion", None),
    ]
    assert all(op.destructive and op.key_id == MRK for op in plan.operations)
    (key,) = plan.keys
    assert key.action is Action.DELETE
    assert [(r.region, r.action) for r in key.replicas] == [
        (AP, Action.DELETE),
        (EU, Action.DELETE),
    ]


def test_orphaned_family_without_allow_destroy_is_only_reported() -> None:
    seen = observed_family(family("gone", member(EU, "gone")))
    plan = make_plan(desired(), seen)
    assert plan.operations == () and plan.keys == ()
    assert [(o.name, o.key_id) for o in plan.orphans] == [("gone", MRK)]


# -- saved plans and fingerprints -----------------------------------------------------------


def _family_plan() -> TargetPlan:
    """One create with a replica, one update of a replica, one replica deletion."""
    seen = observed_family(
        family("app", member(EU, description="hand edited"), member(AP)),
        family("new-home", key_id=OTHER_MRK),  # a stray key: deleted as an orphan
    )
    return make_plan(
        desired(mr_key("app", replica(EU)), mr_key("fresh", replica(EU, "fresh"))),
        seen,
        PlanOptions(allow_destroy=True),
    )


def test_plan_json_round_trip_keeps_replicas_and_regions() -> None:
    tp = _family_plan()
    plan = Plan((tp,), allow_destroy=True, identity_tag=IDENTITY)
    data = json.loads(json.dumps(to_dict(plan), default=str))
    assert data["summary"]["replicas"] == {"create": 1, "update": 1, "delete": 1}
    assert data["targets"][0]["regions_read"] == [EU]
    loaded = from_dict(data).targets[0]
    assert loaded.regions_read == tp.regions_read == (EU,)
    assert [(op.kind, op.key, op.region, op.destructive) for op in loaded.operations] == [
        (op.kind, op.key, op.region, op.destructive) for op in tp.operations
    ]
    assert {op.region for op in loaded.operations} == {None, EU, AP}
    assert [dict(op.params) for op in loaded.operations] == [
        json.loads(json.dumps(dict(op.params))) for op in tp.operations
    ]

    def shape(keys: Any) -> list[Any]:
        return [
            (
                k.name,
                k.action,
                k.key_id,
                k.region,
                [(r.region, r.action, r.key_id) for r in k.replicas],
            )
            for k in keys
        ]

    assert shape(loaded.keys) == shape(tp.keys)
    assert any(k.replicas for k in loaded.keys)
    app = next(k for k in loaded.keys if k.name == "app")
    assert {r.region: [c.field for c in r.changes] for r in app.replicas} == {
        EU: ["description"],
        AP: ["key_state"],
    }
    assert from_dict(to_dict(from_dict(data))) == from_dict(data)


def test_fingerprint_covers_replicas_and_region_aliases() -> None:
    base = observed_family(family("app", member(EU)))
    same = observed_family(family("app", member(EU)))
    policy = observed_family(family("app", member(EU, policy=policy_with(PUBLIC))))
    alias = replace(base, region_aliases={EU: {"alias/app": MRK, "alias/new": MRK}})
    tags = observed_family(family("app", member(EU, tags={"Owner": "x", REPLICA: "app"})))
    prints = [fingerprint(o, IDENTITY) for o in (base, same, policy, alias, tags)]
    assert prints[0] == prints[1]
    assert len(set(prints[1:])) == 4


def test_saved_plan_fingerprint_changes_when_a_replica_changes() -> None:
    d = desired(mr_key("app", replica(EU)))
    before = make_plan(d, observed_family(family("app", member(EU))))
    after = make_plan(
        d, observed_family(family("app", member(EU, policy=policy_with(USE_STATEMENT))))
    )
    assert before.fingerprint != after.fingerprint


# -- drift ------------------------------------------------------------------------------------


def _drift(d: DesiredTarget, o: ObservedTarget) -> list[Any]:
    return list(detect(d, o, now=datetime(2025, 1, 1, tzinfo=timezone.utc)).findings)


@pytest.mark.parametrize(
    ("have", "rule"),
    [
        ({"description": "hand edited"}, "description-changed"),
        ({"tags": {"Owner": "other", REPLICA: "app"}}, "tag-changed"),
        ({"policy": policy_with(PUBLIC)}, "policy-widened"),
        ({"key_state": "Disabled"}, "key-disabled"),
        ({"aliases": frozenset({"alias/app", "alias/extra"})}, "alias-added"),
    ],
)
def test_replica_field_drift_names_the_replica_and_its_region(
    have: dict[str, Any], rule: str
) -> None:
    seen = observed_family(family("app", member(EU, **have)))
    (finding,) = _drift(desired(mr_key("app", replica(EU))), seen)
    assert finding.rule == rule
    assert finding.region == EU and finding.key == "app" and finding.key_id == MRK
    assert "key 'app' (replica in eu-west-1)" in finding.message
    assert finding.file == "keyspecs/app.yaml"


def test_home_key_drift_of_a_family_has_no_region() -> None:
    seen = observed_family(family("app", member(EU), description="hand edited"))
    (finding,) = _drift(desired(mr_key("app", replica(EU))), seen)
    assert finding.rule == "description-changed" and finding.region is None
    assert "replica in" not in finding.message


def test_missing_declared_replica_is_high_drift() -> None:
    seen = observed_family(family("app", member(EU)))
    (finding,) = _drift(desired(mr_key("app", replica(EU), replica(AP))), seen)
    assert finding.rule == "replica-missing" and finding.severity is Severity.HIGH
    assert finding.region == AP
    assert "replica in ap-southeast-2 does not exist" in finding.message


def test_undeclared_replica_is_drift() -> None:
    seen = observed_family(family("app", member(EU), member(AP)))
    (finding,) = _drift(desired(mr_key("app", replica(EU))), seen)
    assert finding.rule == "replica-undeclared" and finding.severity is Severity.MEDIUM
    assert finding.region == AP and finding.key_id == MRK
    assert "replica in ap-southeast-2" in finding.message


def test_undeclared_replica_that_allows_more_than_its_primary_is_high_drift() -> None:
    # The members share key material: an account the AP member lets decrypt can read
    # what was encrypted in any Region.
    seen = observed_family(family("app", member(EU), member(AP, policy=policy_with(PUBLIC))))
    findings = {f.rule: f for f in _drift(desired(mr_key("app", replica(EU))), seen)}
    assert set(findings) == {"replica-undeclared", "replica-policy-wider"}
    wider = findings["replica-policy-wider"]
    assert wider.severity is Severity.HIGH and wider.region == AP and wider.key_id == MRK
    assert wider.message.startswith(
        f"key 'app': the replica in {AP} ({MRK}) allows more than the primary: "
        "AWS:arn:aws:iam::999999999999:root may call kms:Decrypt in ap-southeast-2, not in "
        "us-east-1"
    )
    assert any(line.startswith("newly allowed:") for line in wider.details)


def test_undeclared_replica_that_allows_less_is_medium_drift() -> None:
    seen = observed_family(family("app", member(EU), member(AP), policy=policy_with(USE_STATEMENT)))
    wanted = mr_key("app", replica(EU, policy=policy_with(USE_STATEMENT)))
    wanted = replace(wanted, state=replace(wanted.state, policy=policy_with(USE_STATEMENT)))
    findings = {f.rule: f for f in _drift(desired(wanted), seen)}
    assert findings["replica-policy-narrower"].severity is Severity.MEDIUM
    assert "role/App may call kms:Decrypt, kms:Encrypt in us-east-1, not in ap-southeast-2" in (
        findings["replica-policy-narrower"].message
    )


def test_undeclared_replica_rendered_for_its_region_is_no_divergence() -> None:
    def via(region: str) -> dict[str, Any]:
        return {
            **USE_STATEMENT,
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
        }

    seen = observed_family(
        family(
            "app",
            member(EU),
            member(AP, policy=policy_with(via(AP))),
            policy=policy_with(via(HOME)),
        )
    )
    wanted = mr_key("app", replica(EU))
    wanted = replace(wanted, state=replace(wanted.state, policy=policy_with(via(HOME))))
    rules = {f.rule for f in _drift(desired(wanted), seen)}
    assert "replica-undeclared" in rules
    assert not rules & {"replica-policy-wider", "replica-policy-narrower"}


def test_declared_replica_drift_is_reported_once_against_its_declaration() -> None:
    # A declared member that differs from the primary differs from its declaration too
    # (or its declaration differs from the primary's: review's KMS113): one finding.
    seen = observed_family(family("app", member(EU, policy=policy_with(PUBLIC))))
    (finding,) = _drift(desired(mr_key("app", replica(EU))), seen)
    assert finding.rule == "policy-widened"


def test_moved_primary_is_drift() -> None:
    seen = observed_family(family("app", member(EU, primary=EU), primary=EU))
    (finding,) = _drift(desired(mr_key("app", replica(EU))), seen)
    assert finding.rule == "primary-region-changed"
    assert (finding.before, finding.after) == (EU, HOME)
    assert finding.region is None
    assert "primary key is in eu-west-1, the inventory says us-east-1" in finding.message


def test_replica_pending_deletion_is_drift_of_the_replica() -> None:
    gone = member(EU, key_state="PendingDeletion", enabled=False)
    (finding,) = _drift(desired(mr_key("app", replica(EU))), observed_family(family("app", gone)))
    assert finding.rule == "key-pending-deletion" and finding.region == EU
    assert "(replica in eu-west-1)" in finding.message


def test_alias_conflict_in_a_replica_region_is_drift_not_an_error() -> None:
    home = family("app", member(EU, aliases=frozenset()))
    seen = observed_family(home, region_aliases={EU: {"alias/app": "unmanaged-1"}})
    (finding,) = _drift(desired(mr_key("app", replica(EU))), seen)
    assert finding.rule == "alias-retargeted" and finding.region == EU
    assert "key 'app' (replica in eu-west-1): alias alias/app" in finding.message
    assert "unmanaged-1" in finding.message


def test_key_with_only_the_replica_tag_is_not_an_unmanaged_key() -> None:
    """A replica (in this target's Region) of another target's multi-Region key."""
    theirs = observed_key(
        None, "mrk-0000other", tags={REPLICA: "payments"}, multi_region=True, region=None
    )
    stranger = observed_key(None, "1234abcd-stranger", tags={"Owner": "nobody"})
    findings = _drift(desired(), observed(theirs, stranger))
    assert [(f.rule, f.key_id) for f in findings] == [("unmanaged-key", "1234abcd-stranger")]


def test_family_matching_the_spec_has_no_drift() -> None:
    seen = observed_family(family("app", member(EU), member(AP)))
    assert _drift(desired(mr_key("app", replica(EU), replica(AP))), seen) == []


# -- text formatter -----------------------------------------------------------------------------


def test_text_plan_shows_replicas_under_their_key_and_counts_them() -> None:
    tp = make_plan(
        desired(mr_key("app", replica(EU)), desired_key("plain")),
        observed(),
    )
    plan = Plan((tp,))
    text = plan_text(plan)
    lines = text.splitlines()
    app = lines.index('  + key "app" will be created  # keyspecs/app.yaml:1')
    plain = lines.index('  + key "plain" will be created  # keyspecs/app.yaml:1')
    rep = lines.index("    + replica in eu-west-1 will be created")
    assert app < rep < plain
    assert not any("+ region" in line for line in lines)
    assert "CreateAlias           app: create alias/app in eu-west-1" in text
    assert summary_line(plan) == (
        "Plan: 2 to create, 0 to update, 0 to delete; "
        "multi-Region replicas: 1 to create, 0 to update, 0 to delete."
    )
    assert lines[-1] == summary_line(plan)


def test_text_plan_of_replica_changes_only() -> None:
    seen = observed_family(family("app", member(EU, description="old"), member(AP)))
    tp = make_plan(
        desired(mr_key("app", replica(EU), replica("eu-central-1"))),
        seen,
        PlanOptions(allow_destroy=True),
    )
    plan = Plan((tp,))
    lines = plan_text(plan).splitlines()
    head = lines.index(
        f'  ~ key "app" ({MRK}) will be updated in place [destructive]  # keyspecs/app.yaml:1'
    )
    eu = lines.index("    ~ replica in eu-west-1 will be updated in place")
    assert lines[eu + 1] == '        ~ description = "old" -> "app key"'
    ap = lines.index("    - replica in ap-southeast-2 will be scheduled for deletion [destructive]")
    new = lines.index("    + replica in eu-central-1 will be created")
    assert head < eu < new < ap
    # the Region of each call: in its summary, or in brackets when the summary does not say
    assert any(
        line.endswith("ReplicateKey          app: replicate into eu-central-1") for line in lines
    )
    assert any("UpdateKeyDescription  app: update description in eu-west-1" in x for x in lines)
    assert summary_line(plan) == (
        "Plan: 0 to create, 1 to update, 0 to delete; "
        "multi-Region replicas: 1 to create, 1 to update, 1 to delete."
    )


def test_text_plan_names_the_region_a_replicate_call_goes_to() -> None:
    seen = observed_family(family("app", member(EU, primary=EU), primary=EU))
    tp = make_plan(desired(mr_key("app", replica(EU), replica(AP), primary_region=EU)), seen)
    text = plan_text(Plan((tp,)))
    assert "ReplicateKey          app [eu-west-1]: replicate into ap-southeast-2" in text


def test_summary_line_without_replicas_has_no_replica_part() -> None:
    plan = Plan((make_plan(desired(desired_key("plain")), observed()),))
    assert summary_line(plan) == "Plan: 1 to create, 0 to update, 0 to delete."
