"""The command line: the ``kms-reconciler`` group, its exit codes and its commands.

Exit codes: 0 success or no changes; 1 error (bad input, a usage error, AWS error, refused
or failed apply, a held apply lock); 2 only for changes present (``plan
--detailed-exitcode``), drift found (``drift``) or blocking findings (``review``). Errors go
to stderr, one line each.

Each command lives in its own module of ``reconciler.commands`` (what they share is in
``reconciler.commands.common``); this module wires them into one click group.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import click

from reconciler import __version__
from reconciler.commands.apply import apply
from reconciler.commands.drift import drift
from reconciler.commands.force_unlock import force_unlock_
from reconciler.commands.import_ import import_
from reconciler.commands.offline import (
    init_,
    permissions_,
    render,
    schema_,
    targets,
    validate,
)
from reconciler.commands.plan import plan
from reconciler.commands.review import review
from reconciler.commands.rotate import rotate
from reconciler.errors import EXIT_ERROR, EXIT_OK

DEBUG_ENV = "KMS_RECONCILER_DEBUG"


class ExitCodeGroup(click.Group):
    """click, with the tool's exit codes: a usage error (unknown option, bad choice, missing
    argument) is an input error, exit 1 in one ``error:`` line; 2 means only "changes
    present", "drift found" or "blocking findings" (click's own usage code is 2)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        # SIGTERM (a cancelled CI job) interrupts like Ctrl-C: operations under way finish,
        # nothing new starts, and the apply lock is released on the way out.
        previous = _on_sigterm(_interrupt)
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo(
                "error: interrupted; calls already made stay made: run it again (apply plans "
                "from what KMS holds and converges)",
                err=True,
            )
            sys.exit(EXIT_ERROR)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
                click.echo(ctx.get_help(), err=True)  # no command given: the help
            else:
                click.echo(f"error: {_usage_line(exc)}", err=True)
            sys.exit(EXIT_ERROR)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a bug: one line, the traceback only on request
            if os.environ.get(DEBUG_ENV):
                raise
            click.echo(
                f"error: internal error: {type(exc).__name__}: {str(exc)[:300]} (set "
                f"{DEBUG_ENV}=1 for the traceback, and please report it)",
                err=True,
            )
            sys.exit(EXIT_ERROR)
        finally:
            _on_sigterm(previous)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _on_sigterm(handler: Any) -> Any:
    """Install a SIGTERM handler (the main thread only can); the one it replaces."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def _usage_line(exc: click.ClickException) -> str:
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return message
    return f"{ctx.command_path}: {message} (see '{ctx.command_path} --help')"


@click.group(cls=ExitCodeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kms-reconciler")
def main() -> None:
    """Keep AWS KMS keys in git: validate, plan and apply key specs under keyspecs/."""


for command in (
    validate,
    render,
    targets,
    permissions_,
    schema_,
    init_,
    plan,
    apply,
    drift,
    review,
    import_,
    rotate,
    force_unlock_,
):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
