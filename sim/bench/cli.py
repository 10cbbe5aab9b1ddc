"""The ``pcsim bench`` subcommand's arguments, beside the suite they drive (``sim.bench.suite``);
``sim.cli`` adds them and hands the parsed arguments to ``sim.bench.suite.main``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_parser(commands: Any, handler: Callable[[argparse.Namespace], int]) -> None:
    """Add ``bench`` and its flags to ``commands`` (argparse's subparsers), run by ``handler``."""
    bench = commands.add_parser("bench", help="measure speed against NumPy references")
    bench.add_argument("--quick", action="store_true", help="a subset that runs in ~2 minutes")
    bench.add_argument("--json", metavar="FILE", help="also write the table as JSON records")
    bench.add_argument("--threads", type=int, default=1,
                       help="BLAS threads for pcsim and the references (default 1)")
    bench.add_argument("--peers", action="store_true",
                       help="only the side-by-side table with the JAX predictive-coding "
                            "libraries (PCX, ngc-learn) where installed")
    bench.add_argument("--batch", type=int, default=1, metavar="B",
                       help="with --peers: B copies at once (batched trials), trial-steps/s")
    bench.add_argument("--only", action="append", metavar="NAME",
                       help="run only the cases whose name contains NAME (repeatable), "
                            "e.g. --only recorded")
    bench.add_argument("--scenario", action="append", metavar="NAME",
                       help="the 'bundled scenarios' row: time only this bundled scenario "
                            "(repeatable; default: every one)")
    bench.add_argument("--baseline", metavar="REV",
                       help="the 'bundled scenarios' row: the git revision to compare with "
                            "(default: 451b4f9, the engine before issue 23; 'none': no "
                            "comparison)")
    bench.set_defaults(handler=handler)
