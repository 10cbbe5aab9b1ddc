"""The pcsim command as a newcomer meets it (issue 24, point 4): ``--version``, help text,
``list`` and ``list -v``, ``show NAME``, ``new FILE --from NAME``, ``sweep --set`` and the
progress bar on a terminal (a pseudo-terminal) and off it.

Expected values come from the scenario files read with ``tomllib`` and from runs made another
way (``pcsim run --set`` against ``sweep --set``; the bundled scenario against its copy).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_output import error_line

import sim
from sim.cli import build_parser, main
from sim.progress import text_progress
from sim.scenario import bundled_scenarios, load_scenario

ROOT = Path(__file__).resolve().parent.parent
MARKUP = re.compile(r"``|:[a-z]+:`")  # reST literals and roles


def pcsim(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600, env=env)


def one_paragraph(text: str) -> str:
    return " ".join(text.split())


def toml_of(name: str) -> dict:
    return tomllib.loads(bundled_scenarios()[name].read_text("utf-8"))


def datasets(path: Path, leave_out: str = "scenario/") -> dict[str, np.ndarray]:
    """Every dataset of a result file but those under ``leave_out`` (the scenario's text and
    parameters, which name the file they came from)."""
    out: dict[str, np.ndarray] = {}

    def keep(name, node):
        if isinstance(node, h5py.Dataset) and not name.startswith(leave_out):
            out[name] = np.asarray(node[()])

    with h5py.File(path, "r") as file:
        file.visititems(keep)
    return out


def assert_same_datasets(first: Path, second: Path) -> None:
    a, b = datasets(first), datasets(second)
    assert sorted(a) == sorted(b)
    assert len(a) > 5
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        if a[name].dtype.kind == "O":  # variable-length strings
            assert a[name].tolist() == b[name].tolist(), name
        else:  # bit for bit
            assert a[name].tobytes() == b[name].tobytes(), name


# --- version and help ----------------------------------------------------------------------

def test_version_is_the_package_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    shown = pcsim("--version")
    assert shown.returncode == 0
    assert shown.stdout.strip() == f"pcsim {version}"


def parsers(parser: argparse.ArgumentParser, path: str = "pcsim"):
    """Every parser under ``parser`` (itself first), with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest for choice in action._choices_actions if choice.help}
            for name, sub in action.choices.items():
                assert name in helped, f"{path} {name}: no help line in the command list"
                yield from parsers(sub, f"{path} {name}")


def test_help_has_a_line_for_every_argument_and_no_markup():
    walked = list(parsers(build_parser()))
    assert {path for path, _ in walked} >= {f"pcsim {c}" for c in
                                             ("run", "sweep", "list", "show", "plot", "diff",
                                              "new", "bench")}
    for path, parser in walked:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS and action.help.strip(), \
                f"{path}: {action.option_strings or action.dest} has no help line"
        text = parser.format_help()
        assert not MARKUP.search(text), f"{path} --help: {MARKUP.search(text).group()!r}"


# --- list and show NAME --------------------------------------------------------------------

def test_list_shows_sentences_that_fit_and_list_v_the_whole_descriptions():
    width = 80
    env = {**os.environ, "COLUMNS": str(width)}
    listed = pcsim("list", env=env)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert len(lines) == len(bundled_scenarios())
    for line, name in zip(lines, bundled_scenarios(), strict=True):
        assert len(line) <= width, line
        shown_name, shown = line.split(None, 1)
        assert shown_name == name
        whole = one_paragraph(toml_of(name)["description"])
        if shown.endswith(" ..."):  # shortened at a word, and says so
            assert whole.startswith(shown.removesuffix(" ...")), (name, shown)
            assert whole[len(shown) - 4] == " "
        else:
            assert whole.startswith(shown) and shown.endswith((".", "?", "!")), (name, shown)
    assert "pcsim list -v" in listed.stderr  # the way to read them whole

    verbose = pcsim("list", "-v", env=env)
    assert verbose.returncode == 0
    assert all(len(line) <= width for line in verbose.stdout.splitlines())
    blocks = verbose.stdout.strip().split("\n\n")
    assert len(blocks) == len(bundled_scenarios())
    for block, name in zip(blocks, bundled_scenarios(), strict=True):
        head, _, text = block.partition("\n")
        assert head == name
        assert one_paragraph(text) == one_paragraph(toml_of(name)["description"])


@pytest.mark.parametrize("name", ["perception/hierarchy", "creak", "attention/posner",
                                  "perception/creak_where"])
def test_show_name_prints_the_whole_description_and_the_main_settings(name, capsys,
                                                                      monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["show", name]) == 0
    full = next(n for n in bundled_scenarios() if n == name or n.endswith("/" + name))
    table = toml_of(full)
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith(full)
    assert one_paragraph(table["description"]) in one_paragraph(text)
    model = table["model"]
    if "levels" in model:
        sizes = [f"{level['name']} ({level['size']}" for level in model["levels"]]
        assert re.search(r"[^<\n]*<- ".join(re.escape(s) for s in sizes), text), sizes
    for cause in model.get("causes", []):
        assert cause in text
    for factor in model.get("factors", []):
        assert f"{factor['name']}: {', '.join(factor['causes'])}" in text
    scenario = load_scenario(full)
    (trials,) = re.findall(r"^trials: .*(?:\n    .*)*", text, re.M)  # with its continuation
    assert trials.startswith(f"trials: {len(scenario.trials)} ")
    total = sum(t.duration_ms for t in scenario.trials)
    assert f"{total:g} ms" in trials
    assert f"seed {table.get('seed', 0)}" in text


def test_show_a_result_file_still_summarises_it(tmp_path, capsys):
    result = sim.run("perception/single_cause", output=tmp_path / "single.h5",
                     overrides={"protocol.trials.0.duration_ms": 5.0})
    capsys.readouterr()
    assert main(["show", str(result.path)]) == 0
    assert "status complete" in capsys.readouterr().out
    assert main(["show", str(tmp_path / "nothing")]) == 2
    assert "no such file" in error_line(capsys)


# --- new FILE --from NAME ------------------------------------------------------------------

def test_new_writes_a_copy_that_runs_as_the_bundled_one(tmp_path, capsys):
    copy = tmp_path / "my_single.toml"
    made = pcsim("new", str(copy), "--from", "perception/single_cause")
    assert made.returncode == 0, made.stderr
    table = tomllib.loads(copy.read_text())
    assert table["name"] == "my_single"
    original = toml_of("perception/single_cause")
    assert {k: v for k, v in table.items() if k != "name"} == \
        {k: v for k, v in original.items() if k != "name"}

    short = ("--set", "protocol.trials.0.duration_ms=10", "--no-plot")
    for scenario, output in ((str(copy), "copy.h5"), ("perception/single_cause", "bundled.h5")):
        ran = pcsim("run", scenario, *short, "-o", str(tmp_path / output))
        assert ran.returncode == 0, ran.stderr
    assert_same_datasets(tmp_path / "copy.h5", tmp_path / "bundled.h5")
    with h5py.File(tmp_path / "copy.h5") as file:
        assert file.attrs["scenario_name"] == "my_single"
        assert file["time"].shape[0] == 1000  # 10 ms at dt 0.01 ms: the short run

    copy.write_text("mine\n")  # an existing file is kept, unless --overwrite
    capsys.readouterr()
    assert main(["new", str(copy), "--from", "perception/single_cause"]) == 2
    assert "--overwrite" in error_line(capsys) and copy.read_text() == "mine\n"
    assert main(["new", str(copy), "--from", "single_cause", "--overwrite"]) == 0
    assert tomllib.loads(copy.read_text())["name"] == "my_single"

    capsys.readouterr()
    assert main(["new", str(tmp_path / "x.toml"), "--from", "perception/creek"]) == 2
    assert error_line(capsys).startswith("pcsim: error: --from perception/creek: no bundled")
    assert not (tmp_path / "x.toml").exists()


# --- sweep --set ---------------------------------------------------------------------------

def test_sweep_set_applies_to_every_point(tmp_path):
    """Each point of ``sweep --set D --vary T=1,2`` is the run ``run --set D --set T=...``."""
    folder = tmp_path / "sweep"
    done = pcsim("sweep", "perception/single_cause", "--set",
                 "protocol.trials.0.duration_ms=10", "--set", "seed=5",
                 "--vary", "model.tau_belief_ms=1.0,2.0", "-j", "1", "-o", str(folder))
    assert done.returncode == 0, done.stderr
    index = sim.open_sweep(folder).index
    assert index.seeds == [5] and list(index.point_seeds) == [5, 5]
    for row, tau in enumerate((1.0, 2.0)):
        point = folder / index.files[row]
        assert index.overrides[row]["model.tau_belief_ms"] == tau
        alone = sim.run("perception/single_cause", output=tmp_path / f"alone-{row}.h5",
                        seed=5, overrides={"protocol.trials.0.duration_ms": 10.0,
                                           "model.tau_belief_ms": tau})
        assert alone.parameters["trials"][0]["duration_ms"] == 10.0
        assert_same_datasets(point, alone.path)

    both = pcsim("sweep", "perception/single_cause", "--set", "model.tau_belief_ms=3",
                 "--vary", "model.tau_belief_ms=1.0,2.0", "-o", str(tmp_path / "both"))
    assert both.returncode == 2 and "model.tau_belief_ms" in both.stderr
    bad = pcsim("sweep", "perception/single_cause", "--set", "model.tau_belif_ms=3",
                "-o", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "tau_belif_ms" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "both").exists() and not (tmp_path / "bad").exists()


# --- the progress bar ----------------------------------------------------------------------

def terminal(columns: int) -> tuple[int, int]:
    """A pseudo-terminal of ``columns`` columns: (the master's fd, the slave's fd)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    return master, slave


def read_all(master: int, done) -> str:
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the slave side closed
                break
            if not data:
                break
            chunks.append(data)
        elif done():
            break
    return b"".join(chunks).decode()


def visible_lines(text: str) -> list[str]:
    """The lines a terminal keeps: each line's text after its last carriage return."""
    return [line.rsplit("\r", 1)[-1].rstrip() for line in
            text.replace("\r\n", "\n").split("\n") if line.rsplit("\r", 1)[-1].strip()]


def test_progress_bar_leaves_one_line_on_a_terminal_and_none_elsewhere(tmp_path):
    columns = 90
    master, slave = terminal(columns)
    process = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "run", "perception/creak_half_asleep", "--no-plot",
         "-o", str(tmp_path / "tty.h5")], stdout=subprocess.PIPE, stderr=slave,
        stdin=subprocess.DEVNULL)
    os.close(slave)
    shown = read_all(master, lambda: process.poll() is not None)
    process.communicate(timeout=600)
    os.close(master)
    assert process.returncode == 0, shown
    lines = visible_lines(shown)
    assert len(lines) == 2, lines  # "pcsim: running ...", then the bar's one line
    assert lines[0].startswith("pcsim: running creak_half_asleep")
    bar = lines[1]
    assert len(bar) <= columns
    result = sim.load(tmp_path / "tty.h5")
    last_f = float(np.asarray(result.trials["final_free_energy"])[-1])
    assert re.match(r"100\.0% \|.*\| trial 2/2, F (\S+) nat, \d\d:\d\d elapsed, 00:00 left$",
                    bar), bar
    assert float(re.search(r"F (\S+) nat", bar).group(1)) == pytest.approx(last_f, rel=1e-3)

    piped = pcsim("run", "perception/creak_half_asleep", "--no-plot", "-o",
                  str(tmp_path / "pipe.h5"))
    assert piped.returncode == 0
    assert "\r" not in piped.stderr and "%" not in piped.stderr


def test_progress_bar_shows_the_fraction_the_trials_and_the_time_left():
    """At half way after about a second, the time left is the time spent: (1 - f) / f x t."""
    master, slave = terminal(100)
    stream = os.fdopen(slave, "w")
    before = time.perf_counter()
    bar = text_progress(stream)
    after = time.perf_counter()
    time.sleep(1.2)
    bar(0.5)
    bar.trial_done(3, 6, -1.25)
    closing = time.perf_counter()
    bar.close()
    closed = time.perf_counter()
    bar(1.0)  # after close: nothing more is drawn
    bar.close()
    stream.close()
    lines = visible_lines(read_all(master, lambda: True))
    os.close(master)
    assert len(lines) == 1, lines
    found = re.match(r" 50\.0% \|.*\| trial 3/6, F -1\.25 nat, 00:(\d\d) elapsed, "
                     r"00:(\d\d) left$", lines[0])
    assert found, lines[0]
    left = int(found.group(2))
    assert int(closing - after) <= left <= int(closed - before)  # floor of seconds, as shown
