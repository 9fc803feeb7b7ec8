"""A cancelled CI job (SIGTERM, as GitHub Actions sends before it kills) stops an apply
part-way: the operations under way finish, nothing new starts, the apply lock is released
on the way out, and the next apply converges with one key per name."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .conftest import Inventory, MotoServer, RunCli, cli_env
from .helpers import ALPHA, BETA, NO_CHANGES, aliases, managed_keys

LOCK_ALIAS = "alias/kms-reconciler/apply-lock"


def test_sigterm_releases_the_lock_and_the_next_apply_converges(
    server: MotoServer,
    inventory: Inventory,
    run_cli: RunCli,
    kms: Any,
    tmp_path: Path,
    cli_home: Path,
) -> None:
    inventory.write([ALPHA, BETA, {**BETA, "name": "gamma", "aliases": ["alias/gamma"]}])
    env = cli_env(cli_home, server.url)
    # real KMS pace, slowed: one CreateKey at once, the next ones seconds apart
    env["KMS_RECONCILER_QUOTA_SCALE"] = "0.1"
    apply = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not managed_keys(kms):  # the lock is held and the first key is made
            assert apply.poll() is None, apply.communicate()
            assert time.monotonic() < deadline, "the apply made no key"
            time.sleep(0.05)
        assert LOCK_ALIAS in {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
        apply.send_signal(signal.SIGTERM)
        _, stderr = apply.communicate(timeout=60)
    finally:
        if apply.poll() is None:
            apply.kill()
    assert apply.returncode == 1, stderr
    assert "apply interrupted in target 'test'" in stderr and "Traceback" not in stderr
    # The operations under way finished and none started after: keys are applied side by
    # side (alpha's alias may follow its CreateKey before the signal), so what KMS holds is
    # exactly what the report calls done, and something was left not run.
    lines = {line.split(" (", 1)[0]: line for line in stderr.splitlines() if " (" in line}
    done, not_run = lines.get("error: done", ""), lines.get("error: not run", "")
    assert not_run and "nothing" not in not_run, stderr
    for alias in aliases(kms):
        assert f"CreateAlias {alias.removeprefix('alias/')}" in done, (alias, stderr)
    for name in ("alpha", "beta", "gamma"):
        if f"CreateAlias {name}" in not_run:
            assert f"alias/{name}" not in aliases(kms)
    assert LOCK_ALIAS not in {a["AliasName"] for a in kms.list_aliases()["Aliases"]}

    again = run_cli("apply", "--auto-approve")
    assert again.returncode == 0, again
    assert sorted(managed_keys(kms)) == ["alpha", "beta", "gamma"]  # one key per name
    assert set(aliases(kms)) == {"alias/alpha", "alias/beta", "alias/gamma"}
    plan = run_cli("plan", "--detailed-exitcode")
    assert plan.returncode == 0 and NO_CHANGES in plan.stdout, plan
