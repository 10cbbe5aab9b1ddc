"""Timing a compiled JAX run the same way for every peer (``sim.bench.peers``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import numpy as np


def compiled_rates(run: Callable[[], object], steps: int, repeats: int
                   ) -> tuple[list[float], list[np.ndarray]]:
    """(steps per second of each of ``repeats`` timed calls of ``run``, final beliefs mu_1..mu_L
    of the first copy). Two untimed calls first: the second sees the shapes the first
    recorded, so neither compilation nor tracing is timed."""
    for _ in range(2):
        jax.block_until_ready(run())
    rates, beliefs = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        beliefs = jax.block_until_ready(run())
        rates.append(steps / (time.perf_counter() - began))
    return rates, [np.asarray(mu)[0] for mu in beliefs]
