"""Benchmark: the CPU time of short commands, start-up included (issue 11: ``validate`` and
``--help`` at most 0.25 s of CPU).

Runs ``python -m reconciler ARGS`` as a subprocess --repeat times for each command, from a
neutral working directory (``python -m`` puts the working directory first on sys.path),
with PYTHONPATH set to the checkout to measure (this one, or --checkout), and prints the
least and the median CPU time (user + system of the child), with the load average beside
them: on a shared machine CPU time is steadier than wall time, the least steadier still.

The checkout's ``__pycache__`` is compiled first: with PYTHONDONTWRITEBYTECODE set (as on
the project's machines), every run would otherwise compile the tool's modules from source,
which an installed wheel never does.

    python benchmarks/bench_startup.py [--repeat 15] [--checkout PATH]

``--checkout A --checkout B`` measures two checkouts interleaved (a before/after).
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (["--help"], ["validate", "KEYSPECS"])


def cpu_of(args: list[str], checkout: Path, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=60,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--checkout", type=Path, action="append")
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkout or [ROOT]]
    for checkout in checkouts:
        compileall.compile_dir(checkout / "reconciler", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for command in COMMANDS:
            args_ = [str(ROOT / "keyspecs") if a == "KEYSPECS" else a for a in command]
            times: dict[Path, list[float]] = {c: [] for c in checkouts}
            load = os.getloadavg()[0]
            for _ in range(args.repeat):
                for checkout in checkouts:
                    times[checkout].append(cpu_of(args_, checkout, cwd))
            for checkout, values in times.items():
                print(
                    f"{' '.join(command):<18} {min(values):.3f} s CPU least, "
                    f"{statistics.median(values):.3f} median (n={len(values)}, load "
                    f"{load:.1f}-{os.getloadavg()[0]:.1f}) {checkout}"
                )


if __name__ == "__main__":
    main()
