"""The command line: the ``kms-reconciler`` group, its exit codes and its commands.

Exit codes: 0 success or no changes; 1 error (bad input, a usage error, AWS error, refused
or failed apply, a held apply lock); 2 only for changes present (``plan
--detailed-exitcode``), drift found (``drift``) or blocking findings (``review``). Errors go
to stderr, one line each.

Each command lives in its own module of ``reconciler.commands`` (what they share is in
``reconciler.commands.common``); this module wires them into one click group, importing a
command's module only when that command runs (``--help`` and ``--version`` import none of
boto3, pydantic or jinja2).
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
import threading
from typing import Any

import click

from reconciler import __version__
from reconciler.errors import EXIT_ERROR, EXIT_OK

# name -> (module, attribute, the first paragraph of its help, shown by the group's --help
# without importing the module; a test keeps it equal to the command's own)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": (
        "reconciler.commands.offline",
        "validate",
        "Check specs, templates and policies offline. Reports every problem at once.",
    ),
    "render": (
        "reconciler.commands.offline",
        "render",
        "Show the desired state and rendered policies, offline.",
    ),
    "targets": (
        "reconciler.commands.offline",
        "targets",
        "List the inventory's targets (github-matrix: JSON for a strategy.matrix).",
    ),
    "permissions": (
        "reconciler.commands.permissions",
        "permissions_",
        "Print the least IAM policy (JSON) a command's role needs in the selected targets.",
    ),
    "schema": (
        "reconciler.commands.offline",
        "schema_",
        "Write the JSON Schemas of key files and inventory.yaml, for editors.",
    ),
    "init": (
        "reconciler.commands.offline",
        "init_",
        "Write a commented starter inventory: one target, the defaults, one key and its "
        "policy template; it validates, and plans on the sandbox.",
    ),
    "plan": (
        "reconciler.commands.plan",
        "plan",
        "Show what apply would change, without changing anything.",
    ),
    "apply": (
        "reconciler.commands.apply",
        "apply",
        "Make KMS match the inventory, in the planned order.",
    ),
    "drift": (
        "reconciler.commands.drift",
        "drift",
        "Report every difference between KMS and the inventory (read-only).",
    ),
    "review": (
        "reconciler.commands.review",
        "review",
        "Review a change of the inventory between two git refs, offline: access and risk.",
    ),
    "import": (
        "reconciler.commands.import_",
        "import_",
        "Write specs for existing keys so the next apply adopts them without change.",
    ),
    "rotate": (
        "reconciler.commands.rotate",
        "rotate",
        "Rotate a managed key's material on demand, in every selected target that has it.",
    ),
    "force-unlock": (
        "reconciler.commands.force_unlock",
        "force_unlock_",
        "Clear the apply lock of one target, left by a run that died (SIGKILL, a cancelled "
        "CI job). Give the LOCK_ID the refusal printed to clear only that lock.",
    ),
}

DEBUG_ENV = "KMS_RECONCILER_DEBUG"


class ExitCodeGroup(click.Group):
    """click, with the tool's exit codes: a usage error (unknown option, bad choice, missing
    argument) is an input error, exit 1 in one ``error:`` line; 2 means only "changes
    present", "drift found" or "blocking findings" (click's own usage code is 2).

    Commands are loaded lazily from ``COMMANDS`` (click's documented lazy-group pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        if self._whole_process:
            # What is imported by now (pydantic's models, jinja2, click) lives until exit:
            # frozen, the collector's full passes during the run and the one at exit skip
            # it (validate: ~50 ms of ~0.3 s CPU, benchmarks/sandbox.md). Only when the
            # run is the process: in a test's process, freezing would keep its garbage.
            gc.freeze()
            gc.enable()  # off while the command's modules were imported (see main)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, from the help in ``COMMANDS``: no command module is imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, _short_help(COMMANDS[name][2], limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    _whole_process = False

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # the console script and python -m pass no arguments: click reads sys.argv
        self._whole_process = not args and kwargs.get("args") is None
        kwargs["standalone_mode"] = False
        if self._whole_process:
            # Importing a command's modules allocates ~10^5 objects that live until exit,
            # none of them garbage: the collector's passes over them (~80 during
            # validate's imports) are wasted work, ~15 ms of its ~0.25 s CPU
            # (benchmarks/sandbox.md). Off until get_command has frozen them, on again
            # there (or below, if no command runs).
            gc.disable()
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
            if self._whole_process:
                gc.enable()
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def _short_help(text: str, limit: int) -> str:
    """The first sentence, cut to ``limit`` characters with "..." as click cuts a command's
    short help (click.utils.make_default_short_help, deprecated in click 8.5)."""
    words = text.split()
    length = 0
    for i, word in enumerate(words):
        length += len(word) + (i > 0)
        if length > limit:
            break
        if word.endswith("."):
            return " ".join(words[: i + 1])
    else:
        return " ".join(words)
    kept = words[:i]
    while kept and len(" ".join(kept)) + 3 > limit:
        kept.pop()
    return " ".join(kept) + "..."


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


if __name__ == "__main__":  # pragma: no cover
    main()
