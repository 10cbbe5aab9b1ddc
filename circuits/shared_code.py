"""Cython code that names arrays by their role in the code, not by their group, so that equal
equations compile once (``SharedCythonCode``).

Brian2's runtime Cython target names every array in the code it generates after the group
that owns it (``_array_<group>_<variable>``) and caches each extension by its code's text. Two
groups with the same equations, or two synapse objects with the same rule between different
pools, therefore generate code that differs only in those names, and each is an extension of
its own, translated and compiled anew on a machine (~2-2.5 s of CPU each). Posner as spikes
compiled 60 extensions on its first run (151 s); 26 of them differed from another only so.
Naming levels by index (``circuits.naming``) made the code equal across scenarios; this makes
it equal within one network too.

How. Within one code object the keys of its ``variables`` (``v``, ``v_post``, ``w``,
``_synaptic_pre``) are unique, and Brian2 writes its generated code from those keys in sorted
order. ``SharedCythonCode`` renames each array of the code, in the code's text and in its
namespace, after the first key that names it (``_array_error_neurons_0_rate`` ->
``_array__rate``; every form Brian2 derives from an array's name: ``_buf_``, ``_num``,
``_dynamic``). The values handed to the code are the same arrays; only the names in the text
change, so each code object still reads and writes its own group's arrays, and a module
shared by two code objects keeps no state between calls (Brian2's code loads every name from
the namespace it is called with; its random numbers come from the device's one buffer).

Where a name of the group's would stay in the renamed code (a form of name this does not
know, or a name by role that is also one of Brian2's), the code object keeps Brian2's names:
the extension is then its own, as before, never wrong. ``tests/test_shared_code.py`` checks
that equal equations in different groups and equal rules between different pools share an
extension and that each still computes its own values; the bundled scenarios' golden numbers
(``tests/test_cli.py``) are unchanged, and ``tests/golden.py compare`` of every bundled
scenario before and after was identical.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from brian2.codegen.runtime.cython_rt import CythonCodeObject
from brian2.codegen.targets import codegen_targets
from brian2.core.variables import ArrayVariable

# the names Brian2's Cython generator and templates derive from an array's name
# ``_array_<group>_<variable>``: the buffer, the length, the dynamic array object, the array
_FORMS = ("_buf_", "_num", "_dynamic", "")
_ARRAY = "_array_"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def role_names(variables: Mapping[str, Any], device: Any) -> dict[str, str]:
    """Each array's name in Brian2's code (``_array_<group>_<variable>``) -> its name by role
    (``_array__<key>``, after the first key of ``variables`` that names it, in sorted order)."""
    names: dict[str, str] = {}
    for key, variable in sorted(variables.items()):
        if isinstance(variable, ArrayVariable):
            names.setdefault(device.get_array_name(variable), f"{_ARRAY}_{key}")
    return names


def renamed(code: str, names: Mapping[str, str]) -> str:
    """``code`` with every identifier made from an array's name (any of ``_FORMS`` in front
    of it) made from its name by role instead."""

    def rename(found: re.Match) -> str:
        word = found[0]
        for form in _FORMS:
            if word.startswith(form) and word[len(form):] in names:
                return form + names[word[len(form):]]
        return word

    return _IDENTIFIER.sub(rename, code)


def keeps_a_group_name(code: str, names: Mapping[str, str]) -> bool:
    """Whether any of Brian2's array names is still in ``code`` (as a whole identifier or a
    part of one)."""
    return any(name in code for name in names)


def compiles_cython() -> bool:
    """Whether Brian2's preferences name a Cython target, Brian2's or this one."""
    from brian2 import prefs

    return prefs.codegen.target in (CythonCodeObject.class_name, SharedCythonCode.class_name)


class RenamedBlocks(dict):
    """A code object's blocks of code by name, read as Brian2 reads its ``MultiTemplate``:
    ``code.run`` or ``code["run"]``."""

    def __getattr__(self, block: str) -> str:
        try:
            return self[block]
        except KeyError:
            raise AttributeError(block) from None

    def __str__(self) -> str:
        return "\n".join(f"{block}:\n{text}" for block, text in self.items())


class SharedCythonCode(CythonCodeObject):
    """Brian2's Cython code object, its arrays named by role (module docstring). Brian2's
    preferences name it as a target of its own (``prefs.codegen.target = "pcsim_cython"``:
    Brian2's runtime device takes a target's name there, not its class)."""

    class_name = "pcsim_cython"

    def variables_to_namespace(self) -> None:
        super().variables_to_namespace()  # Brian2's names, filtered by Brian2's code
        names = role_names(self.variables, self.device)
        blocks = RenamedBlocks({block: renamed(text, names) for block, text in self.code.items()})
        if any(keeps_a_group_name(text, names) for text in blocks.values()):
            return  # a form of name not known here: Brian2's own names, its own extension
        self.code = blocks
        for form in ("", "_dynamic"):
            for name, role in names.items():
                if form + name in self.namespace:
                    self.namespace[form + role] = self.namespace.pop(form + name)
        self.nonconstant_values = [(names.get(name, name), value)
                                   for name, value in self.nonconstant_values]


codegen_targets.add(SharedCythonCode)  # Brian2 finds a target named in its preferences here
