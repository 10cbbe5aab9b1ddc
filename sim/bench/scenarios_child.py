"""Times bundled scenarios through the public ``sim.run`` in one warm process.

``python sim/bench/scenarios_child.py --output-dir DIR [--repeats N] NAME ...`` is run by path
by ``sim.bench.scenarios``, with the checkout to time first on ``PYTHONPATH``: this checkout's
for the code as it is, a temporary checkout of an older revision for the code before. So it
uses nothing but the standard library and ``sim.run(name, output=..., overwrite=True)``, which
both have, and imports nothing else of pcsim (an older checkout may not have this module).

It prints JSON lines: first ``{"sim_file": ...}`` (which ``sim`` it imported), then one per
scenario: ``first_s`` (the first run in this process: code loaded or compiled, untimed for the
comparison), ``runs_s`` (the ``N`` runs after it, each with the previous file deleted before
the clock starts), ``steps`` (simulated duration / dt, from the result's attributes), or
``error`` (the run's exception, one line).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == _HERE:
    del sys.path[0]  # run by path: this folder's modules must not shadow others

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402


def timed_run(name: str, output: Path) -> tuple[float, int]:
    """One ``sim.run`` of ``name``: seconds (call to return) and steps simulated."""
    import sim

    output.unlink(missing_ok=True)  # not the file system's freeing of the last file
    began = time.perf_counter()
    result = sim.run(name, output=output, overwrite=True)
    seconds = time.perf_counter() - began
    try:
        steps = round(float(result.attrs["duration"]) / float(result.attrs["dt"]))
    finally:
        result.close()
    return seconds, steps


def time_scenario(name: str, output: Path, repeats: int) -> dict:
    try:
        first, steps = timed_run(name, output)
        runs = [timed_run(name, output)[0] for _ in range(repeats)]
    except Exception as err:  # reported in the table, not fatal to the others
        message = " ".join(str(err).split()) or type(err).__name__
        return {"scenario": name, "error": f"{type(err).__name__}: {message}"}
    finally:
        output.unlink(missing_ok=True)
    return {"scenario": name, "first_s": first, "runs_s": runs, "steps": steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scenarios_child.py")
    parser.add_argument("names", nargs="+", metavar="NAME", help="bundled scenario names")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import sim

    print(json.dumps({"sim_file": str(Path(sim.__file__).resolve())}), flush=True)
    for name in args.names:
        output = args.output_dir / (name.replace("/", "-") + ".h5")
        print(json.dumps(time_scenario(name, output, args.repeats)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
