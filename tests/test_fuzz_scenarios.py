"""Property-based fuzzing of scenario files: every broken scenario is one line and exit code 2.

Each case takes a bundled scenario, breaks it in one way that no valid scenario allows, and
runs ``pcsim run`` on it (in-process through ``sim.cli.main`` for speed; a few through a real
subprocess). Besides the bundled scenarios, each is fuzzed once more with its trials turned into
``[[protocol.conditions]]`` (by count or by probability, ``sim.protocol``). The mutations: an
unknown key in any table; a value of the wrong type anywhere; NaN or +-Inf for any number; a
negative number where only non-negative ones make sense; a huge size, duration, step, count or
probability; a non-integer where an integer is expected (a size, a seed, a condition's count, a
number of trials); a required field removed; a numeric array one entry too long; a control
character in any string (tab and line breaks only outside ``description``, where they are
allowed); any value nested past 32 arrays deep; the same mistakes given with ``--set``. Run
with ``pytest -s`` to see how many cases were tried.
"""

from __future__ import annotations

import collections
import copy
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main
from sim.errors import ScenarioError
from sim.scenario import bundled_scenarios, load_scenario
from sim.scenario_writer import dumps

BUNDLED = {name: tomllib.loads(path.read_text()) for name, path in bundled_scenarios().items()}


def with_conditions(data: dict, by_probability: bool) -> dict:
    """The scenario with each of its trials turned into a condition (a count of 2, or an equal
    probability of a total of twice the trials)."""
    data = copy.deepcopy(data)
    protocol = data["protocol"]
    trials = protocol.pop("trials")
    protocol["conditions"] = [
        {"name": trial.pop("name", f"trial_{i}"),
         **({"probability": 1 / len(trials)} if by_probability else {"count": 2}), **trial}
        for i, trial in enumerate(trials)]
    if by_probability:
        protocol["trials"] = 2 * len(trials)
    return data


CONDITIONS = {f"{name}+conditions": with_conditions(data, i % 2 == 1)
              for i, (name, data) in enumerate(sorted(BUNDLED.items()))
              if isinstance(data["protocol"].get("trials"), list)}  # (conditions: as is)
SCENARIOS = {**BUNDLED, **CONDITIONS}
EXAMPLES = 400
NON_NEGATIVE = {"size", "duration_ms", "dt_ms", "tau_belief_ms", "tau_error_ms",
                "tau_weights_ms", "tau_precision_ms", "noise_std", "every_ms", "seed",
                "precision", "prior_precision", "time_ms", "prior", "likelihood", "rate_limit",
                "count", "probability", "trials", "max_joint_states", "onset_ms", "tau_ms"}
HUGE = {"size": [10**8, 10**12, 10**30], "duration_ms": [1e13, 1e300],
        "dt_ms": [1e4, 1e300], "every_ms": [1e300], "count": [10**6 + 1, 10**30],
        "probability": [1.5, 1e300], "trials": [10**6 + 1, 10**30],
        "max_joint_states": [10**8, 10**30]}
INTEGER = {"size", "seed", "count", "trials", "max_joint_states"}  # only integers accepted
REQUIRED = {"model", "protocol", "trials", "levels", "size", "weights", "duration_ms",
            "stimulus", "modalities", "causes", "likelihood", "outcomes", "conditions",
            "count", "probability", "factors", "context", "mapping", "level", "threshold",
            "tau_ms"}  # and the top name
OPTIONAL = {"description", "seed", "dt_ms", "method", "float", "kind", "errors", "coupling",
            "learning", "tau_weights_ms", "tau_precision_ms", "tau_belief_ms", "tau_error_ms",
            "name", "shape", "precision", "nonlinearity", "apply", "initial_belief", "scale",
            "field", "random", "prior", "mean", "reset", "shuffle",
            "prior_precision", "prior_mean", "noise_std", "value", "values", "cause", "start",
            "stop", "times_ms", "record", "every_ms", "variables", "numerics", "stability",
            "rate_limit", "concentration", "observations", "time_ms",
            "onset_ms"}  # the decision readout's: from each trial's start by default
# names that are required elsewhere but optional in these tables (a default applies: inferred
# precision on every level, bars present with p = 1/8, Sigma held when it has no time constant)
OPTIONAL_HERE = {("precision_inference", "levels"), ("stimulus", "probability"),
                 ("covariance", "tau_ms")}
TRIED: collections.Counter = collections.Counter()


def _names(node):
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if isinstance(key, str):
            yield key
        if isinstance(value, str):
            yield value
        if isinstance(value, dict | list):
            yield from _names(value)


# every key a table could legitimately hold: field names and the names of levels, modalities...
KNOWN = REQUIRED | OPTIONAL | {n for data in SCENARIOS.values() for n in _names(data)}

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
not_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])
# Unicode's control characters (category Cc); a description may hold tab, LF and CR
CONTROL = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]
CONTROL_IN_PROSE = [c for c in CONTROL if c not in "\t\n\r"]
tables = st.dictionaries(words, st.integers(-5, 5), min_size=1, max_size=2)


def paths(node, prefix=()):
    """Every (path, value) below ``node``, path as a tuple of keys and indices."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield (*prefix, key), value
        if isinstance(value, dict | list):
            yield from paths(value, (*prefix, key))


def last_key(path) -> str:
    return next((part for part in reversed(path) if isinstance(part, str)), "")


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def numeric_array(value) -> bool:
    return (isinstance(value, list) and bool(value)
            and (all(is_number(v) for v in value)
                 or all(isinstance(v, list) and v and all(is_number(x) for x in v)
                        for v in value)))


def wrong_type(value):
    """Values of a type never accepted where ``value`` stands."""
    if isinstance(value, str):  # (an integer or a list may stand for an outcome's name)
        return st.one_of(st.booleans(), tables, st.floats(0.01, 0.99))
    if isinstance(value, bool):
        return st.one_of(words, tables)
    if is_number(value):
        return st.one_of(words, st.booleans(), tables, st.lists(words, min_size=1, max_size=2))
    if isinstance(value, dict):  # (a number may stand for a table: one value for all keys)
        return st.one_of(words, st.booleans(), st.lists(words, min_size=1, max_size=2))
    return st.one_of(words, st.booleans(), tables if not numeric_array(value) else words)


def set_node(data, path, value=None, delete=False):
    node = data
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


def required(path: tuple) -> bool:
    """Whether the field at ``path`` is one a scenario must give (the fuzz deletes it)."""
    return path == ("name",) or (isinstance(path[-1], str) and path[-1] in REQUIRED
                                 and tuple(path[-2:]) not in OPTIONAL_HERE)


@st.composite
def broken(draw):
    """(scenario name, mutation kind, description, broken data or --set override)."""
    name = draw(st.sampled_from(sorted(SCENARIOS)))
    data = copy.deepcopy(SCENARIOS[name])
    every = list(paths(data))
    choices = {
        "unknown key": [(p, v) for p, v in every if isinstance(v, dict)] + [((), data)],
        "wrong type": [(p, v) for p, v in every if not isinstance(v, list) or v],
        "not finite": [(p, v) for p, v in every if is_number(v)],
        "negative": [(p, v) for p, v in every if is_number(v) and last_key(p) in NON_NEGATIVE],
        "huge": [(p, v) for p, v in every if isinstance(p[-1], str) and p[-1] in HUGE],
        "not an integer": [(p, v) for p, v in every if isinstance(v, int)
                           and not isinstance(v, bool) and isinstance(p[-1], str)
                           and p[-1] in INTEGER],
        "missing": [(p, v) for p, v in every if required(p)],
        "too long": [(p, v) for p, v in every if numeric_array(v)],
        "control character": [(p, v) for p, v in every if isinstance(v, str)],
        "nested too deep": every,
    }
    kind = draw(st.sampled_from(sorted(k for k, found in choices.items() if found)))
    path, value = draw(st.sampled_from(choices[kind]))
    if kind == "unknown key":
        typo = st.sampled_from(sorted(value)).flatmap(
            lambda k: st.integers(0, len(k)).map(lambda i: k[:i] + "x" + k[i + 1:]))
        key = draw((typo | words) if value else words)
        if key in KNOWN or key in value:
            key = "unknown_" + key
        value[key] = draw(st.one_of(st.integers(), words))
        return name, kind, f"{'.'.join(map(str, path)) or '(top)'}.{key}", data
    if kind == "missing":
        set_node(data, path, delete=True)
        return name, kind, ".".join(map(str, path)), data
    if kind == "too long":
        value.append(copy.deepcopy(value[-1]))
        return name, kind, ".".join(map(str, path)), data
    if kind in ("control character", "nested too deep"):
        if kind == "control character":
            where = draw(st.integers(0, len(value)))
            char = draw(st.sampled_from(CONTROL_IN_PROSE if path == ("description",)
                                        else CONTROL))
            new = value[:where] + char + value[where:]
        else:
            new = draw(st.sampled_from([1.0, "x", {"a": 1}]))
            for _ in range(draw(st.sampled_from([33, 40, 200]))):
                new = [new]
        if draw(st.booleans()) and all(isinstance(p, str | int) for p in path):
            return name, kind + " (--set)", (".".join(map(str, path)), new), None
        set_node(data, path, new)
        return name, kind, ".".join(map(str, path)), data
    new = draw({"wrong type": lambda: wrong_type(value), "not finite": lambda: not_finite,
                "negative": lambda: st.floats(-1e6, -1e-6) | st.integers(-10**6, -1),
                "huge": lambda: st.sampled_from(HUGE.get(str(path[-1]), [0])),
                "not an integer": lambda: st.sampled_from([value + 0.5, value + 1e-6])}[kind]())
    if draw(st.booleans()) and all(isinstance(p, str | int) for p in path) and kind != "wrong type":
        return name, kind + " (--set)", (".".join(map(str, path)), new), None
    set_node(data, path, new)
    return name, kind, f"{'.'.join(map(str, path))} = {new!r}", data


def toml_value(value) -> str:
    return dumps({"v": value}).partition("= ")[2]


def check_one_line_error(returncode: int, err: str, out_dir: Path, case) -> None:
    assert returncode == 2, (case, err)
    assert "Traceback" not in err, (case, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pcsim: error: "), (case, err)
    assert not out_dir.exists() or not list(out_dir.iterdir()), case


def test_every_field_the_fuzz_deletes_is_required(tmp_path):
    """Each field ``REQUIRED`` names, deleted from each bundled scenario that has it, is
    refused when the scenario loads: every one, where the fuzz below draws a few at random
    (it drew the decision readout's ``onset_ms``, which has a default, in one CI of many)."""
    loaded = []
    for name, data in SCENARIOS.items():
        for path, _ in paths(data):
            if required(path):
                mutated = copy.deepcopy(data)
                set_node(mutated, path, delete=True)
                file = tmp_path / "scenario.toml"
                file.write_text(dumps(mutated) + "\n", encoding="utf-8")
                try:
                    load_scenario(file)
                except ScenarioError:
                    continue
                loaded.append((name, ".".join(map(str, path))))
    assert not loaded


def test_every_broken_scenario_is_one_line_and_exit_code_2(capsys):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        out_dir = root / "outputs"
        sources = dict.fromkeys(BUNDLED, None)  # what --set applies to: a name or a file
        for i, (name, data) in enumerate(CONDITIONS.items()):
            sources[name] = root / f"conditions_{i}.toml"
            sources[name].write_text(dumps(data) + "\n", encoding="utf-8")
            load_scenario(sources[name])  # unbroken, it is valid

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        @given(broken())
        def case(mutation):
            name, kind, what, data = mutation
            if data is None:
                key, value = what
                argv = ["run", str(sources[name] or name), "--set", f"{key}={toml_value(value)}"]
            else:
                path = root / "scenario.toml"
                path.write_text(dumps(data) + "\n", encoding="utf-8")
                argv = ["run", str(path)]
            capsys.readouterr()
            shutil.rmtree(out_dir, ignore_errors=True)
            code = main([*argv, "-o", str(out_dir / "result.h5"), "--no-plot"])
            check_one_line_error(code, capsys.readouterr().err, out_dir, (name, kind, what))
            TRIED[kind.split(" (")[0]] += 1
            TRIED["given with --set"] += data is None
            TRIED["total"] += 1

        case()
    with capsys.disabled():
        print(f"\nfuzzed scenarios: {TRIED['total']} broken cases, all one line, exit code 2: "
              + ", ".join(f"{k} {n}" for k, n in sorted(TRIED.items()) if k != "total"))
    assert TRIED["total"] >= EXAMPLES // 2, TRIED


@pytest.mark.parametrize("argv", [
    ["--set", "model.levels.1.weights.kind=gaussian"],
    ["--set", "model.levels.0.size=nan"],
    ["--set", "protocol.trials.0.stimulus.noise_std=[1, 2]"],
])
def test_through_the_real_entry_point(tmp_path, argv):
    ran = subprocess.run([sys.executable, "-m", "sim.cli", "run", "perception/hierarchy", *argv,
                          "-o", str(tmp_path / "out" / "r.h5")],
                         capture_output=True, text=True, timeout=300)
    check_one_line_error(ran.returncode, ran.stderr, tmp_path / "out", argv)
