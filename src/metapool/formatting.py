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
    "CI_NAMES",
    "DASH",
    "EN_DASH",
    "ESTIMATOR_NAMES",
    "I2_NAMES",
    "PI_NAMES",
    "PROPORTION_MEASURES",
    "RATIO_MEASURES",
    "as_float",
    "doi_url",
    "fmt_effect",
    "fmt_effect_ci",
    "fmt_int",
    "fmt_interval",
    "fmt_level",
    "fmt_num",
    "fmt_num_ci",
    "fmt_p",
    "fmt_pct",
    "fmt_pct_ci",
    "fmt_ratio",
    "fmt_stat",
    "fmt_tau2",
    "fmt_tau2_ci",
    "fmt_value",
    "heterogeneity_text",
    "is_glmm",
    "is_missing",
    "is_proportion_measure",
    "is_yes",
    "method_name",
    "p_phrase",
    "weight_basis",
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
        The formatted value or ``"—"``; 4 decimals below 10, 2 decimals from 10 and 1
        from 100 (the upper Q-profile bound of a small meta-analysis can be large).
    """
    x = as_float(value)
    if x is None:
        return DASH
    if x == 0:
        return "0"
    if 0 < x < 0.00005:
        return "<0.0001"
    if x >= 100:
        return _fixed(x, 1)
    if x >= 10:
        return _fixed(x, 2)
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
        The formatted number; negative numbers start with a minus sign (U+2212).

    Examples
    --------
    >>> fmt_num(-1.2345)
    '−1.23'
    """
    x = as_float(value)
    if x is None:
        return DASH
    text = _fixed(x, decimals)
    return "\u2212" + text[1:] if text.startswith("-") else text


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


def _ci_text(lo: str, hi: str, level: Any, labelled: bool = True) -> str:
    """``"95% CI 0.0213–1.2264"`` (``"0.0213–1.2264"`` unlabelled), ``""`` when a bound
    is missing."""
    if DASH in (lo, hi):
        return ""
    return f"{fmt_level(level)} CI {lo}{EN_DASH}{hi}" if labelled else f"{lo}{EN_DASH}{hi}"


def fmt_tau2_ci(
    value: Any, lower: Any, upper: Any, level: Any = 0.95, labelled: bool = True
) -> str:
    """τ² with its confidence interval: ``"0.1543 (95% CI 0.0213–1.2264)"``.

    Parameters
    ----------
    value : float or None
        τ² on the model scale.
    lower, upper : float or None
        Bounds of its confidence interval (e.g. Q-profile).
    level : float, default 0.95
        Confidence level.
    labelled : bool, default True
        Name the interval (``"95% CI "``); False gives ``"0.1543 (0.0213–1.2264)"``
        for a table whose header names it.

    Returns
    -------
    str
        The value with its interval; the value alone when a bound is missing;
        ``"—"`` when the value is missing.

    Examples
    --------
    >>> fmt_tau2_ci(0.154287, 0.0213, 1.2264)
    '0.1543 (95% CI 0.0213–1.2264)'
    >>> fmt_tau2_ci(0.0, None, None)
    '0'
    """
    est = fmt_tau2(value)
    if est == DASH:
        return DASH
    ci = _ci_text(fmt_tau2(lower), fmt_tau2(upper), level, labelled)
    return f"{est} ({ci})" if ci else est


def fmt_pct_ci(
    value: Any, lower: Any, upper: Any, level: Any = 0.95, labelled: bool = True
) -> str:
    """A percentage with its confidence interval: ``"70.0% (95% CI 20.5–93.7%)"``.

    Parameters
    ----------
    value : float or None
        Percentage (0-100), e.g. I².
    lower, upper : float or None
        Bounds of its confidence interval, in percent.
    level : float, default 0.95
        Confidence level.
    labelled : bool, default True
        Name the interval (``"95% CI "``); False gives ``"70.0% (20.5–93.7)"`` for a
        table whose header names it.

    Returns
    -------
    str
        The value with its interval; the value alone when a bound is missing;
        ``"—"`` when the value is missing.

    Examples
    --------
    >>> fmt_pct_ci(70.0033, 20.51, 93.68)
    '70.0% (95% CI 20.5–93.7%)'
    >>> fmt_pct_ci(70.0033, 20.51, 93.68, labelled=False)
    '70.0% (20.5–93.7)'
    """
    est = fmt_pct(value)
    if est == DASH:
        return DASH
    lo, hi = fmt_pct(lower), fmt_pct(upper)
    if DASH in (lo, hi):
        ci = ""
    elif labelled:
        ci = _ci_text(lo.rstrip("%"), hi, level)
    else:
        ci = _ci_text(lo.rstrip("%"), hi.rstrip("%"), level, labelled=False)
    return f"{est} ({ci})" if ci else est


def fmt_num_ci(
    value: Any,
    lower: Any,
    upper: Any,
    level: Any = 0.95,
    decimals: int = 2,
    labelled: bool = True,
) -> str:
    """A number with its confidence interval: ``"3.33 (95% CI 1.26–15.82)"``.

    Parameters
    ----------
    value : float or None
        The number (e.g. H²).
    lower, upper : float or None
        Bounds of its confidence interval.
    level : float, default 0.95
        Confidence level.
    decimals : int, default 2
        Decimal places.
    labelled : bool, default True
        Name the interval (``"95% CI "``).

    Returns
    -------
    str
        The value with its interval; the value alone when a bound is missing;
        ``"—"`` when the value is missing.
    """
    est = fmt_num(value, decimals)
    if est == DASH:
        return DASH
    ci = _ci_text(fmt_num(lower, decimals), fmt_num(upper, decimals), level, labelled)
    return f"{est} ({ci})" if ci else est


def fmt_stat(
    name: str, value: Any, df: Any = None, df2: Any = None, distribution: Any = None
) -> str:
    """A test statistic with its degrees of freedom.

    Parameters
    ----------
    name : str
        Symbol of the statistic (``"Q"``, ``"t"``, ``"QM"``, ...); replaced by ``"F"``
        when ``distribution`` is ``"F"``.
    value : float or None
        The statistic.
    df, df2 : float or None
        Degrees of freedom (``df2``: denominator df of an F test).
    distribution : str or None
        ``"chi2"``, ``"F"``, ``"t"`` or ``"z"``.

    Returns
    -------
    str
        ``"Q = 35.58 (χ², df = 1)"``, ``"F = 51.38 (df = 1, 3)"``, ``"t = 1.43 (df = 4)"``,
        or ``"—"`` when the statistic is missing.

    Examples
    --------
    >>> fmt_stat("Q", 35.576, 1, None, "chi2")
    'Q = 35.58 (χ², df = 1)'
    >>> fmt_stat("QM", 51.38, 1, 3, "F")
    'F = 51.38 (df = 1, 3)'
    """
    x = fmt_num(value)
    if x == DASH:
        return DASH
    dist = "" if is_missing(distribution) else str(distribution)
    symbol = "F" if dist.upper() == "F" else name
    dfs = [fmt_int(d) for d in (df, df2) if as_float(d) is not None]
    inside = []
    if dist.lower() in ("chi2", "chisq", "chi-squared"):
        inside.append("\u03c7\u00b2")
    if dfs:
        inside.append("df = " + ", ".join(dfs))
    return f"{symbol} = {x}" + (f" ({', '.join(inside)})" if inside else "")


#: Readable names of the τ² estimators (``models[].method``, ``methods.estimator``).
ESTIMATOR_NAMES = {
    "REML": "REML",
    "ML": "ML",
    "DL": "DerSimonian-Laird",
    "PM": "Paule-Mandel",
    "HE": "Hedges",
    "SJ": "Sidik-Jonkman",
    "HS": "Hunter-Schmidt",
    "EB": "empirical Bayes",
    "FE": "common effect",
    "GLMM": "binomial-normal GLMM",
}
#: Readable names of the CI methods of the pooled estimate (``ci_method``).
CI_NAMES = {
    "hksj": "Hartung-Knapp-Sidik-Jonkman",
    "knha": "Hartung-Knapp-Sidik-Jonkman",
    "hk": "Hartung-Knapp-Sidik-Jonkman",
    "hartung-knapp": "Hartung-Knapp-Sidik-Jonkman",
    "hksj_adhoc": "Hartung-Knapp-Sidik-Jonkman (ad hoc: never narrower than Wald)",
    "adhoc": "Hartung-Knapp-Sidik-Jonkman (ad hoc: never narrower than Wald)",
    "z": "Wald (z)",
    "wald": "Wald (z)",
    "normal": "Wald (z)",
    "t": "t-based",
}
#: Readable names of the prediction-interval methods (``pi_method``).
PI_NAMES = {
    "t": "t-based",
    "t(k-2)": "t-based (k \u2212 2 df)",
    "riley": "t-based (k \u2212 2 df, Riley)",
    "z": "normal-based",
    "normal": "normal-based",
    "hts": "Higgins-Thompson-Spiegelhalter",
    "none": "none",
}
#: Readable definitions of I² (``methods.i2``).
I2_NAMES = {
    "tau2": "from \u03c4\u00b2 and the typical within-study variance (\u03c4\u00b2-based)",
    "q": "from Cochran's Q: (Q \u2212 df) / Q (Q-based)",
}


def method_name(table: Mapping[str, str], code: Any) -> str | None:
    """Readable name of a method code; the code itself when unknown, None when missing.

    Parameters
    ----------
    table : mapping
        One of :data:`ESTIMATOR_NAMES`, :data:`CI_NAMES`, :data:`PI_NAMES`,
        :data:`I2_NAMES`.
    code : str or None
        The code from the document.

    Returns
    -------
    str or None
        The name.
    """
    if is_missing(code):
        return None
    key = str(code).strip()
    return table.get(key, table.get(key.lower(), table.get(key.upper(), key)))


def is_glmm(doc: Mapping[str, Any]) -> bool:
    """Tell whether an analysis document's primary model is the GLMM.

    Parameters
    ----------
    doc : mapping
        Analysis document.

    Returns
    -------
    bool
        True when the overall model's ``method`` (or ``methods.estimator``) is
        ``"GLMM"``.
    """
    models = doc.get("models") or [{}]
    method = models[0].get("method")
    if is_missing(method):
        method = (doc.get("methods") or {}).get("estimator")
    return str(method or "").upper() == "GLMM"


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
