"""Number and text formatting shared by the forest plot and the HTML report.

Both print the same values the same way: proportions as percentages with one decimal,
ratios with two, p-values as ``<0.001``, missing values as an em dash (never ``nan`` or
``None``). Rounding is half-up on the decimal representation, as a reader expects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote

__all__ = [
    "DASH",
    "EN_DASH",
    "PROPORTION_MEASURES",
    "RATIO_MEASURES",
    "is_missing",
    "as_float",
    "is_proportion_measure",
    "fmt_ratio",
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
    "weight_basis",
    "doi_url",
    "is_yes",
]

#: Rendered in place of a value that does not exist.
DASH = "\u2014"
#: Separator between the bounds of an interval ("57.3–82.2").
EN_DASH = "\u2013"

#: Measures whose natural scale is a proportion (shown as percent).
PROPORTION_MEASURES = frozenset({"PLO", "PAS", "PFT", "PR", "PRAW", "PLN"})
#: Measures whose natural scale is a ratio (shown with 2 decimals, log axis).
RATIO_MEASURES = frozenset({"HR", "RR", "OR", "IRR"})


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


def as_float(value: Any) -> float | None:
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


def fmt_ratio(x: float) -> str:
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
    x = as_float(value)
    if x is None:
        return DASH
    if is_proportion_measure(measure):
        return _fixed(x, 1, scale=100)
    if (measure or "").upper() in RATIO_MEASURES:
        return fmt_ratio(x)
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
        x = as_float(stripped)
        if x is None:
            return re.sub(r"^([<>≤≥=])\s*", r"\1", stripped)
        value = x
    x = as_float(value)
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
    x = as_float(value)
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
    x = as_float(value)
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
    x = as_float(value)
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
    x = as_float(value)
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
    x = as_float(value)
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
    if as_float(row.get("tau2")) is not None:
        parts.append(f"\u03c4\u00b2 = {fmt_tau2(row.get('tau2'))}")
    if as_float(row.get("i2")) is not None:
        parts.append(f"I\u00b2 = {fmt_pct(row.get('i2'))}")
    if as_float(row.get("q")) is not None:
        q = f"Q = {fmt_num(row.get('q'))}"
        if as_float(row.get("q_df")) is not None:
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
        w = as_float(s.get("weight_pct"))
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


def is_yes(value: Any) -> bool:
    """Interpret a yes/no/bool cell."""
    if isinstance(value, str):
        return value.strip().lower() in {"yes", "true", "1", "y"}
    return bool(value) and not is_missing(value)
