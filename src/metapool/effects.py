"""Per-study effect sizes of proportions (hazard ratios: :mod:`metapool.survival`).

Every function works on numpy arrays and returns arrays of the same length, so the
same code serves one study or a whole table. Methods follow R metafor's ``escalc``,
so that each value can be checked against it.

References
----------
.. [1] Viechtbauer W. Conducting meta-analyses in R with the metafor package.
   J Stat Softw 2010;36(3):1-48.
.. [2] Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in
   the case of the binomial. Biometrika 1934;26:404-413.
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
    "pft",
    "inverse_pft",
    "inverse_pas",
]

#: Proportion measures understood by :func:`proportion_effects`: logit, Freeman-Tukey
#: double arcsine, arcsine square root, raw proportion.
PROPORTION_MEASURES = ("PLO", "PFT", "PAS", "PR")
#: Measures whose continuity correction is applied to 0-event and all-event studies;
#: the arcsine measures are defined at 0 and 1 and need none (metafor forces add = 0).
CORRECTED_MEASURES = ("PLO", "PR")


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
    measure : {"PLO", "PFT", "PAS", "PR"}
        ``"PLO"``: logit, ``yi = log(x / (n - x))``, ``vi = 1/x + 1/(n - x)``.
        ``"PFT"``: Freeman-Tukey double arcsine,
        ``yi = (asin(sqrt(x/(n+1))) + asin(sqrt((x+1)/(n+1)))) / 2``, ``vi = 1/(4n + 2)``.
        ``"PAS"``: arcsine square root, ``yi = asin(sqrt(x/n))``, ``vi = 1/(4n)``.
        ``"PR"``: raw proportion, ``yi = x/n``, ``vi = yi (1 - yi) / n``.
    continuity_correction : float
        For PLO and PR, added to both cells (events and non-events) of studies with 0
        or ``n`` events only, as metafor's ``escalc(add=1/2, to="only0")``; PFT and PAS
        need no correction and get none (metafor forces ``add = 0`` for them).

    Returns
    -------
    ProportionEffects
    """
    if measure not in PROPORTION_MEASURES:
        raise ValueError(
            f"measure must be one of {PROPORTION_MEASURES}, got {measure!r}"
        )
    x, n = _as_counts(events, total)
    if measure in CORRECTED_MEASURES:
        if not continuity_correction > 0:
            raise ValueError(f"continuity_correction must be > 0 for measure {measure}")
        cc_added = (x == 0) | (x == n)
        add = np.where(cc_added, continuity_correction, 0.0)
    else:
        cc_added = np.zeros(x.shape, dtype=bool)
        add = np.zeros(x.shape)
    ev = x + add
    non = n - x + add
    nn = ev + non
    if measure == "PLO":
        yi = np.log(ev / non)
        vi = 1.0 / ev + 1.0 / non
    elif measure == "PR":
        yi = ev / nn
        vi = yi * (1.0 - yi) / nn
    elif measure == "PAS":
        yi = np.arcsin(np.sqrt(x / n))
        vi = 1.0 / (4.0 * n)
    else:  # PFT
        yi = 0.5 * (np.arcsin(np.sqrt(x / (n + 1))) + np.arcsin(np.sqrt((x + 1) / (n + 1))))
        vi = 1.0 / (4.0 * n + 2.0)
    cc = float(continuity_correction) if measure in CORRECTED_MEASURES else 0.0
    return ProportionEffects(yi, vi, cc_added, measure, cc)


def pft(p, n):
    """Freeman-Tukey double arcsine of proportion ``p`` with ``n`` (metafor transf.pft)."""
    x = np.asarray(p, dtype=float) * n
    return 0.5 * (np.arcsin(np.sqrt(x / (n + 1))) + np.arcsin(np.sqrt((x + 1) / (n + 1))))


def inverse_pft(t, n):
    """Back-transform a double arcsine value to a proportion for sample size ``n``.

    Miller (1978)'s inversion, with metafor's ``transf.ipft`` conventions: values beyond
    the transform of 0 or 1 at this ``n`` map to 0 or 1. Use the harmonic mean of the
    studies' sizes for pooled values (metafor ``transf.ipft.hm``; Schwarzer et al. 2019
    discuss the consequences of that choice).
    """
    t = np.asarray(t, dtype=float)
    s2 = np.sin(2.0 * t)
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = 1.0 - (s2 + (s2 - 1.0 / s2) / n) ** 2
        z = 0.5 * (1.0 - np.sign(np.cos(2.0 * t)) * np.sqrt(inner))
    z = np.where(t > pft(1.0, n), 1.0, np.where(t < pft(0.0, n), 0.0, z))
    return z


def inverse_pas(t):
    """Back-transform an arcsine square-root value: ``sin(t)^2`` on [0, pi/2]."""
    t = np.clip(np.asarray(t, dtype=float), 0.0, np.pi / 2)
    return np.sin(t) ** 2


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
