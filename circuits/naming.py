"""Brian2's names for a level's objects: the level's index, not its name.

Brian2 names each array after its group in the code it generates
(``_array_<group>_<variable>``), and caches compiled code by its text. Groups named after a
scenario's levels (``belief_cause``, ``belief_pitch``) therefore compiled the same equations
once per level name, in every scenario and test. Named by index (``belief_1``: level 1's
beliefs), equal equations give equal code and compile once. ``circuits.shared_code`` now names
the arrays in pcsim's Cython code by their role in it, so the groups' names no longer reach
that code at all (equal rules between different pools share it too); names by index still
matter where the names do reach code: the compiled device's program, and a code object
``circuits.shared_code`` leaves with Brian2's names.

The spiking realisation (``circuits.spiking``) names its pool groups the same way
(``belief_neurons_1``), and its synapses and monitors after the pools they join
(``error_neurons_0_to_belief_neurons_1_s_up``, ``spikes_error_neurons_0``).

Users still see level names. ``shown`` maps a Brian2 name back, for the guard's and the
compiled device's messages; the file, figures and tables name levels by their own fields and
never by Brian2 names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# a part of a name made from ``level_key``: one of the prefixes that name a level's objects
# (at the name's start or after "_"), the index, then the name's end or "_" (not any name
# ending in digits: Brian2's ``networkoperation_3``); a spiking synapse's name has two
_INDEXED = re.compile(r"(?<![A-Za-z0-9])"
                      r"((?:generative_|one_to_one_)?(?:belief|error|precision|covariance)_"
                      r"|(?:activation|belief|error|precision_error)_neurons_"
                      r"|discrete_(?:beliefs|errors|pool|to_pool|pool_update)_)"
                      r"(\d+)(?=_|$)")


def level_key(index: int) -> str:
    """What names level ``index``'s objects in Brian2 (``belief_<key>``, ``error_<key>``)."""
    return str(index)


def shown(name: str, levels: Sequence[str]) -> str:
    """The name users see for the Brian2 name ``name``: each level index (``level_key``) in it
    replaced by the level's name, ``levels`` the names by index (``error_0_precision`` ->
    ``error_input_precision``; ``error_neurons_0_to_belief_neurons_1_s_up`` ->
    ``error_neurons_input_to_belief_neurons_hidden_s_up``). Any other part is unchanged."""

    def level(found: re.Match) -> str:
        index = int(found[2])
        return found[1] + levels[index] if index < len(levels) else found[0]

    return _INDEXED.sub(level, name)
