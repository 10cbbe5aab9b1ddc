"""Hostile scenario text: each case is one line naming the file (or the option) and the field,
exit code 2, from ``--check`` too, nothing written; what is valid stays valid.

The classes (docs/scenarios.md, "The file itself"): values nested thousands deep; control
characters (NUL, ESC, DEL, C1) and lone surrogates in keys and strings; a UTF-8 byte-order mark
(accepted); UTF-16 and UTF-32 text, NUL bytes and bytes that are not UTF-8; huge strings, keys
and integers, whose messages stay short; a huge file (refused by its size, before it is read).
Each is given in the scenario file, with ``--set``, through the Python API's ``overrides``,
and to ``pcsim sweep`` (``--vary`` and ``[sweep.vary]``). Most cases run ``sim.cli.main`` in the
test's process for speed; one runs the real entry point.
"""

from __future__ import annotations

import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import h5py
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.cli import main
from sim.scenario import bundled_scenarios
from sim.scenario_writer import dumps

BASE = bundled_scenarios()["perception/single_cause"].read_text(encoding="utf-8")
MB = 1_000_000
SHORT = 300  # characters a message may add to the file name it names


def toml_value(value) -> str:
    return dumps({"v": value}).partition("= ")[2].strip()


def nested(depth: int) -> list:
    value: list = [1.0]
    for _ in range(depth - 1):
        value = [value]
    return value


def line_of(text: str, needle: str) -> int:
    """The 1-based line of ``text`` where ``needle`` first occurs (an independent count)."""
    return text[: text.index(needle)].count("\n") + 1


def edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


def pcsim(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def check_refusal(code: int, err: str, out: Path, names: str, *parts: str) -> str:
    """One line, exit code 2, naming ``names`` (the file or option) and every part; short;
    nothing written under ``out``."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("pcsim: error: "), err[:2000]
    line = lines[0]
    assert names in line, line
    for part in parts:
        assert part in line, (part, line)
    assert len(line.replace(names, "")) < SHORT, (len(line), line[:1000])
    assert not out.exists() or not list(out.iterdir())
    return line


# --- the scenario file ------------------------------------------------------------------------

TRIAL = 'name = "u=2"'
FILES = {  # name -> (file text or bytes, the field the message names, the text it marks)
    "arrays nested 5,000 deep": (
        BASE + "\n[numerics]\nrate_limit = " + "[" * 5000 + "1" + "]" * 5000 + "\n", "", None),
    "tables nested 5,000 deep": (
        BASE + "\n[numerics]\nrate_limit = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n", "",
        None),
    "arrays nested 40 deep": (
        BASE + "\n[numerics]\nrate_limit = " + "[" * 40 + "1" + "]" * 40 + "\n",
        "numerics.rate_limit", "rate_limit ="),
    "NUL in description": (edit('description = """', 'description = """\\u0000'),
                           "description", 'description = """'),
    "ESC in description": (edit("exercises 2 and 3.", "exercises \\u001b[2J2 and 3."),
                           "description", 'description = """'),
    "NUL in a trial name": (edit(TRIAL, 'name = "u\\u0000=2"'), "protocol.trials[0].name",
                            'name = "u'),
    "tab in a trial name": (edit(TRIAL, 'name = "u\\t=2"'), "protocol.trials[0].name",
                            'name = "u'),
    "line break in a trial name": (edit(TRIAL, 'name = "u\\n=2"'), "protocol.trials[0].name",
                                   'name = "u'),
    "DEL in a level name": (edit('name = "light"', 'name = "li\\u007fght"'),
                            "model.levels[0].name", 'name = "li'),
    "raw C1 character (U+0085) in the method": (
        edit('method = "euler"', 'method = "eu\u0085ler"'), "method", "method ="),
    "NUL in a key": (edit("seed = 0", '"se\\u0000ed" = 0'), "(top level)", None),
    "1 MB description": (edit('description = """', 'description = """' + "x" * MB),
                         "description", 'description = """'),
    "1 MB trial name": (edit(TRIAL, f'name = "{"z" * MB}"'), "protocol.trials[0].name",
                        'name = "zz'),
    "1 MB method": (edit('method = "euler"', f'method = "{"m" * MB}"'), "method", "method ="),
    "1 MB key": (edit("seed = 0", f'"{"k" * MB}" = 0'), "(top level)", None),
    "200-character method": (edit('method = "euler"', f'method = "{"m" * 200}"'), "method",
                             "method ="),
    "5,000-digit integer": (edit("seed = 0", "seed = " + "9" * 5000), "", "seed = 99"),
    "4,000-digit integer": (edit("seed = 0", "seed = " + "9" * 4000), "seed", "seed = 99"),
    "UTF-16 LE with its BOM": (BASE.encode("utf-16"), "", None),
    "UTF-16 BE with its BOM": (b"\xfe\xff" + BASE.encode("utf-16-be"), "", None),
    "UTF-16 LE without a BOM": (BASE.encode("utf-16-le"), "", None),
    "UTF-32 with its BOM": (BASE.encode("utf-32"), "", None),
    "a Latin-1 byte": (edit("food_size", "f\u00f6od_size").encode("latin-1"), "", None),
}
EXPECTED = {"UTF-16": "must be UTF-8", "UTF-32": "must be UTF-8", "Latin-1": "is not UTF-8",
            "nested 5,000": "nested", "nested 40": "nested more than 32",
            "5,000-digit": "4300 digits", "4,000-digit": "finite", "NUL in": "U+0000",
            "ESC": "U+001B", "DEL": "U+007F", "C1": "U+0085", "tab in": "U+0009",
            "line break in": "U+000A", "1 MB": "characters; expected at most",
            "200-character": "expected one of"}  # case -> what its message says


@pytest.mark.parametrize("check", [True, False], ids=["--check", "run"])
@pytest.mark.parametrize("case", sorted(FILES))
def test_bad_file_is_one_line_naming_file_line_and_field(tmp_path, capsys, case, check):
    content, field, marker = FILES[case]
    path = tmp_path / "scenario.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    code, err = pcsim(["run", str(path), "-o", str(out / "r.h5"), "--no-plot",
                       *(["--check"] if check else [])], capsys)
    where = f"{path}:{line_of(content, marker)}:" if marker else str(path)
    parts = [f"{field}:"] if field else []
    parts += [text for key, text in EXPECTED.items() if key in case]
    check_refusal(code, err, out, where, *parts)


def test_a_file_past_the_size_limit_is_refused_before_it_is_read(tmp_path, capsys):
    path = tmp_path / "huge.toml"
    with path.open("w", encoding="utf-8") as file:  # 17 MiB of keys: seconds to parse
        file.write(BASE)
        line = "".join(f"k{i} = {i}\n" for i in range(100_000))
        while file.tell() < 17 * 2**20:
            file.write(line)
    out = tmp_path / "out"
    main(["run", "perception/single_cause", "--check", "-o", str(out / "warm.h5")])
    start = time.perf_counter()
    code, err = pcsim(["run", str(path), "--check", "-o", str(out / "r.h5")], capsys)
    took = time.perf_counter() - start
    check_refusal(code, err, out, str(path), "MiB", "at most 16 MiB")
    assert took < 1.0, took  # parsing it takes several seconds


def test_a_utf8_byte_order_mark_is_accepted(tmp_path, capsys):
    plain, marked = tmp_path / "plain.toml", tmp_path / "marked.toml"
    plain.write_text(BASE, encoding="utf-8")
    marked.write_bytes(b"\xef\xbb\xbf" + BASE.encode("utf-8"))
    code, err = pcsim(["run", str(marked), "--check", "-o", str(tmp_path / "r.h5")], capsys)
    assert code == 0, err
    # the same scenario, and line numbers unshifted: a mistake on line L is reported on line L
    broken = BASE.replace("dt_ms = 0.01", "dt_ms = -0.01")
    marked.write_bytes(b"\xef\xbb\xbf" + broken.encode("utf-8"))
    code, err = pcsim(["run", str(marked), "--check", "-o", str(tmp_path / "r.h5")], capsys)
    check_refusal(code, err, tmp_path / "none", f"{marked}:{line_of(broken, 'dt_ms =')}:",
                  "dt_ms:")


def test_prose_and_names_beyond_ascii_run_and_are_stored_as_given(tmp_path):
    """What the rule lets through reaches the result file unchanged: tabs, line breaks and a
    line separator (U+2028) in the description, non-ASCII names."""
    description = "tabs\there,\nlines\r\nand\u2028a separator; \u00b5, \u03c6, \U0001f9e0"
    trial = "\u00b5=2 \u2192 \u03c6"
    path = tmp_path / "prose.toml"
    path.write_text(edit(TRIAL, f"name = {toml_value(trial)}"), encoding="utf-8")
    result = sim.run(path, output=tmp_path / "r.h5",
                     overrides={"description": description,
                                "protocol.trials.0.duration_ms": 0.05})
    with result:
        assert list(result.trials["name"]) == [trial]
    with h5py.File(tmp_path / "r.h5", "r") as file:
        assert file["scenario"].attrs["description"] == description


def test_line_numbers_count_only_line_feeds(tmp_path, capsys):
    """A U+2028 inside a string is not a line break of the file: a later mistake keeps its
    line number."""
    text = edit("exercises 2 and 3.", "exercises 2\u2028and 3.").replace(
        "dt_ms = 0.01", "dt_ms = -0.01")
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    code, err = pcsim(["run", str(path), "--check"], capsys)
    check_refusal(code, err, tmp_path / "none", f"{path}:{line_of(text, 'dt_ms =')}:", "dt_ms:")


# --- the text rule, against Unicode's own categories -------------------------------------------

names = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
prose = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
controls = st.characters(categories=("Cc",))


def is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


def test_control_characters_are_refused_exactly_where_unicode_says(tmp_path, capsys):
    """A trial name (in the file) and the description (with --set) drawn from all of Unicode
    but surrogates: refused exactly when Unicode calls one of their characters a control
    character (Cc), bar tab, LF and CR in the description; everything else is accepted."""
    out = tmp_path / "out"
    tried = {"clean": 0, "name": 0, "description": 0}

    @settings(max_examples=90, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(names, prose, st.sampled_from(sorted(tried)), controls, st.integers(0, 30))
    def case(name, description, broken, control, at):
        if broken != "name":  # (drawn text holds control characters often: keep it clean)
            name = "".join(char for char in name if not is_control(char)) or "n"
        if broken != "description":
            description = "".join(char for char in description
                                  if not is_control(char) or char in "\t\n\r")
        if broken == "name":
            name = name[:at] + control + name[at:]
        elif broken == "description":
            control = control if control not in "\t\n\r" else "\x00"
            description = description[:at] + control + description[at:]
        path = tmp_path / "s.toml"
        path.write_text(edit(TRIAL, f"name = {toml_value(name)}"), encoding="utf-8")
        code, err = pcsim(["run", str(path), "--check", "--set",
                           f"description={toml_value(description)}", "-o", str(out / "r.h5")],
                          capsys)
        if any(map(is_control, name)):
            check_refusal(code, err, out, str(path), "protocol.trials[0].name:",
                          "control character")
        elif any(is_control(char) and char not in "\t\n\r" for char in description):
            check_refusal(code, err, out, "(--set description)", "description:",
                          "control character")
        else:
            assert code == 0, err
        tried[broken] += 1

    case()
    assert min(tried.values()) >= 10, tried


# --- --set and the Python API ------------------------------------------------------------------

SETS = {  # name -> (--set argument, the field the message names, what it says)
    "5,000 deep": ("numerics.rate_limit=" + "[" * 5000 + "1" + "]" * 5000, "", "nested"),
    "40 deep": ("numerics.rate_limit=" + "[" * 40 + "1" + "]" * 40, "numerics.rate_limit",
                "nested"),
    "NUL escaped in description": ('description="a\\u0000b"', "description:", "U+0000"),
    "control character in a bare word": ("protocol.trials.0.name=a\x01b",
                                         "protocol.trials[0].name:", "U+0001"),
    "lone surrogate (bytes not UTF-8)": ("protocol.trials.0.name=a\udcffb",
                                         "protocol.trials[0].name:", "U+DCFF"),
    "NUL in a key of an inline table": (
        'protocol.trials.0.stimulus={kind = "constant", "v\\u0000" = 1}',
        "protocol.trials[0].stimulus:", "U+0000"),
    "control character in the key": ("se\x1bed=1", "", "U+001B"),
    "1 MB value": (f'protocol.trials.0.name="{"x" * MB}"', "protocol.trials[0].name:",
                   "1000000 characters"),
    "1 MB key": ("k" * MB + "=1", "", "1000000 characters"),
    "1 MB without =": ("x" * MB, "", "expected key=value"),
    "5,000-digit integer": ("seed=" + "9" * 5000, "", "4300 digits"),
    "4,000-digit integer": ("protocol.trials.0.stimulus.value=" + "9" * 4000,
                            "protocol.trials[0].stimulus.value:", "finite"),
    "several lines of TOML": ("seed=1\nname = 'other'", "", "one value"),
}


@pytest.mark.parametrize("case", sorted(SETS))
def test_bad_set_is_one_line_naming_the_option(tmp_path, capsys, case):
    argument, field, says = SETS[case]
    out = tmp_path / "out"
    code, err = pcsim(["run", "perception/single_cause", "--check", "--set", argument,
                       "-o", str(out / "r.h5")], capsys)
    check_refusal(code, err, out, "--set", *([field] if field else []), says)


def test_tabs_and_line_breaks_stay_allowed_in_the_description(capsys):
    code, err = pcsim(["run", "perception/single_cause", "--check", "--set",
                       'description="one\\ttwo\\nthree"'], capsys)
    assert code == 0, err


@pytest.mark.parametrize("overrides, says", [
    ({"description": "a\x00b"}, "U+0000"),
    ({"protocol.trials.0.name": "x" * MB}, "1000000 characters"),
    ({"numerics.rate_limit": nested(5000)}, "nested more than 32"),
    ({5: 1}, "dotted key"),
    ({"seed": 10**5000}, "finite"),
], ids=["NUL", "1 MB", "5,000 deep", "key not a string", "5,000-digit integer"])
def test_api_overrides_follow_the_same_rule(tmp_path, overrides, says):
    with pytest.raises(sim.ScenarioError) as raised:
        sim.run("perception/single_cause", output=tmp_path / "r.h5", overrides=overrides)
    message = str(raised.value)
    assert "\n" not in message and says in message and len(message) < 2 * SHORT, message[:500]
    assert not list(tmp_path.iterdir())


# --- pcsim sweep ------------------------------------------------------------------------------

def sweep_file(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(BASE + "\n[sweep]\n" + table + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("argv, names, says", [
    (["--vary", 'protocol.trials.0.name="a\\u0000",b'], "--vary protocol.trials.0.name",
     "U+0000"),
    (["--vary", "protocol.trials.0.name=a\x01"], "--vary protocol.trials.0.name", "U+0001"),
    (["--vary", "numerics.rate_limit=" + "[" * 5000 + "1" + "]" * 5000],
     "--vary numerics.rate_limit", "nested"),
    (["--vary", "numerics.rate_limit=" + "[" * 40 + "1" + "]" * 40],
     "--vary numerics.rate_limit", "nested more than 32"),
    (["--vary", f'protocol.trials.0.name="{"x" * MB}"'], "--vary protocol.trials.0.name",
     "1000000 characters"),
    (["--vary", "x" * MB], "--vary", "expected KEY=V1,V2"),
    (["--vary", "seed=" + "9" * 5000], "--vary seed", "4300 digits"),
    (["--vary", 'description="a\\tb","c\\u001b"'], "--vary description", "U+001B"),
    (["--vary", "se\x01ed=1,2"], "--vary", "U+0001"),
    (["--seeds", "1000000000"], "single_cause.toml", "at most 1000000"),
])
def test_bad_sweep_spec_is_one_line_before_anything_runs(tmp_path, capsys, argv, names, says):
    out = tmp_path / "sweep"
    code, err = pcsim(["sweep", "perception/single_cause", *argv, "-o", str(out)], capsys)
    check_refusal(code, err, out, names, says)
    assert not out.exists()


@pytest.mark.parametrize("table, field, says", [
    ('vary = { "protocol.trials.0.name" = ["a", "b\\u0000"] }',
     "sweep.vary.protocol.trials.0.name[1]:", "U+0000"),
    ('vary = { "protocol.trials.0.na\\u0001me" = ["a"] }', "sweep.vary:", "U+0001"),
    ('vary = { "numerics.rate_limit" = ' + "[" * 40 + "1" + "]" * 40 + " }",
     "sweep.vary.numerics.rate_limit", "nested"),
    (f'vary = {{ "protocol.trials.0.name" = ["{"x" * MB}"] }}',
     "sweep.vary.protocol.trials.0.name[0]:", "1000000 characters"),
    ("seeds = " + "9" * 4000, "", "at most 1000000"),
])
def test_bad_sweep_table_is_one_line_naming_file_and_field(tmp_path, capsys, table, field, says):
    path = sweep_file(tmp_path, table)
    out = tmp_path / "sweep"
    code, err = pcsim(["sweep", str(path), "-o", str(out)], capsys)
    check_refusal(code, err, out, str(path), *([field] if field else []), says)
    assert not out.exists()


def test_through_the_real_entry_point(tmp_path):
    """A NUL in a trial name, as the issue found it: passes --check no more, and the run writes
    nothing."""
    path = tmp_path / "nul.toml"
    text = FILES["NUL in a trial name"][0]
    path.write_text(text, encoding="utf-8")
    where = f"{path}:{line_of(text, FILES['NUL in a trial name'][2])}:"
    for extra in (["--check"], []):
        ran = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(path), *extra,
                              "-o", str(tmp_path / "out" / "r.h5")],
                             capture_output=True, text=True, timeout=300)
        check_refusal(ran.returncode, ran.stderr, tmp_path / "out", where,
                      "protocol.trials[0].name:", "U+0000")
