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


@dataclass
class SmallModelRecord:
    """One model of the "small models" row (``sim.bench.small_models``): pcsim's best wall time
    per device (or its refusal) against the reference loop's, and their agreement per device."""

    name: str
    label: str
    steps: int
    samples: int
    pcsim_s: dict[str, float] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # device -> its one-line refusal
    reference_s: float | None = None
    agreement: dict[str, dict] = field(default_factory=dict)  # device -> max|diff| and more
    target_ratio: float | None = None
    target_us_per_step: float | None = None
    tolerance: float = TOLERANCE

    def ratio(self, device: str) -> float | None:
        if device not in self.pcsim_s or self.reference_s is None:
            return None
        return self.pcsim_s[device] / self.reference_s

    def us_per_step(self, seconds: float | None) -> float | None:
        return None if seconds is None else 1e6 * seconds / self.steps

    @property
    def agrees(self) -> bool | None:
        """Every device's final beliefs within the tolerance of the reference's."""
        if not self.agreement:
            return None
        return all(a["max_abs_diff"] <= self.tolerance for a in self.agreement.values())

    def met(self, device: str) -> bool | None:
        ratio, us = self.ratio(device), self.us_per_step(self.pcsim_s.get(device))
        if self.target_ratio is not None and ratio is not None:
            return ratio <= self.target_ratio and self.agrees is not False
        if self.target_us_per_step is not None and us is not None:
            return us <= self.target_us_per_step and self.agrees is not False
        return None

    def row(self) -> dict:
        row = dict(self.__dict__)
        row.update(reference_us_per_step=self.us_per_step(self.reference_s),
                   us_per_step={d: self.us_per_step(s) for d, s in self.pcsim_s.items()},
                   ratio={d: self.ratio(d) for d in self.pcsim_s},
                   target_met={d: self.met(d) for d in self.pcsim_s},
                   within_tolerance=self.agrees)
        return row


@dataclass
class SmallModelsRecord:
    """The "small models" row: its models and how the reference ran."""

    name: str = "small models"
    devices: list[str] = field(default_factory=list)
    reference: str = ""  # "Numba 0.x", "plain Python", or why there is none
    jit_s: float | None = None
    pcsim_repeats: int = 1
    reference_repeats: int = 5
    models: list[SmallModelRecord] = field(default_factory=list)

    @property
    def agrees(self) -> bool | None:
        checked = [m.agrees for m in self.models if m.agrees is not None]
        return None if not checked else all(checked)

    @property
    def max_abs_diff(self) -> float | None:
        """The largest difference of final beliefs, over models and devices."""
        found = [a["max_abs_diff"] for m in self.models for a in m.agreement.values()]
        return max(found) if found else None

    @property
    def tolerance(self) -> float:
        return TOLERANCE

    def row(self) -> dict:
        row = {key: value for key, value in self.__dict__.items() if key != "models"}
        row["max_abs_diff"] = self.max_abs_diff
        row["models"] = [m.row() for m in self.models]
        row["within_tolerance"] = self.agrees
        return row

    def lines(self) -> list[str]:
        if self.jit_s is not None:
            how = (f"{self.reference}, JIT {self.jit_s:.2f} s excluded, best of "
                   f"{self.reference_repeats}")
        elif self.reference == "plain Python":
            how = f"plain Python, best of {self.reference_repeats}"
        else:
            how = f"no reference: {self.reference}"
        head = (f"small models (sim.run, warm, default recording, F with its Laplace term at "
                f"every sample; best of {self.pcsim_repeats}) against one loop over the whole "
                f"protocol: {how}")
        lines = [head]
        for m in self.models:
            reference = ("" if m.reference_s is None else
                         f"; reference {m.reference_s:.3f} s ({m.us_per_step(m.reference_s):.2f}"
                         f" us/step)")
            lines.append(f"  {m.name} ({m.label}): {m.steps} steps, {m.samples} samples"
                         + reference)
            for device in self.devices:
                if device in m.refused:
                    lines.append(f"    {device:10s} refused: {m.refused[device]}")
                    continue
                seconds = m.pcsim_s[device]
                ratio = m.ratio(device)
                target = (f"target ratio <= {m.target_ratio:g}" if m.target_ratio is not None
                          else f"target <= {m.target_us_per_step:g} us/step")
                flag = {None: "", True: " ok", False: " MISSED"}[m.met(device)]
                lines.append(f"    {device:10s} {seconds:8.2f} s {m.us_per_step(seconds):8.1f} "
                             f"us/step" + ("" if ratio is None else f"  ratio {ratio:7.1f}")
                             + f" ({target}{flag}){_agreement(m, device)}")
        return lines


def _agreement(model: SmallModelRecord, device: str) -> str:
    agreed = model.agreement.get(device)
    if agreed is None:
        return ""
    found = agreed["max_abs_diff"]
    text = (f"; final beliefs max|diff| {found:.1e}"
            + ("" if found <= model.tolerance else f" > {model.tolerance:g} MISSED")
            + f", F {agreed['free_energy_diff']:.1e}")
    if "reaction_times_equal" in agreed:
        text += f", reaction times {'equal' if agreed['reaction_times_equal'] else 'DIFFER'}"
    return text
