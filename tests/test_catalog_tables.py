"""The KMS tables follow the installed botocore: every operation, key spec, key usage and
grant operation its KMS model knows is in reconciler/catalog.py (and in the shipped
action list), so a botocore upgrade that adds one fails here until the tables are
refreshed (python scripts/refresh_kms_actions.py) and the new names are placed."""

from __future__ import annotations

import importlib.util
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from reconciler import catalog
from reconciler.rules import unknown_names
from tests.rules.harness import OTHER_ACCOUNT, allow, hits, policy, role

REPO = Path(__file__).resolve().parent.parent
MODEL = botocore.session.get_session().get_service_model("kms")


def _script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "refresh_kms_actions", REPO / "scripts" / "refresh_kms_actions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shipped() -> dict[str, Any]:
    text = files("reconciler").joinpath("data/kms_actions.json").read_text("utf-8")
    return dict(json.loads(text))


def test_every_kms_operation_of_botocore_is_a_known_action() -> None:
    # ReEncrypt is authorised as the two permissions ReEncryptFrom and ReEncryptTo.
    permissions = {"ReEncrypt": {"ReEncryptFrom", "ReEncryptTo"}}
    missing = {
        p
        for op in MODEL.operation_names
        for p in permissions.get(op, {op})
        if p not in catalog.KMS_ACTIONS
    }
    assert missing == set(), f"run scripts/refresh_kms_actions.py: {sorted(missing)}"


def test_every_key_spec_of_botocore_has_its_usages() -> None:
    missing = set(MODEL.shape_for("KeySpec").enum) - set(catalog.KEY_SPEC_USAGES)
    assert missing == set(), f"add to catalog.KEY_SPEC_USAGES: {sorted(missing)}"


def test_every_key_usage_of_botocore_is_known() -> None:
    missing = set(MODEL.shape_for("KeyUsageType").enum) - set(catalog.KEY_USAGES)
    assert missing == set(), f"add to catalog.KEY_USAGES: {sorted(missing)}"
    # and every usage can be chosen by some key spec
    assert {u for usages in catalog.KEY_SPEC_USAGES.values() for u in usages} == set(
        catalog.KEY_USAGES
    )


def test_every_grant_operation_of_botocore_is_known_and_fits_some_key() -> None:
    model_ops = set(MODEL.shape_for("GrantOperation").enum)
    assert model_ops - set(catalog.GRANT_OPERATIONS) == set()
    fitting = {
        op
        for spec, usages in catalog.KEY_SPEC_USAGES.items()
        for usage in usages
        for op in catalog.grant_operations(spec, usage)
    }
    assert model_ops - fitting == set()


def test_the_shipped_file_holds_what_the_refresh_script_writes_from_this_botocore() -> None:
    # A superset, not equality: the dependency floors install an older botocore (boto3
    # 1.34), which knows fewer names; the file is refreshed from the newest one.
    shipped, fresh = _shipped(), _script().tables()
    for field in ("actions", "key_specs", "key_usages", "grant_operations"):
        missing = set(fresh[field]) - set(shipped[field])
        assert not missing, f"{field} lacks {sorted(missing)}: run scripts/refresh_kms_actions.py"
    assert set(shipped["key_specs"]) == set(catalog.KEY_SPECS)
    assert set(shipped["key_usages"]) == set(catalog.KEY_USAGES)


@pytest.mark.parametrize("spec", ["ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"])
def test_ml_kem_keys_encapsulate_and_decapsulate_only(spec: str) -> None:
    # CreateKey's KeyUsage: "For asymmetric KMS keys with ML-KEM key pairs, specify
    # ENCAPSULATE_DECAPSULATE."
    assert catalog.KEY_SPEC_USAGES[spec] == ("ENCAPSULATE_DECAPSULATE",)
    assert catalog.default_key_usage(spec) == "ENCAPSULATE_DECAPSULATE"
    assert not catalog.can_rotate_automatically(spec, catalog.ORIGIN_AWS_KMS)
    ops = catalog.grant_operations(spec, "ENCAPSULATE_DECAPSULATE")
    assert {"Encapsulate", "Decapsulate", "GetPublicKey"} <= set(ops)
    assert not {"Decrypt", "Sign", "GenerateDataKey"} & set(ops)


def test_operation_classes_cover_decapsulation_and_name_real_actions() -> None:
    assert catalog.operation_class("kms:Decapsulate") == "decapsulation"
    assert catalog.operation_class("Sign") == "sign"
    assert catalog.operation_class("kms:Encapsulate") is None  # public-key operation
    assert catalog.operation_class("kms:GenerateDataKeyWithoutPlaintext") is None
    assert set(catalog.KMS_ACTIONS) >= catalog.KEY_HOLDER_OPERATIONS
    assert catalog.KEY_HOLDER_OPERATIONS <= catalog.GRANT_SENSITIVE_OPERATIONS


@pytest.mark.parametrize("action", ["kms:Decapsulate", "kms:Encapsulate"])
def test_ml_kem_actions_are_not_unknown_names(action: str) -> None:
    doc = policy(allow(role("App"), action))
    assert [h for h in hits(unknown_names, head=doc) if action in h.message] == []


def test_a_misspelt_ml_kem_action_is_still_unknown() -> None:
    found = hits(unknown_names, head=policy(allow(role("App", OTHER_ACCOUNT), "kms:Decapsulat")))
    assert any("kms:Decapsulat" in h.message for h in found)
