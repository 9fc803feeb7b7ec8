"""Benchmark: how long reading an inventory takes, YAML parsing apart.

Times ``load_inventory`` (read, parse, validate every key file) and the YAML parsing
alone (``parse_yaml`` on every file's text) for the bundled keyspecs/ and for generated
inventories of 1,000 and 10,000 keys (100 keys a file, each key with a description, two
aliases, three tags, rotation and a policy template with vars), with libyaml (the
default where PyYAML has it) and with the pure-Python loader (``--pure``; what runs
without libyaml, and the loader before it used libyaml).

    python benchmarks/bench_loader.py [--pure] [--repeat 5] [--sizes 1000,10000]

Run it from another checkout's root with PYTHONPATH=. to time that checkout's loader (how
benchmarks/loader-results.md got its "before" column). Times are CPU seconds of this
process (on a shared machine, steadier than wall time), the best of --repeat.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reconciler import loader

ROOT = Path(__file__).resolve().parent.parent
KEYS_PER_FILE = 100

INVENTORY = """\
targets:
  - name: production
    account_id: "111122223333"
    region: us-east-1
    vars: {environment: production}
defaults:
  tags: {ManagedBy: kms-reconciler}
  rotation: {enabled: true, period_days: 365}
"""

KEY = """\
  - name: svc-{i:05d}
    description: "Service {i} data encryption key"
    aliases: [alias/svc-{i:05d}, alias/team-{team}/svc-{i:05d}]
    rotation: {{enabled: true, period_days: 180}}
    deletion_window_days: 30
    tags:
      Application: svc-{i:05d}
      Team: team-{team}
      CostCenter: "{cost}"
    policy:
      template: application.json.j2
      vars:
        user_roles: [Svc{i}Role, Svc{i}Worker]
        admin_roles: [AdminRole]
"""


def generate(root: Path, keys: int) -> Path:
    inventory = root / f"inventory-{keys}"
    (inventory / "policies").mkdir(parents=True)
    (inventory / "inventory.yaml").write_text(INVENTORY, encoding="utf-8")
    for start in range(0, keys, KEYS_PER_FILE):
        body = "".join(
            KEY.format(i=i, team=i % 20, cost=1000 + i % 7)
            for i in range(start, min(start + KEYS_PER_FILE, keys))
        )
        (inventory / f"keys-{start // KEYS_PER_FILE:04d}.yaml").write_text(
            "keys:\n" + body, encoding="utf-8"
        )
    return inventory


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        result = run()
        times.append(time.process_time() - started)
        del result
        gc.collect()
    return min(times)


def parse_all(texts: list[str]) -> None:
    for text in texts:
        problems: list[loader.Problem] = []
        loader.parse_yaml(text, "f.yaml", problems)
        assert not problems, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pure", action="store_true", help="the pure-Python loader only")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    if args.pure:
        loader.LIBYAML = False
    has_parse = hasattr(loader, "parse_yaml")  # an older checkout times load_inventory only
    print(f"loader: {loader.__file__}; libyaml: {getattr(loader, 'LIBYAML', 'n/a')}")
    print("| inventory | keys | files | load_inventory | YAML parsing alone |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        inventories = [("keyspecs/", ROOT / "keyspecs")]
        inventories += [
            (f"generated {int(n):,}", generate(Path(tmp), int(n))) for n in args.sizes.split(",")
        ]
        for label, root in inventories:
            keys = len(loader.load_inventory(root).keys)
            files = sorted(root.rglob("*.yaml"))
            texts = [f.read_text(encoding="utf-8") for f in files]
            repeat = args.repeat if keys < 5000 else max(1, args.repeat // 2)
            gc.collect()  # nothing of the last load left alive to slow the collector down
            load_s = best(repeat, lambda root=root: loader.load_inventory(root))
            parse = (
                f"{best(repeat, lambda texts=texts: parse_all(texts)) * 1000:,.0f} ms"
                if has_parse
                else "n/a"
            )
            print(f"| {label} | {keys:,} | {len(files)} | {load_s * 1000:,.0f} ms | {parse} |")


if __name__ == "__main__":
    main()
