"""A warm build of a program already built here: Brian2's code generation and ``device.build``
skipped, the program run as it is, with this run's data files.

A warm run of a shape (``sim.compiled.shape``) spends most of its build regenerating the same
text: Brian2's code generation in Python (``Network.run`` on the standalone device: ~33 ms CPU
for the small-model row's 64-16-4 hierarchy) and ``device.build`` writing the sources (~24 ms),
which ``sim.compiled.project`` then finds unchanged. Here a run skips both where its
``program_key`` is the one recorded (``KNOWN_FILE``) by the last build that generated and
compiled the program in that directory, and every file make looks at is as that make left
it (``warm.make_needed``). It then does only what the program reads or pcsim reads back:

- the data files (``static_arrays/``: values set from Python, TimedArray tables), written
  where their bytes changed (``warm.write_if_changed``); their names, types and sizes, which
  the program's code holds, must be those recorded, else the run builds as always;
- Brian2's bookkeeping of a run (``sim.compiled.stand_in.stand_in_for_run``: what 2.9's
  ``CPPStandaloneDevice.network_run`` does besides generating code), so that the monitors,
  the clocks and the final state are read from the program's results as after a build.

**What the key holds** (``program_key``): everything the generated sources are made from.
Every object of the network and its contained objects, sorted by name, each with all its
attributes (``describe``: equations, code strings, namespaces with their values (a value
compiled in as a literal is in the key), sizes, clocks and their dt, ``when``, ``order``,
monitors' indices, variables with their types, sizes and flags, functions with their C++
and compiler arguments), but for those that name it, log it, or hold nothing yet
(``IGNORED``); the device's state before the run (the main queue of ``main.cpp``, the
arrays and their names, the code objects made so far (synapses' connect) with their text,
inserted code, headers, compiler and linker arguments), but for the values of data files
(only their names, types and sizes) and what a run sets (``DEVICE_IGNORED``); Brian2's
default functions, every Brian2 preference, the run's start and duration, the network's
schedule (its own, else the preference's); the versions of
Brian2, NumPy, SymPy, Jinja2 and Python, the compiler (``$CXX``, ``$CC``); and the text of
``sim/compiled``'s modules, which change how Brian2 generates. A value of a type ``describe``
does not know, a subgroup (``SUBGROUPS``), or a run namespace of the caller's
(``Program.run(namespace=...)``), gives no key: that run builds as always.
``tests/test_compiled_known.py``
changes each kind of ingredient (a constant compiled in, a size, a preference, a clock, a
schedule) and sees a build, and sees a hit give the results of a build.

Brian2 2.9 only (``warm.CHECKED_BRIAN2``): ``stand_in_for_run`` follows its source.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
import types
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sim.compiled import warm

KNOWN_FILE = warm.KNOWN_FILE
# attributes of Brian2 objects that no generated source reads: where they were made (text
# for error messages), identities, the network that ran them, what a run adds, and views
# that name the object itself (described through ``variables``)
IGNORED = frozenset({
    "_creation_stack", "_full_creation_stack", "_id", "_network", "_scope_key",
    "_code_objects", "codeobj", "_dependencies", "_stored_states", "indices", "_indices",
    "_group_attribute_access_active", "_contained_objects", "_linked_variables"})
# the device's: values (data files), where and what a run wrote, timers, the writer
DEVICE_IGNORED = frozenset({
    "array_cache", "static_arrays", "static_array_specs", "timers", "project_dir",
    "results_dir", "writer", "has_been_run", "_last_run_time",
    "_last_run_completed_fraction", "run_args_arrays", "networks", "clocks", "synapses",
    "profiled_codeobjects", "code_object_class"})


# SUBGROUPS: a network with a Brian2 subgroup (``erp_total_subgroup``, learning/oddball's ERP
# sums) gets no key. A subgroup's name is made up by Brian2 and numbered while an earlier one
# is alive, and after a reused run in a process the earlier run's subgroups were still alive
# at the next run (not found why), whose sources then differed: it was built again and its
# 37 objects recompiled, and each process's first run recompiled them back.


class UnkeyableError(Exception):
    """A value ``describe`` does not know: the run builds as always."""


def program_key(network: Any, t_start_s: float, duration_s: float,
                objects: list | None = None) -> str | None:
    """The key of the program ``network.run(duration)`` would generate on the current
    (standalone) device (module docstring), or None where some part cannot be keyed or
    Brian2 is not the checked version. ``objects``: ``all_objects(network.objects)``, if
    known."""
    import brian2
    from brian2 import prefs
    from brian2.core.functions import DEFAULT_FUNCTIONS
    from brian2.devices.device import get_device

    if not brian2.__version__.startswith(warm.CHECKED_BRIAN2):
        return None
    device = get_device()  # the device itself: ``brian2.device`` is a proxy of it
    _memo.clear()
    try:
        described = {
            "objects": [_describe_object(obj) for obj
                        in objects or all_objects(network.objects)],
            "device": [[name, describe(value)] for name, value in sorted(vars(device).items())
                       if name not in DEVICE_IGNORED],
            "data": data_specs(device.static_arrays),
            "functions": [[name, describe(function)]
                          for name, function in sorted(DEFAULT_FUNCTIONS.items())],
            "prefs": sorted((name, repr(value)) for name, value in prefs.items()),
            "run": [repr(float(t_start_s)), repr(float(duration_s)), network.name,
                    describe(list(network.schedule))],  # main.cpp's order of the slots
            "software": _software(),
        }
    except UnkeyableError:
        return None
    finally:
        _memo.clear()
    return _digest(described)


# descriptions of variables and functions met before in one key (the same objects: a group's
# variables are also its synapses' and the device's arrays), by identity; cleared after it
_memo: dict[tuple[int, Any], tuple[Any, Any]] = {}


def all_objects(objects: list) -> list:
    """``objects`` (a network's) and those they contain, sorted by name."""
    found: dict[int, Any] = {}
    pending = list(objects)
    while pending:
        obj = pending.pop()
        if id(obj) not in found:
            found[id(obj)] = obj
            pending.extend(getattr(obj, "contained_objects", []))
    return sorted(found.values(), key=lambda obj: obj.name)


def _describe_object(obj: Any) -> list:
    return [_class(obj), [[name, describe(value, top=obj)] for name, value
                          in sorted(vars(obj).items()) if name not in IGNORED]]


def _class(obj: Any) -> str:
    return _class_name(type(obj))


@functools.cache
def _class_name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


@functools.cache
def _brian2_kinds() -> types.SimpleNamespace:
    from brian2.codegen.codeobject import CodeObject
    from brian2.core.base import BrianObject
    from brian2.core.clocks import Clock
    from brian2.core.functions import Function
    from brian2.core.names import Nameable
    from brian2.core.variables import Variable, Variables
    from brian2.devices.device import Device
    from brian2.groups.subgroup import Subgroup
    from brian2.units.fundamentalunits import Dimension, Quantity

    return types.SimpleNamespace(Subgroup=Subgroup,
        arrays=(Quantity, np.ndarray, np.generic), kinds=(Dimension, np.dtype, type),
        named=(BrianObject, Nameable), CodeObject=CodeObject, Clock=Clock, Function=Function,
        Variable=Variable, Variables=Variables, Device=Device)


def describe(value: Any, top: Any = None, depth: int = 0) -> Any:
    """``value`` as JSON-able data that differs wherever a generated source could
    (``UnkeyableError`` for a type it does not know); a Brian2 object inside another is named
    (it is described where it is one of the network's, or by what refers to it: variables,
    functions)."""
    if value is None or type(value) in _PLAIN:
        return value if type(value) is str else [type(value).__name__, value]
    if isinstance(value, float):
        return ["float", repr(value)]
    if depth > 12:
        raise UnkeyableError("nested too deep")
    brian2 = _brian2_kinds()
    deeper = functools.partial(describe, top=top, depth=depth + 1)
    if isinstance(value, bool | int | str):
        return [type(value).__name__, value]
    if isinstance(value, brian2.arrays):
        array = np.asarray(value)
        return ["array", str(array.dtype), list(array.shape), str(getattr(value, "dim", "")),
                hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()]
    if isinstance(value, list | tuple):
        return [type(value).__name__, [deeper(item) for item in value]]
    if isinstance(value, set | frozenset):
        return ["set", sorted((deeper(item) for item in value), key=_order)]
    if isinstance(value, dict):
        if all(type(key) is str for key in value):
            return ["dict", [[key, deeper(value[key])] for key in sorted(value)]]
        return ["dict", sorted(([deeper(key), deeper(item)] for key, item in value.items()),
                               key=_order)]
    if isinstance(value, brian2.kinds):
        return ["kind", str(value)]
    if isinstance(value, weakref.ProxyType):
        return ["name", value.name]
    if isinstance(value, brian2.Clock):
        return ["clock", value.name, repr(float(value.dt_))]
    if isinstance(value, brian2.Function | brian2.Variable):
        memo = (id(value), _owner_context(value, top) if isinstance(value, brian2.Function)
                else None)
        found = _memo.get(memo)
        if found is None:
            found = _memo[memo] = (value, _describe_function(value, top, deeper)
                                   if isinstance(value, brian2.Function)
                                   else _describe_variable(value, brian2.kinds, deeper))
        return found[1]
    if isinstance(value, brian2.Variables):
        return ["variables", deeper(value._variables), deeper(value.indices),
                value.default_index]
    if isinstance(value, brian2.Subgroup):
        raise UnkeyableError("a subgroup")  # below (SUBGROUPS)
    if isinstance(value, brian2.CodeObject):  # made before the run (a connect): its text
        code = dict(value.code) if isinstance(value.code, Mapping) else value.code
        return ["code object", value.name, value.template_name, _digest(deeper(code)),
                deeper(value.compiler_kwds)]
    if isinstance(value, brian2.named) and value is not top:
        return ["name", value.name]
    if isinstance(value, brian2.Device):
        return ["device", _class(value)]
    if isinstance(value, uuid.UUID):
        return ["uuid"]
    if isinstance(value, types.FunctionType | types.MethodType):
        return ["code", value.__qualname__, _code_text(getattr(value, "__code__", None)
                                                       or value.__func__.__code__)]
    if type(value).__module__.startswith(("sympy", "brian2.equations", "brian2.parsing")):
        return [_class(value), str(value)]  # equations, expressions: their text
    if hasattr(value, "__dict__") and type(value).__module__.startswith("brian2"):
        return [_class(value), [[name, deeper(item)] for name, item
                                in sorted(vars(value).items()) if name not in IGNORED]]
    raise UnkeyableError(type(value).__name__)


def _code_text(code: types.CodeType) -> str:
    """A Python function's code: its bytecode and constants (nested code by its own text, not
    by ``repr``, which holds an address)."""
    return code.co_code.hex() + repr([_code_text(const) if isinstance(const, types.CodeType)
                                      else const for const in code.co_consts])


def _describe_variable(variable: Any, kinds: tuple, deeper) -> str:
    """A Brian2 variable: its class, owner's name and every other attribute (name, dtype,
    dimensions, size, flags, a constant's value, a subexpression's text; ``repr`` where its
    text holds every digit), as a digest: a variable appears in its group, in objects that
    read it and in the device's arrays."""
    attributes = [(name, item) for name, item in sorted(vars(variable).items())
                  if name not in {"owner", "device"}]
    owner = getattr(variable.owner, "name", None)
    if all(type(item) in _EXACT_TEXT or isinstance(item, kinds) for _, item in attributes):
        return _digest([_class(variable), owner, attributes])
    return _digest([_class(variable), owner, [[name, deeper(item)] for name, item in attributes]])


_PLAIN = frozenset({str, int, bool})
_EXACT_TEXT = frozenset({str, int, bool, float, type(None)})  # repr gives every digit


def _order(described: Any) -> str:
    """A described item's place in a sorted set or dictionary: its text."""
    return described if type(described) is str else repr(described)


def _owner_context(function: Any, owner: Any) -> Any:
    """What of ``owner`` a function's C++ (``_describe_function``) depends on, so that each
    function is described once per key where its text is the same: nothing where neither
    its implementation nor its dependencies are made for an owner (``dynamic``); a
    TimedArray's is made from the owner's clock step alone (Brian2 2.9's ``cpp_impl``:
    ``owner.clock.dt_``); any other's from the owner itself."""
    found = _memo.get((id(function), "kind"))
    if found is None:
        found = _memo[(id(function), "kind")] = (function, _dynamic_kind(function))
    kind = found[1]
    if kind == "static":
        return None
    if kind == "clock" and owner is not None and getattr(owner, "clock", None) is not None:
        return ("clock", float(owner.clock.dt_))
    return ("owner", id(owner))


def _dynamic_kind(function: Any) -> str:
    """"static", "clock" (a TimedArray, none of its dependencies made for an owner) or
    "owner" (``_owner_context``)."""
    from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject
    from brian2.input.timedarray import TimedArray

    implementation = function.implementations.get(CPPStandaloneCodeObject)
    if implementation is None:
        return "static"
    kinds = {_dynamic_kind(dependency)
             for dependency in (implementation.dependencies or {}).values()}
    if implementation.dynamic:
        kinds.add("clock" if type(function) is TimedArray else "owner")
    return "owner" if "owner" in kinds else "clock" if "clock" in kinds else "static"


def _describe_function(function: Any, owner: Any, deeper) -> list:
    """A Brian2 function: its C++ implementation as generated for ``owner`` (its text, its
    compiler arguments, the names, types and shapes of its data; a TimedArray's values are
    data) and its dependencies."""
    from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject

    implementation = function.implementations.get(CPPStandaloneCodeObject)
    if implementation is None:
        return ["function", _class(function), getattr(function, "name", None), None]
    namespace = implementation.get_namespace(owner) or {}
    return ["function", _class(function), getattr(function, "name", None),
            implementation.name, _digest(deeper(implementation.get_code(owner))),
            deeper(implementation.compiler_kwds),
            [[name, str(np.asarray(item).dtype), list(np.shape(item))]
             for name, item in sorted(namespace.items())],
            [[name, _describe_function(dependency, owner, deeper)] for name, dependency
             in sorted((implementation.dependencies or {}).items())],
            deeper(getattr(function, "dt", None)), deeper(getattr(function, "values", None)
                                                          is not None and
                                                          np.shape(function.values))]


def _digest(described: Any) -> str:
    """A long description (a function's C++ text) as its SHA-256: the key's text stays short."""
    return hashlib.sha256(repr(described).encode()).hexdigest()


@functools.cache
def _software() -> list:
    """The versions that generate and compile the code, and the text of ``sim/compiled``."""
    import brian2
    import jinja2
    import sympy

    here = Path(__file__).resolve().parent
    sources = hashlib.sha256()
    for path in sorted(here.glob("*.py")):
        sources.update(path.name.encode() + path.read_bytes())
    return [brian2.__version__, np.__version__, sympy.__version__, jinja2.__version__,
            sys.version, platform.machine(), os.environ.get("CXX", ""),
            os.environ.get("CC", ""), sources.hexdigest()]


def data_specs(arrays: dict[str, np.ndarray]) -> list[list]:
    """The data files' names, types and sizes (what the program's code holds of them)."""
    return [[name, str(values.dtype), int(values.size)] for name, values
            in sorted(arrays.items())]


def data_files(device: Any, objects: list) -> dict[str, np.ndarray]:
    """The data files a build would write (``write_static_arrays``): the arrays set from
    Python, and the data of each function the network's ``objects`` (``all_objects``) name
    (their namespaces) and of Brian2's default functions, as each object sees them."""
    from brian2.core.functions import DEFAULT_FUNCTIONS, Function
    from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject

    def with_data(function: Any) -> bool:
        implementation = function.implementations.get(CPPStandaloneCodeObject)
        return implementation is not None and (implementation._namespace is not None
                                               or bool(implementation.dependencies))

    defaults = [function for function in DEFAULT_FUNCTIONS.values() if with_data(function)]
    found = dict(device.static_arrays)
    for obj in objects:
        for value in [*getattr(obj, "namespace", {}).values(), *defaults]:
            if isinstance(value, Function):
                device._insert_func_namespace(value, types.SimpleNamespace(owner=obj), found)
    return found


def recorded(directory: Path) -> dict | None:
    try:
        found = json.loads((directory / KNOWN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def known_data(directory: Path, key: str | None, command: list[str],
               data: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray] | None:
    """The data files (``data()``, computed only where the recorded key is ``key``) if the
    program in ``directory`` is the one ``key`` names, compiled, and untouched since (module
    docstring), and reads data files of their names, types and sizes; else None."""
    record = recorded(directory) if key is not None else None
    if record is None or record.get("key") != key:
        return None
    files = data()
    if (record.get("data") != data_specs(files) or not (directory / "main").is_file()
            or warm.make_needed(directory, command)):
        return None
    return files


def remember(directory: Path, key: str | None, data: dict[str, np.ndarray]) -> None:
    """After a build that generated, wrote and compiled the program ``key`` names, with
    data files ``data`` (``device.static_arrays`` after the build)."""
    if key is not None:
        warm.write_record(directory / KNOWN_FILE, {"key": key, "data": data_specs(data)})


def forget(directory: Path) -> None:
    """Before a build writes the project: a build stopped half-way leaves no key behind."""
    (directory / KNOWN_FILE).unlink(missing_ok=True)
