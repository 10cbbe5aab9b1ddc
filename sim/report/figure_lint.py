"""A figure's lint: what a reader of a paper figure would object to, found in the drawn figure.

``lint(figure)`` draws the figure (Agg) and returns one line per finding:

- **text overlaps text**: two visible text artists (titles, axis and tick labels, legend
  entries, annotations, the figure's title) whose drawn boxes intersect (a rotated text is its
  rotated rectangle, not the box around it);
- **text over another panel**: a text over the plotting area of a panel it does not belong
  to (the figure's title across the first panel's frame);
- **legend covers data**: a legend's box over a plotted point, a line's segment, a bar, an
  area's edge or an image, in any panel of the figure (artists with the gid ``DECORATION``,
  such as trial boundaries and zero lines, are not data; ``legend_covers`` is the test, which
  ``sim.report.figures.settle_legends`` uses to place legends);
- **axis without a label**: an axis that shows tick labels but has no label;
- **empty panel / all zeros**: a visible panel with no data, or whose data are all zero
  (|v| <= ``ZERO``: a gap of 1e-30 is rounding, not a result);
- **mantissa ticks**: tick labels such as "4x10^0" (a log axis should read 4, 0.6).

The report side only (matplotlib and NumPy); ``tests/test_figures.py`` runs it over every
bundled scenario's figure and the sweep figure.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import Collection, LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from sim.report.figures import DECORATION  # the gid of what is not data

ZERO = 1e-12  # |v| at most this: zero
SLACK = 1.0  # pixels two boxes may share before they overlap


def lint(figure: Figure) -> list[str]:
    """Every finding in ``figure``, one line each (empty: a clean figure)."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    panels = [axis for axis in figure.axes if axis.get_visible() and axis.axison]
    findings = []
    findings += _overlapping_texts(figure, panels, renderer)
    findings += _texts_in_other_panels(figure, panels, renderer)
    findings += _covering_legends(figure, panels, renderer)
    for axis in panels:
        findings += _unlabelled(axis, renderer)
        findings += _empty(axis)
        findings += _mantissa_ticks(axis)
    return findings


def name_of(axis: Axes) -> str:
    """A panel's name in a finding: its title, else its y label, else its place."""
    for text in (axis.get_title(), axis.get_title("left"), axis.get_ylabel(),
                 axis.get_xlabel()):
        if text:
            return repr(" ".join(text.split())[:50])
    box = axis.get_position()
    return f"the panel at ({box.x0:.2f}, {box.y0:.2f})"


# texts ----------------------------------------------------------------------------------------
def _tick_labels(axis: Axes) -> list[Text]:
    labels = []
    for which in (axis.xaxis, axis.yaxis):
        for tick in which._update_ticks():  # the ticks drawn (in view), matplotlib's own list
            labels += [label for label in (tick.label1, tick.label2)
                       if label.get_visible() and label.get_text().strip()]
    return labels


def _texts(figure: Figure, panels: list[Axes]) -> list[tuple[str, Text]]:
    """(where, text) of every visible, non-empty text artist of the figure."""
    found: list[tuple[str, Text]] = []
    if figure._suptitle is not None:
        found.append(("figure title", figure._suptitle))
    found += [("figure text", text) for text in figure.texts if text is not figure._suptitle]
    for axis in panels:
        where = name_of(axis)
        found += [(f"title of {where}", title) for title in
                  (axis.title, axis._left_title, axis._right_title)]
        found += [(f"x label of {where}", axis.xaxis.label), (f"y label of {where}",
                                                              axis.yaxis.label)]
        found += [(f"text in {where}", text) for text in axis.texts]
        found += [(f"tick label of {where}", text) for text in _tick_labels(axis)]
    for legend in _legends(figure, panels):
        found += [("legend entry", text) for text in legend.get_texts()]
        if legend.get_title().get_text():
            found.append(("legend title", legend.get_title()))
    return [(where, text) for where, text in found
            if text.get_visible() and text.get_text().strip()]


def _owner(text: Text, panels: list[Axes]) -> Axes | None:
    """The panel a text belongs to (its title, labels, ticks, legend), None: the figure's."""
    for axis in panels:
        if text in (axis.title, axis._left_title, axis._right_title, axis.xaxis.label,
                    axis.yaxis.label) or text in axis.texts:
            return axis
        legend = axis.get_legend()
        if legend is not None and (text in legend.get_texts() or text is legend.get_title()):
            return axis
    return text.axes


def _texts_in_other_panels(figure: Figure, panels: list[Axes], renderer) -> list[str]:
    """A text drawn over the plotting area of a panel it does not belong to (a figure title
    across the first panel's frame, a y label reaching into its neighbour)."""
    findings = []
    areas = [(axis, axis.patch.get_window_extent(renderer)) for axis in panels]
    for where, text in _texts(figure, panels):
        quad = _corners(text, renderer)
        owner = _owner(text, panels)
        for axis, area in areas:
            if axis is owner or axis in getattr(owner, "child_axes", ()) or \
                    owner in getattr(axis, "child_axes", ()):
                continue
            box = np.array([[area.x0, area.y0], [area.x1, area.y0], [area.x1, area.y1],
                            [area.x0, area.y1]])
            if not _separated(quad, box):
                findings.append(f"text over another panel: {where} {_short(text)} over "
                                f"{name_of(axis)}")
    return findings


def _corners(text: Text, renderer) -> np.ndarray:
    """The 4 corners of a text's drawn rectangle (display pixels), rotated with the text."""
    box = text.get_window_extent(renderer)
    angle = np.deg2rad(text.get_rotation() % 180.0)
    c, s = abs(np.cos(angle)), abs(np.sin(angle))
    centre = np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])
    determinant = c * c - s * s
    if abs(determinant) < 0.05 or s < 1e-6:  # axis-aligned, or near 45 degrees: the box
        return np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1],
                         [box.x0, box.y1]])
    # W = w c + h s, H = w s + h c: the unrotated width and height from the box
    width = (box.width * c - box.height * s) / determinant
    height = (box.height * c - box.width * s) / determinant
    width, height = max(width, 1.0), max(height, 1.0)
    rotation = np.deg2rad(text.get_rotation())
    along = np.array([np.cos(rotation), np.sin(rotation)])
    across = np.array([-np.sin(rotation), np.cos(rotation)])
    return np.array([centre + sx * width / 2 * along + sy * height / 2 * across
                     for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])


def _separated(a: np.ndarray, b: np.ndarray) -> bool:
    """Two convex quadrilaterals share no area (beyond ``SLACK`` pixels): an edge normal of
    either separates them (the separating axis theorem)."""
    for quad in (a, b):
        for i in range(4):
            edge = quad[(i + 1) % 4] - quad[i]
            normal = np.array([-edge[1], edge[0]])
            length = np.hypot(*normal)
            if length == 0:
                continue
            normal /= length
            pa, pb = a @ normal, b @ normal
            if pa.max() <= pb.min() + SLACK or pb.max() <= pa.min() + SLACK:
                return True
    return False


def _overlapping_texts(figure: Figure, panels: list[Axes], renderer) -> list[str]:
    texts = _texts(figure, panels)
    quads = [_corners(text, renderer) for _, text in texts]
    boxes = np.array([[q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()]
                      for q in quads]).reshape(-1, 4)
    findings = []
    for i, j in itertools.combinations(range(len(texts)), 2):
        if (boxes[i, 0] + SLACK >= boxes[j, 2] or boxes[j, 0] + SLACK >= boxes[i, 2]
                or boxes[i, 1] + SLACK >= boxes[j, 3] or boxes[j, 1] + SLACK >= boxes[i, 3]):
            continue
        if not _separated(quads[i], quads[j]):
            (where_a, a), (where_b, b) = texts[i], texts[j]
            findings.append(f"text overlaps text: {where_a} {_short(a)} and {where_b} "
                            f"{_short(b)}")
    return findings


def _short(text: Text) -> str:
    return repr(" ".join(text.get_text().split())[:40])


# legends --------------------------------------------------------------------------------------
def _legends(figure: Figure, panels: list[Axes]) -> list[Legend]:
    found = [axis.get_legend() for axis in panels if axis.get_legend() is not None]
    return [legend for legend in found + list(figure.legends) if legend.get_visible()]


def _clip(box: Bbox, other: Bbox) -> Bbox | None:
    x0, y0 = max(box.x0, other.x0), max(box.y0, other.y0)
    x1, y1 = min(box.x1, other.x1), min(box.y1, other.y1)
    return Bbox([[x0, y0], [x1, y1]]) if x1 > x0 and y1 > y0 else None


def _points_in(points: np.ndarray, box: Bbox) -> bool:
    points = points[np.all(np.isfinite(points), axis=1)]
    return bool(np.any((points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                       & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)))


def _segments_cross(starts: np.ndarray, ends: np.ndarray, box: Bbox) -> bool:
    """Any segment (start -> end, display pixels) passes through ``box`` (Liang-Barsky)."""
    keep = np.all(np.isfinite(starts), axis=1) & np.all(np.isfinite(ends), axis=1)
    p0, d = starts[keep], ends[keep] - starts[keep]
    if not len(p0):
        return False
    low, high = np.zeros(len(p0)), np.ones(len(p0))
    crosses = np.ones(len(p0), bool)
    for k, (lo, hi) in enumerate(((box.x0, box.x1), (box.y0, box.y1))):
        with np.errstate(divide="ignore", invalid="ignore"):
            t_lo, t_hi = (lo - p0[:, k]) / d[:, k], (hi - p0[:, k]) / d[:, k]
        still = d[:, k] == 0
        inside = (p0[:, k] > lo) & (p0[:, k] < hi)
        crosses &= ~still | inside
        enter, leave = np.minimum(t_lo, t_hi), np.maximum(t_lo, t_hi)
        low = np.where(still, low, np.maximum(low, enter))
        high = np.where(still, high, np.minimum(high, leave))
    return bool(np.any(crosses & (low < high)))


NO_LINE = ("None", "none", "", " ")


def _shapes(artist, cache: dict | None) -> list[tuple[np.ndarray, bool, Any]]:
    """What ``artist`` (data) draws, in display pixels: runs of points, whether lines join
    them, and (an area) its path, to test whether it encloses a point. ``cache`` (artist ->
    shapes) keeps them while nothing moves the data: a legend tried at several places."""
    if cache is not None and artist in cache:
        return cache[artist]
    shapes: list[tuple[np.ndarray, bool, Any]] = []
    if isinstance(artist, Line2D):
        points = artist.get_transform().transform(np.asarray(artist.get_xydata(), float))
        shapes.append((points, artist.get_linestyle() not in NO_LINE and len(points) > 1, None))
    elif isinstance(artist, LineCollection):
        transform = artist.get_transform()
        shapes += [(points, len(points) > 1, None) for points in
                   (transform.transform(np.asarray(s, float)) for s in artist.get_segments()
                    if len(s))]
    elif isinstance(artist, PathCollection):
        if len(artist.get_offsets()):
            shapes.append((artist.get_offset_transform().transform(
                np.asarray(artist.get_offsets())), False, None))
    elif isinstance(artist, Collection):
        transform = artist.get_transform()
        shapes += [(transform.transform(path.vertices), True, path.transformed(transform))
                   for path in artist.get_paths()]
    if cache is not None:
        cache[artist] = shapes
    return shapes


def _covers(artist, box: Bbox, renderer, cache: dict | None = None) -> bool:
    """``artist`` (data) is drawn inside ``box`` (display pixels)."""
    if isinstance(artist, Rectangle | AxesImage):
        return _clip(artist.get_window_extent(renderer), box) is not None
    centre = np.array([[(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2]])
    for points, joined, area in _shapes(artist, cache):
        if len(points) and _points_in(points, box):
            return True
        if joined and _segments_cross(points[:-1], points[1:], box):
            return True
        if area is not None and area.contains_points(centre)[0]:
            return True
    return False


def _data(axis: Axes) -> list:
    artists = [*axis.lines, *axis.collections, *axis.patches, *axis.images]
    return [a for a in artists if a.get_visible() and a.get_gid() != DECORATION]


def legend_covers(legend: Legend, figure: Figure, renderer,
                  cache: dict | None = None) -> list[Axes]:
    """The panels of ``figure`` whose data ``legend`` covers (``cache``: see ``_shapes``)."""
    box = legend.get_window_extent(renderer)
    found = []
    for axis in figure.axes:
        if not (axis.get_visible() and axis.axison):
            continue
        inside = _clip(box, axis.get_window_extent(renderer))
        if inside is not None and any(_covers(a, inside, renderer, cache)
                                      for a in _data(axis)):
            found.append(axis)
    return found


def _covering_legends(figure: Figure, panels: list[Axes], renderer) -> list[str]:
    findings = []
    for legend in _legends(figure, panels):
        owner = legend.axes if legend.axes is not None else None
        for axis in legend_covers(legend, figure, renderer):
            if axis in panels:
                entries = ", ".join(_short(t) for t in legend.get_texts()[:2])
                place = f"in {name_of(owner)}" if owner is not None else "of the figure"
                findings.append(f"legend covers data: the legend {place} ({entries}, ...) "
                                f"over the data of {name_of(axis)}")
    return findings


# axes ------------------------------------------------------------------------------------------
def _unlabelled(axis: Axes, renderer) -> list[str]:
    findings = []
    for which, letter in ((axis.xaxis, "x"), (axis.yaxis, "y")):
        shown = [label for tick in which._update_ticks() for label in (tick.label1, tick.label2)
                 if label.get_visible() and label.get_text().strip()]
        if shown and not which.label.get_text().strip():
            findings.append(f"axis without a label: the {letter} axis of {name_of(axis)} "
                            f"(ticks {_short(shown[0])}, ...)")
    return findings


def _values(artist) -> np.ndarray | None:
    """The plotted values of a data artist, where they have a meaning as numbers."""
    if isinstance(artist, Line2D):
        return np.asarray(artist.get_ydata(), float)
    if isinstance(artist, AxesImage):
        return np.asarray(artist.get_array(), float).ravel()
    if isinstance(artist, LineCollection):
        segments = [np.asarray(s, float) for s in artist.get_segments() if len(s)]
        return np.concatenate([s[:, 1] for s in segments]) if segments else None
    return None


def _empty(axis: Axes) -> list[str]:
    data = _data(axis)
    values = [v for v in map(_values, data) if v is not None]
    values += [np.asarray(c.datavalues, float) for c in axis.containers
               if hasattr(c, "datavalues")]
    finite = [v[np.isfinite(v)] for v in values]
    if not data or (values and not any(v.size for v in finite)):
        return [f"empty panel: {name_of(axis)} draws no data"]
    measured = data and all(_values(a) is not None or isinstance(a, Rectangle) for a in data)
    if measured and values and all(np.all(np.abs(v) <= ZERO) for v in finite):
        return [f"all zeros: every value drawn in {name_of(axis)} is 0 (|v| <= {ZERO:g})"]
    return []


def _mantissa_ticks(axis: Axes) -> list[str]:
    found = [t for t in _tick_labels(axis) if "times" in t.get_text()]
    if found:
        return [f"mantissa ticks: {name_of(axis)} reads {_short(found[0])} (write 4, 0.6)"]
    return []
