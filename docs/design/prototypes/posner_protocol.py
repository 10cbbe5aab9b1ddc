"""Posner's protocol and model as plain arrays, for the hand-built prototypes; pcsim's own run
of ``attention/posner`` to compare them with.

The model (``scenarios/attention/posner.toml``; ``docs/attention.md``), written out by hand:
input x (2 locations), target beliefs mu_t (2), context belief mu_c (1), instantaneous errors,

    Pi_0  = exp(clip(C mu_c, -20, 20))          C = [1, -1]: attend left > 0, right < 0
    eps_0 = Pi_0 (x - W_1 mu_t)                 W_1 = I
    eps_1 = 1 (mu_t - W_2 mu_c)                 W_2 = [[0], [0]]
    eps_2 = 4 (mu_c - prior)                    prior: the trial's cue, ln(v / (1 - v))
    tau dmu_t/dt = W_1' eps_0 - eps_1
    tau dmu_c/dt = W_2' eps_1 - eps_2 + C' (1 - Pi_0 (x - W_1 mu_t)^2) / 2

tau = 50 ms, Euler steps of 0.1 ms; each trial (300 ms) starts from mu = 0. The input is 0 until
100 ms, then 1 at the trial's side, plus N(0, 0.1^2) noise every step from pcsim's stream
``default_rng([seed, 2, trial index])`` (so the inputs are pcsim's to the bit). The trial order
(the shuffled conditions, each trial's index) is read from pcsim's result, the rest from the
scenario file. Recorded every 1 ms (before the beliefs move: a sample shows x, eps and Pi at t
with mu(t)); F = energy + Laplace term per sample, as ``sim.families.hierarchical.free_energy``
defines them.
"""
from __future__ import annotations

import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import sim

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = ROOT / "scenarios" / "attention" / "posner.toml"
REFERENCE = Path(tempfile.gettempdir()) / "pcsim-posner-reference.h5"
DT_MS = 0.1
TAU_MS = 50.0
TRIAL_STEPS = 3000
RECORD_EVERY = 10  # steps: 1 ms
ONSET_STEP = 1000
THRESHOLD = 0.15  # reaction time: a target belief above it, checked every step from the onset
NOISE_STD = 0.1
PRIOR_PRECISION = 4.0
CEILING = 20.0
LN_2PI = float(np.log(2.0 * np.pi))

# the datasets of pcsim's result the prototypes produce too
TRACES = ("levels/locations/input", "levels/locations/error", "levels/locations/precision",
          "levels/target/belief", "levels/target/error", "levels/context/belief",
          "levels/context/error", "energy", "free_energy")


@dataclass
class Protocol:
    seed: int
    conditions: list[str]
    prior: np.ndarray  # (trials,): each trial's prior mean
    side: np.ndarray  # (trials,): the unit where the target appears
    stimulus: np.ndarray  # (trials * TRIAL_STEPS, 2): x at every step of the protocol

    @property
    def trials(self) -> int:
        return len(self.prior)

    @property
    def steps(self) -> int:
        return self.trials * TRIAL_STEPS


def reference() -> sim.Result:
    """pcsim's own run of attention/posner (made once, kept in the temporary folder as
    ``REFERENCE``: delete it to measure against another pcsim)."""
    if not REFERENCE.exists():
        sim.run("attention/posner", REFERENCE)
    return sim.load(REFERENCE)


def protocol(result: sim.Result) -> Protocol:
    scenario = tomllib.loads(SCENARIO.read_text())
    by_name = {c["name"]: c for c in scenario["protocol"]["conditions"]}
    conditions = [c.decode() if isinstance(c, bytes) else str(c)
                  for c in result.trials["condition"]]
    prior = np.array([by_name[name]["prior_mean"] for name in conditions], dtype=float)
    side = np.array([int(np.argmax(by_name[name]["stimulus"]["values"][1]))
                     for name in conditions])
    seed = int(scenario["seed"])
    stimulus = np.zeros((len(conditions) * TRIAL_STEPS, 2))
    for trial, (unit, index) in enumerate(zip(side, result.trials["index"], strict=True)):
        rows = stimulus[trial * TRIAL_STEPS:(trial + 1) * TRIAL_STEPS]
        rows[ONSET_STEP:, unit] = 1.0
        noise = np.random.default_rng([seed, 2, int(index)]).standard_normal((TRIAL_STEPS, 2))
        rows += noise * NOISE_STD
    return Protocol(seed, conditions, prior, side, stimulus)


def free_energy(x: np.ndarray, mu_t: np.ndarray, mu_c: np.ndarray, prior: np.ndarray,
                pi_0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energy and F (Laplace) at each sample, from the recorded samples (rows; ``mu_c`` and
    ``prior`` one number a sample), vectorised.

    energy = sum_l 1/2 (e_l' Pi_l e_l + n_l ln 2 pi - ln det Pi_l); the Laplace term
    1/2 ln det H - N/2 ln 2 pi, H = d2 energy / dmu2 with the precisions held (3 x 3)."""
    e_0, e_1, e_2 = x - mu_t, mu_t, mu_c - prior
    energy = 0.5 * (np.sum(pi_0 * e_0**2, axis=1) + np.sum(e_1**2, axis=1)
                    + PRIOR_PRECISION * e_2**2 + 5 * LN_2PI
                    - np.sum(np.log(pi_0), axis=1) - np.log(PRIOR_PRECISION))
    w_1, w_2 = np.eye(2), np.zeros((2, 1))
    hessian = np.zeros((len(x), 3, 3))
    hessian[:, :2, :2] = np.einsum("ji,sj,jk->sik", w_1, pi_0, w_1) + np.eye(2)
    hessian[:, :2, 2:] = -w_2
    hessian[:, 2:, :2] = -w_2.T
    hessian[:, 2, 2] = (w_2.T @ w_2)[0, 0] + PRIOR_PRECISION
    laplace = 0.5 * np.linalg.slogdet(hessian)[1] - 1.5 * LN_2PI
    return energy, energy + laplace


def compare(label: str, traces: dict[str, np.ndarray], result: sim.Result,
            final: dict[str, np.ndarray] | None = None,
            reaction_ms: np.ndarray | None = None) -> float:
    """Print the largest absolute difference of each trace from pcsim's; return the largest."""
    worst = 0.0
    for name, values in traces.items():
        theirs = result.read(name, np.s_[...])
        difference = float(np.max(np.abs(np.asarray(values).reshape(theirs.shape) - theirs)))
        worst = max(worst, difference)
        print(f"  {label}: {name:30s} max |diff| {difference:.2e}")
    for name, values in (final or {}).items():
        theirs = result.trials[f"final_belief/{name}"]
        difference = float(np.max(np.abs(np.asarray(values).reshape(theirs.shape) - theirs)))
        worst = max(worst, difference)
        print(f"  {label}: final_belief/{name:19s} max |diff| {difference:.2e}")
    if reaction_ms is not None:
        theirs = result.trials["decision_time"]
        same = np.array_equal(np.round(reaction_ms, 9), np.round(theirs, 9), equal_nan=True)
        print(f"  {label}: reaction times (every step) equal to pcsim's: {same}")
    print(f"  {label}: largest difference {worst:.2e}")
    return worst
