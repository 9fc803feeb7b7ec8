"""``policy.only_widens``: the plain case in which a policy change removes no access, decided
without the policy-semantics engine (the planner asks it before ``removes_access`` asks
the engine). It may say "not plainly" for a change that removes nothing; it must never
say "only widens" for a change that removes something."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.policy import only_widens, removes_access
from tests.test_semantics import ALL_CASES, APP, RB, Doc, X, allow, deny, pol
from tests.test_semantics_corpus import CORPUS_CASES

ENCRYPT = "kms:Encrypt"
USE = ["kms:Encrypt", "kms:Decrypt"]
VIA = {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}


def rows() -> list[Any]:
    """Every pair worked out by hand, both ways: (base, head, what the rules say)."""
    out = []
    for param in ALL_CASES + CORPUS_CASES:
        base, head, expected = param.values
        if base is None or head is None:
            continue
        lost = any(sign == "-" for _, _, sign in expected)
        gained = any(sign == "+" for _, _, sign in expected)
        out.append(pytest.param(base, head, lost, id=f"{param.id}"))
        out.append(pytest.param(head, base, gained, id=f"{param.id}-mirrored"))
    return out


ROWS = rows()


@pytest.mark.parametrize(("base", "head", "loses"), ROWS)
def test_never_says_only_widens_when_the_rules_say_access_is_lost(
    base: Doc, head: Doc, loses: bool
) -> None:
    if only_widens(base, head):
        assert not loses


def test_it_decides_a_good_share_of_the_hand_worked_pairs() -> None:
    # otherwise the test above proves nothing
    decided = sum(only_widens(p.values[0], p.values[1]) for p in ROWS)
    assert decided >= 40, decided


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(pol(allow(X, ENCRYPT)), pol(allow([X, APP], ENCRYPT)), True, id="principal"),
        pytest.param(pol(allow(X, ENCRYPT)), pol(allow(X, USE)), True, id="action"),
        pytest.param(
            pol(allow(X, ENCRYPT)), pol(allow(X, ENCRYPT), allow(RB, USE)), True, id="statement"
        ),
        pytest.param(
            pol(allow(X, ENCRYPT, Sid="A")), pol(allow(X, USE, Sid="B")), True, id="sid-renamed"
        ),
        pytest.param(
            pol(allow(X, ENCRYPT), deny(APP, USE)), pol(allow(X, ENCRYPT)), True, id="deny-dropped"
        ),
        pytest.param(
            pol(allow([X, APP], ENCRYPT)), pol(allow(X, ENCRYPT)), False, id="principal-removed"
        ),
        pytest.param(pol(allow(X, USE)), pol(allow(X, ENCRYPT)), False, id="action-removed"),
        pytest.param(
            pol(allow(X, ENCRYPT)), pol(allow(X, ENCRYPT), deny(APP, USE)), False, id="deny-added"
        ),
        pytest.param(
            pol(allow(X, ENCRYPT)), pol(allow(X, ENCRYPT, VIA)), False, id="condition-added"
        ),
        pytest.param(
            pol(allow(X, ENCRYPT, VIA)),
            pol(allow(X, ENCRYPT)),
            False,
            id="condition-dropped-not-plain",
        ),
        pytest.param(
            pol(allow(X, ENCRYPT)),
            {**pol(allow(X, USE)), "Version": "2008-10-17"},
            False,
            id="version-changed",
        ),
        pytest.param(
            pol(allow(None, ENCRYPT, NotPrincipal={"AWS": X})),
            pol(allow(None, ENCRYPT, NotPrincipal={"AWS": [X, APP]})),
            False,
            id="not-principal-grown",
        ),
    ],
)
def test_plain_widening(before: Doc, after: Doc, expected: bool) -> None:
    assert only_widens(before, after) is expected
    if expected:
        assert not removes_access(before, after)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Allow", "Allow", True),
        ("Allow", "Deny", False),
        ({"Bool": {"k": ["true"]}}, {"Bool": {"k": ["true"]}}, True),
        ({"a": ["1"], "b": ["2"]}, {"b": ["2"], "a": ["1"]}, True),  # JSON has no key order
        ({"Bool": {"k": [True]}}, {"Bool": {"k": [True]}}, True),
        ({"Bool": {"k": [True]}}, {"Bool": {"k": [1]}}, False),  # == in Python only
        ([1], [1.0], False),
        (1, True, False),
        (0.0, -0.0, False),
        ("true", True, False),
        (None, None, True),
    ],
    ids=[
        "string",
        "other-string",
        "strings-only",
        "key-order",
        "bool",
        "bool-vs-int",
        "int-vs-float",
        "int-vs-bool",
        "zero-vs-minus-zero",
        "text-vs-bool",
        "null",
    ],
)
def test_same_is_equal_as_json(a: Any, b: Any, same: bool) -> None:
    import json

    from reconciler.policy import _same

    def as_json(v: Any) -> str:
        return json.dumps(v, sort_keys=True)

    assert _same(a, b) is same and _same(b, a) is same
    assert (as_json(a) == as_json(b)) is same
