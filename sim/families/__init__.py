"""Model families: each a package that parses its ``[model]``, builds its core populations
and asks the registry (``sim.registry``) for the mechanisms a scenario switched on."""
