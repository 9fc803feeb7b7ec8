"""KMS111: a key spec setting that loosens a safeguard of apply or review is turned on."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject

RULE = Rule(
    id="KMS111",
    severity=Severity.MEDIUM,
    title="Risky key spec setting changed",
    rationale=(
        "Some spec settings change no policy text yet change what apply may do or what "
        "review accepts, so a change that only touches them must be reviewed too. "
        "bypass_policy_lockout_safety_check turned on (high): KMS no longer refuses a "
        "policy that locks everyone out of the key, the guard against an unmanageable key. "
        "deletion_window_days shortened (medium): less time to notice and cancel a "
        "deletion before the key and every ciphertext under it are gone. grants_purge "
        "turned on (medium): apply revokes every grant no spec declares, which may be "
        "another team's access. allow_alias_takeover turned on (medium): apply may move an "
        "alias away from a key we do not own, so its callers encrypt under this key instead. "
        "A waiver added (medium): a finding of another rule is accepted and will not block; "
        "whoever approves the change approves the waiver (no waiver can accept this "
        "finding). Turning a setting off, or a longer window, is safer and not reported."
    ),
)


def check(subject: Subject) -> Iterable[Hit]:
    change = subject.change
    if change.base is None or change.head is None:
        return
    for diff in change.fields:
        if diff.field == "bypass_policy_lockout_safety_check" and diff.after:
            yield Hit(
                f"key {change.name}: bypass_policy_lockout_safety_check is turned on: KMS will "
                "no longer refuse a policy that locks every administrator out of the key",
                severity=Severity.HIGH,
            )
        elif diff.field == "deletion_window_days" and diff.after < diff.before:
            yield Hit(
                f"key {change.name}: deletion_window_days shortened from {diff.before} to "
                f"{diff.after}: a scheduled deletion can be cancelled for {diff.after} days only",
            )
        elif diff.field == "grants_purge" and diff.after:
            yield Hit(
                f"key {change.name}: grants_purge is turned on: apply revokes every grant on "
                "the key that no spec declares",
            )
        elif diff.field == "allow_alias_takeover" and diff.after:
            yield Hit(
                f"key {change.name}: allow_alias_takeover is turned on: apply may retarget an "
                "alias that now points at a key the inventory does not own",
            )
        elif diff.field == "waivers":
            added = sorted(set(diff.after) - set(diff.before))
            for waiver in added:
                # the waiver under review cannot accept its own finding
                yield Hit(f"key {change.name}: a waiver is added: {waiver}", waivable=False)
