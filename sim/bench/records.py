"""What ``pcsim bench`` measured, one record per row, and each record's JSON form (the keys
are listed in the README's Performance section)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.bench.cases import TOLERANCE


@dataclass
class Record:
    """A simulation case (or the streaming memory run): pcsim against its reference."""

    name: str
    sizes: list[int]
    steps: int
    pcsim_steps_per_s: float | None = None
    reference_steps_per_s: float | None = None
    ratio: float | None = None
    whole_ratio: float | None = None  # recorded cases: scenario file to closed file, both sides
    target: float | None = None  # for the whole run's ratio where there is one
    max_abs_diff: float | None = None
    startup_warm_s: float | None = None
    startup_cold_s: float | None = None
    import_s: float | None = None
    peak_rss_mb: float | None = None
    coupling: str = ""
    jax_steps_per_s: float | None = None
    label: str = ""
    tolerance: float | None = TOLERANCE
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def agrees(self) -> bool | None:
        """Whether pcsim and the reference ended within the tolerance (None: not compared)."""
        if self.max_abs_diff is None or self.tolerance is None:
            return None
        return self.max_abs_diff <= self.tolerance

    @property
    def met(self) -> bool | None:
        ratio = self.ratio if self.whole_ratio is None else self.whole_ratio
        if ratio is None or self.target is None:
            return None
        return ratio <= self.target and self.agrees is not False

    def row(self) -> dict:
        """The JSON record."""
        row = {key: value for key, value in self.__dict__.items() if key != "extra"}
        row.update(self.extra)
        row["within_tolerance"] = self.agrees
        row["target_met"] = self.met
        return row


@dataclass
class CommandRecord:
    """A report command's wall time (fresh processes, best of ``runs_s``) and its baseline's."""

    name: str
    command: str  # as run, with the result file's name
    baseline: str  # the baseline's command line
    target_difference_s: float
    seconds: float | None = None
    baseline_s: float | None = None
    runs_s: list[float] = field(default_factory=list)
    baseline_runs_s: list[float] = field(default_factory=list)
    note: str = ""  # why there is no time (the command failed)

    @property
    def difference_s(self) -> float | None:
        if self.seconds is None or self.baseline_s is None:
            return None
        return self.seconds - self.baseline_s

    @property
    def met(self) -> bool | None:
        difference = self.difference_s
        return None if difference is None else difference <= self.target_difference_s

    def row(self) -> dict:
        """The JSON record."""
        return {"name": self.name, "command": self.command, "baseline": self.baseline,
                "seconds": self.seconds, "baseline_s": self.baseline_s,
                "difference_s": self.difference_s,
                "target_difference_s": self.target_difference_s, "target_met": self.met,
                "runs_s": self.runs_s, "baseline_runs_s": self.baseline_runs_s,
                "note": self.note}
