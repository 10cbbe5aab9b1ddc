"""Brian2's names for a level's objects: the level's index, not its name.

Brian2 names each array after its group in the code it generates
(``_array_<group>_<variable>``), and caches compiled code by its text. Groups named after a
scenario's levels (``belief_cause``, ``belief_pitch``) therefore compiled the same equations
once per level name, in every scenario and test. Named by index (``belief_1``: level 1's
beliefs), equal equations give equal code and compile once.

Users still see level names. ``shown`` maps a Brian2 name back, for the guard's and the
compiled device's messages; the file, figures and tables name levels by their own fields and
never by Brian2 names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# a name made from ``level_key``: one of the prefixes that name a level's objects, the index,
# then nothing or "_..." (not any name ending in digits: Brian2's ``networkoperation_3``)
_INDEXED = re.compile(r"((?:generative_|one_to_one_)?(?:belief|error|precision|covariance)_"
                      r"|discrete_(?:beliefs|errors|pool|to_pool|pool_update)_)"
                      r"(\d+)((?:_[A-Za-z_]*)?)")


def level_key(index: int) -> str:
    """What names level ``index``'s objects in Brian2 (``belief_<key>``, ``error_<key>``)."""
    return str(index)


def shown(name: str, levels: Sequence[str]) -> str:
    """The name users see for the Brian2 name ``name``: a level's index (``level_key``) replaced
    by the level's name, ``levels`` the names by index (``error_0_precision`` ->
    ``error_input_precision``). Any other name is returned unchanged."""
    found = _INDEXED.fullmatch(name)
    if found is None or int(found[2]) >= len(levels):
        return name
    return f"{found[1]}{levels[int(found[2])]}{found[3]}"
