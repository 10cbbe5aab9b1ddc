"""What pyproject.toml cannot say: where the bundled scenarios install.

The scenario files live in the repository's top-level ``scenarios/`` folder, and install as
``sim/scenarios/`` (data of the ``sim`` package), not as a top-level package named
``scenarios``: a name that generic would collide with another distribution's or a user's own
folder. ``sim.scenario.bundled_dir`` finds them in either place.
"""

from setuptools import find_namespace_packages, setup

# sim.scenarios and one package per scenario folder (sim.scenarios.perception, ...), each
# holding its .toml files; sim.scenarios.X is read from scenarios/X
SCENARIOS = ["sim.scenarios", *(f"sim.scenarios.{name}"
                                for name in find_namespace_packages(where="scenarios"))]

setup(
    # every folder under sim/ and circuits/ is a package
    packages=[*find_namespace_packages(include=["sim*", "circuits*"]), *SCENARIOS],
    package_dir={"sim.scenarios": "scenarios"},
    package_data={**{package: ["*.toml"] for package in SCENARIOS},
                  "circuits.spiking": ["templates/*.pyx"]},  # circuits.spiking.spike_record
)
