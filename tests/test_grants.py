"""Declarative grants: validation, planning (matched by content), apply, observe and drift.

Existing grants are matched to declared ones by what they allow (grantee, operations,
retiring principal, constraints), never by name: KMS cannot update a grant, and moto does
not keep grant names idempotent (moto-kms-notes.md, CreateGrant row).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler import formatters
from reconciler.applier import apply_target, describe_call
from reconciler.aws import KmsApi
from reconciler.cli import main
from reconciler.drift import RULES, detect
from reconciler.findings import Severity
from reconciler.observe import ObserveOptions, observe_target
from reconciler.plan import Action, OpKind, Plan, TargetPlan, from_dict, to_dict
from reconciler.planner import PlanOptions, diff_grants, make_plan
from reconciler.state import Grant, fingerprint
from tests.factories import (
    ACCOUNT,
    IDENTITY,
    TARGET,
    desired,
    desired_key,
    observed,
    observed_key,
)
from tests.fakes import FakeKms
from tests.test_observe import fake_account
from tests.test_validation import (  # noqa: F401  (_in_tmp: every test runs in tmp_path)
    ROOT,
    Expected,
    F,
    _in_tmp,
    assert_problems,
    aws_calls,
    case,
    desired_of,
    key,
    problems_of,
    write_inventory,
)

APP = f"arn:aws:iam::{ACCOUNT}:role/App"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/Admin"
DECRYPT = Grant.of(APP, ["Encrypt", "Decrypt"], name="app-use")
VERIFY = Grant.of(APP, ["DescribeKey"], name="app-describe")


# -- validation ---------------------------------------------------------------------------

GRANT = ["grants:", "  - name: app-use", f"    grantee_principal: {APP}"]  # lines 3-5


def grant_key(*lines: str, head: tuple[str, ...] = ()) -> str:
    """A key file whose key has `head` fields, then one grant with GRANT and `lines`."""
    return key(*head, *GRANT, *(f"    {line}" for line in lines))


VALIDATION = [
    case(
        "bad-name",
        key(
            "grants:",
            "  - name: app use",
            f"    grantee_principal: {APP}",
            "    operations: [Decrypt]",
        ),
        [(f"{F}:4: keys[0].grants[0].name: ", "'app use' is not a valid grant name")],
    ),
    case(
        "missing-operations",
        grant_key(),
        [(f"{F}:4: keys[0].grants[0].operations: ", "is required (key 'app')")],
    ),
    case(
        "empty-operations",
        grant_key("operations: []"),
        [(f"{F}:6: keys[0].grants[0].operations: ", "list at least one operation")],
    ),
    case(
        "unknown-operation",
        grant_key("operations: [Decrypt, Decrpyt]"),
        [(f"{F}:6: keys[0].grants[0].operations[1]: ", "'Decrpyt' is not a KMS grant operation")],
    ),
    case(
        "operation-twice",
        grant_key("operations: [Decrypt, Decrypt]"),
        [(f"{F}:6: keys[0].grants[0].operations: ", "lists Decrypt more than once")],
    ),
    case(
        "grantee-not-an-arn",
        key(
            "grants:", "  - name: g", "    grantee_principal: AppRole", "    operations: [Decrypt]"
        ),
        [
            (
                f"{F}:5: keys[0].grants[0].grantee_principal: ",
                "'AppRole' is not an IAM principal ARN",
            )
        ],
    ),
    case(
        "grantee-service-principal",
        key(
            "grants:",
            "  - name: g",
            "    grantee_principal: logs.us-east-1.amazonaws.com",
            "    operations: [Decrypt]",
        ),
        [(f"{F}:5: keys[0].grants[0].grantee_principal: ", "is a service principal")],
    ),
    case(
        "retiring-principal-not-an-arn",
        grant_key("operations: [Decrypt]", "retiring_principal: admin"),
        [(f"{F}:7: keys[0].grants[0].retiring_principal: ", "'admin' is not an IAM principal")],
    ),
    case(
        "unknown-grant-field",
        grant_key("operations: [Decrypt]", "grantee: x"),
        [(f"{F}:7: keys[0].grants[0].grantee: ", "unknown field")],
    ),
    case(
        "name-used-twice",
        grant_key("operations: [Decrypt]")
        + f"      - name: app-use\n        grantee_principal: {ADMIN}\n"
        "        operations: [Encrypt]\n",
        [(f"{F}:7: keys[0].grants[1].name: ", "'app-use' is already used by grants[0]")],
    ),
    case(
        "same-content-twice",
        grant_key("operations: [Decrypt, Encrypt]")
        + f"      - name: other\n        grantee_principal: {APP}\n"
        "        operations: [Encrypt, Decrypt]\n",
        [(f"{F}:7: keys[0].grants[1]: ", "allows the same as grants[0]")],
    ),
    case(
        "sign-on-a-symmetric-key",
        grant_key("operations: [Decrypt, Sign]"),
        [
            (
                f"{F}:6: keys[0].grants[0].operations[1]: ",
                "Sign is not allowed on a SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key",
            )
        ],
    ),
    case(
        "data-keys-on-an-rsa-encryption-key",
        grant_key(
            "operations: [Decrypt, GenerateDataKey]",
            head=("key_spec: RSA_2048", "key_usage: ENCRYPT_DECRYPT"),
        ),
        [(f"{F}:8: keys[0].grants[0].operations[1]: ", "GenerateDataKey is not allowed on")],
    ),
    case(
        "decrypt-on-a-signing-key",
        grant_key(
            "operations: [Verify, Decrypt]",
            head=("key_spec: ECC_NIST_P256", "key_usage: SIGN_VERIFY"),
        ),
        [(f"{F}:8: keys[0].grants[0].operations[1]: ", "allowed: Sign, Verify, GetPublicKey")],
    ),
    case(
        "sign-on-an-hmac-key",
        grant_key("operations: [GenerateMac, Sign]", head=("key_spec: HMAC_256",)),
        [(f"{F}:7: keys[0].grants[0].operations[1]: ", "Sign is not allowed on a HMAC_256")],
    ),
    case(
        "both-constraints",
        grant_key(
            "operations: [Decrypt]",
            "constraints:",
            "  encryption_context_equals: {Team: a}",
            "  encryption_context_subset: {Team: a}",
        ),
        [(f"{F}:7: keys[0].grants[0].constraints: ", "give exactly one of")],
    ),
    case(
        "empty-encryption-context",
        grant_key("operations: [Decrypt]", "constraints: {encryption_context_subset: {}}"),
        [
            (
                f"{F}:7: keys[0].grants[0].constraints.encryption_context_subset: ",
                "give at least one encryption context pair",
            )
        ],
    ),
    case(
        "constraints-on-an-asymmetric-key",
        grant_key(
            "operations: [Decrypt]",
            "constraints: {encryption_context_subset: {Team: a}}",
            head=("key_spec: RSA_2048", "key_usage: ENCRYPT_DECRYPT"),
        ),
        [
            (
                f"{F}:9: keys[0].grants[0].constraints: ",
                "only to symmetric encryption keys, not RSA_2048",
            )
        ],
    ),
    case(
        "constraints-without-a-symmetric-operation",
        grant_key(
            "operations: [DescribeKey]", "constraints: {encryption_context_subset: {Team: a}}"
        ),
        [(f"{F}:7: keys[0].grants[0].constraints: ", "the grant allows none of them")],
    ),
    case(
        "grants-purge-not-a-boolean",
        key("grants_purge: 'yes'"),
        [(f"{F}:3: keys[0].grants_purge: ", "must be true or false, not 'yes'")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), VALIDATION)
def test_grant_validation(text: str, expected: Expected) -> None:
    assert_problems(problems_of({"app.yaml": text}), expected)


@pytest.mark.parametrize(
    ("head", "operations"),
    [
        case("symmetric", (), "[Decrypt, Encrypt, GenerateDataKey, ReEncryptFrom, ReEncryptTo]"),
        case(
            "rsa-encrypt",
            ("key_spec: RSA_2048", "key_usage: ENCRYPT_DECRYPT"),
            "[Decrypt, GetPublicKey]",
        ),
        case(
            "rsa-sign",
            ("key_spec: RSA_2048", "key_usage: SIGN_VERIFY"),
            "[Sign, Verify, GetPublicKey]",
        ),
        case("hmac", ("key_spec: HMAC_256",), "[GenerateMac, VerifyMac, DescribeKey]"),
        case(
            "key-agreement",
            ("key_spec: ECC_NIST_P256", "key_usage: KEY_AGREEMENT"),
            "[DeriveSharedSecret]",
        ),
        case("any-key", ("key_spec: HMAC_384",), "[CreateGrant, RetireGrant, DescribeKey]"),
    ],
)
def test_operations_that_fit_the_key_type_are_accepted(
    head: tuple[str, ...], operations: str
) -> None:
    assert problems_of({"app.yaml": grant_key(f"operations: {operations}", head=head)}) == []


def test_declared_grants_reach_the_desired_state_per_target() -> None:
    text = key(
        "grants_purge: true",
        "grants:",
        "  - name: app-use",
        "    grantee_principal: arn:{partition}:iam::{account_id}:role/App",
        "    operations: [Encrypt, Decrypt]",
        "    retiring_principal: arn:aws:iam::{account_id}:root",
        "    constraints: {encryption_context_subset: {Team: a, Env: '{region}'}}",
    )
    by_target = {dt.target.name: dt.keys[0] for dt in desired_of({"app.yaml": text})}
    prod, dev = by_target["prod"], by_target["dev"]
    assert prod.grants_purge and dev.grants_purge
    (grant,) = prod.state.grants or ()
    assert grant.name == "app-use"
    assert grant.grantee_principal == "arn:aws:iam::111122223333:role/App"
    assert grant.operations == ("Decrypt", "Encrypt")
    assert grant.retiring_principal == "arn:aws:iam::111122223333:root"
    # the YAML value is not templated; only the principals are filled in
    assert grant.encryption_context_subset == (("Env", "{region}"), ("Team", "a"))
    (dev_grant,) = dev.state.grants or ()
    assert dev_grant.grantee_principal == "arn:aws:iam::444455556666:role/App"


def test_no_grants_declared_is_an_empty_tuple_and_no_purge() -> None:
    (dt, _) = desired_of({"app.yaml": key()})
    assert dt.keys[0].state.grants == () and not dt.keys[0].grants_purge


def test_plan_refuses_a_grant_the_key_type_cannot_have_before_any_aws_call(
    aws_calls: list[str],  # noqa: F811
) -> None:
    write_inventory({"app.yaml": grant_key("operations: [Sign]")})
    result = CliRunner().invoke(main, ["plan", ROOT])
    assert result.exit_code == 1, result.output
    assert aws_calls == []
    assert result.stderr.splitlines() == [
        f"error: {F}:6: keys[0].grants[0].operations[0]: Sign is not allowed on a "
        "SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key (allowed: Decrypt, Encrypt, GenerateDataKey, "
        "GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext, "
        "GenerateDataKeyWithoutPlaintext, ReEncryptFrom, ReEncryptTo, CreateGrant, "
        "RetireGrant, DescribeKey) (key 'app')"
    ]


# -- the Grant value ----------------------------------------------------------------------


def test_grants_compare_by_content_not_name_id_or_operation_order() -> None:
    a = Grant.of(APP, ["Encrypt", "Decrypt", "Decrypt"], name="a", grant_id="1")
    b = Grant.of(APP, ["Decrypt", "Encrypt"], name="b", grant_id="2")
    assert a == b and hash(a) == hash(b) and a.operations == ("Decrypt", "Encrypt")
    assert a != Grant.of(APP, ["Decrypt"])
    assert a != Grant.of(APP, ["Decrypt", "Encrypt"], ADMIN)
    assert a != Grant.of(APP, ["Decrypt", "Encrypt"], subset={"T": "x"})
    assert Grant.of(APP, ["Decrypt"], subset={"T": "x"}) != Grant.of(
        APP, ["Decrypt"], equals={"T": "x"}
    )
    assert Grant.of(APP, ["Decrypt"], equals={}) == Grant.of(APP, ["Decrypt"])


AWS_SERVICE = {
    "service-grantee": Grant.of("rds.us-east-1.amazonaws.com", ["Decrypt"], name="app-use"),
    "service-retiring": Grant.of(APP, ["Decrypt"], "lambda.amazonaws.com"),
    "ebs-attachment": Grant.of(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/aws:ec2-infrastructure/i-5d476fab",
        ["Decrypt"],
        subset={"aws:ebs:id": "vol-5cccfb4e"},
    ),
    "aws-context-key": Grant.of(APP, ["Decrypt"], equals={"aws:s3:arn": "arn:aws:s3:::b"}),
    "grantee-service-principal-field": replace(
        Grant.of("", ["Decrypt"]), grantee_service_principal="dynamodb.amazonaws.com"
    ),
}


@pytest.mark.parametrize("grant", AWS_SERVICE.values(), ids=AWS_SERVICE.keys())
def test_grants_of_aws_services_are_recognised(grant: Grant) -> None:
    assert grant.for_aws_service


@pytest.mark.parametrize(
    "grant",
    [
        DECRYPT,
        Grant.of(
            f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/"
            "AWSServiceRoleForAutoScaling",
            ["Decrypt"],
        ),
    ],
    ids=["role", "service-linked-role-users-grant-themselves"],
)
def test_grants_to_iam_principals_are_not_aws_service_grants(grant: Grant) -> None:
    assert not grant.for_aws_service


# -- planner ------------------------------------------------------------------------------


def grant_ops(plan: TargetPlan) -> list[tuple[str, dict[str, Any], bool]]:
    return [
        (op.kind.value, dict(op.params), op.destructive)
        for op in plan.operations
        if op.kind in (OpKind.CREATE_GRANT, OpKind.REVOKE_GRANT)
    ]


def existing(grant: Grant, grant_id: str, name: str | None = None) -> Grant:
    return replace(grant, grant_id=grant_id, name=grant.name if name is None else name)


CREATE_DECRYPT = (
    "CreateGrant",
    {"Name": "app-use", "GranteePrincipal": APP, "Operations": ["Decrypt", "Encrypt"]},
    False,
)
OLD = existing(Grant.of(APP, ["Decrypt"], name="app-use"), "g-old")
STRANGER = existing(Grant.of(ADMIN, ["CreateGrant", "Decrypt"], name="handmade"), "g-x")


PLANS: dict[str, tuple[tuple[Grant, ...], tuple[Grant, ...], bool, list[Any]]] = {
    # (declared, existing, grants_purge) -> grant operations
    "missing-is-created": ((DECRYPT,), (), False, [CREATE_DECRYPT]),
    "equal-content-other-order-and-name-is-no-op": (
        (DECRYPT,),
        (existing(Grant.of(APP, ["Encrypt", "Decrypt"]), "g-1", name="made-by-moto"),),
        False,
        [],
    ),
    "changed-is-create-then-destructive-revoke": (
        (DECRYPT,),
        (OLD,),
        False,
        [CREATE_DECRYPT, ("RevokeGrant", {"GrantId": "g-old"}, True)],
    ),
    "undeclared-is-left-alone": ((DECRYPT,), (existing(DECRYPT, "g-1"), STRANGER), False, []),
    "undeclared-is-revoked-with-purge": (
        (DECRYPT,),
        (existing(DECRYPT, "g-1"), STRANGER),
        True,
        [("RevokeGrant", {"GrantId": "g-x"}, True)],
    ),
    "purge-with-nothing-declared-revokes-all": (
        (),
        (existing(DECRYPT, "g-1"), STRANGER),
        True,
        [
            ("RevokeGrant", {"GrantId": "g-1"}, True),
            ("RevokeGrant", {"GrantId": "g-x"}, True),
        ],
    ),
    "one-of-two-identical-grants-is-undeclared": (
        (DECRYPT,),
        (existing(DECRYPT, "g-1"), existing(DECRYPT, "g-2")),
        True,
        [("RevokeGrant", {"GrantId": "g-2"}, True)],
    ),
    "aws-service-grants-are-never-touched-even-with-purge": (
        (DECRYPT,),
        tuple(existing(g, f"aws-{i}") for i, g in enumerate(AWS_SERVICE.values())),
        True,
        [CREATE_DECRYPT],  # "service-grantee" is named app-use: still not "replaced"
    ),
    "retiring-principal-and-constraints-are-sent": (
        (Grant.of(APP, ["Decrypt"], ADMIN, subset={"Team": "a"}, name="ctx"),),
        (),
        False,
        [
            (
                "CreateGrant",
                {
                    "Name": "ctx",
                    "GranteePrincipal": APP,
                    "Operations": ["Decrypt"],
                    "RetiringPrincipal": ADMIN,
                    "Constraints": {"EncryptionContextSubset": {"Team": "a"}},
                },
                False,
            )
        ],
    ),
}


@pytest.mark.parametrize("case", PLANS.values(), ids=PLANS.keys())
def test_grant_plan(case: tuple[tuple[Grant, ...], tuple[Grant, ...], bool, list[Any]]) -> None:
    declared, have, purge, expected = case
    plan = make_plan(
        desired(desired_key("app", grants=declared, grants_purge=purge)),
        observed(observed_key("app", grants=have)),
    )
    assert grant_ops(plan) == expected
    (key,) = plan.keys
    assert key.action is (Action.UPDATE if expected else Action.NOOP)
    assert all(op.key_id == key.key_id for op in plan.operations)
    assert all(op.phase == 9 for op in plan.operations)


def test_changed_grant_shows_as_revoke_and_create_in_the_plan_text() -> None:
    plan = make_plan(
        desired(desired_key("app", grants=(DECRYPT,))), observed(observed_key("app", grants=(OLD,)))
    )
    text = formatters.plan_text(Plan((plan,)))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert f'+ grants.app-use = "Decrypt, Encrypt to {APP}"' in lines
    assert (
        f'- grants.app-use = "Decrypt to {APP}" [destructive: replaced: KMS cannot change a grant]'
        in lines
    )
    assert any(
        line.endswith(
            "RevokeGrant app: revoke grant app-use (replaced: KMS cannot change a "
            "grant) [destructive]"
        )
        for line in lines
    )
    assert "1 destructive operation(s)" in text


def test_unnamed_undeclared_grant_is_shown_by_its_id() -> None:
    plan = make_plan(
        desired(desired_key("app", grants_purge=True)),
        observed(observed_key("app", grants=(existing(Grant.of(APP, ["Encrypt"]), "abcd1234"),))),
    )
    (change,) = plan.keys[0].changes
    assert (change.field, change.before, change.after) == (
        "grants.abcd1234",
        f"Encrypt to {APP}",
        None,
    )
    assert change.destructive


def test_new_key_gets_its_grants_after_aliases_and_before_disable() -> None:
    plan = make_plan(
        desired(desired_key("app", grants=(DECRYPT, VERIFY), enabled=False)), observed()
    )
    assert [op.kind.value for op in plan.operations] == [
        "CreateKey",
        "EnableKeyRotation",
        "CreateAlias",
        "CreateGrant",
        "CreateGrant",
        "DisableKey",
    ]
    grants = [op for op in plan.operations if op.kind is OpKind.CREATE_GRANT]
    assert [op.params["Name"] for op in grants] == ["app-describe", "app-use"]
    assert all(op.key_id is None for op in grants)
    fields = [c.field for c in plan.keys[0].changes]
    assert "grants.app-use" in fields and "grants.app-describe" in fields


def test_grants_not_read_are_never_a_change_but_a_warning() -> None:
    plan = make_plan(
        desired(desired_key("app", grants=(DECRYPT,), grants_purge=True)),
        observed(observed_key("app", grants=None)),
    )
    assert plan.operations == () and plan.keys[0].action is Action.NOOP
    assert any("grants" in w and "could not be read" in w for w in plan.warnings)


def test_fingerprint_covers_the_grants_of_managed_keys_only() -> None:
    base = observed(observed_key("app", grants=(existing(DECRYPT, "g-1"),)))
    changed = observed(observed_key("app", grants=(existing(DECRYPT, "g-1"), STRANGER)))
    assert fingerprint(base, IDENTITY) != fingerprint(changed, IDENTITY)
    stranger = observed_key(None, "u-1", grants=(STRANGER,))
    other_stranger = observed_key(None, "u-1", grants=())
    assert fingerprint(observed(stranger), IDENTITY) == fingerprint(
        observed(other_stranger), IDENTITY
    )


def test_grant_operations_survive_a_saved_plan() -> None:
    plan = make_plan(
        desired(desired_key("app", grants=(DECRYPT,))), observed(observed_key("app", grants=(OLD,)))
    )
    loaded = from_dict(json.loads(json.dumps(to_dict(Plan((plan,))))))
    assert loaded.targets[0].operations == plan.operations


def test_diff_grants_sorts_what_is_left_over() -> None:
    aws = existing(AWS_SERVICE["ebs-attachment"], "aws-1")
    diff = diff_grants((DECRYPT, VERIFY), (OLD, existing(VERIFY, "g-v"), STRANGER, aws))
    assert diff.matched == (VERIFY,) and diff.matched[0].grant_id == "g-v"
    assert diff.missing == (DECRYPT,)
    assert [g.grant_id for g in diff.replaced] == ["g-old"]
    assert [g.grant_id for g in diff.undeclared] == ["g-x"]
    assert [g.grant_id for g in diff.aws_service] == ["aws-1"]


# -- applier ------------------------------------------------------------------------------


def test_create_grant_on_a_new_key_gets_its_id_and_not_found_is_retried() -> None:
    fake = FakeKms()
    fake.failures["CreateGrant"] = ["NotFoundException"]  # eventual consistency
    plan = make_plan(desired(desired_key("app", grants=(DECRYPT,))), observed())
    result = apply_target(plan, KmsApi(fake, sleep=lambda s: None))
    assert result.ok, result.failed
    calls = [p for name, p in fake.calls if name == "CreateGrant"]
    assert len(calls) == 2
    assert calls[-1] == {
        "KeyId": result.created["app"],
        "Name": "app-use",
        "GranteePrincipal": APP,
        "Operations": ["Decrypt", "Encrypt"],
    }


def test_revoke_grant_gets_the_bare_key_id_and_the_grant_id() -> None:
    fake = FakeKms()
    ok = observed_key("app", "1234abcd-0000", grants=(STRANGER,))
    plan = make_plan(desired(desired_key("app", grants_purge=True)), observed(ok))
    result = apply_target(plan, KmsApi(fake, sleep=lambda s: None))
    assert result.ok
    assert fake.calls == [("RevokeGrant", {"KeyId": "1234abcd-0000", "GrantId": "g-x"})]
    assert describe_call(plan.operations[0], ok.key_id) == (
        'RevokeGrant "KeyId"="1234abcd-0000", "GrantId"="g-x"'
    )


def test_create_grant_not_found_on_an_existing_key_is_not_retried() -> None:
    fake = FakeKms()
    fake.failures["CreateGrant"] = ["NotFoundException"]
    plan = make_plan(
        desired(desired_key("app", grants=(DECRYPT,))), observed(observed_key("app", grants=()))
    )
    result = apply_target(plan, KmsApi(fake, sleep=lambda s: None))
    assert not result.ok and fake.names() == ["CreateGrant"]


# -- observe ------------------------------------------------------------------------------


def test_list_grants_is_paginated_and_only_for_managed_keys() -> None:
    pages = {
        None: {
            "Grants": [
                {
                    "GrantId": "g1",
                    "Name": "app-use",
                    "GranteePrincipal": APP,
                    "Operations": ["Encrypt", "Decrypt"],
                    "RetiringPrincipal": None,  # moto sends null
                    "Constraints": None,
                }
            ],
            "Truncated": True,
            "NextMarker": "m1",
        },
        "m1": {
            "Grants": [
                {
                    "GrantId": "g2",
                    "GranteeServicePrincipal": "dynamodb.amazonaws.com",
                    "Operations": ["Decrypt"],
                    "Constraints": {"EncryptionContextSubset": {"aws:dynamodb:tableName": "t"}},
                }
            ],
            "Truncated": False,
        },
    }
    fake = fake_account(
        {"k1": {IDENTITY: "one"}, "k2": {IDENTITY: "two"}, "u1": {}, "u2": {"Team": "x"}},
        ListGrants=lambda **p: pages[p.get("Marker")] if p["KeyId"] == "k1" else {"Grants": []},
    )
    api = KmsApi(fake)
    obs = observe_target(api, TARGET, ObserveOptions(IDENTITY))
    listed = [p for name, p in fake.calls if name == "ListGrants"]
    assert sorted((p["KeyId"], p.get("Marker", "")) for p in listed) == [
        ("k1", ""),
        ("k1", "m1"),
        ("k2", ""),
    ]
    assert api.calls["ListGrants"] == 3 and api.calls["DescribeKey"] == 2
    by_id = obs.by_id()
    first, second = by_id["k1"].grants or ()
    assert first == DECRYPT and first.grant_id == "g1" and first.name == "app-use"
    assert first.retiring_principal is None and first.constraints is None
    assert second.for_aws_service and second.grant_id == "g2"
    assert by_id["k2"].grants == ()
    assert by_id["u1"].grants is None and by_id["u2"].grants is None


def test_grants_are_never_listed_for_a_key_that_is_gone() -> None:
    fake = fake_account({"k1": {IDENTITY: "one"}})
    fake.failures["DescribeKey"] = ["NotFoundException"]
    obs = observe_target(KmsApi(fake), TARGET, ObserveOptions(IDENTITY))
    assert obs.keys == () and "ListGrants" not in fake.names()


@pytest.mark.parametrize(
    ("code", "ok"), [("AccessDeniedException", True), ("KMSInternalException", False)]
)
def test_unreadable_grants_are_unknown_other_errors_fail(code: str, ok: bool) -> None:
    fake = fake_account({"k1": {IDENTITY: "one"}})
    fake.failures["ListGrants"] = [code]
    api = KmsApi(fake, sleep=lambda s: None, max_attempts=1)
    if ok:
        assert observe_target(api, TARGET, ObserveOptions(IDENTITY)).keys[0].grants is None
    else:
        with pytest.raises(Exception, match="reading KMS failed"):
            observe_target(api, TARGET, ObserveOptions(IDENTITY))


@pytest.mark.parametrize(
    "options",
    [
        ObserveOptions(IDENTITY, details_for_all=True),
        ObserveOptions(IDENTITY, describe_unmanaged=True),
        ObserveOptions(IDENTITY, wanted=("u1",)),
    ],
    ids=["details-for-all", "drift-describes-unmanaged", "adopted-key"],
)
def test_unmanaged_keys_read_in_detail_get_no_list_grants(options: ObserveOptions) -> None:
    fake = fake_account({"k1": {IDENTITY: "one"}, "u1": {}, "u2": {"Team": "x"}})
    obs = observe_target(KmsApi(fake), TARGET, options)
    listed = sorted(p["KeyId"] for name, p in fake.calls if name == "ListGrants")
    # an adopted key (wanted) is about to be managed: its grants are planned too
    assert listed == (["k1", "u1"] if options.wanted else ["k1"])
    assert obs.by_id()["u2"].grants is None


def test_import_reads_no_grants() -> None:
    fake = fake_account({"k1": {IDENTITY: "one"}, "u1": {}})
    observe_target(
        KmsApi(fake), TARGET, ObserveOptions(IDENTITY, details_for_all=True, grants=False)
    )
    assert "ListGrants" not in fake.names()


# -- drift --------------------------------------------------------------------------------

DRIFT = {
    "declared-grant-missing": ((DECRYPT,), (), [("grant-missing", Severity.MEDIUM)]),
    "undeclared-decrypt-grant": (
        (),
        (STRANGER,),
        [("grant-added-sensitive", Severity.HIGH)],
    ),
    # Encrypt, ReEncryptTo and GenerateDataKeyWithoutPlaintext give back only ciphertext
    "undeclared-encrypt-only-grant": (
        (),
        (
            existing(
                Grant.of(APP, ["Encrypt", "ReEncryptTo", "GenerateDataKeyWithoutPlaintext"]),
                "g-e",
            ),
        ),
        [("grant-added", Severity.MEDIUM)],
    ),
    # GenerateDataKey returns a plaintext data key: decrypt class, as review counts it
    "undeclared-generate-data-key-grant": (
        (),
        (existing(Grant.of(APP, ["Encrypt", "GenerateDataKey"]), "g-e"),),
        [("grant-added-sensitive", Severity.HIGH)],
    ),
    # one table (catalog.OPERATION_CLASSES) with review's KMS006: sign, MAC, key agreement
    # and decapsulation grants are as serious as Decrypt
    **{
        f"undeclared-{op.lower()}-grant": (
            (),
            (existing(Grant.of(APP, [op]), f"g-{op}"),),
            [("grant-added-sensitive", Severity.HIGH)],
        )
        for op in ("Sign", "GenerateMac", "DeriveSharedSecret", "Decapsulate")
    },
    "undeclared-encapsulate-grant": (
        (),
        (existing(Grant.of(APP, ["Encapsulate", "GetPublicKey"]), "g-e"),),
        [("grant-added", Severity.MEDIUM)],
    ),
    "changed-grant-is-missing-plus-undeclared": (
        (DECRYPT,),
        (OLD,),
        [("grant-added-sensitive", Severity.HIGH), ("grant-missing", Severity.MEDIUM)],
    ),
    "aws-service-grants-are-never-drift": (
        (),
        tuple(existing(g, f"aws-{i}") for i, g in enumerate(AWS_SERVICE.values())),
        [],
    ),
    "matching-grant-is-no-drift": ((DECRYPT,), (existing(DECRYPT, "g-1", "x"),), []),
}


@pytest.mark.parametrize("case", DRIFT.values(), ids=DRIFT.keys())
def test_grant_drift(case: tuple[tuple[Grant, ...], tuple[Grant, ...], list[Any]]) -> None:
    declared, have, expected = case
    report = detect(
        desired(desired_key("app", grants=declared)),
        observed(observed_key("app", "a-1", grants=have)),
    )
    assert [(f.rule, f.severity) for f in report.findings] == expected
    for finding in report.findings:
        assert RULES[finding.rule].severity is finding.severity
        assert finding.key == "app" and finding.file == "keyspecs/app.yaml"


def test_undeclared_grant_finding_names_the_grant_and_what_it_allows() -> None:
    report = detect(
        desired(desired_key("app", grants=(DECRYPT,))),
        observed(observed_key("app", "a-1", grants=(OLD,))),
    )
    added = next(f for f in report.findings if f.rule == "grant-added-sensitive")
    assert "grant 'app-use' (g-old) allows Decrypt to" in added.message
    assert f"the inventory's grant 'app-use' allows Decrypt, Encrypt to {APP}" in added.message


def test_drift_of_a_purged_key_is_reported_the_same() -> None:
    report = detect(
        desired(desired_key("app", grants_purge=True)),
        observed(observed_key("app", "a-1", grants=(STRANGER,))),
    )
    assert [f.rule for f in report.findings] == ["grant-added-sensitive"]


def test_grants_of_a_missing_key_are_not_findings_of_their_own() -> None:
    report = detect(desired(desired_key("app", grants=(DECRYPT,))), observed())
    assert [f.rule for f in report.findings] == ["key-missing"]


def test_report_only_plan_records_undeclared_grants_without_a_call() -> None:
    plan = make_plan(
        desired(desired_key("app")),
        observed(observed_key("app", grants=(STRANGER,))),
        PlanOptions(report_only=True),
    )
    assert plan.operations == ()
    (change,) = plan.keys[0].changes
    assert change.field == "grants.handmade" and change.reason == "not declared"


def test_the_sandbox_makes_a_named_grant_once_as_real_kms_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Real KMS: CreateGrant with the same Name and parameters answers the existing grant (a
    # lost answer can be resent); moto makes a second one. reconciler.moto_kms corrects it.
    import boto3
    from moto import mock_aws

    from reconciler import moto_kms

    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(), moto_kms.patched():
        kms = boto3.client("kms", region_name="us-east-1")
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        grant = {
            "KeyId": key,
            "GranteePrincipal": "arn:aws:iam::123456789012:role/App",
            "Operations": ["Decrypt", "Encrypt"],
            "Name": "app",
        }
        first = kms.create_grant(**grant)["GrantId"]
        again = kms.create_grant(**{**grant, "Operations": ["Encrypt", "Decrypt"]})["GrantId"]
        other = kms.create_grant(**{**grant, "Operations": ["Decrypt"]})["GrantId"]
        bare = {k: v for k, v in grant.items() if k != "Name"}
        unnamed = [kms.create_grant(**bare) for _ in range(2)]
        assert first == again and other != first
        assert unnamed[0]["GrantId"] != unnamed[1]["GrantId"]  # no name: a grant each time
        assert len(kms.list_grants(KeyId=key)["Grants"]) == 4
