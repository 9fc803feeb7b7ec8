"""Plan text, Markdown and JSON, checked against golden files.

Regenerate after an intended change with ``pytest --update-golden`` and review the diff.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from reconciler import formatters
from reconciler.plan import Plan, from_dict, to_dict
from reconciler.planner import PlanOptions, make_plan
from reconciler.state import Retirement
from tests.factories import (
    USE_STATEMENT,
    desired,
    desired_key,
    observed,
    observed_key,
    policy_with,
)

GOLDEN = Path(__file__).parent / "golden"


def mixed_plan() -> Plan:
    """One of everything: create, update of every field, recover, delete, orphan, warning."""
    narrowed = dict(USE_STATEMENT, Action=["kms:Decrypt"])
    target_plan = make_plan(
        desired(
            desired_key("new-key", description="Brand new", line=3),
            desired_key(
                "changed",
                line=12,
                description="After",
                enabled=False,
                rotation_period_days=180,
                tags={"Owner": "team", "Env": "prod"},
                aliases=frozenset({"alias/changed", "alias/changed-2"}),
                policy=policy_with(narrowed),
            ),
            desired_key("back", line=30),
            desired_key("same", line=40, retire=Retirement(disable_on=date(2099, 1, 15))),
        ),
        observed(
            observed_key(
                "changed",
                "c0ffee00-0000-0000-0000-000000000001",
                description="Before",
                tags={"Owner": "team", "Stale": "yes"},
                policy=policy_with(USE_STATEMENT),
                aliases=frozenset({"alias/changed", "alias/changed-old"}),
            ),
            observed_key(
                "back",
                "beef0000-0000-0000-0000-000000000002",
                key_state="PendingDeletion",
                rotation_enabled=None,
            ),
            observed_key("same", "5a5e0000-0000-0000-0000-000000000003"),
            observed_key("retired", "dead0000-0000-0000-0000-000000000004"),
        ),
        PlanOptions(allow_destroy=True),
    )
    return Plan(targets=(target_plan,), allow_destroy=True, inventory="keyspecs")


def unchanged_plan() -> Plan:
    target_plan = make_plan(
        desired(desired_key("same")), observed(observed_key("same", "5a5e0000-1"))
    )
    return Plan(targets=(target_plan,), inventory="keyspecs")


def check_golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}: run pytest --update-golden"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


CASES = {
    "plan-mixed.txt": lambda: formatters.plan_text(mixed_plan()),
    "plan-mixed.md": lambda: formatters.plan_markdown(mixed_plan()),
    "plan-mixed.json": lambda: formatters.plan_json(mixed_plan()),
    "plan-unchanged.txt": lambda: formatters.plan_text(unchanged_plan()),
    "plan-unchanged.md": lambda: formatters.plan_markdown(unchanged_plan()),
}


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, update_golden: bool) -> None:
    check_golden(name, CASES[name](), update_golden)


def test_text_plan_essentials() -> None:
    text = formatters.plan_text(mixed_plan())
    assert 'key "new-key" will be created' in text
    assert 'key "changed" (c0ffee00-0000-0000-0000-000000000001) will be updated in place' in text
    assert 'key "back" (beef0000-0000-0000-0000-000000000002) will be recovered' in text
    assert 'key "retired" (dead0000-0000-0000-0000-000000000004) will be scheduled' in text
    assert "~ description" in text and '"Before" -> "After"' in text
    assert "Action: - kms:Encrypt" in text
    assert "[destructive" in text
    assert text.rstrip().endswith("Plan: 1 to create, 2 to update, 1 to delete.")
    assert 'key "same"' not in text  # no-ops are counted, not listed


def test_unchanged_plan_says_no_changes() -> None:
    assert "No changes." in formatters.plan_text(unchanged_plan())
    assert "No changes." in formatters.plan_markdown(unchanged_plan())


def test_json_plan_is_versioned_and_round_trips() -> None:
    plan = mixed_plan()
    data = json.loads(formatters.plan_json(plan))
    assert data["format_version"] == 1
    assert data["summary"]["create"] == 1 and data["summary"]["delete"] == 1
    again = from_dict(data)
    assert to_dict(again) == to_dict(plan)
    assert again.targets[0].operations == plan.targets[0].operations


def test_saved_plan_of_another_version_is_refused() -> None:
    data = to_dict(unchanged_plan())
    data["format_version"] = 99
    with pytest.raises(ValueError, match="format_version 99"):
        from_dict(data)


def test_colour_is_applied_only_through_the_style_function() -> None:
    seen: list[str] = []

    def style(text: str, colour: str) -> str:
        seen.append(colour)
        return f"<{colour}>{text}</{colour}>"

    text = formatters.plan_text(mixed_plan(), style)
    assert "<green>" in text and "<red>" in text and "<yellow>" in text
    assert "\x1b[" not in formatters.plan_text(mixed_plan())


def test_markdown_of_a_huge_plan_is_shortened_to_fit_a_github_comment() -> None:
    keys = [desired_key(f"key-{i:04d}", description=f"key number {i}") for i in range(1500)]
    plan = Plan(targets=(make_plan(desired(*keys), observed()),))
    full = formatters.plan_text(plan)
    assert len(full) > 200_000
    text = formatters.plan_markdown(plan)
    assert len(text) <= formatters.plan.MARKDOWN_LIMIT
    assert "left out to fit" in text
    assert "Plan: 1500 to create, 0 to update, 0 to delete." in text
    assert text.count("```") % 2 == 0


def test_the_plan_text_comes_key_by_key() -> None:
    # commands write a plan piece by piece: no piece holds more than one key's lines, and
    # the pieces are the text (goldens check the text itself)
    keys = [desired_key(f"key-{i:04d}", description=f"key number {i}") for i in range(300)]
    plan = Plan(targets=(make_plan(desired(*keys), observed()),))
    chunks = list(formatters.plan_chunks(plan))
    assert "".join(chunks) == formatters.plan_text(plan)
    assert all(chunk.endswith("\n") for chunk in chunks)
    with_keys = [chunk for chunk in chunks if 'key "key-' in chunk]
    assert len(with_keys) == 300
    assert all(chunk.count('key "key-') == 1 for chunk in with_keys)
    assert max(len(chunk) for chunk in chunks) < len(formatters.plan_text(plan)) / 10
