"""Meta-regression: mixed-effects models with moderators, as metafor's ``rma.uni(mods=)``.

The model is ``y_i = x_i' beta + u_i + e_i`` with ``u_i ~ N(0, tau²)`` (residual
heterogeneity) and ``e_i ~ N(0, v_i)``. tau² comes from
:func:`metapool.estimators.estimate_tau2` with the design matrix (the one implementation
of every estimator), the coefficients from weighted least squares
(:func:`metapool.estimators.wls_fit`) with weights ``1 / (v_i + tau²)``. Every quantity
is defined as in metafor 3.8-1 ``rma.uni`` so that results can be compared number by
number (``tests/test_metareg.py``).

References
----------
.. [1] Thompson SG, Higgins JPT. How should meta-regression analyses be undertaken and
   interpreted? Stat Med 2002;21:1559-1573.
.. [2] Knapp G, Hartung J. Improved tests for a random effects meta-regression with a
   single covariate. Stat Med 2003;22:2693-2710 (the ``hksj`` scale factor and the F
   test of the moderators).
.. [3] Raudenbush SW. Analyzing effect sizes: random-effects models. In: Cooper H,
   Hedges LV, Valentine JC (eds). The Handbook of Research Synthesis and
   Meta-Analysis, 2nd ed. New York: Russell Sage Foundation; 2009:295-315
   (pseudo-R², the proportional reduction in tau²).
.. [4] Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat
   Softw 2010;36(3):1-48.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .estimators import TAU2_METHODS, estimate_tau2, wls_fit
from .pooling import CI_METHODS

__all__ = [
    "Coefficient",
    "MetaRegResult",
    "design_matrix",
    "factor_levels",
    "meta_regression",
]

#: metafor's name of the intercept column.
INTERCEPT = "intrcpt"

#: metafor sets the Knapp-Hartung scale factor to 0 when the RE-weighted residual sum of
#: squares is at or below this (``.Machine$double.eps``).
_EPS = np.finfo(float).eps


# --------------------------------------------------------------------------------------
# design matrices
# --------------------------------------------------------------------------------------

def _number_label(x):
    """R's ``as.character`` for a factor level that is a number (1948, 0.5)."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def factor_levels(values, name="groups"):
    """Level of each value and the sorted levels, as R's ``factor()`` orders them.

    Parameters
    ----------
    values : sequence of str or sequence of real numbers
        One entry per study. Strings and numbers must not be mixed; missing values
        (None, NaN, empty strings) are rejected.
    name : str
        Used in error messages.

    Returns
    -------
    labels : ndarray of str, shape (k,)
        The level of each study as text (numbers written as R writes them: 1948, 0.5).
    levels : list of str
        Distinct levels in sorted order: by value for numbers, by code point for text
        (R's order in the C locale, and in any locale for plain ASCII names without
        case differences).
    """
    values = list(np.asarray(values, dtype=object).ravel())
    if not values:
        raise ValueError(f"{name} is empty")
    for v in values:
        if v is None or (isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
                         and math.isnan(float(v))):
            raise ValueError(f"{name} contains a missing value ({v!r})")
    is_text = [isinstance(v, (str, np.str_)) for v in values]
    if all(is_text):
        labels = [str(v) for v in values]
        if any(not s.strip() for s in labels):
            raise ValueError(f"{name} contains an empty level name")
        levels = sorted(set(labels))
        return np.asarray(labels, dtype=object), levels
    if any(is_text):
        raise ValueError(f"{name} mixes text and numbers; use one type for all levels")
    nums = []
    for v in values:
        if v is None or isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise ValueError(f"{name} contains {v!r}: levels must be text or real numbers")
        if not math.isfinite(float(v)):
            raise ValueError(f"{name} contains a missing or infinite value ({v!r})")
        nums.append(float(v))
    order = sorted(set(nums))
    labels = [_number_label(v) for v in nums]
    return np.asarray(labels, dtype=object), [_number_label(v) for v in order]


def design_matrix(moderators, categorical=None, *, intercept=True):
    """Design matrix of a meta-regression, coded as R's ``model.matrix(~ ...)``.

    Parameters
    ----------
    moderators : dict of str to array_like
        Moderator name -> one value per study, in the column order wanted. Numeric
        moderators enter as they are (a linear term); no missing values.
    categorical : set of str, optional
        Names of the moderators that are factors. Each gets treatment (dummy) coding
        with the first level in sorted order (:func:`factor_levels`) as reference:
        one 0/1 column per other level, named ``<moderator><level>``, as R's default
        ``contr.treatment`` (e.g. ``allocrandom``, ``allocsystematic`` for
        ``mods = ~ alloc`` in metafor).
    intercept : bool
        Put an intercept column named ``intrcpt`` (metafor's name) first.

    Returns
    -------
    X : ndarray, shape (k, p)
    names : list of str
        Column names.

    Raises
    ------
    ValueError
        Empty or ragged input, unknown names in ``categorical``, a non-numeric or
        boolean numeric moderator, missing values, a factor with a single level,
        duplicate column names.
    """
    if not isinstance(moderators, Mapping) or not moderators:
        raise ValueError("moderators must be a non-empty dict of name -> values")
    categorical = set(categorical or ())
    unknown = sorted(categorical - set(moderators))
    if unknown:
        raise ValueError(f"categorical names not among the moderators: {unknown}")
    k = None
    cols, names = [], []
    for name, values in moderators.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"moderator names must be non-empty strings, got {name!r}")
        n = len(values)
        if k is None:
            k = n
        elif n != k:
            raise ValueError(f"moderator {name!r} has {n} values, expected {k}")
        if name in categorical:
            labels, levels = factor_levels(values, name=f"moderator {name!r}")
            if len(levels) < 2:
                raise ValueError(
                    f"categorical moderator {name!r} has a single level ({levels[0]!r}): "
                    "it cannot be coded as contrasts")
            for lev in levels[1:]:
                cols.append((labels == lev).astype(float))
                names.append(f"{name}{lev}")
        else:
            arr = np.asarray(values)
            if arr.dtype == bool:
                raise ValueError(
                    f"moderator {name!r} is boolean: give it as 0/1 numbers or declare "
                    "it categorical")
            try:
                arr = arr.astype(float)
            except (TypeError, ValueError):
                raise ValueError(
                    f"moderator {name!r} is not numeric: declare it in `categorical`"
                ) from None
            if arr.ndim != 1:
                raise ValueError(f"moderator {name!r} must be one-dimensional")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"moderator {name!r} has missing or infinite values")
            cols.append(arr)
            names.append(name)
    if k == 0:
        raise ValueError("moderators have no values: at least one study is needed")
    if intercept:
        cols.insert(0, np.ones(k))
        names.insert(0, INTERCEPT)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate design-matrix column names: {names}")
    return np.column_stack(cols), names


# --------------------------------------------------------------------------------------
# result objects
# --------------------------------------------------------------------------------------

def _f(x):
    """A plain float, or None for NaN/inf/None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Coefficient:
    """One model coefficient with its test and confidence interval.

    ``stat`` is a z statistic (``ci="z"``) or a t statistic with ``k - p`` df; values
    that do not exist (HKSJ without residual df, a zero HKSJ scale factor) are None.
    """

    name: str
    estimate: float
    se: float | None
    stat: float | None
    p_value: float | None
    ci_lower: float | None
    ci_upper: float | None

    def to_dict(self):
        """``{name, estimate, se, stat, p_value, ci_lower, ci_upper}``."""
        return {"name": self.name, "estimate": self.estimate, "se": self.se,
                "stat": self.stat, "p_value": self.p_value,
                "ci_lower": self.ci_lower, "ci_upper": self.ci_upper}


@dataclass(frozen=True)
class MetaRegResult:
    """Result of a meta-regression (metafor ``rma.uni`` with ``mods``).

    Attributes
    ----------
    coefficients : tuple of Coefficient
        In design-matrix column order (metafor ``b, se, zval/tval, pval, ci.lb,
        ci.ub``).
    vcov : tuple of tuple of float
        Covariance matrix of the coefficients (metafor ``vcov(res)``), scaled by the
        HKSJ factor under ``hksj``/``hksj_adhoc``.
    k, p : int
        Studies and coefficients.
    method, ci : str
        tau² estimator and test type (``z``, ``hksj``, ``hksj_adhoc``).
    level : float
    stat_dist : {"normal", "t"}
    df : int or None
        Residual df ``k - p`` of the t tests (None under ``z``).
    tested : tuple of str
        Coefficients in the omnibus test: all but the intercept, or the intercept
        alone in an intercept-only model, or all of them without an intercept
        (metafor's default ``btt``).
    qm, qm_df, qm_df2, qm_p, qm_dist : float, int, int or None, float, str
        Omnibus (Wald) test of the ``tested`` coefficients: ``chi2`` with ``qm_df``
        df under ``z``; under HKSJ ``F`` = Wald / m with (``qm_df``, ``qm_df2`` =
        k - p) df (metafor ``QM, QMdf, QMp``).
    qe, qe_df, qe_p : float, int, float
        Test for residual heterogeneity: ``sum(w_i r_i²)`` with common-effect weights
        ``1/v_i`` and residuals from the common-effect fit with the same moderators,
        chi² with k - p df (metafor ``QE, QEp``).
    tau2 : float
        Residual heterogeneity (0 for ``FE``).
    i2, h2 : float or None
        Residual I² (%) and H² as metafor defines them with moderators:
        ``I² = 100 tau² / (vt + tau²)``, ``H² = tau²/vt + 1`` with the typical
        within-study variance ``vt = (k - p) / tr(P)``, ``P`` the common-effect
        projection; for ``FE``: ``I² = max(0, 100 (QE - (k-p)) / QE)``,
        ``H² = QE / (k - p)``.
    r2 : float or None
        Pseudo-R² in percent. Random-effects methods:
        ``max(0, 100 (tau²_RE - tau²) / tau²_RE)`` with tau²_RE (``tau2_null``) from
        the intercept-only model with the same estimator; 0 when tau²_RE is 0 (as
        metafor). ``FE``: metafor's ``max(0, 100 * adjusted R²)`` of the weighted
        least-squares fit, ``1 - (QE/(k-p)) / (Q_0/(k-1))``. None without an
        intercept or for the intercept-only model.
    tau2_null : float or None
    vt : float or None
        metafor's ``vt``.
    knha_scale : float or None
        The HKSJ scale factor ``s²`` (metafor ``s2w``; at least 1 for ``hksj_adhoc``).
    converged : bool
        False when the iterative estimator hit its limit (tau² then from DL).
    iterations : int
    warnings : tuple of str
    """

    coefficients: tuple
    vcov: tuple
    k: int
    p: int
    method: str
    ci: str
    level: float
    stat_dist: str
    df: int | None
    tested: tuple
    qm: float | None
    qm_df: int
    qm_df2: int | None
    qm_p: float | None
    qm_dist: str
    qe: float
    qe_df: int
    qe_p: float | None
    tau2: float
    i2: float | None
    h2: float | None
    r2: float | None
    tau2_null: float | None
    vt: float | None
    knha_scale: float | None
    converged: bool
    iterations: int
    warnings: tuple = field(default_factory=tuple)

    @property
    def names(self):
        return tuple(c.name for c in self.coefficients)

    def coefficient(self, name):
        """The :class:`Coefficient` called ``name``."""
        for c in self.coefficients:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self):
        """The result as plain Python types (None where a number does not exist)."""
        return {
            "k": self.k,
            "p": self.p,
            "method": self.method,
            "ci_method": self.ci,
            "level": self.level,
            "stat_dist": self.stat_dist,
            "df": self.df,
            "coefficients": [c.to_dict() for c in self.coefficients],
            "vcov": [list(row) for row in self.vcov],
            "tested": list(self.tested),
            "qm": self.qm,
            "qm_df": self.qm_df,
            "qm_df2": self.qm_df2,
            "qm_p": self.qm_p,
            "qm_dist": self.qm_dist,
            "qe": self.qe,
            "qe_df": self.qe_df,
            "qe_p": self.qe_p,
            "tau2": self.tau2,
            "tau": math.sqrt(self.tau2),
            "i2": self.i2,
            "h2": self.h2,
            "r2": self.r2,
            "tau2_null": self.tau2_null,
            "vt": self.vt,
            "knha_scale": self.knha_scale,
            "converged": self.converged,
            "iterations": self.iterations,
            "warnings": list(self.warnings),
        }

    def to_records(self):
        """One row per coefficient: ``name, estimate, se, stat, p_value, ci_lower,
        ci_upper, stat_dist, df, method, ci_method, level``."""
        common = {"stat_dist": self.stat_dist, "df": self.df, "method": self.method,
                  "ci_method": self.ci, "level": self.level}
        return [{**c.to_dict(), **common} for c in self.coefficients]


# --------------------------------------------------------------------------------------
# the fit
# --------------------------------------------------------------------------------------

def _vector(name, a):
    a = np.atleast_1d(np.asarray(a, dtype=float))
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if a.size == 0:
        raise ValueError(f"{name} is empty: at least one study is needed")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must contain finite numbers only")
    return a


def _check_design(X, k, names, intercept_index):
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D design matrix (k, p), got {X.ndim} dimension(s)")
    if X.shape[0] != k:
        raise ValueError(f"X has {X.shape[0]} rows but there are {k} studies")
    p = X.shape[1]
    if p < 1:
        raise ValueError("X has no columns")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must contain finite numbers only")
    if names is None:
        names = [f"x{j}" for j in range(p)]
        if intercept_index is not None and 0 <= intercept_index < p:
            names[intercept_index] = INTERCEPT
    names = [str(n) for n in names]
    if len(names) != p:
        raise ValueError(f"names has {len(names)} entries for {p} columns of X")
    if len(set(names)) != p:
        raise ValueError(f"names must be unique, got {names}")
    if intercept_index is not None:
        if (isinstance(intercept_index, (bool, np.bool_))
                or not isinstance(intercept_index, (int, np.integer))
                or not 0 <= intercept_index < p):
            raise ValueError(f"intercept_index must be a column index of X or None, "
                             f"got {intercept_index!r}")
        if not np.all(X[:, intercept_index] == 1.0):
            raise ValueError(f"column {intercept_index} of X ({names[intercept_index]!r}) "
                             "is not an intercept (all ones)")
    if k < p:
        raise ValueError(f"k = {k} studies cannot identify p = {p} coefficients")
    rank = np.linalg.matrix_rank(X)
    if rank < p:
        raise ValueError(
            f"X has rank {rank} < {p} columns: a moderator is a linear combination of "
            "the others (metafor would drop it with 'Redundant predictors dropped'); "
            "remove it")
    return X, names


def _tau2_with_fallback(yi, vi, method, X):
    """tau² for one model; DL (with the same X) if an iterative estimator fails."""
    est = estimate_tau2(yi, vi, method, X=X)
    tau2 = float(est.tau2[0])
    converged = bool(est.converged[0])
    notes = []
    if not converged:
        tau2 = float(estimate_tau2(yi, vi, "DL", X=X).tau2[0])
        notes.append(f"{method} did not converge; tau² taken from the DerSimonian-Laird "
                     "estimator instead (fallback)")
    return tau2, converged, int(est.iterations[0]), notes


def _wls(y, X, w):
    """:func:`estimators.wls_fit` for a single model."""
    return wls_fit(y[None, :], X[None, :, :], w[None, :])


def _omnibus(beta, vb, btt):
    """Wald statistic ``b' V^-1 b`` of the coefficients ``btt``; None if V is singular."""
    b = beta[btt]
    V = vb[np.ix_(btt, btt)]
    try:
        return float(b @ np.linalg.solve(V, b))
    except np.linalg.LinAlgError:
        return None


def _tested(p, intercept_index):
    if intercept_index is None or p == 1:
        return list(range(p))
    return [j for j in range(p) if j != intercept_index]


def meta_regression(yi, vi, X, *, method="REML", ci="hksj", level=0.95, names=None,
                    intercept_index=0):
    """Mixed-effects meta-regression (metafor ``rma(yi, vi, mods = ...)``).

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effects on the model scale and their sampling variances (> 0).
    X : array_like, shape (k, p)
        Design matrix including the intercept column, e.g. from
        :func:`design_matrix`. Must have full column rank.
    method : {"FE", "DL", "HE", "SJ", "ML", "REML", "PM"}
        Estimator of the residual tau² (``FE``: common-effect meta-regression).
    ci : {"z", "hksj", "hksj_adhoc"}
        ``z``: Wald tests and intervals with normal quantiles, chi² omnibus test.
        ``hksj``: the covariance matrix is scaled by
        ``s² = sum w_i (y_i - x_i'b)² / (k - p)`` with the random-effects weights,
        t tests with k - p df and an F test of the moderators (metafor
        ``test="knha"``); ``hksj_adhoc``: ``s²`` raised to 1 when below 1 (metafor
        ``test="adhoc"``).
    level : float
        Coverage of the confidence intervals.
    names : sequence of str, optional
        Column names (default ``intrcpt`` for the intercept, ``x<j>`` otherwise).
    intercept_index : int or None
        Column of ``X`` that is the intercept (all ones), or None for a model without
        an intercept. Determines which coefficients the omnibus test covers and
        whether R² is computed.

    Returns
    -------
    MetaRegResult

    Raises
    ------
    ValueError
        Invalid options or inputs; ``k < p`` or a rank-deficient ``X``; ``k = p``
        with a random-effects method (metafor: "Number of parameters to be estimated
        is larger than the number of observations").

    Notes
    -----
    Edge cases, each with a defined result:

    * ``k = p`` (``FE`` only): the model reproduces the data; ``qe = 0`` with 0 df,
      ``qe_p``, ``i2``, ``h2`` and ``r2`` are None (metafor prints the conventions
      QEp = 1, I² = 0, H² = 1); under HKSJ there is no residual df, so standard
      errors, tests, intervals and the omnibus test are None.
    * HKSJ with a residual sum of squares of (numerically) 0: metafor sets the
      scale factor to 0; here too, so SEs are 0, intervals collapse to the estimate
      and the tests (infinite statistics) are None. ``hksj_adhoc`` raises it to 1.
    * tau² of the intercept-only model equal to 0: R² is 0 (metafor's convention).
    * ``FE`` with ``hksj``: computed as metafor does, with a warning that the
      adjustment is not meant for a common-effect model.
    * Models without an intercept: ``qe`` is the weighted residual sum of squares
      ``y'Py``. metafor 3.8-1 centres ``y`` first, ``(y - ybar)'P(y - ybar)``,
      which is the same only when the model has an intercept.

    References
    ----------
    See the module docstring. metafor equivalent:
    ``rma(yi, vi, mods = ~ ..., method = method, test = "z" | "knha" | "adhoc")``.

    Examples
    --------
    BCG vaccine trials, log risk ratio on absolute latitude (R:
    ``rma(yi, vi, mods = ~ ablat, data = dat, test = "knha")``):

    >>> import numpy as np
    >>> yi = [-0.889, -1.585, -1.348, -1.442, -0.218, -0.786, -1.621, 0.012, -0.469,
    ...       -1.371, -0.339, 0.446, -0.017]
    >>> vi = [0.326, 0.195, 0.415, 0.020, 0.051, 0.007, 0.223, 0.004, 0.056, 0.073,
    ...       0.012, 0.533, 0.071]
    >>> ablat = [44, 55, 42, 52, 13, 44, 19, 13, 27, 42, 18, 33, 33]
    >>> X, names = design_matrix({"ablat": ablat})
    >>> res = meta_regression(yi, vi, X, names=names)
    >>> round(res.coefficient("ablat").estimate, 3)
    -0.029
    """
    if method not in TAU2_METHODS:
        raise ValueError(f"method must be one of {TAU2_METHODS}, got {method!r}")
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {CI_METHODS}, got {ci!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    yi = _vector("yi", yi)
    vi = _vector("vi", vi)
    if yi.shape != vi.shape:
        raise ValueError("yi and vi must have the same length")
    if np.any(vi <= 0):
        raise ValueError("sampling variances must be positive")
    k = yi.size
    X, names = _check_design(X, k, names, intercept_index)
    p = X.shape[1]
    df_res = k - p
    if df_res == 0 and method != "FE":
        raise ValueError(
            f"k = p = {k}: tau² cannot be estimated without residual degrees of freedom "
            "(metafor needs k > p); use fewer moderators or method='FE'")
    warnings = []
    alpha = 1.0 - level

    # residual heterogeneity and the random-effects (mixed-effects) fit
    tau2, converged, iterations, notes = _tau2_with_fallback(yi, vi, method, X)
    warnings += notes
    re = _wls(yi, X, 1.0 / (vi + tau2))
    beta = re.beta[0]
    cov = re.cov_unscaled[0]

    t_based = ci != "z"
    if ci in ("hksj", "hksj_adhoc") and method == "FE":
        warnings.append("the Knapp-Hartung adjustment is not meant to be used with a "
                        "common-effect (FE) model")
    knha_scale = None
    degenerate = False  # no valid tests: HKSJ with s² = 0 or without residual df
    if not t_based or ci == "t":
        # z: normal quantiles; t: the same SEs with t(k - p) / F quantiles (metafor
        # test = "t"), no Knapp-Hartung scaling
        s2 = 1.0
        if ci == "t" and df_res == 0:
            degenerate = True
            warnings.append("k = p: no residual degrees of freedom for t-based tests")
    elif df_res == 0:
        s2 = math.nan
        degenerate = True
        warnings.append("k = p: no residual degrees of freedom for the HKSJ adjustment; "
                        "standard errors, tests and intervals are not available")
    else:
        rss = float(re.q[0])
        s2 = 0.0 if rss <= _EPS else rss / df_res
        if ci == "hksj_adhoc":
            s2 = max(s2, 1.0)
        knha_scale = s2
        if s2 == 0.0:
            degenerate = True
            warnings.append("the HKSJ scale factor is 0 (the model fits the data "
                            "exactly): standard errors are 0 and tests are undefined")
    vb = s2 * cov
    se = np.sqrt(np.diag(vb))
    if t_based:
        crit = stats.t.ppf(1 - alpha / 2, df_res) if df_res > 0 else math.nan
    else:
        crit = stats.norm.ppf(1 - alpha / 2)
    coefs = []
    for j, name in enumerate(names):
        if degenerate:
            stat = pval = None
        else:
            stat = beta[j] / se[j]
            pval = (2.0 * stats.t.sf(abs(stat), df_res) if t_based
                    else 2.0 * stats.norm.sf(abs(stat)))
        coefs.append(Coefficient(
            name=name, estimate=float(beta[j]), se=_f(se[j]), stat=_f(stat),
            p_value=_f(pval), ci_lower=_f(beta[j] - crit * se[j]),
            ci_upper=_f(beta[j] + crit * se[j])))

    # omnibus test of the moderators
    btt = _tested(p, intercept_index)
    m = len(btt)
    qm = None if degenerate else _omnibus(beta, vb, btt)
    if t_based:
        qm_dist, qm_df2 = "F", df_res
        if qm is not None:
            qm = qm / m
        qm_p = None if qm is None else float(stats.f.sf(qm, m, df_res))
    else:
        qm_dist, qm_df2 = "chi2", None
        qm_p = None if qm is None else float(stats.chi2.sf(qm, m))

    # residual heterogeneity: common-effect fit with the same moderators
    fe = _wls(yi, X, 1.0 / vi)
    if df_res > 0:
        qe = max(0.0, float(fe.q[0]))
        qe_p = float(stats.chi2.sf(qe, df_res))
        vt = df_res / float(fe.tr_p[0])
        if method == "FE":
            i2 = max(0.0, 100.0 * (qe - df_res) / qe) if qe > 0 else 0.0
            h2 = qe / df_res
        else:
            i2 = 100.0 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1.0
    else:
        qe, qe_p, vt, i2, h2 = 0.0, None, None, None, None
        warnings.append("k = p: the model reproduces the data; no test of residual "
                        "heterogeneity, I², H² or R²")

    # pseudo-R²
    r2 = tau2_null = None
    if intercept_index is not None and p > 1 and df_res > 0:
        if method == "FE":
            q0 = float(_wls(yi, np.ones((k, 1)), 1.0 / vi).q[0])
            r2 = 0.0 if q0 == 0 else max(
                0.0, 100.0 * (1.0 - (qe / df_res) / (q0 / (k - 1))))
        else:
            tau2_null, _, _, notes = _tau2_with_fallback(yi, vi, method, None)
            warnings += [f"intercept-only model for R²: {n}" for n in notes]
            if tau2_null == 0.0:
                r2 = 0.0
                warnings.append("tau² of the intercept-only model is 0, so R² is set "
                                "to 0 (metafor's convention)")
            else:
                r2 = max(0.0, 100.0 * (tau2_null - tau2) / tau2_null)

    vcov = tuple(tuple(_f(x) for x in row) for row in vb)
    return MetaRegResult(
        coefficients=tuple(coefs), vcov=vcov, k=k, p=p, method=method, ci=ci,
        level=float(level), stat_dist="t" if t_based else "normal",
        df=df_res if t_based else None, tested=tuple(names[j] for j in btt),
        qm=_f(qm), qm_df=m, qm_df2=qm_df2, qm_p=_f(qm_p), qm_dist=qm_dist,
        qe=qe, qe_df=df_res, qe_p=_f(qe_p), tau2=tau2, i2=_f(i2), h2=_f(h2),
        r2=_f(r2), tau2_null=_f(tau2_null), vt=_f(vt), knha_scale=_f(knha_scale),
        converged=converged, iterations=iterations, warnings=tuple(warnings),
    )
