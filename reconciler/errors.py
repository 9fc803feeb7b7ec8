"""One exception tree. Every error knows its exit code and prints as one clear line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where it is and what is wrong.

    Renders as ``file:line: field: message (key 'name')`` with the parts that are known,
    e.g. ``keyspecs/app.yaml:12: keys[0].rotation.period_days: must be between 90 and 2560
    (key 'app-data')``.
    """

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        field = f"{self.field}: " if self.field else ""
        if self.key and not self.field:
            return f"{where}key '{self.key}': {self.message}"
        suffix = f" (key '{self.key}')" if self.key else ""
        return _one_line(f"{where}{field}{self.message}{suffix}")


def _one_line(text: str) -> str:
    """A value quoted in a message may hold a line break (`name: "app\\n"`): show it escaped,
    so that every problem stays one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


class ReconcilerError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code = EXIT_ERROR

    def lines(self) -> list[str]:
        """The error as the lines printed to stderr."""
        return str(self).splitlines()


class InputError(ReconcilerError):
    """The inventory (specs, templates, settings) or a command-line argument is wrong."""

    def __init__(self, problems: Iterable[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class PlanError(InputError):
    """The desired state cannot be reached safely (conflict, lockout, immutable field)."""


class AwsError(ReconcilerError):
    """An AWS call failed in a way the tool cannot handle."""


class AccountMismatchError(ReconcilerError):
    """The credentials belong to another account than the target declares."""


class StalePlanError(ReconcilerError):
    """A saved plan was made from an observed state that has changed since."""


class ApplyRefusedError(ReconcilerError):
    """Apply would make destructive changes without --allow-destroy, or was not confirmed."""


class ApplyFailedError(ReconcilerError):
    """An operation failed during apply; the report says what ran, failed and did not run."""


class LockHeldError(ReconcilerError):
    """Another run holds the target's apply lock (or it is not the lock named)."""
