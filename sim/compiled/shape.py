"""A compiled program's shape: what fixes its code, and where its build is kept.

Runs whose scenarios have the same shape (``shape_key``: sizes, dt, the steps of each trial,
the recording's cadence and variables, mechanisms, readouts, the method, the float type) run the
same program, built once in ``<cache>/<key>`` (``sim.compiled.device``) and kept there: every
value that may differ within a shape (time constants, precisions, priors, stimuli, seeds,
learning rates, a readout's threshold) is data the program reads when it starts, not a constant
of its code, so a new value compiles nothing. Decided from the scenario alone, before Brian2 is
imported (a sweep's plan, ``sim.sweeps.programs``).

The key holds no name: Brian2 names a program's arrays after its groups, and groups are named
by level index (``circuits.naming``), so two scenarios of one shape (``learning/oddball`` and
``learning/oddball_roving``, say) share one build. The key decides only *where* a program is
built, never *what* runs: every build writes the whole project again and compiles each source
whose text is not the one its object was compiled from (``sim.compiled.device``'s project
record). A key that misses something that fixes the code (the ERP's rectified sum differs from
the signed one in 2 of oddball's 37 sources) costs a recompile of what differs, not a wrong
program.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CACHE_ENVIRONMENT = "PCSIM_STANDALONE_CACHE"


def shape_key(scenario: Any) -> str:
    """The build directory's name: a digest of what fixes the program's code (not the
    scenario's name: scenarios of one shape share a build)."""
    model = scenario.model
    shape = {"kind": scenario.kind.name, "dt": scenario.dt_ms,
             "steps": [scenario.steps(trial.duration_ms) for trial in scenario.trials],
             "every": scenario.record.every_steps, "record": list(scenario.record.variables),
             "levels": [getattr(level, "size", None) for level in getattr(model, "levels", [])],
             "mechanisms": sorted(getattr(model, "mechanisms", {})),
             "readouts": sorted(scenario.readouts), "method": scenario.method,
             "float": scenario.float_type}
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode())
    return f"shape-{digest.hexdigest()[:16]}"


def default_cache_root() -> Path:
    """``$PCSIM_STANDALONE_CACHE``, else ``$XDG_CACHE_HOME/pcsim/standalone`` (``~/.cache``)."""
    if os.environ.get(CACHE_ENVIRONMENT):
        return Path(os.environ[CACHE_ENVIRONMENT])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "pcsim" / "standalone"


def built(key: str, cache_root: Path | None = None) -> bool:
    """Whether a program of this shape was built here before (its build is kept)."""
    return ((cache_root or default_cache_root()) / key / "main").is_file()
