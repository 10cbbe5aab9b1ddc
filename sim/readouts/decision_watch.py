"""The decision readout's stopping rules, as the run applies them to Q at every step: on the
runtime device to Q's steps kept in blocks (``Watch``), and the threshold rule in compiled code
(``compiled``, ``replayed``) on the standalone device. The rules' definitions are
``sim.readouts.decision``'s docstring.

On the runtime device Q of every step is kept, a block of up to ``block_steps`` steps at a time,
and the rule is applied to a block at once (``Watch.advance``, NumPy over the block's rows,
carrying Q's last step and the decision so far into the next block) when the block is full
and at the trial's end, so no step goes unchecked. Where the steps come from:

- discrete: the categorical circuits keep their log-beliefs v of each step where their pool's
  operation reads v anyway (``CategoricalCircuit.v_steps``); the watch adds no Python call
  per step, and Q of the rows is computed after with the same arithmetic (``q_of``);
- hierarchical: a network operation copies the level's beliefs each step (one row).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from circuits import schedule
from circuits.step_rows import StepRows

ONSET_SLACK_MS = 1e-9  # a step at the onset, up to rounding of the clock, counts
BLOCK_STEPS = 512  # steps of Q kept before the rule is applied to them, at most,
BLOCK_NUMBERS = 1 << 16  # and fewer for a large Q: 512 kB a block


def block_steps(units: int) -> int:
    """The steps of a block of Q over ``units`` entries."""
    return max(1, min(BLOCK_STEPS, BLOCK_NUMBERS // units))


def in_trial_ms(now_s: Any, start_s: Any) -> Any:
    """The time since the trial's start (ms) from network times (s), as the check computes
    it (numbers or arrays, the same arithmetic: a compiled run's decision time equals the
    runtime's bit for bit)."""
    return 1e3 * (now_s - start_s)


def before_onset(now_ms: Any, onset_ms: float) -> Any:
    return now_ms < onset_ms - ONSET_SLACK_MS


# where in a step a hierarchical level's Q is read: before the step (mu(t), before the input)
LEVEL_ORDER = schedule.STIMULUS - 1


def q_reader(simulation: Any, settings: Any) -> Callable[[], np.ndarray]:
    """A function giving the watched Q now as one vector: the discrete belief's factors side
    by side (each its posterior over its causes; beliefs only, not the errors or F), or the
    hierarchical level's beliefs (a view of the Brian2 array, no copy)."""
    if settings.level is None:
        state = simulation.state
        return lambda: state.q_of([circuit.v for circuit in state.circuits])
    belief = _level_belief(simulation, settings)
    return lambda: belief


def _level_belief(simulation: Any, settings: Any) -> np.ndarray:
    names = [level.name for level in simulation.model.belief_levels]
    return simulation.beliefs[names.index(settings.level)].variables["belief"].get_value()


class CircuitSteps:
    """Q of the discrete belief at the steps its circuits kept (``v_steps``): v of each
    factor at each step, as its pool's operation read it, before any factor moves in that
    step; Q(t) as the recorder samples it, nothing moves v between the two. Q is computed from
    those rows when taken."""

    def __init__(self, simulation: Any, full: Callable[[], None]) -> None:
        self.state = simulation.state
        circuits = self.state.circuits
        rows = block_steps(sum(len(circuit.v) for circuit in circuits))
        for circuit in circuits:  # the factors take turns within a step: the last one's
            # row completes the step
            circuit.v_steps = StepRows(rows, len(circuit.v),
                                       full if circuit is circuits[-1] else None)
        self.objects: list = []

    def take(self) -> np.ndarray:
        return self.state.q_of([circuit.v_steps.take() for circuit in self.state.circuits])


class LevelSteps:
    """The hierarchical level's beliefs at each step, copied by a network operation at
    ``LEVEL_ORDER``."""

    def __init__(self, simulation: Any, settings: Any, full: Callable[[], None]) -> None:
        from brian2 import NetworkOperation

        belief = _level_belief(simulation, settings)
        self.rows = StepRows(block_steps(len(belief)), len(belief), full)
        self.objects = [NetworkOperation(lambda: self.rows.keep(belief), when=schedule.SLOT,
                                         order=LEVEL_ORDER, clock=simulation.clock,
                                         name="decision")]

    def take(self) -> np.ndarray:
        return self.rows.take()


class Watch:
    """The current trial's stopping rule over Q's steps so far: ``decided`` is (in-trial ms,
    Q) of the decision step once the rule has one (the stable rule may take it back while Q
    moves again). ``objects``: what the run steps with to keep Q's steps."""

    def __init__(self, simulation: Any, settings: Any) -> None:
        self.simulation, self.settings = simulation, settings
        self.dt_ms = simulation.scenario.dt_ms
        self.read = q_reader(simulation, settings)
        self.steps = (CircuitSteps(simulation, self.advance_kept) if settings.level is None
                      else LevelSteps(simulation, settings, self.advance_kept))
        self.objects = self.steps.objects
        self.seen = 0  # steps of this trial the rule has been applied to
        self.previous: np.ndarray | None = None  # Q at the last of them (stable rule)
        self.decided: tuple[float, np.ndarray] | None = None

    def advance_kept(self) -> None:
        self.advance(self.steps.take())

    def advance(self, q: np.ndarray) -> None:
        """Apply the rule to the trial's next ``len(q)`` steps, Q a row each, in order (the
        definition's check at each of them, at once)."""
        if not len(q):
            return
        settings, simulation = self.settings, self.simulation
        clock_dt_s = float(simulation.clock.dt_)
        first = round(simulation.t_start / clock_dt_s) + self.seen  # network time steps:
        # the clock's t is its step times dt
        now_ms = in_trial_ms(np.arange(first, first + len(q)) * clock_dt_s,
                             simulation.t_start)
        self.seen += len(q)
        checked = ~before_onset(now_ms, settings.onset_ms)
        if settings.rule == "threshold":
            if self.decided is None:
                crossed = np.flatnonzero(checked & (q > settings.threshold).any(axis=1))
                if crossed.size:
                    n = crossed[0]
                    self.decided = (float(now_ms[n]), np.array(q[n], dtype=float))
            return
        rows = q if self.previous is None else np.concatenate([self.previous[None], q])
        rate = np.abs(np.diff(rows, axis=0)).max(axis=1) / self.dt_ms
        steps = np.arange(len(q) - len(rate), len(q))  # the trial's first step has no rate
        checked = checked[steps]
        moving = steps[checked & (rate >= settings.tolerance_per_ms)]
        if moving.size:
            self.decided = None
        if self.decided is None:
            still = steps[checked & (steps > (moving[-1] if moving.size else -1))]
            if still.size:
                self.decided = (float(now_ms[still[0]]), np.array(q[still[0]], dtype=float))
        self.previous = np.array(q[-1], dtype=float)

    def outcome(self) -> tuple[float, np.ndarray | None]:
        """At the trial's end: (decision time from the onset in ms, or NaN; Q at the decision
        step, or None); the next trial's steps start afresh."""
        self.advance_kept()
        decided = self.decided
        self.seen, self.previous, self.decided = 0, None, None
        if decided is None:
            return np.nan, None
        now_ms, q = decided
        return now_ms - self.settings.onset_ms, q


def compiled(simulation: Any, settings: Any, context: Any) -> list | None:
    """The threshold rule with the largest unit as the choice, in compiled code (None: the
    other rules and choices have none). A watcher unit per belief unit (the belief linked)
    keeps the step of its first crossing after the onset and its belief then; the decision,
    the first crossing's unit with the largest belief, is put together after the run
    (``replayed``) as ``Watch.advance`` finds it at that step: the units above the threshold
    at the first step any is, the largest of them the largest of all. Whether a step is past
    the onset is decided ahead, with the runtime's arithmetic."""
    if settings.rule != "threshold" or settings.choose != "largest":
        return None
    from brian2 import NeuronGroup, TimedArray, linked_var

    from sim.compiled.trial_starts import ORDER, STARTS, blend

    timeline = context.timeline
    now_ms = in_trial_ms(timeline.time(np.arange(timeline.total_steps)),
                         timeline.time(timeline.trial_first_step()))
    ready = (~before_onset(now_ms, settings.onset_ms)).astype(float)
    names = [level.name for level in simulation.model.belief_levels]
    beliefs = context.clone(simulation.beliefs[names.index(settings.level)])
    watcher = NeuronGroup(beliefs.N, "watched : 1 (linked)\ncrossed_step : 1\n"
                          "crossed_value : 1\nthreshold : 1 (shared, constant)",
                          clock=context.clock, name="decision_watch",
                          namespace={**context.namespace,
                                     "decision_ready": TimedArray(ready, dt=context.clock.dt,
                                                                  name="decision_ready")})
    watcher.threshold = settings.threshold  # a value, not a constant of the code: a sweep
    # over the threshold runs one compiled program (sim.compiled.values)
    watcher.watched = linked_var(beliefs, "belief")
    watcher.crossed_step = -1
    crossing = "(decision_ready(t) * int(crossed_step < 0) * int(watched > threshold))"
    watcher.run_regularly(
        f"{blend('crossed_value', 'watched', crossing)}\n"
        f"{blend('crossed_step', 'timestep(t, dt)', crossing)}",
        when=schedule.SLOT, order=LEVEL_ORDER, name="decision_check")
    watcher.run_regularly(blend("crossed_step", "-1", f"{STARTS}(t)"), when="start",
                          order=ORDER, name="decision_reset")
    context.readout_state["decision"] = watcher
    return [watcher]


def replayed(simulation: Any, recorded: Any, position: int) -> None:
    """The trial's decision from its watcher's state at its end (``compiled``): Q of the
    units that crossed at the first crossing's step, -inf for the others (below the
    threshold then, so never the largest)."""
    steps, values = recorded["crossed_step"], recorded["crossed_value"]
    watch: Watch = simulation.readout_state["decision"]
    crossed = steps >= 0
    if not crossed.any():
        watch.decided = None
        return
    first = steps[crossed].min()
    timeline = simulation.compiled_timeline
    now_ms = in_trial_ms(timeline.time(int(first)),
                         timeline.time(int(timeline.first_steps[position])))
    watch.decided = (now_ms, np.where(steps == first, values, -np.inf))
