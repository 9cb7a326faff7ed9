"""Render analysis documents into one self-contained HTML report.

The report is built from the analysis documents (``results/<analysis>/analysis.json``,
see ``docs/architecture.md``) and the forest plots written by :mod:`metapool.plots`.
Everything the page needs is inside the HTML file: CSS is inline, figures are embedded
as ``data:`` URIs (an SVG shown through ``<img>`` can never run script in the page) and a
Content-Security-Policy forbids scripts and any external load. The only external URLs
are ``https://doi.org/`` links, which are plain anchors.

Every text that comes from the data passes through Jinja2 autoescaping; numbers are
formatted by the filters defined here (shared with :mod:`metapool.plots` so the figure
and the report print the same values). Missing values render as an em dash, never as
``nan`` or ``None``.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

__all__ = [
    "DASH",
    "render_report",
    "write_report",
    "is_missing",
    "fmt_value",
    "fmt_effect",
    "fmt_interval",
    "fmt_effect_ci",
    "fmt_p",
    "p_phrase",
    "fmt_tau2",
    "fmt_pct",
    "fmt_num",
    "fmt_int",
    "fmt_level",
    "heterogeneity_text",
    "doi_url",
    "weight_basis",
    "is_proportion_measure",
    "REQUIRED_KEYS",
]

#: Rendered in place of a value that does not exist.
DASH = "\u2014"
#: Separator between the bounds of an interval ("57.3–82.2").
EN_DASH = "\u2013"

#: Measures whose natural scale is a proportion (shown as percent).
PROPORTION_MEASURES = frozenset({"PLO", "PAS", "PFT", "PR", "PRAW", "PLN"})
#: Measures whose natural scale is a ratio (shown with 2 decimals, log axis).
RATIO_MEASURES = frozenset({"HR", "RR", "OR", "IRR"})

#: Top-level keys every analysis document must have.
REQUIRED_KEYS = (
    "analysis",
    "title",
    "table",
    "outcome",
    "measure",
    "effect_label",
    "scale",
    "methods",
    "models",
    "studies",
    "excluded",
    "ongoing",
    "warnings",
    "software",
)

_TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
_DOI_RE = re.compile(r"^10\.\d{4,9}/\S+$")


# --------------------------------------------------------------------------- formatting


def is_missing(value: Any) -> bool:
    """Tell whether a value counts as absent.

    Parameters
    ----------
    value : object
        Any value from an analysis document.

    Returns
    -------
    bool
        True for ``None``, NaN, and empty or whitespace-only strings.
    """
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str) and not value.strip():
        return True
    return False


def _as_float(value: Any) -> float | None:
    """Convert to float, or None when missing or not numeric."""
    if is_missing(value) or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def is_proportion_measure(measure: str | None) -> bool:
    """Tell whether a measure is shown on the percent scale.

    Parameters
    ----------
    measure : str or None
        Effect measure code, e.g. ``"PLO"`` or ``"HR"``.

    Returns
    -------
    bool
        True for proportion measures (``PLO``, ``PFT``, ...).
    """
    return (measure or "").upper() in PROPORTION_MEASURES


def _fixed(x: float, decimals: int, scale: int = 1) -> str:
    """Fixed-point text rounded half up from the shortest decimal repr of ``x``.

    ``0.7105`` as a percent gives ``"71.1"`` (binary floating point alone would give
    71.0), so printed values match what a reader computes from the printed inputs.
    """
    value = Decimal(repr(float(x))) * scale
    text = f"{value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP):f}"
    if text.startswith("-") and not text.strip("-0."):
        text = text[1:]  # no "-0.0"
    return text


def _fmt_ratio(x: float) -> str:
    """Ratio with 2 decimals; 2 significant digits below 0.1 so it never reads 0.00."""
    if x != 0 and abs(x) < 0.1:
        return f"{x:.2g}"
    return _fixed(x, 2)


def fmt_value(value: Any, measure: str | None) -> str:
    """Format a number on the natural scale without unit.

    Parameters
    ----------
    value : float or None
        Effect on the natural scale.
    measure : str
        Effect measure code.

    Returns
    -------
    str
        Percent value with 1 decimal for proportions (``"71.1"``), 2 decimals for
        ratios, ``"—"`` when missing.
    """
    x = _as_float(value)
    if x is None:
        return DASH
    if is_proportion_measure(measure):
        return _fixed(x, 1, scale=100)
    if (measure or "").upper() in RATIO_MEASURES:
        return _fmt_ratio(x)
    return f"{x:.3g}"


def fmt_effect(value: Any, measure: str | None) -> str:
    """Format one effect on its natural scale.

    Parameters
    ----------
    value : float or None
        Effect on the natural scale: a proportion in 0-1, or a ratio.
    measure : str
        Effect measure code (``"PLO"``, ``"HR"``, ...).

    Returns
    -------
    str
        ``"71.1%"`` for proportions, ``"0.72"`` for ratios, ``"—"`` when missing.

    Examples
    --------
    >>> fmt_effect(0.7105, "PLO")
    '71.1%'
    >>> fmt_effect(0.7234, "HR")
    '0.72'
    >>> fmt_effect(None, "HR")
    '—'
    """
    text = fmt_value(value, measure)
    if text != DASH and is_proportion_measure(measure):
        text += "%"
    return text


def fmt_interval(lower: Any, upper: Any, measure: str | None) -> str:
    """Format an interval as ``"57.3–82.2"`` (no unit, no brackets).

    Parameters
    ----------
    lower, upper : float or None
        Bounds on the natural scale.
    measure : str
        Effect measure code.

    Returns
    -------
    str
        The interval, or ``"—"`` when either bound is missing.
    """
    lo, hi = fmt_value(lower, measure), fmt_value(upper, measure)
    if DASH in (lo, hi):
        return DASH
    return f"{lo}{EN_DASH}{hi}"


def fmt_effect_ci(value: Any, lower: Any, upper: Any, measure: str | None) -> str:
    """Format an estimate with its interval: ``"71.1% (57.3–82.2)"``.

    Parameters
    ----------
    value : float or None
        Point estimate on the natural scale.
    lower, upper : float or None
        Interval bounds on the natural scale.
    measure : str
        Effect measure code.

    Returns
    -------
    str
        Estimate followed by the interval in parentheses; just the estimate when the
        interval is missing; ``"—"`` when the estimate is missing.

    Examples
    --------
    >>> fmt_effect_ci(0.7105, 0.5731, 0.8224, "PLO")
    '71.1% (57.3–82.2)'
    >>> fmt_effect_ci(0.72, 0.55, 0.94, "HR")
    '0.72 (0.55–0.94)'
    """
    est = fmt_effect(value, measure)
    if est == DASH:
        return DASH
    interval = fmt_interval(lower, upper, measure)
    if interval == DASH:
        return est
    return f"{est} ({interval})"


def fmt_p(value: Any) -> str:
    """Format a p-value: 3 decimals, ``"<0.001"`` below 0.001.

    Parameters
    ----------
    value : float, str or None
        A p-value; strings such as ``"<0.001"`` (a reported bound) are kept as written
        apart from surrounding spaces, numeric strings are formatted.

    Returns
    -------
    str
        The formatted p-value or ``"—"``.

    Examples
    --------
    >>> fmt_p(0.10123)
    '0.101'
    >>> fmt_p(2e-7)
    '<0.001'
    >>> fmt_p("< 0.05")
    '<0.05'
    """
    if is_missing(value):
        return DASH
    if isinstance(value, str):
        stripped = value.strip()
        x = _as_float(stripped)
        if x is None:
            return re.sub(r"^([<>≤≥=])\s*", r"\1", stripped)
        value = x
    x = _as_float(value)
    if x is None:
        return DASH
    if x < 0.001:
        return "<0.001"
    if x > 0.999:
        return ">0.999"
    return _fixed(x, 3)


def p_phrase(value: Any) -> str:
    """Format a p-value for running text: ``"p = 0.101"`` or ``"p < 0.001"``.

    Parameters
    ----------
    value : float, str or None
        A p-value.

    Returns
    -------
    str
        The phrase, or ``"p = —"`` when missing.
    """
    text = fmt_p(value)
    if text[:1] in "<>≤≥":
        return f"p {text[0]} {text[1:]}"
    return f"p = {text}"


def fmt_tau2(value: Any) -> str:
    """Format τ² with 4 decimals (``"0"`` when exactly zero, ``"<0.0001"`` when tiny).

    Parameters
    ----------
    value : float or None
        Between-study variance on the model scale.

    Returns
    -------
    str
        The formatted value or ``"—"``.
    """
    x = _as_float(value)
    if x is None:
        return DASH
    if x == 0:
        return "0"
    if 0 < x < 0.00005:
        return "<0.0001"
    return _fixed(x, 4)


def fmt_pct(value: Any, decimals: int = 1) -> str:
    """Format a value that already is a percentage: ``45.6`` -> ``"45.6%"``.

    Parameters
    ----------
    value : float or None
        Percentage (0-100), e.g. I² or a weight.
    decimals : int, default 1
        Decimal places.

    Returns
    -------
    str
        The formatted percentage or ``"—"``.
    """
    x = _as_float(value)
    if x is None:
        return DASH
    return f"{_fixed(x, decimals)}%"


def fmt_num(value: Any, decimals: int = 2) -> str:
    """Format a number with fixed decimals (``"—"`` when missing).

    Parameters
    ----------
    value : float or None
        The number.
    decimals : int, default 2
        Decimal places.

    Returns
    -------
    str
        The formatted number.
    """
    x = _as_float(value)
    if x is None:
        return DASH
    return _fixed(x, decimals)


def fmt_int(value: Any) -> str:
    """Format a count with thousands separators (``"—"`` when missing).

    Parameters
    ----------
    value : int, float or None
        A count.

    Returns
    -------
    str
        ``"1,234"``-style integer text.
    """
    x = _as_float(value)
    if x is None:
        return DASH
    return f"{int(_fixed(x, 0)):,}"


def fmt_level(value: Any) -> str:
    """Format a confidence level as a percentage: ``0.95`` -> ``"95%"``.

    Parameters
    ----------
    value : float or None
        Level as a fraction (0.95) or a percentage (95).

    Returns
    -------
    str
        ``"95%"``; ``"95%"`` is also the fallback when missing.
    """
    x = _as_float(value)
    if x is None:
        x = 0.95
    if x <= 1:
        x *= 100
    return f"{x:g}%"


def heterogeneity_text(row: Mapping[str, Any]) -> str:
    """One-line heterogeneity summary of a pooled row.

    Parameters
    ----------
    row : mapping
        A pooled row with ``tau2``, ``i2``, ``q``, ``q_df`` and ``q_p``.

    Returns
    -------
    str
        ``"τ² = 0.1230; I² = 45.6%; Q = 9.20 (df = 5), p = 0.101"``; parts that are
        missing are left out, and the empty string is returned when all are missing.
    """
    parts = []
    if _as_float(row.get("tau2")) is not None:
        parts.append(f"\u03c4\u00b2 = {fmt_tau2(row.get('tau2'))}")
    if _as_float(row.get("i2")) is not None:
        parts.append(f"I\u00b2 = {fmt_pct(row.get('i2'))}")
    if _as_float(row.get("q")) is not None:
        q = f"Q = {fmt_num(row.get('q'))}"
        if _as_float(row.get("q_df")) is not None:
            q += f" (df = {fmt_int(row.get('q_df'))})"
        if not is_missing(row.get("q_p")):
            q += f", {p_phrase(row.get('q_p'))}"
        parts.append(q)
    return "; ".join(parts)


def weight_basis(studies: Sequence[Mapping[str, Any]], subgrouped: bool) -> str:
    """Tell which model the studies' ``weight_pct`` belong to.

    Parameters
    ----------
    studies : sequence of mapping
        Study rows with ``weight_pct`` (percent) and ``subgroup``.
    subgrouped : bool
        Whether the analysis has subgroup models.

    Returns
    -------
    str
        ``"overall"`` when all weights sum to 100%, ``"subgroup"`` when they sum to
        100% within each subgroup (and not overall), else ``"unknown"``.
    """
    weights: dict[str, list[float]] = {}
    for s in studies:
        w = _as_float(s.get("weight_pct"))
        if w is not None:
            weights.setdefault(str(s.get("subgroup") or ""), []).append(w)
    if not weights:
        return "unknown"
    if abs(sum(sum(v) for v in weights.values()) - 100.0) < 0.5:
        return "overall"
    if subgrouped and all(abs(sum(v) - 100.0) < 0.5 for v in weights.values()):
        return "subgroup"
    return "unknown"


def doi_url(doi: Any) -> str | None:
    """Build the ``https://doi.org/`` link of a DOI.

    Parameters
    ----------
    doi : str or None
        A DOI, optionally written as ``doi:10...`` or as a doi.org URL.

    Returns
    -------
    str or None
        The resolver URL with the DOI percent-encoded, or None when the value is not a
        DOI (then no link is made).
    """
    if is_missing(doi):
        return None
    text = str(doi).strip()
    text = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", "", text, flags=re.IGNORECASE)
    if not _DOI_RE.match(text):
        return None
    return "https://doi.org/" + quote(text, safe="/:;()._-")


def _dash(value: Any) -> Any:
    """Jinja filter: the value itself, or ``"—"`` when missing."""
    return DASH if is_missing(value) else value


def _text(value: Any) -> str:
    """Jinja filter: a list as comma-separated text, booleans as yes/no, missing as ``"—"``."""
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value if not is_missing(v)]
        return ", ".join(items) if items else DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    return DASH if is_missing(value) else str(value)


def _yes(value: Any) -> bool:
    """Interpret a yes/no/bool cell."""
    if isinstance(value, str):
        return value.strip().lower() in {"yes", "true", "1", "y"}
    return bool(value) and not is_missing(value)


# --------------------------------------------------------------------------- documents


def _check_doc(doc: Mapping[str, Any]) -> None:
    """Raise ValueError when a document lacks a top-level key or an overall model."""
    missing = [key for key in REQUIRED_KEYS if key not in doc]
    if missing:
        name = doc.get("analysis", "<unnamed>")
        raise ValueError(f"analysis document {name!r} lacks keys: {', '.join(missing)}")
    if not doc["models"]:
        raise ValueError(f"analysis document {doc['analysis']!r} has no pooled rows")


def _figure_uri(figure: Any) -> str | None:
    """Encode a figure (path, SVG/PNG bytes or SVG text) as a ``data:`` URI."""
    if figure is None:
        return None
    if isinstance(figure, (bytes, bytearray)):
        data = bytes(figure)
    elif isinstance(figure, str) and figure.lstrip().startswith("<"):
        data = figure.encode("utf-8")
    elif isinstance(figure, (str, os.PathLike)):
        data = Path(figure).read_bytes()
    else:
        raise TypeError(f"figure must be a path, bytes or SVG text, not {type(figure).__name__}")
    mime = "image/png" if data.startswith(b"\x89PNG") else "image/svg+xml"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _anchor(slug: str, used: set[str]) -> str:
    """HTML id for an analysis section, unique within the page."""
    base = "analysis-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", str(slug)).strip("-") or "x")
    anchor, n = base, 2
    while anchor in used:
        anchor, n = f"{base}-{n}", n + 1
    used.add(anchor)
    return anchor


def _row_warnings(doc: Mapping[str, Any]) -> list[str]:
    """Document warnings followed by the pooled rows' warnings, without duplicates."""
    out: list[str] = []
    for text in doc.get("warnings") or []:
        if not is_missing(text) and str(text) not in out:
            out.append(str(text))
    for row in doc["models"]:
        label = "overall" if row.get("model") == "overall" else f"subgroup {row.get('subgroup')}"
        for part in str(row.get("warnings") or "").split(";"):
            part = part.strip()
            if part:
                text = f"{label}: {part}"
                if text not in out:
                    out.append(text)
    return out


#: Readable names of ``effect_method`` codes; unknown codes are shown as they are.
EFFECT_METHODS = {
    "logit": "logit of events/total",
    "hr_ci": "HR and CI as reported",
    "hr_p": "HR with SE from the p-value",
}


def _how_obtained(study: Mapping[str, Any]) -> list[str]:
    """Short notes on how a study's effect was obtained."""
    notes = []
    method = study.get("effect_method")
    if not is_missing(method):
        name = EFFECT_METHODS.get(str(method).split(" ")[0])
        notes.append(f"{name} ({method})" if name else f"effect: {method}")
    if not is_missing(study.get("study_ci_method")):
        notes.append(f"CI: {study['study_ci_method']}")
    if _yes(study.get("cc_added")):
        notes.append("continuity correction added")
    derivation = study.get("derivation")
    if _yes(study.get("derived")):
        notes.append("derived" + ("" if is_missing(derivation) else f": {derivation}"))
    elif not is_missing(derivation):
        notes.append(str(derivation))
    return notes


def _reported_text(study: Mapping[str, Any], measure: str) -> str:
    """Data column of a study: ``events/total`` or the reported ratio with CI/p."""
    if is_proportion_measure(measure):
        if is_missing(study.get("events")) or is_missing(study.get("total")):
            return DASH
        return f"{fmt_int(study['events'])}/{fmt_int(study['total'])}"
    value = study.get("hr")
    if _as_float(value) is None:
        return DASH
    text = _fmt_ratio(float(value))
    lo, hi = _as_float(study.get("hr_lower")), _as_float(study.get("hr_upper"))
    if lo is not None and hi is not None:
        level = study.get("ci_level")
        lvl = "" if _as_float(level) in (None, 0.95, 95.0) else f"; {fmt_level(level)} CI"
        text += f" ({_fmt_ratio(lo)}{EN_DASH}{_fmt_ratio(hi)}{lvl})"
    elif not is_missing(study.get("p_value")):
        text += f"; {p_phrase(study.get('p_value'))}"
    return text


def _methods_paragraphs(text: Any) -> list[str]:
    """Split the methods text into paragraphs at blank lines."""
    if is_missing(text):
        return []
    return [p.strip() for p in re.split(r"\n\s*\n", str(text)) if p.strip()]


def _software(docs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Union of the documents' software versions, sorted by package name."""
    versions: dict[str, list[str]] = {}
    for doc in docs:
        for pkg, ver in (doc.get("software") or {}).items():
            seen = versions.setdefault(str(pkg), [])
            if str(ver) not in seen:
                seen.append(str(ver))
    return [
        (pkg, " / ".join(vers))
        for pkg, vers in sorted(versions.items(), key=lambda kv: kv[0].lower())
    ]


def _context(doc: Mapping[str, Any], figure: Any, anchor: str) -> dict[str, Any]:
    """Everything the template needs for one analysis section."""
    measure = str(doc["measure"])
    models = list(doc["models"])
    overall = next((m for m in models if m.get("model") == "overall"), models[0])
    subgroups = [m for m in models if m is not overall]
    has_subgroups = bool(subgroups) or any(
        not is_missing(s.get("subgroup")) for s in doc["studies"]
    )
    studies = []
    for s in doc["studies"]:
        studies.append(
            {
                "row": s,
                "doi_url": doi_url(s.get("doi")),
                "reported": _reported_text(s, measure),
                "how": _how_obtained(s),
            }
        )
    methods = doc["methods"] or {}
    pooled = overall.get("status") == "pooled" and _as_float(overall.get("estimate")) is not None
    single_effect = None
    if not pooled and len(doc["studies"]) == 1:
        s = doc["studies"][0]
        single_effect = fmt_effect_ci(
            s.get("effect"), s.get("ci_lower"), s.get("ci_upper"), measure
        )
    return {
        "doc": doc,
        "anchor": anchor,
        "measure": measure,
        "proportion": is_proportion_measure(measure),
        "level": fmt_level(methods.get("level", overall.get("level"))),
        "overall": overall,
        "models": [overall, *subgroups],
        "has_subgroups": has_subgroups,
        "studies": studies,
        "figure_uri": _figure_uri(figure),
        "warnings": _row_warnings(doc),
        "methods_paragraphs": _methods_paragraphs(methods.get("text")),
        "pooled": pooled,
        "single_effect": single_effect,
        "weight_basis": weight_basis(doc["studies"], bool(subgroups)),
    }


def _environment() -> Environment:
    """Jinja2 environment: autoescaping everywhere, strict undefined, our filters."""
    env = Environment(
        loader=FileSystemLoader(str(_TEMPLATE_DIR)),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml"), default_for_string=True, default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        effect=fmt_effect,
        interval=fmt_interval,
        effect_ci=fmt_effect_ci,
        pvalue=fmt_p,
        tau2=fmt_tau2,
        pct=fmt_pct,
        num=fmt_num,
        count=fmt_int,
        level=fmt_level,
        dash=_dash,
        text=_text,
        heterogeneity=heterogeneity_text,
        yes=_yes,
    )
    env.tests["missing"] = is_missing
    return env


def render_report(
    docs: Sequence[Mapping[str, Any]],
    figures: Mapping[str, Any],
    *,
    title: str,
    generated_note: str = "",
) -> str:
    """Render analysis documents into one self-contained HTML page.

    Parameters
    ----------
    docs : sequence of mapping
        Analysis documents (see ``docs/architecture.md``) in the order of the config.
    figures : mapping
        ``{analysis slug: figure}``; a figure is a path to an SVG (or PNG) file, its
        bytes, or SVG text. Figures are embedded as base64 ``data:`` URIs. An analysis
        without a figure gets a visible note instead.
    title : str
        Page title.
    generated_note : str, optional
        Free text for the footer (e.g. the workflow version). Nothing time-dependent is
        added by this function, so equal inputs give identical output.

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    ValueError
        When a document lacks a required top-level key or has no pooled rows.
    """
    used: set[str] = set()
    sections = []
    for doc in docs:
        _check_doc(doc)
        slug = str(doc["analysis"])
        sections.append(_context(doc, figures.get(slug), _anchor(slug, used)))
    template = _environment().get_template("report.html")
    return template.render(
        title=title,
        generated_note=generated_note,
        sections=sections,
        software=_software(docs),
        dash=DASH,
    )


def write_report(
    docs: Sequence[Mapping[str, Any]],
    figures: Mapping[str, Any],
    out_path: str | os.PathLike[str],
    *,
    title: str,
    generated_note: str = "",
) -> Path:
    """Render the report and write it as UTF-8 with ``\\n`` line endings.

    Parameters
    ----------
    docs, figures, title, generated_note
        As for :func:`render_report`.
    out_path : path-like
        Output HTML file; parent directories are created.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    html = render_report(docs, figures, title=title, generated_note=generated_note)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(html)
    return out
