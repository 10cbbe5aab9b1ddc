"""Golden results of the bundled scenarios: the guard that a refactor changes no number.

    python tests/golden.py dump FOLDER        run every bundled scenario (its own seed)
                                                   into FOLDER/<name>.h5
    python tests/golden.py compare A B        every dataset and attribute of A/*.h5 equal,
                                                   bitwise, to B/*.h5 (exit 1 if not; attributes
                                                   that only B has are listed, not failures)
    python tests/golden.py store [NAME ...]   write tests/data/golden/<name>.npz: beliefs
                                                   and errors of each bundled scenario named
                                                   (all when none), which tests/test_cli.py
                                                   checks to 1e-12 (spiking: below)

``dump`` + ``compare`` is the before/after check of a refactor on one machine; the stored
arrays are the lasting version that survives another CPU or BLAS build.

A spiking scenario (``neurons/mismatch``, ``neurons/hierarchy_spiking``) stores other arrays:
each population's spike count per trial (``spike_count/<level>/<population>``), each level's
decoded belief averaged over the second half of every trial (``mean_belief/<level>``), and
their spread over other seeds of the neurons (``spread/<key>``, ``spreads``).
``spiking_mismatches`` compares a run with them to a tolerance stated in that spread
(``SPREAD_SDS``), not to 1e-12: one ulp on another CPU can move a spike (a Poisson neuron fires
when a uniform draw falls below rate x dt), and from then on the run is another realisation of
the same network. On the same machine they are equal.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import h5py
import numpy as np

from sim.io.provenance import PROVENANCE

HERE = Path(__file__).resolve().parent / "data"
STORED = HERE / "golden"  # one <scenario, / as __>.npz each
# attributes that say when and with what a file was written, not what was computed
# (the BLAS, CPU and git commit: sim.io.provenance; a refactor's commit differs by design)
VOLATILE_ATTRS = {"created_utc", "pcsim_version", "brian2_version", "numpy_version",
                  "h5py_version", "python_version", "path", "schema_version", *PROVENANCE}
MAX_ROWS = 64  # samples kept per stored trace: evenly spaced, always with the last one


def bundled() -> list[str]:
    from sim.scenario import bundled_scenarios

    return list(bundled_scenarios())


def dump(folder: Path) -> None:
    os.environ.setdefault("PCSIM_DEVICE", "runtime")  # the reference; "standalone" to compare
    import sim

    folder.mkdir(parents=True, exist_ok=True)
    for name in bundled():
        target = folder / (name.replace("/", "__") + ".h5")
        sim.run(name, output=target, overwrite=True)
        print(f"wrote {target}")


# a spiking run on another CPU is another realisation of the same network: ``store`` runs the
# scenario with SPREAD_SEEDS other seeds of the neurons' randomness and keeps each stored
# number's standard deviation over them (``spread/<key>``); a run may differ from the stored
# one by SPREAD_SDS x sqrt(2) x that spread (two realisations differ with sd sqrt(2) x spread)
SPREAD_SEEDS, SPREAD_SDS = 8, 4.0


def spiking(found: dict[str, np.ndarray]) -> bool:
    """Whether ``found`` (``traces``) are a spiking run's (``spiking_traces``)."""
    return any(key.startswith("mean_belief/") for key in found)


def spiking_traces(result) -> dict[str, np.ndarray]:
    """Spike counts per trial of each population, and each level's decoded belief averaged
    over the second half of each trial, of a spiking ``Result``."""
    starts, stops = np.asarray(result["trials/t_start"]), np.asarray(result["trials/t_stop"])
    time = np.asarray(result["time"])
    out = {}
    for population, trains in result.spikes().items():
        out[f"spike_count/{population}"] = np.array(
            [np.count_nonzero((trains.time >= a) & (trains.time < b))
             for a, b in zip(starts, stops, strict=True)])
    for key in list(result.datasets):
        if key.startswith("levels/") and key.endswith("/belief"):
            values = np.asarray(result[key])
            out[f"mean_belief/{key.split('/')[1]}"] = np.array(
                [values[(time >= (a + b) / 2) & (time < b)].mean(axis=0)
                 for a, b in zip(starts, stops, strict=True)])
    return out


def spiking_mismatches(found: dict[str, np.ndarray], stored) -> list[str]:
    """What differs beyond the stated tolerance (``SPREAD_SDS``) between a spiking run's
    ``spiking_traces`` and the stored ones (empty: none)."""
    wrong = [f"{key}: not stored" for key in found if key not in stored.files]
    wrong += [f"{key}: not found" for key in stored.files
              if not key.startswith("spread/") and key not in found]
    for key in set(found) & set(stored.files):
        values, want = found[key], stored[key]
        allowed = SPREAD_SDS * np.sqrt(2.0) * stored[f"spread/{key}"]
        if values.shape != want.shape or np.any(np.abs(values - want) > allowed):
            wrong.append(f"{key}: {values} against {want} (allowed +-{allowed})")
    return wrong


def traces(path: Path) -> dict[str, np.ndarray]:
    """Beliefs and errors of a result, at most ``MAX_ROWS`` samples each (last one kept); a
    spiking result's ``spiking_traces``. The file is opened once."""
    import sim

    with sim.load(path) as result:
        return spiking_traces(result) if result.neurons == "spiking" else rate_traces(result)


def rate_traces(result) -> dict[str, np.ndarray]:
    """A rate ``Result``'s beliefs and errors, at most ``MAX_ROWS`` samples each."""
    out = {}
    for key in list(result.datasets):
        if key.rsplit("/", 1)[-1] not in ("belief", "error"):
            continue
        values = np.asarray(result[key])
        rows = np.unique(np.linspace(0, len(values) - 1, MAX_ROWS).round().astype(int))
        out[key] = values[rows]
    return out


def spreads(name: str, folder: Path) -> dict[str, np.ndarray]:
    """A spiking scenario's stored numbers' standard deviation over ``SPREAD_SEEDS`` other
    seeds of its neurons (``spread/<key>``)."""
    import sim
    from sim.scenario import load_scenario

    runs = []
    for offset in range(1, SPREAD_SEEDS + 1):
        path = folder / "spread.h5"
        seed = load_scenario(name).model.spiking.seed + offset
        sim.run(name, output=path, overwrite=True, overrides={"model.spiking.seed": seed})
        runs.append(traces(path))
    return {f"spread/{key}": np.std([run[key] for run in runs], axis=0, ddof=1)
            for key in runs[0]}


def stored_path(name: str) -> Path:
    """Where a bundled scenario's golden traces are kept (one file each, so that adding a
    scenario never rewrites another's)."""
    return STORED / (name.replace("/", "__") + ".npz")


def store(names: list[str] | None = None) -> None:
    import tempfile

    import sim

    STORED.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in names or bundled():
            path = Path(folder) / (name.replace("/", "__") + ".h5")
            sim.run(name, output=path, overwrite=True)
            arrays = traces(path)
            if spiking(arrays):
                arrays.update(spreads(name, Path(folder)))
            np.savez_compressed(stored_path(name), **arrays)
            print(f"wrote {stored_path(name)} ({len(arrays)} arrays)")


def _items(path: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    with h5py.File(path, "r") as handle:
        for key, value in handle.attrs.items():
            if key not in VOLATILE_ATTRS:
                found[f"@{key}"] = value

        def visit(name, node):
            for key, value in node.attrs.items():
                if key not in VOLATILE_ATTRS:
                    found[f"{name}@{key}"] = value
            if isinstance(node, h5py.Dataset):
                found[name] = node[()]

        handle.visititems(visit)
    return found


def _equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
        return False
    if a.dtype.kind == "f":
        return a.tobytes() == b.tobytes()
    return bool(np.all(a == b))


def compare(before: Path, after: Path) -> int:
    failures = 0
    for old in sorted(before.glob("*.h5")):
        new = after / old.name
        if not new.exists():
            print(f"{old.name}: missing in {after}")
            failures += 1
            continue
        a, b = _items(old), _items(new)
        for key in sorted(set(a) | set(b)):
            if key not in a and "@" in key:  # a new attribute: reported, not a change
                print(f"{old.name}: {key} added")
            elif key not in a or key not in b:
                print(f"{old.name}: {key} only in {'before' if key in a else 'after'}")
                failures += 1
            elif not _equal(a[key], b[key]):
                print(f"{old.name}: {key} differs")
                failures += 1
    print("identical" if not failures else f"{failures} difference(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "dump" and len(sys.argv) == 3:
        dump(Path(sys.argv[2]))
    elif command == "compare" and len(sys.argv) == 4:
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    elif command == "store":
        store(sys.argv[2:])
    else:
        print(__doc__)
        sys.exit(2)
