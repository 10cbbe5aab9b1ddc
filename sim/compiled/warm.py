"""What a warm build of a program shape (``sim.compiled.shape``) need not do again.

A shape's sources are the same from run to run (every value is a data file,
``sim.compiled.values``), so a warm build's work is Brian2's code generation in Python, writing
the data files, and make finding nothing to do. Much of it repeats work whose result is already
on disk or in memory; each such part is cut here without deciding anything Brian2 or make
would decide differently:

- **Data files written only where they changed** (``keep_unchanged_data``): Brian2 rewrites
  every file of ``static_arrays/`` at every build (2-7 MB for the bundled scenarios; 0.02-0.3 s
  on this machine's disk, by load). Each is now compared with the file there (one read) and
  written only if its bytes differ; the program reads the same bytes either way.
- **make only where a file it looks at changed** (``make_needed`` / ``made``): make decides
  from the modification times of the files in the build directory (sources, headers,
  ``makefile``, ``make.deps``, objects, ``main``); after a make that succeeded, their times and
  sizes and make's command line are kept in ``MADE_FILE``; a later build where all are the same
  would find nothing to do, so make is not started (0.04-0.07 s: a fork of this process and
  make reading its makefile and dependencies).
- **Brian2's cache keys built faster** (``faster_cache_keys``): Brian2 caches parsing and code
  generation in memory (``brian2.utils.caching.cached``), keyed by ``_hashable`` of the
  arguments: whole dictionaries of variables, each variable through its ``_state_tuple``; on a
  warm run of attention/posner that is ~950 keys, 0.12 s of the run on this loaded machine.
  ``_hashable`` is replaced by one that gives the same key for every argument (the same
  values, so the same hits and misses), with the common types (str, int, float, bool, None,
  tuple, list, dict) dispatched on their exact type first; half the time.
- **Generated code reused within a process** (``reuse_generated_code``): a code object's C++
  (Brian2's ``Device.code_object``: translating its abstract code, rendering its template) is a
  function of what it is given; where all of that is as in an earlier generation of this
  process (``generation_key``), the code generated then is taken, with the variables the
  generation added (functions' dependencies), and Brian2's bookkeeping of the new code object
  (``CPPStandaloneDevice.code_object``: registering it, marking what it writes) runs as
  always. A run in a warm process (a bench repeat, a sweep worker's next point) generates
  nothing a run of its shape generated before.
- **A clock's text made once** (``clock_text_once``): every Brian2 object formats its clock for
  a diagnostic log line when it is made (``Clock.__repr__``: its step in the best unit), ~0.5 ms
  each, which pcsim's log level then drops; ~85 objects in attention/posner's program. The text
  depends only on the step and the name, so it is kept by those.

What ``generation_key`` holds: the code object's name, owner's name and clock step, template
and class, the abstract code, the indices, the template's keywords, every variable as Brian2's
own caches identify it (``_state_tuple``: all its attributes but its owner) plus the names of
its arrays on the device, a constant's value with its type, and for a function the C++ its
implementation gives for this owner (a TimedArray's: its size and step are in it) with the
names, types and shapes of the arrays it reads; and every Brian2 preference. Anything Brian2's
keys cannot take (a type ``_hashable`` refuses) generates as before.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

MADE_FILE = "pcsim-made.json"
# the Brian2 whose internals the replacements below follow (read from its 2.9 source; checked
# against it by tests/test_compiled_warm.py): another version builds as Brian2 does, slower
CHECKED_BRIAN2 = "2.9."


def skip_repeated_work(device: Any) -> None:
    """Every cut of this module, for the standalone ``device``, where Brian2 is the version
    they follow (``CHECKED_BRIAN2``); none elsewhere."""
    import brian2

    if not brian2.__version__.startswith(CHECKED_BRIAN2):
        return
    keep_unchanged_data(device)
    faster_cache_keys()
    reuse_generated_code()
    clock_text_once()
KNOWN_FILE = "pcsim-known.json"  # sim.compiled.known's record: not make's
_NOT_LOOKED_AT = {"static_arrays", MADE_FILE, "pcsim.lock", KNOWN_FILE}  # results-*: below


def keep_unchanged_data(device: Any) -> None:
    """Make ``device`` (a ``CPPStandaloneDevice``) write a data file of ``static_arrays/`` only
    where its bytes differ from the file there. Brian2 keeps one device for every standalone
    block of a process: done once.

    The same steps as Brian2 2.9's ``CPPStandaloneDevice.write_static_arrays`` (the functions'
    namespaces, TimedArray values, join the arrays; ``static_array_specs`` lists them sorted by
    name), but for the writing; ``tests/test_compiled_warm.py`` checks the specs and the files
    against Brian2's own."""
    from brian2.core.functions import Function
    from brian2.devices.cpp_standalone.codeobject import c_data_type

    if getattr(device.write_static_arrays, "keeps_unchanged", False):
        return

    def write_static_arrays(directory: str) -> None:
        for code_object in device.code_objects.values():
            for var in code_object.variables.values():
                if isinstance(var, Function):
                    device._insert_func_namespace(var, code_object, device.static_arrays)
        write_data(Path(directory), device.static_arrays)
        device.static_array_specs = [(name, c_data_type(values.dtype), values.size, name)
                                     for name, values in sorted(device.static_arrays.items())]

    write_static_arrays.keeps_unchanged = True
    device.write_static_arrays = write_static_arrays


def write_data(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    """The data files ``arrays`` (name -> values) in ``directory/static_arrays``, each written
    only where its bytes differ from the file there (``write_if_changed``)."""
    for name, values in arrays.items():
        write_if_changed(directory / "static_arrays" / name, values)


def write_if_changed(path: Path, values: np.ndarray) -> bool:
    """Write ``values`` to ``path`` as ``ndarray.tofile`` does (raw bytes, C order) unless the
    file holds those bytes already; whether it wrote."""
    data = np.ascontiguousarray(values).tobytes()
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.write_bytes(data)
    return True


def _looked_at(directory: Path) -> dict[str, list[int]]:
    """Every file make may look at in ``directory``: path -> [mtime_ns, size]."""
    found = {}
    for root, folders, files in os.walk(directory):
        folders[:] = [name for name in folders
                      if name not in _NOT_LOOKED_AT and not name.startswith("results")]
        for name in files:
            if name not in _NOT_LOOKED_AT:
                path = os.path.join(root, name)
                info = os.stat(path)
                found[os.path.relpath(path, directory)] = [info.st_mtime_ns, info.st_size]
    return found


def make_needed(directory: Path, command: list[str]) -> bool:
    """Whether make may have something to do: a file it looks at (or its command line) is not
    as the last make that succeeded left it, or no such make is on record (or the record is
    damaged)."""
    try:
        record = json.loads((directory / MADE_FILE).read_text())
    except (OSError, ValueError):
        return True
    return record != {"command": command, "files": _looked_at(directory)}


def made(directory: Path, command: list[str]) -> None:
    """Record the files as a successful make of ``command`` left them (``make_needed``)."""
    write_record(directory / MADE_FILE, {"command": command, "files": _looked_at(directory)})


def write_record(path: Path, record: Any) -> None:
    """``record`` as JSON in ``path``, written whole (``write_whole``)."""
    write_whole(path, json.dumps(record, sort_keys=True))


def write_whole(path: Path, text: str) -> None:
    """``text`` into ``path``, written beside it, then renamed: a reader never sees half of
    it."""
    partial = path.with_name(f"{path.name}.{os.getpid()}")
    partial.write_text(text)
    partial.replace(path)


def write_text_if_changed(path: Path, text: str) -> None:
    """``write_whole`` (its folder made where missing) unless ``path`` holds ``text`` already:
    a file make reads keeps its time."""
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, text)


def forget_made(directory: Path) -> None:
    """Before make runs: a make stopped half-way must not leave an old record behind."""
    (directory / MADE_FILE).unlink(missing_ok=True)


_MISSING = object()
_ATOMS = frozenset({str, int, float, bool, type(None), bytes})


def faster_cache_keys() -> None:
    """Replace ``brian2.utils.caching._hashable`` by ``_hashable_fast`` (the same keys). Done
    once per process; the runtime device's code generation uses it too."""
    from brian2.units.fundamentalunits import Dimension
    from brian2.utils import caching

    if getattr(caching._hashable, "same_keys", False):
        return
    original = caching._hashable
    own_key_classes: set[type] = set()  # classes whose key Brian2's function found to be themselves

    def _hashable_fast(obj: Any) -> Any:
        """``_hashable``'s key for ``obj``: its branches for the exact builtin types (whose
        results those branches give: the object itself, a tuple, a frozenset), for a
        ``Dimension`` and a NumPy dtype (no ``_state_tuple``, not a container, hashable, no
        ``shape``: the object itself) and for a class whose key Brian2's function once gave as
        the class itself (it reads only the class's attributes), else Brian2's own function,
        whose recursion comes back here (it calls the module's name). A variable's key holds
        its dimensions and dtype: ~6,000 of these a warm run of the 64-16-4 hierarchy, ~1 us
        each through Brian2's function."""
        kind = type(obj)
        if kind in _ATOMS:
            return obj
        if kind is tuple or kind is list:
            return tuple([_hashable_fast(item) for item in obj])
        if kind is dict:
            return frozenset([(_hashable_fast(key), _hashable_fast(value))
                              for key, value in obj.items()])
        if kind is Dimension or isinstance(obj, np.dtype):
            return obj
        if kind is type:
            if obj in own_key_classes:
                return obj
            found = original(obj)
            if found is obj:
                own_key_classes.add(obj)
            return found
        state = getattr(obj, "_state_tuple", _MISSING)
        if state is not _MISSING:
            return _hashable_fast(state)
        return original(obj)

    _hashable_fast.same_keys = True
    _hashable_fast.original = original
    caching._hashable = _hashable_fast


GENERATED_KEPT = 4000  # code objects' generated code kept per process (~10-50 kB each)
_generated: OrderedDict = OrderedDict()


def reuse_generated_code() -> None:
    """Make Brian2's ``Device.code_object`` take the code an earlier generation in this process
    made from the same inputs (``generation_key``), on the ``cpp_standalone`` device only.
    Done once per process."""
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
    from brian2.devices.device import Device

    generate = Device.code_object
    if getattr(generate, "reuses", False):
        return

    def code_object(self, owner, name, abstract_code, variables, template_name,
                    variable_indices, codeobj_class=None, template_kwds=None,
                    override_conditional_write=None, compiler_kwds=None):
        arguments = (owner, name, abstract_code, variables, template_name, variable_indices,
                     codeobj_class, template_kwds, override_conditional_write, compiler_kwds)
        if not isinstance(self, CPPStandaloneDevice):
            return generate(self, *arguments)
        kind = self.code_object_class(codeobj_class)
        key = generation_key(self, kind, *arguments)
        found = None if key is None else _generated.get(key)
        if found is None:
            before = set(variables)
            made = generate(self, *arguments)
            if key is not None and made.name == key[0]:
                _generated[key] = (made.code, {name: variables[name]
                                               for name in set(variables) - before})
                while len(_generated) > GENERATED_KEPT:
                    _generated.popitem(last=False)
            return made
        _generated.move_to_end(key)
        code, added = found
        variables.update(added)
        made = kind(owner, code, variables, variable_indices, template_name=template_name,
                    template_source=getattr(kind.templater, template_name).template_source,
                    name=key[0], compiler_kwds=compiler_kwds or {})
        made.compile()
        return made

    code_object.reuses = True
    Device.code_object = code_object


def generation_key(device: Any, kind: Any, owner: Any, name: str, abstract_code: Any,
                   variables: dict, template_name: str, variable_indices: dict,
                   codeobj_class: Any, template_kwds: Any, override_conditional_write: Any,
                   compiler_kwds: Any) -> tuple | None:
    """Everything ``Device.code_object`` generates the code from (module docstring), as a
    hashable key whose first item is the code object's name; None where some part cannot be
    keyed (then the code is generated as always)."""
    from brian2 import prefs
    from brian2.core.functions import Function
    from brian2.core.names import find_name
    from brian2.core.variables import ArrayVariable, Constant, DynamicArrayVariable
    from brian2.input.timedarray import TimedArray
    from brian2.utils import caching

    key = caching._hashable

    def function(value: Any) -> tuple:
        implementation = value.implementations[kind]
        namespace = implementation.get_namespace(owner) or {}
        return (implementation.name, key(implementation.get_code(owner)),
                tuple(sorted((name, str(getattr(item, "dtype", type(item).__name__)),
                              getattr(item, "shape", None))
                             for name, item in namespace.items())),
                tuple((name, function(dependency)) for name, dependency
                      in sorted((implementation.dependencies or {}).items())))

    def variable(value: Any) -> tuple:
        found: tuple = (type(value), key(value))
        if isinstance(value, ArrayVariable):
            found += (device.get_array_name(value),)
            if isinstance(value, DynamicArrayVariable):
                found += (device.get_array_name(value, access_data=False),)
        elif isinstance(value, Constant):
            found += (type(value.value).__name__, repr(value.value))
        elif isinstance(value, Function):
            found += (function(value),)
            if isinstance(value, TimedArray):
                found += (value.values.shape, str(value.values.dtype))
        return found

    try:
        clock = getattr(owner, "clock", None)
        return (find_name(name), getattr(owner, "name", None),
                None if clock is None else float(clock.dt_), template_name, kind,
                key(abstract_code),
                tuple((name, variable(value)) for name, value in sorted(variables.items())),
                key(variable_indices), key(template_kwds), key(override_conditional_write),
                key(compiler_kwds), key(getattr(owner, "_registered_variables", None)),
                tuple(sorted((name, repr(value)) for name, value in prefs.items())))
    except Exception:  # whatever cannot be keyed is generated as always
        return None


def clock_text_once() -> None:
    """Make ``Clock.__repr__`` keep its text by the clock's step and name (the same text).
    Done once per process."""
    from brian2.core.clocks import Clock

    original = Clock.__repr__
    if getattr(original, "kept", False):
        return
    texts: dict[tuple[float, str], str] = {}

    def __repr__(self: Any) -> str:  # noqa: N807 - Brian2's method, replaced
        key = (self.dt_, self.name)
        text = texts.get(key)
        if text is None:
            text = texts[key] = original(self)
        return text

    __repr__.kept = True
    Clock.__repr__ = __repr__
