"""The run's progress bar on a terminal (tqdm): one line, redrawn in place, left once at the end.

The engine calls the bar with the fraction done (every 0.5 s of wall time, when a trial ends
(``sim.trial_sequence``) and at the end), and ``trial_done`` with the trials done and the last
trial's final F. Several calls say 1.0 at the end of a run (and a compiled run replays its
trials after its program has reached 1.0), so the bar only moves forward and its line is left
by ``close`` alone (``with text_progress() as progress:``), once, with the last trial's F: one
line, whether the run ended, failed or was interrupted (the next message starts on a line of
its own). tqdm fits the line to the terminal's width as it changes (a line wider than the
terminal wraps, and each redraw would leave a line behind). Where the stream is not a
terminal (a pipe, a log file) nothing is written.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from tqdm import tqdm

# the trials (tqdm's ``desc``) before the times: on a narrow terminal tqdm cuts the line's end
BAR_FORMAT = "{percentage:5.1f}% |{bar}| {desc}{elapsed} elapsed, {remaining} left"
REDRAW_S = 0.1  # the fastest the line is redrawn (a run of many short trials reports often)
UNKNOWN_SIZE = (80, 24)  # columns and lines where the terminal reports none (a pty nobody
# sized, as under ``script`` or a test: tqdm took its 0 lines as no room and drew nothing)


def terminal_columns(stream: TextIO) -> int:
    """The terminal's width in columns; 0 where it reports none."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


class Bar(tqdm):
    """tqdm without its monitor thread (it only tunes redraws of loops that stall; the engine
    calls the bar itself, and a run has no thread of tqdm's beside it)."""

    monitor_interval = 0


class TextProgress:
    """A one-line progress bar on a terminal (silent when not a terminal): the fraction done,
    the time spent and the time left, the trials done with the last trial's final F."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        self.interactive = stream.isatty()
        sized = self.interactive and terminal_columns(stream) > 0
        self.bar = Bar(total=1.0, file=stream, disable=not self.interactive,
                       bar_format=BAR_FORMAT, dynamic_ncols=sized,
                       ncols=None if sized else UNKNOWN_SIZE[0],
                       nrows=None if sized else UNKNOWN_SIZE[1], smoothing=0,
                       mininterval=REDRAW_S, leave=True)
        self.closed = False

    def __call__(self, fraction: float) -> None:
        """The run is ``fraction`` done (redrawn at most every ``REDRAW_S``)."""
        if not self.closed and fraction > self.bar.n:
            self.bar.update(min(fraction, 1.0) - self.bar.n)

    def trial_done(self, done: int, total: int, free_energy: float | None) -> None:
        """A trial ended: ``done`` of ``total``, with its final F (nat) when the run has it."""
        energy = "" if free_energy is None else f", F {free_energy:.4g} nat"
        if not self.closed:
            self.bar.set_description_str(f"trial {done}/{total}{energy}, ", refresh=False)
            self.bar.update(0)  # redrawn if it was not just now

    def close(self) -> None:
        """Draw the line a last time and leave it (once)."""
        if not self.closed:
            self.closed = True
            self.bar.close()

    def __enter__(self) -> TextProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def text_progress(stream: TextIO | None = None) -> TextProgress:
    """A one-line progress bar on a terminal (``TextProgress``)."""
    return TextProgress(stream)
