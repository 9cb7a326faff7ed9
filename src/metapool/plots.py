"""Figures of analysis documents for a manuscript, and deterministic figure writers.

Every figure is drawn from one analysis document (``results/<analysis>/analysis.json``,
see ``docs/architecture.md``) or, for the PRISMA diagram, from ``config/prisma.yaml``:

* :func:`forest_plot`: study labels, data, effects with confidence intervals and
  weights around the interval plot; a diamond for each pooled model, the prediction
  interval, heterogeneity lines and a line stating the methods. Layouts (:data:`LAYOUTS`):
  ``default``, ``compact``, ``revman5`` (RevMan 5 / Cochrane) and ``jama``.
* :func:`funnel_plot`: contour-enhanced funnel plot (ratios), pseudo-confidence funnel
  and an effect-versus-sample-size panel (proportions), trim-and-fill studies.
* :func:`leave_one_out_plot`, :func:`cumulative_plot`: forest-style rows of the
  leave-one-out and cumulative analyses.
* :func:`sensitivity_plot`: the sensitivity panel as a dot plot, changed conclusions
  highlighted.
* :func:`prisma_diagram`: the PRISMA 2020 flow diagram from validated counts
  (:func:`read_prisma`, :func:`check_prisma`).

A section that does not exist (e.g. leave-one-out with k < 3) gives a
:func:`placeholder_figure` saying why, so every expected file exists.

Only this module imports matplotlib. It never touches :mod:`matplotlib.pyplot`: figures
are plain :class:`matplotlib.figure.Figure` objects drawn with the Agg canvas, so the
plotting stack has no global state and works headless. All style settings live in
:data:`RC`, applied on top of matplotlib's built-in defaults (a user's matplotlibrc or
style is ignored) both when drawing and when saving, which together with fixed metadata
makes the SVG/PNG/PDF output byte-identical for identical input on any machine (the
DejaVu Sans font ships with matplotlib). Text from the data is drawn as plain text
(``parse_math=False``) and escaped by the SVG writer.

Each figure carries ``fig.metapool``, a dict describing what was drawn (rows, marker
positions in data coordinates, axis scale, reference lines, ...) for tests and callers.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib import transforms as mtransforms
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, Polygon, Rectangle
from matplotlib.ticker import FixedFormatter, FixedLocator, FuncFormatter, NullLocator

from metapool import rob as _rob
from metapool.formatting import (
    CI_NAMES,
    DASH,
    ESTIMATOR_NAMES,
    PI_NAMES,
    as_float,
    fmt_int,
    fmt_interval,
    fmt_effect_ci,
    fmt_level,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_tau2,
    fmt_value,
    heterogeneity_text,
    is_glmm,
    is_missing,
    is_proportion_measure,
    is_yes,
    method_name,
    p_phrase,
    weight_basis,
)

__all__ = [
    "FIGURES",
    "LAYOUTS",
    "PRISMA_KEYS",
    "PrismaError",
    "RC",
    "ROB_STYLE",
    "check_prisma",
    "cumulative_plot",
    "forest_plot",
    "funnel_plot",
    "leave_one_out_plot",
    "placeholder_figure",
    "prisma_diagram",
    "read_prisma",
    "rob_summary",
    "rob_traffic_light",
    "save_figure",
    "sensitivity_plot",
    "write_figure",
    "write_forest",
]

#: Style used to draw and to save every figure (applied with ``rc_context``).
RC: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 8.0,
    "mathtext.fontset": "dejavusans",
    "text.usetex": False,
    "text.parse_math": False,
    "axes.unicode_minus": True,
    "axes.linewidth": 0.7,
    "axes.edgecolor": "#1a1a1a",
    "xtick.labelsize": 7.5,
    "xtick.major.size": 3.0,
    "xtick.major.width": 0.7,
    "xtick.major.pad": 2.5,
    "xtick.color": "#1a1a1a",
    "xtick.direction": "out",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.edgecolor": "white",
    "savefig.transparent": False,
    "svg.fonttype": "none",
    "svg.hashsalt": "metapool",
    "svg.id": None,
    "svg.image_inline": True,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "path.simplify": False,
}

#: Layouts accepted by :func:`forest_plot`: the style of the table (``style``), which
#: text columns are shown, the width of the interval plot and the row height (inches).
#:
#: * ``default``: study | data | plot | effect (CI) | weight, with rules above and below
#:   the table, a dashed line at the pooled estimate and "Favours ..." arrows.
#: * ``compact``: the default without the data and weight columns.
#: * ``revman5``: RevMan 5 (Cochrane) conventions: study | events, total (or log[HR],
#:   SE) | weight | effect ``[lower, upper]`` | plot on the right, square markers, black
#:   diamonds, "Total (95% CI)", a heterogeneity line (Tau², Chi², df, P, I²) and a
#:   "Test for overall effect" line under each pooled row, "Favours ..." under the axis
#:   and no rules.
#: * ``jama``: JAMA conventions: compact rows, source | (events/total) | plot | effect
#:   (95% CI) | weight, % with the estimates right of the plot, one thin rule under the
#:   header, "Favors ...", P values without a leading zero.
LAYOUTS: dict[str, dict[str, Any]] = {
    "default": {"data_column": True, "weight_column": True, "plot_width": 2.7, "row_height": 0.19},
    "compact": {
        "data_column": False,
        "weight_column": False,
        "plot_width": 2.3,
        "row_height": 0.17,
    },
    "revman5": {
        "style": "revman5",
        "data_column": True,
        "weight_column": True,
        "plot_width": 2.6,
        "row_height": 0.19,
    },
    "jama": {
        "style": "jama",
        "data_column": True,
        "weight_column": True,
        "plot_width": 2.4,
        "row_height": 0.175,
    },
}

_INK = "#1a1a1a"
_STUDY = "#5f6b7a"
_POOLED = "#1f3b64"
_PI = "#a8322d"
_GRID = "#9a9a9a"
_NOTE = "#4d4d4d"

_SIZE = 8.0  # body text, pt
_SMALL = 7.0  # heterogeneity lines, footnotes, pt
_TITLE = 9.5  # title, pt
_MARGIN = 0.12  # figure margins, in
_GAP = 0.16  # gap between columns, in
_INDENT = 0.10  # indent of studies under a subgroup header, in

_LOG_COARSE = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
_LOG_FINE = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0)

_TRANSFORMATIONS = {
    "logit": "logit transformation",
    "untransformed (raw) proportion": "",
    "raw proportion": "",
    "pr": "",
    "freeman-tukey double arcsine": "Freeman-Tukey double arcsine transformation",
    "arcsine square root": "arcsine transformation",
    "plo": "logit transformation",
    "log": "pooled on the log scale",
    "log hr": "pooled on the log scale",
    "pft": "Freeman-Tukey double arcsine transformation",
    "double arcsine": "Freeman-Tukey double arcsine transformation",
    "freeman-tukey": "Freeman-Tukey double arcsine transformation",
    "pas": "arcsine transformation",
    "arcsine": "arcsine transformation",
    "pln": "log transformation",
}
_STUDY_CI = {
    "clopper-pearson": "exact Clopper-Pearson",
    "exact": "exact Clopper-Pearson",
    "wilson": "Wilson score",
}


# --------------------------------------------------------------------------- helpers


@contextmanager
def _style() -> Iterator[None]:
    """Matplotlib's own defaults plus :data:`RC`, ignoring any user matplotlibrc/style."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(RC)
        yield


def _is_derived(study: Mapping[str, Any]) -> bool:
    """Whether a study's effect or CI was derived rather than read as reported."""
    if is_yes(study.get("derived")):
        return True
    method = str(study.get("effect_method") or "").lower()
    ci_method = str(study.get("study_ci_method") or "").lower()
    return method.startswith("hr_p") or "derived" in ci_method


def _is_pooled(row: Mapping[str, Any]) -> bool:
    """Whether a pooled row has an estimate to draw."""
    return (
        str(row.get("status", "")).startswith("pooled")
        and as_float(row.get("estimate")) is not None
    )


class _Measure:
    """Measures text extents in inches (renderer at 72 dpi, i.e. points)."""

    def __init__(self) -> None:
        self._renderer = RendererAgg(10, 10, 72)

    def width(
        self, text: str, size: float = _SIZE, weight: str = "normal", style: str = "normal"
    ) -> float:
        if not text:
            return 0.0
        key = (text, size, weight, style)
        if key not in _WIDTHS:
            prop = FontProperties(
                family=RC["font.sans-serif"], size=size, weight=weight, style=style
            )
            w, _, _ = self._renderer.get_text_width_height_descent(text, prop, ismath=False)
            _WIDTHS[key] = w / 72.0
        return _WIDTHS[key]


#: (text, size, weight, style) -> width in inches: a plotting job measures the same
#: labels, numbers and headers in figure after figure (the font is fixed by RC).
_WIDTHS: dict[tuple[str, float, str, str], float] = {}


def _study_label(study: Mapping[str, Any], duplicate_labels: set[str]) -> str:
    """Study label; the group is added when two rows share the same label."""
    label = "" if is_missing(study.get("label")) else str(study["label"])
    if not label:
        label = str(study.get("study_id", ""))
    if label in duplicate_labels and not is_missing(study.get("group")):
        label = f"{label} ({study['group']})"
    return label


def _data_text(study: Mapping[str, Any], proportion: bool) -> str:
    """Data column of a study: ``events/total`` or the reported ratio with CI or p."""
    if proportion:
        if is_missing(study.get("events")) or is_missing(study.get("total")):
            return DASH
        return f"{fmt_int(study['events'])}/{fmt_int(study['total'])}"
    hr = as_float(study.get("hr"))
    if hr is None:
        return DASH
    text = fmt_value(hr, "HR")
    lo, hi = as_float(study.get("hr_lower")), as_float(study.get("hr_upper"))
    if lo is not None and hi is not None:
        level = as_float(study.get("ci_level"))
        extra = "" if level in (None, 0.95, 95.0) else f"; {fmt_level(level)}"
        text += f" ({fmt_value(lo, 'HR')}\u2013{fmt_value(hi, 'HR')}{extra})"
    elif not is_missing(study.get("p_value")):
        text += f"; {p_phrase(study['p_value'])}"
    return text


def _effect_text(value: Any, lower: Any, upper: Any, measure: str) -> str:
    """``"70.8 (58.2–81.4)"``: the unit is in the column header."""
    est = fmt_value(value, measure)
    if est == DASH:
        return DASH
    interval = fmt_interval(lower, upper, measure)
    return est if interval == DASH else f"{est} ({interval})"


def _first(*values: Any) -> Any:
    """The first value that is not missing (None when all are)."""
    return next((v for v in values if not is_missing(v)), None)


def _named_interval(name: str, noun: str) -> str:
    """``"t-based 95% CI"``; a qualifying phrase in parentheses moves to the end:
    ``"t-based 95% prediction interval (k − 2 df, Riley)"``, a one-word one stays:
    ``"Wald (z) 95% CI"``."""
    head, sep, rest = name.partition(" (")
    if sep and " " in rest:
        return f"{head} {noun} ({rest}"
    return f"{name} {noun}"


def _method_line(
    doc: Mapping[str, Any], overall: Mapping[str, Any], pooled: bool, has_pi: bool
) -> str:
    """State the pooling model, e.g. ``"Random effects, REML τ², Hartung-Knapp-... CI"``.

    The overall pooled row's ``method``, ``ci_method`` and ``pi_method`` (what was
    fitted) take precedence over the configured ``methods``. The GLMM reads
    ``"Binomial-normal GLMM (ML τ²), t-based 95% CI, ...; logit scale"``. The method
    profile (``methods.profile``) is named at the end.
    """
    methods = doc.get("methods") or {}
    level = fmt_level(methods.get("level", overall.get("level")))
    profile = methods.get("profile")
    tail = "" if is_missing(profile) else f" Profile: {profile}."
    if not pooled:
        head = (
            "Not pooled: single study."
            if as_float(overall.get("k")) == 1
            else f"Not pooled: {overall.get('status')}."
        )
        return head + tail
    code = str(_first(overall.get("method"), methods.get("estimator")) or "").strip()
    glmm = code.upper() == "GLMM"
    if glmm:
        parts = ["Binomial-normal GLMM (ML \u03c4\u00b2)"]
    elif code.upper() == "FE":
        parts = ["Common effect (inverse variance)"]
    else:
        parts = ["Random effects"]
        estimator = method_name(ESTIMATOR_NAMES, code)
        if estimator:
            parts.append(f"{estimator} \u03c4\u00b2")
    ci = method_name(CI_NAMES, _first(overall.get("ci_method"), methods.get("ci")))
    if ci:
        parts.append(_named_interval(ci, f"{level} CI"))
    pi_code = _first(overall.get("pi_method"), methods.get("pi"))
    pi = method_name(PI_NAMES, pi_code)
    if pi and has_pi:
        parts.append(_named_interval(pi, f"{level} prediction interval"))
    elif pi and str(pi_code).lower() != "none" and (as_float(overall.get("k")) or 0) < 3:
        parts.append("no prediction interval (k < 3)")
    line = ", ".join(parts)
    transformation = methods.get("transformation")
    if glmm:
        line += "; logit scale"
    elif not is_missing(transformation) and str(transformation).lower() not in {
        "none",
        "identity",
    }:
        text = method_name(_TRANSFORMATIONS, transformation)
        if text:
            line += "; " + text
    return line + "." + tail if tail else line


def _wrap(
    text: str, width_in: float, measure: _Measure, size: float, weight: str = "normal"
) -> list[str]:
    """Wrap text so that each line fits in ``width_in`` inches."""
    if measure.width(text, size, weight) <= width_in:
        return [text]
    avg = measure.width(text, size, weight) / max(len(text), 1)
    chars = max(20, int(width_in / avg))
    while chars > 20:
        lines = textwrap.wrap(text, chars)
        if all(measure.width(line, size, weight) <= width_in for line in lines):
            return lines
        chars -= 2
    return textwrap.wrap(text, chars)


def _percent_limits(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Percent axis limits snapped to a tick step, clamped to 0-100."""
    span = max(hi - lo, 1.0)
    pad = max(2.0, 0.05 * span)
    lo, hi = max(0.0, lo - pad), min(100.0, hi + pad)
    step = 25.0
    for candidate in (1.0, 2.0, 5.0, 10.0, 20.0, 25.0):
        if (hi - lo) / candidate <= 6:
            step = candidate
            break
    lo = max(0.0, math.floor(lo / step) * step)
    hi = min(100.0, math.ceil(hi / step) * step)
    ticks = [lo + i * step for i in range(int(round((hi - lo) / step)) + 1)]
    return lo, hi, ticks


def _log_limits(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Log axis limits at tick values, always including 1, clamped to 0.01-100."""
    lo = max(min(lo, 1.0) / 1.04, _LOG_COARSE[0])
    hi = min(max(hi, 1.0) * 1.04, _LOG_COARSE[-1])

    def snap(ticks: tuple[float, ...]) -> tuple[float, float, list[float]]:
        low = max((t for t in ticks if t <= lo), default=ticks[0])
        high = min((t for t in ticks if t >= hi), default=ticks[-1])
        return low, high, [t for t in ticks if low <= t <= high]

    coarse = snap(_LOG_COARSE)
    if lo >= _LOG_FINE[0] and hi <= _LOG_FINE[-1]:
        fine = snap(_LOG_FINE)
        if len(fine[2]) <= 7 and fine[1] / fine[0] < coarse[1] / coarse[0]:
            return fine
    low, high, ticks = coarse
    if len(ticks) > 8:
        # a wide axis (e.g. a CI from two studies): powers of ten and the ends only, so
        # the labels do not run into each other
        ticks = [t for t in ticks if t in (low, high) or math.log10(t).is_integer()]
    return low, high, ticks


#: Tick values of a log axis in months (pooled medians).
_MONTH_TICKS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0, 200.0, 500.0)


def _months_limits(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Log axis limits in months at tick values around the data (no null value)."""
    lo, hi = lo / 1.04, hi * 1.04
    low = max((t for t in _MONTH_TICKS if t <= lo), default=_MONTH_TICKS[0])
    high = min((t for t in _MONTH_TICKS if t >= hi), default=_MONTH_TICKS[-1])
    return low, high, [t for t in _MONTH_TICKS if low <= t <= high]


def _tick_label(value: float, _pos: Any = None) -> str:
    """Tick label without trailing zeros: 0.5, 1, 2, 20."""
    return f"{value:g}"


# --------------------------------------------------------------------------- rows


def _build_rows(doc: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Turn the document into the ordered rows of the plot.

    Returns the rows (dicts with a ``kind``: ``subgroup``, ``study``, ``pooled``,
    ``pi``, ``het``, ``note`` or ``spacer``) and facts used for titles and footnotes.
    """
    models = list(doc["models"])
    overall = next((m for m in models if m.get("model") == "overall"), models[0])
    sub_models = [m for m in models if m is not overall]
    studies = list(doc["studies"])
    k_total = as_float(overall.get("k"))
    single = (k_total == 1) or (len(studies) == 1 and not _is_pooled(overall))
    labels = [str(s.get("label")) for s in studies]
    duplicates = {label for label in labels if labels.count(label) > 1}
    has_subgroups = bool(sub_models)

    basis = weight_basis(studies, bool(sub_models))

    def study_row(s: Mapping[str, Any], sized: bool = True) -> dict[str, Any]:
        # ``sized``: the marker area follows the weight; not for a study that is not pooled
        # and whose weight is within its own subgroup (it would be 100%)
        return {
            "kind": "study",
            "study": s,
            "label": _study_label(s, duplicates),
            "indent": has_subgroups,
            "sized": sized,
        }

    def pooled_rows(m: Mapping[str, Any], label: str, *, is_overall: bool) -> list[dict[str, Any]]:
        if not _is_pooled(m):
            k = as_float(m.get("k"))
            note = "not pooled (k = 1)" if k == 1 else str(m.get("status") or "not pooled")
            return [{"kind": "note", "model": m, "label": label, "note": note}]
        rows = [
            {
                "kind": "pooled",
                "model": m,
                "label": f"{label} (k = {fmt_int(m.get('k'))})",
                "overall": is_overall,
            }
        ]
        if (
            is_overall
            and as_float(m.get("pi_lower")) is not None
            and as_float(m.get("pi_upper")) is not None
        ):
            rows.append({"kind": "pi", "model": m, "label": "Prediction interval"})
        het = heterogeneity_text(m)
        if het:
            rows.append({"kind": "het", "model": m, "label": f"Heterogeneity: {het}"})
        return rows

    rows: list[dict[str, Any]] = []
    if has_subgroups:
        order = [str(m.get("subgroup") or "") for m in sub_models]
        for s in studies:
            level = str(s.get("subgroup") or "")
            if level not in order:
                order.append(level)
        by_level = {str(m.get("subgroup") or ""): m for m in sub_models}
        for level in order:
            members = [s for s in studies if str(s.get("subgroup") or "") == level]
            rows.append({"kind": "subgroup", "label": level or "(no subgroup)"})
            sized = basis != "subgroup" or (level in by_level and _is_pooled(by_level[level]))
            rows.extend(study_row(s, sized) for s in members)
            if level in by_level:
                rows.extend(pooled_rows(by_level[level], "Subtotal", is_overall=False))
            rows.append({"kind": "spacer"})
        rows.extend(pooled_rows(overall, "Overall", is_overall=True))
    else:
        rows.extend(study_row(s, not single) for s in studies)
        if not single:
            rows.append({"kind": "spacer"})
            rows.extend(pooled_rows(overall, "Random-effects model", is_overall=True))
    while len(rows) < 2:
        rows.append({"kind": "spacer"})
    # marker area follows the study weight; without weights (the GLMM has none) it
    # follows the study size, so the plot still shows which studies are large
    sized_studies = [r["study"] for r in rows if r["kind"] == "study" and r["sized"]]
    if any(as_float(s.get("weight_pct")) is not None for s in sized_studies):
        size_key, marker_size = "weight_pct", "weight"
    elif any((as_float(s.get("total")) or 0) > 0 for s in sized_studies):
        size_key, marker_size = "total", "study size"
    else:
        size_key, marker_size = "weight_pct", "fixed"
    facts = {
        "overall": overall,
        "single": single,
        "has_subgroups": has_subgroups,
        "weight_basis": basis,
        "glmm": is_glmm(doc),
        "size_key": size_key,
        "marker_size": marker_size,
    }
    return rows, facts


# --------------------------------------------------------------------------- plot


def forest_plot(doc: Mapping[str, Any], *, layout: str = "default") -> Figure:
    """Draw the forest plot of one analysis document.

    Parameters
    ----------
    doc : mapping
        Analysis document (``analysis.json``; see ``docs/architecture.md``). Uses
        ``title``, ``measure``, ``effect_label``, ``methods``, ``models`` and
        ``studies``; the optional key ``favours`` (two strings, left and right of the
        null line) overrides "Favours experimental" / "Favours control" on ratio axes.
    layout : {"default", "compact", "revman5", "jama"}
        ``"default"`` shows study, data, plot, effect (CI) and weight columns;
        ``"compact"`` drops the data and weight columns; ``"revman5"`` follows RevMan 5
        (study | events, total or log[HR], SE | weight | effect ``[CI]`` | plot, black
        diamonds, "Total (95% CI)", heterogeneity and "Test for overall effect" lines,
        no rules); ``"jama"`` follows JAMA (compact rows, effect (CI) and weight, %
        right of the plot, one thin rule, "Favors ...", P without a leading zero). See
        :data:`LAYOUTS`.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, sized from its content. ``fig.metapool`` is a dict describing what
        was drawn: ``n_study_rows``, ``study_labels``, ``diamonds`` (dicts with
        ``model``, ``subgroup``, ``estimate``, ``center``, ``lower``, ``upper``, ``y``;
        centres in axis data coordinates, i.e. percent for proportions),
        ``diamond_centers``, ``not_pooled`` (subgroup levels drawn without a diamond),
        ``prediction_interval``, ``xscale`` (``"linear"`` or ``"log"``), ``xunit``
        (``"percent"`` or ``"ratio"``), ``xlim``, ``xticks``, ``single_study`` and
        ``method_line`` and ``weight_basis`` (``"overall"``, ``"subgroup"`` or
        ``"unknown"``: which model the study weights belong to) and ``marker_size``
        (``"weight"``, ``"study size"`` when there are no weights, e.g. with the GLMM,
        or ``"fixed"``); ``layout``, ``style``, ``headers`` (column key -> header
        text), ``columns`` (column key -> x of its text anchor, figure fraction),
        ``plot_x`` (left and right edge of the interval plot, figure fraction),
        ``favours`` (the two labels under a ratio axis, or None) and ``xlabel``. Study
        markers have gid ``study-<i>``, diamonds ``diamond-<j>`` and the prediction
        interval ``prediction-interval``.

    Raises
    ------
    ValueError
        For an unknown layout or a document without pooled rows.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not doc.get("models"):
        raise ValueError(f"analysis {doc.get('analysis')!r} has no pooled rows")
    with _style():
        return _draw(doc, {**LAYOUTS[layout], "name": layout})


#: Colours of each forest layout style.
_PALETTES: dict[str, dict[str, str]] = {
    "default": {
        "study": _STUDY,
        "ci": _INK,
        "pooled": _POOLED,
        "sub_pooled": "#4a6a94",
        "pi": _PI,
        "null": _GRID,
    },
    "revman5": {
        "study": "#2b7a3b",
        "ci": "#000000",
        "pooled": "#000000",
        "sub_pooled": "#000000",
        "pi": "#5a5a5a",
        "null": "#000000",
    },
    "jama": {
        "study": "#27507e",
        "ci": _INK,
        "pooled": "#27507e",
        "sub_pooled": "#5b7ea8",
        "pi": "#8a8a8a",
        "null": _GRID,
    },
}


def _p_text(value: Any, style: str) -> str:
    """``"P = 0.001"`` (RevMan) or ``"P = .001"`` (JAMA: no leading zero)."""
    text = fmt_p(value)
    if style == "jama":
        text = text.replace("0.", ".")
    if text[:1] in "<>":
        return f"P {text[0]} {text[1:]}"
    return f"P = {text}"


def _styled_ci(value: Any, lower: Any, upper: Any, measure: str, style: str) -> str:
    """Estimate with its interval in the convention of a layout style.

    ``"0.54 (0.31–0.92)"`` (default), ``"0.54 [0.31, 0.92]"`` (RevMan 5) or
    ``"0.54 (0.31-0.92)"`` (JAMA).
    """
    if style == "default":
        return _effect_text(value, lower, upper, measure)
    est = fmt_value(value, measure)
    if est == DASH:
        return DASH
    lo, hi = fmt_value(lower, measure), fmt_value(upper, measure)
    if DASH in (lo, hi):
        return est
    return f"{est} [{lo}, {hi}]" if style == "revman5" else f"{est} ({lo}-{hi})"


def _styled_interval(lower: Any, upper: Any, measure: str, style: str) -> str:
    """A bare interval: ``"(0.24–0.69)"``, ``"[0.24, 0.69]"`` or ``"(0.24-0.69)"``."""
    if style == "default":
        return f"({fmt_interval(lower, upper, measure)})"
    lo, hi = fmt_value(lower, measure), fmt_value(upper, measure)
    if DASH in (lo, hi):
        return DASH
    return f"[{lo}, {hi}]" if style == "revman5" else f"({lo}-{hi})"


def _styled_heterogeneity(m: Mapping[str, Any], style: str) -> str:
    """Heterogeneity line of a pooled row in the convention of a layout style.

    RevMan 5: ``"Heterogeneity: Tau² = 0.15; Chi² = 20.44, df = 5 (P = 0.001); I² = 70%"``;
    JAMA: ``"Heterogeneity: τ² = 0.1543; I² = 70%; Q = 20.44, df = 5, P = .001"``.
    """
    tau2, i2, q = as_float(m.get("tau2")), as_float(m.get("i2")), as_float(m.get("q"))
    df = as_float(m.get("q_df"))
    parts = []
    if style == "revman5":
        if tau2 is not None:
            tau_text = "<0.01" if 0 < tau2 < 0.005 else fmt_num(tau2, 2)
            parts.append(f"Tau\u00b2 = {tau_text}")
        if q is not None:
            chi = f"Chi\u00b2 = {fmt_num(q)}"
            if df is not None:
                chi += f", df = {fmt_int(df)}"
            if not is_missing(m.get("q_p")):
                chi += f" ({_p_text(m.get('q_p'), style)})"
            parts.append(chi)
        if i2 is not None:
            parts.append(f"I\u00b2 = {fmt_pct(i2, 0)}")
    else:
        if tau2 is not None:
            parts.append(f"\u03c4\u00b2 = {fmt_tau2(tau2)}")
        if i2 is not None:
            parts.append(f"I\u00b2 = {fmt_pct(i2, 0)}")
        if q is not None:
            text = f"Q = {fmt_num(q)}"
            if df is not None:
                text += f", df = {fmt_int(df)}"
            if not is_missing(m.get("q_p")):
                text += f", {_p_text(m.get('q_p'), style)}"
            parts.append(text)
    return "Heterogeneity: " + "; ".join(parts) if parts else ""


def _overall_effect_test(m: Mapping[str, Any], style: str) -> str:
    """``"Test for overall effect: t = 3.06, df = 5 (P = 0.03)"`` or ``"Z = 2.85 (P = ...)"``.

    The statistic is ``estimate_model / se_model``; a t statistic (k − 1 df) for the
    Hartung-Knapp-Sidik-Jonkman and t-based CIs, z otherwise. Empty when the row has
    no model-scale estimate.
    """
    est, se = as_float(m.get("estimate_model")), as_float(m.get("se_model"))
    if est is None or not se:
        return ""
    stat = fmt_num(abs(est / se))
    ci = str(m.get("ci_method") or "").lower()
    k = as_float(m.get("k"))
    if ci in {"hksj", "knha", "hk", "hartung-knapp", "hksj_adhoc", "adhoc", "t"} and k:
        head = f"t = {stat}, df = {fmt_int(k - 1)}"
    else:
        head = f"Z = {stat}"
    p = "" if is_missing(m.get("p_value")) else f" ({_p_text(m.get('p_value'), style)})"
    if style == "jama":
        p = p.replace(" (", ", ").rstrip(")") if p else ""
    return f"Test for overall effect: {head}{p}"


def _subgroup_difference_line(doc: Mapping[str, Any], style: str) -> str:
    """The test for subgroup differences (separate τ² per subgroup), RevMan-style."""
    tests = doc.get("subgroup_tests") or []
    test = next((t for t in tests if t.get("test") == "separate_tau2"), None)
    if not test or as_float(test.get("statistic")) is None:
        return ""
    q, df = as_float(test["statistic"]), as_float(test.get("df"))
    p = _p_text(test.get("p_value"), style)
    i2 = max(0.0, (q - df) / q) * 100.0 if df is not None and q > 0 else None
    if style == "revman5":
        text = f"Test for subgroup differences: Chi\u00b2 = {fmt_num(q)}"
        text += f", df = {fmt_int(df)} ({p})" if df is not None else f" ({p})"
        if i2 is not None:
            text += f", I\u00b2 = {fmt_pct(i2)}"
        return text
    text = f"Test for subgroup differences: Q = {fmt_num(q)}"
    text += f", df = {fmt_int(df)}, {p}" if df is not None else f", {p}"
    return text


def _restyle_rows(
    rows: list[dict[str, Any]], facts: Mapping[str, Any], doc: Mapping[str, Any], style: str
) -> list[dict[str, Any]]:
    """Rows of a RevMan 5 or JAMA forest plot from the default rows.

    Pooled rows are renamed (RevMan: "Subtotal (95% CI)", "Total (95% CI)"; JAMA:
    "Overall (k = 6)"), the heterogeneity lines restyled; RevMan adds a "Total events"
    row for proportions and a "Test for overall effect" line under each pooled row, and
    both add the test for subgroup differences at the end.
    """
    measure = str(doc.get("measure") or "")
    proportion = is_proportion_measure(measure)
    level = fmt_level((doc.get("methods") or {}).get("level", facts["overall"].get("level")))
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(rows):
        r = rows[i]
        kind = r["kind"]
        if kind not in ("pooled", "note"):
            out.append(r)
            i += 1
            continue
        m = r["model"]
        is_overall = m is facts["overall"]
        block = [r]
        i += 1
        while i < len(rows) and rows[i]["kind"] in ("pi", "het") and rows[i]["model"] is m:
            block.append(rows[i])
            i += 1
        head = dict(r)
        if style == "revman5":
            head["label"] = f"{'Total' if is_overall else 'Subtotal'} ({level} CI)"
        elif kind == "pooled":
            head["label"] = ("Overall" if is_overall else "Subtotal") + (
                f" (k = {fmt_int(m.get('k'))})"
            )
        out.append(head)
        out.extend(b for b in block if b["kind"] == "pi")
        if style == "revman5" and proportion and as_float(m.get("n_events")) is not None:
            out.append({"kind": "events", "model": m, "label": "Total events"})
        if kind == "pooled":
            het = _styled_heterogeneity(m, style)
            if het:
                out.append({"kind": "het", "model": m, "label": het})
            if style == "revman5":
                test = _overall_effect_test(m, style)
                if test:
                    out.append({"kind": "het", "model": m, "label": test})
        elif style == "revman5":
            out.append({"kind": "het", "model": m, "label": "Heterogeneity: Not applicable"})
    line = _subgroup_difference_line(doc, style) if facts["has_subgroups"] else ""
    if line:
        out.append({"kind": "het", "model": facts["overall"], "label": line})
    return out


def _draw(doc: Mapping[str, Any], opts: Mapping[str, Any]) -> Figure:
    style = str(opts.get("style", "default"))
    pal = _PALETTES[style]
    measure = str(doc.get("measure") or "")
    proportion = is_proportion_measure(measure)
    # pooled single-arm medians: months on a log axis, no null line, no "Favours" labels
    median = measure.lower() == "median"
    scale = 100.0 if proportion else 1.0
    rows, facts = _build_rows(doc)
    if style != "default":
        rows = _restyle_rows(rows, facts, doc, style)
    overall = facts["overall"]
    methods = doc.get("methods") or {}
    level = fmt_level(methods.get("level", overall.get("level")))
    effect_label = str(doc.get("effect_label") or ("Proportion" if proportion else measure))
    measure_text = _Measure()

    # ---- texts of every column -------------------------------------------------------
    derived_mark, cc_mark = "\u2020", "\u2021"
    any_derived = any(_is_derived(r["study"]) for r in rows if r["kind"] == "study")
    any_cc = any(is_yes(r["study"].get("cc_added")) for r in rows if r["kind"] == "study")
    study_weights = {
        id(r["study"]): as_float(r["study"].get("weight_pct")) for r in rows if r["kind"] == "study"
    }

    def weight_text(value: Any) -> str:
        if as_float(value) is None:
            return ""
        return fmt_pct(value) if style != "jama" else fmt_pct(value).rstrip("%")

    def pooled_weight(m: Mapping[str, Any]) -> str:
        """RevMan/JAMA show the weight of a pooled row: 100% or its studies' sum."""
        if style == "default" or not any(w is not None for w in study_weights.values()):
            return ""
        if m is overall or facts["weight_basis"] == "subgroup":
            return weight_text(100.0)
        level_name = str(m.get("subgroup") or "")
        members = [
            study_weights[id(s)]
            for s in doc["studies"]
            if str(s.get("subgroup") or "") == level_name and study_weights.get(id(s)) is not None
        ]
        return weight_text(sum(members)) if members else ""

    for r in rows:
        r.setdefault("data", "")
        r.setdefault("data2", "")
        r.setdefault("effect", "")
        r.setdefault("weight", "")
        if r["kind"] == "study":
            s = r["study"]
            if style == "revman5":
                if proportion:
                    r["data"] = fmt_int(s.get("events"))
                    r["data2"] = fmt_int(s.get("total"))
                else:
                    r["data"] = fmt_num(s.get("yi"), 4)
                    r["data2"] = fmt_num(s.get("sei"), 4)
            elif style == "jama":
                r["data"] = _data_text(s, proportion) if proportion else ""
            else:
                r["data"] = _data_text(s, proportion)
            r["effect"] = _styled_ci(
                s.get("effect"), s.get("ci_lower"), s.get("ci_upper"), measure, style
            )
            marks = (derived_mark if _is_derived(s) else "") + (
                cc_mark if is_yes(s.get("cc_added")) else ""
            )
            if marks and r["effect"] != DASH:
                r["effect"] += f" {marks}"
            r["weight"] = weight_text(s.get("weight_pct"))
        elif r["kind"] == "pooled":
            m = r["model"]
            counts = (
                proportion
                and as_float(m.get("n_events")) is not None
                and as_float(m.get("n_participants")) is not None
            )
            if style == "revman5":
                if proportion and as_float(m.get("n_participants")) is not None:
                    r["data2"] = fmt_int(m["n_participants"])
            elif counts:
                r["data"] = f"{fmt_int(m['n_events'])}/{fmt_int(m['n_participants'])}"
            r["effect"] = _styled_ci(
                m.get("estimate"), m.get("ci_lower"), m.get("ci_upper"), measure, style
            )
            r["weight"] = pooled_weight(m)
        elif r["kind"] == "events":
            r["data"] = fmt_int(r["model"].get("n_events"))
        elif r["kind"] == "note" and style == "revman5":
            m = r["model"]
            if proportion and as_float(m.get("n_participants")) is not None:
                r["data2"] = fmt_int(m["n_participants"])
            r["effect"] = "Not estimable"
        elif r["kind"] == "pi":
            m = r["model"]
            r["effect"] = _styled_interval(m.get("pi_lower"), m.get("pi_upper"), measure, style)

    if style == "revman5":
        effect_name = " ".join(w[:1].upper() + w[1:] for w in effect_label.split())
        code = str(_first(overall.get("method"), methods.get("estimator")) or "").upper()
        model = "GLMM, Random" if code == "GLMM" else "IV, Fixed" if code == "FE" else "IV, Random"
        ratio_name = effect_name if not proportion else effect_label
        headers: dict[str, Any] = {
            "label": "Study or Subgroup",
            "data": "Events" if proportion else f"log[{ratio_name}]",
            "data2": "Total" if proportion else "SE",
            "effect": f"{effect_name}\n{model}, {level} CI",
            "weight": "Weight",
            "plot": f"{effect_name}\n{model}, {level} CI",
        }
    elif style == "jama":
        short = "HR" if measure.upper() == "HR" else measure.upper() if not proportion else ""
        headers = {
            "label": "Source",
            "data": "Events/total",
            "data2": "",
            "effect": f"{short} ({level} CI)" if short else f"{effect_label}, % ({level} CI)",
            "weight": "Weight, %",
            "plot": "",
        }
    else:
        headers = {
            "label": "Study",
            "data": (
                "Events/Total"
                if proportion
                else "Reported HR" if measure.upper() == "HR" else "Reported"
            ),
            "data2": "",
            "effect": (
                f"{effect_label}, % ({level} CI)" if proportion else f"{effect_label} ({level} CI)"
            ),
            "weight": "Weight",
            "plot": "",
        }

    def label_style(r: dict[str, Any]) -> tuple[float, str, str]:
        kind = r["kind"]
        if kind in ("subgroup", "pooled"):
            return _SIZE, "bold", "normal"
        if kind == "het":
            return _SMALL, "normal", "italic"
        if kind == "note" and style == "revman5":
            return _SIZE, "bold", "normal"
        if kind in ("pi", "note"):
            return _SIZE, "normal", "italic"
        return _SIZE, "normal", "normal"

    ratio = not proportion
    # ---- x limits --------------------------------------------------------------------
    lows: list[float] = []
    highs: list[float] = []
    for r in rows:
        if r["kind"] == "study":
            s = r["study"]
            vals = [as_float(s.get(k)) for k in ("effect", "ci_lower", "ci_upper")]
        elif r["kind"] == "pooled":
            m = r["model"]
            vals = [as_float(m.get(k)) for k in ("estimate", "ci_lower", "ci_upper")]
        elif r["kind"] == "pi":
            m = r["model"]
            vals = [as_float(m.get("pi_lower")), as_float(m.get("pi_upper"))]
        else:
            continue
        vals = [v * scale for v in vals if v is not None and (proportion or v > 0)]
        if vals:
            lows.append(min(vals))
            highs.append(max(vals))
    if proportion:
        lo_d, hi_d = (min(lows), max(highs)) if lows else (0.0, 100.0)
        xmin, xmax, ticks = _percent_limits(lo_d, hi_d)
    elif median:
        lo_d, hi_d = (min(lows), max(highs)) if lows else (1.0, 100.0)
        xmin, xmax, ticks = _months_limits(lo_d, hi_d)
    else:
        lo_d, hi_d = (min(lows), max(highs)) if lows else (0.5, 2.0)
        xmin, xmax, ticks = _log_limits(lo_d, hi_d)

    # ---- column widths (inches) ------------------------------------------------------
    def text_width(text: str, size: float, weight: str) -> float:
        return max(measure_text.width(line, size, weight) for line in text.split("\n"))

    def col_width(key: str, bold_kinds: tuple[str, ...] = ("pooled",)) -> float:
        widths = [text_width(headers[key], _SIZE, "bold")] if headers[key] else [0.0]
        for r in rows:
            if r.get(key):
                weight = "bold" if r["kind"] in bold_kinds else "normal"
                widths.append(measure_text.width(r[key], _SIZE, weight))
        return max(widths)

    label_w = measure_text.width(headers["label"], _SIZE, "bold")
    het_w = 0.0
    het_style = "italic" if style != "revman5" else "normal"
    for r in rows:
        if r["kind"] == "het":
            het_w = max(
                het_w, measure_text.width(r["label"], _SMALL, "normal", het_style) + _INDENT
            )
        elif "label" in r:
            size, weight, fstyle = label_style(r)
            indent = _INDENT if r.get("indent") else 0.0
            label_w = max(label_w, measure_text.width(r["label"], size, weight, fstyle) + indent)
    show_data = bool(opts["data_column"]) and any(r["data"] for r in rows)
    show_weight = opts["weight_column"] and any(r["weight"] for r in rows)
    widths = {
        "data": col_width("data") if show_data else 0.0,
        "data2": col_width("data2") if show_data and style == "revman5" else 0.0,
        "effect": col_width("effect"),
        "weight": col_width("weight") if show_weight else 0.0,
    }
    # (key, alignment) of the text columns left and right of the interval plot
    if style == "revman5":
        left_cols = [("data", "right"), ("data2", "right"), ("weight", "right"), ("effect", "left")]
        right_cols: list[tuple[str, str]] = []
    else:
        left_cols = [("data", "right")]
        right_cols = [("effect", "left"), ("weight", "right")]
    left_cols = [c for c in left_cols if widths[c[0]]]
    right_cols = [c for c in right_cols if widths[c[0]]]
    left_block = label_w + sum(_GAP + widths[key] for key, _ in left_cols)
    if het_w > left_block:
        label_w += het_w - left_block
        left_block = het_w
    plot_w = float(opts["plot_width"])

    x_label = _MARGIN
    anchors: dict[str, float] = {}
    x = x_label + label_w
    for key, align in left_cols:
        x += _GAP
        anchors[key] = x + widths[key] if align == "right" else x
        x += widths[key]
    x_plot = x_label + left_block + _GAP * 1.5
    x = x_plot + plot_w + _GAP * 1.5
    for j, (key, align) in enumerate(right_cols):
        if j:
            x += _GAP
        anchors[key] = x + widths[key] if align == "right" else x
        x += widths[key]
    width = (x if right_cols else x_plot + plot_w) + _MARGIN
    if ratio and not median and style != "default" and xmin < 1.0 < xmax:
        # the "Favours control" label right of the null line must fit in the figure
        one = x_plot + plot_w * math.log(1.0 / xmin) / math.log(xmax / xmin)
        right_label = "Favors control" if style == "jama" else "Favours control"
        favours = doc.get("favours")
        if isinstance(favours, (list, tuple)) and len(favours) == 2:
            right_label = str(favours[1])
        width = max(width, one + 0.08 + measure_text.width(right_label, _SMALL) + _MARGIN)
    aligns = dict(left_cols + right_cols)

    # ---- footer texts ----------------------------------------------------------------
    pooled_any = any(r["kind"] == "pooled" for r in rows)
    has_pi = any(r["kind"] == "pi" for r in rows)
    method = _method_line(doc, overall, _is_pooled(overall) or pooled_any, has_pi)
    notes: list[str] = []
    ci_methods = sorted(
        {
            str(r["study"].get("study_ci_method"))
            for r in rows
            if r["kind"] == "study" and not is_missing(r["study"].get("study_ci_method"))
        }
    )
    if proportion and ci_methods:
        notes.append(
            "Study CIs: " + ", ".join(_STUDY_CI.get(c.lower(), c) for c in ci_methods) + "."
        )
    if any_derived:
        notes.append(f"{derived_mark} Value derived from reported statistics (see report).")
    if any_cc:
        notes.append(f"{cc_mark} Continuity correction added for pooling.")
    if facts["marker_size"] == "study size":
        notes.append(
            "Marker size proportional to study size; the GLMM has no inverse-variance weights."
            if facts["glmm"]
            else "Marker size proportional to study size."
        )
    if facts["has_subgroups"] and show_weight and facts["weight_basis"] == "subgroup":
        notes.append("Weights are within subgroup.")
    elif facts["has_subgroups"] and show_weight and facts["weight_basis"] == "overall":
        notes.append("Weights are from the overall model.")
    if style == "revman5" and not proportion:
        notes.append(f"log[{headers['data'][4:-1]}] and SE on the model (log) scale.")
    foot_lines = _wrap(method, width - 2 * _MARGIN, measure_text, _SMALL)
    if notes:
        foot_lines += _wrap(" ".join(notes), width - 2 * _MARGIN, measure_text, _SMALL)

    # ---- heights (inches) ------------------------------------------------------------
    row_h = float(opts["row_height"])
    title = str(doc.get("title") or doc.get("analysis") or "")
    title_lines = _wrap(title, width - 2 * _MARGIN, measure_text, _TITLE)
    subtitle = "single study \u2014 not pooled" if facts["single"] else ""
    title_h = 0.08 + 0.19 * len(title_lines) + (0.17 if subtitle else 0.0) + 0.06
    header_lines = max(str(h).count("\n") + 1 for h in headers.values())
    header_h = 0.26 + 0.14 * (header_lines - 1)
    rows_h = row_h * len(rows)
    favours_row = ratio and not median
    xlabel_row = style != "revman5"
    axis_h = 0.33 + (0.17 if xlabel_row else 0.0) + (0.17 if favours_row else 0.0)
    foot_h = 0.14 * len(foot_lines) + 0.08
    height = title_h + header_h + rows_h + axis_h + foot_h

    fig = _new_figure(width, height)
    n = len(rows)
    ax = _row_axes(fig, (x_plot / width, (axis_h + foot_h) / height, plot_w / width,
                         rows_h / height), n, ratio=ratio, xmin=xmin, xmax=xmax, ticks=ticks)

    blend = mtransforms.blended_transform_factory(fig.transFigure, ax.transData)
    fx = 1.0 / width  # inches -> figure fraction (x)

    def ftext(x_in: float, y: float, text: str, **kw: Any) -> None:
        kw.setdefault("fontsize", _SIZE)
        kw.setdefault("va", "center")
        kw.setdefault("color", _INK)
        fig.text(x_in * fx, y, text, transform=blend, parse_math=False, **kw)

    def hrule(y: float, lw: float) -> None:
        fig.add_artist(
            Line2D(
                [_MARGIN * fx, (width - _MARGIN) * fx],
                [y, y],
                transform=blend,
                color=_INK,
                lw=lw,
                solid_capstyle="butt",
            )
        )

    # ---- title and header ------------------------------------------------------------
    y_top = height - 0.08
    for line in title_lines:
        fig.text(
            _MARGIN * fx,
            (y_top - 0.02) / height,
            line,
            fontsize=_TITLE,
            fontweight="bold",
            va="top",
            ha="left",
            color=_INK,
            parse_math=False,
        )
        y_top -= 0.19
    if subtitle:
        fig.text(
            _MARGIN * fx,
            (y_top - 0.02) / height,
            subtitle,
            fontsize=_SIZE,
            fontstyle="italic",
            va="top",
            ha="left",
            color=_NOTE,
            parse_math=False,
        )
    y_header = -0.5 - (header_h / 2) / row_h
    if style == "default":
        hrule(-0.5 - header_h / row_h, 0.9)
        hrule(-0.5, 0.6)
        hrule(n - 0.5, 0.6)
    elif style == "jama":
        hrule(-0.5, 0.5)

    def header(x_in: float, text: str, ha: str) -> None:
        # linespacing only for two-line headers (it shifts a single line slightly)
        extra = {"linespacing": 1.25} if "\n" in text else {}
        ftext(x_in, y_header, text, fontweight="bold", ha=ha, **extra)

    header(x_label, headers["label"], "left")
    for key, align in left_cols + right_cols:
        header(anchors[key], headers[key], align)
    if headers["plot"]:
        header(x_plot + plot_w / 2, headers["plot"], "center")

    # ---- reference lines -------------------------------------------------------------
    last_plot_row = max(
        (i for i, r in enumerate(rows) if r["kind"] in ("study", "pooled", "pi", "note")),
        default=n - 1,
    )
    if not proportion and not median:
        if style == "jama":
            ax.add_line(
                Line2D(
                    [1.0, 1.0],
                    [-0.5, last_plot_row + 0.5],
                    color=pal["null"],
                    lw=0.7,
                    ls=(0, (3, 2)),
                    zorder=1,
                )
            )
        elif style == "revman5":
            ax.add_line(Line2D([1.0, 1.0], [-0.5, n - 0.5], color=pal["null"], lw=0.6, zorder=1))
        else:
            ax.add_line(Line2D([1.0, 1.0], [-0.5, n - 0.5], color=_GRID, lw=0.7, zorder=1))
    if _is_pooled(overall) and style == "default":
        est = as_float(overall["estimate"]) * scale
        if xmin <= est <= xmax:
            ax.add_line(
                Line2D(
                    [est, est],
                    [-0.5, last_plot_row + 0.4],
                    color=_POOLED,
                    lw=0.6,
                    ls=(0, (2, 2)),
                    alpha=0.7,
                    zorder=1,
                )
            )

    # ---- rows ------------------------------------------------------------------------
    size_key = facts["size_key"]
    sizes = [
        as_float(r["study"].get(size_key)) for r in rows if r["kind"] == "study" and r["sized"]
    ]
    w_max = max((w for w in sizes if w is not None), default=None)
    meta: dict[str, Any] = {
        "n_study_rows": 0,
        "study_labels": [],
        "diamonds": [],
        "diamond_centers": [],
        "not_pooled": [],
        "prediction_interval": None,
        "xscale": "log" if ratio else "linear",
        "xunit": "months" if median else "ratio" if ratio else "percent",
        "xlim": (xmin, xmax),
        "xticks": list(ticks),
        "single_study": facts["single"],
        "method_line": method,
        "weight_basis": facts["weight_basis"],
        "marker_size": facts["marker_size"],
    }

    def clipped_segment(
        lo: float, hi: float, y: float, color: str, lw: float, gid: str | None = None
    ) -> None:
        lo_c, hi_c = max(lo, xmin), min(hi, xmax)
        if hi_c > lo_c:
            line = Line2D([lo_c, hi_c], [y, y], color=color, lw=lw, solid_capstyle="butt", zorder=3)
            if gid:
                line.set_gid(gid)
            ax.add_line(line)
        if lo < xmin:
            ax.add_line(
                Line2D(
                    [xmin],
                    [y],
                    marker="<",
                    ms=3.5,
                    color=color,
                    ls="none",
                    clip_on=False,
                    zorder=3,
                )
            )
        if hi > xmax:
            ax.add_line(
                Line2D(
                    [xmax],
                    [y],
                    marker=">",
                    ms=3.5,
                    color=color,
                    ls="none",
                    clip_on=False,
                    zorder=3,
                )
            )

    for y, r in enumerate(rows):
        kind = r["kind"]
        if kind == "spacer":
            continue
        size, weight, fstyle = label_style(r)
        indent = _INDENT if r.get("indent") else 0.0
        if kind == "het":
            ftext(
                x_label + (_INDENT if facts["has_subgroups"] else 0.0),
                y,
                r["label"],
                fontsize=_SMALL,
                fontstyle=het_style,
                color=_NOTE,
                ha="left",
            )
            continue
        ftext(
            x_label + indent,
            y,
            r["label"],
            fontsize=size,
            fontweight=weight,
            fontstyle=fstyle,
            ha="left",
            color=_NOTE if kind in ("pi", "note") else _INK,
        )
        text_weight = "bold" if kind == "pooled" else "normal"
        for key in ("data", "data2", "effect", "weight"):
            if key in anchors and r[key]:
                kw: dict[str, Any] = {"fontweight": text_weight, "ha": aligns[key]}
                if key == "effect" and kind == "pi":
                    kw["color"] = _NOTE
                if key == "weight":
                    kw.pop("fontweight")
                ftext(anchors[key], y, r[key], **kw)

        if kind == "study":
            s = r["study"]
            i = meta["n_study_rows"]
            meta["n_study_rows"] += 1
            meta["study_labels"].append(r["label"])
            est, lo, hi = (as_float(s.get(k)) for k in ("effect", "ci_lower", "ci_upper"))
            if lo is not None and hi is not None and (proportion or lo > 0):
                clipped_segment(lo * scale, hi * scale, y, pal["ci"], 0.9, gid=f"study-ci-{i}")
            if est is not None and (proportion or est > 0) and xmin <= est * scale <= xmax:
                w = as_float(s.get(size_key))
                if w is None or not w_max or not r["sized"]:
                    side = 5.0
                else:
                    side = max(2.5, 10.0 * math.sqrt(max(w, 0.0) / w_max))
                marker = Line2D(
                    [est * scale],
                    [y],
                    marker="s",
                    ms=side,
                    mfc=pal["study"],
                    mec=pal["study"],
                    mew=0.0,
                    ls="none",
                    zorder=2,
                    clip_on=False,
                )
                marker.set_gid(f"study-{i}")
                ax.add_line(marker)
        elif kind == "pooled":
            m = r["model"]
            est = as_float(m["estimate"]) * scale
            lo = as_float(m.get("ci_lower"))
            hi = as_float(m.get("ci_upper"))
            lo = est if lo is None else lo * scale
            hi = est if hi is None else hi * scale
            half = 0.36
            j = len(meta["diamonds"])
            diamond = Polygon(
                [(max(lo, xmin), y), (est, y - half), (min(hi, xmax), y), (est, y + half)],
                closed=True,
                facecolor=pal["pooled"] if r["overall"] else pal["sub_pooled"],
                edgecolor=pal["pooled"],
                lw=0.6,
                zorder=4,
            )
            diamond.set_gid(f"diamond-{j}")
            ax.add_patch(diamond)
            if lo < xmin or hi > xmax:
                clipped_segment(lo, hi, y, pal["pooled"], 0.6)
            meta["diamonds"].append(
                {
                    "model": str(m.get("model", "")),
                    "subgroup": str(m.get("subgroup") or ""),
                    "estimate": as_float(m["estimate"]),
                    "center": est,
                    "lower": lo,
                    "upper": hi,
                    "y": float(y),
                }
            )
            meta["diamond_centers"].append(est)
        elif kind == "pi":
            m = r["model"]
            lo, hi = as_float(m["pi_lower"]) * scale, as_float(m["pi_upper"]) * scale
            clipped_segment(
                lo, hi, y, pal["pi"], 2.2 if style == "default" else 1.6, gid="prediction-interval"
            )
            for x in (lo, hi):
                if xmin <= x <= xmax:
                    ax.add_line(
                        Line2D([x, x], [y - 0.18, y + 0.18], color=pal["pi"], lw=0.9, zorder=3)
                    )
            meta["prediction_interval"] = (lo, hi)
        elif kind == "note":
            meta["not_pooled"].append(str(r["model"].get("subgroup") or "overall"))
            if style == "revman5":
                continue  # "Not estimable" is in the effect column
            ax.text(
                0.5,
                y,
                r["note"],
                transform=mtransforms.blended_transform_factory(ax.transAxes, ax.transData),
                ha="center",
                va="center",
                fontsize=_SMALL,
                fontstyle="italic",
                color=_NOTE,
                parse_math=False,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0},
                zorder=5,
            )

    # ---- axis labels -----------------------------------------------------------------
    below = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    axes_center = mtransforms.blended_transform_factory(ax.transAxes, ax.transAxes)
    offset = 0.27  # inches below the axis line: under the tick labels
    favours_drawn: tuple[str, str] | None = None
    if ratio and not median:
        spelling = "Favors" if style == "jama" else "Favours"
        left, right = (f"{spelling} experimental", f"{spelling} control")
        favours = doc.get("favours")
        if isinstance(favours, (list, tuple)) and len(favours) == 2:
            left, right = str(favours[0]), str(favours[1])
        if xmin < 1.0 < xmax:
            favours_drawn = (left, right)
            arrows = style == "default"
            for sign, text, ha in (
                (-1, f"\u2190 {left}" if arrows else left, "right"),
                (1, f"{right} \u2192" if arrows else right, "left"),
            ):
                shift = mtransforms.ScaledTranslation(sign * 0.08, -offset, fig.dpi_scale_trans)
                ax.text(
                    1.0,
                    0,
                    text,
                    transform=below + shift,
                    ha=ha,
                    va="top",
                    fontsize=_SMALL,
                    color=_NOTE,
                    parse_math=False,
                    clip_on=False,
                )
        offset += 0.17
    if median:
        xlabel = "Median time to event, months" + (
            f" ({level} CI)" if style == "jama" else " (log scale)"
        )
    elif style == "jama":
        xlabel = f"{effect_label}, % ({level} CI)" if proportion else f"{effect_label} ({level} CI)"
    else:
        xlabel = f"{effect_label} (%)" if proportion else f"{effect_label} (log scale)"
    if xlabel_row:
        ax.text(
            0.5,
            0,
            xlabel,
            transform=axes_center + mtransforms.ScaledTranslation(0, -offset, fig.dpi_scale_trans),
            ha="center",
            va="top",
            fontsize=_SIZE,
            color=_INK,
            parse_math=False,
            clip_on=False,
        )

    # ---- footer ----------------------------------------------------------------------
    y_foot = foot_h - 0.02
    for line in foot_lines:
        fig.text(
            _MARGIN * fx,
            y_foot / height,
            line,
            fontsize=_SMALL,
            va="top",
            ha="left",
            color=_NOTE,
            parse_math=False,
        )
        y_foot -= 0.14

    meta.update(
        layout=str(opts.get("name", "default")),
        style=style,
        headers={k: v for k, v in headers.items() if v},
        columns={key: anchors[key] / width for key in anchors},
        plot_x=(x_plot / width, (x_plot + plot_w) / width),
        favours=favours_drawn,
        xlabel=xlabel if xlabel_row else None,
    )
    fig.metapool = meta  # type: ignore[attr-defined]
    return fig


# --------------------------------------------------------------------------- shared parts

_CHANGED = "#c0431f"  # a sensitivity variant whose conclusion changed
_BAND = "#e6ecf3"  # the primary analysis' CI behind the sensitivity rows
_CAVEAT = "#8a2b1f"


def _new_figure(width: float, height: float) -> Figure:
    """An empty figure on its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=(round(width, 4), round(height, 4)), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _row_axes(
    fig: Figure,
    rect: tuple[float, float, float, float],
    n: int,
    *,
    ratio: bool,
    xmin: float,
    xmax: float,
    ticks: Sequence[float],
) -> Axes:
    """The axes of a row plot (forest, leave-one-out, cumulative, sensitivity): ``n``
    rows from the top, no y axis, a bottom x axis (log for ratios) with fixed ticks
    spanning exactly [xmin, xmax]."""
    ax = fig.add_axes(rect)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_autoscale_on(False)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.yaxis.set_major_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())
    ax.patch.set_visible(False)
    ax.set_xscale("log" if ratio else "linear")
    ax.set_xlim(xmin, xmax)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_tick_label))
    ax.spines["bottom"].set_bounds(xmin, xmax)
    return ax


def _put_lines(
    fig: Figure,
    lines: list[tuple[str, dict[str, Any]]],
    x_in: float,
    y_top_in: float,
    width: float,
    height: float,
) -> float:
    """Draw text lines top-down from ``y_top_in`` (inches); return the y below them."""
    y = y_top_in
    for text, kw in lines:
        step = kw.pop("step", 0.17)
        kw.setdefault("fontsize", _SIZE)
        kw.setdefault("color", _INK)
        fig.text(x_in / width, y / height, text, va="top", ha="left", parse_math=False, **kw)
        y -= step
    return y


def _wrapped(
    texts: list[str], width_in: float, measure: _Measure, size: float, **kw: Any
) -> list[tuple[str, dict[str, Any]]]:
    """Wrap several paragraphs into ``(line, style)`` pairs for :func:`_put_lines`."""
    out = []
    for text in texts:
        # 5% slack: text measured at 72 dpi runs slightly wider when drawn at 100-300 dpi
        for line in _wrap(text, 0.95 * width_in, measure, size, kw.get("fontweight", "normal")):
            out.append((line, dict(kw, fontsize=size, step=size / 72.0 * 1.45)))
    return out


def _lines_height(lines: list[tuple[str, dict[str, Any]]]) -> float:
    return sum(kw.get("step", 0.17) for _, kw in lines)


def _title_lines(
    title: str, subtitle: str, width_in: float, measure: _Measure
) -> list[tuple[str, dict[str, Any]]]:
    lines = [
        (line, {"fontsize": _TITLE, "fontweight": "bold", "step": 0.19})
        for line in _wrap(title, 0.95 * width_in, measure, _TITLE, "bold")
    ]
    if subtitle:
        lines += [
            (line, {"fontsize": _SIZE, "fontstyle": "italic", "color": _NOTE, "step": 0.17})
            for line in _wrap(subtitle, width_in, measure, _SIZE)
        ]
    return lines


def _doc_title(doc: Mapping[str, Any]) -> str:
    return str(doc.get("title") or doc.get("analysis") or "")


def _model_text(model: Any) -> str:
    """The section model as printed (``tau²`` becomes ``τ²``)."""
    return "" if is_missing(model) else str(model).replace("tau\u00b2", "\u03c4\u00b2")


def _k_of(doc: Mapping[str, Any]) -> int:
    """Number of included studies of a document."""
    models = doc.get("models") or []
    k = as_float(models[0].get("k")) if models else None
    return int(k) if k is not None else len(doc.get("studies") or [])


def placeholder_figure(title: str, message: str, *, figure: str = "", details: str = "") -> Figure:
    """A small figure that says why a figure was not drawn.

    Used when a section of the analysis document is empty (e.g. leave-one-out with
    k < 3), so every expected figure file exists and states the reason in place.

    Parameters
    ----------
    title : str
        Title line (usually the analysis title).
    message : str
        The reason, e.g. ``"Leave-one-out analysis not done: it needs at least 3
        studies (k = 2)."``.
    figure : str, optional
        Which figure this stands in for (``fig.metapool["figure"]``).
    details : str, optional
        A second, smaller explanatory line.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.metapool`` is ``{"figure": figure, "placeholder": True, "message":
        message}``.
    """
    with _style():
        measure = _Measure()
        width = 6.2
        inner = width - 2 * _MARGIN
        head = _title_lines(title, "", inner, measure)
        body = _wrapped([message], inner - 0.3, measure, _SIZE, fontstyle="italic", color=_NOTE)
        extra = _wrapped([details], inner - 0.3, measure, _SMALL, color=_NOTE) if details else []
        box_h = _lines_height(body) + _lines_height(extra) + 0.19
        height = 0.1 + _lines_height(head) + 0.1 + box_h + 0.14
        fig = _new_figure(width, height)
        y = _put_lines(fig, head, _MARGIN, height - 0.1, width, height) - 0.1
        box = Rectangle(
            (_MARGIN / width, (y - box_h) / height),
            inner / width,
            box_h / height,
            transform=fig.transFigure,
            facecolor="#f4f4f4",
            edgecolor="#b9b9b9",
            lw=0.6,
        )
        fig.add_artist(box)
        y = _put_lines(fig, body, _MARGIN + 0.15, y - 0.11, width, height)
        _put_lines(fig, extra, _MARGIN + 0.15, y, width, height)
        fig.metapool = {  # type: ignore[attr-defined]
            "figure": figure,
            "placeholder": True,
            "message": message,
        }
        return fig


def _natural_limits(values: list[float], proportion: bool) -> tuple[float, float, list[float]]:
    """Axis limits and ticks on the natural scale: percent (linear) or ratio (log)."""
    if proportion:
        vals = [v for v in values if v is not None]
        return _percent_limits(min(vals), max(vals)) if vals else (0.0, 100.0, [0.0, 50.0, 100.0])
    vals = [v for v in values if v is not None and v > 0]
    return _log_limits(min(vals), max(vals)) if vals else _log_limits(0.5, 2.0)


def _interval_figure(
    *,
    figure: str,
    title: str,
    subtitle: str,
    caveat: str,
    headers: Mapping[str, str],
    left_cols: list[tuple[str, str]],
    right_cols: list[tuple[str, str]],
    rows: list[dict[str, Any]],
    proportion: bool,
    reference: list[dict[str, Any]],
    band: tuple[float, float] | None,
    xlabel: str,
    notes: list[str],
    legend: list[dict[str, Any]] | None = None,
    plot_width: float = 2.5,
    row_height: float = 0.2,
) -> Figure:
    """A forest-style figure of estimates with intervals, one per row.

    ``rows`` are dicts with ``kind`` (``"row"``, ``"summary"`` (a diamond), ``"note"``
    or ``"spacer"``), ``label``, ``cells`` (column key -> text), ``est``/``lo``/``hi``
    on the axis scale (percent or ratio), and for ``"row"`` the marker style
    (``marker``, ``color``, ``mfc``, ``ms``), ``bold`` and ``label_color``.
    ``reference`` lists vertical lines (``x``, ``color``, ``ls``, ``lw``, ``kind``);
    ``band`` shades an interval behind the rows. Columns and geometry follow
    :func:`forest_plot`. Returns the figure with ``fig.metapool`` describing the rows.
    """
    measure = _Measure()
    ratio = not proportion

    def cell_width(key: str) -> float:
        widths = [measure.width(headers.get(key, ""), _SIZE, "bold")]
        for r in rows:
            text = (r.get("cells") or {}).get(key, "")
            if text:
                widths.append(measure.width(text, _SIZE, "bold" if r.get("bold") else "normal"))
        return max(widths)

    label_w = measure.width(headers.get("label", ""), _SIZE, "bold")
    for r in rows:
        if r.get("label"):
            weight = "bold" if r.get("bold") or r["kind"] == "summary" else "normal"
            style = "italic" if r["kind"] == "note" else "normal"
            label_w = max(label_w, measure.width(r["label"], _SIZE, weight, style))
    widths = {key: cell_width(key) for key, _ in left_cols + right_cols}
    anchors: dict[str, float] = {}
    x = _MARGIN + label_w
    for key, align in left_cols:
        x += _GAP
        anchors[key] = x + widths[key] if align == "right" else x
        x += widths[key]
    x_plot = x + _GAP * 1.5
    x = x_plot + plot_width + _GAP * 1.5
    for j, (key, align) in enumerate(right_cols):
        if j:
            x += _GAP
        anchors[key] = x + widths[key] if align == "right" else x
        x += widths[key]
    width = max(x + _MARGIN, 5.6)
    aligns = dict(left_cols + right_cols)

    # ---- axis limits
    values: list[float] = []
    for r in rows:
        values += [v for v in (r.get("est"), r.get("lo"), r.get("hi")) if v is not None]
    values += [ref["x"] for ref in reference if ref.get("x") is not None]
    if band:
        values += list(band)
    xmin, xmax, ticks = _natural_limits(values, proportion)
    if ratio and xmin < 1.0 < xmax:
        one = x_plot + plot_width * math.log(1.0 / xmin) / math.log(xmax / xmin)
        width = max(width, one + 0.08 + measure.width("Favours control", _SMALL) + _MARGIN)

    # ---- heights
    inner = width - 2 * _MARGIN
    head = _title_lines(title, subtitle, inner, measure)
    if caveat:
        head += _wrapped([caveat], inner, measure, _SIZE, color=_CAVEAT, fontweight="bold")
    foot = _wrapped(notes, inner, measure, _SMALL, color=_NOTE)
    legend_h = 0.2 if legend else 0.0
    header_h = 0.26
    rows_h = row_height * max(len(rows), 1)
    axis_h = 0.5 + (0.17 if ratio else 0.0)
    title_h = 0.1 + _lines_height(head) + 0.06
    foot_h = legend_h + _lines_height(foot) + 0.1
    height = title_h + header_h + rows_h + axis_h + foot_h

    fig = _new_figure(width, height)
    _put_lines(fig, head, _MARGIN, height - 0.1, width, height)
    n = max(len(rows), 1)
    ax = _row_axes(fig, (x_plot / width, (axis_h + foot_h) / height, plot_width / width,
                         rows_h / height), n, ratio=ratio, xmin=xmin, xmax=xmax, ticks=ticks)

    blend = mtransforms.blended_transform_factory(fig.transFigure, ax.transData)
    fx = 1.0 / width

    def ftext(x_in: float, y: float, text: str, **kw: Any) -> None:
        kw.setdefault("fontsize", _SIZE)
        kw.setdefault("va", "center")
        kw.setdefault("color", _INK)
        fig.text(x_in * fx, y, text, transform=blend, parse_math=False, **kw)

    def hrule(y: float, lw: float) -> None:
        fig.add_artist(
            Line2D(
                [_MARGIN * fx, (width - _MARGIN) * fx],
                [y, y],
                transform=blend,
                color=_INK,
                lw=lw,
                solid_capstyle="butt",
            )
        )

    y_header = -0.5 - (header_h / 2) / row_height
    hrule(-0.5 - header_h / row_height, 0.9)
    hrule(-0.5, 0.6)
    hrule(n - 0.5, 0.6)
    ftext(_MARGIN, y_header, headers.get("label", ""), fontweight="bold", ha="left")
    for key, align in left_cols + right_cols:
        ftext(anchors[key], y_header, headers.get(key, ""), fontweight="bold", ha=align)

    # ---- band and reference lines
    if band is not None:
        lo_b, hi_b = max(band[0], xmin), min(band[1], xmax)
        if hi_b > lo_b:
            ax.add_patch(
                Rectangle(
                    (lo_b, -0.5),
                    hi_b - lo_b,
                    n,
                    facecolor=_BAND,
                    edgecolor="none",
                    zorder=0,
                    gid="primary-ci-band",
                )
            )
    ref_meta = []
    for ref in reference:
        xr = ref["x"]
        if xr is None or not xmin <= xr <= xmax:
            continue
        line = Line2D(
            [xr, xr],
            [-0.5, n - 0.5],
            color=ref.get("color", _GRID),
            lw=ref.get("lw", 0.7),
            ls=ref.get("ls", "-"),
            zorder=1,
        )
        line.set_gid(f"reference-{ref.get('kind', 'line')}")
        ax.add_line(line)
        ref_meta.append({"kind": ref.get("kind", "line"), "x": xr})

    # ---- rows
    drawn: list[dict[str, Any]] = []
    for y, r in enumerate(rows):
        kind = r["kind"]
        if kind == "spacer":
            continue
        bold = r.get("bold") or kind == "summary"
        ftext(
            _MARGIN,
            y,
            r.get("label", ""),
            fontweight="bold" if bold else "normal",
            fontstyle="italic" if kind == "note" else "normal",
            color=r.get("label_color", _NOTE if kind == "note" else _INK),
            ha="left",
        )
        for key, text in (r.get("cells") or {}).items():
            if key in anchors and text:
                ftext(
                    anchors[key],
                    y,
                    text,
                    ha=aligns[key],
                    fontweight="bold" if bold else "normal",
                    color=r.get("cell_color", _INK),
                )
        est, lo, hi = r.get("est"), r.get("lo"), r.get("hi")
        if kind == "note":
            ax.text(
                0.5,
                y,
                r.get("note", "not pooled"),
                transform=mtransforms.blended_transform_factory(ax.transAxes, ax.transData),
                ha="center",
                va="center",
                fontsize=_SMALL,
                fontstyle="italic",
                color=_NOTE,
                parse_math=False,
                zorder=5,
            )
            drawn.append({"label": r.get("label", ""), "y": float(y), "kind": "note"})
            continue
        if lo is not None and hi is not None:
            lo_c, hi_c = max(lo, xmin), min(hi, xmax)
            color = r.get("ci_color", _INK) if kind == "row" else _POOLED
            if hi_c > lo_c and kind == "row":
                ax.add_line(
                    Line2D(
                        [lo_c, hi_c],
                        [y, y],
                        color=r.get("ci_color", _INK),
                        lw=0.9,
                        solid_capstyle="butt",
                        zorder=3,
                        gid=f"ci-{len(drawn)}",
                    )
                )
            for edge, limit, mark in ((lo, xmin, "<"), (hi, xmax, ">")):
                if (edge < limit) if mark == "<" else (edge > limit):
                    ax.add_line(
                        Line2D(
                            [limit],
                            [y],
                            marker=mark,
                            ms=3.5,
                            color=color,
                            ls="none",
                            clip_on=False,
                            zorder=3,
                        )
                    )
        if est is None:
            drawn.append({"label": r.get("label", ""), "y": float(y), "kind": kind})
            continue
        if kind == "summary":
            lo_d = est if lo is None else max(lo, xmin)
            hi_d = est if hi is None else min(hi, xmax)
            diamond = Polygon(
                [(lo_d, y), (est, y - 0.36), (hi_d, y), (est, y + 0.36)],
                closed=True,
                facecolor=_POOLED,
                edgecolor=_POOLED,
                lw=0.6,
                zorder=4,
            )
            diamond.set_gid(f"summary-{len(drawn)}")
            ax.add_patch(diamond)
        else:
            color = r.get("color", _POOLED)
            marker = Line2D(
                [est],
                [y],
                marker=r.get("marker", "o"),
                ms=r.get("ms", 4.5),
                mfc=r.get("mfc", color),
                mec=color,
                mew=0.9,
                ls="none",
                zorder=4,
                clip_on=False,
            )
            marker.set_gid(f"point-{len(drawn)}")
            ax.add_line(marker)
        drawn.append(
            {
                "label": r.get("label", ""),
                "y": float(y),
                "kind": kind,
                "estimate": est,
                "lower": lo,
                "upper": hi,
                "marker": "diamond" if kind == "summary" else r.get("marker", "o"),
                "color": _POOLED if kind == "summary" else r.get("color", _POOLED),
                "highlight": bool(r.get("highlight")),
            }
        )

    # ---- axis labels
    below = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    offset = 0.27
    if ratio:
        if xmin < 1.0 < xmax:
            for sign, text, ha in (
                (-1, "\u2190 Favours experimental", "right"),
                (1, "Favours control \u2192", "left"),
            ):
                shift = mtransforms.ScaledTranslation(sign * 0.08, -offset, fig.dpi_scale_trans)
                ax.text(
                    1.0,
                    0,
                    text,
                    transform=below + shift,
                    ha=ha,
                    va="top",
                    fontsize=_SMALL,
                    color=_NOTE,
                    parse_math=False,
                    clip_on=False,
                )
        offset += 0.17
    centre = mtransforms.blended_transform_factory(ax.transAxes, ax.transAxes)
    ax.text(
        0.5,
        0,
        xlabel,
        transform=centre + mtransforms.ScaledTranslation(0, -offset, fig.dpi_scale_trans),
        ha="center",
        va="top",
        fontsize=_SIZE,
        color=_INK,
        parse_math=False,
        clip_on=False,
    )

    # ---- legend and footer
    y_foot = foot_h - 0.04
    if legend:
        x_leg = _MARGIN
        for item in legend:
            handle = Line2D(
                [(x_leg + 0.06) / width],
                [(y_foot - 0.07) / height],
                transform=fig.transFigure,
                marker=item["marker"],
                ms=item.get("ms", 4.5),
                mfc=item.get("mfc", item["color"]),
                mec=item["color"],
                mew=0.9,
                ls="none",
            )
            fig.add_artist(handle)
            fig.text(
                (x_leg + 0.15) / width,
                (y_foot - 0.07) / height,
                item["text"],
                va="center",
                ha="left",
                fontsize=_SMALL,
                color=_NOTE,
                parse_math=False,
            )
            x_leg += 0.15 + measure.width(item["text"], _SMALL) + 0.3
        y_foot -= legend_h
    _put_lines(fig, foot, _MARGIN, y_foot, width, height)

    fig.metapool = {  # type: ignore[attr-defined]
        "figure": figure,
        "placeholder": False,
        "rows": drawn,
        "n_rows": sum(1 for d in drawn if d["kind"] in ("row", "summary")),
        "reference_lines": ref_meta,
        "band": band,
        "xscale": "log" if ratio else "linear",
        "xunit": "ratio" if ratio else "percent",
        "xlim": (xmin, xmax),
        "xticks": list(ticks),
        "caveat": caveat or None,
    }
    return fig


def _axis_label(doc: Mapping[str, Any], proportion: bool) -> str:
    label = str(doc.get("effect_label") or ("Proportion" if proportion else doc.get("measure")))
    return f"{label} (%)" if proportion else f"{label} (log scale)"


def _effect_header(doc: Mapping[str, Any], proportion: bool) -> str:
    label = str(doc.get("effect_label") or ("Proportion" if proportion else doc.get("measure")))
    level = fmt_level((doc.get("methods") or {}).get("level"))
    return f"{label}, % ({level} CI)" if proportion else f"{label} ({level} CI)"


def _scaled(value: Any, scale: float) -> float | None:
    x = as_float(value)
    return None if x is None else x * scale


def _full_data_estimate(doc: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The all-studies estimate of the model behind leave-one-out/cumulative.

    That model is the inverse-variance model named in the sections' ``model`` key; its
    all-studies fit is the last cumulative step (all k studies). When the cumulative
    section is missing, the primary overall row is used if it is that same kind of
    model (not the GLMM). Returns the row (natural scale) and where it came from.
    """
    k = _k_of(doc)
    cumulative = doc.get("cumulative") or {}
    rows = cumulative.get("rows") or []
    if rows:
        last = rows[-1]
        if as_float(last.get("k")) == k and as_float(last.get("estimate")) is not None:
            return dict(last), "cumulative"
    overall = (doc.get("models") or [{}])[0]
    if _is_pooled(overall) and not is_glmm(doc):
        return dict(overall), "primary"
    return None, ""


def _primary_note(doc: Mapping[str, Any], section_model: str, measure: str) -> str:
    """Name the primary analysis when it is another model than the section's."""
    overall = (doc.get("models") or [{}])[0]
    if not is_glmm(doc) or not _is_pooled(overall):
        return ""
    text = fmt_effect_ci(
        overall.get("estimate"), overall.get("ci_lower"), overall.get("ci_upper"), measure
    )
    return (
        f"The primary analysis (binomial-normal GLMM) gives {text}; this panel uses the "
        f"{section_model} because leave-one-out and cumulative analyses are defined for "
        "inverse-variance models."
    )


# --------------------------------------------------------------------------- leave-one-out


def leave_one_out_plot(doc: Mapping[str, Any]) -> Figure:
    """Draw the leave-one-out analysis of a document as forest-style rows.

    One row per omitted study with the estimate and CI of the remaining studies, then
    the all-studies estimate of the same model as a diamond and a dashed vertical line;
    percent axis for proportions, log axis with a line at 1 for ratios.

    Parameters
    ----------
    doc : mapping
        Analysis document with a ``leave_one_out`` section (``model``, ``rows`` with
        ``omitted``, ``k``, ``estimate``, ``ci_lower``, ``ci_upper``, ``i2``,
        ``status``; natural scale).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.metapool``: ``figure`` (``"leave_one_out"``), ``placeholder``, ``rows``
        (label, y, estimate, lower, upper on the axis scale), ``n_rows``,
        ``reference_lines``, ``xscale``, ``xunit``, ``xlim``, ``xticks``. When the
        section is null (k < 3) a placeholder figure saying so.
    """
    section = doc.get("leave_one_out")
    title = _doc_title(doc)
    with _style():
        if not section or not section.get("rows"):
            k = _k_of(doc)
            return placeholder_figure(
                title,
                f"Leave-one-out analysis not done: it needs at least 3 studies (k = {k}).",
                figure="leave_one_out",
            )
        measure = str(doc.get("measure") or "")
        proportion = is_proportion_measure(measure)
        scale = 100.0 if proportion else 1.0
        model = _model_text(section.get("model"))
        full, source = _full_data_estimate(doc)
        rows: list[dict[str, Any]] = []
        for r in section["rows"]:
            cells = {
                "k": fmt_int(r.get("k")),
                "effect": _effect_text(
                    r.get("estimate"), r.get("ci_lower"), r.get("ci_upper"), measure
                ),
                "i2": fmt_pct(r.get("i2"), 0) if as_float(r.get("i2")) is not None else DASH,
            }
            if as_float(r.get("estimate")) is None:
                rows.append(
                    {
                        "kind": "note",
                        "label": str(r.get("omitted", "")),
                        "cells": cells,
                        "note": str(r.get("status") or "not pooled"),
                    }
                )
                continue
            rows.append(
                {
                    "kind": "row",
                    "label": str(r.get("omitted", "")),
                    "cells": cells,
                    "est": _scaled(r.get("estimate"), scale),
                    "lo": _scaled(r.get("ci_lower"), scale),
                    "hi": _scaled(r.get("ci_upper"), scale),
                    "marker": "s",
                    "ms": 4.2,
                    "color": _STUDY,
                }
            )
        reference: list[dict[str, Any]] = []
        if not proportion:
            reference.append({"x": 1.0, "color": _GRID, "lw": 0.7, "kind": "null"})
        if full is not None:
            rows.append({"kind": "spacer"})
            rows.append(
                {
                    "kind": "summary",
                    "label": "All studies",
                    "cells": {
                        "k": fmt_int(full.get("k")),
                        "effect": _effect_text(
                            full.get("estimate"),
                            full.get("ci_lower"),
                            full.get("ci_upper"),
                            measure,
                        ),
                        "i2": (
                            fmt_pct(full.get("i2"), 0)
                            if as_float(full.get("i2")) is not None
                            else DASH
                        ),
                    },
                    "est": _scaled(full.get("estimate"), scale),
                    "lo": _scaled(full.get("ci_lower"), scale),
                    "hi": _scaled(full.get("ci_upper"), scale),
                }
            )
            reference.append(
                {
                    "x": _scaled(full.get("estimate"), scale),
                    "color": _POOLED,
                    "lw": 0.7,
                    "ls": (0, (3, 2)),
                    "kind": "all-studies",
                }
            )
        notes = [
            (
                f"Each row: the {model} fitted without the named study. Dashed line and diamond: "
                "all studies, same model."
                if model
                else "Each row: the model fitted without the named study. Dashed line and diamond: "
                "all studies."
            ),
        ]
        primary = _primary_note(doc, model, measure)
        if primary:
            notes.append(primary)
        fig = _interval_figure(
            figure="leave_one_out",
            title=title,
            subtitle="Leave-one-out analysis",
            caveat="",
            headers={
                "label": "Study omitted",
                "k": "k",
                "effect": _effect_header(doc, proportion),
                "i2": "I\u00b2",
            },
            left_cols=[("k", "right")],
            right_cols=[("effect", "left"), ("i2", "right")],
            rows=rows,
            proportion=proportion,
            reference=reference,
            band=None,
            xlabel=_axis_label(doc, proportion),
            notes=notes,
        )
        fig.metapool["model"] = section.get("model")  # type: ignore[attr-defined]
        fig.metapool["full_data_source"] = source  # type: ignore[attr-defined]
        return fig


# --------------------------------------------------------------------------- cumulative


def cumulative_plot(doc: Mapping[str, Any]) -> Figure:
    """Draw the cumulative meta-analysis of a document as forest-style rows.

    Studies are added in the section's order (publication year); each row shows the
    estimate and CI of the studies up to and including it. The first row is the first
    study alone (not pooled, open marker). The all-studies estimate (last row) is drawn
    as a dashed vertical line.

    Parameters
    ----------
    doc : mapping
        Analysis document with a ``cumulative`` section (``model``, ``order``, ``rows``
        with ``added``, ``added_index``, ``k``, ``estimate``, ``ci_lower``,
        ``ci_upper``, ``i2``, ``status``).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.metapool`` as for :func:`leave_one_out_plot` (``figure`` is
        ``"cumulative"``); a placeholder figure when the section is null (k < 2).
    """
    section = doc.get("cumulative")
    title = _doc_title(doc)
    with _style():
        if not section or not section.get("rows"):
            k = _k_of(doc)
            return placeholder_figure(
                title,
                f"Cumulative meta-analysis not done: it needs at least 2 studies (k = {k}).",
                figure="cumulative",
            )
        measure = str(doc.get("measure") or "")
        proportion = is_proportion_measure(measure)
        scale = 100.0 if proportion else 1.0
        studies = list(doc.get("studies") or [])
        by_label = {str(s.get("label")): s for s in studies}
        model = _model_text(section.get("model"))
        rows: list[dict[str, Any]] = []
        single_first = False
        for r in section["rows"]:
            label = str(r.get("added", ""))
            idx = as_float(r.get("added_index"))
            study = by_label.get(label)
            if study is None and idx is not None and 0 <= int(idx) < len(studies):
                study = studies[int(idx)]
            year_value = None if study is None else as_float(study.get("year"))
            year = "" if year_value is None else str(int(year_value))
            if as_float(r.get("estimate")) is None:
                # a single study is not pooled: show the study's own estimate
                if study is not None and as_float(r.get("k")) == 1:
                    single_first = True
                    rows.append(
                        {
                            "kind": "row",
                            "label": label,
                            "cells": {
                                "year": year,
                                "k": fmt_int(r.get("k")),
                                "effect": _effect_text(
                                    study.get("effect"),
                                    study.get("ci_lower"),
                                    study.get("ci_upper"),
                                    measure,
                                )
                                + " *",
                                "i2": DASH,
                            },
                            "est": _scaled(study.get("effect"), scale),
                            "lo": _scaled(study.get("ci_lower"), scale),
                            "hi": _scaled(study.get("ci_upper"), scale),
                            "marker": "o",
                            "mfc": "white",
                            "color": _POOLED,
                        }
                    )
                else:
                    rows.append(
                        {
                            "kind": "note",
                            "label": label,
                            "cells": {"year": year, "k": fmt_int(r.get("k"))},
                            "note": str(r.get("status") or "not pooled"),
                        }
                    )
                continue
            rows.append(
                {
                    "kind": "row",
                    "label": label,
                    "cells": {
                        "year": year,
                        "k": fmt_int(r.get("k")),
                        "effect": _effect_text(
                            r.get("estimate"), r.get("ci_lower"), r.get("ci_upper"), measure
                        ),
                        "i2": (
                            fmt_pct(r.get("i2"), 0) if as_float(r.get("i2")) is not None else DASH
                        ),
                    },
                    "est": _scaled(r.get("estimate"), scale),
                    "lo": _scaled(r.get("ci_lower"), scale),
                    "hi": _scaled(r.get("ci_upper"), scale),
                    "marker": "o",
                    "color": _POOLED,
                }
            )
        reference: list[dict[str, Any]] = []
        if not proportion:
            reference.append({"x": 1.0, "color": _GRID, "lw": 0.7, "kind": "null"})
        last = section["rows"][-1]
        if as_float(last.get("estimate")) is not None:
            reference.append(
                {
                    "x": _scaled(last.get("estimate"), scale),
                    "color": _POOLED,
                    "lw": 0.7,
                    "ls": (0, (3, 2)),
                    "kind": "all-studies",
                }
            )
        order = str(section.get("order") or "publication year")
        notes = [
            f"Studies added in order of {order}; each row pools the studies up to and "
            f"including it ({model or 'same model'}). Dashed line: all studies."
        ]
        if single_first:
            notes.append("* First study alone (a single study is not pooled).")
        primary = _primary_note(doc, model, measure)
        if primary:
            notes.append(primary)
        fig = _interval_figure(
            figure="cumulative",
            title=title,
            subtitle=f"Cumulative meta-analysis by {order}",
            caveat="",
            headers={
                "label": "Study added",
                "year": "Year",
                "k": "k",
                "effect": _effect_header(doc, proportion),
                "i2": "I\u00b2",
            },
            left_cols=[("year", "right"), ("k", "right")],
            right_cols=[("effect", "left"), ("i2", "right")],
            rows=rows,
            proportion=proportion,
            reference=reference,
            band=None,
            xlabel=_axis_label(doc, proportion),
            notes=notes,
        )
        fig.metapool["model"] = section.get("model")  # type: ignore[attr-defined]
        return fig


# --------------------------------------------------------------------------- sensitivity

_CI_SHORT = {
    "hksj": "HKSJ CI",
    "knha": "HKSJ CI",
    "hksj_adhoc": "HKSJ CI (ad hoc)",
    "adhoc": "HKSJ CI (ad hoc)",
    "t": "t-based CI",
    "z": "Wald CI",
    "wald": "Wald CI",
}


def _primary_label(doc: Mapping[str, Any]) -> str:
    """``"Primary analysis (REML, HKSJ CI)"`` from the overall row's methods."""
    overall = (doc.get("models") or [{}])[0]
    methods = doc.get("methods") or {}
    code = str(_first(overall.get("method"), methods.get("estimator")) or "").strip()
    ci = str(_first(overall.get("ci_method"), methods.get("ci")) or "").strip().lower()
    if code.upper() == "GLMM":
        parts = ["GLMM"]
    elif code.upper() == "FE":
        parts = ["common effect"]
    else:
        parts = [method_name(ESTIMATOR_NAMES, code) or ""] if code else []
    if ci:
        parts.append(_CI_SHORT.get(ci, f"{ci} CI"))
    parts = [p for p in parts if p]
    return "Primary analysis" + (f" ({', '.join(parts)})" if parts else "")


def sensitivity_plot(doc: Mapping[str, Any]) -> Figure:
    """Draw the sensitivity panel of a document as a compact dot plot.

    One row per variant (estimate and CI); the primary analysis is the first row (black
    diamond, bold) and its CI is shaded behind all rows with a dashed line at its
    estimate; variants whose conclusion changed (``changed``) are drawn as triangles
    in a warning colour, also for the label and numbers. Ratio axes have a line at 1.

    Parameters
    ----------
    doc : mapping
        Analysis document with a ``sensitivity`` list (``variant``, ``description``,
        ``k``, ``status``, ``estimate``, ``ci_lower``, ``ci_upper``, ``conclusion``,
        ``changed``).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.metapool`` as for :func:`leave_one_out_plot` (``figure`` is
        ``"sensitivity"``), each row with ``highlight`` (changed) and ``marker``;
        ``primary`` is the primary row's estimate. A placeholder figure when the
        document has no sensitivity variants.
    """
    variants = list(doc.get("sensitivity") or [])
    title = _doc_title(doc)
    with _style():
        if not variants:
            k = _k_of(doc)
            reason = "single study" if k <= 1 else "no variants in the analysis document"
            return placeholder_figure(
                title,
                f"Sensitivity analyses not done: {reason} (k = {k}).",
                figure="sensitivity",
            )
        measure = str(doc.get("measure") or "")
        proportion = is_proportion_measure(measure)
        scale = 100.0 if proportion else 1.0
        primary = next((v for v in variants if v.get("variant") == "primary"), variants[0])
        has_conclusion = any(not is_missing(v.get("conclusion")) for v in variants)
        rows: list[dict[str, Any]] = []
        for v in sorted(variants, key=lambda v: v is not primary):
            is_primary = v is primary
            changed = bool(v.get("changed")) and not is_primary
            text = str(v.get("description") or v.get("variant") or "")
            label = text[:1].upper() + text[1:]
            if is_primary:
                label = _primary_label(doc)
            cells = {
                "k": fmt_int(v.get("k")),
                "effect": _effect_text(
                    v.get("estimate"), v.get("ci_lower"), v.get("ci_upper"), measure
                ),
            }
            if has_conclusion:
                cells["conclusion"] = (
                    "" if is_missing(v.get("conclusion")) else str(v["conclusion"])
                )
            if as_float(v.get("estimate")) is None:
                rows.append(
                    {
                        "kind": "note",
                        "label": label,
                        "cells": cells,
                        "note": str(v.get("status") or "not pooled"),
                    }
                )
                continue
            color = _INK if is_primary else _CHANGED if changed else _POOLED
            row = {
                "kind": "row",
                "label": label,
                "cells": cells,
                "est": _scaled(v.get("estimate"), scale),
                "lo": _scaled(v.get("ci_lower"), scale),
                "hi": _scaled(v.get("ci_upper"), scale),
                "marker": "D" if is_primary else "^" if changed else "o",
                "ms": 5.0 if is_primary else 5.2 if changed else 4.5,
                "color": color,
                "ci_color": _CHANGED if changed else _INK,
                "bold": is_primary,
                "highlight": changed,
            }
            if changed:
                row["label_color"] = _CHANGED
                row["cell_color"] = _CHANGED
            rows.append(row)
        reference: list[dict[str, Any]] = []
        if not proportion:
            reference.append({"x": 1.0, "color": _GRID, "lw": 0.7, "kind": "null"})
        p_est = _scaled(primary.get("estimate"), scale)
        band = None
        if p_est is not None:
            reference.append(
                {"x": p_est, "color": _INK, "lw": 0.6, "ls": (0, (3, 2)), "kind": "primary"}
            )
            lo, hi = _scaled(primary.get("ci_lower"), scale), _scaled(
                primary.get("ci_upper"), scale
            )
            if lo is not None and hi is not None:
                band = (lo, hi)
        n_changed = sum(1 for r in rows if r.get("highlight"))
        if has_conclusion and not proportion:
            rule = (
                "its conclusion (CI entirely below 1, entirely above 1, or including 1) "
                "differs from the primary analysis'"
            )
        elif has_conclusion:
            rule = "its conclusion differs from the primary analysis'"
        else:
            rule = "its estimate lies outside the primary analysis' CI"
        short = "Conclusion changed" if has_conclusion else "Outside the primary CI"
        legend = [
            {"marker": "D", "color": _INK, "ms": 4.5, "text": "Primary analysis"},
            {"marker": "o", "color": _POOLED, "text": "Variant"},
            {"marker": "^", "color": _CHANGED, "text": short},
        ]
        notes = [
            f"A variant is highlighted when {rule}. Shaded: the primary analysis' CI; "
            "dashed line: its estimate."
        ]
        if n_changed == 0:
            notes.append("No variant is highlighted.")
        fig = _interval_figure(
            figure="sensitivity",
            title=title,
            subtitle="Sensitivity analyses",
            caveat="",
            headers={
                "label": "Analysis",
                "k": "k",
                "effect": _effect_header(doc, proportion),
                "conclusion": "Conclusion",
            },
            left_cols=[("k", "right")],
            right_cols=[("effect", "left")] + ([("conclusion", "left")] if has_conclusion else []),
            rows=rows,
            proportion=proportion,
            reference=reference,
            band=band,
            xlabel=_axis_label(doc, proportion),
            notes=notes,
            legend=legend,
            row_height=0.2,
        )
        fig.metapool["primary"] = p_est  # type: ignore[attr-defined]
        fig.metapool["n_changed"] = n_changed  # type: ignore[attr-defined]
        return fig


# --------------------------------------------------------------------------- funnel plot

#: Two-sided significance contours of the contour-enhanced funnel plot: (level, z, fill of
#: the band inside this contour and outside the next one), outermost first.
_CONTOURS = (
    (0.99, 2.5758293035489004, "#cfcfcf"),  # 0.01 < p <= 0.05
    (0.95, 1.959963984540054, "#e6e6e6"),  # 0.05 < p <= 0.10
    (0.90, 1.6448536269514722, "white"),  # p > 0.10
)
_FUNNEL_BACK = "#b0b0b0"  # p <= 0.01
_Z95 = 1.959963984540054
_PCT_TICKS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _nice_step(span: float, target: int = 5) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * mag:
            return mult * mag
    return 10 * mag


#: Tick candidates of the funnel plot's natural-scale labels, finest last.
_RATIO_TICK_SETS = (
    _LOG_FINE,
    (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0),
    (0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.25),
)
_PCT_TICK_SETS = (
    _PCT_TICKS,
    tuple(float(p) for p in range(5, 100, 5)),
    tuple(float(p) for p in range(1, 100)),
)


def _natural_ticks(lo: float, hi: float, proportion: bool) -> tuple[list[float], list[str]]:
    """Model-scale tick positions inside [lo, hi] labelled on the natural scale.

    Ratios: log positions of 0.1, 0.2, 0.5, 1, 2, ... (finer sets on a narrow axis,
    coarser 0.01 ... 100 on a wide one); proportions: logit positions of 1%, 5%, 10%,
    20%, ... 99% (every 5% or every 1% on a narrow axis). 3 to 8 ticks where possible.
    """
    if proportion:
        sets = [[(_logit(p / 100.0), f"{p:g}") for p in ticks] for ticks in _PCT_TICK_SETS]
    else:
        sets = [[(math.log(v), f"{v:g}") for v in ticks] for ticks in _RATIO_TICK_SETS]
        sets.append([(math.log(v), f"{v:g}") for v in _LOG_COARSE])
    inside: list[tuple[float, str]] = []
    for cands in sets:
        inside = [c for c in cands if lo <= c[0] <= hi]
        if 3 <= len(inside) <= 8:
            break
    else:
        inside = [c for c in sets[0] if lo <= c[0] <= hi] or inside
        if not proportion:  # a wide ratio axis: powers of ten
            tens = [c for c in sets[-1] if lo <= c[0] <= hi and math.log10(float(c[1])) % 1 == 0]
            inside = tens if len(tens) >= 3 else inside
    if len(inside) > 8:
        min_gap = (hi - lo) / 8.0
        kept: list[tuple[float, str]] = []
        # keep the central tick (1 or 50%) and spread outwards
        for c in sorted(inside, key=lambda c: abs(c[0])):
            if all(abs(c[0] - k[0]) >= min_gap for k in kept):
                kept.append(c)
        inside = sorted(kept)
    return [c[0] for c in inside], [c[1] for c in inside]


def funnel_plot(doc: Mapping[str, Any]) -> Figure:
    """Draw the contour-enhanced funnel plot of a document.

    Each study's effect on the model scale (log HR, logit proportion; x, labelled on
    the natural scale) against its standard error (y, inverted: large studies at the
    top). For ratios the background shows where a study's own two-sided test against
    the null (HR = 1) has p > 0.10, 0.05-0.10, 0.01-0.05 or < 0.01 (significance
    contours at 90/95/99%, Peters et al. 2008). For proportions there is no null value,
    so instead the pooled estimate's pseudo 95% confidence region (estimate ± 1.96 SE)
    is drawn, and a second panel plots the effect against the sample size (recommended
    for proportions: the SE of a logit depends on the proportion itself). Studies
    imputed by trim-and-fill (``bias.trimfill.filled``) are open circles. With fewer
    than 10 studies a caveat line says the plot is unreliable. With k < 2 a
    placeholder figure is returned: one point shows no asymmetry.

    Parameters
    ----------
    doc : mapping
        Analysis document: ``studies`` (``yi``, ``sei``, ``total``), ``models`` (the
        overall row's ``estimate_model``), ``measure``, ``bias`` (optional).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.metapool``: ``figure`` (``"funnel"``), ``placeholder``, ``k``,
        ``points`` (``(yi, sei)`` as drawn), ``filled`` (``(yi, sei)`` of imputed
        studies), ``contours`` (levels, empty for proportions), ``pseudo_ci`` (level of
        the pseudo-confidence funnel or None), ``center`` (model-scale x of the pooled
        line), ``null`` (0 for ratios, None), ``yinverted``, ``caveat`` (text or None),
        ``panels`` (``["se"]`` or ``["se", "n"]``), ``n_points`` (``(yi, n)`` of the
        sample-size panel), ``xscale`` (``"log HR"``, ``"logit"``, ...).
    """
    measure = str(doc.get("measure") or "")
    proportion = is_proportion_measure(measure)
    title = _doc_title(doc)
    points = []
    for s in doc.get("studies") or []:
        yi, sei = as_float(s.get("yi")), as_float(s.get("sei"))
        if yi is not None and sei is not None and sei > 0:
            points.append((yi, sei, as_float(s.get("total"))))
    k = len(points)
    with _style():
        if k < 2:
            return placeholder_figure(
                title,
                f"Funnel plot not drawn: k = {k}. A funnel plot shows how study effects "
                "spread with their precision; a single study cannot show asymmetry.",
                figure="funnel",
                details="Funnel plots and tests for small-study effects need at least 10 "
                "studies to be informative (Cochrane Handbook 13.3.5.4).",
            )
        return _draw_funnel(doc, points, proportion, title)


def _draw_funnel(
    doc: Mapping[str, Any],
    points: list[tuple[float, float, float | None]],
    proportion: bool,
    title: str,
) -> Figure:
    measure = str(doc.get("measure") or "")
    scale_name = str((doc.get("scale") or {}).get("model") or ("logit" if proportion else "log"))
    effect_label = str(doc.get("effect_label") or ("Proportion" if proportion else measure))
    k = len(points)
    overall = (doc.get("models") or [{}])[0]
    center = as_float(overall.get("estimate_model")) if _is_pooled(overall) else None
    bias = doc.get("bias") or {}
    trim = bias.get("trimfill") or {}
    filled = [
        (as_float(f.get("yi")), math.sqrt(as_float(f.get("vi")) or 0.0))
        for f in (trim.get("filled") or [])
        if as_float(f.get("yi")) is not None and (as_float(f.get("vi")) or 0) > 0
    ]
    adjusted = trim.get("adjusted") or {}
    adj_est = as_float(adjusted.get("estimate"))
    adj_x = None
    if filled and adj_est is not None:
        if proportion and 0 < adj_est < 1:
            adj_x = _logit(adj_est)
        elif not proportion and adj_est > 0:
            adj_x = math.log(adj_est)
    with_n = proportion and sum(1 for p in points if p[2]) >= 2

    se_all = [p[1] for p in points] + [f[1] for f in filled]
    se_max = max(se_all)
    ystep = _nice_step(se_max * 1.08, 4)
    ymax = math.ceil(se_max * 1.08 / ystep) * ystep
    x_all = [p[0] for p in points] + [f[0] for f in filled]
    if proportion:
        mid = center if center is not None else sum(x_all) / len(x_all)
        half = max(max(abs(x - mid) for x in x_all), _Z95 * ymax if center is not None else 0.0)
        half = max(half * 1.08, 0.5)
        xlo, xhi = mid - half, mid + half
    else:
        half = max(max(abs(x) for x in x_all), _CONTOURS[0][1] * ymax) * 1.05
        xlo, xhi = -half, half
    ticks, tick_labels = _natural_ticks(xlo, xhi, proportion)

    measure_text = _Measure()
    panel_w, panel_h = 3.3, 3.0
    gap = 0.75
    left_pad, bottom_pad = 0.62, 0.5
    n_panels = 2 if with_n else 1
    width = _MARGIN + n_panels * (left_pad + panel_w) + (gap - 0.1) * (n_panels - 1) + 0.2
    width = max(width, 4.6)
    inner = width - 2 * _MARGIN
    head = _title_lines(
        title,
        "Funnel plot" + (" (contour-enhanced)" if not proportion else ""),
        inner,
        measure_text,
    )
    caveat = ""
    if k < 10:
        caveat = f"k = {k}: funnel plots are unreliable with fewer than 10 studies"
        head += _wrapped([caveat], inner, measure_text, _SIZE, color=_CAVEAT, fontweight="bold")
    notes: list[str] = []
    if proportion:
        notes.append(
            "Dashed lines: pooled estimate \u00b1 1.96 SE (pseudo 95% confidence region). "
            "Significance contours around a null value are not drawn: a single-arm "
            "proportion has no null value, and contours around the pooled logit would not "
            "be meaningful."
        )
        if with_n:
            notes.append(
                "B: effect against sample size (recommended for proportions, whose "
                "logit SE depends on the proportion itself); dashed curves: pooled "
                "proportion \u00b1 1.96 binomial SE."
            )
    else:
        notes.append(
            "Shading: two-sided p-value of each study's own test against HR = 1 "
            "(contour-enhanced funnel plot, Peters et al. 2008). Solid line: the null; "
            "dashed line: pooled estimate."
        )
    if is_glmm(doc) and center is not None:
        notes.append("Pooled estimate: primary model (binomial-normal GLMM), logit scale.")
    if filled:
        notes.append(
            f"Open circles: {len(filled)} studies imputed by trim-and-fill "
            f"({trim.get('estimator') or 'L0'}, {_model_text(bias.get('model'))}); dotted "
            "line: its adjusted estimate."
            + (" Imputed studies have no sample size and appear in A only." if with_n else "")
        )
    foot = _wrapped(notes, inner, measure_text, _SMALL, color=_NOTE)
    legend_h = 0.22 if not proportion else 0.0
    title_h = 0.1 + _lines_height(head) + (0.32 if with_n else 0.14)
    foot_h = _lines_height(foot) + 0.1 + legend_h
    height = title_h + panel_h + bottom_pad + foot_h

    fig = _new_figure(width, height)
    _put_lines(fig, head, _MARGIN, height - 0.1, width, height)
    y0 = (foot_h + bottom_pad) / height
    x_se = _MARGIN + left_pad
    ax = fig.add_axes((x_se / width, y0, panel_w / width, panel_h / height))
    meta: dict[str, Any] = {
        "figure": "funnel",
        "placeholder": False,
        "k": k,
        "points": [],
        "filled": [],
        "contours": [],
        "pseudo_ci": None,
        "center": center,
        "adjusted": adj_x,
        "null": None if proportion else 0.0,
        "yinverted": True,
        "caveat": caveat or None,
        "panels": ["se", "n"] if with_n else ["se"],
        "n_points": [],
        "xscale": scale_name,
        "xlim": (xlo, xhi),
        "ylim": (ymax, 0.0),
    }

    def style_axis(a: Any, ylabel: str) -> None:
        a.set_xlim(xlo, xhi)
        a.xaxis.set_major_locator(FixedLocator(ticks))
        a.xaxis.set_major_formatter(FixedFormatter(tick_labels))
        a.xaxis.set_minor_locator(NullLocator())
        a.yaxis.set_minor_locator(NullLocator())
        a.tick_params(axis="y", labelsize=7.5, direction="out", length=3.0, width=0.7)
        for side in ("top", "right"):
            a.spines[side].set_visible(False)
        a.set_xlabel(
            f"{effect_label}, % (logit scale)" if proportion else f"{effect_label} (log scale)",
            fontsize=_SIZE,
            color=_INK,
        )
        a.set_ylabel(ylabel, fontsize=_SIZE, color=_INK)

    # ---- SE panel
    ax.set_ylim(ymax, 0.0)
    ax.set_autoscale_on(False)
    yt = [i * ystep for i in range(int(round(ymax / ystep)) + 1)]
    ax.yaxis.set_major_locator(FixedLocator(yt))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p=None: f"{v:.3g}"))
    if not proportion:
        ax.add_patch(
            Rectangle(
                (xlo, 0.0),
                xhi - xlo,
                ymax,
                facecolor=_FUNNEL_BACK,
                edgecolor="none",
                zorder=0,
                gid="contour-back",
            )
        )
        for level, z, color in _CONTOURS:
            tri = Polygon(
                [(0.0, 0.0), (-z * ymax, ymax), (z * ymax, ymax)],
                closed=True,
                facecolor=color,
                edgecolor="none",
                zorder=0,
            )
            tri.set_gid(f"contour-{int(round(level * 100))}")
            ax.add_patch(tri)
            meta["contours"].append(level)
        meta["contours"] = sorted(meta["contours"])
        ax.add_line(Line2D([0.0, 0.0], [0.0, ymax], color=_INK, lw=0.7, zorder=1, gid="null"))
    if center is not None:
        ax.add_line(
            Line2D(
                [center, center],
                [0.0, ymax],
                color=_POOLED,
                lw=0.8,
                ls=(0, (4, 2)),
                zorder=2,
                gid="pooled",
            )
        )
        if proportion:
            for sign in (-1, 1):
                ax.add_line(
                    Line2D(
                        [center, center + sign * _Z95 * ymax],
                        [0.0, ymax],
                        color=_POOLED,
                        lw=0.7,
                        ls=(0, (4, 2)),
                        zorder=2,
                        gid=f"pseudo-ci-{'lower' if sign < 0 else 'upper'}",
                    )
                )
            meta["pseudo_ci"] = 0.95
    if adj_x is not None:
        ax.add_line(
            Line2D(
                [adj_x, adj_x],
                [0.0, ymax],
                color=_INK,
                lw=0.8,
                ls=(0, (1, 1.5)),
                zorder=2,
                gid="trimfill-adjusted",
            )
        )
    for i, (x, se, _n) in enumerate(points):
        dot = Line2D(
            [x],
            [se],
            marker="o",
            ms=4.8,
            mfc=_POOLED,
            mec="white",
            mew=0.6,
            ls="none",
            zorder=5,
            clip_on=False,
        )
        dot.set_gid(f"study-point-{i}")
        ax.add_line(dot)
        meta["points"].append((x, se))
    for i, (x, se) in enumerate(filled):
        dot = Line2D(
            [x],
            [se],
            marker="o",
            ms=4.8,
            mfc="white",
            mec=_POOLED,
            mew=0.9,
            ls="none",
            zorder=5,
            clip_on=False,
        )
        dot.set_gid(f"filled-point-{i}")
        ax.add_line(dot)
        meta["filled"].append((x, se))
    se_label = {
        "log HR": "Standard error of log hazard ratio",
        "logit": "Standard error (logit scale)",
    }.get(scale_name, f"Standard error ({scale_name} scale)")
    style_axis(ax, se_label)
    if with_n:
        ax.set_title("A  Standard error", fontsize=_SIZE, fontweight="bold", loc="left", color=_INK)

    # ---- sample-size panel (proportions)
    if with_n:
        x_n = x_se + panel_w + gap + left_pad - 0.1
        axn = fig.add_axes((x_n / width, y0, panel_w / width, panel_h / height))
        n_vals = [p[2] for p in points if p[2]]
        n_max = max(n_vals)
        nstep = _nice_step(n_max * 1.08, 4)
        n_top = math.ceil(n_max * 1.08 / nstep) * nstep
        axn.set_ylim(0.0, n_top)
        axn.set_autoscale_on(False)
        axn.yaxis.set_major_locator(
            FixedLocator([i * nstep for i in range(int(round(n_top / nstep)) + 1)])
        )
        axn.yaxis.set_major_formatter(FuncFormatter(lambda v, _p=None: f"{v:,.0f}"))
        if center is not None:
            axn.add_line(
                Line2D(
                    [center, center],
                    [0.0, n_top],
                    color=_POOLED,
                    lw=0.8,
                    ls=(0, (4, 2)),
                    zorder=2,
                    gid="pooled-n",
                )
            )
            p0 = 1.0 / (1.0 + math.exp(-center))
            n_lo = max(min(n_vals) * 0.5, 4.0)
            grid = [n_lo + (n_top - n_lo) * i / 80.0 for i in range(81)]
            for sign in (-1, 1):
                xs = [center + sign * _Z95 / math.sqrt(n * p0 * (1 - p0)) for n in grid]
                axn.add_line(
                    Line2D(
                        xs,
                        grid,
                        color=_POOLED,
                        lw=0.7,
                        ls=(0, (4, 2)),
                        zorder=2,
                        gid=f"pseudo-n-{'lower' if sign < 0 else 'upper'}",
                    )
                )
        for i, (x, _se, nn) in enumerate(points):
            if not nn:
                continue
            dot = Line2D(
                [x],
                [nn],
                marker="o",
                ms=4.8,
                mfc=_POOLED,
                mec="white",
                mew=0.6,
                ls="none",
                zorder=5,
                clip_on=False,
            )
            dot.set_gid(f"n-point-{i}")
            axn.add_line(dot)
            meta["n_points"].append((x, nn))
        style_axis(axn, "Sample size (n)")
        axn.set_title("B  Sample size", fontsize=_SIZE, fontweight="bold", loc="left", color=_INK)

    # ---- legend of the contours (ratios)
    if not proportion:
        items = [
            (_CONTOURS[2][2], "p > 0.10"),
            (_CONTOURS[1][2], "0.05 < p \u2264 0.10"),
            (_CONTOURS[0][2], "0.01 < p \u2264 0.05"),
            (_FUNNEL_BACK, "p \u2264 0.01"),
        ]
        x_leg = _MARGIN
        y_leg = (foot_h - 0.13) / height
        for color, text in items:
            fig.add_artist(
                Rectangle(
                    (x_leg / width, y_leg - 0.05 / height),
                    0.16 / width,
                    0.1 / height,
                    transform=fig.transFigure,
                    facecolor=color,
                    edgecolor="#7a7a7a",
                    lw=0.5,
                )
            )
            fig.text(
                (x_leg + 0.22) / width,
                y_leg,
                text,
                va="center",
                ha="left",
                fontsize=_SMALL,
                color=_NOTE,
                parse_math=False,
            )
            x_leg += 0.22 + measure_text.width(text, _SMALL) + 0.22
    _put_lines(fig, foot, _MARGIN, foot_h - legend_h - 0.02, width, height)
    fig.metapool = meta  # type: ignore[attr-defined]
    return fig


# --------------------------------------------------------------------------- PRISMA 2020

#: Keys of a PRISMA 2020 counts file (``config/prisma.yaml``): section -> key -> kind,
#: ``"count"`` (a non-negative integer, or null for "not reported"), ``"counts"`` (a
#: count, or a mapping of source name -> count), ``"reasons"`` (a mapping of reason ->
#: count; empty when none) or ``"text"``. Sections and keys marked optional may be left
#: out.
PRISMA_KEYS: dict[str, dict[str, str]] = {
    "identification": {
        "databases": "counts",
        "registers": "counts",
        "duplicates_removed": "count",
        "automation_ineligible": "count",
        "other_removed": "count",
    },
    "screening": {"screened": "count", "excluded": "count"},
    "retrieval": {"sought": "count", "not_retrieved": "count"},
    "eligibility": {"assessed": "count", "excluded": "reasons"},
    "other_methods": {
        "identified": "reasons",
        "sought": "count",
        "not_retrieved": "count",
        "assessed": "count",
        "excluded": "reasons",
    },
    "included": {
        "studies": "count",
        "reports": "count",
        "in_meta_analysis": "count",
        "ongoing_studies": "count",
        "ongoing_reports": "count",
    },
}
_PRISMA_OPTIONAL_SECTIONS = {"other_methods"}
_PRISMA_OPTIONAL_KEYS = {
    ("included", "in_meta_analysis"),
    ("included", "ongoing_studies"),
    ("included", "ongoing_reports"),
}
_PRISMA_TOP_TEXT = {"title", "note"}


class PrismaError(ValueError):
    """Invalid PRISMA counts: every problem at once, each naming its key.

    Attributes
    ----------
    problems : list of str
        One message per problem, e.g. ``"screening.screened - screening.excluded = 10 -
        2 = 8, but retrieval.sought = 9"``.
    """

    def __init__(self, problems: list[str], source: str = "prisma counts") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")


def _is_count(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def check_prisma(data: Any, source: str = "prisma counts") -> dict[str, Any]:
    """Validate PRISMA 2020 flow-diagram counts and return them normalised.

    Parameters
    ----------
    data : mapping
        The parsed counts file (format: :data:`PRISMA_KEYS`; see ``config/prisma.yaml``).
        Every count is a non-negative integer or null (not reported); ``databases`` and
        ``registers`` may be a mapping of source name -> count; ``eligibility.excluded``
        and ``other_methods.excluded`` map each reason to its count;
        ``other_methods.identified`` maps each source to its count.
    source : str, default "prisma counts"
        Name of the file, used in messages.

    Returns
    -------
    dict
        The counts with every optional key present (None when absent), plus
        ``totals``: ``identified`` (databases + registers), ``removed``,
        ``reports_excluded``, ``eligible`` (reports eligible from databases and
        registers), ``other_identified``, ``other_reports_excluded``, ``other_eligible``
        (None where a term is not reported).

    Raises
    ------
    PrismaError
        Listing every problem: an unknown or missing key, a value that is not a
        non-negative integer (or null), and each arithmetic step that does not add up
        (identified - removed = screened, screened - excluded = sought, sought - not
        retrieved = assessed, excluded reports <= assessed, eligible reports = reports
        of included (+ ongoing) studies, studies <= reports). Steps with a null term are
        not checked.
    """
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise PrismaError([f"the top level must be a mapping of sections, not {data!r}"], source)
    out: dict[str, Any] = {k: data.get(k) for k in _PRISMA_TOP_TEXT}
    for key in _PRISMA_TOP_TEXT:
        if out[key] is not None and not isinstance(out[key], str):
            problems.append(f"{key} must be text, got {out[key]!r}")
    for key in data:
        if key not in PRISMA_KEYS and key not in _PRISMA_TOP_TEXT:
            problems.append(
                f"unknown section {key!r} (expected one of: "
                f"{', '.join([*PRISMA_KEYS, *sorted(_PRISMA_TOP_TEXT)])})"
            )
    for section, keys in PRISMA_KEYS.items():
        part = data.get(section)
        if part is None:
            if section not in _PRISMA_OPTIONAL_SECTIONS:
                problems.append(f"missing section {section!r}")
            out[section] = None
            continue
        if not isinstance(part, Mapping):
            problems.append(f"{section} must be a mapping of counts, not {part!r}")
            out[section] = None
            continue
        norm: dict[str, Any] = {}
        for key in part:
            if key not in keys:
                problems.append(f"unknown key {section}.{key} (expected one of: {', '.join(keys)})")
        for key, kind in keys.items():
            where = f"{section}.{key}"
            if key not in part:
                if (section, key) not in _PRISMA_OPTIONAL_KEYS:
                    problems.append(f"missing key {where} (write null if it was not reported)")
                norm[key] = None
                continue
            value = part[key]
            if kind == "count" or (kind == "counts" and not isinstance(value, Mapping)):
                if not _is_count(value):
                    problems.append(
                        f"{where} must be a non-negative whole number or null (not "
                        f"reported), got {value!r}"
                    )
                    value = None
                norm[key] = value
            elif kind in ("counts", "reasons"):
                if value is None:
                    norm[key] = None
                    continue
                if not isinstance(value, Mapping):
                    problems.append(
                        f"{where} must be a mapping of name: count (use {{}} for none), "
                        f"got {value!r}"
                    )
                    norm[key] = None
                    continue
                items = {}
                for name, n in value.items():
                    if not _is_count(n):
                        problems.append(
                            f"{where}.{name} must be a non-negative whole number or null, "
                            f"got {n!r}"
                        )
                        n = None
                    items[str(name)] = n
                norm[key] = items
        out[section] = norm
    if problems:
        raise PrismaError(problems, source)

    def total(value: Any) -> int | None:
        if isinstance(value, Mapping):
            vals = list(value.values())
            return None if any(v is None for v in vals) else sum(vals)
        return value

    def expect(terms: list[tuple[str, int | None]], target: tuple[str, int | None]) -> None:
        """``terms[0] - terms[1] - ... == target`` unless a value is not reported."""
        values = [v for _, v in terms]
        if any(v is None for v in values) or target[1] is None:
            return
        result = values[0] - sum(values[1:])
        if result != target[1]:
            names = " - ".join(n for n, _ in terms)
            nums = " - ".join(str(v) for v in values)
            shown = f"{names} = {nums} = {result}" if len(terms) > 1 else f"{names} = {nums}"
            problems.append(f"{shown}, but {target[0]} = {target[1]}")

    ident, scr, ret, elig, inc = (
        out["identification"],
        out["screening"],
        out["retrieval"],
        out["eligibility"],
        out["included"],
    )
    other = out["other_methods"]
    identified = (
        None
        if total(ident["databases"]) is None or total(ident["registers"]) is None
        else total(ident["databases"]) + total(ident["registers"])
    )
    removed_terms = [
        ("identification.duplicates_removed", ident["duplicates_removed"]),
        ("identification.automation_ineligible", ident["automation_ineligible"]),
        ("identification.other_removed", ident["other_removed"]),
    ]
    expect(
        [("identification.databases + identification.registers", identified), *removed_terms],
        ("screening.screened", scr["screened"]),
    )
    expect(
        [("screening.screened", scr["screened"]), ("screening.excluded", scr["excluded"])],
        ("retrieval.sought", ret["sought"]),
    )
    expect(
        [("retrieval.sought", ret["sought"]), ("retrieval.not_retrieved", ret["not_retrieved"])],
        ("eligibility.assessed", elig["assessed"]),
    )
    excluded = total(elig["excluded"])
    eligible = None
    if excluded is not None and elig["assessed"] is not None:
        eligible = elig["assessed"] - excluded
        if eligible < 0:
            problems.append(
                f"eligibility.excluded adds up to {excluded}, more than "
                f"eligibility.assessed = {elig['assessed']}"
            )
    other_identified = other_excluded = other_eligible = None
    if other is not None:
        other_identified = total(other["identified"])
        if (
            other_identified is not None
            and other["sought"] is not None
            and other["sought"] > other_identified
        ):
            problems.append(
                f"other_methods.sought = {other['sought']} is more than the records "
                f"identified (other_methods.identified adds up to {other_identified})"
            )
        expect(
            [
                ("other_methods.sought", other["sought"]),
                ("other_methods.not_retrieved", other["not_retrieved"]),
            ],
            ("other_methods.assessed", other["assessed"]),
        )
        other_excluded = total(other["excluded"])
        if other_excluded is not None and other["assessed"] is not None:
            other_eligible = other["assessed"] - other_excluded
            if other_eligible < 0:
                problems.append(
                    f"other_methods.excluded adds up to {other_excluded}, more than "
                    f"other_methods.assessed = {other['assessed']}"
                )
    reports = inc["reports"]
    if (
        reports is not None
        and eligible is not None
        and (other is None or other_eligible is not None)
    ):
        expected = reports + (inc["ongoing_reports"] or 0)
        got = eligible + (other_eligible or 0)
        if got != expected:
            left = "eligibility.assessed - eligibility.excluded"
            if other is not None:
                left += " + other_methods.assessed - other_methods.excluded"
            right = "included.reports"
            if inc["ongoing_reports"]:
                right += " + included.ongoing_reports"
            problems.append(f"{left} = {got} reports are eligible, but {right} = {expected}")
    for small, big in (
        ("studies", "reports"),
        ("ongoing_studies", "ongoing_reports"),
        ("in_meta_analysis", "studies"),
    ):
        a, b = inc[small], inc[big]
        if a is not None and b is not None and a > b:
            problems.append(f"included.{small} = {a} is more than included.{big} = {b}")
    if problems:
        raise PrismaError(problems, source)
    out["totals"] = {
        "identified": identified,
        "removed": (
            None if any(v is None for _, v in removed_terms) else sum(v for _, v in removed_terms)
        ),
        "reports_excluded": excluded,
        "eligible": eligible,
        "other_identified": other_identified,
        "other_reports_excluded": other_excluded,
        "other_eligible": other_eligible,
    }
    return out


def read_prisma(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a PRISMA counts file (``config/prisma.yaml``).

    Parameters
    ----------
    path : path-like
        The YAML file.

    Returns
    -------
    dict
        The validated counts (see :func:`check_prisma`).

    Raises
    ------
    PrismaError
        When the file is not plain YAML (syntax error, a key given twice) or the counts
        are invalid; the message names the file and each key.
    """
    import yaml  # only the PRISMA diagram reads YAML

    from metapool.io import check_config_file

    source = os.fspath(path)
    issues = [
        i.message
        for i in check_config_file(source)
        if "needs at least the key" not in i.message and "top level" not in i.message
    ]
    if issues:
        raise PrismaError(issues, source)
    with open(source, encoding="utf-8-sig") as f:
        data = yaml.safe_load(f)
    return check_prisma(data, source)


_NBSP = "\u00a0"  # keeps "n = 12" and "not reported" on one line when a box text wraps


def _n(value: Any) -> str:
    text = "not reported" if value is None else f"n = {fmt_int(value)}"
    return text.replace(" ", _NBSP)


def _count_line(label: str, value: Any) -> str:
    return f"{label} ({_n(value)})"


def _source_lines(label: str, value: Any) -> list[tuple[str, bool]]:
    """``[("Databases (n = 9)", False), ("PubMed (n = 5)", True), ...]``."""
    if isinstance(value, Mapping):
        vals = list(value.values())
        tot = None if any(v is None for v in vals) else sum(vals)
        lines = [(_count_line(label, tot), False)]
        if len(value) > 1 or (len(value) == 1 and next(iter(value)) != label):
            lines += [(_count_line(name, n), True) for name, n in value.items()]
        return lines
    return [(_count_line(label, value), False)]


def prisma_diagram(counts: Mapping[str, Any]) -> Figure:
    """Draw the PRISMA 2020 flow diagram.

    The standard PRISMA 2020 layout (Page et al. 2021, BMJ 372:n71): identification,
    screening and included phases on the left; the main column of boxes (records
    identified, screened, reports sought, assessed, studies included) with the
    exclusions to the right of each step; and, when ``other_methods`` is given, the
    column "Identification of studies via other methods" whose eligible reports join
    the included box. Unreported counts read "not reported".

    Parameters
    ----------
    counts : mapping
        Counts as read from ``config/prisma.yaml`` (validated here with
        :func:`check_prisma` unless already validated).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.metapool``: ``figure`` (``"prisma"``), ``boxes`` (box id -> its text,
        lines joined by newlines; ids ``identified``, ``removed``, ``screened``,
        ``screening_excluded``, ``sought``, ``not_retrieved``, ``assessed``,
        ``reports_excluded``, ``included`` and ``other_*``), ``arrows`` (number drawn),
        ``columns``.

    Raises
    ------
    PrismaError
        For invalid counts.
    """
    data = counts if "totals" in counts else check_prisma(counts)
    with _style():
        return _draw_prisma(data)


def _draw_prisma(data: Mapping[str, Any]) -> Figure:
    measure = _Measure()
    ident, scr, ret, elig, inc = (
        data["identification"],
        data["screening"],
        data["retrieval"],
        data["eligibility"],
        data["included"],
    )
    other = data.get("other_methods")
    size = 7.5
    line_h = size / 72.0 * 1.38
    pad = 0.09
    box_w, side_w = 1.85, 1.7
    gap_h, gap_v = 0.24, 0.28
    label_w = 0.26

    # (text, indented) lines of every box
    boxes: dict[str, list[tuple[str, bool]]] = {
        "identified": [("Records identified from:", False)]
        + _source_lines("Databases", ident["databases"])
        + _source_lines("Registers", ident["registers"]),
        "removed": [
            ("Records removed before screening:", False),
            (_count_line("Duplicate records removed", ident["duplicates_removed"]), True),
            (
                _count_line(
                    "Records marked as ineligible by automation tools",
                    ident["automation_ineligible"],
                ),
                True,
            ),
            (_count_line("Records removed for other reasons", ident["other_removed"]), True),
        ],
        "screened": [("Records screened", False), (f"({_n(scr['screened'])})", False)],
        "screening_excluded": [("Records excluded", False), (f"({_n(scr['excluded'])})", False)],
        "sought": [("Reports sought for retrieval", False), (f"({_n(ret['sought'])})", False)],
        "not_retrieved": [
            ("Reports not retrieved", False),
            (f"({_n(ret['not_retrieved'])})", False),
        ],
        "assessed": [
            ("Reports assessed for eligibility", False),
            (f"({_n(elig['assessed'])})", False),
        ],
        "reports_excluded": _reason_lines(elig["excluded"]),
        "included": _included_lines(inc),
    }
    if other is not None:
        boxes.update(
            {
                "other_identified": [("Records identified from:", False)]
                + [(_count_line(name, n), True) for name, n in other["identified"].items()],
                "other_sought": [
                    ("Reports sought for retrieval", False),
                    (f"({_n(other['sought'])})", False),
                ],
                "other_not_retrieved": [
                    ("Reports not retrieved", False),
                    (f"({_n(other['not_retrieved'])})", False),
                ],
                "other_assessed": [
                    ("Reports assessed for eligibility", False),
                    (f"({_n(other['assessed'])})", False),
                ],
                "other_reports_excluded": _reason_lines(other["excluded"]),
            }
        )

    # wrap each line to its box
    wrapped: dict[str, list[tuple[str, bool]]] = {}
    side_boxes = {
        "removed",
        "screening_excluded",
        "not_retrieved",
        "reports_excluded",
        "other_not_retrieved",
        "other_reports_excluded",
    }
    for key, lines in boxes.items():
        inner = (side_w if key in side_boxes else box_w) - 2 * pad
        out: list[tuple[str, bool]] = []
        for text, indented in lines:
            width_in = 0.95 * (inner - (0.12 if indented else 0.0))
            out += [(part, indented) for part in _wrap(text, width_in, measure, size)]
        wrapped[key] = out

    def box_h(key: str) -> float:
        return len(wrapped[key]) * line_h + 2 * pad

    # columns (x of the left edge, inches)
    x_label = _MARGIN
    x_a = x_label + label_w + 0.16
    x_a_side = x_a + box_w + gap_h
    x_b = x_a_side + side_w + 0.45
    x_b_side = x_b + box_w + gap_h
    width = (x_b_side + side_w if other is not None else x_a_side + side_w) + _MARGIN
    centered = {
        "screened",
        "screening_excluded",
        "sought",
        "not_retrieved",
        "assessed",
        "other_sought",
        "other_not_retrieved",
        "other_assessed",
    }

    # rows: the boxes of each row and its height
    rows = [
        ["identified", "removed"] + (["other_identified"] if other is not None else []),
        ["screened", "screening_excluded"],
        ["sought", "not_retrieved"]
        + (["other_sought", "other_not_retrieved"] if other is not None else []),
        ["assessed", "reports_excluded"]
        + (["other_assessed", "other_reports_excluded"] if other is not None else []),
        ["included"],
    ]
    heights = [max(box_h(k) for k in row) for row in rows]
    header_h = 0.36
    title = str(data.get("title") or "PRISMA 2020 flow diagram")
    inner_w = width - 2 * _MARGIN
    head = _title_lines(title, "", inner_w, measure)
    note = str(data.get("note") or "")
    foot = (
        _wrapped([note], inner_w, measure, _SMALL, color=_NOTE, fontstyle="italic") if note else []
    )
    title_h = 0.1 + _lines_height(head) + 0.08
    body_h = header_h + 0.14 + sum(heights) + gap_v * (len(rows) - 1)
    foot_h = (_lines_height(foot) + 0.16) if foot else 0.1
    height = title_h + body_h + foot_h

    fig = _new_figure(width, height)
    _put_lines(fig, head, _MARGIN, height - 0.1, width, height)

    def rect(x: float, y_top: float, w: float, h: float, **kw: Any) -> Rectangle:
        patch = Rectangle(
            (x / width, (y_top - h) / height),
            w / width,
            h / height,
            transform=fig.transFigure,
            **kw,
        )
        fig.add_artist(patch)
        return patch

    # column headers
    y = height - title_h
    header_fill = "#e3e9f0"
    header_w = x_a_side + side_w - x_a
    rect(x_a, y, header_w, header_h, facecolor=header_fill, edgecolor=_INK, lw=0.7)
    fig.text(
        (x_a + header_w / 2) / width,
        (y - header_h / 2) / height,
        "Identification of studies via databases and registers",
        ha="center",
        va="center",
        fontsize=_SIZE,
        fontweight="bold",
        color=_INK,
        parse_math=False,
    )
    columns = ["databases_registers"]
    if other is not None:
        header_w_b = x_b_side + side_w - x_b
        rect(x_b, y, header_w_b, header_h, facecolor=header_fill, edgecolor=_INK, lw=0.7)
        fig.text(
            (x_b + header_w_b / 2) / width,
            (y - header_h / 2) / height,
            "Identification of studies via other methods",
            ha="center",
            va="center",
            fontsize=_SIZE,
            fontweight="bold",
            color=_INK,
            parse_math=False,
        )
        columns.append("other_methods")
    y -= header_h + 0.14

    xs = {
        "identified": (x_a, box_w),
        "screened": (x_a, box_w),
        "sought": (x_a, box_w),
        "assessed": (x_a, box_w),
        "included": (x_a, box_w),
        "removed": (x_a_side, side_w),
        "screening_excluded": (x_a_side, side_w),
        "not_retrieved": (x_a_side, side_w),
        "reports_excluded": (x_a_side, side_w),
        "other_identified": (x_b, box_w),
        "other_sought": (x_b, box_w),
        "other_assessed": (x_b, box_w),
        "other_not_retrieved": (x_b_side, side_w),
        "other_reports_excluded": (x_b_side, side_w),
    }
    geometry: dict[str, tuple[float, float, float, float]] = {}  # x, y_top, w, h
    row_tops = []
    for row, h_row in zip(rows, heights, strict=True):
        row_tops.append(y)
        for key in row:
            x, w = xs[key]
            h = h_row  # the boxes of one row share its height
            geometry[key] = (x, y, w, h)
            patch = rect(x, y, w, h, facecolor="white", edgecolor=_INK, lw=0.7)
            patch.set_gid(f"prisma-{key}")
            lines = wrapped[key]
            text_h = len(lines) * line_h
            y_text = y - (h - text_h) / 2 - line_h * 0.5
            for text, indented in lines:
                if key in centered:
                    fig.text(
                        (x + w / 2) / width,
                        y_text / height,
                        text,
                        ha="center",
                        va="center",
                        fontsize=size,
                        color=_INK,
                        parse_math=False,
                    )
                else:
                    fig.text(
                        (x + pad + (0.12 if indented else 0.0)) / width,
                        y_text / height,
                        text,
                        ha="left",
                        va="center",
                        fontsize=size,
                        color=_INK,
                        parse_math=False,
                    )
                y_text -= line_h
        y -= h_row + gap_v

    # phase labels on the left
    phases = [("Identification", 0, 0), ("Screening", 1, 3), ("Included", 4, 4)]
    for text, first, last in phases:
        top = row_tops[first]
        bottom = row_tops[last] - heights[last]
        rect(x_label, top, label_w, top - bottom, facecolor="#c9d6e4", edgecolor="none", lw=0)
        fig.text(
            (x_label + label_w / 2) / width,
            ((top + bottom) / 2) / height,
            text,
            rotation=90,
            ha="center",
            va="center",
            fontsize=_SIZE,
            fontweight="bold",
            color=_INK,
            parse_math=False,
        )

    # arrows
    n_arrows = 0

    def arrow(points: list[tuple[float, float]]) -> None:
        nonlocal n_arrows
        for (x0, y0), (x1, y1) in zip(points[:-2], points[1:-1], strict=True):
            fig.add_artist(
                Line2D(
                    [x0 / width, x1 / width],
                    [y0 / height, y1 / height],
                    transform=fig.transFigure,
                    color=_INK,
                    lw=0.8,
                )
            )
        (x0, y0), (x1, y1) = points[-2], points[-1]
        fig.add_artist(
            FancyArrowPatch(
                (x0 / width, y0 / height),
                (x1 / width, y1 / height),
                transform=fig.transFigure,
                arrowstyle="-|>",
                mutation_scale=9,
                color=_INK,
                lw=0.8,
                shrinkA=0,
                shrinkB=0,
            )
        )
        n_arrows += 1

    def bottom_mid(key: str) -> tuple[float, float]:
        x, yt, w, h = geometry[key]
        return (x + w / 2, yt - h)

    def top_mid(key: str) -> tuple[float, float]:
        x, yt, w, _ = geometry[key]
        return (x + w / 2, yt)

    def right_mid(key: str) -> tuple[float, float]:
        x, yt, w, h = geometry[key]
        return (x + w, yt - h / 2)

    def left_mid(key: str) -> tuple[float, float]:
        x, yt, _, h = geometry[key]
        return (x, yt - h / 2)

    for a, b in (
        ("identified", "screened"),
        ("screened", "sought"),
        ("sought", "assessed"),
        ("assessed", "included"),
    ):
        arrow([bottom_mid(a), top_mid(b)])
    for a, b in (
        ("identified", "removed"),
        ("screened", "screening_excluded"),
        ("sought", "not_retrieved"),
        ("assessed", "reports_excluded"),
    ):
        ya = right_mid(a)[1] if a != "identified" else right_mid(b)[1]
        arrow([(right_mid(a)[0], ya), (left_mid(b)[0], ya)])
    if other is not None:
        for a, b in (("other_identified", "other_sought"), ("other_sought", "other_assessed")):
            arrow([bottom_mid(a), top_mid(b)])
        for a, b in (
            ("other_sought", "other_not_retrieved"),
            ("other_assessed", "other_reports_excluded"),
        ):
            arrow([right_mid(a), left_mid(b)])
        start = bottom_mid("other_assessed")
        end = right_mid("included")
        arrow([start, (start[0], end[1]), end])

    if foot:
        _put_lines(fig, foot, _MARGIN, foot_h - 0.08, width, height)
    fig.metapool = {  # type: ignore[attr-defined]
        "figure": "prisma",
        "placeholder": False,
        "boxes": {
            key: "\n".join(t for t, _ in lines).replace(_NBSP, " ") for key, lines in boxes.items()
        },
        "arrows": n_arrows,
        "columns": columns,
    }
    return fig


def _reason_lines(reasons: Mapping[str, Any] | None) -> list[tuple[str, bool]]:
    if reasons is None:
        return [("Reports excluded (not reported)", False)]
    if not reasons:
        return [("Reports excluded (n = 0)", False)]
    tot = None if any(v is None for v in reasons.values()) else sum(reasons.values())
    return [(f"Reports excluded ({_n(tot)}):", False)] + [
        (_count_line(reason, n), True) for reason, n in reasons.items()
    ]


def _included_lines(inc: Mapping[str, Any]) -> list[tuple[str, bool]]:
    lines = [
        (_count_line("Studies included in review", inc["studies"]), False),
        (_count_line("Reports of included studies", inc["reports"]), False),
    ]
    if inc.get("in_meta_analysis") is not None:
        lines.append(
            (
                _count_line(
                    "Studies included in at least one meta-analysis", inc["in_meta_analysis"]
                ),
                False,
            )
        )
    if inc.get("ongoing_studies") is not None:
        lines.append((_count_line("Ongoing studies", inc["ongoing_studies"]), False))
    if inc.get("ongoing_reports") is not None:
        lines.append((_count_line("Reports of ongoing studies", inc["ongoing_reports"]), False))
    return lines


# --------------------------------------------------------------------------- risk of bias

#: Fill colour and symbol of each risk-of-bias judgement (:data:`metapool.rob.STYLE`:
#: colour-blind-safe fills, and a symbol that repeats the judgement).
ROB_STYLE: dict[str, tuple[str, str]] = _rob.STYLE
_ROB_DARK = _rob.DARK_FILLS  # fills that take a white symbol
#: Column headers of the Newcastle-Ottawa domains (the other tools use D1, D2, ...).
_NOS_HEADERS = {
    "selection": "Selection",
    "comparability": "Compar-\nability",
    "outcome": "Outcome",
}


def _rob_records(assessments: Any) -> list[dict[str, Any]]:
    """Risk-of-bias rows (a DataFrame or mappings) as plain dicts, NA as None."""
    rows = assessments
    if hasattr(assessments, "to_dict"):
        rows = assessments.to_dict(orient="records")
    out = []
    for r in rows or []:
        rec = {k: (None if is_missing(v) else v) for k, v in dict(r).items()}
        out.append(rec)
    return out


def _rob_labels(studies: Any) -> tuple[dict[str, str], dict[str, float | None]]:
    """``{study_id: label}`` and ``{study_id: n_total}`` from studies.csv rows."""
    labels: dict[str, str] = {}
    sizes: dict[str, float | None] = {}
    for s in _rob_records(studies):
        sid = str(s.get("study_id"))
        labels[sid] = _rob.study_label(s)
        sizes[sid] = as_float(s.get("n_total"))
    return labels, sizes


def _domain_header(tool: str, domain: str) -> str:
    if domain == _rob.OVERALL:
        return "Overall"
    if tool == "Newcastle-Ottawa":
        return _NOS_HEADERS.get(domain, domain)
    return domain.split(" ", 1)[0]


def _domain_key(tool: str, domains: list[str]) -> str:
    """The footnote that names the domains behind the short column headers."""
    if tool == "Newcastle-Ottawa":
        most = _rob.NOS_MAX_STARS
        stars = "; ".join(f"{d} 0\u2013{most[d]}" for d in domains if d != _rob.OVERALL)
        return (f"Stars per domain ({stars}; Overall: their sum), rated good, fair or poor "
                "with the AHRQ thresholds.")
    parts = [d.replace(" ", ": ", 1) for d in domains if d != _rob.OVERALL]
    return "; ".join(parts) + "."


def _rob_circle(
    fig: Figure, x: float, y: float, r: float, judgement: str, size: float
) -> tuple[str, str]:
    """A filled circle with its judgement's symbol at (x, y) inches; returns (fill, symbol)."""
    fill, symbol = ROB_STYLE[judgement]
    fig.add_artist(
        Circle((x, y), r, transform=fig.dpi_scale_trans, facecolor=fill, edgecolor=_INK, lw=0.5)
    )
    fig.text(
        x, y - 0.005, symbol, transform=fig.dpi_scale_trans, ha="center", va="center",
        fontsize=size, fontweight="bold", color="white" if fill in _ROB_DARK else _INK,
        parse_math=False,
    )
    return fill, symbol


def rob_traffic_light(
    assessments: Any, studies: Any = None, *, title: str = "Risk of bias"
) -> Figure:
    """Traffic-light plot of risk-of-bias judgements: studies x domains, one panel per tool.

    Each judgement is a circle filled with its colour and marked with its symbol
    (:data:`ROB_STYLE`); Newcastle-Ottawa cells also give the stars. Under each panel
    are the domain names behind the column headers and a legend of the tool's
    judgements. Studies appear in the order of their first row in the table.

    Parameters
    ----------
    assessments : DataFrame or iterable of mapping
        Rows of ``risk_of_bias.csv`` (``study_id``, ``tool``, ``domain``,
        ``judgement``, ``stars``), as validated by :func:`metapool.io.load_tables`.
    studies : DataFrame or iterable of mapping, optional
        Rows of ``studies.csv``, for the labels ("Author Year"); else the study_id.
    title : str, default "Risk of bias"
        Title line.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.metapool``: ``figure`` (``"rob_traffic_light"``), ``panels`` (per tool:
        ``tool``, ``domains``, ``headers``, ``study_ids``, ``studies`` (labels) and
        ``cells``, one per circle: ``study_id``, ``label``, ``domain``, ``judgement``,
        ``stars``, ``color``, ``symbol``), ``n_circles``. A placeholder figure when there
        are no rows.
    """
    rows = _rob_records(assessments)
    labels, _ = _rob_labels(studies)
    with _style():
        if not rows:
            return placeholder_figure(title, "No risk-of-bias assessment was supplied.",
                                      figure="rob_traffic_light")
        measure = _Measure()
        width = 7.0
        inner = width - 2 * _MARGIN
        row_h, r, sym = 0.24, 0.085, 7.5
        panels: list[dict[str, Any]] = []
        for tool in _rob.TOOLS:
            mine = [x for x in rows if x.get("tool") == tool]
            if not mine:
                continue
            ids = list(dict.fromkeys(str(x["study_id"]) for x in mine))
            given = {x["domain"] for x in mine}
            domains = [d for d in _rob.TOOLS[tool]["domains"] if d in given]
            cell = {(str(x["study_id"]), x["domain"]): x for x in mine}
            panels.append({"tool": tool, "ids": ids, "domains": domains, "cell": cell})
        label_w = max(
            measure.width(labels.get(sid, sid), _SIZE) for p in panels for sid in p["ids"]
        ) + 0.15
        head = _title_lines(title, "Traffic-light plot of the judgements per study and domain",
                            inner, measure)
        blocks = []
        for p in panels:
            nos = p["tool"] == "Newcastle-Ottawa"
            col_w = min(0.75 if nos else 0.5, (inner - label_w) / len(p["domains"]))
            key = _wrapped([_domain_key(p["tool"], p["domains"])], inner, measure, _SMALL,
                           color=_NOTE)
            blocks.append((p, col_w, key))
        header_h = {True: 0.36, False: 0.22}  # two-line headers for Newcastle-Ottawa
        heights = [
            0.24 + header_h[p["tool"] == "Newcastle-Ottawa"] + row_h * len(p["ids"]) + 0.06
            + _lines_height(key) + 0.34
            for p, _, key in blocks
        ]
        height = 0.1 + _lines_height(head) + 0.08 + sum(heights) + 0.05
        fig = _new_figure(width, height)
        y = _put_lines(fig, head, _MARGIN, height - 0.1, width, height) - 0.08
        described: list[dict[str, Any]] = []
        n_circles = 0
        for (p, col_w, key), block_h in zip(blocks, heights):
            tool = p["tool"]
            nos = tool == "Newcastle-Ottawa"
            top = y
            fig.text(_MARGIN, y, f"{tool} ({_rob.TOOLS[tool]['design']})",
                     transform=fig.dpi_scale_trans, va="top", ha="left",
                     fontsize=_SIZE + 0.5, fontweight="bold", color=_INK, parse_math=False)
            y -= 0.24
            x0 = _MARGIN + label_w
            headers = [_domain_header(tool, d) for d in p["domains"]]
            for i, text in enumerate(headers):
                fig.text(x0 + (i + 0.5) * col_w, y - header_h[nos] + 0.05, text,
                         transform=fig.dpi_scale_trans, ha="center", va="bottom",
                         fontsize=_SMALL, color=_INK, parse_math=False, linespacing=1.0,
                         fontweight="bold" if text == "Overall" else "normal")
            y -= header_h[nos]
            fig.add_artist(Line2D([_MARGIN, x0 + len(headers) * col_w], [y + 0.02, y + 0.02],
                                  transform=fig.dpi_scale_trans, color=_INK, lw=0.6))
            cells = []
            study_labels = []
            for j, sid in enumerate(p["ids"]):
                cy = y - (j + 0.5) * row_h
                label = labels.get(sid, sid)
                study_labels.append(label)
                fig.text(_MARGIN, cy, label, transform=fig.dpi_scale_trans, ha="left",
                         va="center", fontsize=_SIZE, color=_INK, parse_math=False)
                for i, domain in enumerate(p["domains"]):
                    x = p["cell"].get((sid, domain))
                    if x is None:
                        continue
                    cx = x0 + (i + 0.5) * col_w
                    stars = x.get("stars")
                    if nos and stars is not None:
                        cx -= 0.12
                        fig.text(cx + r + 0.04, cy, f"{int(stars)}\u2605",
                                 transform=fig.dpi_scale_trans, ha="left", va="center",
                                 fontsize=_SMALL, color=_NOTE, parse_math=False)
                    fill, symbol = _rob_circle(fig, cx, cy, r, str(x["judgement"]), sym)
                    n_circles += 1
                    cells.append({
                        "study_id": sid, "label": label, "domain": domain,
                        "judgement": str(x["judgement"]),
                        "stars": None if stars is None else int(stars),
                        "color": fill, "symbol": symbol,
                    })
            y -= row_h * len(p["ids"]) + 0.06
            fig.add_artist(Line2D([_MARGIN, x0 + len(headers) * col_w], [y + 0.04, y + 0.04],
                                  transform=fig.dpi_scale_trans, color=_INK, lw=0.6))
            y = _put_lines(fig, key, _MARGIN, y, width, height)
            # legend of the tool's judgements
            lx = _MARGIN
            ly = y - 0.12
            for judgement in _rob.TOOLS[tool]["judgements"]:
                _rob_circle(fig, lx + 0.07, ly, 0.065, judgement, 6.0)
                fig.text(lx + 0.17, ly, judgement, transform=fig.dpi_scale_trans, ha="left",
                         va="center", fontsize=_SMALL, color=_INK, parse_math=False)
                lx += 0.17 + measure.width(judgement, _SMALL) + 0.25
            y = top - block_h
            described.append({
                "tool": tool, "domains": list(p["domains"]), "headers": headers,
                "study_ids": list(p["ids"]), "studies": study_labels, "cells": cells,
            })
        fig.metapool = {  # type: ignore[attr-defined]
            "figure": "rob_traffic_light",
            "panels": described,
            "n_circles": n_circles,
        }
        return fig


def rob_summary(
    assessments: Any,
    studies: Any = None,
    *,
    weighted: bool = True,
    title: str = "Risk of bias",
) -> Figure:
    """Summary plot of risk of bias: per tool and domain, the share of each judgement.

    One horizontal stacked bar per domain (Overall last), best judgement on the left,
    in the colours of :data:`ROB_STYLE`; shares of 5% or more are printed in the bar.
    By default each study counts with its sample size (``n_total`` of studies.csv), so
    a bar shows the proportion of the information (participants) at each judgement, as
    in robvis' weighted summary plot; ``weighted=False`` counts every study once. When
    a study has no ``n_total`` the plot is unweighted and says so.

    Parameters
    ----------
    assessments : DataFrame or iterable of mapping
        Rows of ``risk_of_bias.csv``.
    studies : DataFrame or iterable of mapping, optional
        Rows of ``studies.csv`` (``study_id``, ``n_total``); needed for the weights.
    weighted : bool, default True
        Weight studies by ``n_total``.
    title : str, default "Risk of bias"
        Title line.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.metapool``: ``figure`` (``"rob_summary"``), ``weighted`` (whether the
        weights were used), ``note`` (why not, when asked for), ``panels`` (per tool:
        ``tool``, ``n_studies``, ``total_weight``, ``bars``: per domain ``domain`` and
        ``segments`` [{``judgement``, ``proportion``, ``color``}] summing to 1). A
        placeholder figure when there are no rows.
    """
    rows = _rob_records(assessments)
    _, sizes = _rob_labels(studies)
    with _style():
        if not rows:
            return placeholder_figure(title, "No risk-of-bias assessment was supplied.",
                                      figure="rob_summary")
        ids = list(dict.fromkeys(str(x["study_id"]) for x in rows))
        note = ""
        weights = None
        if weighted:
            lacking = [sid for sid in ids if not (sizes.get(sid) or 0) > 0]
            if lacking:
                note = (f"Unweighted: no sample size (n_total) for {', '.join(lacking)}; "
                        "every study counts once.")
            else:
                weights = {sid: float(sizes[sid]) for sid in ids}  # type: ignore[arg-type]
        shares = _rob.domain_proportions(rows, weights)
        measure = _Measure()
        width = 7.0
        inner = width - 2 * _MARGIN
        label_w = 2.45
        bar_w = inner - label_w - 0.1
        bar_h, gap = 0.2, 0.08
        what = ("Share of participants (studies weighted by sample size)" if weights
                else "Share of studies (unweighted)")
        head = _title_lines(title, f"Summary plot: {what.lower()}", inner, measure)
        foot = _wrapped([note], inner, measure, _SMALL, color=_CAVEAT) if note else []
        heights = [0.26 + len(d) * (bar_h + gap) + 0.32 + 0.3 for d in shares.values()]
        height = 0.1 + _lines_height(head) + 0.08 + sum(heights) + _lines_height(foot) + 0.1
        fig = _new_figure(width, height)
        y = _put_lines(fig, head, _MARGIN, height - 0.1, width, height) - 0.08
        panels = []
        for (tool, domains), block_h in zip(shares.items(), heights):
            top = y
            members = {str(x["study_id"]) for x in rows if x.get("tool") == tool}
            total = sum(weights[s] for s in members) if weights else float(len(members))
            unit = "participants" if weights else "studies"
            fig.text(_MARGIN, y, f"{tool} ({_rob.TOOLS[tool]['design']}): {len(members)} "
                     f"stud{'y' if len(members) == 1 else 'ies'}"
                     + (f", {fmt_int(total)} participants" if weights else ""),
                     transform=fig.dpi_scale_trans, va="top", ha="left",
                     fontsize=_SIZE + 0.5, fontweight="bold", color=_INK, parse_math=False)
            y -= 0.26
            ax_h = len(domains) * (bar_h + gap)
            ax = fig.add_axes((
                (_MARGIN + label_w) / width, (y - ax_h) / height, bar_w / width, ax_h / height))
            bars = []
            for i, (domain, cells) in enumerate(domains.items()):
                yc = len(domains) - 1 - i
                left = 0.0
                segments = []
                for judgement, share in cells.items():
                    fill, _ = ROB_STYLE[judgement]
                    if share > 0:
                        ax.barh(yc, 100 * share, left=100 * left, height=bar_h / (bar_h + gap),
                                color=fill, edgecolor=_INK, linewidth=0.4)
                        if share >= 0.05:
                            ax.text(100 * (left + share / 2), yc, f"{100 * share:.0f}%",
                                    ha="center", va="center", fontsize=_SMALL - 0.5,
                                    color="white" if fill in _ROB_DARK else _INK,
                                    parse_math=False)
                    segments.append({"judgement": judgement, "proportion": share, "color": fill})
                    left += share
                shown = domain[:1].upper() + domain[1:]
                fig.text(_MARGIN, y - (i + 0.5) * (bar_h + gap), shown,
                         transform=fig.dpi_scale_trans, ha="left", va="center",
                         fontsize=_SIZE, color=_INK, parse_math=False,
                         fontweight="bold" if domain == "Overall" else "normal")
                bars.append({"domain": domain, "segments": segments})
            ax.set_xlim(0, 100)
            ax.set_ylim(-0.5, len(domains) - 0.5)
            ax.set_yticks([])
            ax.xaxis.set_major_locator(FixedLocator([0, 25, 50, 75, 100]))
            ax.xaxis.set_major_formatter(FixedFormatter(["0%", "25%", "50%", "75%", "100%"]))
            for side in ("top", "right", "left"):
                ax.spines[side].set_visible(False)
            y -= ax_h + 0.32
            lx = _MARGIN + label_w
            for judgement in _rob.TOOLS[tool]["judgements"]:
                fill, _ = ROB_STYLE[judgement]
                fig.add_artist(Rectangle((lx, y - 0.05), 0.16, 0.1,
                                         transform=fig.dpi_scale_trans, facecolor=fill,
                                         edgecolor=_INK, lw=0.4))
                fig.text(lx + 0.21, y, judgement, transform=fig.dpi_scale_trans, ha="left",
                         va="center", fontsize=_SMALL, color=_INK, parse_math=False)
                lx += 0.21 + measure.width(judgement, _SMALL) + 0.22
            y = top - block_h
            panels.append({"tool": tool, "n_studies": len(members), "total_weight": total,
                           "unit": unit, "bars": bars})
        if foot:
            _put_lines(fig, foot, _MARGIN, y, width, height)
        fig.metapool = {  # type: ignore[attr-defined]
            "figure": "rob_summary",
            "weighted": weights is not None,
            "note": note,
            "panels": panels,
        }
        return fig


# --------------------------------------------------------------------------- writers


def _close(fig: Figure) -> None:
    """Release a figure; unregisters it from pyplot when pyplot manages it."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # a no-op for figures pyplot does not manage
        pyplot.close(fig)


def save_figure(fig: Figure, path: str | os.PathLike[str], *, close: bool = True) -> Path:
    """Write a figure deterministically; the format follows the file extension.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to write.
    path : path-like
        Output path ending in ``.svg``, ``.png`` or ``.pdf``; parent directories are
        created.
    close : bool, default True
        Release the figure afterwards (pass False to save it in several formats).

    Returns
    -------
    pathlib.Path
        The written path.

    Notes
    -----
    SVG keeps text as ``<text>`` (``svg.fonttype = "none"``, escaped by matplotlib),
    uses the fixed ``svg.hashsalt`` ``"metapool"`` for element ids and has no date.
    PNG is written at 300 dpi without Software metadata. PDF has no creation date or
    producer. The same figure therefore gives byte-identical files on every run.

    Raises
    ------
    ValueError
        For an unsupported extension.
    """
    out = Path(path)
    ext = out.suffix.lower().lstrip(".")
    options: dict[str, dict[str, Any]] = {
        "svg": {"metadata": {"Date": None, "Creator": None}},
        "png": {"dpi": 300, "metadata": {"Software": None}},
        "pdf": {
            "metadata": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}
        },
    }
    if ext not in options:
        raise ValueError(f"unsupported figure format {out.suffix!r}; use .svg, .png or .pdf")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _style():
        fig.savefig(out, format=ext, **options[ext])
    if close:
        _close(fig)
    return out


def write_forest(
    doc: Mapping[str, Any],
    svg_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str] | None = None,
    *,
    layout: str = "default",
    pdf_path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Draw the forest plot of a document and write it as SVG (and PNG, PDF).

    Parameters
    ----------
    doc : mapping
        Analysis document.
    svg_path : path-like
        Output SVG path.
    png_path : path-like, optional
        Output PNG path (300 dpi).
    layout : str, default "default"
        Passed to :func:`forest_plot`.
    pdf_path : path-like, optional
        Output PDF path.

    Returns
    -------
    matplotlib.figure.Figure
        The drawn figure (its ``metapool`` attribute describes the content).
    """
    fig = forest_plot(doc, layout=layout)
    return write_figure(fig, *(p for p in (svg_path, png_path, pdf_path) if p is not None))


#: The per-analysis figures besides the forest plot: file stem -> drawing function.
FIGURES = {
    "funnel": funnel_plot,
    "leave_one_out": leave_one_out_plot,
    "cumulative": cumulative_plot,
    "sensitivity": sensitivity_plot,
}


def write_figure(fig: Figure, *paths: str | os.PathLike[str]) -> Figure:
    """Write one figure to several files (format from each extension), then release it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    *paths : path-like
        Output paths ending in ``.svg``, ``.png`` or ``.pdf``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (``fig.metapool`` still describes it).
    """
    for i, path in enumerate(paths):
        save_figure(fig, path, close=i == len(paths) - 1)
    return fig
