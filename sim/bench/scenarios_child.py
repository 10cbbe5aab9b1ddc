"""Times bundled scenarios through the public ``sim.run``, one process kept warm.

``python sim/bench/scenarios_child.py OUTPUT_DIR`` is started by ``sim.bench.scenarios``, run
by path with the checkout to time first on ``PYTHONPATH``: this checkout's for the code as it
is, a temporary checkout of an older revision for the code before. So it uses nothing but the
standard library and ``sim.run(name, output=..., overwrite=True)``, which both have, and imports
nothing else of pcsim (an older checkout may not have this module).

It prints ``{"sim_file": ...}`` (which ``sim`` it imported), then reads scenario names from its
standard input, one a line, and for each runs it once and prints one JSON line: ``seconds``
(``sim.run`` call to return, the previous file deleted before the clock starts) and ``steps``
(simulated duration / dt, from the result's attributes), or ``error`` (the exception, one line).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == _HERE:
    del sys.path[0]  # run by path: this folder's modules must not shadow others

import json  # noqa: E402
import time  # noqa: E402


def timed_run(name: str, output: Path) -> dict:
    """One ``sim.run`` of ``name``: seconds (call to return) and steps simulated."""
    import sim

    output.unlink(missing_ok=True)  # not the file system's freeing of the last file
    try:
        began = time.perf_counter()
        result = sim.run(name, output=output, overwrite=True)
        seconds = time.perf_counter() - began
        try:
            steps = round(float(result.attrs["duration"]) / float(result.attrs["dt"]))
        finally:
            result.close()
    except Exception as err:  # reported in the table, not fatal to the other scenarios
        message = " ".join(str(err).split()) or type(err).__name__
        return {"scenario": name, "error": f"{type(err).__name__}: {message}"}
    return {"scenario": name, "seconds": seconds, "steps": steps}


def main(argv: list[str] | None = None) -> int:
    folder = Path((sys.argv[1:] if argv is None else argv)[0])
    import sim

    print(json.dumps({"sim_file": str(Path(sim.__file__).resolve())}), flush=True)
    for line in sys.stdin:
        name = line.strip()
        if name:
            output = folder / (name.replace("/", "-") + ".h5")
            print(json.dumps(timed_run(name, output)), flush=True)
            output.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
