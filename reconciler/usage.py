"""Pure: which keys a plan needs the last use of, the plan annotated with it, and the
apply guard that refuses to retire a key in use.

Usage is a second, small observation made after planning: the planner stays a pure
function of (desired, observed) and never asks for usage; ``needed`` reads the finished
plan for the entries that retire or restrict a key (disable, schedule deletion, delete an
alias, revoke a grant, a policy change that removes access), the command reads
GetKeyLastUsage for those keys only (``observe.read_usage``), and ``annotate`` puts the
answers into the plan, where the formatters show them beside the entries and apply's
guard (``in_use``) reads them. A plan with no such entry reads nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from reconciler.plan import Operation, OpKind, TargetPlan
from reconciler.state import KeyUsage

# The operations that retire a key (apply guards them with retire_guard_days).
RETIRING: frozenset[OpKind] = frozenset(
    {OpKind.DISABLE_KEY, OpKind.DELETE_IMPORTED_KEY_MATERIAL, OpKind.SCHEDULE_KEY_DELETION}
)
# The operations whose key's last use the plan shows: retiring it, or taking an alias or
# access from it. PutKeyPolicy only when it removes access (marked destructive).
SHOWN: frozenset[OpKind] = RETIRING | {
    OpKind.DELETE_ALIAS,
    OpKind.UPDATE_ALIAS,  # the key the alias moves away from (Operation.usage_key_id)
    OpKind.REVOKE_GRANT,
}

UsageRef = tuple[str, str | None]  # (key ID, Region: None for the target's)


def shows_usage(op: Operation) -> bool:
    if op.usage_key_id is None:
        return False  # a key this plan creates has no use yet
    if op.kind is OpKind.PUT_KEY_POLICY:
        return op.destructive
    return op.kind in SHOWN


def needed(tp: TargetPlan) -> tuple[UsageRef, ...]:
    """The keys (and Regions) whose last use the plan should show, each once, in plan
    order."""
    seen: dict[UsageRef, None] = {}
    for op in tp.operations:
        if shows_usage(op):
            seen.setdefault((op.usage_key_id or "", op.region), None)
    return tuple(seen)


def annotate(tp: TargetPlan, usage: Iterable[KeyUsage], reads: int) -> TargetPlan:
    """The target plan with the usage read for it (replacing any it had)."""
    return replace(tp, usage=tuple(usage), usage_reads=reads)


def as_of(found: Iterable[KeyUsage], now: datetime) -> tuple[KeyUsage, ...]:
    """The usage read, as if read at ``now`` (a run whose clock is set: its idle days and
    the guard are reckoned from that time)."""
    return tuple(replace(u, read_at=now) for u in found)


def in_use(tp: TargetPlan, guard_days: int) -> list[str]:
    """Apply's guard: one line for every key the plan disables or schedules for deletion
    that was used within ``guard_days``, whose use could not be read, or whose use is not
    known for the whole guard period (tracking began since, on a key older than that)."""
    lines: list[str] = []
    done: set[UsageRef] = set()
    for op in tp.operations:
        if op.kind not in RETIRING or op.key_id is None:
            continue
        ref = (op.key_id, op.region)
        if ref in done:
            continue
        done.add(ref)
        where = f" in {op.region}" if op.region else ""
        what = f"{op.kind.value} key '{op.key}' ({op.key_id}){where}"
        u = tp.usage_of(op.key_id, op.region)
        if u is None:
            lines.append(f"refusing to {what}: its last use was not read")
        elif u.error:
            needs = (
                "the tool needs kms:GetKeyLastUsage on it"
                if u.error == "AccessDeniedException"
                else "read it again later"
            )
            lines.append(
                f"refusing to {what}: cannot tell whether it is in use, GetKeyLastUsage "
                f"answered {u.error} ({needs})"
            )
        elif u.last_used is not None:
            if u.read_at - u.last_used < timedelta(days=guard_days):
                lines.append(
                    f"refusing to {what}: {u.describe()} "
                    f"({u.last_used.strftime('%Y-%m-%d %H:%M UTC')}), within "
                    f"retire_guard_days ({guard_days})"
                )
        elif (
            u.tracking_start is not None
            and not u.tracked_before_creation()
            and u.read_at - u.tracking_start < timedelta(days=guard_days)
        ):
            lines.append(
                f"refusing to {what}: {u.describe()}, fewer than retire_guard_days "
                f"({guard_days}) ago, so a use before then is unknown"
            )
    return lines


def unused_for(u: KeyUsage, days: int) -> bool:
    """No use recorded for at least ``days`` (known usage only)."""
    idle = u.idle_days()
    return idle is not None and idle >= days
