r"""A batched run's dense products with the copies as vector lanes: out(B, m) = X(B, n) @ M(m, n)'
in one compiled loop, faster than OpenBLAS at the batch sizes of ``sim.batch`` (B = 16).

At B = 16 the products of a step are thin (1000 x 500 by 500 x 16), where OpenBLAS's ``?gemm``
(packing its operands, blocked for large shapes) reaches ~65% of the core's peak. This loop
holds X' in a scratch buffer, (n, L) per group of L copies (L = two AVX2 vectors: 16 float32,
8 float64), and runs ``ROWS`` rows of M at a time against it: ``ROWS`` x 2 accumulator vectors,
two loads of X' and ``ROWS`` broadcasts of M a column, the register block of a BLAS kernel
without its packing (M is read in place, row by row). Each sum runs over n in order, one
copy per lane, so a copy's numbers do not depend on the others' (the last bits differ from
OpenBLAS's, whose order differs). Measured on one core (AMD EPYC Zen 3, AVX2; OpenBLAS 0.3.30,
Haswell kernels), the four products of the peers' 1000-500-100 step at B = 16, the NumPy path
of ``circuits.generative._row_products`` against this (best of 150 interleaved rounds):
float32 571 against 397 us (62 and 89 GFLOP/s; the core's FMA peak 103), float64 1,359
against 800 us (docs/performance.md).

Compiled once per Brian2 extension cache as a Cython extension by Brian2's extension manager
(cached in its directory, as Brian2's own code objects, with Brian2's compiler flags,
``-march=native`` among them); where that fails (no compiler), ``kernel`` says why and the
products stay NumPy's. It is used where it was measured (AVX2 with FMA, no AVX-512: ``kernel``
says so elsewhere). That gate is decided when it is compiled (the compiler's macros for the
CPU it compiles on), and the cache's key names no CPU: a cache shared between machines carries
the first machine's build, and its decision, to the others.
``fits`` says which products it takes: dense, C-contiguous float32 or float64, B a multiple of
L below ``circuits.generative.COLUMN_FORM_ROWS`` (larger batches run as row products in BLAS);
``bound`` is one of them as a call of no arguments, for the dense coupling's step.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

import numpy as np

from circuits.extension import compile_extension

ROWS = 6  # rows of M a block: 12 accumulators, 2 vectors of X', 1 broadcast (16 AVX2 registers)
LANES = {np.dtype(np.float32): 16, np.dtype(np.float64): 8}  # copies a group: 2 vectors each

_C = r"""
#include <stdlib.h>

/* built for what it was measured on: AVX2 with FMA, no AVX-512 (where OpenBLAS's kernels run
   vectors twice as wide, unmeasured) */
static int lane_products_measured(void) {
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
    return 1;
#else
    return 0;
#endif
}

/* xt: per group of L copies, (n, L); thread-local, grown as needed, 64-byte aligned */
#define LANE_PRODUCTS(T, W)                                                                  \
typedef T v_##T __attribute__((vector_size(32)));                                             \
static __thread T *scratch_##T = 0;                                                           \
static __thread size_t capacity_##T = 0;                                                      \
static int lane_products_##T(const T *x, const T *M, T *out, long copies, long m, long n) {  \
    const long L = 2 * W, groups = copies / L;                                                \
    size_t need = (size_t)(copies * n) * sizeof(T);                                           \
    if (need > capacity_##T) {                                                                \
        free(scratch_##T); capacity_##T = 0;                                                  \
        if (posix_memalign((void **)&scratch_##T, 64, need)) { scratch_##T = 0; return -1; }  \
        capacity_##T = need;                                                                  \
    }                                                                                         \
    T *xt = scratch_##T;                                                                      \
    const v_##T zero = {0};                                                                   \
    for (long g = 0; g < groups; g++)                                                         \
        for (long l = 0; l < L; l++)                                                          \
            for (long k = 0; k < n; k++)                                                      \
                xt[(g * n + k) * L + l] = x[(g * L + l) * n + k];                             \
    long j = 0;                                                                               \
    for (; j + ROWS <= m; j += ROWS) {                                                        \
        const T *w = M + j * n;                                                               \
        for (long g = 0; g < groups; g++) {                                                   \
            const T *a = xt + g * n * L;                                                      \
            v_##T acc[ROWS][2];                                                               \
            for (int r = 0; r < ROWS; r++) { acc[r][0] = zero; acc[r][1] = zero; }            \
            for (long k = 0; k < n; k++) {                                                    \
                v_##T a0 = *(const v_##T *)(a + k * L), a1 = *(const v_##T *)(a + k * L + W);\
                for (int r = 0; r < ROWS; r++) {                                              \
                    T s = w[r * n + k];                                                       \
                    acc[r][0] += s * a0; acc[r][1] += s * a1;                                 \
                }                                                                             \
            }                                                                                 \
            for (int r = 0; r < ROWS; r++)                                                    \
                for (int l = 0; l < W; l++) {                                                 \
                    out[(g * L + l) * m + j + r] = acc[r][0][l];                              \
                    out[(g * L + W + l) * m + j + r] = acc[r][1][l];                          \
                }                                                                             \
        }                                                                                     \
    }                                                                                         \
    for (; j < m; j++) {                                                                      \
        const T *w = M + j * n;                                                               \
        for (long g = 0; g < groups; g++) {                                                   \
            const T *a = xt + g * n * L;                                                      \
            v_##T a0 = *(const v_##T *)a * w[0], a1 = *(const v_##T *)(a + W) * w[0];        \
            for (long k = 1; k < n; k++) {                                                    \
                a0 += w[k] * *(const v_##T *)(a + k * L);                                     \
                a1 += w[k] * *(const v_##T *)(a + k * L + W);                                 \
            }                                                                                 \
            for (int l = 0; l < W; l++) {                                                     \
                out[(g * L + l) * m + j] = a0[l]; out[(g * L + W + l) * m + j] = a1[l];       \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    return 0;                                                                                 \
}
"""

# one accumulator starts as the first product in the remainder rows and as zero in the blocks:
# both are the same sum, in order over n
_SOURCE = f'''
# cython: language_level=3, boundscheck=False, wraparound=False
cdef extern from *:
    """
    #define ROWS {ROWS}
    {_C}
    LANE_PRODUCTS(float, 8)
    LANE_PRODUCTS(double, 4)
    """
    int lane_products_float(const float *x, const float *M, float *out, long copies, long m,
                            long n) nogil
    int lane_products_double(const double *x, const double *M, double *out, long copies,
                             long m, long n) nogil
    int lane_products_measured()

def measured():
    return bool(lane_products_measured())

cdef check(Py_ssize_t copies, Py_ssize_t lanes, Py_ssize_t n, Py_ssize_t m, Py_ssize_t n_m,
           Py_ssize_t out_rows, Py_ssize_t out_columns):
    if copies <= 0 or copies % lanes or n <= 0 or m <= 0 or n != n_m or (
            out_rows, out_columns) != (copies, m):
        raise ValueError(
            f"lane products: rows ({{copies}}, {{n}}) must be a positive multiple of {{lanes}} "
            f"copies of the matrix's ({{m}}, {{n_m}}) columns, out ({{out_rows}}, "
            f"{{out_columns}}) their ({{copies}}, {{m}}) products")

def products_float32(const float[:, ::1] rows, const float[:, ::1] matrix, float[:, ::1] out):
    check(rows.shape[0], {LANES[np.dtype(np.float32)]}, rows.shape[1], matrix.shape[0],
          matrix.shape[1], out.shape[0], out.shape[1])
    if lane_products_float(&rows[0, 0], &matrix[0, 0], &out[0, 0], rows.shape[0],
                           matrix.shape[0], matrix.shape[1]):
        raise MemoryError("lane products: no scratch buffer")

def products_float64(const double[:, ::1] rows, const double[:, ::1] matrix,
                     double[:, ::1] out):
    check(rows.shape[0], {LANES[np.dtype(np.float64)]}, rows.shape[1], matrix.shape[0],
          matrix.shape[1], out.shape[0], out.shape[1])
    if lane_products_double(&rows[0, 0], &matrix[0, 0], &out[0, 0], rows.shape[0],
                            matrix.shape[0], matrix.shape[1]):
        raise MemoryError("lane products: no scratch buffer")
'''


@cache
def kernel() -> tuple[object | None, str]:
    """(the compiled module, "") or (None, why not): built on first use, once per Brian2
    extension cache (whose key names no CPU: the AVX2 gate is the compiling machine's)."""
    try:
        module = compile_extension(_SOURCE, "pcsim_lane_products")
    except Exception as error:  # no compiler, no Cython: NumPy's products stay
        return None, f"lane products not compiled ({type(error).__name__}: {error})"
    if not module.measured():
        return None, "lane products not used: measured on AVX2 with FMA and no AVX-512 only"
    return module, ""


def fits(matrix: object, rows: np.ndarray, out: np.ndarray | None, most: int) -> bool:
    """Whether ``products`` takes matrix @ row for every row of ``rows``: a dense C-contiguous
    ``matrix`` of ``rows``' dtype (float32 or float64), ``out`` the same or None, and B (rows)
    a multiple of the dtype's ``LANES`` below ``most``."""
    lanes = LANES.get(rows.dtype)
    return (lanes is not None and isinstance(matrix, np.ndarray) and matrix.ndim == 2
            and rows.ndim == 2 and len(rows) % lanes == 0 and 0 < len(rows) < most
            and matrix.dtype == rows.dtype and matrix.shape[1] == rows.shape[1]
            and matrix.shape[0] > 0 and matrix.shape[1] > 0
            and matrix.flags.c_contiguous and rows.flags.c_contiguous
            and (out is None or (out.dtype == rows.dtype and out.flags.c_contiguous
                                 and out.shape == (len(rows), len(matrix))))
            and kernel()[0] is not None)


def bound(matrix: object, rows: np.ndarray, out: np.ndarray, most: int
          ) -> Callable[[], None] | None:
    """``products(matrix, rows, out)`` as a call of no arguments on these arrays (a dense
    coupling's step: they stay, the weights change only in place), or None where it does not
    ``fits``."""
    if not fits(matrix, rows, out, most):
        return None
    return partial(_compiled(rows.dtype), rows, matrix, out)


def products(matrix: np.ndarray, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """matrix @ row for every row of ``rows`` (B, n): (B, m), into ``out`` if given; only
    where ``fits`` (shapes it does not take are a ValueError, no compiled loop a
    RuntimeError)."""
    if out is None:
        out = np.empty((len(rows), len(matrix)), dtype=rows.dtype)
    _compiled(rows.dtype)(rows, matrix, out)
    return out


def _compiled(dtype: np.dtype) -> Callable[..., None]:
    """The compiled module's products function for ``dtype`` (float32, else float64); a
    RuntimeError where there is no compiled loop (``kernel`` says why)."""
    module, why = kernel()
    if module is None:
        raise RuntimeError(why)
    return module.products_float32 if dtype == np.float32 else module.products_float64
