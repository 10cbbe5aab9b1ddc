"""Writing a result: one self-describing HDF5 file per run (layout in docs/results.md).

Writing goes to a hidden temporary file beside the target (``sim.io.partials``), renamed onto the
target only when the run completes (``ResultWriter.commit``); a failed run removes it.

Time series (samples x units) are stored in tiles over time and units (``tile_shape``), so that
one unit's whole trace, or every unit in a time window, is read without the rest.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sim._version import __version__
from sim.errors import ResultError
from sim.io.finite import NonFinite, NonFiniteData, check_file, first_disallowed, nan_allowed
from sim.io.partials import remove_stale_partials, temporary_name
from sim.io.provenance import CHECKOUT, GitStatus, provenance
from sim.io.schema import SCHEMA_VERSION

CHUNK_SAMPLES = 1024  # samples per tile, at most
TILE_UNITS = 4  # units per tile, at most, unless the tile would be smaller than MIN_TILE_BYTES
MIN_TILE_BYTES = 8 << 10  # below this, HDF5's cost per chunk outweighs what it saves
BUFFER_BYTES = 8 << 20  # a stream's in-memory buffer: one band of tiles, all units (4 MiB cut a
# 1000-unit float64 stream's bands to 524 rows: HDF5's ~12-20 us a tile then took ~10% of a run
# that records every variable at every step, 1000-500-100)
CACHE_SLOTS = 10007  # hash slots of a stream's chunk cache, when it has one (a prime)
UNCOMPRESSED_ABOVE = 1 << 16  # numbers; the 1000x500 initial weights took 0.05-0.2 s to gzip
LIBVER = ("v110", "latest")  # HDF5's file format from 1.10 (2018) on: read by HDF5 >= 1.10


def versions() -> dict[str, str]:
    """The software a run is computed with (root attributes; ``sim.rerun`` compares them), a
    copy of what ``installed_versions`` found once in this process."""
    return dict(installed_versions())


@functools.cache
def installed_versions() -> dict[str, str]:
    """``versions``, looked up once per process (a sweep's worker writes many files; the
    installed metadata is read from disk). Brian2's version is read from its installed
    metadata, which imports nothing (a re-run's check comes before Brian2 is loaded), else
    from the module."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        brian2_version = version("brian2")
    except PackageNotFoundError:  # brian2 on the path, not installed
        import brian2

        brian2_version = brian2.__version__
    return {
        "pcsim_version": __version__,
        "brian2_version": brian2_version,
        "numpy_version": np.__version__,
        "h5py_version": h5py.__version__,
        "python_version": platform.python_version(),
    }


def write_array(group: h5py.Group, name: str, data: Any, units: str = "1", **attrs: Any) -> None:
    """A complete (non-streamed) dataset, compressed when large enough to matter.

    Arrays of more than ``UNCOMPRESSED_ABOVE`` numbers are stored chunked but not compressed:
    gzip saves ~10% on random weights and costs about a second per 10^7 of them (a tenth of
    a run's start-up at 1000-500-100).
    """
    data = np.asarray(data)
    options: dict[str, Any] = {}
    if data.dtype.kind == "U":
        data = data.astype(h5py.string_dtype())
    elif data.size > UNCOMPRESSED_ABOVE:
        options = {"chunks": True}
    elif data.size >= 256:
        options = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "chunks": True}
    dataset = group.create_dataset(name, data=data, **options)
    dataset.attrs["units"] = units
    for key, value in attrs.items():
        dataset.attrs[key] = value


def write_matrix(group: h5py.Group, name: str, matrix: Any, units: str = "1") -> None:
    """A dense array as a dataset; a scipy.sparse matrix as a group of its CSR arrays
    (``data``, ``indices``, ``indptr``; attributes ``format`` = ``csr`` and ``shape``)."""
    import scipy.sparse

    if not scipy.sparse.issparse(matrix):
        write_array(group, name, matrix, units=units)
        return
    matrix = scipy.sparse.csr_matrix(matrix)
    sub = group.create_group(name)
    sub.attrs["format"] = "csr"
    sub.attrs["shape"] = matrix.shape
    sub.attrs["units"] = units
    for part in ("data", "indices", "indptr"):
        write_array(sub, part, getattr(matrix, part), units=units if part == "data" else "1")


def tile_shape(width: int | None, itemsize: int) -> tuple[int, ...]:
    """The HDF5 chunk of a stream ``width`` units wide (None: one number per sample).

    Rows (samples): ``CHUNK_SAMPLES``, fewer where a band of tiles across every unit would
    exceed ``BUFFER_BYTES``: the writer holds one band in memory and writes it as whole chunks.
    Columns (units): the width split evenly into tiles of at most ``TILE_UNITS`` units, more
    where such a tile would hold less than ``MIN_TILE_BYTES`` (very wide streams, whose bands
    have few rows). Reading one unit's whole trace thus reads at most ``TILE_UNITS`` times the
    bytes asked for up to 4096 units, about width / 1024 times beyond (for any dtype);
    every unit over a window of w samples reads at most (w + 2 rows - 2) / w times them.
    """
    if width is None:
        return (CHUNK_SAMPLES,)
    width = max(width, 1)
    rows = max(1, min(CHUNK_SAMPLES, BUFFER_BYTES // (width * itemsize)))
    least_units = -(-MIN_TILE_BYTES // (rows * itemsize))
    tiles = min(-(-width // TILE_UNITS), max(1, width // least_units))
    return (rows, -(-width // tiles))


class StreamedDataset:
    """A dataset that grows along axis 0, filled from an in-memory buffer of one band of tiles
    (``tile_shape``: its rows, every unit), written as whole chunks when full."""

    def __init__(self, group: h5py.Group, name: str, width: int | None, units: str,
                 dtype: np.dtype, read: Callable[[], Any], chunk_cache: int = 0,
                 rows: Callable[[np.ndarray], Any] | None = None, **attrs: Any) -> None:
        shape = (0,) if width is None else (0, width)
        maxshape = (None,) if width is None else (None, width)
        chunks = tile_shape(width, dtype.itemsize)
        chunk_rows = chunks[0]
        # not compressed: gzip of the samples took most of a recorded run (2.0 of 2.7 s at
        # K = 2000 recorded every step, 0.2 of 1.1 s at 1000-500-100 every 1 ms) and saved
        # ~40% of the file (``h5repack -f GZIP=4`` compresses a finished result)
        # ``chunk_cache`` (bytes): a writer that cuts chunks (``sim.batch``) keeps them here
        # until their other part arrives; the file's default is none (whole chunks only)
        cache = {"rdcc_nbytes": chunk_cache, "rdcc_nslots": CACHE_SLOTS} if chunk_cache else {}
        self.dataset = group.create_dataset(
            name, shape=shape, maxshape=maxshape, dtype=dtype, chunks=chunks, **cache)
        self.dataset.attrs["units"] = units
        for key, value in attrs.items():
            self.dataset.attrs[key] = value
        self.buffer = np.empty((chunk_rows, *shape[1:]), dtype=dtype)
        self.filled = 0
        self.read = read
        self.rows = rows  # a batched run's reads of several copies (circuits.mechanism.Stream)
        self.nan_ok = nan_allowed(attrs)  # ``sim.io.finite``
        self.found: NonFinite | None = None  # its first value not allowed, as written

    def sample(self) -> None:
        self.buffer[self.filled] = self.read()
        self.filled += 1
        if self.filled == len(self.buffer):
            self.flush()

    def extend(self, rows: np.ndarray) -> None:
        """``sample`` for many rows at once (a compiled run's replay): the same buffer, the
        same chunks, the same values."""
        done = 0
        while done < len(rows):
            count = min(len(rows) - done, len(self.buffer) - self.filled)
            self.buffer[self.filled:self.filled + count] = rows[done:done + count]
            self.filled += count
            done += count
            if self.filled == len(self.buffer):
                self.flush()

    def flush(self) -> None:
        if not self.filled:
            return
        self.append(self.buffer[: self.filled])
        self.filled = 0

    def append(self, rows: np.ndarray) -> None:
        """Write ``rows`` after those in the file and check them (``check``): the buffer's,
        and a resumed run's rows copied back from its checkpoint (``sim.checkpoint``), so
        that its commit finds what the uninterrupted run's would."""
        start = self.dataset.shape[0]
        self.dataset.resize(start + len(rows), axis=0)
        self.dataset[start:] = rows
        self.check(rows, start)

    def check(self, values: np.ndarray, start: int) -> None:
        """Note the first value not allowed (``sim.io.finite``) of rows written at ``start``."""
        if self.found is None:
            found = first_disallowed(values, self.nan_ok, start)
            if found:
                self.found = NonFinite(self.dataset.name, *found, self.nan_ok, streamed=True)


class ResultWriter:
    """The HDF5 file of one run, written beside ``target`` and moved there on ``commit``."""

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.temporary = temporary_name(self.target)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_partials(self.target.parent)
            # streams write whole chunks, so no chunk cache: with HDF5's default one, memory
            # grew by ~1 kB per sample of a long run. HDF5 1.10's file format indexes the
            # chunks of a growing dataset in an extensible array: with the older B-tree index
            # memory grew with the number of tiles written (~15 MB per 10^6 samples of 250 units)
            self.file = h5py.File(self.temporary, "w", rdcc_nbytes=0, libver=LIBVER)
        except OSError as err:
            where = f": {err.filename}" if err.filename else ""
            raise ResultError(f"{self.target}: cannot write the result here "
                              f"({err.strerror or err}{where})") from err
        self.file.attrs["schema_version"] = SCHEMA_VERSION
        self.file.attrs["status"] = "running"
        self.file.attrs["created_utc"] = datetime.datetime.now(datetime.UTC).isoformat()
        for key, value in {**versions(), **provenance(git=False)}.items():
            self.file.attrs[key] = value
        self.git = GitStatus(CHECKOUT)  # the commit: git runs beside the run, read at commit
        self.streams: list[StreamedDataset] = []

    def stream(self, path: str, width: int | None, read: Callable[[], Any], units: str = "1",
               dtype: Any = np.float64, chunk_cache: int = 0,
               rows: Callable[[np.ndarray], Any] | None = None, **attrs: Any) -> StreamedDataset:
        group_name, _, name = path.rpartition("/")
        group = self.file.require_group(group_name or "/")
        streamed = StreamedDataset(group, name, width, units, np.dtype(dtype), read,
                                   chunk_cache, rows, **attrs)
        self.streams.append(streamed)
        return streamed

    def flush(self) -> None:
        for streamed in self.streams:
            streamed.flush()

    def commit(self, status: str = "complete", overwrite: bool = True) -> Path:
        """Close the file and move it onto the target in one step (never half-written).

        Without ``overwrite`` the move is a hard link, which fails rather than replace a file
        that appeared at the target while the run went on. A ``complete`` file holds no
        non-finite value that its dataset does not declare (``sim.io.finite``): else
        ``NonFiniteData``, with the file still open, to be committed with another status.
        """
        self.flush()
        if status == "complete":
            found = next((s.found for s in self.streams if s.found), None) or check_file(
                self.file, {streamed.dataset.name for streamed in self.streams})
            if found:
                raise NonFiniteData(found)
        self.file.attrs.update(self.git.state())
        self.file.attrs["status"] = status
        self.file.close()
        if overwrite:
            os.replace(self.temporary, self.target)
            return self.target
        try:
            os.link(self.temporary, self.target)
        except FileExistsError as err:
            raise ResultError(f"{self.target}: appeared while the run went on; not replaced "
                              "(pass --overwrite to replace it)") from err
        except OSError:  # no hard links on this file system
            if self.target.exists():
                raise ResultError(f"{self.target}: already exists; not replaced") from None
            os.replace(self.temporary, self.target)
            return self.target
        self.temporary.unlink()
        return self.target

    def abort(self) -> None:
        self.git.close()
        try:
            self.file.close()
        finally:
            self.temporary.unlink(missing_ok=True)
