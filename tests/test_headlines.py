"""Headlines: every bundled scenario's "number to read" (README.md, "Bundled scenarios") is
printed by ``pcsim run`` and by ``pcsim show``, and equals the file's value, read here with h5py
and NumPy (means, counts and peaks computed here, not by pcsim); bad declarations are one-line
errors; a scenario that declares none gets its family's default."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_output import refusal
from test_bars import matched_bars
from xdist_groups import BUNDLED

import sim
from sim.cli import main
from sim.report.headlines import headlines
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario

# one xdist worker runs every module that reads the session's bundled runs (tests/bundled_runs.py)
pytestmark = pytest.mark.xdist_group(BUNDLED)


def _texts(f: h5py.File, path: str) -> list[str]:
    return list(f[path].asstr()[()])


def per_trial(f, quantity, values, reference=None) -> list[tuple]:
    names = _texts(f, "trials/name")
    return [(quantity, name, values[k], None if reference is None else reference[k])
            for k, name in enumerate(names)]


def q_top3(f, quantity="Q") -> list[tuple]:
    """Q of the three causes most probable under the exact posterior, per trial."""
    causes = [str(c) for c in f["causes"].attrs["names"]]
    belief, exact = f["trials/final_belief"][()], f["trials/exact_posterior"][()]
    rows = []
    for k, name in enumerate(_texts(f, "trials/name")):
        for cause in np.argsort(exact[k], kind="stable")[::-1][:3]:
            rows.append((f"{quantity} {causes[cause]}", name, belief[k, cause], exact[k, cause]))
    return rows


def oddball(f) -> list[tuple]:
    kind, repetition = np.array(_texts(f, "trials/kind")), f["trials/repetition"][()]
    peak = f["trials/erp_peak/tone"][()]
    rows = [("ERP peak, standards", f"repetition {r}",
             peak[(kind == "standard") & (repetition == r)].mean(), None) for r in range(1, 6)]
    deviant = kind == "deviant"
    rows.append(("ERP peak, deviants", f"mean of {deviant.sum()} trials", peak[deviant].mean(),
                 None))
    time_ms = f["erp/time"][()] * 1e3
    rows.append(("mismatch wave's peak", "peak of /erp/mismatch/pitch",
                 time_ms[np.argmax(f["erp/mismatch/pitch"][()])], None))
    return rows


def cause(f, name: str) -> int:
    return [str(c) for c in f["causes"].attrs["names"]].index(name)


# scenario -> the rows (quantity, over, value, reference) the README's "number to read" names
EXPECTED = {
    # F over time: its value at the trial's end
    "perception/hierarchy": lambda f: per_trial(f, "F at the trial's end",
                                                f["trials/final_free_energy"][()]),
    # the belief reaches the posterior mode (1.567)
    "perception/single_cause": lambda f: per_trial(
        f, "belief", f["trials/final_belief/food_size"][:, 0],
        f["trials/reference_mode/food_size"][:, 0]),
    # the weight on sight falls 0.8 -> 0.11 (Pi_sight / sum Pi); the percept, the exact mean
    "perception/cue_integration": lambda f: [
        *per_trial(f, "weight on sight", f["trials/final_precision/senses"][:, 0]
                   / f["trials/final_precision/senses"][()].sum(axis=1)),
        *per_trial(f, "percept", f["trials/final_belief/position"][:, 0],
                   f["trials/reference_mean/position"][:, 0])],
    # perceived speed per contrast, 0.24 -> 3.8 deg/s
    "perception/motion_prior": lambda f: per_trial(
        f, "perceived speed", f["trials/final_belief/speed"][:, 0],
        f["trials/reference_mean/speed"][:, 0]),
    # Q against the exact posterior
    "perception/creak": q_top3,
    "perception/creak_half_asleep": q_top3,
    # kl = F - surprise > 0
    "perception/creak_where": lambda f: [
        *per_trial(f, "KL", f["trials/kl"][()]),
        *per_trial(f, "F", f["trials/final_free_energy"][()], f["trials/surprise"][()])],
    # kl >= 0 and laplace_error per observation
    "perception/laplace_gap": lambda f: [
        *per_trial(f, "KL", f["trials/kl"][()]),
        *per_trial(f, "laplace_error", f["trials/laplace_error"][()])],
    # prior_mean_final -> the stream's mean (2.97 for 3)
    "learning/prior": lambda f: [("prior mean, final", "",
                                  f["levels/estimate/prior_mean_final"][0], 3.0)],
    # erp_peak/tone of the standards by repetition 1-5, deviants; the mismatch wave's peak
    "learning/oddball": oddball,
    # erp_peak/tone by repetition 1-5
    "learning/oddball_roving": lambda f: [
        ("ERP peak", f"repetition {r}",
         f["trials/erp_peak/tone"][()][f["trials/repetition"][()] == r].mean(), None)
        for r in range(1, 6)],
    # largest principal angle 74 (after the first trial) -> 1.6 degrees; reconstruction error
    # (mean of 20 trials) 0.60 -> 0.28
    "learning/weights": lambda f: [
        ("largest angle to W_true", "train_0", f["trials/weight_angle"][0], None),
        ("largest angle to W_true", _texts(f, "trials/name")[-1], f["trials/weight_angle"][-1],
         None),
        ("reconstruction error", "mean of trials 0-19",
         f["trials/reconstruction_error"][:20].mean(), None),
        ("reconstruction error", "mean of trials 80-99",
         f["trials/reconstruction_error"][80:100].mean(), None)],
    # 16 of 16 bars matched by a learned basis image (correlation >= 0.95)
    "learning/bars": lambda f: [("bars matched", "",
                                 np.sum(f["levels/bars/bar_match"][()] >= 0.95), None)],
    # Sigma 1 -> 2 (mean over trials 500-1000)
    "learning/variance": lambda f: [
        ("Sigma", f"mean of trials 500-{len(f['trials/name']) - 1}",
         f["levels/input/covariance"][500:, 0, 0].mean(), 2.0)],
    # mean RT valid < neutral < invalid (/decision/mean_ms)
    "attention/posner": lambda f: [
        ("mean RT", condition, f["decision/mean_ms"][k], None)
        for k, condition in enumerate(_texts(f, "decision/condition"))],
    # precision settles at 1 / noise variance (4 and 0.25)
    "attention/unknown_noise": lambda f: [
        (f"inferred precision[{k}]", "two channels of unknown noise",
         f["trials/final_precision/senses"][0, k], [4.0, 0.25][k]) for k in range(2)],
    # bias = percept - ideal observer on the threat: 0, +0.06, +0.17, +0.38 (continuous: 0 ->
    # +0.69)
    "disorders/anxiety": lambda f: per_trial(
        f, "bias on the intruder", f["trials/final_belief"][:, cause(f, "intruder")]
        - f["trials/ideal_posterior"][:, cause(f, "intruder")]),
    "disorders/anxiety_continuous": lambda f: per_trial(
        f, "bias", f["trials/final_belief/threat"][:, 0] - f["trials/ideal_mean/threat"][:, 0]),
    # spikes per neuron and second in 200-400 ms of each trial: 10 Hz + 200 Hz x [+-1.6 (u - 1)]+
    "neurons/mismatch": lambda f: [
        *per_trial(f, "negative error neurons", f["trials/rate_error_negative/visual_flow"][:, 0]),
        *per_trial(f, "positive error neurons", f["trials/rate_error_positive/visual_flow"][:, 0])],
    # the top belief in object B (unit 2) and F at the trial's end, against the rate model of
    # the same scenario that the file stores beside the spikes (rate_reference)
    "neurons/hierarchy_spiking": lambda f: [
        *per_trial(f, "top belief in object B", f["trials/final_belief/objects"][:, 2],
                   f["rate_reference/trials/final_belief/objects"][:, 2]),
        *per_trial(f, "F at the trial's end", f["trials/final_free_energy"][()],
                   f["rate_reference/trials/final_free_energy"][()])],
    # belief in the absent tone 0.25 (ideal) -> 0.50, 0.63, 0.71
    "disorders/psychosis": lambda f: per_trial(
        f, "belief in the tone", f["trials/final_belief"][:, cause(f, "tone")],
        f["trials/ideal_posterior"][:, cause(f, "tone")]),
}


def printed_table(text: str) -> dict[tuple[str, str], tuple[str, str, str]]:
    """The headline table in ``text``: (quantity, over) -> (value, units, reference), the
    columns cut where the header's names start."""
    lines = text.splitlines()
    start = [line.strip() for line in lines].index("headlines:")
    header = lines[start + 1]
    indent = len(header) - len(header.lstrip())
    over, units, reference = (header.index(n) for n in ("over", "units", "reference"))
    table = {}
    for line in lines[start + 2:]:
        if len(line) - len(line.lstrip()) != indent:  # the table ends
            break
        middle = line[over:units].rstrip()
        value = re.split(r"\s{2,}", middle.strip())[-1]
        table[line[:over].strip(), middle[:len(middle) - len(value)].strip()] = (
            value, line[units:reference].strip(), line[reference:].strip())
    return table


def capture(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(list(argv)) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def outputs(bundled) -> dict[str, tuple[Path, str, str]]:
    """Each bundled scenario as ``pcsim run`` ran it (the session's runs:
    ``tests/bundled_runs.py``) and as ``pcsim show`` prints its file (in this process):
    name -> (file, what run printed, what show printed)."""
    done = {}
    for name in bundled_scenarios():
        ran = bundled[name]
        assert ran.returncode == 0, ran.stderr
        done[name] = ran.output, ran.stdout, capture("show", str(ran.output))
    return done


def test_every_bundled_scenario_has_its_number_to_read_here():
    assert sorted(EXPECTED) == sorted(bundled_scenarios())
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in bundled_scenarios():  # each is a row of the README's table (two share one)
        assert f"`{name}`" in readme or f"`{name.rsplit('/', 1)[1]}`" in readme, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_run_and_show_print_the_number_to_read_as_the_file_holds_it(outputs, name):
    output, ran, shown = outputs[name]
    with h5py.File(output, "r") as f:
        expected = EXPECTED[name](f)
    assert expected
    for text in (ran, shown):
        table = printed_table(text)
        for quantity, over, value, reference in expected:
            assert (quantity, over) in table, (quantity, over, sorted(table))
            printed, _, stated = table[quantity, over]
            assert float(printed) == pytest.approx(float(value), rel=1e-5, abs=1e-12)
            if reference is None:
                continue
            assert float(stated.split(" (")[0]) == pytest.approx(float(reference), rel=1e-5)


def test_the_units_shown_are_the_files_or_the_scenarios(outputs):
    table = printed_table(outputs["perception/motion_prior"][1])
    assert {units for _, units, _ in table.values()} == {"deg/s"}  # declared: units = "deg/s"
    table = printed_table(outputs["learning/oddball"][1])
    assert table["mismatch wave's peak", "peak of /erp/mismatch/pitch"][1] == "ms"  # s -> ms
    assert table["ERP peak, deviants", "mean of 9 trials"][1] == "1"
    table = printed_table(outputs["perception/creak"][2])
    assert table["F", "night"][1:] == ("nat", f"{table['F', 'night'][2].split(' (')[0]} "
                                              "(-ln p(o))")


def test_the_stored_bar_match_is_the_hungarian_correlation_of_the_learned_weights(outputs):
    with h5py.File(outputs["learning/bars"][0], "r") as f:
        stored = f["levels/bars/bar_match"][()]
        _, found = matched_bars(f["levels/bars/weights_final"][()])
    np.testing.assert_allclose(stored, found, rtol=0, atol=1e-12)


def test_a_python_user_gets_the_same_rows(outputs):
    with sim.load(outputs["attention/posner"][0]) as result:
        rows = sim.headlines(result)
        assert rows == headlines(result)
        stored = np.asarray(result["decision/mean_ms"])
    assert [row.over for row in rows] == list(np.asarray(
        h5py.File(outputs["attention/posner"][0], "r")["decision/condition"].asstr()[()]))
    assert [row.value for row in rows] == stored.tolist()
    assert {row.units for row in rows} == {"ms"}


# --- declarations --------------------------------------------------------------------------

def tiny(report: dict | None) -> dict:
    table = {"name": "tiny", "dt_ms": 0.1,
             "model": {"levels": [{"name": "input", "size": 1, "precision": 1.0},
                                  {"name": "cause", "size": 1, "weights": [[1.0]]}],
                       "prior": {"mean": 0.0, "precision": 1.0}},
             "protocol": {"trials": [{"name": "a", "duration_ms": 5.0,
                                      "stimulus": {"kind": "constant", "value": 1.0}},
                                     {"name": "b", "duration_ms": 5.0,
                                      "stimulus": {"kind": "constant", "value": 2.0}}]}}
    if report is not None:
        table["report"] = report
    return table


def test_a_scenario_without_headlines_gets_its_familys_default(tmp_path):
    output = tmp_path / "tiny.h5"
    ran = capture("run", str(write_scenario(tmp_path / "tiny.toml", tiny(None))), "-o",
                  str(output), "--no-plot")
    table = printed_table(ran)
    with h5py.File(output, "r") as f:
        for k, name in enumerate(("a", "b")):
            assert float(table["F", name][0]) == pytest.approx(
                f["trials/final_free_energy"][k], rel=1e-5)
            assert float(table["top belief", name][0]) == pytest.approx(
                f["trials/final_belief/cause"][k, 0], rel=1e-5)


def test_a_declared_headline_of_a_users_scenario(tmp_path):
    output = tmp_path / "tiny.h5"
    report = {"headline": [{"name": "mean belief", "value": "trials/final_belief/cause",
                            "per": "all", "reference": "trials/reference_mean/cause",
                            "reference_name": "exact"}]}
    ran = capture("run", str(write_scenario(tmp_path / "tiny.toml", tiny(report))), "-o",
                  str(output), "--no-plot")
    table = printed_table(ran)
    with h5py.File(output, "r") as f:
        value, _, reference = table["mean belief", "mean of trials 0-1"]
        assert float(value) == pytest.approx(f["trials/final_belief/cause"][:, 0].mean(),
                                             rel=1e-5)
        assert reference == (f"{f['trials/reference_mean/cause'][:, 0].mean():.6g} (exact)")


@pytest.mark.parametrize(("headline", "field"), [
    ({"name": "x"}, "value"),
    ({"value": 3}, "value"),
    ({"value": "trials/kl", "unit": -1}, "unit"),
    ({"value": "trials/final_belief/cause", "unit": "cause"}, "unit"),  # no element has a name
    ({"value": "trials/kl", "span": [1]}, "span"),
    ({"value": "trials/kl", "where": "kind"}, "where"),
    ({"value": "trials/kl", "reference": True}, "reference"),
    ({"value": "trials/kl", "top": 0}, "top"),
    ({"value": "trials/kl", "per_trial": True}, "per_trial"),
])
def test_bad_declarations_are_one_line_errors(tmp_path, headline, field):
    line = refusal(tmp_path, tiny({"headline": [headline]}))
    assert f"report.headline[0].{field}" in line, line


def test_a_unit_no_element_is_named_is_refused_before_the_run_with_the_names(tmp_path, capsys):
    """The creak's causes are named: a name none has is refused before the run (exit 2, no
    file), listing the names; one of them is accepted."""
    output = tmp_path / "creak.h5"
    argv = ["run", "perception/creak", "-o", str(output), "--check", "--set"]
    assert main([*argv, 'report.headline.0.unit="wolf"']) == 2
    line = capsys.readouterr().err.strip()
    assert "report.headline[0].unit" in line and "cat, house settling" in line, line
    assert "wolf" in line and not output.exists()
    assert main([*argv, 'report.headline.0.unit="cat"']) == 0


def test_a_dataset_the_file_lacks_is_one_line_in_the_tables_place(tmp_path):
    report = {"headline": [{"value": "trials/no_such_column"}]}
    ran = capture("run", str(write_scenario(tmp_path / "tiny.toml", tiny(report))), "-o",
                  str(tmp_path / "tiny.h5"), "--no-plot")
    assert ran.splitlines()[0] == ("headlines: cannot be read from this file ('/trials/"
                                   "no_such_column: not in the file (declared in "
                                   "[[report.headline]])')")


def test_per_condition_and_where_are_the_means_of_those_trials(tmp_path):
    table = tiny({"headline": [
        {"name": "belief", "value": "trials/final_belief/cause", "per": "condition"},
        {"name": "F of the high ones", "value": "trials/final_free_energy",
         "where": {"condition": "high"}, "per": "all"}]})
    table["protocol"] = {"shuffle": True, "conditions": [
        {"name": name, "count": count, "duration_ms": 3.0,
         "stimulus": {"kind": "constant", "value": value}}
        for name, count, value in (("low", 3, 1.0), ("high", 2, 2.0))]}
    output = tmp_path / "tiny.h5"
    ran = printed_table(capture("run", str(write_scenario(tmp_path / "tiny.toml", table)),
                                "-o", str(output), "--no-plot"))
    with h5py.File(output, "r") as f:
        condition = np.array(_texts(f, "trials/condition"))
        belief = f["trials/final_belief/cause"][:, 0]
        free_energy = f["trials/final_free_energy"][()]
    for name in ("low", "high"):
        assert float(ran["belief", name][0]) == pytest.approx(belief[condition == name].mean(),
                                                              rel=1e-5)
    [(over, (value, _, _))] = [(over, row) for (quantity, over), row in ran.items()
                               if quantity == "F of the high ones"]
    assert over.startswith("mean of") and float(value) == pytest.approx(
        free_energy[condition == "high"].mean(), rel=1e-5)
