r"""Dense coupling on the compiled device: each product of a step one BLAS call from C++, or
(instantaneous errors) both products one pass over W.

On the runtime device the ``dense`` build of ``circuits.coupling`` runs g_l(mu_l) = W_l f(mu_l)
and J_l' eps_{l-1} = f'(mu_l) * (W_l' eps_{l-1}) as NumPy products (``cblas_?gemv`` of the
OpenBLAS NumPy links) on Brian2's state arrays. The compiled device has no Python during a
run; there the ``synapses`` build loops over every weight twice a step, ~10x slower than BLAS
for dense weights. This build keeps the products in BLAS:

- ``coupling_weights_<l>``: a helper population of n_{l-1} x n_l units holding W_l row-major
  (``weight``) and W_l' row-major (``weight_transposed``), written by Brian2 as data files
  (new weights compile nothing; the sizes are in the code).
- ``coupling_blas``: a one-unit population whose two code objects call one C++ function each,
  at the runtime's slots (``circuits.schedule``): at ``DELIVER_TO_ERRORS``, for every level,
  ``signal_l = mu_l`` and ``prediction_{l-1} = W_l a_l`` (one ``gemv``); at
  ``DELIVER_TO_BELIEFS``, ``own_error_l = eps_l`` and ``bottom_up_l = W_l' eps_{l-1}`` (one
  ``gemv`` on the transposed copy, the runtime's operand). The functions read the arrays by
  the names Brian2's standalone device gives them (``device.get_array_name``), so no name is
  guessed.
- f and f' are Brian2 code on the belief units, as in the ``synapses`` build:
  ``activation = f(mu)`` just before ``DELIVER_TO_ERRORS`` (a_l = f(mu_l); a_l = mu_l for the
  identity) and ``bottom_up *= f'(mu)`` just after ``DELIVER_TO_BELIEFS``.

The library is the OpenBLAS NumPy itself loaded (found in this process's memory map,
``circuits.blas``, its ``cblas_?gemv`` symbol probed with ctypes: NumPy's wheels rename it
``scipy_cblas_dgemv64_``, 64-bit integers), linked by file name with its directory as the
program's run path, and held to one thread by the program's environment
(``OPENBLAS_NUM_THREADS``, ``sim.compiled.device``). ``blas_library`` returns None where no
such library is found; the compiled device then keeps the ``synapses`` build (the result's
``compiled_coupling`` attribute says why). Supported: g = W f(mu) (``site = "before"``) with
fixed dense weights, one copy, a map of ``MIN_WEIGHTS`` weights or more (``unsupported`` says
why not).

**Instantaneous errors: one pass over W a step** (``fused``, no BLAS). There eps_{l-1} =
Pi (s - W_l a_l) is known row by row as soon as that row's product is, so the ``gemv`` pair
becomes one loop over W_l's rows at ``DELIVER_TO_ERRORS``: for each block of four rows j, their
predictions p_j = W_j . a (written to ``prediction``), their errors eps_j (written to
``error``), and bottom_up += eps_j W_j while those rows are still in the L1 cache. At batch 1
the products are memory-bound (1000 x 500 float64 is 4 MB, out of L2), and this reads W once a
step instead of W and its transposed copy (measured in the peers' case, one core: 76 against
102 us a float64 step; docs/performance.md). The error is the error units' own update
(``circuits.error.INSTANTANEOUS_UPDATE``) rendered into C++ by Brian2's renderer, not a second
spelling; the error units still run that update at ``ERRORS``, on the same numbers, so what
they hold is theirs. Only the summation order of W' eps differs from the runtime's ``gemv``
(last bits, within the compiled device's 1e-12). The same numbers only where nothing the
update reads moves between ``DELIVER_TO_ERRORS`` and ``ERRORS``: a lower level's own
differential equation on one of them (learned precision's dPi/dt, whose state updater runs at
``ERRORS`` before the update) gives the runtime's eps Pi(t + dt), a pass over W Pi(t); such
runs keep the ``gemv`` pair (``dense_build`` says why). Nothing else moves them there (the
other work in the window: the recorder, the readouts and top-down precision's drive read
them; plasticity and the weight constraint change W, refused by ``unsupported``; the
covariance's interneurons need relaxing errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from circuits import schedule
from circuits.blas import VARIANTS, opened_openblas
from circuits.coupling import Coupling, activation_runners, keeps_activation
from circuits.error import INSTANTANEOUS_UPDATE
from circuits.generative import GenerativeMap, dense

ROW_MAJOR, NO_TRANSPOSE = 101, 111  # CBLAS's enum values
# Why a threshold: with this build perception/hierarchy's free energy at sample 139 is 2.8e-12
# from the runtime's, past issue 23's 1e-12 for every dataset, while its states agree to the
# last bits. F there sums terms of a near-singular Laplace Hessian (cond(H) ~ 6e5,
# sim/families/hierarchical/free_energy_samples.py), which magnify a last-bit difference of the
# states to ~4e-12; the synapses build's last bits happen to keep it at 9.9e-13. So maps under
# this many weights (all the bundled scenarios': largest 64 x 24) keep the synapses build,
# whose results were checked (tests/test_compiled_runs.py); larger ones, which no bundled
# scenario has, get BLAS. Not for speed: at 64 x 16 BLAS's loop is faster too
# (docs/performance.md, "the compiled route").
MIN_WEIGHTS = 4096
STEP_GROUP = "coupling_blas"


@dataclass(frozen=True)
class BlasLibrary:
    """A shared BLAS library the compiled program links: its file, symbol names and integer
    type (``int64_t`` for ILP64 builds)."""

    path: Path
    prefix: str
    suffix: str
    integer: str

    def symbol(self, name: str) -> str:
        return f"{self.prefix}{name}{self.suffix}"


@cache
def blas_library() -> BlasLibrary | None:
    """The OpenBLAS library NumPy has loaded into this process, or None (not Linux, another
    BLAS, or no CBLAS ``gemv`` found in it)."""
    for path, handle in opened_openblas():
        for prefix, suffix, integer in VARIANTS:
            library = BlasLibrary(Path(path), prefix, suffix, integer)
            if all(hasattr(handle, library.symbol(name))
                   for name in ("cblas_dgemv", "cblas_sgemv")):
                return library
    return None


def unsupported(maps: Sequence[GenerativeMap], weights_change: bool,
                fused: bool = False) -> str | None:
    """Why these maps cannot use this build (then the ``synapses`` build runs), or None;
    ``fused``: the errors are instantaneous (one pass over W, no BLAS needed)."""
    if weights_change:
        return "the weights learn"
    if any(gmap.site != "before" or gmap.is_sparse for gmap in maps):
        return "only dense g = W f(mu)"
    if max((gmap.shape[0] * gmap.shape[1] for gmap in maps), default=0) < MIN_WEIGHTS:
        return f"maps under {MIN_WEIGHTS} weights keep the synapses"
    if not fused and blas_library() is None:
        return "no OpenBLAS library loaded by NumPy"
    return None


def dense_build(errors: Sequence) -> str:
    """The build these error units allow, as the result's ``compiled_coupling`` notes it
    (where ``unsupported`` says nothing against it): ``fused`` for instantaneous errors
    (``error`` a parameter set by ``INSTANTANEOUS_UPDATE``, not a differential equation),
    ``blas`` for relaxing ones, and ``blas: <why not fused>`` for instantaneous errors whose
    update reads a variable that moves between the pass over W (``DELIVER_TO_ERRORS``) and the
    runtime's errors (``ERRORS``): a lower level's own differential equation (learned
    precision, ``circuits.precision_learned``: the state updater runs at ``ERRORS`` before
    the update, so the runtime's eps uses Pi(t + dt), a pass over W Pi(t))."""
    if any("error" in group.equations.diff_eq_names for group in errors):
        return "blas"
    for group in errors[:-1]:  # the top's errors are not computed in a pass over W
        moved = sorted(set(below_variables(group)) & set(group.equations.diff_eq_names))
        if moved:
            return (f"blas: {group.name}'s {', '.join(moved)} move(s) at ERRORS, after a "
                    "pass over W would read them")
    return "fused"


def blas_coupling(maps: Sequence[GenerativeMap], beliefs: Sequence, errors: Sequence,
                  clock, fused: bool) -> Coupling:
    """Couple the compiled belief groups 1..L (``beliefs[l-1]``) with error groups 0..L by
    BLAS calls, or by one pass over W (``fused``: ``dense_build`` allows it; module doc).
    Built while Brian2's device is ``cpp_standalone``."""
    from brian2 import NeuronGroup, device

    library = None if fused else blas_library()
    assert fused or library is not None, "blas_coupling without a BLAS library (unsupported)"
    dtype = np.dtype(beliefs[0].variables["belief"].dtype)
    kind, real = ("d", "double") if dtype == np.float64 else ("s", "float")
    objects: list = []
    to_errors, to_beliefs, holders = [], [], []
    signals, kernels = [], []

    def array(group, variable: str) -> str:
        return f"brian::{device.get_array_name(group.variables[variable])}"

    for index, (gmap, belief) in enumerate(zip(maps, beliefs, strict=True)):
        here, below = errors[index + 1], errors[index]
        rows, columns = gmap.shape
        weights = dense(gmap.weights)  # Brian2 copies it into its own arrays (and dtype)
        holder = NeuronGroup(rows * columns, "weight : 1" + (
            "" if fused else "\nweight_transposed : 1"), clock=clock,
            name=f"coupling_weights_{index + 1}")
        holder.weight = weights.ravel()
        if not fused:
            holder.weight_transposed = np.ascontiguousarray(weights.T).ravel()
        holders.append(holder)
        if keeps_activation(gmap):
            objects += activation_runners(gmap, belief, clock)
            active = array(belief, "activation")
        elif gmap.nonlinearity.is_identity:
            active = array(belief, "belief")
        else:  # unreachable: site "before" with a nonlinearity keeps its activation
            raise ValueError("a nonlinear g = W f(mu) without the belief units' activation")
        if fused:
            signals.append(_copy(array(belief, "belief"), array(here, "signal"), columns))
            kernels.append(_fused_level(
                index, real, rows, columns, array(holder, "weight"), active,
                array(belief, "bottom_up"),
                {name: array(below, name) for name in below_variables(below)}))
            to_beliefs.append(_copy(array(here, "error"), array(belief, "own_error"), columns))
            continue
        gemv = library.symbol(f"cblas_{kind}gemv")
        to_errors += [
            _copy(array(belief, "belief"), array(here, "signal"), columns),
            f"{gemv}({ROW_MAJOR}, {NO_TRANSPOSE}, {rows}, {columns}, 1, "
            f"{array(holder, 'weight')}, {columns}, {active}, 1, 0, "
            f"{array(below, 'prediction')}, 1);"]
        to_beliefs += [
            _copy(array(here, "error"), array(belief, "own_error"), columns),
            f"{gemv}({ROW_MAJOR}, {NO_TRANSPOSE}, {columns}, {rows}, 1, "
            f"{array(holder, 'weight_transposed')}, {rows}, {array(below, 'error')}, 1, 0, "
            f"{array(belief, 'bottom_up')}, 1);"]
    step = NeuronGroup(1, "calls : 1", clock=clock, name=STEP_GROUP)
    if fused:  # every signal first: level l's kernel reads mu_{l-1}
        to_errors = signals + [f"pcsim_fused_{index}();" for index in range(len(kernels))]
    step.namespace.update(_functions(library, real, kind, to_errors, to_beliefs,
                                     "".join(kernels)))
    objects += [
        step.run_regularly("calls = pcsim_blas_to_errors(t)", when=schedule.SLOT,
                           order=schedule.DELIVER_TO_ERRORS, name=f"{STEP_GROUP}_to_errors"),
        step.run_regularly("calls = pcsim_blas_to_beliefs(t)", when=schedule.SLOT,
                           order=schedule.DELIVER_TO_BELIEFS, name=f"{STEP_GROUP}_to_beliefs")]
    given = [gmap.weights for gmap in maps]
    return Coupling("dense", [*holders, step, *objects],
                    [lambda matrix=matrix: dense(matrix) for matrix in given])


def _copy(source: str, target: str, size: int) -> str:
    return f"for (int k = 0; k < {size}; ++k) {target}[k] = {source}[k];"


# ``INSTANTANEOUS_UPDATE``'s two sides: the variable it writes and the expression
UPDATE_TARGET, UPDATE_EXPRESSION = (part.strip() for part in INSTANTANEOUS_UPDATE.split("=", 1))


def below_variables(below) -> list[str]:
    """The error units' variables that ``INSTANTANEOUS_UPDATE`` writes and reads."""
    from brian2.utils.stringtools import get_identifiers

    names = sorted({UPDATE_TARGET, *get_identifiers(UPDATE_EXPRESSION)})
    missing = [name for name in names if name not in below.variables]
    assert not missing, f"the error update reads {missing}, not variables of {below.name}"
    return names


def _fused_level(index: int, real: str, rows: int, columns: int, weight: str, active: str,
                 bottom_up: str, below: dict[str, str]) -> str:
    """C++ of one level's pass over W (module doc), ``pcsim_fused_<index>()``; ``below``:
    the error units' arrays by variable name (``prediction``: the row's fresh product)."""
    from brian2.parsing.rendering import CPPNodeRenderer

    bound = "".join(f"const {real} {name} = {array}[j]; " for name, array in below.items()
                    if name not in ("prediction", UPDATE_TARGET))
    return _FUSED.format(
        index=index, real=real, rows=rows, columns=columns, weight=weight, active=active,
        bottom_up=bottom_up, prediction=below["prediction"], target=below[UPDATE_TARGET],
        bound=bound, error=CPPNodeRenderer().render_expr(UPDATE_EXPRESSION))


# Four rows at a time: four dot products share each load of a, and bottom_up is loaded and
# stored once per four rows (the compiler vectorises both inner loops; -ffast-math lets it
# reorder the dot products' sums).
_FUSED = """
static inline {real} pcsim_error_{index}(const int j, const {real} prediction)
{{
    {bound}return {error};
}}
static void pcsim_fused_{index}()
{{
    const int rows = {rows}, columns = {columns};
    const {real}* __restrict__ W = {weight};
    const {real}* __restrict__ a = {active};
    {real}* __restrict__ sum = {bottom_up};
    {real}* __restrict__ predicted = {prediction};
    {real}* __restrict__ errors = {target};
    for (int c = 0; c < columns; ++c) sum[c] = 0;
    int j = 0;
    for (; j + 4 <= rows; j += 4) {{
        const {real}* w0 = W + (long)j * columns;
        const {real}* w1 = w0 + columns;
        const {real}* w2 = w1 + columns;
        const {real}* w3 = w2 + columns;
        {real} p0 = 0, p1 = 0, p2 = 0, p3 = 0;
        for (int c = 0; c < columns; ++c) {{
            p0 += w0[c] * a[c]; p1 += w1[c] * a[c]; p2 += w2[c] * a[c]; p3 += w3[c] * a[c];
        }}
        const {real} e0 = pcsim_error_{index}(j, p0), e1 = pcsim_error_{index}(j + 1, p1),
                     e2 = pcsim_error_{index}(j + 2, p2), e3 = pcsim_error_{index}(j + 3, p3);
        predicted[j] = p0; predicted[j + 1] = p1; predicted[j + 2] = p2; predicted[j + 3] = p3;
        errors[j] = e0; errors[j + 1] = e1; errors[j + 2] = e2; errors[j + 3] = e3;
        for (int c = 0; c < columns; ++c)
            sum[c] += e0 * w0[c] + e1 * w1[c] + e2 * w2[c] + e3 * w3[c];
    }}
    for (; j < rows; ++j) {{
        const {real}* w0 = W + (long)j * columns;
        {real} p0 = 0;
        for (int c = 0; c < columns; ++c) p0 += w0[c] * a[c];
        const {real} e0 = pcsim_error_{index}(j, p0);
        predicted[j] = p0;
        errors[j] = e0;
        for (int c = 0; c < columns; ++c) sum[c] += e0 * w0[c];
    }}
}}
"""


def _functions(library: BlasLibrary | None, real: str, kind: str, to_errors: list[str],
               to_beliefs: list[str], support: str = "") -> dict:
    """The two C++ functions of a step (``pcsim_blas_to_errors``, ``_to_beliefs``), after
    ``support`` (the fused kernels)."""
    from brian2 import Function, second

    if library is None:  # the fused build: no BLAS call
        declarations, link = support, {}
    else:
        integer = library.integer
        gemv = library.symbol(f"cblas_{kind}gemv")
        declarations = (
            f'extern "C" void {gemv}(int, int, {integer}, {integer}, {real}, const {real}*, '
            f"{integer}, const {real}*, {integer}, {real}, {real}*, {integer});\n" + support)
        directory = str(library.path.parent)
        link = {"libraries": [f":{library.path.name}"], "library_dirs": [directory],
                "runtime_library_dirs": [directory], "headers": ["<cstdint>"]}
    functions = {}
    for name, lines in (("pcsim_blas_to_errors", to_errors),
                        ("pcsim_blas_to_beliefs", to_beliefs)):
        body = "\n    ".join(lines)
        code = f"{declarations}double {name}(double t)\n{{\n    {body}\n    return 0.0;\n}}\n"
        function = Function(_python_stub(name), arg_units=[second], return_unit=1,
                            stateless=False)
        function.implementations.add_implementation("cpp", code, name=name,
                                                    compiler_kwds=link)
        functions[name] = function
    return functions


def _python_stub(name: str):
    def refuse(t):
        raise RuntimeError(f"{name} runs only in a compiled program")

    refuse.__name__ = name
    return refuse
