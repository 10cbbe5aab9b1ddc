"""Results in other formats: ``nwb`` (Neurodata Without Borders, ``pcsim export --nwb``).

An exporter reads a finished result through ``sim.load`` (lazily, never Brian2) and writes a
new file atomically; what it writes is derived from the result's declarations
(``circuits.variables``), not from lists of dataset names.
"""
