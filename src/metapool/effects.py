"""Per-study effect sizes: proportions and hazard ratios.

Every function works on numpy arrays and returns arrays of the same length, so the
same code serves one study or a whole table. Methods follow R metafor's ``escalc``
(proportions) and Tierney et al. (2007) (hazard ratios), so that each value can be
checked against a reference implementation.

References
----------
.. [1] Viechtbauer W. Conducting meta-analyses in R with the metafor package.
   J Stat Softw 2010;36(3):1-48.
.. [2] Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in
   the case of the binomial. Biometrika 1934;26:404-413.
.. [3] Tierney JF, Stewart LA, Ghersi D, Burdett S, Sydes MR. Practical methods for
   incorporating summary time-to-event data into meta-analysis. Trials 2007;8:16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = [
    "ProportionEffects",
    "proportion_effects",
    "clopper_pearson",
    "logit",
    "expit",
    "loghr_from_ci",
    "loghr_from_p",
]

#: Proportion measures understood by :func:`proportion_effects`.
PROPORTION_MEASURES = ("PLO",)


def logit(p):
    """Log-odds of a proportion, ``log(p / (1 - p))``."""
    return special.logit(np.asarray(p, dtype=float))


def expit(x):
    """Inverse logit, ``1 / (1 + exp(-x))`` (metafor's ``transf.ilogit``)."""
    return special.expit(np.asarray(x, dtype=float))


def _as_counts(events, total):
    events = np.atleast_1d(np.asarray(events, dtype=float))
    total = np.atleast_1d(np.asarray(total, dtype=float))
    if events.shape != total.shape:
        raise ValueError(
            f"events and total must have the same shape, got {events.shape} "
            f"and {total.shape}"
        )
    if not (np.all(np.isfinite(events)) and np.all(np.isfinite(total))):
        raise ValueError("events and total must be finite numbers")
    if np.any(events != np.round(events)) or np.any(total != np.round(total)):
        raise ValueError("events and total must be whole numbers")
    if np.any(total < 1):
        raise ValueError("total must be at least 1")
    if np.any(events < 0) or np.any(events > total):
        raise ValueError("events must lie between 0 and total")
    return events, total


@dataclass(frozen=True)
class ProportionEffects:
    """Transformed proportions and their sampling variances.

    Attributes
    ----------
    yi, vi : ndarray
        Effect on the model scale and its sampling variance.
    cc_added : ndarray of bool
        Whether the continuity correction was added to that study.
    measure : str
        The transformation (``"PLO"``: logit).
    continuity_correction : float
        The amount added to both cells of a corrected study.
    """

    yi: np.ndarray
    vi: np.ndarray
    cc_added: np.ndarray
    measure: str
    continuity_correction: float


def proportion_effects(events, total, *, measure="PLO", continuity_correction=0.5):
    """Transform single-arm proportions for inverse-variance pooling.

    Parameters
    ----------
    events, total : array_like of int
        Number of events and of participants per study.
    measure : {"PLO"}
        ``"PLO"``: logit, ``yi = log(x / (n - x))``, ``vi = 1/x + 1/(n - x)``.
    continuity_correction : float
        Added to both cells (events and non-events) of studies with 0 or ``n``
        events only, as metafor's ``escalc(measure="PLO", add=1/2, to="only0")``.

    Returns
    -------
    ProportionEffects
    """
    if measure not in PROPORTION_MEASURES:
        raise ValueError(
            f"measure must be one of {PROPORTION_MEASURES}, got {measure!r}"
        )
    if not continuity_correction > 0:
        raise ValueError("continuity_correction must be > 0 for the logit transform")
    x, n = _as_counts(events, total)
    cc_added = (x == 0) | (x == n)
    add = np.where(cc_added, continuity_correction, 0.0)
    ev = x + add
    non = n - x + add
    yi = np.log(ev / non)
    vi = 1.0 / ev + 1.0 / non
    return ProportionEffects(yi, vi, cc_added, measure, float(continuity_correction))


def clopper_pearson(events, total, level=0.95):
    """Exact (Clopper-Pearson) confidence interval of a binomial proportion.

    Equals R's ``binom.test(x, n, conf.level = level)$conf.int``; the lower bound is 0
    when ``x = 0`` and the upper bound is 1 when ``x = n``.

    Returns
    -------
    lower, upper : ndarray
    """
    if not 0 < level < 1:
        raise ValueError("level must lie strictly between 0 and 1")
    x, n = _as_counts(events, total)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore"):
        lower = np.where(x == 0, 0.0, stats.beta.ppf(alpha / 2, x, n - x + 1))
        upper = np.where(x == n, 1.0, stats.beta.ppf(1 - alpha / 2, x + 1, n - x))
    return lower, upper


def _z(level):
    return stats.norm.ppf(0.5 + level / 2.0)


def loghr_from_ci(hr, lower, upper, level=0.95):
    """Log hazard ratio and its standard error from an HR and its confidence interval.

    ``SE = (ln U - ln L) / (2 z)``, with ``z`` the normal quantile for ``level``
    (Tierney et al. 2007, method 1; metafor's ``conv.wald``).

    Returns
    -------
    yi, sei : ndarray
    """
    hr, lower, upper = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (hr, lower, upper))
    level = np.broadcast_to(np.asarray(level, dtype=float), hr.shape)
    if np.any(~(hr > 0)) or np.any(~(lower > 0)) or np.any(~(upper > 0)):
        raise ValueError("HR and its confidence limits must be positive")
    if np.any(lower >= upper):
        raise ValueError("the lower confidence limit must be below the upper one")
    if np.any(~((level > 0) & (level < 1))):
        raise ValueError("ci level must lie strictly between 0 and 1")
    return np.log(hr), (np.log(upper) - np.log(lower)) / (2.0 * _z(level))


def loghr_from_p(hr, p):
    """Log hazard ratio and standard error from an HR and its two-sided p-value.

    ``SE = |ln HR| / z`` with ``z = Phi^-1(1 - p/2)`` (Tierney et al. 2007). When the
    p-value was reported as a bound (``p < x``), using ``x`` gives the largest SE
    consistent with the report, i.e. a conservative SE.

    Parameters
    ----------
    hr : array_like
        Reported hazard ratios (> 0, != 1).
    p : array_like
        Two-sided p-values in (0, 1).

    Returns
    -------
    yi, sei : ndarray
    """
    hr = np.atleast_1d(np.asarray(hr, dtype=float))
    p = np.atleast_1d(np.asarray(p, dtype=float))
    if np.any(~(hr > 0)):
        raise ValueError("HR must be positive")
    if np.any(hr == 1):
        raise ValueError("an HR of exactly 1 carries no information on its SE")
    if np.any(~((p > 0) & (p < 1))):
        raise ValueError("p must lie strictly between 0 and 1 to give an SE")
    z = stats.norm.isf(p / 2.0)
    return np.log(hr), np.abs(np.log(hr)) / z
