"""Inverse-variance random-effects pooling: estimate, CI, prediction interval, heterogeneity.

The numerical core, :func:`fit_batch`, works on 2-D arrays (analyses x studies, NaN
padded); :func:`pool_generic` and :func:`pool_proportions` are the batch of one and
return a :class:`PoolResult`. Definitions follow R metafor's ``rma.uni`` and
``predict.rma`` so that results can be compared number by number.

References
----------
.. [1] Hartung J, Knapp G. A refined method for the meta-analysis of controlled clinical
   trials with binary outcome. Stat Med 2001;20:3875-3889.
.. [2] Sidik K, Jonkman JN. A simple confidence interval for meta-analysis. Stat Med
   2002;21:3153-3159.
.. [3] Higgins JPT, Thompson SG, Spiegelhalter DJ. A re-evaluation of random-effects
   meta-analysis. J R Stat Soc A 2009;172:137-159 (prediction interval).
.. [4] Higgins JPT, Thompson SG. Quantifying heterogeneity in a meta-analysis. Stat Med
   2002;21:1539-1558 (I², H²; metafor computes I² from tau²).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .effects import expit, inverse_pas, inverse_pft, proportion_effects
from .estimators import TAU2_METHODS, estimate_tau2, prepare, solve_generalised_q

__all__ = [
    "CI_METHODS",
    "PI_METHODS",
    "PoolResult",
    "fit_batch",
    "pool_generic",
    "pool_proportions",
]

#: Confidence-interval methods for the pooled estimate: Wald (normal), Wald SE with t
#: quantiles with k-1 df (metafor's ``test="t"``, the CI used with the GLMM),
#: Hartung-Knapp-Sidik-Jonkman (t with k-1 df; metafor's ``test="knha"``), and HKSJ
#: with its variance scale factor never below 1 (metafor's ``test="adhoc"``).
CI_METHODS = ("z", "t", "hksj", "hksj_adhoc")
#: Prediction-interval methods: normal, t with k-1 df, t with k-2 df (Riley et al.
#: 2011), or none.
PI_METHODS = ("z", "t", "riley", "none")

#: Smallest k for which a prediction interval is reported: with k = 2 it rests on one
#: degree of freedom and a tau² estimated from two studies.
MIN_K_PI = 3


#: Definitions of I² (and H²): from tau² and the typical within-study variance (metafor,
#: Cochrane since 2024), or from Q as (Q - df) / Q (Higgins & Thompson 2002, RevMan 5, R
#: meta's default).
I2_METHODS = ("tau2", "q")


def check_options(method, ci, pi, level, i2="tau2"):
    """Raise ValueError naming the first invalid option of a pooled fit."""
    if i2 not in I2_METHODS:
        raise ValueError(f"i2 must be one of {I2_METHODS}, got {i2!r}")
    if method not in TAU2_METHODS:
        raise ValueError(f"method must be one of {TAU2_METHODS}, got {method!r}")
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {CI_METHODS}, got {ci!r}")
    if pi not in PI_METHODS:
        raise ValueError(f"pi must be one of {PI_METHODS}, got {pi!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")


def fit_batch(y, v, *, method="REML", ci="hksj", pi="t", level=0.95, i2="tau2",
              tau2_ci=True):
    """Fit random-effects models to a batch of meta-analyses at once.

    Parameters
    ----------
    y, v : array_like, shape (n_analyses, max_k)
        Effects on the model scale and their sampling variances, NaN-padded.
    method : {"FE", "DL", "HE", "SJ", "ML", "REML", "PM"}
        tau² estimator (see :func:`metapool.estimators.estimate_tau2`; ``FE`` fits the
        common-effect model).
    ci : {"z", "t", "hksj", "hksj_adhoc"}
        CI of the pooled estimate. ``t``: the Wald SE with t quantiles (k-1 df). ``hksj``: SE scaled by
        ``sqrt(sum w (y - mu)^2 / (k - 1))`` and t quantiles with k-1 df, no
        truncation of the scale factor (metafor ``test="knha"``); ``hksj_adhoc``: the
        scale factor is raised to 1 when below 1, so the interval is never narrower
        than the Wald one with t quantiles (metafor ``test="adhoc"``).
    pi : {"z", "t", "riley", "none"}
        Prediction interval ``mu +/- q * sqrt(tau² + SE²)`` with the SE of the chosen CI
        method, ``q`` a normal quantile (``z``), t with k-1 df (``t``) or t with k-2 df
        (``riley``), and never below the CI's quantile, so that the PI contains the CI;
        not computed for k < 3.
    level : float
        Coverage of CI and PI.
    i2 : {"tau2", "q"}
        I² and H² from tau² (metafor; their Q-profile limits follow from tau²'s) or from
        Q (``max(0, (Q - df) / Q)``, ``Q / df``; no CI). For the common-effect model I²
        is always Q-based, as in metafor.
    tau2_ci : bool
        Compute the Q-profile CI of tau² (and the I², H² limits from it); NaN when
        False.

    Returns
    -------
    dict of ndarray
        One entry per quantity, each of shape ``(n_analyses,)``. Entries that do not
        exist for an analysis (e.g. PI when k < 3, everything when k < 2) are NaN; the
        result objects turn them into ``None`` with a reason.
    """
    check_options(method, ci, pi, level, i2)
    y = np.atleast_2d(np.asarray(y, dtype=float))
    v = np.atleast_2d(np.asarray(v, dtype=float))
    mask = np.isfinite(y) & np.isfinite(v)
    k = mask.sum(axis=1)
    yz = np.where(mask, y, 0.0)
    vz = np.where(mask, v, 1.0)

    tau = estimate_tau2(y, v, method)
    tau2 = tau.tau2
    fallback = np.zeros(len(k), dtype=bool)
    if not tau.converged.all():
        # logged fallback: the caller turns `fallback` into a visible warning
        fallback = ~tau.converged
        tau2 = np.where(fallback, estimate_tau2(y, v, "DL").tau2, tau2)

    # common-effect quantities: Q and the typical within-study variance
    w0 = np.where(mask, 1.0 / vz, 0.0)
    sw0 = w0.sum(axis=1)
    mu0 = (w0 * yz).sum(axis=1) / sw0
    q = (w0 * np.where(mask, yz - mu0[:, None], 0.0) ** 2).sum(axis=1)
    df = k - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        q_p = np.where(df > 0, stats.chi2.sf(q, np.maximum(df, 1)), np.nan)
        s2 = df * sw0 / (sw0**2 - (w0**2).sum(axis=1))
        q_based = method == "FE" or i2 == "q"
        if q_based:
            i2_value = np.where(q > 0, np.maximum(0.0, 100.0 * (q - df) / q), 0.0)
            h2 = np.where(df > 0, q / df, np.nan)
        else:
            i2_value = 100.0 * tau2 / (tau2 + s2)
            h2 = (tau2 + s2) / s2

    w = np.where(mask, 1.0 / (vz + tau2[:, None]), 0.0)
    sw = w.sum(axis=1)
    mu = (w * yz).sum(axis=1) / sw
    se_wald = np.sqrt(1.0 / sw)
    alpha = 1.0 - level
    dfp = np.maximum(df, 1)
    s2_scale = np.ones(len(k))
    if ci in ("hksj", "hksj_adhoc"):
        with np.errstate(divide="ignore", invalid="ignore"):
            s2_hk = (w * np.where(mask, yz - mu[:, None], 0.0) ** 2).sum(axis=1) / df
        s2_scale = s2_hk
        if ci == "hksj_adhoc":
            s2_hk = np.maximum(s2_hk, 1.0)
        se = np.sqrt(s2_hk / sw)
        crit = stats.t.ppf(1 - alpha / 2, dfp)
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = mu / se
            p_value = 2.0 * stats.t.sf(np.abs(stat), dfp)
    elif ci == "t":
        se = se_wald
        crit = stats.t.ppf(1 - alpha / 2, dfp)
        stat = mu / se
        p_value = 2.0 * stats.t.sf(np.abs(stat), dfp)
    else:
        se = se_wald
        crit = np.full(len(k), stats.norm.ppf(1 - alpha / 2))
        stat = mu / se
        p_value = 2.0 * stats.norm.sf(np.abs(stat))
    ci_lower = mu - crit * se
    ci_upper = mu + crit * se
    z_crit = stats.norm.ppf(1 - alpha / 2)
    hksj_narrower = (ci == "hksj") & (se * crit < se_wald * z_crit)
    # identical effects under HKSJ: the scale factor is 0, so is the SE; no test exists
    # (the scale factor is dimensionless: below 1e-20 the effects are identical up to
    # rounding, whatever the scale of the SEs)
    hksj_zero = (ci == "hksj") & (s2_scale <= 1e-20)
    stat = np.where(hksj_zero, np.nan, stat)
    p_value = np.where(hksj_zero, np.nan, p_value)

    if pi == "none":
        pi_lower = pi_upper = np.full(len(k), np.nan)
    else:
        if pi == "t":
            pcrit = stats.t.ppf(1 - alpha / 2, dfp)
        elif pi == "riley":
            pcrit = stats.t.ppf(1 - alpha / 2, np.maximum(k - 2, 1))
        else:
            pcrit = z_crit
        # the PI's quantile is never below the CI's (a normal PI with a t-based CI would
        # otherwise be narrower than the CI when tau² is small): the PI contains the CI
        pcrit = np.maximum(pcrit, crit)
        half = pcrit * np.sqrt(tau2 + se**2)
        ok = k >= MIN_K_PI
        pi_lower = np.where(ok, mu - half, np.nan)
        pi_upper = np.where(ok, mu + half, np.nan)

    pooled = k >= 2
    weights = np.where(mask, 100.0 * w / sw[:, None], np.nan)

    # Q-profile CI for tau² (Viechtbauer 2007): the tau² values at which the
    # generalised Q statistic equals the chi² quantiles with k - 1 df
    if method == "FE" or not tau2_ci:
        tau2_lower = tau2_upper = np.full(len(k), np.nan)
    else:
        yp, vp, Xp, maskp = prepare(y, v)
        with np.errstate(invalid="ignore"):
            q_hi = stats.chi2.ppf(1 - alpha / 2, dfp)
            q_lo = stats.chi2.ppf(alpha / 2, dfp)
        tau2_lower, ok_lo, _ = solve_generalised_q(yp, vp, Xp, maskp, q_hi)
        tau2_upper, ok_hi, _ = solve_generalised_q(yp, vp, Xp, maskp, q_lo)
        tau2_lower = np.where(ok_lo, tau2_lower, np.nan)
        tau2_upper = np.where(ok_hi, tau2_upper, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        i2_lower = 100.0 * tau2_lower / (tau2_lower + s2)
        i2_upper = 100.0 * tau2_upper / (tau2_upper + s2)
        h2_lower = (tau2_lower + s2) / s2
        h2_upper = (tau2_upper + s2) / s2
    if q_based:
        i2_lower = i2_upper = h2_lower = h2_upper = np.full(len(k), np.nan)

    def only_pooled(a):
        return np.where(pooled, a, np.nan)

    return {
        "k": k,
        "estimate": only_pooled(mu),
        "se": only_pooled(se),
        "stat": only_pooled(stat),
        "ci_lower": only_pooled(ci_lower),
        "ci_upper": only_pooled(ci_upper),
        "pi_lower": only_pooled(pi_lower),
        "pi_upper": only_pooled(pi_upper),
        "p_value": only_pooled(p_value),
        "tau2": only_pooled(tau2),
        "tau2_lower": only_pooled(tau2_lower),
        "tau2_upper": only_pooled(tau2_upper),
        "i2": only_pooled(i2_value),
        "i2_lower": only_pooled(i2_lower),
        "i2_upper": only_pooled(i2_upper),
        "h2": only_pooled(h2),
        "h2_lower": only_pooled(h2_lower),
        "h2_upper": only_pooled(h2_upper),
        "q": only_pooled(q),
        "q_df": np.where(pooled, df, 0),
        "q_p": only_pooled(q_p),
        "weights": weights,
        "converged": tau.converged,
        "iterations": tau.iterations,
        "fallback": fallback,
        "hksj_narrower": hksj_narrower & pooled,
        "hksj_zero": hksj_zero & pooled,
    }


def _none_if_nan(x):
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


MEASURE_SCALES = {
    "PLO": ("logit", "proportion", "inverse logit (metafor transf.ilogit)"),
    "PFT": ("Freeman-Tukey double arcsine", "proportion",
            "inverse double arcsine with the harmonic mean of the sample sizes "
            "(metafor transf.ipft.hm)"),
    "PAS": ("arcsine square root", "proportion", "sin² (metafor transf.iarcsin)"),
    "PR": ("raw proportion", "proportion", "none"),
    "logHR": ("log hazard ratio", "hazard ratio", "exponential"),
    "log": ("log ratio", "ratio", "exponential"),
    "none": ("raw", "raw", "none"),
}


def back_transform(x, measure, n_harmonic=None):
    """Model-scale value(s) on the natural scale (proportion, ratio)."""
    if measure == "PLO":
        return expit(x)
    if measure == "PFT":
        return inverse_pft(x, n_harmonic)
    if measure == "PAS":
        return inverse_pas(x)
    if measure in ("logHR", "log"):
        return np.exp(np.asarray(x, dtype=float))
    return np.asarray(x, dtype=float)


def _to_natural(x, measure, n_harmonic=None):
    if x is None:
        return None
    return float(back_transform(x, measure, n_harmonic))


def _natural_se(estimate, se, measure, n_harmonic=None):
    """Delta-method SE on the natural scale (for reference; CIs are back-transformed)."""
    if estimate is None or se is None:
        return None
    h = 1e-6
    slope = (_to_natural(estimate + h, measure, n_harmonic)
             - _to_natural(estimate - h, measure, n_harmonic)) / (2 * h)
    return abs(slope) * se


@dataclass(frozen=True)
class PoolResult:
    """Result of one random-effects meta-analysis.

    Numbers that do not exist for this fit (all pooled quantities when k = 1, the
    prediction interval when k < 3 or ``pi="none"``) are ``None``; ``status`` and
    ``warnings`` say why.

    Attributes
    ----------
    k : int
        Number of studies.
    estimate, se, ci_lower, ci_upper, pi_lower, pi_upper : float or None
        Pooled estimate on the model scale (logit, log HR), its SE and intervals.
    stat, p_value : float or None
        Test of estimate = 0 on the model scale (z or t statistic).
    tau2, i2, h2, q, q_df, q_p : float or None
        Heterogeneity: tau², I² (%) and H² from tau² (metafor's definitions; Q-based
        for the common-effect model), Cochran's Q with its df and p-value.
    tau2_lower, tau2_upper, i2_lower, i2_upper, h2_lower, h2_upper : float or None
        Q-profile confidence limits of tau² at ``level`` (Viechtbauer 2007, metafor's
        ``confint()``), and the I² and H² limits derived from them; None for the
        common-effect model.
    weights : tuple of float
        Random-effects weights in percent, in input order.
    measure : str
        ``"PLO"``, ``"logHR"``, ``"log"`` or ``"none"``: fixes the natural scale.
    method, ci, pi : str
        The choices that produced the result.
    level : float
    status : str
        ``"pooled"`` or ``"not pooled: single study"``.
    warnings : tuple of str
    """

    k: int
    estimate: float | None
    se: float | None
    stat: float | None
    ci_lower: float | None
    ci_upper: float | None
    pi_lower: float | None
    pi_upper: float | None
    p_value: float | None
    tau2: float | None
    i2: float | None
    h2: float | None
    q: float | None
    q_df: int
    q_p: float | None
    weights: tuple
    measure: str
    method: str
    ci: str
    pi: str
    level: float
    status: str
    warnings: tuple = field(default_factory=tuple)
    cc_added: tuple = field(default_factory=tuple)
    continuity_correction: float | None = None
    tau2_lower: float | None = None
    tau2_upper: float | None = None
    i2_lower: float | None = None
    i2_upper: float | None = None
    h2_lower: float | None = None
    h2_upper: float | None = None
    n_harmonic: float | None = None
    i2_method: str = "tau2"

    @property
    def pooled(self) -> bool:
        return self.status == "pooled"

    def to_dict(self, scale="model"):
        """The result as a plain dict.

        Parameters
        ----------
        scale : {"model", "natural"}
            ``model``: the analysis scale (logit, log HR). ``natural``: estimate, CI and
            PI back-transformed (proportion, HR); ``se`` is then the delta-method SE on
            the natural scale, given for reference only.
        """
        if scale not in ("model", "natural"):
            raise ValueError("scale must be 'model' or 'natural'")
        model_scale, natural_scale, back = MEASURE_SCALES[self.measure]
        d = {
            "k": self.k,
            "estimate": self.estimate,
            "se": self.se,
            "ci_lower": self.ci_lower,
            "ci_upper": self.ci_upper,
            "pi_lower": self.pi_lower,
            "pi_upper": self.pi_upper,
            "stat": self.stat,
            "p_value": self.p_value,
            "tau2": self.tau2,
            "tau2_lower": self.tau2_lower,
            "tau2_upper": self.tau2_upper,
            "tau": None if self.tau2 is None else math.sqrt(self.tau2),
            "i2": self.i2,
            "i2_lower": self.i2_lower,
            "i2_upper": self.i2_upper,
            "h2": self.h2,
            "h2_lower": self.h2_lower,
            "h2_upper": self.h2_upper,
            "q": self.q,
            "q_df": self.q_df,
            "q_p": self.q_p,
            "measure": self.measure,
            "method": self.method,
            "ci_method": self.ci,
            "pi_method": self.pi,
            "i2_method": "Q-based" if (self.i2_method == "q" or self.method == "FE")
            else "tau²-based",
            "level": self.level,
            "status": self.status,
            "warnings": list(self.warnings),
        }
        if scale == "natural":
            d["se"] = _natural_se(self.estimate, self.se, self.measure, self.n_harmonic)
            for key in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper"):
                d[key] = _to_natural(d[key], self.measure, self.n_harmonic)
            d["scale"] = natural_scale
            d["back_transformation"] = back
        else:
            d["scale"] = model_scale
        return d


#: Status and warning texts of pooled results (one place for single and batched fits).
NOT_POOLED_SINGLE = "not pooled: single study"
WARN_K1 = "k = 1: the single study is reported on its own, not pooled"
WARN_K2 = "k = 2: tau² rests on two studies and no prediction interval is given"
WARN_HKSJ_ZERO = ("identical effects: the HKSJ variance is 0, so its CI has zero width "
                  "and no test is defined (ci='hksj_adhoc' gives a Wald-width interval)")
WARN_HKSJ_NARROW = ("the Hartung-Knapp-Sidik-Jonkman CI is narrower than the Wald CI "
                    "(Q < k - 1)")


def batch_labels(fit, method):
    """Status and warnings of every analysis of a :func:`fit_batch` result.

    Returns
    -------
    status : ndarray of str
    warnings : list of tuple of str
    """
    k = np.asarray(fit["k"])
    single = k < 2
    status = np.where(single, NOT_POOLED_SINGLE, "pooled").astype(object)
    fallback = (f"{method} did not converge; tau² taken from the DerSimonian-Laird "
                "estimator instead (fallback)")
    zero = np.asarray(fit.get("hksj_zero", np.zeros(len(k), bool)))
    flags = [(single, WARN_K1), (~single & fit["fallback"], fallback),
             (~single & (k == 2), WARN_K2), (~single & zero, WARN_HKSJ_ZERO),
             (~single & ~zero & fit["hksj_narrower"], WARN_HKSJ_NARROW)]
    warnings = [()] * len(k)
    any_flag = np.zeros(len(k), dtype=bool)
    for flag, _ in flags:
        any_flag |= flag
    for i in np.flatnonzero(any_flag):
        warnings[i] = tuple(text for flag, text in flags if flag[i])
    return status, warnings


def result_from_batch(fit, row, *, measure, method, ci, pi, level, extra_warnings=(),
                       cc_added=(), continuity_correction=None, n_harmonic=None,
                       i2_method="tau2"):
    k = int(fit["k"][row])
    status_all, warnings_all = batch_labels(
        {key: np.asarray(fit[key])[row:row + 1] for key in
         ("k", "fallback", "hksj_narrower", "hksj_zero") if key in fit}, method)
    status = str(status_all[0])
    warnings = list(extra_warnings) + list(warnings_all[0])
    g = {key: _none_if_nan(fit[key][row]) for key in (
        "estimate", "se", "stat", "ci_lower", "ci_upper", "pi_lower", "pi_upper",
        "p_value", "tau2", "i2", "h2", "q", "q_p", "tau2_lower", "tau2_upper",
        "i2_lower", "i2_upper", "h2_lower", "h2_upper")}
    weights = tuple(
        float(x) for x in fit["weights"][row][: k] if np.isfinite(x)
    ) if k >= 2 else (100.0,) * k
    return PoolResult(
        k=k, q_df=int(fit["q_df"][row]), weights=weights, measure=measure,
        method=method, ci=ci, pi=pi, level=float(level), status=status,
        warnings=tuple(warnings), cc_added=tuple(bool(c) for c in cc_added),
        continuity_correction=continuity_correction, n_harmonic=n_harmonic,
        i2_method=i2_method, **g,
    )


def _as_1d(name, a):
    a = np.atleast_1d(np.asarray(a, dtype=float))
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if a.size == 0:
        raise ValueError(f"{name} is empty: at least one study is needed")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must contain finite numbers only")
    return a


def pool_generic(yi, sei, *, method="REML", ci="hksj", pi="t", level=0.95,
                 measure="logHR", i2="tau2"):
    """Random-effects meta-analysis of effects with known standard errors.

    Parameters
    ----------
    yi : array_like
        Effects on the model scale (e.g. log hazard ratios).
    sei : array_like
        Their standard errors (> 0).
    method, ci, pi, level, i2
        See :func:`fit_batch`.
    measure : {"logHR", "log", "none"}
        What ``yi`` holds; fixes the natural scale (``exp`` for log ratios).

    Returns
    -------
    PoolResult

    Examples
    --------
    Steurer et al. (2006) CLL overall survival, HRs from CIs (R:
    ``rma(yi, sei=sei, method="REML", test="knha")``):

    >>> import numpy as np
    >>> hr = np.array([0.55, 0.92, 0.79, 1.18])
    >>> lo = np.array([0.28, 0.79, 0.59, 0.64]); hi = np.array([1.09, 1.08, 1.05, 2.17])
    >>> res = pool_generic(np.log(hr), (np.log(hi) - np.log(lo)) / 3.919927969080108)
    >>> round(res.to_dict("natural")["estimate"], 4)
    0.8844
    """
    yi = _as_1d("yi", yi)
    sei = _as_1d("sei", sei)
    if yi.shape != sei.shape:
        raise ValueError("yi and sei must have the same length")
    if np.any(sei <= 0):
        raise ValueError("standard errors must be positive")
    if measure not in ("logHR", "log", "none"):
        raise ValueError("measure must be 'logHR', 'log' or 'none'")
    fit = fit_batch(yi[None, :], (sei**2)[None, :], method=method, ci=ci, pi=pi,
                    level=level, i2=i2)
    return result_from_batch(fit, 0, measure=measure, method=method, ci=ci, pi=pi,
                              level=level, i2_method=i2)


def pool_proportions(events, total, *, measure="PLO", method="REML", ci="hksj", pi="t",
                     level=0.95, continuity_correction=0.5, i2="tau2"):
    """Random-effects meta-analysis of single-arm proportions.

    Parameters
    ----------
    events, total : array_like of int
        Events and participants per study.
    method : str
        A tau² estimator of :func:`fit_batch`, or ``"GLMM"``: the binomial-normal model
        fitted by maximum likelihood (:func:`metapool.glmm.fit_glmm`; logit only, ``ci``
        "z" or "t", no continuity correction, no study weights).
    measure : {"PLO", "PFT", "PAS", "PR"}
        Transformation (see :func:`metapool.effects.proportion_effects`). For PLO and
        PR, ``continuity_correction`` is added to both cells of studies with 0 or all
        events only (metafor ``add=1/2, to="only0"``). PFT is back-transformed with the
        harmonic mean of the sample sizes (metafor ``transf.ipft.hm``).
    ci, pi, level, i2
        See :func:`fit_batch`.

    Returns
    -------
    PoolResult or metapool.glmm.GLMMResult
        ``cc_added`` marks the corrected studies (PoolResult).
    """
    if method == "GLMM":
        if measure != "PLO":
            raise ValueError("the GLMM models proportions on the logit scale: use measure='PLO'")
        if ci not in ("z", "t"):
            raise ValueError(
                f"ci={ci!r} is not defined for the GLMM; use 'z' or 't' (metafor test='t')")
        if i2 != "tau2":
            raise ValueError("the GLMM reports I² from tau² only")
        from .glmm import fit_glmm  # the quadrature code is only needed here

        return fit_glmm(events, total, level=level, ci=ci, pi=pi)
    eff = proportion_effects(events, total, measure=measure,
                             continuity_correction=continuity_correction)
    fit = fit_batch(eff.yi[None, :], eff.vi[None, :], method=method, ci=ci, pi=pi,
                    level=level, i2=i2)
    n = np.atleast_1d(np.asarray(total, dtype=float))
    n_harmonic = float(len(n) / np.sum(1.0 / n)) if measure == "PFT" else None
    return result_from_batch(fit, 0, measure=measure, method=method, ci=ci, pi=pi,
                              level=level, cc_added=eff.cc_added,
                              continuity_correction=eff.continuity_correction,
                              n_harmonic=n_harmonic, i2_method=i2)
