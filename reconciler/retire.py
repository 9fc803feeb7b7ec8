"""Pure: where a key's staged retirement (a spec's ``retire:``) stands, and what is due.

A retirement has two stages, and its state is read from KMS, never from a state file:

1. **disable**: when ``disable_on`` is reached (the plan's date, UTC), or when KMS
   recorded no use for ``after_unused_days`` (GetKeyLastUsage; a key with no use since
   tracking began counts from the tracking start date), the key is disabled and tagged
   with the retire tag (``kms-reconciler:retire-disabled-on`` = the UTC time).
2. **delete**: once the key has been disabled with that tag for ``observe_days`` calendar
   days (UTC) and no use is recorded after the tag's time, plans offer ScheduleKeyDeletion
   with the spec's deletion window (destructive: apply needs ``--allow-destroy``);
   ``deletion_protection`` stops it there.

A use recorded after the tag's time stops the retirement: no deletion is offered, the key
is left as it is (enabled or not), and drift reports it (``retirement-used``). A key in
PendingDeletion with the tag is retired: plans leave it alone (no recovery).

``decide`` takes the observed key, its usage (None: not read) and ``now``; the planner
applies the decision. ``usage_refs`` says which keys a plan must read the usage of before
planning (keys with ``retire:``), which the command reads and passes in ``PlanOptions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import Enum

from reconciler.plan import OpKind, TargetPlan
from reconciler.state import (
    DesiredTarget,
    KeyUsage,
    ObservedKey,
    ObservedTarget,
    Retirement,
    retire_tag,
)


class Stage(str, Enum):
    """Where a retirement stands (the value is what JSON plans and drift show)."""

    WAITING = "waiting"  # not due yet: the key is used as declared
    DISABLE = "disable"  # stage 1 due: disable (and tag) the key now
    OBSERVING = "observing"  # disabled for retirement; the observation period runs
    DELETE = "delete"  # stage 2 due: schedule the key's deletion
    PROTECTED = "protected"  # stage 2 due, but deletion_protection is on
    STOPPED = "stopped"  # used after it was disabled for retirement
    UNKNOWN = "unknown"  # its use could not be read: nothing is decided
    SCHEDULED = "scheduled"  # pending deletion: retired


class Enabled(str, Enum):
    """What the decision wants of the key's enabled state."""

    DECLARED = "declared"  # as the spec says (the retirement has not started)
    DISABLED = "disabled"  # disabled, whatever the spec's `enabled`
    AS_IS = "as-is"  # left as it is (the retirement stopped, or cannot be decided)


@dataclass(frozen=True)
class Decision:
    stage: Stage
    message: str  # one line for the plan: "disable on 2027-01-15", ...
    enabled: Enabled = Enabled.DECLARED
    tag: str | None = None  # the retire tag's value the key must carry (None: none)
    disabled_at: datetime | None = None  # when it was (or is now) disabled for retirement
    used_after: datetime | None = None  # STOPPED: the use recorded after disabling

    @property
    def schedules_deletion(self) -> bool:
        return self.stage is Stage.DELETE


def tag_value(moment: datetime) -> str:
    """The retire tag's value for a key disabled at ``moment``: ISO 8601, UTC, seconds."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_tag(value: str | None) -> datetime | None:
    """The time a retire tag records (a bare date, as a person may write it: the start of
    that day, UTC); None when absent or not a date."""
    if not value:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), timezone.utc)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _day(moment: datetime) -> date:
    return moment.astimezone(timezone.utc).date()


def _why_unknown(u: KeyUsage | None) -> str:
    if u is None:
        return "its last use was not read"
    needs = (
        "the tool needs kms:GetKeyLastUsage on it"
        if u.error == "AccessDeniedException"
        else "read it again later"
    )
    return f"GetKeyLastUsage answered {u.error} ({needs})"


def decide(
    rule: Retirement,
    key: ObservedKey,
    identity_tag: str,
    usage: KeyUsage | None,
    now: datetime,
    protected: bool,
) -> Decision | None:
    """The retirement's stage for ``key`` at ``now``; None when it is none of the
    retirement's business (a key pending deletion without the retire tag is recovered as
    any declared key is)."""
    tagged = key.tags.get(retire_tag(identity_tag))
    since = parse_tag(tagged)
    if key.pending_deletion:
        if tagged is None:
            return None
        when = _day(key.deletion_date).isoformat() if key.deletion_date else "an unknown date"
        return Decision(Stage.SCHEDULED, f"retired: deletion scheduled for {when}", tag=tagged)
    if key.key_state not in ("Enabled", "Disabled"):
        return Decision(
            Stage.UNKNOWN,
            f"key is {key.key_state or 'in an unknown state'}: the retirement waits",
            enabled=Enabled.AS_IS,
            tag=tagged,
        )
    if tagged is not None and since is None:
        return Decision(
            Stage.UNKNOWN,
            f"the tag {retire_tag(identity_tag)}={tagged!r} is not an ISO 8601 time: remove "
            "it or correct it; the retirement waits",
            enabled=Enabled.AS_IS,
            tag=tagged,
        )
    if since is not None:
        return _observing(rule, key, identity_tag, tagged or "", since, usage, now, protected)
    return _before_disabling(rule, key, usage, now)


def _before_disabling(
    rule: Retirement, key: ObservedKey, usage: KeyUsage | None, now: datetime
) -> Decision:
    """Stage 1: disable when due; until then, the key is used as declared."""
    observe = f"; deletion offered {rule.observe_days} days after, if no use is recorded"
    now_tag = tag_value(now)
    verb = "disable the key" if key.key_state == "Enabled" else "mark the disabled key"
    if rule.disable_on is not None:
        if _day(now) < rule.disable_on:
            return Decision(Stage.WAITING, f"disable on {rule.disable_on.isoformat()}{observe}")
        message = f"{verb} now (disable_on {rule.disable_on.isoformat()} reached){observe}"
        if usage is None or usage.error:
            message += f"; its use is unknown: {_why_unknown(usage)}, and apply refuses then"
        return Decision(
            Stage.DISABLE, message, Enabled.DISABLED, tag=now_tag, disabled_at=parse_tag(now_tag)
        )
    days = rule.after_unused_days or 0
    if usage is None or usage.error:
        return Decision(
            Stage.UNKNOWN,
            f"cannot tell whether it was unused for {days} days: {_why_unknown(usage)}",
        )
    idle = usage.idle_days() or 0
    since = usage.last_used or usage.tracking_start
    if idle < days:
        earliest = (
            f" on {(_day(since) + timedelta(days=days)).isoformat()} at the earliest"
            if since
            else ""
        )
        return Decision(
            Stage.WAITING,
            f"disable when unused for {days} days{earliest} ({usage.describe()}){observe}",
        )
    return Decision(
        Stage.DISABLE,
        f"{verb} now: no recorded use for {idle} days, after_unused_days {days} "
        f"({usage.describe()}){observe}",
        Enabled.DISABLED,
        tag=now_tag,
        disabled_at=parse_tag(now_tag),
    )


def _observing(
    rule: Retirement,
    key: ObservedKey,
    identity_tag: str,
    tagged: str,
    since: datetime,
    usage: KeyUsage | None,
    now: datetime,
    protected: bool,
) -> Decision:
    """Stage 2: the key was disabled for retirement at ``since``."""
    disabled = f"disabled for retirement on {_day(since).isoformat()}"
    offered = _day(since) + timedelta(days=rule.observe_days)
    if usage is None or usage.error:
        return Decision(
            Stage.UNKNOWN,
            f"{disabled}; cannot tell whether it was used since: {_why_unknown(usage)}; "
            "no deletion is offered until it can",
            Enabled.AS_IS,
            tag=tagged,
            disabled_at=since,
        )
    if usage.last_used is not None and usage.last_used > since:
        used = usage.last_used.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        operation = usage.operation or "an unknown operation"
        return Decision(
            Stage.STOPPED,
            f"stopped: {disabled}, but used on {used} ({operation}); no deletion is "
            "offered and the key is left as it is. Find the "
            "caller; remove retire: from the spec to cancel the retirement (apply then "
            "removes the tag and the key is enabled as declared)",
            Enabled.AS_IS,
            tag=tagged,
            disabled_at=since,
            used_after=usage.last_used,
        )
    again = (
        "; it was enabled since, outside the tool, with no recorded use: disable it again"
        if key.key_state == "Enabled"
        else ""
    )
    if _day(now) < offered:
        return Decision(
            Stage.OBSERVING,
            f"observing: {disabled}, no use recorded since; deletion offered on "
            f"{offered.isoformat()}{again}",
            Enabled.DISABLED,
            tag=tagged,
            disabled_at=since,
        )
    if protected:
        return Decision(
            Stage.PROTECTED,
            f"{disabled}, no use recorded for {rule.observe_days} days or more, but "
            "deletion_protection is on: set deletion_protection: false to let a plan "
            f"schedule its deletion{again}",
            Enabled.DISABLED,
            tag=tagged,
            disabled_at=since,
        )
    return Decision(
        Stage.DELETE,
        f"{disabled}, no use recorded since (observe_days {rule.observe_days} passed on "
        f"{offered.isoformat()}): schedule its deletion{again}",
        Enabled.DISABLED,
        tag=tagged,
        disabled_at=since,
    )


UsageRef = tuple[str, str | None]


def usage_refs(desired: DesiredTarget, observed: ObservedTarget) -> tuple[UsageRef, ...]:
    """The keys whose last use the planner needs before planning: the managed keys (found
    by identity tag, in the target's Region) whose spec declares ``retire:``, but those
    pending deletion (retired, or recovered as any key is)."""
    retiring = {dk.name for dk in desired.keys if dk.retire is not None}
    if not retiring:
        return ()
    return tuple(
        (k.key_id, None)
        for k in observed.keys
        if k.name(desired.identity_tag) in retiring and not k.pending_deletion
    )


def by_key(usage: tuple[KeyUsage, ...] | list[KeyUsage]) -> Mapping[str, KeyUsage]:
    """Usage of keys in the target's Region, by key ID."""
    return {u.key_id: u for u in usage if u.region is None}


# A saved plan that disables keys for retirement records the time in the retire tag it
# writes; applied later than this, it would shorten their observation period.
SAVED_PLAN_TAG_AGE = timedelta(days=1)


def stale_retire_tags(tp: TargetPlan, identity_tag: str, now: datetime) -> list[str]:
    """The keys a saved plan disables for retirement with a retire tag older than
    ``SAVED_PLAN_TAG_AGE`` at ``now`` (apply refuses the plan: plan again)."""
    tag = retire_tag(identity_tag)
    out = []
    for op in tp.operations:
        if op.kind is not OpKind.TAG_RESOURCE:
            continue
        for pair in op.params.get("Tags", ()):
            when = parse_tag(pair.get("TagValue")) if pair.get("TagKey") == tag else None
            if when is not None and now - when > SAVED_PLAN_TAG_AGE:
                out.append(op.key)
    return out
