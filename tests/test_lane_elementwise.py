"""The compiled elementwise loops of a batched run (circuits/lane_elementwise.py) against
computations apart from them: the float32 tanh within its stated 5 ulp of libm's ``tanhf`` and
of the correctly rounded tanh (NumPy's float64 tanh, rounded), odd, NaN kept, a value's result
wherever it sits; the slope and the input's ramp the same bits as NumPy's operations; odd
shapes; what they refuse; and a batched run through the engine calls them where a serial run
does not, equal to the serial run (float32 within the batched runs' bound, 1e-6)."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import shutil

import h5py
import numpy as np
import pytest

from circuits import lane_elementwise
from circuits.nonlinearity import parse_nonlinearity

ULPS = 5  # the tanh's stated bound (the module doc: checked over every float32 >= 0)
SHAPES = [(1, 1), (1, 7), (3, 9), (16, 600), (2, 1001), (5, 8)]


@pytest.fixture(scope="module")
def module() -> object:
    """The compiled module; skipped where nothing compiles here (no compiler), failed where
    a Linux x86-64 machine with gcc does not build it."""
    compiled, why = lane_elementwise.kernel()
    if compiled is None:
        if platform.system() == "Linux" and shutil.which("gcc"):
            pytest.fail(why)
        pytest.skip(why)
    return compiled


@pytest.fixture(scope="module")
def tanh_module(module) -> object:
    """The module, where its vector tanh is compiled (AVX2 with FMA: /proc/cpuinfo says)."""
    flags = set()
    if platform.system() == "Linux":
        with open("/proc/cpuinfo") as info:
            flags = next((set(line.partition(":")[2].split()) for line in info
                          if line.startswith("flags")), set())
    if not {"avx2", "fma"} <= flags:
        pytest.skip("the lane tanh is for CPUs with AVX2 and FMA")
    assert module.tanh_available()
    return module


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in float32 steps (signed values on one integer line)."""
    def line(x):
        bits = np.asarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
    return np.abs(line(a) - line(b))


def lane_tanh(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(1, -1)
    out = np.empty_like(x)
    call = lane_elementwise.tanh_call(x, out)
    assert call is not None
    call()
    return out.ravel()


def test_tanh_within_its_bound_of_libm_and_the_correctly_rounded(tanh_module):
    bits = np.arange(0, 0x41300000, 4099, dtype=np.uint32)  # 0 .. 11, every 4099th float
    x = np.concatenate([bits.view(np.float32), [4e-4, np.nextafter(4e-4, 0, dtype=np.float32),
                                                3.73728919, 7.99881172, 8.0, 9.1, 100.0,
                                                3e38, 1e-45]]).astype(np.float32)
    x = np.concatenate([x, -x])
    found = lane_tanh(x)
    rounded = np.tanh(x.astype(np.float64)).astype(np.float32)
    assert ulps(found, rounded).max() <= ULPS
    assert ulps(found, rounded).max() >= 1  # not NumPy's float64 tanh by another way
    libm = ctypes.util.find_library("m")
    if libm is None:
        pytest.skip("no libm to compare with")
    tanhf = ctypes.CDLL(libm).tanhf
    tanhf.restype, tanhf.argtypes = ctypes.c_float, [ctypes.c_float]
    some = x[::37]
    expected = np.array([tanhf(float(value)) for value in some], dtype=np.float32)
    assert ulps(found[::37], expected).max() <= ULPS


def test_tanh_is_odd_keeps_nan_and_saturates(tanh_module):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(999) * 3).astype(np.float32)
    assert np.array_equal(lane_tanh(-x), -lane_tanh(x))
    special = lane_tanh(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30], np.float32))
    assert np.isnan(special[0])
    assert ulps(special[1:3], [1.0, -1.0]).max() <= ULPS and abs(special[1]) <= 1.0
    assert np.array_equal(special[3:].view(np.int32),
                          np.array([0.0, -0.0, 1e-30], np.float32).view(np.int32))


@pytest.mark.parametrize("shape", SHAPES)
def test_tanh_of_a_value_wherever_it_sits(tanh_module, shape):
    """Rows of any length (the last values of a row through a padded vector): each value's
    tanh is the one it gets among others, in every bit."""
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    out = np.full(shape, np.nan, np.float32)
    lane_elementwise.tanh_call(x, out)()
    shuffled = rng.permutation(x.size)
    again = lane_tanh(np.concatenate([x.ravel()[shuffled], x.ravel()]))
    assert np.array_equal(again[:x.size], out.ravel()[shuffled])
    assert np.array_equal(again[x.size:], out.ravel())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_slope_is_numpys_bits(module, dtype, shape):
    """out *= 1 - a**2 as the coupling's NumPy path computes it (tanh's ``df_of_f``)."""
    rng = np.random.default_rng(7)
    activation = np.tanh(rng.standard_normal(shape) * 2).astype(dtype)
    out = rng.standard_normal(shape).astype(dtype)
    expected = np.multiply(out, parse_nonlinearity("tanh").df_of_f(activation))
    lane_elementwise.slope_call(activation, out)()
    assert out.dtype == expected.dtype == dtype
    assert np.array_equal(out.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_ramp_is_numpys_bits(module, dtype, shape):
    """rows = fraction * delta + base, as ``Inputs.deliver``'s two NumPy operations (float64,
    then the rows' float): no fused multiply-add, no other rounding."""
    rng = np.random.default_rng(11)
    delta, base = rng.standard_normal(shape) * 3, rng.standard_normal(shape)
    out = np.empty(shape, dtype)
    call = lane_elementwise.affine_call(delta, base, out)
    for fraction in (rng.random((shape[0], 1)), np.zeros((shape[0], 1)),
                     np.ones((shape[0], 1)), np.full((shape[0], 1), 1 / 3)):
        expected = np.empty(shape, dtype)
        np.add(np.multiply(fraction, delta), base, out=expected)
        call(fraction)
        assert np.array_equal(out.view(np.uint8), expected.view(np.uint8))


def test_what_they_refuse(module):
    """Arrays they do not take: the calls are None (NumPy's operations stay); shapes handed
    to the compiled functions directly: a ValueError."""
    x32 = np.ones((4, 6), np.float32)
    assert lane_elementwise.tanh_call(x32.astype(np.float64), np.ones((4, 6))) is None
    assert lane_elementwise.tanh_call(x32, np.ones((4, 6), np.float64)) is None
    assert lane_elementwise.tanh_call(x32[:, ::2], np.ones((4, 3), np.float32)) is None
    assert lane_elementwise.tanh_call(x32.ravel(), x32.ravel()) is None  # rows only
    assert lane_elementwise.tanh_call(x32[:0], x32[:0]) is None
    assert lane_elementwise.slope_call(x32, np.ones((4, 5), np.float32)) is None
    assert lane_elementwise.slope_call(x32.astype(np.int32), x32.astype(np.int32)) is None
    delta = np.ones((4, 6))
    assert lane_elementwise.affine_call(delta, delta, np.ones((4, 5), np.float32)) is None
    assert lane_elementwise.affine_call(delta.astype(np.float32), delta, x32) is None
    assert lane_elementwise.affine_call(delta, np.asfortranarray(delta), x32) is None
    with pytest.raises(ValueError, match="lane slope"):
        module.slope_float32(x32, np.ones((4, 5), np.float32))
    with pytest.raises(ValueError, match="lane affine fraction"):
        module.affine_float32(delta, delta, x32, np.ones((3, 1)))
    with pytest.raises(ValueError, match="lane affine delta and out"):
        module.affine_float64(delta, delta, np.ones((4, 7)), np.ones((4, 1)))


@pytest.mark.parametrize("float_type", ["float32", "float64"])
def test_a_batched_run_calls_them_and_equals_the_serial_run(tmp_path, monkeypatch, module,
                                                            float_type):
    """The peers' case (a ramp input recomputed every step, g = W tanh(mu), instantaneous
    errors) at 60-30-10 for 200 steps: 16 identical trials batched call the loops (tanh in
    float32 only, where it is compiled) and end where the serial trial ends (float32 within
    1e-6, each in its own tanh; float64 to 1e-10); the serial run calls none of them."""
    import sim
    from sim.bench.peers import peer_table
    from sim.scenario_writer import write_scenario

    seen: list[str] = []

    class Counted:  # the compiled module, its calls counted
        def __getattr__(self, name):
            function = getattr(module, name)
            if name.endswith(("32", "64")):
                def counted(*args):
                    seen.append(name)
                    return function(*args)
                return counted
            return function

    monkeypatch.setattr(lane_elementwise, "kernel", lambda: (Counted(), ""))
    sizes = [60, 30, 10]
    serial = write_scenario(tmp_path / "serial.toml", peer_table(200, float_type, sizes))
    batched = write_scenario(tmp_path / "batched.toml",
                             peer_table(200, float_type, sizes, batch=16))
    sim.run(serial, tmp_path / "serial.h5")
    assert not seen
    sim.run(batched, tmp_path / "batched.h5")
    expected = {"slope_" + float_type, "affine_" + float_type}
    if float_type == "float32" and module.tanh_available():
        expected.add("tanh_float32")
    assert set(seen) == expected
    tolerance = 1e-6 if float_type == "float32" else 1e-10
    with h5py.File(tmp_path / "serial.h5") as one, h5py.File(tmp_path / "batched.h5") as many:
        for name in ("final_belief/level1", "final_belief/level2"):
            alone = np.asarray(one[f"trials/{name}"][0], dtype=float)
            copies = np.asarray(many[f"trials/{name}"], dtype=float)
            assert copies.shape == (16, len(alone))
            assert np.max(np.abs(copies - alone)) <= tolerance
            assert np.max(np.abs(alone)) > 0.01  # the beliefs moved
