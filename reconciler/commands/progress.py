"""Progress on a terminal: one status line on stderr, redrawn in place while targets are
read and applied ("production: key details 120/1000 · staging: tags 40/300 (3s)").

Only on a terminal (stderr a TTY, TERM not dumb), never with -q, and never when AWS
requests are logged to stderr: a CI log or a pipe gets no control characters. Nothing is
drawn before ``delay`` seconds, so a quick command prints no progress at all. Every other
line the command prints goes through :meth:`StatusLine.echo`, which takes the status line
away first and draws it again after, so output and progress never share a line.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO

import click


def progress_enabled(stream: IO[str], environ: Mapping[str, str], verbosity: int) -> bool:
    if verbosity < 0 or verbosity >= 3:  # -q; -vvv logs every request to stderr
        return False
    if environ.get("KMS_RECONCILER_LOG") and not environ.get("KMS_RECONCILER_LOG_FILE"):
        return False
    if environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class StatusLine:
    """Thread-safe: targets are read and keys applied side by side."""

    def __init__(
        self,
        enabled: bool,
        *,
        stream: IO[str] | None = None,
        delay: float = 0.5,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self._stream = stream
        self._delay = delay
        self._interval = interval
        self._clock = clock
        self._lock = threading.RLock()
        self._tasks: dict[str, str] = {}  # label -> what it is doing, "tags 40/300"
        self._started: float | None = None
        self._drawn_at = 0.0
        self._shown = ""  # what is on the terminal now ("" when nothing)

    @property
    def stream(self) -> IO[str]:
        return self._stream or sys.stderr

    def update(self, label: str, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            if self._started is None:
                self._started = now
            self._tasks[label] = f"{phase} {done}/{total}"
            if now - self._started >= self._delay and now - self._drawn_at >= self._interval:
                self._draw(now)

    def done(self, label: str) -> None:
        """``label`` has finished: drop it from the line (and the line when it was last)."""
        if not self.enabled:
            return
        with self._lock:
            self._tasks.pop(label, None)
            if not self._tasks:
                self._clear()
                self._started = None
            elif self._shown:
                self._draw(self._clock())

    def echo(self, message: str, *, err: bool = False) -> None:
        """Print a line of the command's output without mixing it into the status line."""
        with self._lock:
            shown = bool(self._shown)
            self._clear()
            click.echo(message, err=err)
            if shown:
                self._draw(self._clock())

    def _draw(self, now: float) -> None:
        assert self._started is not None
        text = " · ".join(f"{label}: {task}" for label, task in self._tasks.items())
        text = f"{text} ({now - self._started:.0f}s)"
        width = shutil.get_terminal_size((80, 24)).columns - 1
        if len(text) > width:  # a wrapped line could not be redrawn in place
            text = text[: max(width - 1, 0)] + "…"
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self._shown = text
        self._drawn_at = now

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = ""


def status_line(verbosity: int) -> StatusLine:
    return StatusLine(progress_enabled(sys.stderr, os.environ, verbosity))
