"""The errors a run or a result file can raise to a user (no Brian2 here: the report side and
the CLI import them)."""

from __future__ import annotations

from pathlib import Path


class ScenarioError(ValueError):
    """A mistake in a scenario (or its overrides): the message says where and what was expected."""


class DeviceUnsupportedError(ScenarioError):
    """The scenario asks the compiled (``cpp_standalone``) device for something it cannot run,
    such as a Python network operation (``sim.compiled.device``): the message names it."""


class NumericalWarning(UserWarning):
    """The integration step is close to its stability bound (``sim.stability``)."""


class ResultError(ValueError):
    """A file that cannot be read as a pcsim result, or an output path that cannot be used."""


class MissingDatasetError(ResultError, KeyError):
    """A dataset a result does not hold: a ``ResultError`` naming the file (one line) that is
    also the ``KeyError`` of a mapping, so that ``.get`` and ``in`` work as before."""

    __str__ = ValueError.__str__  # KeyError's would quote the message


class DivergenceError(RuntimeError):
    """The run blew up (NaN, Inf or a runaway rate): ``path`` holds what came before, marked
    ``status = "diverged"`` with the message in the ``failure`` attribute."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped the run; ``path`` is the kept partial result, or None."""

    def __init__(self, message: str, path: Path | None) -> None:
        super().__init__(message)
        self.message, self.path = message, path
