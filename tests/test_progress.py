"""The status line (commands/progress.py): when it is drawn, and that output lines never
share the terminal line with it."""

from __future__ import annotations

import io

import pytest

from reconciler.commands.progress import StatusLine, progress_enabled

CLEAR = "\r\x1b[2K"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def make() -> tuple[StatusLine, Terminal, Clock]:
    clock = Clock()
    stream = Terminal()
    return StatusLine(True, stream=stream, delay=0.5, interval=0.1, clock=clock), stream, clock


def test_nothing_is_drawn_before_the_delay_then_the_line_is_redrawn_in_place() -> None:
    line, stream, clock = make()
    line.update("prod", "tags", 1, 10)
    clock.now += 0.4
    line.update("prod", "tags", 5, 10)
    assert stream.getvalue() == ""  # a quick command shows no progress at all
    clock.now += 0.2
    line.update("prod", "tags", 6, 10)
    assert stream.getvalue() == CLEAR + "prod: tags 6/10 (1s)"
    clock.now += 0.05  # within the interval: not redrawn
    line.update("prod", "tags", 7, 10)
    assert stream.getvalue().count(CLEAR) == 1
    clock.now += 0.1
    line.update("staging", "key details", 3, 4)
    assert stream.getvalue().endswith(CLEAR + "prod: tags 7/10 · staging: key details 3/4 (1s)")


def test_output_takes_the_status_line_away_and_puts_it_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line, stream, clock = make()
    line.update("prod", "tags", 1, 2)
    clock.now += 1
    line.update("prod", "tags", 2, 2)
    line.echo("a line of output")
    assert capsys.readouterr().out == "a line of output\n"
    assert stream.getvalue().endswith("prod: tags 2/2 (1s)" + CLEAR + CLEAR + "prod: tags 2/2 (1s)")
    line.done("prod")
    assert stream.getvalue().endswith(CLEAR)  # the last task gone: the line is cleared
    line.echo("after")
    assert capsys.readouterr().out == "after\n"
    assert stream.getvalue().count(CLEAR) == 4  # no redraw once nothing is running


def test_a_long_line_is_cut_to_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    line, stream, clock = make()
    clock.now += 1
    line.update("a-very-long-target-name", "key details", 100, 1000)
    clock.now += 1
    line.update("a-very-long-target-name", "key details", 200, 1000)
    drawn = stream.getvalue().rsplit(CLEAR, 1)[-1]
    assert len(drawn) == 29 and drawn.endswith("…")


def test_disabled_draws_nothing_and_still_prints(capsys: pytest.CaptureFixture[str]) -> None:
    stream = Terminal()
    line = StatusLine(False, stream=stream, delay=0)
    line.update("prod", "tags", 1, 2)
    line.echo("out", err=True)
    assert stream.getvalue() == "" and capsys.readouterr().err == "out\n"


@pytest.mark.parametrize(
    ("tty", "environ", "verbosity", "expected"),
    [
        (True, {}, 0, True),
        (True, {}, 2, True),
        (False, {}, 0, False),  # piped
        (True, {"TERM": "dumb"}, 0, False),
        (True, {}, -1, False),  # -q
        (True, {}, 3, False),  # -vvv logs requests to stderr
        (True, {"KMS_RECONCILER_LOG": "debug"}, 0, False),
        (True, {"KMS_RECONCILER_LOG": "debug", "KMS_RECONCILER_LOG_FILE": "x.log"}, 0, True),
    ],
)
def test_when_progress_is_shown(
    tty: bool, environ: dict[str, str], verbosity: int, expected: bool
) -> None:
    stream = Terminal() if tty else io.StringIO()
    assert progress_enabled(stream, environ, verbosity) is expected
