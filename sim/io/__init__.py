"""Result files: the atomic streamed writer (``sim.io.writer``, time series in tiles over time and
units) and the reader (``sim.io.reader``: ``load`` and the ``Result``, time series as
``sim.io.lazy.LazyArray``, the trial table also as a DataFrame through ``sim.io.tables``; the
HDF5 file read safely, h5py's errors made one line, in ``sim.io.result_file``), which checks each
file against the layout declared in ``sim.io.schema`` (``sim.io.schema_check``).

Only h5py and NumPy here: the report side (``pcsim show``, ``plot``) reads results without
importing Brian2.
"""
