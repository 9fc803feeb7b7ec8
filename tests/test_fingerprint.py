"""The plan's fingerprint is hashed piece by piece; its value must not change with that:
a plan saved by an earlier version still applies (apply compares the two digests)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from reconciler.state import Grant, ObservedTarget, fingerprint
from tests.factories import IDENTITY, USE_STATEMENT, observed, observed_key, policy_with


def rich() -> ObservedTarget:
    """Every part the digest covers: a multi-Region key with a replica and a grant, a key
    pending deletion with AWS and non-ASCII tags and no policy, an unmanaged key, aliases
    (one unused, one the apply lock's), another Region's aliases, an unreadable key."""
    grant = Grant(
        grantee_principal="arn:aws:iam::111122223333:role/App",
        operations=("Decrypt", "Encrypt"),
        name="app-use",
        grant_id="g-1",
    )
    replica = observed_key(
        None,
        "mrk-eu",
        tags={"kms-reconciler:replica-of": "app"},
        region="eu-west-1",
        policy=policy_with(USE_STATEMENT),
    )
    app = observed_key(
        "app",
        "mrk-1",
        grants=(grant,),
        multi_region=True,
        primary_region="us-east-1",
        member_regions=("us-east-1", "eu-west-1"),
        replicas={"eu-west-1": replica},
        deletion_date=datetime(2026, 1, 2, tzinfo=timezone.utc),
    )
    pending = observed_key(
        "b",
        key_state="PendingDeletion",
        policy=None,
        description=None,
        tags={"aws:cloudformation:stack": "s", "Ünïcode": "välue"},
    )
    stranger = observed_key(None, "unmanaged-1")
    aliases: dict[str, str | None] = {
        "alias/app": "mrk-1",
        "alias/b": pending.key_id,
        "alias/free": None,
        "alias/kms-reconciler/lock": "x",
    }
    return replace(
        observed(app, pending, stranger, aliases=aliases),
        region_aliases={"eu-west-1": {"alias/app": "mrk-eu"}},
        unreadable={"zz": "ListResourceTags: AccessDeniedException"},
    )


# Computed by the fingerprint before it was hashed piece by piece (one json.dumps of the
# whole document); the same state must keep the same digest.
@pytest.mark.parametrize(
    ("also", "grants_for", "unreadable", "expected"),
    [
        pytest.param(
            (),
            None,
            True,
            "2ac3344a8379710eff677a66ab5122e510ccaebcdb7dec36872a0a527a14ee96",
            id="every-grant",
        ),
        pytest.param(
            ("unmanaged-1",),
            ("app",),
            True,
            "902ce933aad38d7473c82ce6a445297320dd6ccfebb789a782fac3d8ded33970",
            id="adopted-and-grants-of-one",
        ),
        pytest.param(
            (),
            None,
            False,
            "010995449ac66721dc13d87d59292f36f26498cbd28f57a116e1a6292509b296",
            id="nothing-unreadable",
        ),
    ],
)
def test_the_fingerprint_of_a_state_is_what_it_was(
    also: tuple[str, ...], grants_for: tuple[str, ...] | None, unreadable: bool, expected: str
) -> None:
    state = rich() if unreadable else replace(rich(), unreadable={})
    assert fingerprint(state, IDENTITY, also, grants_for) == f"sha256:{expected}"


def test_the_fingerprint_sees_a_change_in_any_key() -> None:
    base = rich()
    keys = list(base.keys)
    keys[1] = replace(keys[1], description="changed")
    assert fingerprint(replace(base, keys=tuple(keys)), IDENTITY) != fingerprint(base, IDENTITY)
