"""One progress line across a sweep on stderr: points finished, failed, time left.

On a terminal the line is redrawn in place; elsewhere (a log file, a pipe) only the final line
is written.
"""

from __future__ import annotations

import sys
import time


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class SweepProgress:
    def __init__(self, total: int, stream=None, width: int = 30) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.width = width
        self.interactive = self.stream.isatty()
        self.began = time.perf_counter()
        self.finished = self.failed = self.diverged = 0
        self.already = 0  # finished before this run: not counted in the time left
        self.shown = 0

    def start(self, already: int) -> None:
        """The workers are ready: the clock starts, ``already`` points were finished before."""
        self.began = time.perf_counter()
        self.finished = self.already = already
        self.draw()

    def add(self, status: str) -> None:
        if status in ("done", "diverged", "failed"):
            self.finished += 1
            self.failed += status == "failed"
            self.diverged += status == "diverged"
        self.draw()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.began
        ran = self.finished - self.already
        left = elapsed / ran * (self.total - self.finished) if ran else None
        filled = int(self.width * self.finished / max(self.total, 1))
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.finished}/{self.total} "
                f"points, {self.failed} failed"
                + (f", {self.diverged} diverged" if self.diverged else "")
                + f", {clock(elapsed)} elapsed"
                + (f", {clock(left)} left" if left is not None else ""))

    def draw(self) -> None:
        if self.interactive:
            line = self.line()
            self.stream.write("\r" + line.ljust(self.shown))
            self.shown = len(line)
            self.stream.flush()

    def end(self) -> None:
        if self.interactive:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()
            self.interactive = False  # once
