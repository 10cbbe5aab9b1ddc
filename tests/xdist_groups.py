"""``--dist loadgroup`` on pytest >= 9.2: tests of one ``xdist_group`` go to one worker again.

pytest-xdist (3.8) tells its scheduler a test's group by appending ``@<group>`` to the node
id in each worker (``item._nodeid``). pytest 9.2 keeps node ids structured (``item._id``),
so that write no longer changes the id and every grouped test is scheduled on its own,
without a word (pytest-dev/pytest-xdist#1386). The suite's groups then did nothing: the
bundled runs (``tests/bundled_runs.py``) were made once per worker, and the compiled device's
test networks were built once per worker. ``tests/conftest.py`` imports this hook; it writes
the suffix where xdist's write did not take (and does nothing where it did, or without
loadgroup). ``tests/test_xdist_groups.py`` runs a small suite on two workers to check.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not getattr(config.option, "loadgroup", False):  # set in xdist's workers
        return
    try:
        from _pytest.nodeid import NodeId  # pytest >= 9.2, where the ids are structured
    except ImportError:  # older pytest: xdist's own write of the suffix takes
        return
    for item in items:
        groups = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                         for mark in item.iter_markers("xdist_group")})
        nodeid = item.nodeid
        if groups and "@" not in nodeid[nodeid.rfind("]") + 1:]:
            item._id = NodeId.parse(f"{nodeid}@{'_'.join(groups)}")
