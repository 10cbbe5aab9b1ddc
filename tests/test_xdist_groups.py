"""The suite's ``xdist_group`` marks hold under ``pytest -n 2 --dist loadgroup`` (the README's
test command): a small suite of grouped and ungrouped tests, run on two workers with the
suite's hook (``tests/xdist_groups.py``), runs each group's tests on one worker, and the tests
of an unmarked module that share a module-scoped fixture on one worker, which makes it once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_each_groups_tests_run_on_one_worker(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "from xdist_groups import pytest_collection_modifyitems  # noqa: F401\n")
    for module in ("a", "b"):
        (tmp_path / f"test_{module}.py").write_text(
            "import time\nimport pytest\n\n"
            "@pytest.mark.xdist_group('shared')\n@pytest.mark.parametrize('n', range(4))\n"
            "def test_grouped(n):\n    time.sleep(0.05)\n\n"
            "@pytest.mark.parametrize('n', range(4))\n"
            "def test_free(n):\n    time.sleep(0.05)\n")
    made = tmp_path / "made.txt"  # a line per setup of the module-scoped fixture
    (tmp_path / "test_c.py").write_text(
        "import os\nimport time\nimport pytest\n\n"
        "@pytest.fixture(scope='module')\ndef runs():\n"
        f"    with open({str(made)!r}, 'a') as f:\n"
        "        f.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n\n"
        "@pytest.mark.parametrize('n', range(6))\n"
        "def test_shares(runs, n):\n    time.sleep(0.05)\n")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])}
    ran = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup",
                          "-v", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, env=environment,
                         timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    placed = re.findall(r"\[(gw\d)\] .*? PASSED \S*::(test_\w+)\[\d\]", ran.stdout)
    assert len(placed) == 22, ran.stdout
    assert len({worker for worker, name in placed if name == "test_grouped"}) == 1
    assert len({worker for worker, name in placed if name == "test_shares"}) == 1
    assert len(made.read_text().split()) == 1, made.read_text()
    assert len({worker for worker, _ in placed}) == 2  # the free tests were spread
