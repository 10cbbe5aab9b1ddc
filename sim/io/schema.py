"""The result schema version: what the writer writes and the newest the reader reads
(bumped when the HDF5 layout changes in a way an older reader cannot follow; docs/results.md)."""

SCHEMA_VERSION = 2  # 2: free_energy may hold NaN where the Laplace term was not computed
