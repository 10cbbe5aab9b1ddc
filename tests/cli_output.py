"""What the tests read from a refused scenario or a CLI command's output (imported by the test
modules, as ``golden`` is: pytest puts this folder on the path)."""

from __future__ import annotations

from pathlib import Path

import pytest

import sim
from sim.scenario_writer import write_scenario


def error_line(capsys) -> str:
    """The command's one line on stderr: a user's mistake is one line, never a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def refusal(folder: Path, table: dict) -> str:
    """The error of running ``table`` as a scenario file: a ScenarioError of one line that
    starts with the file's path, and no result file left."""
    path = write_scenario(folder / "bad.toml", table)
    with pytest.raises(sim.ScenarioError) as caught:
        sim.run(path, output=folder / "bad.h5")
    text = str(caught.value)
    assert text.startswith(str(path)) and "\n" not in text, text
    assert not (folder / "bad.h5").exists()
    return text
