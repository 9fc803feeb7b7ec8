"""Plans as text, JSON and Markdown. Pure: values in, strings out.

Text follows Terraform's plan: one header per key, ``+ ~ -`` per field, policy changes
statement by statement, destructive changes marked, and a closing
``Plan: N to create, N to update, N to delete.`` or ``No changes.``.
Colour is applied through a ``Style`` function the caller passes (identity when off).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from reconciler.catalog import ON_DEMAND_ROTATIONS_MAX
from reconciler.plan import (
    Action,
    FieldChange,
    KeyPlan,
    Operation,
    OpKind,
    Plan,
    TargetPlan,
    to_dict,
)
from reconciler.policy import StatementChange
from reconciler.state import RotationInfo

Style = Callable[[str, str], str]  # (text, colour name) -> text


def no_style(text: str, colour: str) -> str:
    return text


# action -> (symbol, colour, verb phrase); a test checks every Action has an entry.
ACTIONS: Mapping[Action, tuple[str, str, str]] = {
    Action.CREATE: ("+", "green", "will be created"),
    Action.UPDATE: ("~", "yellow", "will be updated in place"),
    Action.RECOVER: ("~", "cyan", "will be recovered from pending deletion"),
    Action.DELETE: ("-", "red", "will be scheduled for deletion"),
    Action.NOOP: (" ", "reset", "is up to date"),
}
_CHANGE_COLOUR = {"+": "green", "~": "yellow", "-": "red"}
# a retirement's stage (``reconciler.retire.Stage`` values) -> colour; others dim
_RETIREMENT_COLOUR = {
    "disable": "yellow",
    "delete": "red",
    "stopped": "red",
    "unknown": "yellow",
    "protected": "magenta",
}


def summary_line(plan: Plan) -> str:
    if not plan.has_changes:
        return "No changes. The keys match the inventory."
    line = (
        f"Plan: {plan.count(Action.CREATE)} to create, "
        f"{plan.count(Action.UPDATE, Action.RECOVER)} to update, "
        f"{plan.count(Action.DELETE)} to delete"
    )
    replicas = [
        (plan.count_replicas(Action.CREATE), "to create"),
        (plan.count_replicas(Action.UPDATE, Action.RECOVER), "to update"),
        (plan.count_replicas(Action.DELETE), "to delete"),
    ]
    if any(n for n, _ in replicas):
        line += "; multi-Region replicas: " + ", ".join(f"{n} {what}" for n, what in replicas)
    return line + "."


def plan_text(plan: Plan, style: Style = no_style, *, rotation: bool = False) -> str:
    """The plan; with ``rotation``, each target's rotation details (last and next rotation,
    on-demand count) after its operations. The text of ``plan_chunks``, whole."""
    return "".join(plan_chunks(plan, style, rotation=rotation))


def plan_chunks(plan: Plan, style: Style = no_style, *, rotation: bool = False) -> Iterator[str]:
    """``plan_text`` piece by piece (a key, a target's operations, ...; each piece whole
    lines), so that a command can write a plan of 10,000 keys without holding its text."""

    def text(lines: Iterable[str]) -> str:
        return "".join(line + "\n" for line in lines)

    if plan.partial_keys:
        yield text(
            [
                style(
                    f"Partial plan: only key(s) {', '.join(plan.partial_keys)} (--key); the "
                    "other keys, and keys no spec declares, are not planned.",
                    "yellow",
                ),
                "",
            ]
        )
    for tp in plan.targets:
        for block in _target_blocks(tp, style):
            if block:
                yield text(block)
        if rotation and tp.rotation:
            yield text(["", "  Rotation:", *(f"    {rotation_line(r)}" for r in tp.rotation)])
        yield "\n"
    destructive = plan.destructive_operations
    if destructive:
        yield text(
            [
                style(
                    f"{len(destructive)} destructive operation(s) marked [destructive]: apply "
                    "refuses them without --allow-destroy.",
                    "red",
                )
            ]
        )
    yield text([style(summary_line(plan), "bold")])


def _target_lines(tp: TargetPlan, style: Style) -> list[str]:
    return [line for block in _target_blocks(tp, style) for line in block]


def _target_blocks(tp: TargetPlan, style: Style) -> Iterator[list[str]]:
    """A target's plan text as blocks of lines: its header, each changed key, the rest."""
    t = tp.target
    who = f" as {tp.caller_arn}" if tp.caller_arn else ""
    lines = [style(f"Target {t.name}: account {t.account_id}, {t.region}{who}", "bold")]
    if tp.usage or tp.usage_reads:
        lines.append(
            f"  Key usage: {tp.usage_reads} read(s) (GetKeyLastUsage) for the "
            f"{len(tp.usage)} key(s) this plan retires or takes access or an alias from"
        )
    yield lines
    changed = 0
    for key in tp.keys:
        if key.action is not Action.NOOP:
            changed += 1
            yield ["", *_key_lines(key, style, tp)]
    lines = []
    for orphan in tp.orphans:
        lines.append("")
        lines.append(
            style(
                f'  ! key "{orphan.name}" ({orphan.key_id}) is orphaned: {orphan.reason}', "magenta"
            )
        )
    for r in tp.retirements:
        colour = _RETIREMENT_COLOUR.get(r.stage, "dim")
        lines.append(style(f'  retirement of "{r.key}" ({r.key_id}): {r.message}', colour))
    for warning in tp.warnings:
        lines.append(style(f"  warning: {warning}", "yellow"))
    yield lines
    if tp.operations:
        yield ["", f"  Operations, in order ({sum(op.calls for op in tp.operations)} KMS calls):"]
        width = len(str(len(tp.operations)))
        lines = []
        for i, op in enumerate(tp.operations, 1):
            mark = style("  [destructive]", "red") if op.destructive else ""
            where = f" [{op.region}]" if op.region and op.region not in op.summary else ""
            moved = _op_usage(tp, op) if op.kind is OpKind.UPDATE_ALIAS else ""
            lines.append(
                f"    {i:>{width}}. {op.kind.value:<21} {op.key}{where}: {op.summary}{moved}{mark}"
            )
            if len(lines) == 100:
                yield lines
                lines = []
        yield lines
    unchanged = len(tp.keys) - changed
    if not changed and not tp.orphans:
        yield [f"  No changes: {unchanged} key(s) up to date."]
    elif unchanged:
        yield [f"  {unchanged} key(s) up to date."]


def _usage_line(tp: TargetPlan | None, key: KeyPlan, indent: str, style: Style) -> list[str]:
    """The key's last use, when the plan read it (entries that retire or restrict it)."""
    used = tp.usage_of(key.key_id, key.region) if tp is not None and key.key_id else None
    if used is None:
        return []
    colour = "red" if used.error or used.last_used is not None else "dim"
    return [style(f"{indent}# usage: {used.describe()}", colour)]


def _key_lines(key: KeyPlan, style: Style, tp: TargetPlan | None = None) -> list[str]:
    symbol, colour, verb = ACTIONS[key.action]
    ident = f" ({key.key_id})" if key.key_id else ""
    where = f"  # {key.source.file}:{key.source.line}" if key.source else ""
    head = f'  {symbol} key "{key.name}"{ident} {verb}'
    if key.destructive:
        head += " [destructive]"
    lines = [style(head, colour) + style(where, "dim")]
    if key.reason:
        lines.append(style(f"      # {key.reason}", "dim"))
    lines.extend(_usage_line(tp, key, "      ", style))
    width = max((len(c.field) for c in key.changes), default=0)
    for change in key.changes:
        lines.extend(_change_lines(change, width, style))
    for replica in key.replicas:
        lines.extend(_replica_lines(replica, style, tp))
    return lines


def _replica_lines(replica: KeyPlan, style: Style, tp: TargetPlan | None = None) -> list[str]:
    """A multi-Region key's member in another Region, under its key: what KMS keeps per
    replica (description, enabled, tags, aliases, policy)."""
    symbol, colour, verb = ACTIONS[replica.action]
    head = f"    {symbol} replica in {replica.region} {verb}"
    if replica.destructive:
        head += " [destructive]"
    lines = [style(head, colour)]
    if replica.reason:
        lines.append(style(f"        # {replica.reason}", "dim"))
    lines.extend(_usage_line(tp, replica, "        ", style))
    width = max((len(c.field) for c in replica.changes), default=0)
    for change in replica.changes:
        if change.field == "region":
            continue  # the header says it
        lines.extend("  " + line for line in _change_lines(change, width, style))
    return lines


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "null"
    return json.dumps(value, default=str)


def _change_lines(change: FieldChange, width: int, style: Style) -> list[str]:
    name = change.field.ljust(width)
    mark = ""
    if change.destructive:
        mark = style(
            f"  [destructive: {change.reason}]" if change.reason else "  [destructive]", "red"
        )
    elif change.reason:
        mark = style(f"  # {change.reason}", "dim")
    if change.field == "policy":
        symbol = "+" if change.before is None else "~"
        lines = [style(f"      {symbol} {name}   ({change.after})", _CHANGE_COLOUR[symbol]) + mark]
        for statement in change.statements:
            lines.extend(_statement_lines(statement, style))
        return lines
    if change.before is None:
        line = f"      + {name} = {_value(change.after)}"
        colour = "green"
    elif change.after is None:
        line = f"      - {name} = {_value(change.before)}"
        colour = "red"
    else:
        line = f"      ~ {name} = {_value(change.before)} -> {_value(change.after)}"
        colour = "yellow"
    return [style(line, colour) + mark]


_STATEMENT_SYMBOL = {"added": "+", "removed": "-", "changed": "~"}


def _statement_lines(change: StatementChange, style: Style) -> list[str]:
    symbol = _STATEMENT_SYMBOL[change.kind]
    label = f'statement "{change.sid}"' if change.sid else "statement (no Sid)"
    lines = [style(f"          {symbol} {label}", _CHANGE_COLOUR[symbol])]
    if change.kind == "changed":
        body = list(change.details)
    else:
        body = statement_summary(change.after if change.kind == "added" else change.before)
    lines.extend(f"              {line}" for line in body)
    return lines


def statement_summary(statement: Mapping[str, Any] | None) -> list[str]:
    """A canonical statement as short readable lines: effect, who, what, when."""
    if not statement:
        return []
    out = []
    for name in (
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
    ):
        if name not in statement:
            continue
        value = statement[name]
        if name == "Resource" and value == ["*"]:
            continue
        out.append(f"{name}: {_flat(value)}")
    for operator, conditions in sorted((statement.get("Condition") or {}).items()):
        for cond_key, values in sorted(conditions.items()):
            out.append(f"Condition: {operator} {cond_key} = {_flat(values)}")
    return out


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_flat(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else "unknown"


def rotation_line(r: RotationInfo) -> str:
    state = (
        f"every {r.period_days} days"
        if r.enabled and r.period_days
        else "on"
        if r.enabled
        else "off"
    )
    on_demand = (
        f", {r.on_demand} on-demand (KMS allows {ON_DEMAND_ROTATIONS_MAX})" if r.on_demand else ""
    )
    # With the history read (an on-demand count), no last rotation means never rotated.
    last = _when(r.last) if r.last is not None or r.on_demand is None else "never"
    return f"{r.key} ({r.key_id}): rotation {state}, last {last}, next {_when(r.next)}{on_demand}"


def plan_json(plan: Plan) -> str:
    return json.dumps(to_dict(plan), indent=2, default=str) + "\n"


# GitHub refuses comments and issue bodies over 65,536 characters; stay well below.
MARKDOWN_LIMIT = 60_000


def fit_blocks(render: Callable[[int | None], str], limit: int = MARKDOWN_LIMIT) -> str:
    """``render(max_lines)`` made to fit in ``limit`` characters by shortening its blocks.

    ``render(None)`` is the full text; a smaller ``max_lines`` cuts each block to that many
    lines and says how many were left out.
    """
    text = render(None)
    max_lines = 400
    while len(text) > limit and max_lines >= 1:
        text = render(max_lines)
        max_lines //= 2
    return text


def cut(lines: list[str], max_lines: int | None, what: str) -> list[str]:
    if max_lines is None or len(lines) <= max_lines:
        return lines
    left = len(lines) - max_lines
    kept = lines[:max_lines]
    if sum(1 for line in kept if line.startswith("```")) % 2:
        kept.append("```")  # never leave a code block open
    return [*kept, f"... {left} more line(s) left out to fit; {what}"]


def plan_markdown(plan: Plan) -> str:
    """A pull-request comment: a summary table, then each target's plan as a diff block."""
    return fit_blocks(lambda max_lines: _plan_markdown(plan, max_lines))


def _plan_markdown(plan: Plan, max_lines: int | None) -> str:
    lines = ["## kms-reconciler plan", "", f"**{summary_line(plan)}**", ""]
    lines.append("| target | account | region | create | update | delete | unchanged | orphaned |")
    lines.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for tp in plan.targets:
        t = tp.target
        lines.append(
            f"| {t.name} | {t.account_id} | {t.region} | {tp.count(Action.CREATE)} | "
            f"{tp.count(Action.UPDATE, Action.RECOVER)} | {tp.count(Action.DELETE)} | "
            f"{tp.count(Action.NOOP)} | {len(tp.orphans)} |"
        )
    destructive = plan.destructive_operations
    if destructive:
        lines += [
            "",
            f":warning: **{len(destructive)} destructive operation(s)**: apply needs "
            "`--allow-destroy`.",
        ]
        lines += cut(
            [
                f"- `{op.kind.value}` on `{op.key}`: {op.summary}" + _op_usage(tp, op)
                for tp in plan.targets
                for op in tp.operations
                if op.destructive
            ],
            max_lines,
            "the full list is in the plan artifact",
        )
    for tp in plan.targets:
        lines += ["", f"### {tp.target.name}", ""]
        body = _target_lines(tp, no_style)[1:]
        while body and not body[0].strip():
            body.pop(0)
        body = cut(body, max_lines, "run `kms-reconciler plan` or see the plan artifact")
        lines += ["```diff", *(_diff_line(line) for line in body), "```"]
    return "\n".join(lines) + "\n"


def _op_usage(tp: TargetPlan, op: Operation) -> str:
    used = tp.usage_of(op.usage_key_id, op.region) if op.usage_key_id else None
    if used is None:
        return ""
    whose = f"key {op.from_key_id}: " if op.kind is OpKind.UPDATE_ALIAS else ""
    return f" ({whose}{used.describe()})"


def _diff_line(line: str) -> str:
    """Move a change symbol to column one so GitHub colours the line (``~`` becomes ``!``)."""
    stripped = line.lstrip()
    if stripped[:2] in ("+ ", "- ", "~ ", "! "):
        at = len(line) - len(stripped)
        symbol = "!" if stripped[0] in "~!" else stripped[0]
        return symbol + line[1:at] + " " + stripped[1:]
    return line


PLAN_FORMATS: Mapping[str, Callable[[Plan], str]] = {
    "json": plan_json,
    "markdown": plan_markdown,
}


def bullet_list(items: Iterable[str]) -> str:
    return "\n".join(f"  - {item}" for item in items)
