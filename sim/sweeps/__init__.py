"""Parameter sweeps: a grid of ordinary runs, on local cores or a Dask cluster, and its index.

``sim.sweep(...)`` / ``pcsim sweep`` run the grid (``grid``: keys, values, seeds) through
``worker`` (one point, under a lock: ``locks``) on a ``pool`` (local processes or Dask),
``run`` orchestrates and ``index`` writes ``FOLDER/sweep.h5`` with each point's ``summary``;
``table`` (``sim.open_sweep``) and ``report`` (``pcsim show``/``plot`` on an index) read it.
Reading a sweep imports neither Brian2 nor pandas (pandas only for ``Sweep.table``); importing
this package imports nothing (``import sim`` and ``pcsim show`` stay quick; ``detect`` tells an
index from a result).
"""

