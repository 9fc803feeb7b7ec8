"""Progress on a terminal: the CLI's stderr on a pseudo-terminal shows a status line
redrawn in place while a target is read and applied; piped, with TERM=dumb or with -q it
shows none. The injector slows every request down a little (as network latency would),
so that reading and applying outlast the status line's half-second delay."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Inventory, MotoServer, cli_env
from .faults import FaultInjector

pytestmark = pytest.mark.e2e

CLEAR_LINE = "\r\x1b[2K"
KEYS = [{"name": f"k{i:02d}", "aliases": [f"alias/k{i:02d}"]} for i in range(12)]


def run_on_terminal(
    args: list[str], cwd: Path, env: dict[str, str], *, terminal: bool
) -> tuple[int, str, str]:
    """Run the CLI with stdout piped and stderr on a pseudo-terminal (or piped)."""
    command = [sys.executable, "-m", "reconciler", *args]
    if not terminal:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    main, secondary = pty.openpty()
    chunks: list[bytes] = []

    def read() -> None:  # drain the terminal, or the CLI blocks once its buffer is full
        while True:
            try:
                data = os.read(main, 4096)
            except OSError:  # EIO: the CLI closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=secondary, text=True
    ) as process:
        os.close(secondary)
        stdout, _ = process.communicate(timeout=120)
    reader.join(timeout=30)
    os.close(main)
    return process.returncode, stdout, b"".join(chunks).decode(errors="replace")


@pytest.fixture
def setup(
    tmp_path: Path, server: MotoServer, cli_home: Path, faults: FaultInjector
) -> tuple[Path, dict[str, str], FaultInjector]:
    Inventory(tmp_path).write(KEYS)
    env = cli_env(cli_home, server.url)
    env["TERM"] = "xterm"
    return tmp_path, env, faults


def test_apply_and_plan_show_progress_on_a_terminal_and_lines_in_plan_order(
    setup: tuple[Path, dict[str, str], Any],
) -> None:
    cwd, env, faults = setup
    faults.write_delay = 0.2  # 12 keys x 3 operations, 8 side by side: over a second
    code, stdout, stderr = run_on_terminal(["apply", "--auto-approve"], cwd, env, terminal=True)
    assert code == 0, stderr
    assert CLEAR_LINE in stderr
    drawn = re.findall(r"test: applied \((\d+) running\) (\d+)/(\d+)", stderr)
    assert drawn, stderr
    assert {int(total) for _, _, total in drawn} == {36}
    assert max(int(done) for _, done, _ in drawn) <= 36
    # the status line never shares a line with the output: stdout holds no control codes
    assert "\x1b[2K" not in stdout
    numbers = [int(n) for n in re.findall(r"^  \[(\d+)/36\]", stdout, re.M)]
    assert numbers == list(range(1, 37))  # in the plan's order, though applied side by side

    faults.write_delay = 0.0
    faults.read_delay = 0.05  # 13 keys (12 and the lock's anchor), 4 reads each, 2 at once
    code, stdout, stderr = run_on_terminal(["plan", "--parallelism", "2"], cwd, env, terminal=True)
    assert code == 0, stderr
    # keys whose reads are all done, of the customer keys (reads are pipelined per key)
    drawn = [int(done) for done in re.findall(r"test: keys (\d+)/13", stderr)]
    assert drawn and drawn == sorted(drawn) and max(drawn) <= 13, stderr
    assert "No changes" in stdout
    # the last thing on the terminal is not a stale status line: it was cleared at the end
    tail = stderr.rsplit(CLEAR_LINE, 1)[-1]
    assert "keys" not in tail.replace("customer key(s)", "")


@pytest.mark.parametrize(
    ("terminal", "extra_env", "args"),
    [
        (False, {}, []),  # piped: a CI log
        (True, {"TERM": "dumb"}, []),
        (True, {}, ["-q"]),
    ],
    ids=["piped", "term-dumb", "quiet"],
)
def test_no_progress_when_piped_dumb_or_quiet(
    setup: tuple[Path, dict[str, str], Any],
    terminal: bool,
    extra_env: dict[str, str],
    args: list[str],
) -> None:
    cwd, env, faults = setup
    faults.read_delay = 0.03
    code, _, stderr = run_on_terminal(
        ["plan", "--parallelism", "2", *args], cwd, {**env, **extra_env}, terminal=terminal
    )
    assert code == 2 or code == 0, stderr
    assert "\x1b[2K" not in stderr and "\r" not in stderr.replace("\r\n", "\n"), stderr
