"""The suite runs on Brian2's runtime device unless a test names another: a scenario that
names no ``[numerics] device`` takes ``$PCSIM_DEVICE`` (``auto`` for users, which compiles a
C++ program per model shape). The compiled device has its own tests
(``test_compiled_runs.py``, ``test_compiled_device.py``), each naming it."""

import os

os.environ.setdefault("PCSIM_DEVICE", "runtime")

import pytest
from bundled_runs import BundledRuns
from lane_kernel import compiled_kernel, why_off
from xdist_groups import pytest_collection_modifyitems  # noqa: F401 - the groups hold again


@pytest.fixture(scope="session")
def bundled(tmp_path_factory) -> BundledRuns:
    """Each bundled scenario run once by ``pcsim run`` for the whole session
    (``tests/bundled_runs.py``)."""
    return BundledRuns(tmp_path_factory.mktemp("bundled"))


@pytest.fixture
def lane_kernel() -> object:
    """``circuits.lane_products``' compiled module; the test skipped where it is rightly off
    (``tests/lane_kernel.py``: AVX-512, other CPUs, no compiler), failed where this machine
    should run it and does not."""
    module = compiled_kernel()
    if module is None:
        pytest.skip(why_off())
    return module
