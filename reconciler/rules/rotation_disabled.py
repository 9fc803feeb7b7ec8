"""KMS016: automatic rotation is off on a key that could rotate."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler import catalog
from reconciler.findings import Rule, Severity
from reconciler.review import Hit, Subject

RULE = Rule(
    id="KMS016",
    severity=Severity.LOW,
    title="Automatic rotation disabled",
    rationale=(
        "Symmetric encryption keys with KMS key material can rotate automatically at no "
        "cost to callers: old ciphertext still decrypts. Asymmetric, HMAC and imported "
        "keys cannot and are not reported."
    ),
)


def check(subject: Subject) -> Iterable[Hit]:
    state = subject.state("head")
    if state is None or state.rotation_enabled is not False:
        return
    if catalog.can_rotate_automatically(state.key_spec, state.origin):
        yield Hit(
            f"automatic rotation is disabled on this {state.key_spec} key with "
            f"{state.origin} key material; set rotation.enabled: true in the key spec "
            "(existing ciphertext stays decryptable)"
        )
