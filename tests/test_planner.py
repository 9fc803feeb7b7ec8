"""The planner is a pure function: tables of (desired, observed) -> expected plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from reconciler import applier, formatters
from reconciler.errors import PlanError
from reconciler.plan import PHASES, Action, OpKind, TargetPlan
from reconciler.planner import PlanOptions, make_plan
from reconciler.state import fingerprint
from tests.factories import (
    ACCOUNT,
    CALLER,
    IDENTITY,
    PROTECTION,
    ROOT_POLICY,
    USE_STATEMENT,
    desired,
    desired_key,
    observed,
    observed_key,
    policy_with,
)


def ops(plan: TargetPlan) -> list[tuple[str, str]]:
    return [(op.kind.value, op.key) for op in plan.operations]


def kinds(plan: TargetPlan) -> list[str]:
    return [op.kind.value for op in plan.operations]


# -- create and no-op ---------------------------------------------------------------------


def test_missing_key_is_created_with_identity_tag_explicit_spec_and_ordered_calls() -> None:
    plan = make_plan(desired(desired_key("app")), observed())
    (key,) = plan.keys
    assert key.action is Action.CREATE and key.key_id is None
    assert ops(plan) == [
        ("CreateKey", "app"),
        ("EnableKeyRotation", "app"),
        ("CreateAlias", "app"),
    ]
    create = plan.operations[0].params
    assert create["KeySpec"] == "SYMMETRIC_DEFAULT" and create["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert {"TagKey": IDENTITY, "TagValue": "app"} in create["Tags"]
    assert {"TagKey": "Owner", "TagValue": "team"} in create["Tags"]
    assert '"kms:*"' in create["Policy"]
    assert "BypassPolicyLockoutSafetyCheck" not in create
    assert plan.operations[1].params == {"RotationPeriodInDays": 365}
    assert plan.operations[2].params == {"AliasName": "alias/app"}


def test_created_disabled_key_is_disabled_last_and_protection_is_a_tag() -> None:
    plan = make_plan(
        desired(desired_key("app", enabled=False, deletion_protection=True)), observed()
    )
    assert kinds(plan)[-1] == "DisableKey"
    assert not plan.operations[-1].destructive  # a new key has no users yet
    tags = plan.operations[0].params["Tags"]
    assert {"TagKey": PROTECTION, "TagValue": "true"} in tags


def test_matching_key_is_a_no_op_kept_in_the_plan() -> None:
    plan = make_plan(desired(desired_key("app")), observed(observed_key("app")))
    assert [k.action for k in plan.keys] == [Action.NOOP]
    assert plan.operations == () and not plan.has_changes


# -- updates, one field at a time ---------------------------------------------------------


@dataclass(frozen=True)
class UpdateCase:
    desired: dict[str, Any] = field(default_factory=dict)
    observed: dict[str, Any] = field(default_factory=dict)
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    change: tuple[str, Any, Any] | None = None
    destructive: bool = False


UPDATES = {
    "description": UpdateCase(
        desired={"description": "new"},
        calls=(("UpdateKeyDescription", {"Description": "new"}),),
        change=("description", "app key", "new"),
    ),
    "disable-is-destructive": UpdateCase(
        desired={"enabled": False},
        calls=(("DisableKey", {}),),
        change=("enabled", True, False),
        destructive=True,
    ),
    "enable": UpdateCase(
        observed={"key_state": "Disabled"},
        calls=(("EnableKey", {}),),
        change=("enabled", False, True),
    ),
    "rotation-off": UpdateCase(
        desired={"rotation_enabled": False, "rotation_period_days": None},
        calls=(("DisableKeyRotation", {}),),
        change=("rotation", "every 365 days", "disabled"),
    ),
    "rotation-on": UpdateCase(
        observed={"rotation_enabled": False, "rotation_period_days": None},
        calls=(("EnableKeyRotation", {"RotationPeriodInDays": 365}),),
        change=("rotation", "disabled", "every 365 days"),
    ),
    "rotation-period": UpdateCase(
        desired={"rotation_period_days": 180},
        calls=(("EnableKeyRotation", {"RotationPeriodInDays": 180}),),
        change=("rotation", "every 365 days", "every 180 days"),
    ),
    "rotation-period-unknown-is-no-change": UpdateCase(
        desired={"rotation_period_days": 180},
        observed={"rotation_period_days": None},
    ),
    "rotation-not-applicable": UpdateCase(
        desired={
            "key_spec": "RSA_2048",
            "key_usage": "SIGN_VERIFY",
            "rotation_enabled": None,
            "rotation_period_days": None,
        },
        observed={
            "key_spec": "RSA_2048",
            "key_usage": "SIGN_VERIFY",
            "rotation_enabled": None,
            "rotation_period_days": None,
        },
    ),
    "tag-added": UpdateCase(
        desired={"tags": {"Owner": "team", "Env": "prod"}},
        calls=(("TagResource", {"Tags": [{"TagKey": "Env", "TagValue": "prod"}]}),),
        change=("tags.Env", None, "prod"),
    ),
    "tag-changed": UpdateCase(
        desired={"tags": {"Owner": "other"}},
        calls=(("TagResource", {"Tags": [{"TagKey": "Owner", "TagValue": "other"}]}),),
        change=("tags.Owner", "team", "other"),
    ),
    "tag-removed": UpdateCase(
        desired={"tags": {}},
        calls=(("UntagResource", {"TagKeys": ["Owner"]}),),
        change=("tags.Owner", "team", None),
    ),
    "unknown-tag-added-out-of-band-is-removed": UpdateCase(
        observed={"tags": {"Owner": "team", "Hand": "made"}},
        calls=(("UntagResource", {"TagKeys": ["Hand"]}),),
        change=("tags.Hand", "made", None),
    ),
    "aws-tags-are-never-removed": UpdateCase(
        observed={"tags": {"Owner": "team", "aws:cloudformation:stack-name": "app"}},
    ),
    "protection-on": UpdateCase(
        desired={"deletion_protection": True},
        calls=(("TagResource", {"Tags": [{"TagKey": PROTECTION, "TagValue": "true"}]}),),
        change=("deletion_protection", False, True),
    ),
    "protection-off": UpdateCase(
        observed={"tags": {"Owner": "team", PROTECTION: "true"}},
        calls=(("UntagResource", {"TagKeys": [PROTECTION]}),),
        change=("deletion_protection", True, False),
    ),
    "policy-statement-added": UpdateCase(
        desired={"policy": policy_with(USE_STATEMENT)},
        calls=(("PutKeyPolicy", {"PolicyName": "default"}),),
        change=("policy", "current policy", "template application.json.j2"),
    ),
    "policy-statement-removed-is-destructive": UpdateCase(
        observed={"policy": policy_with(USE_STATEMENT)},
        calls=(("PutKeyPolicy", {"PolicyName": "default"}),),
        change=("policy", "current policy", "template application.json.j2"),
        destructive=True,
    ),
    # issue 9, defect 13: KMS shows the deleted role App by its unique ID, which matches
    # nobody; putting the re-created role's ARN back takes no access away
    "policy-arn-restored-over-a-deleted-role-is-not-destructive": UpdateCase(
        desired={"policy": policy_with(USE_STATEMENT)},
        observed={
            "policy": policy_with(dict(USE_STATEMENT, Principal={"AWS": "AROAEXAMPLEID1234567890"}))
        },
        calls=(("PutKeyPolicy", {"PolicyName": "default"}),),
        change=("policy", "current policy", "template application.json.j2"),
    ),
    "policy-deleted-role-statement-dropped-is-not-destructive": UpdateCase(
        observed={
            "policy": policy_with(dict(USE_STATEMENT, Principal={"AWS": "AIDAEXAMPLEID1234567890"}))
        },
        calls=(("PutKeyPolicy", {"PolicyName": "default"}),),
        change=("policy", "current policy", "template application.json.j2"),
    ),
    # but when a live principal beside it loses access, it still is
    "policy-live-role-beside-a-deleted-one-removed-is-destructive": UpdateCase(
        desired={"policy": policy_with(USE_STATEMENT)},
        observed={
            "policy": policy_with(
                dict(
                    USE_STATEMENT,
                    Principal={
                        "AWS": [
                            "AROAEXAMPLEID1234567890",
                            f"arn:aws:iam::{ACCOUNT}:role/Other",
                            f"arn:aws:iam::{ACCOUNT}:role/App",
                        ]
                    },
                )
            )
        },
        calls=(("PutKeyPolicy", {"PolicyName": "default"}),),
        change=("policy", "current policy", "template application.json.j2"),
        destructive=True,
    ),
    "policy-cosmetic-rewrite-is-no-change": UpdateCase(
        observed={
            "policy": {
                "Id": "key-default-1",
                "Version": "2012-10-17",
                "Statement": {
                    "Resource": ["*"],
                    "Action": ["kms:*"],
                    "Principal": {"AWS": [ACCOUNT]},
                    "Effect": "Allow",
                    "Sid": "Enable IAM User Permissions",
                },
            }
        },
    ),
    "alias-added": UpdateCase(
        desired={"aliases": frozenset({"alias/app", "alias/app2"})},
        calls=(("CreateAlias", {"AliasName": "alias/app2"}),),
        change=("aliases", None, "alias/app2"),
    ),
    "alias-removed-is-destructive": UpdateCase(
        desired={"aliases": frozenset()},
        calls=(("DeleteAlias", {"AliasName": "alias/app"}),),
        change=("aliases", "alias/app", None),
        destructive=True,
    ),
}


@pytest.mark.parametrize("case", UPDATES.values(), ids=UPDATES.keys())
def test_update_of_one_field(case: UpdateCase) -> None:
    key_state = case.observed.pop("key_state", "Enabled") if case.observed else "Enabled"
    obs_fields = {k: v for k, v in case.observed.items() if k != "key_state"}
    plan = make_plan(
        desired(desired_key("app", **case.desired)),
        observed(observed_key("app", key_state=key_state, **obs_fields)),
    )
    (key,) = plan.keys
    calls = [
        (op.kind.value, {k: v for k, v in op.params.items() if k != "Policy"})
        for op in plan.operations
    ]
    assert calls == list(case.calls)
    if case.change is None:
        assert key.action is Action.NOOP and key.changes == ()
        return
    assert key.action is Action.UPDATE
    (change,) = key.changes
    assert (change.field, change.before, change.after) == case.change
    assert change.destructive is case.destructive
    assert all(op.destructive is case.destructive for op in plan.operations)
    assert all(op.key_id == key.key_id for op in plan.operations)


def test_policy_change_shows_statements_not_text() -> None:
    plan = make_plan(
        desired(desired_key("app", policy=policy_with(USE_STATEMENT))),
        observed(observed_key("app")),
    )
    (change,) = plan.keys[0].changes
    (statement,) = change.statements
    assert statement.kind == "added" and statement.sid == "AllowUse"


def test_rotation_change_on_a_key_that_stays_disabled_is_a_warning_not_a_call() -> None:
    plan = make_plan(
        desired(desired_key("app", enabled=False, rotation_period_days=180)),
        observed(observed_key("app", key_state="Disabled")),
    )
    assert kinds(plan) == []
    assert any("disabled" in w for w in plan.warnings)


# -- recovery -----------------------------------------------------------------------------


def test_pending_deletion_key_is_recovered_with_the_same_id_and_enabled() -> None:
    ok = observed_key("app", key_state="PendingDeletion", rotation_enabled=None)
    plan = make_plan(desired(desired_key("app")), observed(ok))
    (key,) = plan.keys
    assert key.action is Action.RECOVER and key.key_id == ok.key_id
    assert kinds(plan) == ["CancelKeyDeletion", "EnableKey", "EnableKeyRotation"]
    assert all(op.key_id == ok.key_id for op in plan.operations)
    assert "CreateKey" not in kinds(plan)


def test_recovered_key_that_should_stay_disabled_is_not_enabled() -> None:
    ok = observed_key("app", key_state="PendingDeletion", rotation_enabled=None)
    plan = make_plan(desired(desired_key("app", enabled=False)), observed(ok))
    assert kinds(plan) == ["CancelKeyDeletion"]


# -- orphans and deletion -----------------------------------------------------------------


def test_orphan_is_reported_and_left_alone_without_allow_destroy() -> None:
    plan = make_plan(desired(), observed(observed_key("old")))
    assert plan.operations == ()
    (orphan,) = plan.orphans
    assert orphan.name == "old" and "--allow-destroy" in orphan.reason


def test_orphan_is_scheduled_for_deletion_with_allow_destroy() -> None:
    plan = make_plan(desired(), observed(observed_key("old")), PlanOptions(allow_destroy=True))
    (op,) = plan.operations
    assert op.kind is OpKind.SCHEDULE_KEY_DELETION and op.destructive
    assert op.params == {"PendingWindowInDays": 30}
    assert plan.keys[0].action is Action.DELETE


def test_protected_orphan_is_never_deleted() -> None:
    ok = observed_key("old", tags={PROTECTION: "true"})
    plan = make_plan(desired(), observed(ok), PlanOptions(allow_destroy=True))
    assert plan.operations == ()
    assert "deletion protection" in plan.orphans[0].reason


def test_orphan_already_pending_deletion_is_not_reported() -> None:
    plan = make_plan(desired(), observed(observed_key("old", key_state="PendingDeletion")))
    assert plan.orphans == () and plan.operations == ()


def test_unmanaged_keys_are_never_touched() -> None:
    plan = make_plan(
        desired(),
        observed(observed_key(None, "feedbeef-1"), aliases={}),
        PlanOptions(allow_destroy=True),
    )
    assert plan.operations == () and plan.orphans == ()


# -- identity, adoption, aliases ----------------------------------------------------------


def test_two_keys_with_one_identity_is_an_error_naming_both() -> None:
    a, b = observed_key("app", "aaaa-1"), observed_key("app", "bbbb-2")
    with pytest.raises(PlanError) as err:
        make_plan(desired(desired_key("app")), observed(a, b, aliases={}))
    assert "aaaa-1" in str(err.value) and "bbbb-2" in str(err.value)


@pytest.mark.parametrize("ref", ["cafe-0001", "alias/legacy"], ids=["by-key-id", "by-alias"])
def test_adopt_adds_the_identity_tag_to_an_unmanaged_key(ref: str) -> None:
    ok = observed_key(None, "cafe-0001", aliases=frozenset({"alias/legacy"}))
    plan = make_plan(
        desired(desired_key("app", adopt=ref, aliases=frozenset({"alias/legacy"}))),
        observed(ok),
    )
    (key,) = plan.keys
    assert key.action is Action.UPDATE and key.key_id == "cafe-0001"
    assert ops(plan) == [("UpdateKeyDescription", "app"), ("TagResource", "app")]
    tagged = plan.operations[1].params["Tags"]
    assert {"TagKey": IDENTITY, "TagValue": "app"} in tagged
    assert "adopt" in key.reason
    # the key it adopts is in the plan's fingerprint (apply refuses the plan if it changes)
    other = observed_key("other", "beef-0002")
    plan = make_plan(
        desired(desired_key("app", adopt=ref, aliases=frozenset({"alias/legacy"}))),
        observed(ok, other),
    )
    assert plan.fingerprint == fingerprint(observed(ok, other), IDENTITY, ["cafe-0001"], [])
    assert plan.fingerprint != fingerprint(observed(ok, other), IDENTITY, [], [])


@pytest.mark.parametrize(
    ("ref", "managed_as", "message"),
    [
        ("nope-0001", None, "no customer key nope-0001"),
        ("cafe-0001", "other", "already managed as 'other'"),
    ],
    ids=["missing", "managed-under-another-name"],
)
def test_adopt_errors(ref: str, managed_as: str | None, message: str) -> None:
    ok = observed_key(managed_as, "cafe-0001")
    with pytest.raises(PlanError, match=message):
        make_plan(desired(desired_key("app", adopt=ref)), observed(ok))


def test_alias_on_an_unmanaged_key_is_a_conflict() -> None:
    stranger = observed_key(None, "stranger-1")
    with pytest.raises(PlanError, match="allow_alias_takeover"):
        make_plan(
            desired(desired_key("app")), observed(stranger, aliases={"alias/app": "stranger-1"})
        )


def test_alias_takeover_is_allowed_when_the_spec_says_so_and_is_destructive() -> None:
    stranger = observed_key(None, "stranger-1")
    plan = make_plan(
        desired(desired_key("app", allow_alias_takeover=True)),
        observed(stranger, aliases={"alias/app": "stranger-1"}),
    )
    update = next(op for op in plan.operations if op.kind is OpKind.UPDATE_ALIAS)
    assert update.destructive and update.params == {"AliasName": "alias/app"}
    assert "DeleteAlias" not in kinds(plan)


def test_alias_moving_between_managed_keys_is_one_update_and_no_delete() -> None:
    old = observed_key("old-app", "old-0001", aliases=frozenset({"alias/app"}))
    new = observed_key("app", "new-0001", aliases=frozenset())
    plan = make_plan(
        desired(desired_key("old-app", aliases=frozenset()), desired_key("app")),
        observed(old, new),
    )
    assert ops(plan) == [("UpdateAlias", "app")]
    assert not plan.operations[0].destructive


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("key_spec", "RSA_2048"),
        ("key_usage", "SIGN_VERIFY"),
        ("origin", "EXTERNAL"),
        ("multi_region", True),
    ],
)
def test_immutable_field_change_is_refused_not_replaced(field_name: str, value: Any) -> None:
    with pytest.raises(PlanError, match=f"{field_name} cannot change") as err:
        make_plan(desired(desired_key("app", **{field_name: value})), observed(observed_key("app")))
    assert "keyspecs/app.yaml:1" in str(err.value)


LOCKOUT_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "UseOnly",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/App"},
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    ],
}


@pytest.mark.parametrize("existing", [False, True], ids=["on-create", "on-update"])
def test_policy_that_locks_out_the_deployer_is_a_plan_error(existing: bool) -> None:
    obs = observed(observed_key("app")) if existing else observed()
    with pytest.raises(PlanError, match="lock out"):
        make_plan(desired(desired_key("app", policy=LOCKOUT_POLICY)), obs)


def test_lockout_check_can_be_bypassed_and_the_flag_is_sent() -> None:
    plan = make_plan(
        desired(desired_key("app", policy=LOCKOUT_POLICY, bypass_policy_lockout_safety_check=True)),
        observed(),
    )
    assert plan.operations[0].params["BypassPolicyLockoutSafetyCheck"] is True


@pytest.mark.parametrize(
    "admins",
    [(f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin",), ()],
    ids=["declared-admin", "deployer-is-admin"],
)
def test_policy_for_a_declared_admin_or_the_deployer_is_accepted(admins: tuple[str, ...]) -> None:
    principal = "KeyAdmin" if admins else "kms-reconciler"  # the deploying role itself
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/{principal}"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    plan = make_plan(desired(desired_key("app", policy=policy), admins=admins), observed())
    assert plan.keys[0].action is Action.CREATE
    assert ":assumed-role/kms-reconciler/" in CALLER


# -- order and tables ---------------------------------------------------------------------


def test_operations_follow_the_designed_phase_order_across_keys() -> None:
    recovering = observed_key("a", "a-1", key_state="PendingDeletion", rotation_enabled=None)
    changing = observed_key("b", "b-1", description="old", policy=policy_with(USE_STATEMENT))
    plan = make_plan(
        desired(
            desired_key("a"),
            desired_key("b", enabled=False, tags={}, aliases=frozenset()),
            desired_key("c"),
        ),
        observed(recovering, changing),
    )
    assert kinds(plan) == [
        "CancelKeyDeletion",
        "CreateKey",
        "EnableKey",
        "UpdateKeyDescription",
        "PutKeyPolicy",
        "UntagResource",
        "EnableKeyRotation",
        "EnableKeyRotation",
        "CreateAlias",
        "DisableKey",
        "DeleteAlias",
    ]
    phases = [op.phase for op in plan.operations]
    assert phases == sorted(phases)


@pytest.mark.parametrize(
    ("table", "members"),
    [
        (PHASES, list(OpKind)),
        (applier.HANDLERS, list(OpKind)),
        (formatters.ACTIONS, list(Action)),
    ],
    ids=["phase-per-operation", "handler-per-operation", "symbol-per-action"],
)
def test_every_member_has_a_table_entry(table: Any, members: list[Any]) -> None:
    assert set(table) == set(members)


def test_planner_is_deterministic() -> None:
    make: Callable[[], TargetPlan] = lambda: make_plan(  # noqa: E731
        desired(desired_key("b"), desired_key("a")), observed(observed_key("z"))
    )
    assert make() == make()
    assert ROOT_POLICY["Statement"]  # the factory's policy is not mutated by planning


def test_two_specs_adopting_one_key_is_an_error() -> None:
    ok = observed_key(None, "cafe-0001", aliases=frozenset())
    with pytest.raises(PlanError, match="already adopted by the spec 'one'"):
        make_plan(
            desired(
                desired_key("one", adopt="cafe-0001", aliases=frozenset()),
                desired_key("two", adopt="cafe-0001", aliases=frozenset()),
            ),
            observed(ok),
        )
