"""The per-trial table as a pandas DataFrame (``Result.trials_frame()``).

pandas is optional: only this module imports it, and only when a frame is asked for, so that
``pcsim show`` and the rest of the report side never load it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

COLUMNS_UP_TO = 16  # a vector per trial of at most this many numbers: one column each
PANDAS_MISSING = ("Result.trials_frame() needs pandas, which is not installed: "
                  "pip install pandas (or pip install 'pcsim[tables]')")


def import_pandas() -> Any:
    """pandas, or a one-line ``ModuleNotFoundError`` naming it."""
    try:
        import pandas
    except ImportError:
        raise ModuleNotFoundError(PANDAS_MISSING, name="pandas") from None
    return pandas


def trial_columns(trials: Mapping[str, Any]) -> dict[str, Any]:
    """Column name -> one value per trial: a vector per trial of at most ``COLUMNS_UP_TO``
    numbers becomes ``name[i]`` columns; longer vectors and arrays of more axes per trial stay
    one column holding an array per trial."""
    columns: dict[str, Any] = {}
    for name in trials:
        values = np.asarray(trials[name])
        if values.ndim <= 1:
            columns[name] = values
        elif values.ndim == 2 and values.shape[1] <= COLUMNS_UP_TO:
            for i in range(values.shape[1]):
                columns[f"{name}[{i}]"] = values[:, i]
        else:
            columns[name] = list(values)
    return columns


def trial_frame(trials: Mapping[str, Any]) -> Any:
    """The trial table as a DataFrame, one row per trial, in the order the trials ran."""
    pandas = import_pandas()
    return pandas.DataFrame(trial_columns(trials))
