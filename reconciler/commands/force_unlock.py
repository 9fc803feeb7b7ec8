"""force-unlock: clear the apply lock a dead run left behind."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler import aws
from reconciler.commands.common import (
    Run,
    common_options,
    confirm_count,
    load,
)
from reconciler.errors import (
    EXIT_OK,
    InputError,
    Problem,
)
from reconciler.lock import force_unlock
from reconciler.lock import inspect as inspect_lock


@click.command("force-unlock")
@click.argument("arguments", nargs=-1, metavar="[PATH] [LOCK_ID]")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@common_options
def force_unlock_(run: Run, arguments: tuple[str, ...], auto_approve: bool) -> int:
    """Clear the apply lock of one target, left by a run that died (SIGKILL, a cancelled CI
    job). Give the LOCK_ID the refusal printed to clear only that lock.

    \b
    Examples:
      kms-reconciler force-unlock --target production 5f0c2e9a-...
    """
    if len(arguments) > 2:
        raise InputError(Problem("give [PATH] [LOCK_ID]: at most two arguments", field="LOCK_ID"))
    lock_id: str | None = None
    if len(arguments) == 2:
        run.path, lock_id = Path(arguments[0]), arguments[1]
    elif arguments:
        if Path(arguments[0]).is_dir():
            run.path = Path(arguments[0])
        else:
            lock_id = arguments[0]
    _, desired = load(run)
    if len(desired) != 1:
        names = ", ".join(dt.target.name for dt in desired)
        raise InputError(
            Problem(f"name the one target to unlock with --target (selected: {names})", "--target")
        )
    (dt,) = desired
    conn = aws.connect(dt.target, run.aws, write=True)
    status = inspect_lock(conn.kms, dt.target.name)
    if status is None:
        click.echo(f"{dt.target.name}: the apply lock is not held; nothing to clear.")
        return EXIT_OK
    click.echo(f"{dt.target.name}: the apply lock is {status}")
    if not auto_approve:
        confirm_count(1, "lock clearance (only if no run holds it any more)")
    cleared = force_unlock(conn.kms, dt.target.name, lock_id)
    if cleared is None:
        click.echo(f"{dt.target.name}: the apply lock was released meanwhile; nothing cleared.")
    else:
        click.echo(f"{dt.target.name}: cleared the apply lock (lock ID {cleared.lock_id or '?'}).")
    return EXIT_OK
