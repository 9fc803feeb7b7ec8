"""KMS108: one template change alters the policies of many keys at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject

RULE = Rule(
    id="KMS108",
    severity=Severity.LOW,
    title="A template change alters many keys at once",
    rationale=(
        "A shared template multiplies a change: one reviewed line becomes an access change "
        "on every key and target that renders it. The review says how many: from 2 keys "
        "low, from inventory.yaml's review.fan_out_threshold keys (default 5) medium."
    ),
)

MANY = 5  # default of review.fan_out_threshold: from this many keys on, the finding is medium


def check_all(subjects: Sequence[Subject]) -> Iterable[tuple[Subject, Hit]]:
    by_template: dict[str, list[Subject]] = defaultdict(list)
    for subject in subjects:
        change = subject.change
        if change.base is not None and change.head is not None and change.policy_changed:
            origin = change.head.source.policy_origin
            if origin.startswith("template "):
                by_template[origin.removeprefix("template ")].append(subject)
    for template, changed in sorted(by_template.items()):
        if len(changed) < 2:
            continue
        keys = sorted({f"{s.change.target.name}/{s.change.name}" for s in changed})
        yield (
            changed[0],
            Hit(
                f"the policy from template {template} changes for {len(keys)} keys at once",
                details=tuple(keys),
                severity=(
                    Severity.MEDIUM if len(keys) >= changed[0].context.fan_out_threshold else None
                ),
            ),
        )
