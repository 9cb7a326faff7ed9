"""Subgroup analysis: pooled results per subgroup and two tests for subgroup differences.

For a categorical study characteristic with G levels (subgroups):

* each subgroup is pooled on its own, with its own tau² (:func:`pooling.fit_batch`,
  one batch row per subgroup); a subgroup with a single study is reported, not pooled;
* **separate tau²** test: ``Q_between = sum_g w_g (mu_g - mu_bar)²`` with
  ``w_g = 1 / SE_g²`` and ``mu_bar = sum w_g mu_g / sum w_g``, where ``mu_g`` and
  ``SE_g`` come from each subgroup's own random-effects fit; chi² with G - 1 df
  (Borenstein et al. 2009, ch. 19; R meta ``subgroup`` with ``tau.common = FALSE``);
* **common tau²** test: the omnibus test of the subgroup factor in a mixed-effects
  meta-regression (:func:`metareg.meta_regression`), which assumes one tau² shared by
  all subgroups (metafor ``rma(yi, vi, mods = ~ factor(group))``: QM, chi² with G - 1
  df, or F with (G - 1, k - G) df under HKSJ).

Both tests are always reported together, each with a label saying which is which; they
answer the same question under different assumptions about tau² and can disagree.

Choices, documented
-------------------
* ``SE_g`` in Q_between is the Wald (inverse-variance) SE ``sqrt(1 / sum_i w*_i)`` with
  ``w*_i = 1 / (v_i + tau²_g)``, whatever ``ci`` is. This is R meta's ``Q.b.random``
  with its default ``method.random.ci = "classic"``. The statistic is a sum of squared
  standardised differences referred to chi²; that needs variances treated as known. The
  HKSJ SE multiplies each subgroup's variance by its own Q-based factor estimated from
  k_g - 1 df (1 df for a subgroup of two). That factor is very noisy for small
  subgroups, can be below 1, and its uncertainty is what the t quantile accounts for
  within a subgroup; it has no place in a chi² sum. (meta >= 6 with
  ``method.random.ci = "HK"`` plugs the HK SE in; metapool deliberately does not.)
  ``ci`` therefore affects only the per-subgroup intervals and the common-tau² test.
* A subgroup with one study enters Q_between with the study's own estimate and SE
  ``sqrt(v_i)`` (its tau² is 0: it cannot be estimated), as in meta, where ``metagen``
  with k = 1 gives ``TE.random = TE`` and ``seTE.random = seTE``. Its row is reported as
  ``not pooled: single study``. df stays G - 1.

References
----------
.. [1] Borenstein M, Hedges LV, Higgins JPT, Rothstein HR. Introduction to
   Meta-Analysis. Chichester: Wiley; 2009, chapter 19 (subgroup analyses, separate
   and pooled tau²).
.. [2] Deeks JJ, Higgins JPT, Altman DG (eds). Analysing data and undertaking
   meta-analyses. Cochrane Handbook for Systematic Reviews of Interventions, version
   6.4, section 10.11 (subgroup analyses and the test for subgroup differences).
.. [3] Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat
   Softw 2010;36(3):1-48 (categorical moderators, QM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .estimators import TAU2_METHODS
from .metareg import MetaRegResult, design_matrix, factor_levels, meta_regression
from .pooling import (
    MEASURE_SCALES,
    CI_METHODS,
    PI_METHODS,
    result_from_batch,
    fit_batch,
)

__all__ = ["SubgroupResult", "SubgroupTest", "q_between", "subgroup_analysis"]

#: Identifiers of the two tests, in the order they are reported.
TEST_SEPARATE = "separate_tau2"
TEST_COMMON = "common_tau2"


@dataclass(frozen=True)
class SubgroupTest:
    """One test for subgroup differences.

    Attributes
    ----------
    test : {"separate_tau2", "common_tau2"}
    label : str
        What the test is, for tables and reports.
    statistic : float or None
        Q_between (chi²) or QM (chi², or F under HKSJ).
    df, df2 : int or None
        Degrees of freedom (``df2`` only for F).
    distribution : {"chi2", "F"}
    p_value : float or None
    tau2 : float or None
        The common (residual) tau² of the meta-regression for ``common_tau2``; None for
        ``separate_tau2`` (the per-subgroup tau² are in the subgroup rows).
    reason : str or None
        Why the numbers are None, if they are.
    """

    test: str
    label: str
    statistic: float | None
    df: int | None
    df2: int | None
    distribution: str
    p_value: float | None
    tau2: float | None = None
    reason: str | None = None

    def to_dict(self):
        """``{test, label, statistic, df, df2, distribution, p_value, tau2, reason}``."""
        return {"test": self.test, "label": self.label, "statistic": self.statistic,
                "df": self.df, "df2": self.df2, "distribution": self.distribution,
                "p_value": self.p_value, "tau2": self.tau2, "reason": self.reason}


@dataclass(frozen=True)
class SubgroupResult:
    """Per-subgroup pooled results and both tests for subgroup differences.

    Attributes
    ----------
    levels : tuple of str
        Subgroups in sorted order (:func:`metareg.factor_levels`); the first is the
        reference level of the common-tau² meta-regression.
    results : tuple of PoolResult
        One per level, same order.
    members : tuple of tuple of int
        Input positions of each level's studies.
    between_estimate, between_se : tuple of float
        ``mu_g`` and the Wald ``SE_g`` that enter Q_between (a single study's own
        ``yi`` and ``sqrt(vi)`` for a level with k = 1).
    separate, common : SubgroupTest
        The test with a separate tau² per subgroup and the one with a common tau².
    common_fit : MetaRegResult or None
        The meta-regression behind ``common``.
    method, ci, pi, level, measure
        The choices that produced the result.
    warnings : tuple of str
    """

    levels: tuple
    results: tuple
    members: tuple
    between_estimate: tuple
    between_se: tuple
    separate: SubgroupTest
    common: SubgroupTest
    common_fit: MetaRegResult | None
    method: str
    ci: str
    pi: str
    level: float
    measure: str
    warnings: tuple = field(default_factory=tuple)

    @property
    def tests(self):
        return (self.separate, self.common)

    def result(self, level_name):
        """The :class:`PoolResult` of one subgroup."""
        return self.results[self.levels.index(level_name)]

    def to_records(self, scale="model"):
        """One row per subgroup: ``subgroup`` followed by the keys of
        :meth:`PoolResult.to_dict` and ``between_estimate, between_se`` (model scale)."""
        rows = []
        for name, res, est, se in zip(self.levels, self.results, self.between_estimate,
                                      self.between_se):
            rows.append({"subgroup": name, **res.to_dict(scale),
                         "between_estimate": est, "between_se": se})
        return rows

    def to_dict(self, scale="model"):
        """``{levels, subgroups, tests, method, ci_method, pi_method, level, measure,
        common_fit, warnings}`` with ``subgroups`` = :meth:`to_records` and ``tests`` =
        ``[separate, common]`` as dicts."""
        return {
            "levels": list(self.levels),
            "subgroups": self.to_records(scale),
            "tests": [t.to_dict() for t in self.tests],
            "method": self.method,
            "ci_method": self.ci,
            "pi_method": self.pi,
            "level": self.level,
            "measure": self.measure,
            "common_fit": None if self.common_fit is None else self.common_fit.to_dict(),
            "warnings": list(self.warnings),
        }


def q_between(estimates, ses):
    """Q statistic for the heterogeneity of subgroup estimates, chi² with G - 1 df.

    ``Q = sum_g w_g (mu_g - mu_bar)²``, ``w_g = 1 / se_g²``,
    ``mu_bar = sum w_g mu_g / sum w_g``: the common-effect Q of the subgroup estimates
    (R: ``rma(mu_g, sei = se_g, method = "FE")$QE``).

    Returns
    -------
    q : float
    df : int
    p_value : float or None
        None when G < 2.
    """
    mu = np.asarray(estimates, dtype=float)
    se = np.asarray(ses, dtype=float)
    if mu.shape != se.shape or mu.ndim != 1:
        raise ValueError("estimates and ses must be 1-D arrays of the same length")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(se)) and np.all(se > 0)):
        raise ValueError("estimates must be finite and standard errors finite and > 0")
    w = 1.0 / se**2
    mu_bar = np.sum(w * mu) / np.sum(w)
    q = float(np.sum(w * (mu - mu_bar) ** 2))
    df = mu.size - 1
    return q, df, (float(stats.chi2.sf(q, df)) if df > 0 else None)


def _vector(name, a):
    a = np.atleast_1d(np.asarray(a, dtype=float))
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if a.size == 0:
        raise ValueError(f"{name} is empty: at least one study is needed")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must contain finite numbers only")
    return a


def _padded(values, members):
    out = np.full((len(members), max(len(m) for m in members)), np.nan)
    for g, idx in enumerate(members):
        out[g, : len(idx)] = values[list(idx)]
    return out


_SEPARATE_LABEL = ("Test for subgroup differences, separate tau² per subgroup: "
                   "Q_between of the subgroup random-effects estimates (Wald SEs), "
                   "chi² with G - 1 df")


def _common_label(ci, method):
    dist = "F with G - 1 and k - G df" if ci != "z" else "chi² with G - 1 df"
    adj = {"z": "", "t": ", t-based", "hksj": ", HKSJ-adjusted",
           "hksj_adhoc": ", HKSJ-adjusted (scale factor at least 1)"}[ci]
    model = ("common-effect meta-regression (tau² = 0)" if method == "FE"
             else "mixed-effects meta-regression")
    return ("Test for subgroup differences, common tau²: omnibus test of the subgroup "
            f"factor in a {model} (QM{adj}, {dist})")


def subgroup_analysis(yi, vi, groups, *, method="REML", ci="hksj", pi="t", level=0.95,
                      measure="none"):
    """Subgroup meta-analysis with both tests for subgroup differences.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effects on the model scale and their sampling variances (> 0).
    groups : sequence of str or of numbers, shape (k,)
        Subgroup of each study (no missing values).
    method : {"FE", "DL", "HE", "SJ", "ML", "REML", "PM"}
        tau² estimator, used for each subgroup (separately) and for the
        common-tau² meta-regression.
    ci, pi, level
        As :func:`pooling.fit_batch` for the per-subgroup fits; ``ci`` also sets the
        common-tau² test (chi² under ``z``, F under ``hksj``/``hksj_adhoc``).
    measure : {"none", "PLO", "logHR", "log"}
        What ``yi`` holds; fixes the natural scale of the subgroup rows.

    Returns
    -------
    SubgroupResult

    Notes
    -----
    Defined results at the edges:

    * a subgroup with k = 1: reported with ``status = "not pooled: single study"``;
      in Q_between it counts with its own estimate and SE (see the module docstring);
    * a single level (G = 1): both tests are None with a reason;
    * too few studies for the meta-regression (k <= G with a random-effects method,
      or HKSJ without residual df): the common-tau² numbers are None with the reason;
      the separate-tau² test is still given.

    References
    ----------
    See the module docstring. R equivalents: per subgroup
    ``rma(yi, vi, subset = group == g, method = method, test = ...)``; common tau²
    ``rma(yi, vi, mods = ~ factor(group), method = method, test = ...)`` (QM, QMdf,
    QMp); separate tau² ``rma(b_g, sei = se_g, method = "FE")$QE`` with ``b_g, se_g``
    from the per-subgroup fits with ``test = "z"`` (= meta's ``Q.b.random`` with
    ``tau.common = FALSE``).
    """
    if method not in TAU2_METHODS:
        raise ValueError(f"method must be one of {TAU2_METHODS}, got {method!r}")
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {CI_METHODS}, got {ci!r}")
    if pi not in PI_METHODS:
        raise ValueError(f"pi must be one of {PI_METHODS}, got {pi!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    if measure not in MEASURE_SCALES:
        raise ValueError(f"measure must be one of {tuple(MEASURE_SCALES)}, got {measure!r}")
    yi = _vector("yi", yi)
    vi = _vector("vi", vi)
    if yi.shape != vi.shape:
        raise ValueError("yi and vi must have the same length")
    if np.any(vi <= 0):
        raise ValueError("sampling variances must be positive")
    groups = list(np.asarray(groups, dtype=object).ravel())
    if len(groups) != yi.size:
        raise ValueError(f"groups has {len(groups)} entries for {yi.size} studies")
    labels, levels = factor_levels(groups, name="groups")
    members = tuple(tuple(int(i) for i in np.flatnonzero(labels == lev)) for lev in levels)
    k = yi.size
    G = len(levels)
    warnings = []

    # per-subgroup fits, one batch row per subgroup
    fit = fit_batch(_padded(yi, members), _padded(vi, members), method=method, ci=ci,
                    pi=pi, level=level)
    results = tuple(
        result_from_batch(fit, g, measure=measure, method=method, ci=ci, pi=pi,
                           level=level)
        for g in range(G))

    # the inputs of Q_between: RE estimate and Wald SE; a single study as it is
    est, se = [], []
    for g, idx in enumerate(members):
        idx = list(idx)
        if len(idx) == 1:
            est.append(float(yi[idx[0]]))
            se.append(math.sqrt(vi[idx[0]]))
        else:
            est.append(float(fit["estimate"][g]))
            se.append(math.sqrt(1.0 / np.sum(1.0 / (vi[idx] + fit["tau2"][g]))))
    singles = [lev for lev, m in zip(levels, members) if len(m) == 1]
    if singles:
        warnings.append(
            "subgroup(s) with a single study (" + ", ".join(singles) + ") enter the test "
            "for subgroup differences with the study's own estimate and standard error")

    if G < 2:
        reason = f"a single subgroup ({levels[0]}): there is nothing to compare"
        separate = SubgroupTest(TEST_SEPARATE, _SEPARATE_LABEL, None, None, None, "chi2",
                                None, reason=reason)
        common = SubgroupTest(TEST_COMMON, _common_label(ci, method), None, None, None,
                              "F" if ci != "z" else "chi2", None, reason=reason)
        common_fit = None
    else:
        q, df, p = q_between(est, se)
        separate = SubgroupTest(TEST_SEPARATE, _SEPARATE_LABEL, q, df, None, "chi2", p)
        X, names = design_matrix({"group": groups}, {"group"})
        try:
            common_fit = meta_regression(yi, vi, X, method=method, ci=ci, level=level,
                                         names=names, intercept_index=0)
        except ValueError as exc:
            common_fit = None
            common = SubgroupTest(
                TEST_COMMON, _common_label(ci, method), None, G - 1, (k - G) if ci != "z" else None,
                "F" if ci != "z" else "chi2", None,
                reason=f"meta-regression on the subgroup factor not possible: {exc}")
        else:
            common = SubgroupTest(
                TEST_COMMON, _common_label(ci, method), common_fit.qm, common_fit.qm_df,
                common_fit.qm_df2, common_fit.qm_dist, common_fit.qm_p,
                tau2=common_fit.tau2,
                reason=None if common_fit.qm is not None else "; ".join(common_fit.warnings))

    return SubgroupResult(
        levels=tuple(levels), results=results, members=members,
        between_estimate=tuple(est), between_se=tuple(se), separate=separate,
        common=common, common_fit=common_fit, method=method, ci=ci, pi=pi,
        level=float(level), measure=measure, warnings=tuple(warnings))
