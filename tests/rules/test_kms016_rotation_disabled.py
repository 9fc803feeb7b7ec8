"""KMS016 corpus: automatic rotation off on keys that can and cannot rotate."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.findings import Severity
from reconciler.rules import rotation_disabled, rules
from tests.rules.harness import hits, policy

FIRES: dict[str, dict[str, Any]] = {
    "symmetric-rotation-off": {"rotation_enabled": False},
    "multi-region-symmetric": {"rotation_enabled": False, "multi_region": True},
    "disabled-key-rotation-off": {"rotation_enabled": False, "enabled": False},
}
QUIET: dict[str, dict[str, Any]] = {
    "rotation-on": {"rotation_enabled": True},
    "rotation-unknown": {"rotation_enabled": None},
    "hmac-rotation-off": {
        "rotation_enabled": False,
        "key_spec": "HMAC_256",
        "key_usage": "GENERATE_VERIFY_MAC",
    },
    "rsa-rotation-off": {
        "rotation_enabled": False,
        "key_spec": "RSA_2048",
        "key_usage": "SIGN_VERIFY",
    },
    "ecc-rotation-off": {
        "rotation_enabled": False,
        "key_spec": "ECC_NIST_P256",
        "key_usage": "SIGN_VERIFY",
    },
    "imported-material-rotation-off": {"rotation_enabled": False, "origin": "EXTERNAL"},
}


@pytest.mark.parametrize("state", FIRES.values(), ids=FIRES.keys())
def test_fires(state: dict[str, Any]) -> None:
    (hit,) = hits(rotation_disabled, head=policy(), state=state)
    assert hit.sid is None
    assert (hit.severity or rotation_disabled.RULE.severity) is Severity.LOW
    assert "rotation.enabled: true" in hit.message


@pytest.mark.parametrize("state", QUIET.values(), ids=QUIET.keys())
def test_quiet(state: dict[str, Any]) -> None:
    assert hits(rotation_disabled, head=policy(), state=state) == []


def test_removed_key_is_quiet() -> None:
    assert hits(rotation_disabled, head=None, base=policy()) == []


def test_registered() -> None:
    assert rotation_disabled in rules()
