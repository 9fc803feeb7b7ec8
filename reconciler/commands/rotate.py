"""rotate: on-demand rotation of a managed key's material."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler import aws, catalog
from reconciler.applier import (
    rotate_now,
)
from reconciler.aws import (
    Connection,
    error_message,
)
from reconciler.commands.common import (
    Locks,
    Run,
    common_options,
    confirm_count,
    each_target,
    load,
    lock_timeout_option,
    locking,
    observe,
    report_failures,
)
from reconciler.errors import (
    EXIT_OK,
    ApplyFailedError,
    ApplyRefusedError,
    InputError,
    Problem,
)
from reconciler.state import (
    DesiredTarget,
    ObservedKey,
)


@click.command()
@click.argument("arguments", nargs=-1, required=True, metavar="[PATH] KEY")
@click.option("--now", is_flag=True, help="Rotate the key material now (RotateKeyOnDemand).")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@lock_timeout_option
@common_options
def rotate(
    run: Run, arguments: tuple[str, ...], now: bool, auto_approve: bool, lock_timeout: float
) -> int:
    """Rotate a managed key's material on demand, in every selected target that has it.

    \b
    Examples:
      kms-reconciler rotate app-data --now --target production
    """
    with locking(run, lock_timeout) as locks:
        return _rotate(run, arguments, now, auto_approve, locks)


def _rotate(
    run: Run, arguments: tuple[str, ...], now: bool, auto_approve: bool, locks: Locks
) -> int:
    if len(arguments) > 2:
        raise InputError(Problem("give [PATH] KEY: at most two arguments", field="KEY"))
    if len(arguments) == 2:
        run.path = Path(arguments[0])
    key_name = arguments[-1]
    if not now:
        raise InputError(
            Problem("say --now to rotate the key material now (RotateKeyOnDemand)", field="--now")
        )
    _, desired = load(run)
    chosen = [dt for dt in desired if any(k.name == key_name for k in dt.keys)]
    if not chosen:
        raise InputError(Problem(f"no key named '{key_name}' in the selected targets", field="KEY"))
    for dt in chosen:
        state = next(k.state for k in dt.keys if k.name == key_name)
        if not catalog.can_rotate_on_demand(state.key_spec, state.origin):
            raise InputError(
                Problem(
                    f"key '{key_name}' is {state.key_spec} with {state.origin} key material: "
                    "KMS rotates on demand only symmetric encryption keys with KMS key material",
                    field="KEY",
                )
            )

    def find(dt: DesiredTarget) -> tuple[DesiredTarget, Connection, ObservedKey]:
        conn = aws.connect(dt.target, run.aws, write=True)
        own = locks.take(conn)
        observed = observe(
            run, dt, conn, rotation_history=True, grants_for=frozenset(), own_lock=own
        )
        found = [k for k in observed.keys if k.name(dt.identity_tag) == key_name]
        if not found:
            raise InputError(Problem(f"key '{key_name}' does not exist in KMS yet (apply first)"))
        key = found[0]
        if key.key_state != "Enabled":
            raise InputError(Problem(f"key '{key_name}' ({key.key_id}) is {key.key_state}"))
        return dt, conn, key

    found, failures = each_target(chosen, find)
    if failures:
        report_failures(failures)
        raise ApplyRefusedError("nothing was rotated")
    for dt, _, key in found:
        done = key.on_demand_rotations or 0
        click.echo(
            f"{dt.target.name}: rotate key '{key_name}' ({key.key_id}) now; last rotation "
            f"{f'{key.last_rotation_date:%Y-%m-%d}' if key.last_rotation_date else 'never'}, "
            f"{done} on-demand rotation(s) so far "
            f"(KMS allows {catalog.ON_DEMAND_ROTATIONS_MAX})"
        )
    if not auto_approve:
        confirm_count(len(found), "rotation(s)")
    for dt, conn, key in found:
        try:
            # a multi-Region key rotates as a family, from its primary
            rotate_now(conn.kms_in(key.primary_region), key.key_id)
        except Exception as exc:  # report what ran: earlier targets are rotated already
            raise ApplyFailedError(
                f"RotateKeyOnDemand of '{key_name}' in target '{dt.target.name}' failed: "
                f"{error_message(exc)}"
            ) from None
        click.echo(f"{dt.target.name}: rotation of '{key_name}' ({key.key_id}) started")
    return EXIT_OK
