"""Telling a sweep's index from a result file, cheaply (``pcsim show`` and ``plot`` ask first)."""

from __future__ import annotations

from pathlib import Path

INDEX_NAME = "sweep.h5"
FORMAT = "pcsim-sweep"


def index_path(folder_or_index: str | Path) -> Path:
    """The index file itself (a folder: its ``sweep.h5``)."""
    path = Path(folder_or_index)
    return path / INDEX_NAME if path.is_dir() else path


def is_sweep_index(path: str | Path) -> bool:
    """Whether ``path`` is a sweep index (or a folder holding one): attributes only."""
    import h5py

    from sim.io.result_file import READ_ERRORS

    path = index_path(path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as file:
            return file.attrs.get("format") == FORMAT
    except READ_ERRORS:  # not HDF5, or damaged: the result reader says which
        return False
