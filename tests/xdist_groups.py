"""``--dist loadgroup``: which tests share a worker, and the hook that makes the groups hold.

Groups. A test marked ``xdist_group(NAME)`` runs on the worker that runs the group NAME. An
unmarked module whose tests share a module-scoped fixture (a module's simulation runs) is a
group of its own, named after the module (``group_shared_fixtures``): the scheduler hands out
ungrouped tests one by one to whichever worker is free, so such a module's tests were spread
over both workers and each worker made the fixture again (its runs twice, its code compiled by
one worker while the other waited on Brian2's lock). Tests without such a fixture stay
ungrouped: they fill the workers' ends. The scheduler gives out the largest groups first.

Groups across modules, for tests that compile the same Brian2 code (cold, each Cython
extension costs ~3 s of CPU; a second worker that needs one being compiled waits on Brian2's
lock, and then finds it compiled: wall time lost). Named here, marked in the modules:

- ``BUNDLED`` (test_cli, test_headlines, test_figures: the bundled runs) takes test_bench_spiking's
  short spiking hierarchy: 64 of the 66 extensions of ``neurons/hierarchy_spiking``'s run;
- ``POSNER_SPIKING``: attention/posner as spikes, in test_spiking_posner, test_spiking's
  ``spiking_posner`` and test_bench_spiking's preflight count.

The hook, on pytest >= 9.2: pytest-xdist (3.8) tells its scheduler a test's group by appending
``@<group>`` to the node id in each worker (``item._nodeid``). pytest 9.2 keeps node ids
structured (``item._id``), so that write no longer changes the id and every grouped test is
scheduled on its own, without a word (pytest-dev/pytest-xdist#1386). The suite's groups then
did nothing: the bundled runs (``tests/bundled_runs.py``) were made once per worker, and the
compiled device's test networks were built once per worker. ``tests/conftest.py`` imports this
hook; it writes the suffix where xdist's write did not take (and does nothing where it did, or
without loadgroup). ``tests/test_xdist_groups.py`` runs a small suite on two workers to check.
"""

from __future__ import annotations

import pytest

BUNDLED = "bundled"
POSNER_SPIKING = "posner_spiking"


def group_shared_fixtures(items: list[pytest.Item]) -> None:
    """Mark each unmarked test that uses a module-scoped fixture ``xdist_group(<module>)``."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures is not None and any(
                definitions[-1].scope == "module"
                for definitions in fixtures.name2fixturedefs.values() if definitions):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not getattr(config.option, "loadgroup", False):  # set in xdist's workers
        return
    group_shared_fixtures(items)
    try:
        from _pytest import nodeid  # pytest >= 9.2, where the ids are structured
    except ImportError:  # older pytest: xdist has written the suffix of the marked tests
        nodeid = None
    for item in items:
        groups = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                         for mark in item.iter_markers("xdist_group")})
        name = item.nodeid
        if groups and "@" not in name[name.rfind("]") + 1:]:
            suffixed = f"{name}@{'_'.join(groups)}"
            if nodeid is None:
                item._nodeid = suffixed
            else:
                item._id = nodeid.NodeId.parse(suffixed)
