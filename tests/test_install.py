"""What a non-editable install holds (issue 24, point 6): the bundled scenarios go inside the
``sim`` package (``sim/scenarios/``), not into a top-level package named ``scenarios``, and an
installed pcsim still finds every one of them.

The wheel is built as ``pip install .`` builds it (setup.py, pyproject.toml), from a copy of the
sources (a build in the checkout would leave ``build/`` there), with this interpreter's
setuptools (the ``test`` extra asks for one that builds wheels itself). Unpacking a wheel is
what installing it does to site-packages; the unpacked copy is then put first on the path of a
fresh interpreter, outside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "sim", "circuits", "scenarios"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "--quiet", "--wheel-dir", str(out)],
                   check=True, capture_output=True, text=True)
    (built,) = out.glob("pcsim-*.whl")
    return built


def repository_scenarios() -> set[str]:
    root = ROOT / "scenarios"
    return {p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.toml")}


def test_wheel_has_no_top_level_scenarios_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        declared = archive.read(next(n for n in names if n.endswith(".dist-info/top_level.txt")))
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"sim", "circuits"}
    assert set(declared.decode().split()) == {"sim", "circuits"}
    packed = {name.removeprefix("sim/scenarios/").removesuffix(".toml")
              for name in names if name.startswith("sim/scenarios/") and name.endswith(".toml")}
    assert packed == repository_scenarios()


def test_installed_pcsim_finds_every_bundled_scenario(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    program = ("import json, sim; from sim.scenario import bundled_scenarios, find_scenario; "
               "found = {n: str(find_scenario(n)) for n in bundled_scenarios()}; "
               "print(json.dumps({'sim': sim.__file__, 'found': found}))")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-c", program], cwd=elsewhere, check=True,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)})
    answer = json.loads(done.stdout)
    assert Path(answer["sim"]).is_relative_to(site)
    assert set(answer["found"]) == repository_scenarios()
    for name, path in answer["found"].items():
        assert Path(path) == site / "sim" / "scenarios" / f"{name}.toml"
        assert Path(path).read_bytes() == (ROOT / "scenarios" / f"{name}.toml").read_bytes()

