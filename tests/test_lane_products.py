"""The compiled lane products (circuits/lane_products.py) against sums computed apart from them:
long-double products of the same numbers within the rounding bound of an n-term sum, each
copy's numbers independent of the others', the shapes it refuses left to NumPy, and shapes
handed to the compiled calls directly refused with a ValueError. Tests of the loop itself take
the ``lane_kernel`` fixture (skipped where the loop is rightly off, ``tests/lane_kernel.py``);
the refusals run everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from circuits import lane_products
from circuits.generative import COLUMN_FORM_ROWS, _row_products


def within_rounding(got: np.ndarray, rows: np.ndarray, matrix: np.ndarray) -> None:
    """|got - X M'| <= gamma_n sum_k |x_k m_k| (+ one rounding of the result), the bound of
    any order of an n-term sum of products; X M' in long double."""
    exact = rows.astype(np.longdouble) @ matrix.T.astype(np.longdouble)
    magnitude = np.abs(rows).astype(np.longdouble) @ np.abs(matrix).T.astype(np.longdouble)
    unit = np.finfo(np.result_type(rows, matrix)).eps / 2
    n = rows.shape[1]
    bound = (n * unit / (1 - n * unit) + unit) * magnitude
    assert got.dtype == np.result_type(rows, matrix) and got.shape == exact.shape
    assert np.all(np.abs(got - exact) <= bound), np.max(np.abs(got - exact) - bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("m", "n"), [(1000, 500), (500, 100), (13, 1), (7, 3), (1, 1),
                                      (6, 501), (25, 17)])
def test_products_are_the_sums_within_rounding(lane_kernel, dtype, m, n):
    rng = np.random.default_rng(m * 1000 + n)
    lanes = lane_products.LANES[np.dtype(dtype)]
    for copies in (lanes, 2 * lanes, 3 * lanes):
        rows = rng.normal(size=(copies, n)).astype(dtype)
        matrix = rng.normal(size=(m, n)).astype(dtype)
        assert lane_products.fits(matrix, rows, None, COLUMN_FORM_ROWS)
        within_rounding(lane_products.products(matrix, rows), rows, matrix)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_copy_alone(lane_kernel, dtype):
    """A copy's products are the same bits wherever it sits among other copies, and a NaN in
    one copy stays in that copy."""
    rng = np.random.default_rng(3)
    lanes = lane_products.LANES[np.dtype(dtype)]
    matrix = rng.normal(size=(37, 29)).astype(dtype)
    rows = rng.normal(size=(2 * lanes, 29)).astype(dtype)
    found = lane_products.products(matrix, rows)
    order = rng.permutation(len(rows))
    moved = rows[order].copy()
    moved[0, 5] = np.nan
    again = lane_products.products(matrix, moved)
    assert np.array_equal(again[1:], found[order][1:])
    assert np.all(np.isnan(again[0]))


def test_written_in_place():
    rng = np.random.default_rng(4)
    matrix = rng.normal(size=(9, 4))
    rows = rng.normal(size=(16, 4))
    out = np.full((16, 9), np.nan)
    assert _row_products(matrix, rows, out) is out
    within_rounding(out, rows, matrix)


@pytest.mark.parametrize("case", ["copies", "too many", "view", "rows view", "dtypes",
                                  "integers", "out", "sparse"])
def test_what_it_refuses_runs_in_numpy(case):
    """Shapes and layouts the loop does not take: ``fits`` says no, and ``_row_products``
    still gives the products (BLAS's, or scipy.sparse's)."""
    rng = np.random.default_rng(5)
    matrix, rows, out = rng.normal(size=(11, 7)), rng.normal(size=(16, 7)), None
    if case == "copies":
        rows = rows[:12]  # not a multiple of 8 float64 copies
    elif case == "too many":
        rows = rng.normal(size=(COLUMN_FORM_ROWS, 7))
    elif case == "view":
        matrix = rng.normal(size=(7, 11)).T
    elif case == "rows view":
        rows = rng.normal(size=(7, 16)).T  # 16 float64 copies, in columns
    elif case == "dtypes":
        rows = rows.astype(np.float32)
    elif case == "integers":
        matrix, rows = (a.round().astype(np.int64) for a in (matrix, rows))
    elif case == "out":
        out = np.empty((11, 16)).T
    elif case == "sparse":
        matrix = scipy.sparse.csr_matrix(matrix)
    assert not lane_products.fits(matrix, rows, out, COLUMN_FORM_ROWS)
    dense = matrix.toarray() if scipy.sparse.issparse(matrix) else matrix
    got = _row_products(matrix, rows, out)
    if case == "integers":
        np.testing.assert_array_equal(got, rows @ dense.T)
    else:
        within_rounding(got, rows, dense)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["copies", "none", "columns", "out rows", "out columns",
                                  "no columns"])
def test_the_compiled_calls_refuse_shapes_they_do_not_take(lane_kernel, dtype, case):
    """``products`` and the compiled calls ``bound`` binds check their shapes (a caller that
    skips ``fits``): B not a multiple of the lanes, n not the matrix's, an ``out`` of another
    shape are one-line ValueErrors, and ``out`` is left as it was."""
    rng = np.random.default_rng(6)
    lanes = lane_products.LANES[np.dtype(dtype)]
    copies, m, n = 2 * lanes, 9, 5
    if case == "copies":
        copies += lanes // 2
    elif case == "none":
        copies = 0
    elif case == "no columns":
        n = 0
    rows = rng.normal(size=(copies, n)).astype(dtype)
    matrix = rng.normal(size=(m, n + (case == "columns"))).astype(dtype)
    out = np.full((copies + (case == "out rows"), m - (case == "out columns")), 7.0, dtype)
    kept = out.copy()
    with pytest.raises(ValueError, match=r"^lane products: rows \(.*\) products$"):
        lane_products.products(matrix, rows, out)
    function = (lane_kernel.products_float32 if dtype == np.float32
                else lane_kernel.products_float64)
    with pytest.raises(ValueError, match=r"^lane products: "):
        function(rows, matrix, out)
    assert np.array_equal(out, kept)


def test_products_without_the_loop_say_why(monkeypatch):
    monkeypatch.setattr(lane_products, "kernel", lambda: (None, "lane products not compiled"))
    with pytest.raises(RuntimeError, match=r"^lane products not compiled$"):
        lane_products.products(np.ones((3, 2)), np.ones((8, 2)))
