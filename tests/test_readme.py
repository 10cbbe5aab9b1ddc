"""The README's examples run as written (issue 24, point 2).

Its Python blocks run here, read from README.md (``tests/readme_blocks.py``), in order, in one
namespace, in a temporary folder, with the install the README's quick start makes (pandas is
a dependency for ``trials_frame()`` and ``Sweep.table``). Its shell blocks install pcsim into a
fresh virtualenv and run the test suite, so ``.ci/run`` runs them (in a fresh copy of the
repository); the tests here check that every block is one of the two kinds, and that the
README's two commands and ``.ci/run`` stay what they say.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
from readme_blocks import PYTHON, README, SHELL, blocks, commands, shell_script

ROOT = Path(__file__).resolve().parents[1]
FRESH_VENV = "python3 -m venv .venv && . .venv/bin/activate && "


def test_every_block_is_run() -> None:
    """A block of another language would be run by nothing."""
    found = blocks()
    assert found, "README.md has no code blocks"
    others = [(b.line, b.language) for b in found if b.language not in SHELL + PYTHON]
    assert others == [], f"README.md blocks neither shell nor python (line, language): {others}"


def test_readme_commands_install_and_run_then_test() -> None:
    shell = [c.text for b in blocks() if b.language in SHELL for c in commands(b)]
    assert shell[0] == FRESH_VENV + "pip install . && pcsim run"
    assert shell[1] == (FRESH_VENV + 'pip install ".[test]" && ruff check . && '
                        "pytest -q -n auto --dist loadgroup")
    script = shell_script()
    assert all(command in script for command in shell)


def test_ci_runs_the_readme_shell_blocks() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "tests/readme_blocks.py shell" in ci


def test_expected_exit_codes_are_read_from_comments(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("text\n\n```bash\ntrue  # fine\n# only a comment\n\n"
                      "false \\\n  --flag  # differs (exit 1)\n```\n\n```python\nx = 1\n```\n")
    (shell, python) = blocks(readme)
    assert (shell.language, shell.line, python.language, python.line) == ("bash", 4, "python", 12)
    assert [(c.text, c.line, c.expected_exit) for c in commands(shell)] == [
        ("true  # fine", 4, 0), ("false \\\n  --flag  # differs (exit 1)", 7, 1)]


def test_python_blocks_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    python = [b for b in blocks() if b.language in PYTHON]
    assert python, "README.md has no Python blocks"
    for block in python:  # compiled at the README's own line numbers, for tracebacks
        code = compile("\n" * (block.line - 1) + block.text, str(README), "exec")
        exec(code, namespace)
    import matplotlib.pyplot as plt

    plt.close("all")
