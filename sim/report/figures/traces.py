"""Time series of many units in a figure: lines with a legend naming the units where they are
few, an image with a colour map where they are many; axis labels carry the stored units.

Long series are drawn from every k-th sample (read so from the file, h5py strides), at most
``MAX_POINTS`` per line and ``MAX_COLUMNS`` per image: a figure never reads more than it shows.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from circuits.variables import ROLES
from sim.io.reader import Result, declared

MAX_LINES = 8  # units drawn as lines named in a legend; more: an image with a colour map
MAX_POINTS = 20_000  # samples drawn per line
MAX_COLUMNS = 2_000  # samples drawn per image column


def with_units(text: str, units: str) -> str:
    """``text (units)``; a dimensionless quantity has no units to name."""
    return text if units in ("", "1") else f"{text} ({units})"


def quantity(result: Result, path: str) -> str:
    """``belief mu`` for ``levels/<name>/belief``: its declared label and symbol (else the
    dataset's name)."""
    key = path.rsplit("/", 1)[-1]
    label = declared(result, path, "label", key)
    symbol = declared(result, path, "symbol")
    return f"{label} {symbol}" if symbol else label


def drawn(result: Result, prefix: str) -> list[str]:
    """The time series directly under ``prefix`` (``levels/<name>/``, ``causes/``,
    ``factors/<name>/``) a figure draws, by declared role (input, state, error, precision,
    parameter): those declared with a ``plot`` other than ``none`` (``varying`` ones where they
    change); in a file without declarations, every time series under ``prefix``."""
    samples = result.shape("time")[0] if "time" in result else -1
    series = [path for path in result.datasets if path.startswith(prefix)
              and "/" not in path[len(prefix):] and result.shape(path)[:1] == (samples,)]
    if not any(declared(result, path, "plot") for path in result.datasets):
        return series  # written before variables were declared
    chosen = [path for path in series if declared(result, path, "plot") not in ("", "none")
              and (declared(result, path, "when") != "varying" or varies(result, path))]
    return sorted(chosen, key=lambda p: ROLES.index(declared(result, p, "role"))
                  if declared(result, p, "role") in ROLES else len(ROLES))


def declared_panels(result: Result, paths: list[str]) -> list[tuple[list[str], str, bool]]:
    """The panels of the drawn variables ``paths`` (``drawn``: one level's or one factor's),
    from their declarations (``circuits.variables``): each variable declared ``stacked`` (a
    distribution over the units) in a panel of its own, first; then variables that share a
    ``panel`` name in one panel of lines, each other variable in a panel of its own; where one
    of a panel's variables has more than ``MAX_LINES`` units, one panel (an image) per variable.
    Each panel: its paths, its plot (``stacked``; ``log`` where one of them is declared
    ``log``; else ``lines``) and whether its declared panel holds more than one variable."""
    panels: list[tuple[list[str], str, bool]] = []
    groups: dict[str, list[str]] = {}
    for path in paths:
        if declared(result, path, "plot") == "stacked":
            panels.append(([path], "stacked", False))
        else:
            groups.setdefault(declared(result, path, "panel") or path, []).append(path)
    for members in groups.values():
        plot = "log" if any(declared(result, p, "plot") == "log" for p in members) else "lines"
        shared = len(members) > 1
        if max(width(result, path) for path in members) <= MAX_LINES:
            panels.append((members, plot, shared))
        else:
            panels += [([path], plot, shared) for path in members]
    return panels


def width(result: Result, path: str) -> int:
    """Units of a recorded time series (1 for a scalar one)."""
    shape = result.shape(path)
    return shape[1] if len(shape) > 1 else 1


def varies(result: Result, path: str) -> bool:
    """Whether a recorded series changes over the run, read a block of samples at a time."""
    series = result[path]
    if not len(series):
        return False
    first = series[0]
    return any(np.any(block != first) for _, block in series.blocks())


def plain_log_ticks(axis: plt.Axes) -> None:
    """A log y axis read as plain numbers (0.2, 0.5, 1, 2 over a few decades; 1e-08, 1 over
    many), not as mantissas (4x10^0, 6x10^-1). Call it once the data are drawn."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = axis.get_ylim()
    few = low > 0 and high / low <= 1e3
    axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if few else (1.0,),
                                            numticks=8 if few else 5))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.yaxis.set_minor_formatter(NullFormatter())


def stride(samples: int, most: int) -> int:
    """Every how many samples to draw, for at most ``most`` of them."""
    return max(1, -(-samples // most))


def sampled(result: Result, path: str, most: int) -> tuple[np.ndarray, np.ndarray]:
    """(time in ms, values) of a time series, every k-th sample for at most ``most``."""
    step = stride(result.shape(path)[0], most)
    return result.time[::step] * 1e3, np.asarray(result[path][::step])


def draw_lines(axis: plt.Axes, result: Result, level: str, paths: list[str],
               log: bool = False, names: list[str] | None = None) -> None:
    """One colour per unit, one line style per quantity (``paths`` of one level), a legend
    naming the units (``level[i]``, or their ``names``) and the styles."""
    colours = plt.get_cmap("tab10").colors
    widest = 0
    for path in paths:
        time_ms, values = sampled(result, path, MAX_POINTS)
        values = values.reshape(len(values), -1)
        widest = max(widest, values.shape[1])
        style = declared(result, path, "style", "-")
        for unit in range(values.shape[1]):
            (axis.semilogy if log else axis.plot)(
                time_ms, values[:, unit], ls=style, lw=1.2 if style == "-" else 0.9,
                color=colours[unit % len(colours)], alpha=0.85)
    handles = [Line2D([], [], color=colours[unit % len(colours)], lw=2,
                      label=names[unit] if names else f"{level}[{unit}]")
               for unit in range(widest)]
    if len(paths) > 1:
        handles += [Line2D([], [], color="black", ls=declared(result, p, "style", "-"),
                           lw=1, label=quantity(result, p)) for p in paths]
    axis.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                frameon=False)
    if log:
        plain_log_ticks(axis)
    names = ", ".join(quantity(result, p) for p in paths)
    units = {result.units(p) for p in paths}  # one quantity's units, or each its own
    text = (with_units(f"{level}\n{names}", units.pop()) if len(units) == 1 else
            f"{level}\n" + ", ".join(with_units(quantity(result, p), result.units(p))
                                     for p in paths))
    axis.set_ylabel(text, fontsize=8)


def draw_image(axis: plt.Axes, result: Result, level: str, path: str, label: str | None = None,
               **options: Any) -> None:
    """Units (rows) over time (columns) in a colour map, its bar labelled with the units
    (or ``label``); a quantity of either sign (errors) on a diverging map centred on 0."""
    time_ms, values = sampled(result, path, MAX_COLUMNS)
    values = values.reshape(len(values), -1)
    finite = values[np.isfinite(values)]
    signed = (declared(result, path, "role") == "error"
              or (finite.size and finite.min() < 0 < finite.max()))
    if signed and "norm" not in options:
        reach = float(np.max(np.abs(finite))) if finite.size and np.any(finite) else 1.0
        options = {"cmap": "RdBu_r", "vmin": -reach, "vmax": reach, **options}
    half = (time_ms[1] - time_ms[0]) / 2 if len(time_ms) > 1 else 0.5
    image = axis.imshow(values.T, aspect="auto", origin="lower", interpolation="nearest",
                        extent=(time_ms[0] - half, time_ms[-1] + half, -0.5,
                                values.shape[1] - 0.5), **{"cmap": "viridis", **options})
    bar = axis.inset_axes((1.01, 0.0, 0.015, 1.0))
    colourbar = axis.figure.colorbar(image, cax=bar)
    colourbar.set_label(label or with_units(quantity(result, path), result.units(path)), fontsize=7)
    colourbar.ax.tick_params(labelsize=7)
    axis.set_ylabel(f"{level}\nunit", fontsize=8)


def draw_series(axis: plt.Axes, result: Result, level: str, paths: list[str],
                log: bool = False, names: list[str] | None = None) -> None:
    """Lines (at most ``MAX_LINES`` units, named by ``names`` if given) or an image (one path
    only) of a level's series."""
    if len(paths) == 1 and result.shape(paths[0])[1:] and result.shape(paths[0])[1] > MAX_LINES:
        from matplotlib.colors import LogNorm

        draw_image(axis, result, level, paths[0], **({"norm": LogNorm()} if log else {}))
    else:
        draw_lines(axis, result, level, paths, log=log, names=names)
