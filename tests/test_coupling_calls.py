"""The dense coupling's step calls (``GenerativeMap.predict_call``, ``pull_back_call``,
``Nonlinearity.f_into``) give bitwise the numbers of the general functions they stand for.

The coupling binds these calls to Brian2's arrays once, at build, and runs them every step
(``circuits.coupling``); ``predict`` and ``pull_back`` are what F, the stability check and
analysis call. Each case here writes both into their own arrays, from the same inputs, after
the inputs have changed in place since the calls were bound (as Brian2's state does between
steps), and asks for equality, not closeness. Batched: 3 copies (NumPy's products) and 16
(the compiled lane loop's, ``circuits.lane_products``, where this machine runs it).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from lane_kernel import compiled_kernel

from circuits import lane_products
from circuits.generative import GenerativeMap
from circuits.nonlinearity import parse_nonlinearity

SHAPE = (7, 5)


def arrays(dtype, copies: int | None, rng):
    shape = (SHAPE[1],) if copies is None else (copies, SHAPE[1])
    below = (SHAPE[0],) if copies is None else (copies, SHAPE[0])
    return (np.zeros(shape, dtype), np.zeros(below, dtype), np.zeros(below, dtype),
            np.zeros(shape, dtype))


def count_lane_calls(monkeypatch) -> list | None:
    """The dtypes of the lane loop's calls from now on, where this machine runs it (None
    where it is rightly off, ``tests/lane_kernel.py``)."""
    module, seen = compiled_kernel(), []
    if module is None:
        return None

    class Counted:
        @staticmethod
        def products_float32(rows, matrix, out):
            seen.append(rows.dtype)
            module.products_float32(rows, matrix, out)

        @staticmethod
        def products_float64(rows, matrix, out):
            seen.append(rows.dtype)
            module.products_float64(rows, matrix, out)

    monkeypatch.setattr(lane_products, "kernel", lambda: (Counted, ""))
    return seen


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["tanh", "identity", "mu**2", "exp(mu)"])
@pytest.mark.parametrize("site", ["before", "after"])
@pytest.mark.parametrize(("form", "copies"), [("dense", None), ("sparse", None), ("rows", 3),
                                              ("rows", 16)])
def test_bound_calls_equal_predict_and_pull_back(monkeypatch, dtype, name, site, form, copies):
    rng = np.random.default_rng(3)
    f = parse_nonlinearity(name)
    weights = rng.normal(0.0, 0.5, SHAPE).astype(dtype)
    if form == "sparse":
        weights[rng.random(SHAPE) < 0.5] = 0.0
        weights = scipy.sparse.csr_matrix(weights)
    gmap = GenerativeMap(weights, f, site)
    mu, error_below, out, bottom_up = arrays(dtype, copies, rng)
    drive = np.zeros(out.shape, dtype)
    holds = site == "before" and not f.is_identity  # the belief units keep f(mu)
    activation = np.zeros(mu.shape, dtype) if holds else None
    transposed = weights.T.tocsr() if form == "sparse" else np.ascontiguousarray(weights.T)
    rows = form == "rows"
    seen = count_lane_calls(monkeypatch) if copies == 16 and form == "rows" else None
    calls = [f.f_into(mu, activation)] if holds else []
    calls += [gmap.predict_call(mu, out, drive, rows, activation),
              gmap.pull_back_call(mu, error_below, bottom_up, drive, transposed, rows,
                                  activation)]
    for _ in range(2):  # new values in the same arrays, as at every step
        mu[...] = rng.normal(0.0, 1.0, mu.shape)
        error_below[...] = rng.normal(0.0, 1.0, error_below.shape)
        if seen is not None:
            seen.clear()
        for call in calls:
            call()
        if seen is not None:  # the product of each bound call ran in the lane loop
            assert seen == [np.dtype(dtype)] * 2
        known = f.f(mu) if holds else None
        if holds:
            assert np.array_equal(activation, known)
        expected = gmap.predict(mu, out=np.zeros_like(out), drive=np.zeros_like(drive),
                                rows=rows, activation=known)
        assert np.array_equal(out, expected)
        kept = np.zeros_like(drive)  # pull_back reads W mu from predict (g = f(W mu))
        gmap.predict(mu, out=np.zeros_like(out), drive=kept, rows=rows, activation=known)
        expected = gmap.pull_back(mu, error_below, out=np.zeros_like(bottom_up), drive=kept,
                                  transposed=transposed, rows=rows, activation=known)
        assert np.array_equal(bottom_up, expected)


@pytest.mark.parametrize("name", ["tanh", "exp(mu)", "log(1 + exp(mu))", "mu**2", "tanh(2*mu)"])
def test_f_into_writes_f(name):
    f = parse_nonlinearity(name)
    mu = np.linspace(-3.0, 3.0, 101)
    out = np.zeros_like(mu)
    f.f_into(mu, out)()
    assert np.array_equal(out, f.f(mu))
