"""Small-study effects: Egger's regression test, Begg's rank test, trim-and-fill.

These methods look for funnel-plot asymmetry. They have little power with few studies,
and asymmetry has many causes besides publication bias (true heterogeneity related to
study size, chance, the choice of effect measure, poor methodological quality of small
studies). metapool therefore refuses to compute them below ``min_k`` (default 10, the
Cochrane Handbook's rule of thumb) unless ``force=True``, and every result carries
:data:`CAVEAT`.

Each function mirrors one metafor 3.8-1 function: :func:`egger_test` is ``regtest()``,
:func:`begg_test` is ``ranktest()`` and :func:`trim_and_fill` is ``trimfill()``. The
meta-regressions use :func:`metapool.estimators.estimate_tau2` with a moderator matrix
and :func:`metapool.estimators.wls_fit` (the estimators of the main analysis, no second
implementation); the filled-in model is refitted by :func:`metapool.pooling.fit_batch`.

References
----------
.. [1] Egger M, Davey Smith G, Schneider M, Minder C. Bias in meta-analysis detected by
   a simple, graphical test. BMJ 1997;315:629-634.
.. [2] Sterne JAC, Egger M. Regression methods to detect publication and other bias in
   meta-analysis. In: Rothstein HR, Sutton AJ, Borenstein M, eds. Publication bias in
   meta-analysis. Chichester: Wiley; 2005:99-110 (the meta-regression form, metafor's
   default ``model = "rma"``).
.. [3] Begg CB, Mazumdar M. Operating characteristics of a rank correlation test for
   publication bias. Biometrics 1994;50:1088-1101.
.. [4] Duval S, Tweedie R. Trim and fill: a simple funnel-plot-based method of testing
   and adjusting for publication bias in meta-analysis. Biometrics 2000;56:455-463.
.. [5] Duval S, Tweedie R. A nonparametric "trim and fill" method of accounting for
   publication bias in meta-analysis. J Am Stat Assoc 2000;95:89-98 (L0, R0 and Q0).
.. [6] Sterne JAC, Sutton AJ, Ioannidis JPA, et al. Recommendations for examining and
   interpreting funnel plot asymmetry in meta-analyses of randomised controlled trials.
   BMJ 2011;343:d4002 (at least 10 studies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from . import pooling
from .estimators import TAU2_METHODS, estimate_tau2, wls_fit
from .pooling import CI_METHODS, PoolResult, result_from_batch

__all__ = [
    "CAVEAT",
    "MIN_K",
    "BeggResult",
    "EggerResult",
    "TrimFillResult",
    "begg_test",
    "egger_test",
    "trim_and_fill",
]

#: Default minimum number of studies for a test of small-study effects.
MIN_K = 10

#: Smallest k for which any of the methods is computed, even with ``force=True``: the
#: regression test needs one residual degree of freedom.
ABSOLUTE_MIN_K = 3

#: The caveat every result carries.
CAVEAT = (
    "Tests for small-study effects have low power with fewer than 10 studies and cannot "
    "distinguish publication bias from other causes of funnel-plot asymmetry "
    "(heterogeneity related to study size, chance, the effect measure, lower quality of "
    "small studies)."
)

PREDICTORS = ("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv")
#: predictors that go to 0 for an infinitely large study: the intercept is then the
#: "limit estimate" (metafor's ``est``)
_LIMIT_PREDICTORS = ("sei", "vi", "ninv", "sqrtninv")
_PREDICTOR_TEXT = {
    "sei": "standard error",
    "vi": "sampling variance",
    "ni": "sample size",
    "ninv": "inverse of the sample size",
    "sqrtni": "square root sample size",
    "sqrtninv": "inverse of the square root sample size",
}


# --------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------


def _check_studies(yi, vi):
    yi = np.atleast_1d(np.asarray(yi, dtype=float))
    vi = np.atleast_1d(np.asarray(vi, dtype=float))
    if yi.ndim != 1 or vi.ndim != 1:
        raise ValueError("yi and vi must be one-dimensional")
    if yi.shape != vi.shape:
        raise ValueError(f"yi and vi must have the same length ({yi.size} != {vi.size})")
    if yi.size == 0:
        raise ValueError("yi is empty: at least one study is needed")
    if not (np.all(np.isfinite(yi)) and np.all(np.isfinite(vi))):
        raise ValueError("yi and vi must contain finite numbers only")
    if np.any(vi <= 0):
        raise ValueError("sampling variances vi must be positive")
    return yi, vi


def _check_min_k(min_k, force):
    if isinstance(min_k, bool) or not isinstance(min_k, (int, np.integer)):
        raise TypeError(f"min_k must be an integer, got {min_k!r}")
    if min_k < 1:
        raise ValueError(f"min_k must be a positive integer, got {min_k!r}")
    if not isinstance(force, (bool, np.bool_)):
        raise TypeError(f"force must be True or False, got {force!r}")


def _gate(k, min_k, force):
    """``(reason, warnings)``: reason is None when the method is to be computed."""
    if k < ABSOLUTE_MIN_K:
        return (f"not computed: k = {k}; at least {ABSOLUTE_MIN_K} studies are needed "
                "even with force=True"), []
    if k < min_k:
        if not force:
            return (f"not computed: k = {k} is below min_k = {min_k} (pass force=True to "
                    "compute anyway)"), []
        return None, [(f"computed with force=True although k = {k} < min_k = {min_k}: "
                       "interpret with great caution")]
    return None, []


def _none(x):
    return pooling._none_if_nan(x)


def _metareg(y, v, X, *, method, ci, level):
    """Mixed-effects meta-regression as metafor ``rma(yi, vi, mods = X, intercept = FALSE)``.

    Returns beta, its standard errors, the test distribution's df (None for z), the
    two-sided critical value, tau² and whether the tau² estimator converged.
    """
    k, p = X.shape
    tau = estimate_tau2(y[None, :], v[None, :], method, X=X)
    tau2 = float(tau.tau2[0])
    w = 1.0 / (v + tau2)
    fit = wls_fit(y[None, :], X[None, :, :], w[None, :])
    beta = fit.beta[0]
    vb = fit.cov_unscaled[0]
    alpha = 1.0 - level
    if ci == "z":
        df = None
        crit = stats.norm.ppf(1 - alpha / 2)
    else:
        if ci in ("hksj", "hksj_adhoc"):
            s2w = float(fit.q[0]) / (k - p)  # metafor's knha scale: y'Py / (k - p)
            if ci == "hksj_adhoc":
                s2w = max(s2w, 1.0)
            vb = s2w * vb
        df = k - p  # "t": unscaled covariance, t quantiles (metafor test = "t")
        crit = stats.t.ppf(1 - alpha / 2, df)
    return beta, np.sqrt(np.diag(vb)), df, crit, tau2, bool(tau.converged[0])


def _wls_dispersion(y, v, X, *, level):
    """Weighted least squares with weights 1/vi and an estimated multiplicative
    dispersion, as R ``lm(yi ~ X - 1, weights = 1/vi)``."""
    k, p = X.shape
    fit = wls_fit(y[None, :], X[None, :, :], (1.0 / v)[None, :])
    sigma2 = float(fit.q[0]) / (k - p)
    se = np.sqrt(sigma2 * np.diag(fit.cov_unscaled[0]))
    df = k - p
    crit = stats.t.ppf(1 - (1.0 - level) / 2, df)
    return fit.beta[0], se, df, crit


def _p_value(stat, df):
    if df is None:
        return float(2.0 * stats.norm.sf(abs(stat)))
    return float(2.0 * stats.t.sf(abs(stat), df))


# --------------------------------------------------------------------------------------
# Egger's regression test
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EggerResult:
    """Regression test for funnel-plot asymmetry (metafor ``regtest()``).

    Attributes
    ----------
    computed : bool
        False when k < ``min_k`` and not forced (or k < 3); all numbers are then None.
    k, min_k : int
    forced : bool
        True when computed although k < ``min_k``.
    model : {"rma", "lm"}
    predictor : str
    method : str or None
        tau² estimator of the meta-regression (None for ``model="lm"``).
    ci : str
        ``"z"``, ``"t"``, ``"hksj"`` or ``"hksj_adhoc"`` (``model="rma"``); ``"t"`` for
        ``lm``.
    level : float
    stat, p_value : float or None
        Test of the predictor's coefficient (metafor's ``zval``/``pval``).
    stat_dist : {"normal", "t"}
    df : int or None
        Degrees of freedom of the t test (k - 2); None for the z test.
    slope, slope_se : float or None
        Coefficient of the predictor and its SE.
    limit_estimate, limit_ci_lower, limit_ci_upper : float or None
        Intercept = the estimate for an infinitely precise study (metafor's ``est``,
        ``ci.lb``, ``ci.ub``); None for predictors that do not vanish at infinite
        precision (``ni``, ``sqrtni``).
    tau2 : float or None
        Residual tau² of the meta-regression (``model="rma"``).
    caveat, reason : str
        The caveat (:data:`CAVEAT`); ``reason`` says why nothing was computed (or None).
    warnings : tuple of str
    """

    computed: bool
    k: int
    min_k: int
    forced: bool
    model: str
    predictor: str
    method: str | None
    ci: str
    level: float
    stat: float | None = None
    p_value: float | None = None
    stat_dist: str | None = None
    df: int | None = None
    slope: float | None = None
    slope_se: float | None = None
    limit_estimate: float | None = None
    limit_ci_lower: float | None = None
    limit_ci_upper: float | None = None
    tau2: float | None = None
    caveat: str = CAVEAT
    reason: str | None = None
    warnings: tuple = field(default_factory=tuple)

    def to_dict(self):
        """All attributes as plain Python types (None where a number does not exist)."""
        return {
            "test": "egger",
            "computed": self.computed,
            "k": self.k,
            "min_k": self.min_k,
            "forced": self.forced,
            "model": self.model,
            "predictor": self.predictor,
            "method": self.method,
            "ci_method": self.ci,
            "level": self.level,
            "stat": self.stat,
            "stat_dist": self.stat_dist,
            "df": self.df,
            "p_value": self.p_value,
            "slope": self.slope,
            "slope_se": self.slope_se,
            "limit_estimate": self.limit_estimate,
            "limit_ci_lower": self.limit_ci_lower,
            "limit_ci_upper": self.limit_ci_upper,
            "tau2": self.tau2,
            "caveat": self.caveat,
            "reason": self.reason,
            "warnings": list(self.warnings),
        }

    def to_records(self):
        """``[to_dict()]`` with ``warnings`` joined by ``"; "``: one row of a CSV table."""
        d = self.to_dict()
        d["warnings"] = "; ".join(d["warnings"])
        return [d]


def egger_test(yi, vi, *, model="rma", predictor="sei", method="REML", ci="z",
               level=0.95, ni=None, min_k=MIN_K, force=False):
    """Egger's regression test for funnel-plot asymmetry (metafor ``regtest()``).

    ``model="rma"`` (metafor's default) fits the mixed-effects meta-regression
    ``yi = b0 + b1 * sei + u_i + e_i`` with the same tau² estimator as the main analysis
    and tests b1 = 0 with a z test (``ci="z"``) or a t test with k - 2 df (``ci="hksj"``,
    metafor ``test = "knha"``; ``hksj_adhoc`` truncates the scale at 1; ``ci="t"``: the
    unscaled SE with t quantiles, metafor ``test = "t"``).
    ``model="lm"`` is the classical test of Egger et al. (1997): weighted least squares
    with weights 1/vi and a multiplicative dispersion parameter, t test with k - 2 df.
    (This is algebraically Egger's regression of yi/sei on 1/sei, with the roles of
    slope and intercept swapped.) The intercept b0 is the *limit estimate*: the expected
    effect of a study with sei -> 0.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effects on the model scale and sampling variances (> 0).
    model : {"rma", "lm"}
    predictor : {"sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv"}
        The moderator: standard error (default), variance, sample size, 1/n, sqrt(n),
        1/sqrt(n). The sample-size predictors need ``ni``.
    method : str
        tau² estimator for ``model="rma"`` (one of
        :data:`metapool.estimators.TAU2_METHODS`); ignored for ``lm``.
    ci : {"z", "t", "hksj", "hksj_adhoc"}
        Test and CI of the meta-regression (``model="rma"``); ignored for ``lm``.
    level : float
        Coverage of the limit estimate's CI.
    ni : array_like, optional
        Total sample size per study.
    min_k : int
        Below this k the test is not computed (``computed=False``) unless ``force``.
    force : bool

    Returns
    -------
    EggerResult
        With ``computed=False`` and a ``reason`` when k < ``min_k`` (not forced), when
        k < 3, or when the predictor is constant (the model matrix is not of full rank;
        metafor stops with an error).

    metafor equivalent::

        res <- rma(yi, vi, method = "REML")
        regtest(res)                     # model = "rma", predictor = "sei"
        regtest(res, model = "lm")       # Egger et al. (1997)

    References
    ----------
    .. [1] Egger M, Davey Smith G, Schneider M, Minder C. Bias in meta-analysis detected
       by a simple, graphical test. BMJ 1997;315:629-634.
    .. [2] Sterne JAC, Egger M. Regression methods to detect publication and other bias
       in meta-analysis. In: Publication bias in meta-analysis. Wiley; 2005:99-110.
    """
    if model not in ("rma", "lm"):
        raise ValueError(f"model must be 'rma' or 'lm', got {model!r}")
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    if model == "rma":
        if method not in TAU2_METHODS:
            raise ValueError(f"method must be one of {TAU2_METHODS}, got {method!r}")
        if ci not in CI_METHODS:
            raise ValueError(f"ci must be one of {CI_METHODS}, got {ci!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    _check_min_k(min_k, force)
    yi, vi = _check_studies(yi, vi)
    k = yi.size
    if predictor in ("ni", "ninv", "sqrtni", "sqrtninv"):
        if ni is None:
            raise ValueError(f"predictor {predictor!r} needs the sample sizes ni")
        ni = np.atleast_1d(np.asarray(ni, dtype=float))
        if ni.shape != yi.shape:
            raise ValueError("ni must have one entry per study")
        if not np.all(np.isfinite(ni)) or np.any(ni <= 0):
            raise ValueError("sample sizes ni must be positive and finite")
    x = {
        "sei": lambda: np.sqrt(vi),
        "vi": lambda: vi,
        "ni": lambda: ni,
        "ninv": lambda: 1.0 / ni,
        "sqrtni": lambda: np.sqrt(ni),
        "sqrtninv": lambda: 1.0 / np.sqrt(ni),
    }[predictor]()
    base = {"k": k, "min_k": int(min_k), "model": model, "predictor": predictor,
            "method": method if model == "rma" else None,
            "ci": ci if model == "rma" else "t", "level": float(level)}
    reason, warnings = _gate(k, min_k, force)
    if reason is None and np.ptp(x) == 0:
        reason = (f"not computed: the predictor ({_PREDICTOR_TEXT[predictor]}) is the "
                  "same for every study, so the regression is not identified")
    if reason is not None:
        return EggerResult(computed=False, forced=False, reason=reason, **base)

    X = np.column_stack([np.ones(k), x])
    tau2 = None
    if model == "rma":
        beta, se, df, crit, tau2, converged = _metareg(yi, vi, X, method=method, ci=ci,
                                                       level=level)
        if not converged:
            warnings.append(f"{method} tau² of the meta-regression did not converge")
    else:
        beta, se, df, crit = _wls_dispersion(yi, vi, X, level=level)
    stat = float(beta[1] / se[1])
    has_limit = predictor in _LIMIT_PREDICTORS
    return EggerResult(
        computed=True, forced=k < min_k, stat=stat, p_value=_p_value(stat, df),
        stat_dist="normal" if df is None else "t", df=df, slope=float(beta[1]),
        slope_se=float(se[1]),
        limit_estimate=float(beta[0]) if has_limit else None,
        limit_ci_lower=float(beta[0] - crit * se[0]) if has_limit else None,
        limit_ci_upper=float(beta[0] + crit * se[0]) if has_limit else None,
        tau2=tau2, warnings=tuple(warnings), **base,
    )


# --------------------------------------------------------------------------------------
# Begg's rank correlation test
# --------------------------------------------------------------------------------------


def _kendall_exact_cdf(q, n):
    """P(T <= q) for T the number of inversions of a random permutation of n items.

    The distribution of Kendall's statistic without ties. R's ``C_pKendall`` counts
    permutations in doubles and divides by n!, which overflows for n >= 171; here the
    recursion P_n(t) = (1/n) sum_{i<n} P_{n-1}(t - i) is carried in probabilities, which
    is exact to rounding for any n. Only t <= q is ever needed.
    """
    if q < 0:
        return 0.0
    m = n * (n - 1) // 2
    if q >= m:
        return 1.0
    dist = np.zeros(q + 1)
    dist[0] = 1.0
    for j in range(2, n + 1):
        c = np.cumsum(dist)
        new = c.copy()
        if j <= q:
            new[j:] -= c[: q + 1 - j]
        dist = new / j
    return float(min(1.0, dist.sum()))


@dataclass(frozen=True)
class BeggResult:
    """Rank correlation test for funnel-plot asymmetry (metafor ``ranktest()``).

    Attributes
    ----------
    computed : bool
    k, min_k : int
    forced : bool
    tau : float or None
        Kendall's tau (tau-b) between the standardised effects and the variances.
    p_value : float or None
        Two-sided.
    p_method : {"exact", "normal"} or None
        ``exact``: the permutation distribution of Kendall's statistic (no ties);
        ``normal``: the normal approximation with the tie-corrected variance of S.
    statistic : float or None
        ``T`` (number of concordant pairs) for ``exact``, ``z`` for ``normal``.
    ties : bool or None
        Whether either variable has ties (the exact distribution then does not apply).
    caveat, reason : str
    warnings : tuple of str
    """

    computed: bool
    k: int
    min_k: int
    forced: bool
    tau: float | None = None
    p_value: float | None = None
    p_method: str | None = None
    statistic: float | None = None
    ties: bool | None = None
    caveat: str = CAVEAT
    reason: str | None = None
    warnings: tuple = field(default_factory=tuple)

    def to_dict(self):
        """All attributes as plain Python types."""
        return {
            "test": "begg",
            "computed": self.computed,
            "k": self.k,
            "min_k": self.min_k,
            "forced": self.forced,
            "tau": self.tau,
            "p_value": self.p_value,
            "p_method": self.p_method,
            "statistic": self.statistic,
            "ties": self.ties,
            "caveat": self.caveat,
            "reason": self.reason,
            "warnings": list(self.warnings),
        }

    def to_records(self):
        """``[to_dict()]`` with ``warnings`` joined by ``"; "``."""
        d = self.to_dict()
        d["warnings"] = "; ".join(d["warnings"])
        return [d]


def _tie_sizes(x):
    _, counts = np.unique(x, return_counts=True)
    return counts[counts > 1].astype(float)


def begg_test(yi, vi, *, exact=True, min_k=MIN_K, force=False):
    """Begg and Mazumdar's rank correlation test (metafor ``ranktest()``).

    Kendall's tau between the standardised deviates
    ``(yi - mu_FE) / sqrt(vi - 1 / sum(1/vi))`` (mu_FE the inverse-variance weighted
    mean) and the variances ``vi``, computed as R's
    ``cor.test(yi.star, vi, method = "kendall", exact = exact)``.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
    exact : bool
        metafor 3.8-1 passes ``exact = TRUE`` (for every k). With ``exact=True`` and no
        ties in either variable, the p-value is from the exact permutation distribution
        (two-sided: twice the smaller tail, at most 1). Otherwise, or with ties, it is
        from the normal approximation ``z = S / sqrt(var(S))`` with the tie-corrected
        variance and no continuity correction (R's ``cor.test``; R then warns "Cannot
        compute exact p-value with ties", repeated here in ``warnings``).
    min_k : int
    force : bool

    Returns
    -------
    BeggResult

    Notes
    -----
    R's exact Kendall distribution overflows for k >= 171 (``cor.test`` returns p = 0
    for k = 171 and NA above); metapool computes the exact distribution in probabilities
    (:func:`_kendall_exact_cdf`), so its exact p-value is correct for every k. If tau is
    undefined (all variances, or all standardised deviates, equal) the test is not
    computed.

    metafor equivalent::

        res <- rma(yi, vi)
        ranktest(res)                 # exact = TRUE
        ranktest(res, exact = FALSE)  # normal approximation

    References
    ----------
    .. [1] Begg CB, Mazumdar M. Operating characteristics of a rank correlation test for
       publication bias. Biometrics 1994;50:1088-1101.
    """
    if not isinstance(exact, (bool, np.bool_)):
        raise TypeError(f"exact must be True or False, got {exact!r}")
    _check_min_k(min_k, force)
    yi, vi = _check_studies(yi, vi)
    n = yi.size
    reason, warnings = _gate(n, min_k, force)
    base = {"k": n, "min_k": int(min_k)}
    if reason is not None:
        return BeggResult(computed=False, forced=False, reason=reason, **base)

    wi = 1.0 / vi
    theta = float(np.sum(wi * yi) / np.sum(wi))
    vstar = vi - 1.0 / np.sum(wi)
    ystar = (yi - theta) / np.sqrt(vstar)
    xties, yties = _tie_sizes(ystar), _tie_sizes(vi)
    ties = bool(xties.size or yties.size)
    t0 = n * (n - 1) / 2.0
    t1 = float(np.sum(xties * (xties - 1)) / 2.0)
    t2 = float(np.sum(yties * (yties - 1)) / 2.0)
    if t1 == t0 or t2 == t0:
        return BeggResult(computed=False, forced=False, reason=(
            "not computed: Kendall's tau is undefined because all variances (or all "
            "standardised effects) are equal"), **base)
    # S = concordant - discordant pairs; tau-b = S / sqrt((T0 - T1)(T0 - T2))
    dx = np.sign(ystar[:, None] - ystar[None, :])
    dy = np.sign(vi[:, None] - vi[None, :])
    s = float(np.sum(np.triu(dx * dy, 1)))
    tau = s / math.sqrt((t0 - t1) * (t0 - t2))

    if exact and not ties:
        q = round((tau + 1.0) * n * (n - 1) / 4.0)  # concordant pairs, as R
        if q > n * (n - 1) / 4.0:
            p_one = 1.0 - _kendall_exact_cdf(q - 1, n)
        else:
            p_one = _kendall_exact_cdf(q, n)
        p_value = min(2.0 * p_one, 1.0)
        return BeggResult(computed=True, forced=n < min_k, tau=tau, p_value=p_value,
                          p_method="exact", statistic=float(q), ties=False,
                          warnings=tuple(warnings), **base)
    if exact and ties:
        warnings.append("Cannot compute exact p-value with ties: normal approximation "
                        "with tie-corrected variance used (as R's cor.test)")
    v0 = n * (n - 1) * (2 * n + 5)
    vt = np.sum(xties * (xties - 1) * (2 * xties + 5))
    vu = np.sum(yties * (yties - 1) * (2 * yties + 5))
    v1 = np.sum(xties * (xties - 1)) * np.sum(yties * (yties - 1))
    v2 = np.sum(xties * (xties - 1) * (xties - 2)) * np.sum(yties * (yties - 1) * (yties - 2))
    var_s = ((v0 - vt - vu) / 18.0 + v1 / (2.0 * n * (n - 1))
             + v2 / (9.0 * n * (n - 1) * (n - 2)))
    z = s / math.sqrt(var_s)
    p_value = float(2.0 * min(stats.norm.cdf(z), stats.norm.sf(z)))
    return BeggResult(computed=True, forced=n < min_k, tau=tau, p_value=p_value,
                      p_method="normal", statistic=float(z), ties=ties,
                      warnings=tuple(warnings), **base)


# --------------------------------------------------------------------------------------
# trim-and-fill
# --------------------------------------------------------------------------------------

ESTIMATORS = ("L0", "R0", "Q0")
#: Measures whose natural scale the refitted model can report: every measure of
#: :data:`metapool.pooling.MEASURE_SCALES` but PFT, whose back-transformation needs the
#: sample sizes (the filled studies have none).
MEASURES = tuple(m for m in pooling.MEASURE_SCALES if m != "PFT")


@dataclass(frozen=True)
class TrimFillResult:
    """Trim-and-fill (metafor ``trimfill()``).

    Attributes
    ----------
    computed : bool
    k, min_k : int
        ``k`` is the number of observed studies.
    forced : bool
    estimator : {"L0", "R0", "Q0"}
    side : {"left", "right"} or None
        Side of the funnel plot on which studies are estimated to be missing.
    side_estimated : bool
        True when the side was chosen from the data (sign of the slope of the
        meta-regression on sei: negative -> "right", otherwise "left").
    k0 : int or None
        Estimated number of missing studies.
    se_k0 : float or None
        SE of k0 (metafor's ``se.k0``) from the last iteration.
    p_k0 : float or None
        P-value of the test k0 = 0, only for ``R0`` (metafor's ``p.k0``).
    iterations : int or None
    filled_yi, filled_vi : tuple of float
        The imputed studies (2 * mu_trimmed - yi of the k0 most extreme studies on the
        side opposite to ``side``, same vi), in metafor's order.
    fit : PoolResult or None
        The random-effects model refitted to the k + k0 studies.
    caveat, reason : str
    warnings : tuple of str
    """

    computed: bool
    k: int
    min_k: int
    forced: bool
    estimator: str
    side: str | None = None
    side_estimated: bool = False
    k0: int | None = None
    se_k0: float | None = None
    p_k0: float | None = None
    iterations: int | None = None
    filled_yi: tuple = ()
    filled_vi: tuple = ()
    fit: PoolResult | None = None
    caveat: str = CAVEAT
    reason: str | None = None
    warnings: tuple = field(default_factory=tuple)

    def to_dict(self, scale="model"):
        """Plain dict: the trim-and-fill quantities, ``filled`` (list of
        ``{"yi", "vi"}`` on the model scale) and ``adjusted`` (the refitted model as
        :meth:`PoolResult.to_dict` on ``scale``, or None when not computed)."""
        if scale not in ("model", "natural"):
            raise ValueError("scale must be 'model' or 'natural'")
        return {
            "test": "trim_and_fill",
            "computed": self.computed,
            "k": self.k,
            "min_k": self.min_k,
            "forced": self.forced,
            "estimator": self.estimator,
            "side": self.side,
            "side_estimated": self.side_estimated,
            "k0": self.k0,
            "se_k0": self.se_k0,
            "p_k0": self.p_k0,
            "iterations": self.iterations,
            "filled": [{"yi": float(y), "vi": float(v)}
                       for y, v in zip(self.filled_yi, self.filled_vi)],
            "adjusted": None if self.fit is None else self.fit.to_dict(scale),
            "caveat": self.caveat,
            "reason": self.reason,
            "warnings": list(self.warnings),
        }

    def to_records(self, scale="model"):
        """One flat row: the trim-and-fill quantities and the adjusted ``estimate``,
        ``se``, ``ci_lower``, ``ci_upper``, ``pi_lower``, ``pi_upper``, ``p_value``,
        ``tau2`` and ``k_filled`` (= k + k0)."""
        d = self.to_dict(scale)
        adj = d.pop("adjusted") or {}
        d.pop("filled")
        d["warnings"] = "; ".join(d["warnings"])
        for key in ("estimate", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper",
                    "p_value", "tau2"):
            d[key] = adj.get(key)
        d["k_filled"] = adj.get("k")
        return [d]


def _signed_ranks(yc):
    """sign(yc) * rank(|yc|, ties.method = "first"), as metafor."""
    ranks = stats.rankdata(np.abs(yc), method="ordinal")
    return np.sign(yc) * ranks


def _k0_step(signed, k, estimator):
    """One k0 update; returns (k0 before rounding, se_k0) or raises ValueError."""
    if estimator == "R0":
        neg = signed[signed < 0]
        if neg.size == 0:
            raise ValueError("R0 is undefined: no study lies below the trimmed estimate")
        k0 = (k - np.max(-neg)) - 1
        return float(k0), math.sqrt(2 * max(0.0, k0) + 2)
    sr = float(np.sum(signed[signed > 0]))
    if estimator == "L0":
        k0 = (4 * sr - k * (k + 1)) / (2 * k - 1)
    else:  # Q0
        disc = 2 * k**2 - 4 * sr + 0.25
        if disc < 0:
            raise ValueError("Q0 is undefined for these data (negative discriminant)")
        k0 = k - 0.5 - math.sqrt(disc)
    var_sr = (k * (k + 1) * (2 * k + 1) + 10 * k0**3 + 27 * k0**2 + 17 * k0
              - 18 * k * k0**2 - 18 * k * k0 + 6 * k**2 * k0) / 24.0
    if estimator == "L0":
        se = 4 * math.sqrt(var_sr) / (2 * k - 1) if var_sr >= 0 else math.nan
    else:
        den = (k - 0.5) ** 2 - k0 * (2 * k - k0 - 1)
        se = 2 * math.sqrt(var_sr) / math.sqrt(den) if var_sr >= 0 and den > 0 else math.nan
    return k0, se


def trim_and_fill(yi, vi, *, side=None, estimator="L0", method="REML", ci="z", pi="z",
                  level=0.95, maxiter=100, measure="none", min_k=MIN_K, force=False):
    """Duval and Tweedie's trim-and-fill method (metafor ``trimfill()``).

    Algorithm (as metafor 3.8-1): if ``side`` is not given, fit the meta-regression of
    yi on sqrt(vi) with the same tau² estimator; a negative slope means studies are
    missing on the right, otherwise on the left. Flip the effects when the side is
    "right", sort them, and iterate: fit the model to the k - k0 smallest effects,
    centre all k effects at that estimate, rank their absolute values (ties: first
    occurrence first) and update k0 with the chosen estimator (L0, R0 or Q0), rounded
    and truncated at 0, until k0 no longer changes. The k0 most extreme studies are then
    mirrored about the last trimmed estimate (``2 mu - yi``, same vi) and the model is
    refitted to the k + k0 studies.

    All possible trimmed fits (k0 = 0, ..., k - 1) are estimated at once as one batch
    (tau² by :func:`metapool.estimators.estimate_tau2`); the iteration then only looks
    them up. The refit is one :func:`metapool.pooling.fit_batch` call.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
    side : {None, "left", "right"}
    estimator : {"L0", "R0", "Q0"}
    method : str
        tau² estimator (metafor: the method of the model passed to ``trimfill``).
    ci, pi, level
        CI and PI of the refitted model (as :func:`metapool.pooling.fit_batch`). The
        defaults ``"z"``/``"z"`` are metafor's: ``trimfill()`` refits the filled data
        with ``test = "z"`` unless ``test`` is passed on (``trimfill(res, test =
        "knha")``).
    maxiter : int
        Iteration limit (metafor: 100).
    measure : {"none", "PLO", "PAS", "PR", "logHR", "log"}
        Natural scale of the refitted model (:data:`MEASURES`).
    min_k, force
        See :func:`egger_test`.

    Returns
    -------
    TrimFillResult
        Not computed when k < ``min_k`` (not forced), k < 3, the estimator is undefined
        for the data (R0 with no study below the estimate; Q0 with a negative
        discriminant; metafor stops with an error), or no convergence within
        ``maxiter``.

    Notes
    -----
    metafor fits the side-selection meta-regression and the trimmed models with its
    default convergence control unless ``control`` is passed on; metapool always
    iterates to 1e-12. Only a slope or k0 at a knife edge could differ.

    metafor equivalent::

        res <- rma(yi, vi, method = "REML")
        trimfill(res)                       # estimator = "L0", side estimated

    References
    ----------
    .. [1] Duval S, Tweedie R. Trim and fill. Biometrics 2000;56:455-463.
    .. [2] Duval S, Tweedie R. A nonparametric "trim and fill" method. J Am Stat Assoc
       2000;95:89-98.
    """
    if side not in (None, "left", "right"):
        raise ValueError(f"side must be None, 'left' or 'right', got {side!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    pooling.check_options(method, ci, pi, level)
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)):
        raise TypeError(f"maxiter must be an integer, got {maxiter!r}")
    if maxiter < 1:
        raise ValueError(f"maxiter must be a positive integer, got {maxiter!r}")
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    _check_min_k(min_k, force)
    yi, vi = _check_studies(yi, vi)
    k = yi.size
    base = {"k": k, "min_k": int(min_k), "estimator": estimator}
    reason, warnings = _gate(k, min_k, force)
    if reason is not None:
        return TrimFillResult(computed=False, forced=False, reason=reason, **base)

    side_estimated = side is None
    if side is None:
        X = np.column_stack([np.ones(k), np.sqrt(vi)])
        if np.ptp(X[:, 1]) == 0:
            return TrimFillResult(computed=False, forced=False, reason=(
                "not computed: all studies have the same variance, so the side cannot be "
                "estimated (pass side='left' or 'right')"), **base)
        beta = _metareg(yi, vi, X, method=method, ci="z", level=level)[0]
        side = "right" if beta[1] < 0 else "left"

    sign = -1.0 if side == "right" else 1.0
    work = sign * yi
    ix = np.argsort(work, kind="stable")
    ys, vs = work[ix], vi[ix]
    # every trimmed model at once: row t holds the k - t smallest effects
    Yt = np.where(np.arange(k)[None, :] < (k - np.arange(k))[:, None], ys[None, :], np.nan)
    Vt = np.where(np.isfinite(Yt), vs[None, :], np.nan)
    tau = estimate_tau2(Yt, Vt, method)
    wt = np.where(np.isfinite(Yt), 1.0 / (Vt + tau.tau2[:, None]), 0.0)
    mu_trim = np.nansum(wt * np.nan_to_num(Yt), axis=1) / wt.sum(axis=1)
    if not tau.converged.all():
        warnings.append(f"{method} did not converge for some trimmed data sets")

    k0, k0_prev, it = 0, -1, 0
    se_k0 = math.nan
    try:
        while k0 != k0_prev:
            k0_prev = k0
            it += 1
            if it > maxiter:
                raise ValueError(f"the trim-and-fill algorithm did not converge within "
                                 f"{maxiter} iterations")
            mu = mu_trim[k0]
            k0_raw, se_k0 = _k0_step(_signed_ranks(ys - mu), k, estimator)
            k0 = max(0, int(np.round(k0_raw)))
            if k0 >= k:
                raise ValueError(f"estimated k0 = {k0} leaves no study to trim to")
    except ValueError as exc:
        return TrimFillResult(computed=False, forced=False, side=side,
                              side_estimated=side_estimated,
                              reason=f"not computed: {exc}", **base)
    se_k0 = max(0.0, se_k0) if math.isfinite(se_k0) else math.nan
    p_k0 = 0.5 ** (k0 + 1) if estimator == "R0" else None

    filled_work = 2.0 * mu - ys[k - k0:]
    filled_yi = sign * filled_work
    filled_vi = vs[k - k0:]
    y_all = np.concatenate([yi, filled_yi])
    v_all = np.concatenate([vi, filled_vi])
    fit = pooling.fit_batch(y_all[None, :], v_all[None, :], method=method, ci=ci, pi=pi,
                            level=level)
    res = result_from_batch(fit, 0, measure=measure, method=method, ci=ci, pi=pi,
                             level=level)
    return TrimFillResult(
        computed=True, forced=k < min_k, side=side, side_estimated=side_estimated,
        k0=k0, se_k0=_none(se_k0), p_k0=p_k0, iterations=it,
        filled_yi=tuple(float(x) for x in filled_yi),
        filled_vi=tuple(float(x) for x in filled_vi), fit=res,
        warnings=tuple(warnings), **base,
    )
