"""Sensitivity analyses: leave-one-out, cumulative meta-analysis, influence diagnostics.

Each panel refits the random-effects model to many subsets of the studies. All subsets of
a panel are stacked into one NaN-padded batch (rows = subsets, studies packed to the
left) and fitted with a single call of :func:`metapool.pooling.fit_batch`, so a panel of
k refits costs one vectorised fit, and every refit uses exactly the estimator, CI and PI
definitions of the main analysis.

Conventions (the same as :mod:`metapool.pooling`):

* a subset with one study is *not pooled*: its numbers are ``None`` and its status says
  why (metafor instead reports the single study itself, see :func:`cumulative`);
* no prediction interval is given when a subset has fewer than
  :data:`metapool.pooling.MIN_K_PI` studies (metafor's ``leave1out()``/``cumul()`` give
  no prediction interval at all; the tests compare it with ``predict()`` of the refitted
  subset);
* numbers that do not exist are ``None`` in ``to_dict()``/``to_records()``, never NaN.

References
----------
.. [1] Viechtbauer W, Cheung MW-L. Outlier and influence diagnostics for meta-analysis.
   Res Synth Methods 2010;1:112-125 (externally standardised residuals, DFFITS, Cook's
   distance, COVRATIO, leave-one-out tau² and Q; metafor ``influence.rma.uni``).
.. [2] Lau J, Antman EM, Jimenez-Silva J, Kupelnick B, Mosteller F, Chalmers TC.
   Cumulative meta-analysis of therapeutic trials for myocardial infarction. N Engl J Med
   1992;327:248-254.
.. [3] Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat Softw
   2010;36(3):1-48 (``leave1out``, ``cumul``, ``influence``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from . import pooling
from .pooling import PoolResult, result_from_batch

__all__ = [
    "CumulativeResult",
    "InfluenceResult",
    "LeaveOneOutResult",
    "cumulative",
    "cumulative_order",
    "influence",
    "leave_one_out",
]

#: Measures whose natural scale the panels can report: every measure of
#: :data:`metapool.pooling.MEASURE_SCALES` but PFT, whose back-transformation needs the
#: harmonic mean of the sample sizes (different in every subset).
MEASURES = tuple(m for m in pooling.MEASURE_SCALES if m != "PFT")

#: keys of PoolResult.to_dict() that describe the panel, not a row
_SETTINGS = ("measure", "method", "ci_method", "pi_method", "i2_method", "level",
             "scale", "back_transformation")


# --------------------------------------------------------------------------------------
# validation and batch building
# --------------------------------------------------------------------------------------


def _check_studies(yi, vi, labels, *, min_k):
    yi = np.atleast_1d(np.asarray(yi, dtype=float))
    vi = np.atleast_1d(np.asarray(vi, dtype=float))
    if yi.ndim != 1 or vi.ndim != 1:
        raise ValueError("yi and vi must be one-dimensional")
    if yi.shape != vi.shape:
        raise ValueError(f"yi and vi must have the same length ({yi.size} != {vi.size})")
    if not (np.all(np.isfinite(yi)) and np.all(np.isfinite(vi))):
        raise ValueError("yi and vi must contain finite numbers only")
    if np.any(vi <= 0):
        raise ValueError("sampling variances vi must be positive")
    k = yi.size
    if k < min_k:
        raise ValueError(f"at least {min_k} studies are needed, got {k}")
    if labels is None:
        labels = tuple(str(i + 1) for i in range(k))  # metafor's default slab
    else:
        labels = tuple(str(x) for x in labels)
        if len(labels) != k:
            raise ValueError(f"labels must have one entry per study ({len(labels)} != {k})")
    return yi, vi, labels


def _check_options(method, ci, pi, level, measure, i2="tau2"):
    # the pooling options are validated by fit_batch; checking them first gives the
    # error before any array is built
    pooling.check_options(method, ci, pi, level, i2)
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")


def _packed(values, members):
    """Rows of ``values[members[r]]`` packed to the left and NaN-padded to max length."""
    width = max((len(m) for m in members), default=0)
    out = np.full((len(members), max(width, 1)), np.nan)
    for r, m in enumerate(members):
        out[r, : len(m)] = values[np.asarray(m, dtype=int)]
    return out


def _row_dict(res: PoolResult, scale):
    d = res.to_dict(scale)
    for key in _SETTINGS:
        d.pop(key, None)
    return d


def _panel_settings(measure, method, ci, pi, i2, level, scale):
    back = pooling.MEASURE_SCALES[measure]
    return {
        "measure": measure,
        "method": method,
        "ci_method": ci,
        "pi_method": pi,
        "i2_method": "Q-based" if (i2 == "q" or method == "FE") else "tau²-based",
        "level": float(level),
        "scale": back[0] if scale == "model" else back[1],
    }


def _check_scale(scale):
    if scale not in ("model", "natural"):
        raise ValueError("scale must be 'model' or 'natural'")


# --------------------------------------------------------------------------------------
# leave-one-out
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaveOneOutResult:
    """Leave-one-out panel: the model refitted k times, each time without one study.

    Attributes
    ----------
    labels : tuple of str
        Study labels in input order; row i omits ``labels[i]``.
    fits : tuple of PoolResult
        ``fits[i]`` is the fit to the k - 1 studies other than study i.
    measure, method, ci, pi : str
    level : float
    i2 : {"tau2", "q"}
        I² definition (see :func:`metapool.pooling.fit_batch`).
    """

    labels: tuple
    fits: tuple
    measure: str
    method: str
    ci: str
    pi: str
    level: float
    i2: str = "tau2"

    @property
    def k(self) -> int:
        return len(self.labels)

    def to_records(self, scale="model"):
        """One plain dict per omitted study.

        Keys: ``omitted`` (label), ``omitted_index`` (0-based position in the input),
        then the keys of :meth:`PoolResult.to_dict` without the panel settings: ``k``,
        ``estimate``, ``se``, ``ci_lower``, ``ci_upper``, ``pi_lower``, ``pi_upper``,
        ``stat``, ``p_value``, ``tau2`` (with the Q-profile ``tau2_lower``,
        ``tau2_upper``), ``tau``, ``i2`` (``i2_lower``, ``i2_upper``), ``h2``
        (``h2_lower``, ``h2_upper``), ``q``, ``q_df``, ``q_p``, ``status``,
        ``warnings``. With ``scale="natural"`` estimate, CI and PI are back-transformed
        (``se`` is then the delta-method SE).
        """
        _check_scale(scale)
        return [
            {"omitted": lab, "omitted_index": i, **_row_dict(res, scale)}
            for i, (lab, res) in enumerate(zip(self.labels, self.fits))
        ]

    def to_dict(self, scale="model"):
        """Panel settings plus ``rows`` (:meth:`to_records`)."""
        return {
            "analysis": "leave-one-out",
            "k": self.k,
            **_panel_settings(self.measure, self.method, self.ci, self.pi, self.i2,
                              self.level, scale),
            "rows": self.to_records(scale),
        }


def leave_one_out(yi, vi, *, method="REML", ci="hksj", pi="t", level=0.95, labels=None,
                  measure="none", i2="tau2"):
    """Leave-one-out meta-analysis (metafor ``leave1out()``).

    Row i refits the random-effects model without study i, with the same tau² estimator,
    CI and PI method. All k refits are one (k x (k - 1)) batch fitted by a single call of
    :func:`metapool.pooling.fit_batch`.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effects on the model scale and their sampling variances (> 0); k >= 2.
    method, ci, pi, level, i2
        As :func:`metapool.pooling.fit_batch` (``i2="tau2"`` is metafor's I²).
    labels : sequence of str, optional
        Study labels; default ``"1"``, ..., ``"k"`` (metafor's default).
    measure : {"none", "PLO", "PAS", "PR", "logHR", "log"}
        What ``yi`` holds; fixes the natural scale of ``to_records(scale="natural")``
        (:data:`MEASURES`; not PFT, whose back-transformation depends on the subset's
        sample sizes).

    Returns
    -------
    LeaveOneOutResult

    Notes
    -----
    With k = 2 every row pools a single study and is reported as not pooled (metafor
    reports the remaining study itself). A row with k - 1 < 3 has no prediction
    interval. metafor's ``leave1out()`` reports no prediction interval; the one given
    here is ``predict()`` of the refitted model.

    metafor equivalent::

        res <- rma(yi, vi, method = "REML", test = "knha")
        leave1out(res)

    References
    ----------
    .. [1] Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat
       Softw 2010;36(3):1-48.
    """
    _check_options(method, ci, pi, level, measure, i2)
    yi, vi, labels = _check_studies(yi, vi, labels, min_k=2)
    k = yi.size
    members = [np.delete(np.arange(k), i) for i in range(k)]
    fit = pooling.fit_batch(_packed(yi, members), _packed(vi, members), method=method,
                            ci=ci, pi=pi, level=level, i2=i2)
    fits = tuple(
        result_from_batch(fit, i, measure=measure, method=method, ci=ci, pi=pi,
                          level=level, i2_method=i2)
        for i in range(k)
    )
    return LeaveOneOutResult(labels, fits, measure, method, ci, pi, float(level), i2)


# --------------------------------------------------------------------------------------
# cumulative meta-analysis
# --------------------------------------------------------------------------------------


def cumulative_order(years, labels):
    """The default order of a cumulative meta-analysis: by year, ties by label.

    Parameters
    ----------
    years : sequence of int, float or None
        Publication year per study; missing years (None or NaN) go last.
    labels : sequence of str
        Study labels, used to break ties in year (code-point order, as R's
        ``order(..., method = "radix")``); equal labels keep input order.

    Returns
    -------
    list of int
        A permutation of ``range(k)``: element j is the input position of the study
        added at step j + 1.

    Examples
    --------
    >>> cumulative_order([2025, 2024, 2015, 2025], ["Tang", "Cao", "Yu", "Anon"])
    [2, 1, 3, 0]
    """
    years = list(years)
    labels = [str(x) for x in labels]
    if len(years) != len(labels):
        raise ValueError("years and labels must have the same length")

    def key(i):
        y = years[i]
        missing = y is None or (isinstance(y, float) and math.isnan(y))
        return (missing, 0.0 if missing else float(y), labels[i], i)

    return sorted(range(len(years)), key=key)


def _check_order(order, k):
    try:
        order = np.asarray(order)
    except Exception as exc:  # pragma: no cover - numpy accepts nearly anything
        raise ValueError("order must be a sequence of study positions") from exc
    if order.ndim != 1 or order.size != k:
        raise ValueError(f"order must list each of the {k} study positions once")
    if order.dtype.kind == "f" and np.all(order == np.round(order)):
        order = order.astype(int)
    if order.dtype.kind not in "iu":
        raise ValueError("order must hold integer positions 0 .. k-1")
    if not np.array_equal(np.sort(order), np.arange(k)):
        raise ValueError(f"order must be a permutation of 0 .. {k - 1}")
    return order.astype(int)


@dataclass(frozen=True)
class CumulativeResult:
    """Cumulative meta-analysis: step j pools the first j studies of ``order``.

    Attributes
    ----------
    labels : tuple of str
        Study labels in input order.
    order : tuple of int
        Input positions in the order the studies are added.
    fits : tuple of PoolResult
        ``fits[j]`` pools ``order[: j + 1]``; ``fits[0]`` (one study) is not pooled.
    measure, method, ci, pi : str
    level : float
    i2 : {"tau2", "q"}
    """

    labels: tuple
    order: tuple
    fits: tuple
    measure: str
    method: str
    ci: str
    pi: str
    level: float
    i2: str = "tau2"

    @property
    def k(self) -> int:
        return len(self.labels)

    def to_records(self, scale="model"):
        """One plain dict per step.

        Keys: ``step`` (1-based, = k of the fit), ``added`` (label of the study added at
        this step), ``added_index`` (its 0-based input position), then the keys of
        :meth:`PoolResult.to_dict` without the panel settings (see
        :meth:`LeaveOneOutResult.to_records`).
        """
        _check_scale(scale)
        return [
            {"step": j + 1, "added": self.labels[pos], "added_index": int(pos),
             **_row_dict(res, scale)}
            for j, (pos, res) in enumerate(zip(self.order, self.fits))
        ]

    def to_dict(self, scale="model"):
        """Panel settings, ``order`` (input positions) and ``rows`` (:meth:`to_records`)."""
        return {
            "analysis": "cumulative",
            "k": self.k,
            **_panel_settings(self.measure, self.method, self.ci, self.pi, self.i2,
                              self.level, scale),
            "order": [int(i) for i in self.order],
            "rows": self.to_records(scale),
        }


def cumulative(yi, vi, order, *, method="REML", ci="hksj", pi="t", level=0.95,
               labels=None, measure="none", i2="tau2"):
    """Cumulative meta-analysis (metafor ``cumul()``).

    Step j pools the first j studies in ``order``; all k steps are one (k x k) batch
    fitted by a single call of :func:`metapool.pooling.fit_batch`.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effects on the model scale and their sampling variances (> 0); k >= 1.
    order : sequence of int
        Permutation of ``range(k)``: the input positions in the order the studies are
        added. The usual order is by publication year, ties by label:
        :func:`cumulative_order`.
    method, ci, pi, level, labels, measure, i2
        As :func:`leave_one_out`.

    Returns
    -------
    CumulativeResult

    Notes
    -----
    Step 1 holds a single study and is *not pooled* (status ``"not pooled: single
    study"``, all numbers None), metapool's convention for k = 1. metafor's ``cumul()``
    instead reports ``rma()`` of the single study: tau² = 0, the study's own ``yi`` and
    ``sqrt(vi)`` with a Wald CI, and with ``test = "knha"`` it silently falls back to the
    z test ("Setting argument test="z" since k=1"). From step 2 on the two agree; step 2
    (k = 2) has no prediction interval here.

    metafor 3.8-1 sorts by the ``order`` argument (``order(order)``); the equivalent of
    ``cumulative(yi, vi, p)`` is ``cumul(res, order = pos)`` with ``pos[p + 1] <- 1:k``.

    metafor equivalent::

        res <- rma(yi, vi, method = "REML", test = "knha")
        cumul(res, order = year)   # ties in year kept in row order by R

    References
    ----------
    .. [1] Lau J, Antman EM, Jimenez-Silva J, et al. Cumulative meta-analysis of
       therapeutic trials for myocardial infarction. N Engl J Med 1992;327:248-254.
    """
    _check_options(method, ci, pi, level, measure, i2)
    yi, vi, labels = _check_studies(yi, vi, labels, min_k=1)
    k = yi.size
    order = _check_order(order, k)
    members = [order[: j + 1] for j in range(k)]
    fit = pooling.fit_batch(_packed(yi, members), _packed(vi, members), method=method,
                            ci=ci, pi=pi, level=level, i2=i2)
    fits = tuple(
        result_from_batch(fit, j, measure=measure, method=method, ci=ci, pi=pi,
                          level=level, i2_method=i2)
        for j in range(k)
    )
    return CumulativeResult(labels, tuple(int(i) for i in order), fits, measure, method,
                            ci, pi, float(level), i2)


# --------------------------------------------------------------------------------------
# influence diagnostics
# --------------------------------------------------------------------------------------

#: Influence columns in metafor's order (``influence.rma.uni()$inf`` plus ``dfbs``).
INFLUENCE_COLUMNS = ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "qe_del",
                     "hat", "weight", "dfbetas")


@dataclass(frozen=True)
class InfluenceResult:
    """Case-deletion diagnostics of a random-effects model (intercept only, p = 1).

    Attributes
    ----------
    labels : tuple of str
    rstudent, dffits, cook_d, cov_r, tau2_del, qe_del, hat, weight, dfbetas : ndarray
        One value per study in input order; NaN where a deleted fit does not exist
        (k = 2: deleting a study leaves one study, which is not pooled).
    influential : ndarray of bool
        metafor's ``inf`` flag (see :func:`influence`).
    criteria : tuple of tuple of str
        Per study, the names of the criteria that flagged it.
    thresholds : dict
        The cut-offs used: ``dffits``, ``cook_d`` (on the distance scale), ``hat``,
        ``dfbetas``.
    estimate, se, tau2, q : float
        The full-data fit the deletions are compared with.
    method, ci : str
    level : float
    warnings : tuple of str
    """

    labels: tuple
    rstudent: np.ndarray
    dffits: np.ndarray
    cook_d: np.ndarray
    cov_r: np.ndarray
    tau2_del: np.ndarray
    qe_del: np.ndarray
    hat: np.ndarray
    weight: np.ndarray
    dfbetas: np.ndarray
    influential: np.ndarray
    criteria: tuple
    thresholds: dict
    estimate: float
    se: float
    tau2: float
    q: float
    method: str
    ci: str
    level: float
    warnings: tuple = field(default_factory=tuple)

    @property
    def k(self) -> int:
        return len(self.labels)

    def to_records(self):
        """One plain dict per study.

        Keys: ``study`` (label), ``index`` (0-based input position), ``rstudent``,
        ``dffits``, ``cook_d``, ``cov_r``, ``tau2_del``, ``qe_del``, ``hat``,
        ``weight`` (percent), ``dfbetas``, ``influential`` (bool) and ``criteria`` (list
        of the criteria met). Values that do not exist are None.
        """
        rows = []
        for i, lab in enumerate(self.labels):
            row = {"study": lab, "index": i}
            for col in INFLUENCE_COLUMNS:
                row[col] = pooling._none_if_nan(getattr(self, col)[i])
            row["influential"] = bool(self.influential[i])
            row["criteria"] = list(self.criteria[i])
            rows.append(row)
        return rows

    def to_dict(self):
        """Full-fit summary, thresholds, ``rows`` (:meth:`to_records`) and warnings."""
        return {
            "analysis": "influence",
            "k": self.k,
            "method": self.method,
            "ci_method": self.ci,
            "level": self.level,
            "estimate": self.estimate,
            "se": self.se,
            "tau2": self.tau2,
            "q": self.q,
            "thresholds": dict(self.thresholds),
            "rule": INFLUENCE_RULE,
            "rows": self.to_records(),
            "warnings": list(self.warnings),
        }


INFLUENCE_RULE = (
    "influential (metafor 3.8-1 influence.rma.uni, p = 1) if |DFFITS| > 3 sqrt(p/(k-p)), "
    "or pchisq(Cook's D, df = p) > 0.5, or hat > 3p/k, or |DFBETAS| > 1"
)


def influence(yi, vi, *, method="REML", ci="hksj", level=0.95, labels=None):
    """Outlier and influence diagnostics (metafor ``influence.rma.uni()``).

    The full-data fit and the k leave-one-out fits are one ((k + 1) x k) batch fitted
    by a single call of :func:`metapool.pooling.fit_batch`; every diagnostic is then a
    closed-form function of these fits. With mu, SE and tau² of the full fit, and
    mu_(-i), SE_(-i), tau²_(-i) and the Knapp-Hartung scale s²_(-i) of the fit without
    study i (s² = 1 for ``ci="z"`` and ``"t"``; ``sum w (y - mu)² / (k - 2)`` for
    ``hksj``, not below 1 for ``hksj_adhoc``):

    * ``rstudent`` = (y_i - mu_(-i)) / sqrt(s²_(-i) (v_i + tau²_(-i)) + SE_(-i)²), the
      externally standardised (deleted) residual;
    * ``dffits`` = (mu - mu_(-i)) / sqrt(s²_(-i) h_i (tau²_(-i) + v_i));
    * ``cook_d`` = (mu - mu_(-i))² / SE²;
    * ``cov_r`` = SE_(-i)² / SE²;
    * ``tau2_del`` = tau²_(-i), ``qe_del`` = Cochran's Q without study i;
    * ``hat`` h_i = w_i / sum w (random-effects weights of the full fit), ``weight`` =
      100 h_i;
    * ``dfbetas`` = (mu - mu_(-i)) / sqrt(s²_(-i) / sum_j 1/(v_j + tau²_(-i))) (all k
      studies in the sum, as metafor).

    A study is flagged ``influential`` (metafor's ``*`` in the ``inf`` column) when any
    of |dffits| > 3 sqrt(p/(k-p)), pchisq(cook_d, p) > 0.5 (i.e. cook_d > 0.455),
    hat > 3p/k, or |dfbetas| > 1 holds, with p = 1 coefficient.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effects and sampling variances (> 0); k >= 2.
    method, ci, level
        As :func:`metapool.pooling.fit_batch` (the diagnostics do not depend on
        ``level``; it is kept for a uniform signature).
    labels : sequence of str, optional

    Returns
    -------
    InfluenceResult

    Notes
    -----
    With k = 2 each deleted fit holds one study, which metapool does not pool: every
    diagnostic that needs a deleted fit is None (metafor fits the single study), ``hat``
    and ``weight`` are given, and only the hat criterion can flag a study.

    metafor equivalent::

        res <- rma(yi, vi, method = "REML", test = "knha")
        influence(res)

    References
    ----------
    .. [1] Viechtbauer W, Cheung MW-L. Outlier and influence diagnostics for
       meta-analysis. Res Synth Methods 2010;1:112-125.
    """
    pooling.check_options(method, ci, "none", level)
    yi, vi, labels = _check_studies(yi, vi, labels, min_k=2)
    k = yi.size
    members = [np.arange(k)] + [np.delete(np.arange(k), i) for i in range(k)]
    fit = pooling.fit_batch(_packed(yi, members), _packed(vi, members), method=method,
                            ci=ci, pi="none", level=level)
    mu, se, tau2, q = (float(fit[key][0]) for key in ("estimate", "se", "tau2", "q"))
    hat = fit["weights"][0, :k] / 100.0
    weight = fit["weights"][0, :k].copy()

    mu_d = fit["estimate"][1:]
    se_d = fit["se"][1:]
    tau2_d = fit["tau2"][1:]
    qe_d = fit["q"][1:]
    # Knapp-Hartung scale of each deleted fit (1 for the Wald test)
    y_rest = _packed(yi, members[1:])
    v_rest = _packed(vi, members[1:])
    with np.errstate(invalid="ignore", divide="ignore"):
        w_rest = 1.0 / (v_rest + tau2_d[:, None])
        if ci in ("z", "t"):
            s2w = np.where(np.isfinite(mu_d), 1.0, np.nan)
        else:
            s2w = np.nansum(w_rest * (y_rest - mu_d[:, None]) ** 2, axis=1) / (k - 2)
            s2w = np.where(np.isfinite(mu_d), s2w, np.nan)
            if ci == "hksj_adhoc":
                s2w = np.maximum(s2w, 1.0)
        delta = mu - mu_d
        resid = yi - mu_d
        resid = np.where(np.abs(resid) < 100 * np.finfo(float).eps, 0.0, resid)
        rstudent = resid / np.sqrt(s2w * (vi + tau2_d) + se_d**2)
        dffits = delta / np.sqrt(s2w * hat * (tau2_d + vi))
        vb_del = 1.0 / (1.0 / (vi[None, :] + tau2_d[:, None])).sum(axis=1)
        dfbetas = delta / np.sqrt(s2w * vb_del)
        cook_d = delta**2 / se**2
        cov_r = se_d**2 / se**2

    p = 1
    thresholds = {
        "dffits": 3.0 * math.sqrt(p / (k - p)),
        "cook_d": float(stats.chi2.ppf(0.5, p)),
        "hat": 3.0 * p / k,
        "dfbetas": 1.0,
    }
    with np.errstate(invalid="ignore"):
        flags = {
            "dffits": np.abs(dffits) > thresholds["dffits"],
            "cook_d": stats.chi2.cdf(cook_d, p) > 0.5,
            "hat": hat > thresholds["hat"],
            "dfbetas": np.abs(dfbetas) > thresholds["dfbetas"],
        }
    criteria = tuple(tuple(name for name, f in flags.items() if f[i]) for i in range(k))
    influential = np.array([len(c) > 0 for c in criteria])

    warnings = []
    if k == 2:
        warnings.append("k = 2: each deleted fit holds a single study, which is not "
                        "pooled; only hat and weight are given")
    if fit["fallback"].any():
        bad = [labels[i - 1] if i else "full data" for i in np.flatnonzero(fit["fallback"])]
        warnings.append(f"{method} did not converge for: {', '.join(bad)}; tau² taken "
                        "from the DerSimonian-Laird estimator there (fallback)")
    return InfluenceResult(
        labels=labels, rstudent=rstudent, dffits=dffits, cook_d=cook_d, cov_r=cov_r,
        tau2_del=tau2_d.astype(float), qe_del=qe_d.astype(float), hat=hat,
        weight=weight, dfbetas=dfbetas, influential=influential, criteria=criteria,
        thresholds=thresholds, estimate=mu, se=se, tau2=tau2, q=q, method=method, ci=ci,
        level=float(level), warnings=tuple(warnings),
    )
