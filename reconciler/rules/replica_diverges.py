"""KMS113: a replica of a multi-Region key allows other access than its primary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reconciler.findings import Rule, Severity
from reconciler.policy import AccessChange, replica_divergence
from reconciler.review import Hit, Subject
from reconciler.state import DesiredKey

RULE = Rule(
    id="KMS113",
    severity=Severity.MEDIUM,
    title="Replica policy differs from its primary's",
    rationale=(
        "The members of a multi-Region key share their key material: ciphertext made under "
        "the primary decrypts under any replica, so a principal one replica's policy allows "
        "to decrypt can read what every Region encrypted. Each replica has its own policy; "
        "Region names aside (a policy rendered for its Region), it should allow what the "
        "primary's does. High when the replica allows a request the primary denies; medium "
        "when it only allows less (callers there fail)."
    ),
)


def _divergence(
    primary: DesiredKey, replica: DesiredKey, region: str, subject: Subject
) -> tuple[AccessChange, ...]:
    return replica_divergence(
        primary.state.policy,
        replica.state.policy,
        primary_region=primary.primary_region or subject.change.target.region,
        replica_region=region,
        partition=subject.context.partition,
        account_id=subject.context.account_id,
    )


def _summary(changes: tuple[AccessChange, ...]) -> frozenset[tuple[str, str, frozenset[str]]]:
    return frozenset((c.principal, "+" if c.gained else "-", c.gained or c.lost) for c in changes)


def _line(change: AccessChange, region: str) -> str:
    if change.gained:
        where = f"in {region} but not in the primary's Region"
        return f"{change.principal} may call {', '.join(sorted(change.gained))} {where}"
    where = f"in the primary's Region but not in {region}"
    return f"{change.principal} may call {', '.join(sorted(change.lost))} {where}"


def check_all(subjects: Sequence[Subject]) -> Iterable[tuple[Subject, Hit]]:
    by_key = {(s.change.target.name, s.change.name): s for s in subjects}
    for subject in subjects:
        change = subject.change
        name, _, region = change.name.partition("@")
        primary = by_key.get((change.target.name, name))
        if not region or primary is None or change.head is None or primary.change.head is None:
            continue
        found = _divergence(primary.change.head, change.head, region, subject)
        if not found:
            continue
        base, primary_base = change.base, primary.change.base
        if base is not None and primary_base is not None:
            before = _divergence(primary_base, base, region, subject)
            if _summary(before) == _summary(found):
                continue  # the base diverged the same way: this change did not cause it
        wider = [c for c in found if c.gained]
        lines = tuple(_line(c, region) for c in found)
        witnesses = tuple(c.witness for c in found if c.witness)
        # The hit goes on whichever of the two this change touches, so that it counts as
        # introduced by it (the replica first).
        at = subject if change.kind != "unchanged" else primary
        yield (
            at,
            Hit(
                f"replica {change.name} allows "
                + ("more than" if wider else "less than")
                + f" its primary {name}: {lines[0]}"
                + (f" (and {len(lines) - 1} more, see details)" if len(lines) > 1 else ""),
                details=(*lines, *witnesses),
                severity=Severity.HIGH if wider else None,
            ),
        )
