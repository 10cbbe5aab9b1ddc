"""The bundled scenario files (TOML). pcsim installs this folder as ``sim/scenarios`` (setup.py);
``sim.scenario.bundled_scenarios`` lists them."""
