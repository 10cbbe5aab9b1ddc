"""What the tests read from a CLI command's output (imported by the test modules, as
``golden`` is: pytest puts this folder on the path)."""

from __future__ import annotations


def error_line(capsys) -> str:
    """The command's one line on stderr: a user's mistake is one line, never a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]
