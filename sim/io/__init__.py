"""Result files: the atomic streamed writer (``sim.io.writer``) and the reader (``sim.io.reader``).

Only h5py and NumPy here: the report side (``pcsim show``, ``plot``) reads results without
importing Brian2.
"""
