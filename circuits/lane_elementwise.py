r"""A batched run's elementwise work around its products, as compiled loops: f(mu) = tanh(mu)
in float32, the pull-back's slope (1 - f^2) and the sensory input's ramp.

At B = 16 copies of the peers' 1000-500-100 step (``sim.bench.peers``, float32) the four
products run in ``circuits.lane_products`` (~400 us); of the rest NumPy took, measured on one
core (AMD EPYC Zen 3, AVX2), ~26 us for tanh on 16 x 600 values (its own float32 tanh,
~2.7 ns a value), ~6 us for f' and its product (two temporaries)
and ~30-45 us for the input (``sim.families.hierarchical.inputs``: fraction * delta + base in
float64 over (16, 1000), cast into the float32 rows through NumPy's buffered casting).

- ``tanh_call``: tanh(mu) for float32 rows, 8 values a vector (AVX2 with FMA): Eigen's
  ``generic_fast_tanh_float`` (the rational p(x) / q(x) of degrees 13 and 6 on x clamped to
  +-7.99881172, x itself below |x| < 0.0004; the coefficients of XLA's ``EmitFastTanh``,
  whose clamp differs between versions). Not NumPy's numbers: within 5 ulp of the correctly
  rounded tanh (float64's, rounded) and of glibc's ``tanhf`` for every finite float32 (checked
  in C over every one >= 0; it is odd), where NumPy's own float32 tanh is within 1 (on every
  7th float32 in [0, 10]); tests/test_lane_elementwise.py checks the bound on a sample. Used
  on the batched path only (``Nonlinearity.f_into(rows=True)``): a batched float32 run then
  differs from the serial run by these ulps, within the float32 bound of tests/test_batch.py
  (1e-6); batch-1 runs keep NumPy's tanh. Elsewhere (no AVX2 with FMA) ``tanh_call`` is None
  and NumPy's tanh stays.
- ``slope_call``: out *= 1 - a * a (tanh's f' from its value, ``Nonlinearity.df_of_f``), float32
  or float64, in one pass and the same three roundings as NumPy's ``out * (1 - a**2)``: the same
  bits.
- ``affine_call``: rows = fraction * delta + base, computed in float64 (two roundings, as
  NumPy's two operations) and then rounded to the rows' float (float32 or float64): the same
  bits as ``Inputs.deliver``'s NumPy form.

The same bits because this extension is compiled without fast-math and without contracting
a * b + c into one fused multiply-add (``-fno-fast-math -ffp-contract=off`` after Brian2's
flags; the tanh's fused multiply-adds are written out, so its numbers are the same on every
CPU that runs it). Compiled once per Brian2 extension cache by ``circuits.extension``, as
``circuits.lane_products``; where that fails (no compiler), ``kernel`` says why and every call
here is None: NumPy's operations stay.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

import numpy as np

from circuits.extension import compile_extension

FLAGS = ("-fno-fast-math", "-ffp-contract=off")

_C = r"""
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LANE_TANH 1

/* Eigen's generic_fast_tanh_float (with FMA), 8 values: p(x) / q(x) on x clamped to +-c; x
   itself where |x| < 0.0004. max and min take x second, so a NaN stays NaN. */
static inline __m256 lane_tanh8(__m256 a) {
    const __m256 c = _mm256_set1_ps(7.99881172180175781f);
    const __m256 x = _mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), c),
                                   _mm256_min_ps(c, a));
    const __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(-2.76076847742355e-16f),
                               _mm256_set1_ps(2.00018790482477e-13f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-8.60467152213735e-11f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(5.12229709037114e-08f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(1.48572235717979e-05f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(6.37261928875436e-04f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(4.89352455891786e-03f));
    p = _mm256_mul_ps(x, p);
    __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(1.19825839466702e-06f),
                               _mm256_set1_ps(1.18534705686654e-04f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(2.26843463243900e-03f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(4.89352518554385e-03f));
    const __m256 magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a);
    const __m256 tiny = _mm256_cmp_ps(magnitude, _mm256_set1_ps(0.0004f), _CMP_LT_OQ);
    return _mm256_blendv_ps(_mm256_div_ps(p, q), a, tiny);
}

/* the last count % 8 values through the same vector (padded), so a value's tanh does not
   depend on where it sits */
static void lane_tanh_float(const float *x, float *out, long count) {
    long i = 0;
    for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(out + i, lane_tanh8(_mm256_loadu_ps(x + i)));
    if (i < count) {
        float in[8] = {0}, found[8];
        memcpy(in, x + i, (size_t)(count - i) * sizeof(float));
        _mm256_storeu_ps(found, lane_tanh8(_mm256_loadu_ps(in)));
        memcpy(out + i, found, (size_t)(count - i) * sizeof(float));
    }
}
#else
#define LANE_TANH 0
static void lane_tanh_float(const float *x, float *out, long count) {
    (void)x; (void)out; (void)count;
}
#endif

static int lane_tanh_available(void) { return LANE_TANH; }

/* NumPy's out * (1 - a**2): a * a, 1 - it, out times it, each rounded (no contraction) */
#define LANE_SLOPE(T)                                                                        \
static void lane_slope_##T(const T *a, T *out, long count) {                                  \
    for (long i = 0; i < count; i++) {                                                        \
        const T square = a[i] * a[i];                                                         \
        const T slope = (T)1 - square;                                                        \
        out[i] = out[i] * slope;                                                              \
    }                                                                                         \
}

/* NumPy's fraction * delta, + base in float64, then the rows' float */
#define LANE_AFFINE(T)                                                                       \
static void lane_affine_##T(const double *fraction, const double *delta, const double *base, \
                            T *out, long lanes, long n) {                                     \
    for (long c = 0; c < lanes; c++) {                                                        \
        const double f = fraction[c];                                                         \
        const double *d = delta + c * n, *b = base + c * n;                                   \
        T *o = out + c * n;                                                                   \
        for (long k = 0; k < n; k++) {                                                        \
            const double work = f * d[k];                                                     \
            o[k] = (T)(work + b[k]);                                                          \
        }                                                                                     \
    }                                                                                         \
}
"""

_SOURCE = f'''
# cython: language_level=3, boundscheck=False, wraparound=False
cdef extern from *:
    """
    {_C}
    LANE_SLOPE(float)
    LANE_SLOPE(double)
    LANE_AFFINE(float)
    LANE_AFFINE(double)
    """
    int lane_tanh_available()
    void lane_tanh_float(const float *x, float *out, long count) nogil
    void lane_slope_float(const float *a, float *out, long count) nogil
    void lane_slope_double(const double *a, double *out, long count) nogil
    void lane_affine_float(const double *fraction, const double *delta, const double *base,
                           float *out, long lanes, long n) nogil
    void lane_affine_double(const double *fraction, const double *delta, const double *base,
                            double *out, long lanes, long n) nogil

def tanh_available():
    return bool(lane_tanh_available())

cdef same(str what, Py_ssize_t rows, Py_ssize_t columns, Py_ssize_t other_rows,
          Py_ssize_t other_columns):
    if rows <= 0 or columns <= 0 or (rows, columns) != (other_rows, other_columns):
        raise ValueError(f"lane {{what}}: ({{rows}}, {{columns}}) and ({{other_rows}}, "
                         f"{{other_columns}}) must be one shape, not empty")

def tanh_float32(const float[:, ::1] x, float[:, ::1] out):
    if not lane_tanh_available():
        raise RuntimeError("lane tanh: not compiled for this CPU (AVX2 with FMA)")
    same("tanh", x.shape[0], x.shape[1], out.shape[0], out.shape[1])
    lane_tanh_float(&x[0, 0], &out[0, 0], x.shape[0] * x.shape[1])

def slope_float32(const float[:, ::1] a, float[:, ::1] out):
    same("slope", a.shape[0], a.shape[1], out.shape[0], out.shape[1])
    lane_slope_float(&a[0, 0], &out[0, 0], a.shape[0] * a.shape[1])

def slope_float64(const double[:, ::1] a, double[:, ::1] out):
    same("slope", a.shape[0], a.shape[1], out.shape[0], out.shape[1])
    lane_slope_double(&a[0, 0], &out[0, 0], a.shape[0] * a.shape[1])

cdef affine_shapes(const double[:, ::1] delta, const double[:, ::1] base,
                   Py_ssize_t out_rows, Py_ssize_t out_columns, const double[:, ::1] fraction):
    same("affine delta and base", delta.shape[0], delta.shape[1], base.shape[0], base.shape[1])
    same("affine delta and out", delta.shape[0], delta.shape[1], out_rows, out_columns)
    same("affine fraction", fraction.shape[0], fraction.shape[1], delta.shape[0], 1)

def affine_float32(const double[:, ::1] delta, const double[:, ::1] base, float[:, ::1] out,
                   const double[:, ::1] fraction):
    affine_shapes(delta, base, out.shape[0], out.shape[1], fraction)
    lane_affine_float(&fraction[0, 0], &delta[0, 0], &base[0, 0], &out[0, 0], out.shape[0],
                      out.shape[1])

def affine_float64(const double[:, ::1] delta, const double[:, ::1] base, double[:, ::1] out,
                   const double[:, ::1] fraction):
    affine_shapes(delta, base, out.shape[0], out.shape[1], fraction)
    lane_affine_double(&fraction[0, 0], &delta[0, 0], &base[0, 0], &out[0, 0], out.shape[0],
                       out.shape[1])
'''

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@cache
def kernel() -> tuple[object | None, str]:
    """(the compiled module, "") or (None, why not): built on first use, once per Brian2
    extension cache."""
    try:
        return compile_extension(_SOURCE, "pcsim_lane_elementwise", FLAGS), ""
    except Exception as error:  # no compiler, no Cython: NumPy's operations stay
        return None, f"lane elementwise loops not compiled ({type(error).__name__}: {error})"


def _rows(*arrays: np.ndarray, dtypes=_FLOATS) -> bool:
    """Non-empty (B, n) C-contiguous arrays of one shape, the first's dtype among ``dtypes``."""
    first = arrays[0]
    return (first.dtype in dtypes and first.ndim == 2 and first.size > 0
            and all(array.dtype == first.dtype and array.shape == first.shape
                    and array.flags.c_contiguous for array in arrays))


def tanh_call(mu: np.ndarray, out: np.ndarray) -> Callable[[], None] | None:
    """out = tanh(mu) (module doc: not NumPy's bits, within 5 ulp of the correctly rounded) as
    a call of no arguments, for float32 (B, n) rows; None where it does not apply or the
    vector loop is not compiled here."""
    module = kernel()[0]
    if (module is None or not _rows(mu, out, dtypes=(np.dtype(np.float32),))
            or not module.tanh_available()):
        return None
    return partial(module.tanh_float32, mu, out)


def slope_call(activation: np.ndarray, out: np.ndarray) -> Callable[[], None] | None:
    """out *= 1 - activation**2 (tanh's slope from its value), NumPy's bits, as a call of no
    arguments, for float32 or float64 (B, n) rows; None where it does not apply."""
    module = kernel()[0]
    if module is None or not _rows(activation, out):
        return None
    function = module.slope_float32 if out.dtype == np.float32 else module.slope_float64
    return partial(function, activation, out)


def affine_call(delta: np.ndarray, base: np.ndarray, out: np.ndarray
                ) -> Callable[[np.ndarray], None] | None:
    """A call of ``fraction`` (lanes, 1), float64: out = fraction * delta + base, NumPy's bits
    (in float64, then rounded to ``out``'s float); ``delta`` and ``base`` float64 (lanes, n),
    ``out`` float32 or float64 (lanes, n); None where they do not fit."""
    module = kernel()[0]
    if (module is None or not _rows(delta, base, dtypes=(np.dtype(np.float64),))
            or not _rows(out) or out.shape != delta.shape):
        return None
    function = module.affine_float32 if out.dtype == np.float32 else module.affine_float64
    return partial(function, delta, base, out)
