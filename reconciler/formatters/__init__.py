"""Plans, drift reports and reviews as text, JSON, Markdown and SARIF. Pure: values in,
strings out; colour comes in through a ``Style`` function."""

from reconciler.formatters.plan import (
    ACTIONS,
    PLAN_FORMATS,
    Style,
    no_style,
    plan_chunks,
    plan_json,
    plan_markdown,
    plan_text,
    statement_summary,
    summary_line,
)

__all__ = [
    "ACTIONS",
    "PLAN_FORMATS",
    "Style",
    "no_style",
    "plan_chunks",
    "plan_json",
    "plan_markdown",
    "plan_text",
    "statement_summary",
    "summary_line",
]
