r"""Cases as users run them: the default recording on, timed over the loop and the whole run.

pcsim runs the scenario as ``sim.run`` does (scenario file -> ``load_scenario`` ->
``run_scenario`` -> the closed result file). Its NumPy reference does the same work in its own
plain code: it reads the same scenario file (with pcsim's parser: both start from the same
numbers), integrates the same steps (``sim.bench.reference``), keeps the same samples in
preallocated arrays (input, beliefs, errors, precisions; the discrete family: Q, eps), computes
F at the same samples with its own straightforward formulas, and at the end writes the samples
to an HDF5 file, one uncompressed dataset each (what a modeller's script would do; it writes no
metadata, weights or trial table). For the continuous hierarchy F = E(mu) + 1/2 ln|H| -
N/2 ln 2 pi with H the dense Hessian over all beliefs and ``numpy.linalg.slogdet`` (no block
structure, no cache), the energy at every sample and the Laplace term at the samples where pcsim
computes it (the scenario's ``[record] laplace``, as resolved for the run: for timing
fairness both pay for the same number of log-determinants). For the discrete family F = -Q.eps
and the surprise -ln sum_k exp(ln D_k + s_k) when evidence arrives.

Both runs' samples are compared (``max_abs_diff``: each dataset's largest difference relative
to its largest magnitude, at least 1), so both recorded the same numbers. Two ratios: the loop
(the engine's first to last step against the reference's loop with its recording and F) and the
whole run (scenario file to closed file, both sides).

A batched pcsim run (``[protocol] batch``) would plug in as another table: the same
``whole_run`` of a protocol of B identical trials against B serial reference runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sim.bench import reference
from sim.bench.cases import DT_MS, Case, hierarchy_reference, hierarchy_table
from sim.bench.measure import Probe, prepare
from sim.bench.records import Record

EVERY_MS = 1.0  # the medium case records every 1 ms (10 steps)
TOLERANCE = 1e-9
LN_2PI = float(np.log(2.0 * np.pi))


def medium_table(steps: int) -> dict:
    """1000-500-100 tanh recording every 1 ms with the defaults (every variable, F with
    ``laplace = "auto"``)."""
    table = hierarchy_table("dense medium recorded", [1000, 500, 100], steps)
    table["record"] = {"every_ms": EVERY_MS}
    return table


def discrete_recorded_table(steps: int) -> dict:
    """K = 2000 causes recording every step (every variable)."""
    from sim.bench.discrete import discrete_table

    table = discrete_table("discrete K2000 recorded", 2000, steps)
    table["record"] = {"every_ms": DT_MS}
    return table


def _second_derivative(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name == "tanh":
        return lambda mu: -2.0 * np.tanh(mu) * (1.0 - np.tanh(mu) ** 2)
    return np.zeros_like


class HierarchySamples:
    """The reference's recorder for the continuous hierarchy: samples and F (module doc)."""

    def __init__(self, model: reference.Hierarchy, count: int, laplace_every: int) -> None:
        if model.errors != "relaxing" or model.site != "before":
            raise ValueError("the recorded reference covers relaxing errors and g = W f(mu)")
        sizes = [len(p) for p in model.precisions]
        self.model, self.count, self.laplace_every = model, count, laplace_every
        self.states = [np.empty((count, n)) for n in sizes]
        self.errors = [np.empty((count, n)) for n in sizes]
        self.precisions = [np.empty((count, n)) for n in sizes]
        self.energy = np.empty(count)
        self.free_energy = np.full(count, np.nan)
        self.f, self.df = reference.NONLINEARITIES[model.nonlinearity]
        self.d2f = _second_derivative(model.nonlinearity)
        self.filled = 0

    def __call__(self, mu: list[np.ndarray], eps: list[np.ndarray]) -> None:
        k, model = self.filled, self.model
        Pi = [np.asarray(p, dtype=float) for p in model.precisions]
        W = model.weights
        for level, state in enumerate(mu):
            self.states[level][k] = state
            self.errors[level][k] = eps[level]
            self.precisions[level][k] = Pi[level]
        e = [mu[level] - W[level] @ self.f(mu[level + 1]) for level in range(len(W))]
        e.append(mu[-1] - model.prior_mean)
        energy = sum(0.5 * np.sum(p * d**2) + 0.5 * np.sum(LN_2PI - np.log(p[p > 0]))
                     for p, d in zip(Pi, e, strict=True))
        self.energy[k] = energy
        if self.laplace_every and k % self.laplace_every == 0:
            hessian = self.hessian(mu, e, Pi)
            laplace = 0.5 * np.linalg.slogdet(hessian)[1] - 0.5 * len(hessian) * LN_2PI
            self.free_energy[k] = energy + laplace
        self.filled += 1

    def hessian(self, mu, e, Pi) -> np.ndarray:
        """d^2 E / dmu^2 over mu_1..mu_L, dense: Pi_l + J_l' Pi_{l-1} J_l - f''(mu_l) W_l'
        Pi_{l-1} e_{l-1} on the diagonal blocks, -Pi_{l-1} J_l beside them."""
        W, sizes = self.model.weights, [len(m) for m in mu[1:]]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        hessian = np.zeros((starts[-1], starts[-1]))
        for level in range(1, len(mu)):
            here = slice(starts[level - 1], starts[level])
            J = W[level - 1] * self.df(mu[level])[np.newaxis, :]
            weighted = Pi[level - 1][:, np.newaxis] * J
            hessian[here, here] = (np.diag(Pi[level]) + J.T @ weighted - np.diag(
                self.d2f(mu[level]) * (W[level - 1].T @ (Pi[level - 1] * e[level - 1]))))
            if level > 1:
                below = slice(starts[level - 2], starts[level - 1])
                hessian[below, here] = -weighted
                hessian[here, below] = -weighted.T
        return hessian

    def datasets(self, names: list[str]) -> dict[str, np.ndarray]:
        """The samples by their paths in a pcsim result (``names``: the levels')."""
        found = {}
        for level, name in enumerate(names):
            where = f"levels/{name}"
            found[f"{where}/{'input' if level == 0 else 'belief'}"] = self.states[level]
            found[f"{where}/error"] = self.errors[level]
            found[f"{where}/precision"] = self.precisions[level]
        found["energy"], found["free_energy"] = self.energy, self.free_energy
        return found


class CategoricalSamples:
    """The reference's recorder for K categorical causes: Q, eps, F = -Q.eps, surprise."""

    def __init__(self, model: reference.Categorical, count: int, causes: int) -> None:
        self.log_prior = np.log(model.prior)
        self.arrivals = {step for step, *_ in model.observations}
        self.belief = np.empty((count, causes))
        self.error = np.empty((count, causes))
        self.free_energy = np.empty(count)
        self.surprise = np.empty(count)
        self.now, self.filled, self.step = 0.0, 0, 0

    def __call__(self, belief: np.ndarray, error: np.ndarray, evidence: np.ndarray) -> None:
        k = self.filled
        if self.step in self.arrivals:
            joint = self.log_prior + evidence
            top = joint.max()
            self.now = -(top + np.log(np.exp(joint - top).sum()))
        self.belief[k], self.error[k] = belief, error
        self.free_energy[k] = -(belief @ error)
        self.surprise[k] = self.now
        self.filled += 1
        self.step += 1

    def datasets(self) -> dict[str, np.ndarray]:
        return {"causes/belief": self.belief, "causes/error": self.error,
                "free_energy": self.free_energy, "surprise": self.surprise}


def write_samples(output: Path, datasets: dict[str, np.ndarray]) -> None:
    import h5py

    with h5py.File(output, "w") as file:
        for path, values in datasets.items():
            file.create_dataset(path, data=values)


def hierarchy_whole_run(path: Path, output: Path, steps: int) -> tuple[float, dict]:
    """(loop s, samples): the reference's whole run of a recorded hierarchical scenario."""
    from sim.families.hierarchical.build import laplace_cadence
    from sim.scenario import load_scenario

    scenario = load_scenario(path)
    model, every = hierarchy_reference(scenario), scenario.record.every_steps
    laplace_every = laplace_cadence(scenario.record.laplace, scenario.model, every)
    recorder = HierarchySamples(model, -(-steps // every), laplace_every)
    began = time.perf_counter()
    reference.run_hierarchy(model, steps, record_every=every, on_sample=recorder)
    loop = time.perf_counter() - began
    datasets = recorder.datasets([level.name for level in scenario.model.levels])
    write_samples(output, datasets)
    return loop, datasets


def discrete_whole_run(path: Path, output: Path, steps: int) -> tuple[float, dict]:
    """(loop s, samples): the reference's whole run of a recorded discrete scenario."""
    from sim.bench.discrete import reference_observations
    from sim.scenario import load_scenario

    scenario = load_scenario(path)
    model = scenario.model
    categorical = reference.Categorical(model.prior.copy(),
                                        reference_observations(scenario, steps), scenario.dt_ms,
                                        model.tau_belief_ms)
    every = scenario.record.every_steps
    if every != 1:
        raise ValueError("the recorded discrete reference records every step")
    recorder = CategoricalSamples(categorical, steps, len(model.prior))
    began = time.perf_counter()
    reference.run_categorical(categorical, steps, record_every=1, on_sample=recorder)
    loop = time.perf_counter() - began
    datasets = recorder.datasets()
    write_samples(output, datasets)
    return loop, datasets


def relative_difference(reference_sets: dict, pcsim_sets: dict) -> float:
    """The largest difference of any dataset, relative to its largest magnitude (at least 1);
    NaN must sit at the same samples (inf if not)."""
    worst = 0.0
    for path, expected in reference_sets.items():
        found = pcsim_sets[path]
        if expected.shape != found.shape or not np.array_equal(np.isnan(expected),
                                                                np.isnan(found)):
            return math.inf
        known = ~np.isnan(expected)
        scale = max(1.0, float(np.max(np.abs(expected[known]), initial=0.0)))
        worst = max(worst, float(np.max(np.abs(expected[known] - found[known]), initial=0.0))
                    / scale)
    return worst


def pcsim_whole_run(path: Path, output: Path) -> tuple[float, float]:
    """(loop s, whole s) of ``sim.run``'s path: scenario file to closed result file."""
    from sim.engine import run_scenario
    from sim.scenario import load_scenario

    probe = Probe()
    began = time.perf_counter()
    run_scenario(load_scenario(path), output, probe, overwrite=True)
    return probe.last - probe.first, time.perf_counter() - began


def read_samples(output: Path, paths) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(output, "r") as file:
        return {path: np.asarray(file[path][()], dtype=float) for path in paths}


def measure_recorded(case: Case, steps: int, repeats: int, workdir: Path) -> Record:
    """pcsim against the reference's whole run, interleaved; the best of each counts.
    ``ratio`` is the loop's, ``extra["whole_ratio"]`` the whole run's (the target's)."""
    record, path = prepare(case, steps, workdir)
    if path is None:
        return record
    slug = path.stem
    pcsim_output, reference_output = workdir / f"{slug}.h5", workdir / f"{slug}_reference.h5"
    times: dict[str, list[float]] = {"pcsim_loop_s": [], "pcsim_whole_s": [],
                                     "reference_loop_s": [], "reference_whole_s": []}
    samples: dict = {}
    for repeat in range(repeats):
        for which in ("reference", "pcsim") if repeat % 2 == 0 else ("pcsim", "reference"):
            if which == "pcsim":
                loop, whole = pcsim_whole_run(path, pcsim_output)
            else:
                began = time.perf_counter()
                loop, samples = case.whole_run(path, reference_output, steps)
                whole = time.perf_counter() - began
            times[f"{which}_loop_s"].append(loop)
            times[f"{which}_whole_s"].append(whole)
    record.max_abs_diff = relative_difference(samples, read_samples(pcsim_output, samples))
    record.ratio = min(times["pcsim_loop_s"]) / min(times["reference_loop_s"])
    record.whole_ratio = min(times["pcsim_whole_s"]) / min(times["reference_whole_s"])
    record.pcsim_steps_per_s = steps / min(times["pcsim_loop_s"])
    record.reference_steps_per_s = steps / min(times["reference_loop_s"])
    record.extra.update(times)
    for output in (pcsim_output, reference_output):
        output.unlink(missing_ok=True)
    return record


def cases() -> list[Case]:
    """The recorded cases: ``whole_run`` is the reference's; targets are whole-run ratios."""
    out = [Case("dense medium recorded", [1000, 500, 100], "1000-500-100 /1ms", 5000, 2500,
                1.3, medium_table, tolerance=TOLERANCE, whole_run=hierarchy_whole_run)]
    try:
        from sim.bench import discrete  # noqa: F401
    except ImportError as err:
        return [*out, Case("discrete K=2000 recorded", [2000], "K=2000 /step", 0, 0, None,
                           lambda n: {}, available=f"not available: {err}")]
    return [*out, Case("discrete K=2000 recorded", [2000], "K=2000 /step", 5000, 2500, 1.5,
                       discrete_recorded_table, tolerance=TOLERANCE,
                       whole_run=discrete_whole_run)]
