"""What the benchmarks share: moto's RSA key per CreateKey deferred, and the N-key
inventory most of them plan and apply."""

from __future__ import annotations

import shutil
from pathlib import Path

import moto.kms.models

ROOT = Path(__file__).resolve().parent.parent


class _LazyKey:
    """moto makes an RSA key for every CreateKey (about 50 ms; ../shared/moto-kms-notes.md,
    section 8): made on first use instead, so that set-up measures the tool, not moto."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._key: object | None = None

    def __getattr__(self, name: str) -> object:
        if self._key is None:
            self._key = _generate(self.spec)
        return getattr(self._key, name)


_generate = moto.kms.models.generate_private_key


def defer_moto_private_keys() -> None:
    """Patch moto (in this process: an in-process server) to defer its private keys."""
    moto.kms.models.generate_private_key = _LazyKey  # type: ignore[assignment]


def big_inventory(folder: Path, keys: int, extra: str = "") -> None:
    """An inventory of ``keys`` managed keys in one target (eu-central-1), as the sample's
    application key: alias, tags, templated policy, rotation; ``extra`` is added to
    ``inventory.yaml``."""
    (folder / "keyspecs" / "policies").mkdir(parents=True)
    shutil.copy(ROOT / "keyspecs/policies/application.json.j2", folder / "keyspecs/policies")
    (folder / "keyspecs/inventory.yaml").write_text(
        "targets:\n  - name: bench\n    account_id: '123456789012'\n"
        "    region: eu-central-1\n"
        "defaults:\n  tags: {ManagedBy: kms-reconciler}\n"
        "  rotation: {enabled: true, period_days: 365}\n" + extra
    )
    for start in range(0, keys, 1000):  # the loader refuses files of more than 50,000 values
        specs = "".join(
            f"  - name: key-{i:05d}\n    description: bench key {i}\n"
            f"    aliases: [alias/bench-{i:05d}]\n    tags: {{Owner: team-{i % 7}}}\n"
            "    policy:\n      template: application.json.j2\n"
            "      vars: {admin_roles: [KeyAdmin], user_roles: [App]}\n"
            for i in range(start, min(keys, start + 1000))
        )
        (folder / f"keyspecs/keys-{start // 1000:02d}.yaml").write_text("keys:\n" + specs)
