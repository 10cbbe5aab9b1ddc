"""The report side: summaries and figures of finished results. Imports ``sim.io`` and
matplotlib only, never Brian2."""
