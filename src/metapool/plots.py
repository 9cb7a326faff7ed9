"""Forest plots of analysis documents and deterministic figure writers.

:func:`forest_plot` draws a publication-grade forest plot from one analysis document
(``results/<analysis>/analysis.json``, see ``docs/architecture.md``): a table of study
labels, data, effects with confidence intervals and weights, with the interval plot in
the middle; a diamond for each pooled model, the prediction interval under the overall
diamond, a heterogeneity line under each pooled row and a line stating the methods.

Only this module imports matplotlib. It never touches :mod:`matplotlib.pyplot`: figures
are plain :class:`matplotlib.figure.Figure` objects drawn with the Agg canvas, so the
plotting stack has no global state and works headless. All style settings live in
:data:`RC`, applied on top of matplotlib's built-in defaults (a user's matplotlibrc or
style is ignored) both when drawing and when saving, which together with fixed metadata makes the SVG/PNG/PDF output byte-identical
for identical input on any machine (the DejaVu Sans font ships with matplotlib).

Each figure carries ``fig.metapool``, a dict describing what was drawn (number of study
rows, diamond centres in axis data coordinates, axis scale, ...) for tests and callers.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib import transforms as mtransforms
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from metapool.formatting import (
    CI_NAMES,
    DASH,
    ESTIMATOR_NAMES,
    PI_NAMES,
    as_float,
    fmt_int,
    fmt_interval,
    fmt_level,
    fmt_pct,
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

__all__ = ["LAYOUTS", "RC", "forest_plot", "save_figure", "write_forest"]

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

#: Layouts accepted by :func:`forest_plot`: which text columns are shown, the width of
#: the interval plot and the row height (inches).
LAYOUTS: dict[str, dict[str, Any]] = {
    "default": {"data_column": True, "weight_column": True, "plot_width": 2.7, "row_height": 0.19},
    "compact": {
        "data_column": False,
        "weight_column": False,
        "plot_width": 2.3,
        "row_height": 0.17,
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
        str(row.get("status", "")).startswith("pooled") and as_float(row.get("estimate")) is not None
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
        prop = FontProperties(family=RC["font.sans-serif"], size=size, weight=weight, style=style)
        w, _, _ = self._renderer.get_text_width_height_descent(text, prop, ismath=False)
        return w / 72.0


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


def _wrap(text: str, width_in: float, measure: _Measure, size: float) -> list[str]:
    """Wrap text so that each line fits in ``width_in`` inches."""
    if measure.width(text, size) <= width_in:
        return [text]
    avg = measure.width(text, size) / max(len(text), 1)
    chars = max(20, int(width_in / avg))
    while chars > 20:
        lines = textwrap.wrap(text, chars)
        if all(measure.width(line, size) <= width_in for line in lines):
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
    layout : {"default", "compact"}
        ``"default"`` shows study, data, plot, effect (CI) and weight columns;
        ``"compact"`` drops the data and weight columns.

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
        or ``"fixed"``). Study markers have gid ``study-<i>``, diamonds
        ``diamond-<j>`` and the prediction interval ``prediction-interval``.

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
        return _draw(doc, LAYOUTS[layout])


def _draw(doc: Mapping[str, Any], opts: Mapping[str, Any]) -> Figure:
    measure = str(doc.get("measure") or "")
    proportion = is_proportion_measure(measure)
    scale = 100.0 if proportion else 1.0
    rows, facts = _build_rows(doc)
    overall = facts["overall"]
    methods = doc.get("methods") or {}
    level = fmt_level(methods.get("level", overall.get("level")))
    effect_label = str(doc.get("effect_label") or ("Proportion" if proportion else measure))
    measure_text = _Measure()

    # ---- texts of every column -------------------------------------------------------
    derived_mark, cc_mark = "\u2020", "\u2021"
    any_derived = any(_is_derived(r["study"]) for r in rows if r["kind"] == "study")
    any_cc = any(is_yes(r["study"].get("cc_added")) for r in rows if r["kind"] == "study")
    for r in rows:
        r.setdefault("data", "")
        r.setdefault("effect", "")
        r.setdefault("weight", "")
        if r["kind"] == "study":
            s = r["study"]
            r["data"] = _data_text(s, proportion)
            r["effect"] = _effect_text(
                s.get("effect"), s.get("ci_lower"), s.get("ci_upper"), measure
            )
            marks = (derived_mark if _is_derived(s) else "") + (
                cc_mark if is_yes(s.get("cc_added")) else ""
            )
            if marks and r["effect"] != DASH:
                r["effect"] += f" {marks}"
            r["weight"] = (
                fmt_pct(s.get("weight_pct")) if as_float(s.get("weight_pct")) is not None else ""
            )
        elif r["kind"] == "pooled":
            m = r["model"]
            if (
                proportion
                and as_float(m.get("n_events")) is not None
                and as_float(m.get("n_participants")) is not None
            ):
                r["data"] = f"{fmt_int(m['n_events'])}/{fmt_int(m['n_participants'])}"
            r["effect"] = _effect_text(
                m.get("estimate"), m.get("ci_lower"), m.get("ci_upper"), measure
            )
        elif r["kind"] == "pi":
            m = r["model"]
            r["effect"] = f"({fmt_interval(m.get('pi_lower'), m.get('pi_upper'), measure)})"

    headers = {
        "label": "Study",
        "data": (
            "Events/Total"
            if proportion
            else "Reported HR" if measure.upper() == "HR" else "Reported"
        ),
        "effect": (
            f"{effect_label}, % ({level} CI)" if proportion else f"{effect_label} ({level} CI)"
        ),
        "weight": "Weight",
    }

    def label_style(r: dict[str, Any]) -> tuple[float, str, str]:
        kind = r["kind"]
        if kind in ("subgroup", "pooled"):
            return _SIZE, "bold", "normal"
        if kind == "het":
            return _SMALL, "normal", "italic"
        if kind in ("pi", "note"):
            return _SIZE, "normal", "italic"
        return _SIZE, "normal", "normal"

    # ---- column widths (inches) ------------------------------------------------------
    def col_width(key: str, bold_kinds: tuple[str, ...] = ("pooled",)) -> float:
        widths = [measure_text.width(headers[key], _SIZE, "bold")]
        for r in rows:
            if r.get(key):
                weight = "bold" if r["kind"] in bold_kinds else "normal"
                widths.append(measure_text.width(r[key], _SIZE, weight))
        return max(widths)

    label_w = measure_text.width(headers["label"], _SIZE, "bold")
    het_w = 0.0
    for r in rows:
        if r["kind"] == "het":
            het_w = max(
                het_w, measure_text.width(r["label"], _SMALL, "normal", "italic") + _INDENT
            )
        elif "label" in r:
            size, weight, style = label_style(r)
            indent = _INDENT if r.get("indent") else 0.0
            label_w = max(label_w, measure_text.width(r["label"], size, weight, style) + indent)
    data_w = col_width("data") if opts["data_column"] else 0.0
    effect_w = col_width("effect")
    show_weight = opts["weight_column"] and any(r["weight"] for r in rows)
    weight_w = col_width("weight") if show_weight else 0.0
    left_block = label_w + (_GAP + data_w if data_w else 0.0)
    if het_w > left_block:
        label_w += het_w - left_block
        left_block = het_w
    plot_w = float(opts["plot_width"])

    x_label = _MARGIN
    x_data_right = x_label + left_block  # data column is right-aligned
    x_plot = x_label + left_block + _GAP * 1.5
    x_effect = x_plot + plot_w + _GAP * 1.5
    x_weight_right = x_effect + effect_w + _GAP + weight_w
    width = (x_weight_right if weight_w else x_effect + effect_w) + _MARGIN

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
    foot_lines = _wrap(method, width - 2 * _MARGIN, measure_text, _SMALL)
    if notes:
        foot_lines += _wrap(" ".join(notes), width - 2 * _MARGIN, measure_text, _SMALL)

    # ---- heights (inches) ------------------------------------------------------------
    row_h = float(opts["row_height"])
    title = str(doc.get("title") or doc.get("analysis") or "")
    title_lines = _wrap(title, width - 2 * _MARGIN, measure_text, _TITLE)
    subtitle = "single study \u2014 not pooled" if facts["single"] else ""
    title_h = 0.08 + 0.19 * len(title_lines) + (0.17 if subtitle else 0.0) + 0.06
    header_h = 0.26
    rows_h = row_h * len(rows)
    ratio = not proportion
    axis_h = 0.50 + (0.17 if ratio else 0.0)
    foot_h = 0.14 * len(foot_lines) + 0.08
    height = title_h + header_h + rows_h + axis_h + foot_h

    fig = Figure(figsize=(round(width, 4), round(height, 4)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes(
        (x_plot / width, (axis_h + foot_h) / height, plot_w / width, rows_h / height)
    )
    n = len(rows)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_autoscale_on(False)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.yaxis.set_major_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())
    ax.patch.set_visible(False)

    # ---- x axis ----------------------------------------------------------------------
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
        ax.set_xscale("linear")
    else:
        lo_d, hi_d = (min(lows), max(highs)) if lows else (0.5, 2.0)
        xmin, xmax, ticks = _log_limits(lo_d, hi_d)
        ax.set_xscale("log")
    ax.set_xlim(xmin, xmax)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_tick_label))
    ax.spines["bottom"].set_bounds(xmin, xmax)

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
    hrule(-0.5 - header_h / row_h, 0.9)
    hrule(-0.5, 0.6)
    hrule(n - 0.5, 0.6)
    ftext(x_label, y_header, headers["label"], fontweight="bold", ha="left")
    if data_w:
        ftext(x_data_right, y_header, headers["data"], fontweight="bold", ha="right")
    ftext(x_effect, y_header, headers["effect"], fontweight="bold", ha="left")
    if weight_w:
        ftext(x_weight_right, y_header, headers["weight"], fontweight="bold", ha="right")

    # ---- reference lines -------------------------------------------------------------
    last_plot_row = max(
        (i for i, r in enumerate(rows) if r["kind"] in ("study", "pooled", "pi", "note")),
        default=n - 1,
    )
    if not proportion:
        ax.add_line(Line2D([1.0, 1.0], [-0.5, n - 0.5], color=_GRID, lw=0.7, zorder=1))
    if _is_pooled(overall):
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
        "xunit": "ratio" if ratio else "percent",
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
            line = Line2D(
                [lo_c, hi_c], [y, y], color=color, lw=lw, solid_capstyle="butt", zorder=3
            )
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
        size, weight, style = label_style(r)
        indent = _INDENT if r.get("indent") else 0.0
        if kind == "het":
            ftext(
                x_label + (_INDENT if facts["has_subgroups"] else 0.0),
                y,
                r["label"],
                fontsize=_SMALL,
                fontstyle="italic",
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
            fontstyle=style,
            ha="left",
            color=_NOTE if kind in ("pi", "note") else _INK,
        )
        text_weight = "bold" if kind == "pooled" else "normal"
        if data_w and r["data"]:
            ftext(x_data_right, y, r["data"], fontweight=text_weight, ha="right")
        if r["effect"]:
            ftext(
                x_effect,
                y,
                r["effect"],
                fontweight=text_weight,
                ha="left",
                color=_NOTE if kind == "pi" else _INK,
            )
        if weight_w and r["weight"]:
            ftext(x_weight_right, y, r["weight"], ha="right")

        if kind == "study":
            s = r["study"]
            i = meta["n_study_rows"]
            meta["n_study_rows"] += 1
            meta["study_labels"].append(r["label"])
            est, lo, hi = (as_float(s.get(k)) for k in ("effect", "ci_lower", "ci_upper"))
            if lo is not None and hi is not None and (proportion or lo > 0):
                clipped_segment(lo * scale, hi * scale, y, _INK, 0.9, gid=f"study-ci-{i}")
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
                    mfc=_STUDY,
                    mec=_STUDY,
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
                facecolor=_POOLED if r["overall"] else "#4a6a94",
                edgecolor=_POOLED,
                lw=0.6,
                zorder=4,
            )
            diamond.set_gid(f"diamond-{j}")
            ax.add_patch(diamond)
            if lo < xmin or hi > xmax:
                clipped_segment(lo, hi, y, _POOLED, 0.6)
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
            clipped_segment(lo, hi, y, _PI, 2.2, gid="prediction-interval")
            for x in (lo, hi):
                if xmin <= x <= xmax:
                    ax.add_line(Line2D([x, x], [y - 0.18, y + 0.18], color=_PI, lw=0.9, zorder=3))
            meta["prediction_interval"] = (lo, hi)
        elif kind == "note":
            meta["not_pooled"].append(str(r["model"].get("subgroup") or "overall"))
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
    if ratio:
        left, right = ("Favours experimental", "Favours control")
        favours = doc.get("favours")
        if isinstance(favours, (list, tuple)) and len(favours) == 2:
            left, right = str(favours[0]), str(favours[1])
        if xmin < 1.0 < xmax:
            for sign, text, ha in (
                (-1, f"\u2190 {left}", "right"),
                (1, f"{right} \u2192", "left"),
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
    xlabel = f"{effect_label} (%)" if proportion else f"{effect_label} (log scale)"
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

    fig.metapool = meta  # type: ignore[attr-defined]
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
) -> Figure:
    """Draw the forest plot of a document and write it as SVG (and PNG).

    Parameters
    ----------
    doc : mapping
        Analysis document.
    svg_path : path-like
        Output SVG path.
    png_path : path-like, optional
        Output PNG path.
    layout : str, default "default"
        Passed to :func:`forest_plot`.

    Returns
    -------
    matplotlib.figure.Figure
        The drawn figure (its ``metapool`` attribute describes the content).
    """
    fig = forest_plot(doc, layout=layout)
    save_figure(fig, svg_path, close=png_path is None)
    if png_path is not None:
        save_figure(fig, png_path)
    return fig
