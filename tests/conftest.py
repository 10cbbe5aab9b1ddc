"""The suite runs on Brian2's runtime device unless a test names another: a scenario that
names no ``[numerics] device`` takes ``$PCSIM_DEVICE`` (``auto`` for users, which compiles a
C++ program per model shape). The compiled device has its own tests
(``test_compiled_runs.py``, ``test_compiled_device.py``), each naming it."""

import os

os.environ.setdefault("PCSIM_DEVICE", "runtime")

import pytest
from bundled_runs import BundledRuns
from xdist_groups import pytest_collection_modifyitems  # noqa: F401 - the groups hold again


@pytest.fixture(scope="session")
def bundled(tmp_path_factory) -> BundledRuns:
    """Each bundled scenario run once by ``pcsim run`` for the whole session
    (``tests/bundled_runs.py``)."""
    return BundledRuns(tmp_path_factory.mktemp("bundled"))
