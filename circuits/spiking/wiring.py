"""Who listens to whom: fixed fan-in wiring between spiking pools (``circuits.spiking``).

A *pool group* holds the two pools (positive, negative) of every unit of one population:
neuron k has sign k // (n N) (0 positive, 1 negative) and unit (k % (n N)) // N, for n units of
N neurons. A connection between two populations is a matrix ``values`` (target units x source
units: W, W', or the identity); a target neuron of unit a takes K neurons (``fan_in``, drawn
with replacement; all N when K >= N) from each pool of every source unit b with
``values[a, b] != 0``, each synapse carrying ``+values[a, b] / K`` from the positive pool and
``-values[a, b] / K`` from the negative one. The synapses number 2 K N_target per non-zero
entry: proportional to N.
"""

from __future__ import annotations

import numpy as np


def pool_units(units: int, neurons: int) -> np.ndarray:
    """The unit of each neuron of a pool group of ``units`` units (both signs)."""
    return np.tile(np.repeat(np.arange(units), neurons), 2)


def per_neuron(values: np.ndarray, neurons: int) -> np.ndarray:
    """Each unit's value given to every neuron of its two pools (a pool group's state)."""
    return np.asarray(values)[pool_units(len(values), neurons)]


def synaptic(*names: str) -> str:
    """Filtered synaptic inputs: each decays with tau_s, and a spike adds its weight."""
    return "".join(f"d{name}/dt = -{name} / tau_synapse : 1\n" for name in names)


def pool_signs(units: int, neurons: int) -> np.ndarray:
    """+1 for each positive-pool neuron, -1 for each negative one."""
    return np.repeat([1.0, -1.0], units * neurons)


def fan_in(values: np.ndarray, neurons: int, target_units: np.ndarray, fan: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Presynaptic indices, postsynaptic indices and per-synapse values (sign x value / K) of
    the connection ``values`` (n_target x n_source) from a pool group of N = ``neurons`` per
    unit into targets whose units are ``target_units`` (one entry per target neuron)."""
    sources = values.shape[1]
    k = min(fan, neurons)
    full = k >= neurons
    pres, posts, carried = [], [], []
    by_unit = [np.flatnonzero(target_units == a) for a in range(values.shape[0])]
    for a, b in zip(*np.nonzero(values), strict=True):
        targets = by_unit[a]
        if not len(targets):
            continue
        for sign_index, sign in ((0, 1.0), (1, -1.0)):
            base = sign_index * sources * neurons + b * neurons
            drawn = (np.broadcast_to(np.arange(neurons), (len(targets), neurons)) if full
                     else rng.integers(0, neurons, size=(len(targets), k)))
            pres.append((base + drawn).ravel())
            posts.append(np.repeat(targets, drawn.shape[1]))
            carried.append(np.full(drawn.size, sign * values[a, b] / drawn.shape[1]))
    if not pres:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    return np.concatenate(pres), np.concatenate(posts), np.concatenate(carried)
