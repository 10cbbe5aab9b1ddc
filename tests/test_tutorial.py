"""The tutorial notebook (docs/tutorial.ipynb, issue 24 point 5) runs from top to bottom.

It is executed as a reader runs it: every cell in order, in a fresh Jupyter kernel (nbclient,
ipykernel), in an empty folder, with the shell commands (``!pcsim ...``) found on the PATH of
the interpreter running the tests. A cell that raises, or a ``%%bash`` cell whose command
exits non-zero, fails the test with the cell's error.
It is stored without outputs, so that a change to it is a change to its text only.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
CELL_TIMEOUT_S = 300  # the first run of a circuit compiles Brian2's code


def test_tutorial_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    kept = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            and (cell.outputs or cell.execution_count is not None)]
    assert kept == [], f"code cells stored with outputs: {kept}"


def test_tutorial_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `pcsim` in %%bash cells as in the reader's activated virtualenv
    bin_folder = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", os.pathsep.join([bin_folder, os.environ.get("PATH", "")]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()
    print(f"docs/tutorial.ipynb ran in {time.perf_counter() - start:.1f} s")
    assert (tmp_path / "pcsim-tutorial" / "my_creak_sweep" / "sweep.h5").is_file()
