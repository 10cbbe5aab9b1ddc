"""Posner's flows hand-built in Brian2 as ONE run over the whole protocol, with no network
operation: on the runtime (Cython) device and on the ``cpp_standalone`` device.

One group holds the 5 belief/error units' flows (``posner_protocol``): each step a
``run_regularly`` computes input (``TimedArray`` over the whole protocol), precision, errors and
the context's attention drive; the state updater moves the beliefs; a ``run_regularly`` every
300 ms resets a trial (beliefs to 0, the trial's prior from a per-trial ``TimedArray``); a custom
event checked every step at the start of the step is the reaction time (an ``EventMonitor``);
``StateMonitor`` s record every 1 ms and at trial ends; F is computed from the samples afterwards.

    python docs/design/prototypes/posner_brian2.py            # both devices, all numbers
    python docs/design/prototypes/posner_brian2.py runtime [--fused]
    python docs/design/prototypes/posner_brian2.py standalone DIRECTORY [--run-args] [--fused]
                                                   [--reuse]
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import posner_loops
import posner_protocol as posner
from brian2 import (
    EventMonitor,
    Network,
    NeuronGroup,
    StateMonitor,
    TimedArray,
    defaultclock,
    device,
    ms,
    prefs,
    set_device,
)

EQUATIONS = """
dmu_l/dt = (e0_l - e1_l) / tau : 1
dmu_r/dt = (e0_r - e1_r) / tau : 1
dmu_c/dt = (up_c - e2 + drive_c) / tau : 1
x_l : 1
x_r : 1
pi_l : 1
pi_r : 1
e0_l : 1
e0_r : 1
e1_l : 1
e1_r : 1
e2 : 1
up_c : 1
drive_c : 1
prior : 1
trial_start : second
answered : 1
tau : second (shared, constant)
prior_precision : 1 (shared, constant)
"""

STEP = """
x_l = stimulus_l(t)
x_r = stimulus_r(t)
pi_l = exp(clip(mu_c, -20, 20))
pi_r = exp(clip(-mu_c, -20, 20))
e0_l = pi_l * (x_l - mu_l)
e0_r = pi_r * (x_r - mu_r)
e1_l = mu_l
e1_r = mu_r
e2 = prior_precision * (mu_c - prior)
up_c = 0 * e1_l + 0 * e1_r
drive_c = 0.5 * (1 - pi_l * (x_l - mu_l)**2) - 0.5 * (1 - pi_r * (x_r - mu_r)**2)
"""

TRIAL_START = """
mu_l = 0
mu_r = 0
mu_c = 0
prior = trial_prior(t)
trial_start = t
answered = 0
"""

CROSSED = ("answered == 0 and t - trial_start > onset - 0.5 * dt "
           "and (mu_l > threshold or mu_r > threshold)")

# the floor of the runtime device: one code object a step does it all (Euler by hand, as
# Brian2's ``euler`` writes it; the reaction time checked first, before anything moves)
FUSED_EQUATIONS = (EQUATIONS.replace("dmu_l/dt = (e0_l - e1_l) / tau : 1", "mu_l : 1")
                   .replace("dmu_r/dt = (e0_r - e1_r) / tau : 1", "mu_r : 1")
                   .replace("dmu_c/dt = (up_c - e2 + drive_c) / tau : 1", "mu_c : 1")
                   + "hit : 1\nrt : 1\n")
FUSED_STEP = f"""
hit = int({CROSSED})
rt = hit * (t - trial_start - onset) / ms + (1 - hit) * rt
answered = answered + hit
{STEP}
mu_l = mu_l + dt * (e0_l - e1_l) / tau
mu_r = mu_r + dt * (e0_r - e1_r) / tau
mu_c = mu_c + dt * (up_c - e2 + drive_c) / tau
"""

RECORDED = ["x_l", "x_r", "e0_l", "e0_r", "pi_l", "pi_r", "mu_l", "mu_r", "e1_l", "e1_r",
            "mu_c", "e2"]


def build(protocol: posner.Protocol, fused: bool = False) -> dict:
    """The network, the monitors and the TimedArrays (their values can change per run).
    ``fused``: one code object a step (``FUSED_STEP``) instead of four."""
    defaultclock.dt = posner.DT_MS * ms
    trial_ms = posner.TRIAL_STEPS * posner.DT_MS
    stimulus_l = TimedArray(np.ascontiguousarray(protocol.stimulus[:, 0]), dt=posner.DT_MS * ms,
                            name="stimulus_l")
    stimulus_r = TimedArray(np.ascontiguousarray(protocol.stimulus[:, 1]), dt=posner.DT_MS * ms,
                            name="stimulus_r")
    trial_prior = TimedArray(protocol.prior, dt=trial_ms * ms, name="trial_prior")
    namespace = {"stimulus_l": stimulus_l, "stimulus_r": stimulus_r,
                 "trial_prior": trial_prior, "onset": posner.ONSET_STEP * posner.DT_MS * ms,
                 "threshold": posner.THRESHOLD}
    if fused:
        group = NeuronGroup(1, FUSED_EQUATIONS, namespace=namespace, name="posner")
        group.run_regularly(TRIAL_START + "rt = -1\n", dt=trial_ms * ms, when="start", order=-2,
                            name="trial")
        group.run_regularly(FUSED_STEP, when="groups", order=0, name="step")
        crossings = None
    else:
        group = NeuronGroup(1, EQUATIONS, method="euler", events={"crossed": CROSSED},
                            namespace=namespace, order=2, name="posner")
        group.set_event_schedule("crossed", when="start", order=-1)  # mu(t) before it moves
        group.run_on_event("crossed", "answered = 1")
        group.run_regularly(TRIAL_START, dt=trial_ms * ms, when="start", order=-2, name="trial")
        group.run_regularly(STEP, when="groups", order=0, name="step")
        crossings = EventMonitor(group, "crossed", variables=["mu_l", "mu_r"], name="crossings")
    group.tau = posner.TAU_MS * ms
    group.prior_precision = posner.PRIOR_PRECISION
    # fused: mu(t) is sampled before the step moves it; x, eps and Pi are derived from it and
    # the stimulus after the run (recorded after the step, mu would be mu(t + dt))
    samples = StateMonitor(group, ["mu_l", "mu_r", "mu_c"] if fused else RECORDED, record=0,
                           dt=posner.RECORD_EVERY * posner.DT_MS * ms, when="groups",
                           order=-1 if fused else 1, name="samples")
    ends = StateMonitor(group, ["mu_l", "mu_r", "mu_c", *(["rt"] if fused else [])], record=0,
                        dt=trial_ms * ms, when="start", order=-3, name="ends")
    network = Network(group, samples, ends, *([] if crossings is None else [crossings]))
    return {"network": network, "group": group, "samples": samples, "ends": ends,
            "crossings": crossings, "stimulus_l": stimulus_l, "stimulus_r": stimulus_r,
            "trial_prior": trial_prior}


def results(built: dict, protocol: posner.Protocol) -> tuple[dict, dict, np.ndarray]:
    """The monitors' data as pcsim's datasets (F from the samples, vectorised)."""
    samples, group = built["samples"], built["group"]
    prior = np.repeat(protocol.prior, posner.TRIAL_STEPS // posner.RECORD_EVERY)
    if built["crossings"] is None:  # fused: only mu(t) was recorded
        kept = {name: np.asarray(getattr(samples, name))[0] for name in ("mu_l", "mu_r", "mu_c")}
        kept["x_l"], kept["x_r"] = protocol.stimulus[::posner.RECORD_EVERY].T
        kept["pi_l"] = np.exp(np.clip(kept["mu_c"], -posner.CEILING, posner.CEILING))
        kept["pi_r"] = np.exp(np.clip(-kept["mu_c"], -posner.CEILING, posner.CEILING))
        for side in ("l", "r"):
            kept[f"e0_{side}"] = kept[f"pi_{side}"] * (kept[f"x_{side}"] - kept[f"mu_{side}"])
            kept[f"e1_{side}"] = kept[f"mu_{side}"]
        kept["e2"] = posner.PRIOR_PRECISION * (kept["mu_c"] - prior)
    else:
        kept = {name: np.asarray(getattr(samples, name))[0] for name in RECORDED}
    x = np.column_stack([kept["x_l"], kept["x_r"]])
    mu_t = np.column_stack([kept["mu_l"], kept["mu_r"]])
    pi_0 = np.column_stack([kept["pi_l"], kept["pi_r"]])
    energy, free = posner.free_energy(x, mu_t, kept["mu_c"], prior, pi_0)
    traces = {"levels/locations/input": x,
              "levels/locations/error": np.column_stack([kept["e0_l"], kept["e0_r"]]),
              "levels/locations/precision": pi_0, "levels/target/belief": mu_t,
              "levels/target/error": np.column_stack([kept["e1_l"], kept["e1_r"]]),
              "levels/context/belief": kept["mu_c"], "levels/context/error": kept["e2"],
              "energy": energy, "free_energy": free}
    ends = built["ends"]
    last = [[float(group.mu_l[0]), float(group.mu_r[0])]]
    final_t = np.vstack([np.column_stack([np.asarray(ends.mu_l)[0], np.asarray(ends.mu_r)[0]])[1:],
                         last])
    final_c = np.append(np.asarray(ends.mu_c)[0][1:], float(group.mu_c[0]))[:, None]
    if built["crossings"] is None:  # fused: rt at each trial's end, -1 for a miss
        reaction = np.append(np.asarray(ends.rt)[0][1:], float(group.rt[0]))
        return traces, {"target": final_t, "context": final_c}, np.where(reaction < 0, np.nan,
                                                                          reaction)
    reaction = np.full(protocol.trials, np.nan)
    trial_s = posner.TRIAL_STEPS * posner.DT_MS * 1e-3
    for t_s in np.asarray(built["crossings"].t_):
        trial = int(t_s / trial_s + 1e-9)
        step = round((t_s - trial * trial_s) / (posner.DT_MS * 1e-3))
        reaction[trial] = step * posner.DT_MS - posner.ONSET_STEP * posner.DT_MS
    return traces, {"target": final_t, "context": final_c}, reaction


def runtime(fused: bool = False) -> dict:
    """Cold: Cython compiles every code object into an empty cache; warm: a new network of the
    same code (Brian2's cache); then the timed run of the whole protocol."""
    prefs.codegen.target = "cython"
    cache = tempfile.mkdtemp(prefix="posner-cython-")
    prefs.codegen.runtime.cython.cache_dir = cache
    result = posner.reference()
    protocol = posner.protocol(result)
    duration = protocol.steps * posner.DT_MS * ms
    start = time.perf_counter()
    build(protocol, fused)["network"].run(100 * posner.DT_MS * ms)
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    build(protocol, fused)["network"].run(100 * posner.DT_MS * ms)
    compile_s = time.perf_counter() - start
    shutil.rmtree(cache, ignore_errors=True)
    built = build(protocol, fused)
    start = time.perf_counter()
    built["network"].run(duration)
    run_s = time.perf_counter() - start
    label = "runtime fused" if fused else "runtime"
    print(f"{label} (Cython), no network operation: build cold {cold_s:.2f} s, warm "
          f"{compile_s:.2f} s; "
          f"run {run_s:.2f} s ({1e6 * run_s / protocol.steps:.1f} us a step)")
    traces, final, reaction = results(built, protocol)
    worst = posner.compare(label, traces, result, final, reaction)
    return {"cold_s": cold_s, "warm_s": compile_s, "run_s": run_s,
            "us_step": 1e6 * run_s / protocol.steps, "worst": worst}


def standalone(directory: str, run_args: bool, fused: bool = False, reuse: bool = False) -> dict:
    """Build and run in ``directory`` (reused if it holds an earlier build); with ``run_args``
    a second run with other per-trial values (priors, stimulus), compared with a NumPy loop.
    ``reuse``: generate the sources but do not compile: run the program an earlier process built
    in ``directory`` (pcsim would have to know that the model is the same)."""
    set_device("cpp_standalone", directory=directory, build_on_run=False)
    prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]  # make -j alone: no limit
    result = posner.reference()
    protocol = posner.protocol(result)
    start, stamp = time.perf_counter(), time.time()
    built = build(protocol, fused)
    built["network"].run(protocol.steps * posner.DT_MS * ms)
    generate_s = time.perf_counter() - start
    device.build(directory=directory, compile=not reuse, run=False, with_output=False)
    build_s = time.perf_counter() - start
    compiled = compiled_since(directory, stamp)
    start = time.perf_counter()
    device.run(directory=directory, with_output=False)
    run_s = time.perf_counter() - start
    timing = Path(directory, "results", "last_run_info.txt").read_text().split()
    inner_s = float(timing[0])
    code_objects = len(list(Path(directory, "code_objects").glob("*.cpp")))
    label = ("standalone fused" if fused else "standalone") + (", reused program" if reuse else "")
    print(f"{label}: build {build_s:.2f} s (network set up {generate_s:.2f} s; {code_objects} "
          f"code objects, {compiled} object files compiled); program "
          f"{run_s:.2f} s wall, of which the run {inner_s:.3f} s "
          f"({1e6 * inner_s / protocol.steps:.2f} us a step)")
    start = time.perf_counter()
    traces, final, reaction = results(built, protocol)
    read_s = time.perf_counter() - start
    print(f"{label}: reading the monitors back and F from the samples: {read_s:.3f} s")
    worst = posner.compare(label, traces, result, final, reaction)
    found = {"build_s": build_s, "generate_s": generate_s, "program_s": run_s, "run_s": inner_s,
             "us_step": 1e6 * inner_s / protocol.steps, "code_objects": code_objects,
             "compiled": compiled, "read_s": read_s, "worst": worst}
    if run_args:
        found.update(second_run(built, protocol, directory))
    return found


def compiled_since(directory: str, stamp: float) -> int:
    """How many object files the build wrote after ``stamp`` (seconds since the epoch)."""
    return sum(1 for path in Path(directory).rglob("*.o") if path.stat().st_mtime >= stamp)


def second_run(built: dict, protocol: posner.Protocol, directory: str) -> dict:
    """Run the compiled program again with every trial's prior negated, other noise and the
    prior's precision halved (``run_args``: no code generated, nothing compiled)."""
    rng = np.random.default_rng(7)
    other = posner.Protocol(protocol.seed, protocol.conditions, -protocol.prior, protocol.side,
                            protocol.stimulus + rng.normal(0.0, 0.05, protocol.stimulus.shape))
    start, stamp = time.perf_counter(), time.time()
    device.run(directory=directory, with_output=False, run_args={
        built["trial_prior"]: other.prior,
        built["stimulus_l"]: np.ascontiguousarray(other.stimulus[:, 0]),
        built["stimulus_r"]: np.ascontiguousarray(other.stimulus[:, 1]),
        built["group"].prior_precision: posner.PRIOR_PRECISION / 2})
    rerun_s = time.perf_counter() - start
    recompiled = compiled_since(directory, stamp)
    traces, _, _ = results(built, other)
    kept, _, _ = posner_loops.numpy_loop(other.stimulus, other.prior,
                                         posner.PRIOR_PRECISION / 2)
    difference = max(float(np.max(np.abs(np.asarray(traces[name]).reshape(-1)
                                         - kept[key].reshape(-1))))
                     for name, key in (("levels/target/belief", "mu_t"),
                                       ("levels/context/belief", "mu_c")))
    print(f"standalone, run_args (new priors, stimulus, prior precision): second program "
          f"{rerun_s:.2f} s, {recompiled} object files compiled; beliefs vs a NumPy loop "
          f"with those values: max |diff| {difference:.2e}")
    return {"rerun_s": rerun_s, "rerun_compiled": recompiled, "rerun_worst": difference}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "runtime":
        print(json.dumps(runtime("--fused" in sys.argv)))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "standalone":
        print(json.dumps(standalone(sys.argv[2], "--run-args" in sys.argv,
                                    "--fused" in sys.argv, "--reuse" in sys.argv)))
        return
    posner.reference()  # made once, before the timed processes
    me = [sys.executable, __file__]
    subprocess.run([*me, "runtime"], check=True)
    subprocess.run([*me, "runtime", "--fused"], check=True)
    directory = Path(tempfile.mkdtemp(prefix="posner-standalone-"))
    try:
        print("-- standalone, cold (a new directory):")
        subprocess.run([*me, "standalone", str(directory)], check=True)
        print("-- standalone, warm (a new process, the same directory), then run_args:")
        subprocess.run([*me, "standalone", str(directory), "--run-args"], check=True)
        print("-- standalone, a new process running the program built before (no compile):")
        subprocess.run([*me, "standalone", str(directory), "--reuse"], check=True)
        print("-- standalone fused, cold (a new directory):")
        subprocess.run([*me, "standalone", str(directory / "fused"), "--fused"], check=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
