"""Batched engine: many meta-analyses in one call, vectorised across analyses.

:func:`pool_generic_batch` and :func:`pool_proportions_batch` take 2-D arrays (analyses x
studies, NaN where an analysis has fewer studies) and return a dict of 1-D arrays, one
entry per analysis, with the numeric keys of :meth:`metapool.pooling.PoolResult.to_dict`
(``k, estimate, se, ci_lower, ..., q_p``), the back-transformed ``natural_estimate``,
``natural_ci_lower``, ..., ``natural_pi_upper``, and per-analysis ``status`` (array of
str) and ``warnings`` (list of tuples of str). A number that the single-analysis
function reports as ``None`` is NaN here.

The inverse-variance models run through :func:`metapool.pooling.fit_batch`, the same code
that :func:`metapool.pool_generic` and :func:`metapool.pool_proportions` run as a batch of
one, so the batched and looped results agree to rounding. The binomial-normal GLMM is
fitted by :func:`fit_glmm_batch`: a damped Newton iteration on ``(mu, tau)`` for every
analysis (and both starting points) in lockstep, with the analytic gradient and Hessian
of the adaptive Gauss-Hermite likelihood of :mod:`metapool.glmm`, and the boundary rules
and convergence checks of :func:`metapool.glmm.fit_glmm`. Analyses whose likelihood
cannot be maximised get NaN with a ``status`` and a warning that say why, never a
doubtful number.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from . import glmm as _glmm
from .effects import PROPORTION_MEASURES, proportion_effects
from .estimators import estimate_tau2
from .pooling import MIN_K_PI, back_transform, batch_labels, fit_batch

__all__ = [
    "GLMM_KEYS",
    "RESULT_KEYS",
    "fit_glmm_batch",
    "pool_generic_batch",
    "pool_proportions_batch",
]

#: Numeric keys of every batched result, in the order of ``PoolResult.to_dict``.
RESULT_KEYS = (
    "k", "estimate", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "stat",
    "p_value", "tau2", "tau2_lower", "tau2_upper", "tau", "i2", "i2_lower", "i2_upper",
    "h2", "h2_lower", "h2_upper", "q", "q_df", "q_p",
)
#: Extra numeric keys of a GLMM result (those of ``GLMMResult.to_dict``).
GLMM_KEYS = ("q_lrt", "q_lrt_p", "loglik", "loglik_conditional", "vt", "converged",
             "iterations")
#: Keys back-transformed to the natural scale (``natural_<key>``).
NATURAL_KEYS = ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")

_SINGLE = "not pooled: single study"
_K1 = "k = 1: the single study is reported on its own, not pooled"
_K2 = "k = 2: tau² rests on two studies and no prediction interval is given"
_HKSJ = ("the Hartung-Knapp-Sidik-Jonkman CI is narrower than the Wald CI "
         "(Q < k - 1)")


# --------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------


def _as_2d(name, a):
    """A float 2-D array (analyses x studies); NaN marks an absent study."""
    try:
        a = np.asarray(a, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers") from None
    if a.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (analyses x studies, NaN-padded), got {a.ndim}-D; "
            "wrap a single analysis as [values]")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(
            f"{name} is empty: at least one analysis with one study is needed")
    if np.isinf(a).any():
        raise ValueError(f"{name} must contain finite numbers or NaN (absent study) only")
    return a


def _paired(names, a, b):
    """Validate two 2-D arrays of one batch; return them and the mask of present cells."""
    a = _as_2d(names[0], a)
    b = _as_2d(names[1], b)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got "
                         f"{a.shape} and {b.shape}")
    mask = ~np.isnan(a)
    if not np.array_equal(mask, ~np.isnan(b)):
        rows = np.flatnonzero((mask != ~np.isnan(b)).any(axis=1))
        raise ValueError(f"{names[0]} and {names[1]} must be NaN in the same cells "
                         f"(rows {rows[:10].tolist()})")
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
        raise ValueError(f"analyses without any study (rows {empty[:10].tolist()}): at "
                         "least one study is needed per analysis")
    return a, b, mask


def _counts(events, total):
    x, n, mask = _paired(("events", "total"), events, total)
    xm, nm = x[mask], n[mask]
    if np.any(xm != np.round(xm)) or np.any(nm != np.round(nm)):
        raise ValueError("events and total must be whole numbers")
    if np.any(nm < 1):
        raise ValueError("total must be at least 1 in every study")
    if np.any(xm < 0) or np.any(xm > nm):
        raise ValueError("events must lie between 0 and total in every study")
    return x, n, mask


# --------------------------------------------------------------------------------------
# inverse-variance models
# --------------------------------------------------------------------------------------


def _fit_iv(y, v, *, method, ci, pi, level, i2, tau2_ci):
    """:func:`fit_batch`, the Q-profile CI of tau² computed only with ``tau2_ci``."""
    return fit_batch(y, v, method=method, ci=ci, pi=pi, level=level, i2=i2,
                     tau2_ci=tau2_ci)


def _iv_labels(fit, method):
    """Status and warnings per analysis: :func:`metapool.pooling.batch_labels`."""
    return batch_labels(fit, method)


def _assemble(fit, measure, n_harmonic=None):
    """The result dict: model-scale numbers, natural-scale intervals."""
    out = {key: np.asarray(fit[key]) for key in RESULT_KEYS if key != "tau"}
    out["k"] = out["k"].astype(int)
    out["q_df"] = out["q_df"].astype(int)
    out["tau"] = np.sqrt(out["tau2"])
    out = {key: out[key] for key in RESULT_KEYS}
    with np.errstate(invalid="ignore", over="ignore"):
        for key in NATURAL_KEYS:
            out[f"natural_{key}"] = np.asarray(
                back_transform(out[key], measure, n_harmonic), dtype=float)
    return out


def pool_generic_batch(yi, sei, *, method="REML", ci="hksj", pi="t", level=0.95,
                       measure="logHR", i2="tau2", tau2_ci=True):
    """Random-effects meta-analyses of many sets of effects with known SEs at once.

    The batched :func:`metapool.pool_generic`: row ``i`` of the result equals
    ``pool_generic(yi[i, :k_i], sei[i, :k_i], ...).to_dict("model")`` (``None`` as NaN).

    Parameters
    ----------
    yi, sei : array_like, shape (n_analyses, max_k)
        Effects on the model scale and their standard errors (> 0), NaN where an
        analysis has fewer studies (in the same cells of both arrays; the studies need
        not be left-aligned). Every analysis needs at least one study.
    method, ci, pi, level, i2
        As in :func:`metapool.pooling.fit_batch`.
    measure : {"logHR", "log", "none"}
        What ``yi`` holds; fixes the natural scale.
    tau2_ci : bool
        Report the Q-profile CI of tau² (and of I², H²); NaN when False.

    Returns
    -------
    dict
        ``RESULT_KEYS`` and ``natural_estimate``, ``natural_ci_lower``,
        ``natural_ci_upper``, ``natural_pi_lower``, ``natural_pi_upper``: ndarray of
        shape (n_analyses,) (``k`` and ``q_df`` int); ``status``: ndarray of str;
        ``warnings``: list of tuples of str.

    Examples
    --------
    >>> import numpy as np
    >>> yi = np.array([[-0.6, -0.08, -0.24, 0.17], [0.1, 0.3, np.nan, np.nan]])
    >>> sei = np.array([[0.35, 0.08, 0.15, 0.31], [0.2, 0.25, np.nan, np.nan]])
    >>> res = pool_generic_batch(yi, sei)
    >>> res["k"].tolist(), res["status"].tolist()
    ([4, 2], ['pooled', 'pooled'])
    """
    y, s, _ = _paired(("yi", "sei"), yi, sei)
    if np.any(s <= 0):
        raise ValueError("standard errors must be positive")
    if measure not in ("logHR", "log", "none"):
        raise ValueError("measure must be 'logHR', 'log' or 'none'")
    _check_bool("tau2_ci", tau2_ci)
    fit = _fit_iv(y, s**2, method=method, ci=ci, pi=pi, level=level, i2=i2,
                  tau2_ci=tau2_ci)
    out = _assemble(fit, measure)
    out["status"], out["warnings"] = _iv_labels(fit, method)
    return out


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        # an invalid option value, like every other option here
        raise ValueError(f"{name} must be True or False, got {value!r}")  # noqa: TRY004


def _proportion_effects_batch(x, n, mask, *, measure, continuity_correction):
    """:func:`metapool.effects.proportion_effects` on a NaN-padded batch.

    Returns ``yi, vi`` (NaN where absent) and ``cc_added`` (False where absent).
    """
    eff = proportion_effects(np.where(mask, x, 0.0), np.where(mask, n, 1.0),
                             measure=measure, continuity_correction=continuity_correction)
    return (np.where(mask, eff.yi, np.nan), np.where(mask, eff.vi, np.nan),
            eff.cc_added & mask)


def pool_proportions_batch(events, total, *, measure="PLO", method="REML", ci="hksj",
                           pi="t", level=0.95, continuity_correction=0.5, i2="tau2",
                           tau2_ci=True, n_agq=7, maxiter=200):
    """Random-effects meta-analyses of many sets of single-arm proportions at once.

    The batched :func:`metapool.pool_proportions`: row ``i`` of the result equals
    ``pool_proportions(events[i, :k_i], total[i, :k_i], ...).to_dict("model")``
    (``None`` as NaN); for ``method="GLMM"``, :func:`metapool.glmm.fit_glmm` (see
    :func:`fit_glmm_batch`).

    Parameters
    ----------
    events, total : array_like, shape (n_analyses, max_k)
        Whole numbers, ``0 <= events <= total``, ``total >= 1``; NaN in the same cells
        where an analysis has fewer studies.
    measure : {"PLO", "PFT", "PAS", "PR"}
        Transformation (``PLO`` only for the GLMM). PFT is back-transformed with each
        analysis' harmonic mean sample size.
    method : {"FE", "DL", "HE", "SJ", "ML", "REML", "PM", "GLMM"}
    ci, pi, level, continuity_correction, i2
        As in :func:`metapool.pool_proportions` (the GLMM takes ``ci`` "z" or "t", ``pi``
        "z", "t" or "none", ``i2="tau2"``).
    tau2_ci : bool
        Q-profile CI of tau² for the inverse-variance models (the GLMM has none).
    n_agq, maxiter : int
        GLMM only: quadrature points and Newton iterations (see
        :func:`metapool.glmm.fit_glmm`).

    Returns
    -------
    dict
        As :func:`pool_generic_batch`, plus ``cc_added`` (bool, analyses x studies) for
        the inverse-variance models and the ``GLMM_KEYS`` for the GLMM; natural scale
        is the proportion.
    """
    x, n, mask = _counts(events, total)
    _check_bool("tau2_ci", tau2_ci)
    if method == "GLMM":
        if measure != "PLO":
            raise ValueError("the GLMM models proportions on the logit scale: use "
                             "measure='PLO'")
        if ci not in ("z", "t"):
            raise ValueError(f"ci={ci!r} is not defined for the GLMM; use 'z' or 't' "
                             "(metafor test='t')")
        if i2 != "tau2":
            raise ValueError("the GLMM reports I² from tau² only")
        return fit_glmm_batch(x, n, level=level, ci=ci, pi=pi, n_agq=n_agq,
                              maxiter=maxiter)
    if measure not in PROPORTION_MEASURES:
        raise ValueError(f"measure must be one of {PROPORTION_MEASURES}, got {measure!r}")
    yi, vi, cc_added = _proportion_effects_batch(
        x, n, mask, measure=measure, continuity_correction=continuity_correction)
    fit = _fit_iv(yi, vi, method=method, ci=ci, pi=pi, level=level, i2=i2,
                  tau2_ci=tau2_ci)
    n_harmonic = None
    if measure == "PFT":
        n_harmonic = mask.sum(axis=1) / np.where(mask, 1.0 / np.where(mask, n, 1.0),
                                                 0.0).sum(axis=1)
    out = _assemble(fit, measure, n_harmonic)
    out["status"], out["warnings"] = _iv_labels(fit, method)
    out["cc_added"] = cc_added
    return out


# --------------------------------------------------------------------------------------
# binomial-normal GLMM
# --------------------------------------------------------------------------------------


def _mode_scale_derivatives(x, n, t, u0, p0, q0):
    """First and second derivatives in ``(mu, tau)`` of the mode ``u0`` and ``log sd``.

    Per study (arrays ``(m, k)``; ``t`` is tau as ``(m, 1)``); see
    :func:`aghq_derivatives` for the formulas. Returns ``du0_m, du0_t, d2u0_mm,
    d2u0_mt, d2u0_tt, dls_m, dls_t, d2ls_mm, d2ls_mt, d2ls_tt``.
    """
    w0 = n * p0 * q0
    dd = 1.0 + t * t * w0
    r0 = _glmm._residual(x, n, p0, q0)
    dw0 = w0 * (q0 - p0)
    d2w0 = w0 * ((q0 - p0) ** 2 - 2.0 * p0 * q0)
    tt = t * t
    # first derivatives of the mode and of eta0 = mu + tau u0 (s), D and log sd
    du0_m = -t * w0 / dd
    du0_t = (r0 - t * w0 * u0) / dd
    s_m = 1.0 + t * du0_m
    s_t = u0 + t * du0_t
    dD_m = tt * dw0 * s_m
    dD_t = 2.0 * t * w0 + tt * dw0 * s_t
    # second derivatives
    d2u0_mm = -(t * dw0 * s_m * s_m) / dd
    d2u0_mt = -(w0 * s_m + t * dw0 * s_m * s_t + t * w0 * du0_m) / dd
    d2u0_tt = -(2.0 * w0 * s_t + t * dw0 * s_t * s_t + 2.0 * t * w0 * du0_t) / dd
    ds_mm = t * d2u0_mm
    ds_mt = du0_m + t * d2u0_mt
    ds_tt = 2.0 * du0_t + t * d2u0_tt
    d2D_mm = tt * (d2w0 * s_m * s_m + dw0 * ds_mm)
    d2D_mt = 2.0 * t * dw0 * s_m + tt * (d2w0 * s_m * s_t + dw0 * ds_mt)
    d2D_tt = 2.0 * w0 + 4.0 * t * dw0 * s_t + tt * (d2w0 * s_t * s_t + dw0 * ds_tt)
    return (du0_m, du0_t, d2u0_mm, d2u0_mt, d2u0_tt,
            -0.5 * dD_m / dd, -0.5 * dD_t / dd,
            -0.5 * (d2D_mm / dd - dD_m * dD_m / dd**2),
            -0.5 * (d2D_mt / dd - dD_m * dD_t / dd**2),
            -0.5 * (d2D_tt / dd - dD_t * dD_t / dd**2))


def aghq_derivatives(x, n, mask, mu, tau, n_agq=7):
    """AGHQ log-likelihood per analysis with its analytic gradient and Hessian.

    The log-likelihood and gradient are those of :func:`metapool.glmm.marginal_loglik`
    (``glmm._aghq``); the Hessian differentiates the same approximation twice,
    through the conditional mode ``u0(mu, tau)`` (implicit function theorem on
    ``tau r(mu + tau u0) = u0``, ``r = x - n p``) and through the quadrature scale
    ``sd = (1 + tau² W0)^-1/2``, ``W0 = n p0 (1 - p0)``. With ``theta = (mu, tau)``,
    ``s = d eta0 / d theta``, ``D = 1 + tau² W0`` and ``W' = W (q - p)``,
    ``W'' = W ((q - p)² - 2 p q)``::

        du0_a   = (delta_tau,a r0 - tau W0 (delta_mu,a + delta_tau,a u0)) / D
        d2u0_ab = -(W0 (delta_tau,a s_b + delta_tau,b s_a) + tau W0' s_a s_b
                    + tau W0 (delta_tau,a du0_b + delta_tau,b du0_a)) / D
        d2D_ab  = 2 delta_tau,a delta_tau,b W0 + 2 tau W0' (delta_tau,a s_b
                  + delta_tau,b s_a) + tau² (W0'' s_a s_b + W0' ds_a/db)

    and, per node ``j`` (``u_j = u0 + sd z_j``, ``eta_j = mu + tau u_j``, ``a_j`` the
    log integrand with weight ``pi_j = softmax(a)_j``)::

        d2L_ab = d2 log sd_ab + sum_j pi_j (d2a_j,ab + da_j,a da_j,b) - E_a E_b,
        d2a_j  = -W_j deta_j deta_j' + r_j d2eta_j - du_j du_j' - u_j d2u_j,

    ``E_a = sum_j pi_j da_j,a``. Checked against central differences of the analytic
    gradient (``tests/test_batch.py``).

    Parameters
    ----------
    x, n : ndarray, shape (m, max_k)
        Counts with harmless values (e.g. 0 and 1) where ``mask`` is False.
    mask : ndarray of bool, shape (m, max_k)
    mu, tau : ndarray, shape (m,)
    n_agq : int

    Returns
    -------
    ll : ndarray, shape (m,)
        NaN where the conditional modes did not converge.
    grad : ndarray, shape (m, 2)
    hess : ndarray, shape (m, 2, 2)
    """
    z, logw = _glmm._gh_rule(n_agq)
    u0, ok = _glmm._modes(x, n, mu, tau)
    t = tau[:, None]
    eta0 = mu[:, None] + t * u0
    p0 = special.expit(eta0)
    q0 = special.expit(-eta0)
    w0 = n * p0 * q0
    sd = 1.0 / np.sqrt(1.0 + t * t * w0)  # as glmm._aghq, so that ll is the same number
    lchoose = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)

    t3 = t[..., None]
    uj = u0[..., None] + sd[..., None] * z  # (m, k, J)
    etaj = mu[:, None, None] + t3 * uj
    xj = x[..., None]
    nj = n[..., None]
    loglik_j = -xj * np.logaddexp(0.0, -etaj) - (nj - xj) * np.logaddexp(0.0, etaj)
    a = loglik_j - 0.5 * uj**2 + 0.5 * z**2 + logw
    lse = special.logsumexp(a, axis=-1)
    per_study = np.where(mask, lchoose + np.log(sd) + lse, 0.0)
    ll = np.where(ok, per_study.sum(axis=1), np.nan)

    pij = np.exp(a - lse[..., None])
    pj = special.expit(etaj)
    qj = special.expit(-etaj)
    rj = _glmm._residual(xj, nj, pj, qj)
    wj = nj * pj * qj
    (du0_m, du0_t, d2u0_mm, d2u0_mt, d2u0_tt, dls_m, dls_t, d2ls_mm, d2ls_mt,
     d2ls_tt) = _mode_scale_derivatives(x, n, t, u0, p0, q0)
    dsd_m = sd * dls_m
    dsd_t = sd * dls_t
    d2sd_mm = sd * (d2ls_mm + dls_m * dls_m)
    d2sd_mt = sd * (d2ls_mt + dls_m * dls_t)
    d2sd_tt = sd * (d2ls_tt + dls_t * dls_t)

    def e(v):  # (m, k) -> (m, k, 1)
        return v[..., None]

    # per node
    duj_m = e(du0_m) + z * e(dsd_m)
    duj_t = e(du0_t) + z * e(dsd_t)
    detaj_m = 1.0 + t3 * duj_m
    detaj_t = uj + t3 * duj_t
    daj_m = rj * detaj_m - uj * duj_m
    daj_t = rj * detaj_t - uj * duj_t
    d2uj_mm = e(d2u0_mm) + z * e(d2sd_mm)
    d2uj_mt = e(d2u0_mt) + z * e(d2sd_mt)
    d2uj_tt = e(d2u0_tt) + z * e(d2sd_tt)
    d2etaj_mm = t3 * d2uj_mm
    d2etaj_mt = duj_m + t3 * d2uj_mt
    d2etaj_tt = 2.0 * duj_t + t3 * d2uj_tt
    d2aj_mm = -wj * detaj_m * detaj_m + rj * d2etaj_mm - duj_m * duj_m - uj * d2uj_mm
    d2aj_mt = -wj * detaj_m * detaj_t + rj * d2etaj_mt - duj_m * duj_t - uj * d2uj_mt
    d2aj_tt = -wj * detaj_t * detaj_t + rj * d2etaj_tt - duj_t * duj_t - uj * d2uj_tt
    e_m = (pij * daj_m).sum(axis=-1)
    e_t = (pij * daj_t).sum(axis=-1)
    h_mm = d2ls_mm + (pij * (d2aj_mm + daj_m * daj_m)).sum(axis=-1) - e_m * e_m
    h_mt = d2ls_mt + (pij * (d2aj_mt + daj_m * daj_t)).sum(axis=-1) - e_m * e_t
    h_tt = d2ls_tt + (pij * (d2aj_tt + daj_t * daj_t)).sum(axis=-1) - e_t * e_t

    def total(v):
        return np.where(mask, v, 0.0).sum(axis=1)

    g = np.stack([total(dls_m + e_m), total(dls_t + e_t)], axis=-1)
    hmt = total(h_mt)
    h = np.stack([np.stack([total(h_mm), hmt], axis=-1),
                  np.stack([hmt, total(h_tt)], axis=-1)], axis=-2)
    return ll, g, h


def maximise_glmm(x, n, mask, theta0, n_agq=7, maxiter=200):
    """Damped Newton ascent of the AGHQ log-likelihood, all rows in lockstep.

    The one Newton iteration of the GLMM (``glmm.fit_glmm`` is its batch of one): tau
    free on the real line, Levenberg-Marquardt damping, at most 2 logit units per
    coordinate and step, a row converged when ``-H`` is positive definite and the
    Newton decrement ``g' (-H)^-1 g`` is below ``glmm._DECREMENT_TOL``, failed when no
    damped step increases the likelihood or ``|mu|`` or ``|tau|`` exceeds
    ``glmm._BOUND``. It uses the analytic Hessian of :func:`aghq_derivatives` (one
    likelihood evaluation per row and iteration), and a step is accepted when the
    log-likelihood falls by no more than its rounding error,
    ``1e-14 (1 + |ll| + sum_i |log C(n_i, x_i)|)`` (each study's term is the difference
    of two numbers of the size of its log binomial coefficient): with large counts
    (n ~ 1e4) the gain of a Newton step near the maximum is below the rounding of a
    plain ``1e-14 (1 + |ll|)`` comparison (``tests/test_batch.py::LARGE``).

    The parameters are ``(mu, tau)`` with tau on the whole real line, not ``log tau``:
    the likelihood is even in tau, so the boundary tau = 0 is an ordinary interior
    point that ``log tau`` could only approach, and the boundary rules of ``fit_glmm``
    apply unchanged.

    Parameters
    ----------
    x, n, mask : ndarray, shape (rows, max_k)
    theta0 : ndarray, shape (rows, 2)
        Starting ``(mu, tau)`` per row.
    n_agq, maxiter : int

    Returns
    -------
    theta : ndarray, shape (rows, 2)
    loglik : ndarray, shape (rows,)
    hess : ndarray, shape (rows, 2, 2)
        Hessian at ``theta``.
    converged : ndarray of bool
    iterations : ndarray of int
    """
    theta = theta0.astype(float).copy()
    rows = theta.shape[0]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ll, g, hess = aghq_derivatives(x, n, mask, theta[:, 0], theta[:, 1], n_agq)
    # a step is accepted when the log-likelihood does not fall by more than its
    # rounding error: each study's term is the difference of two numbers of the size
    # of its log binomial coefficient, which cancel to a few units
    lchoose = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)
    slack = 1e-14 * (1.0 + np.abs(ll) + np.where(mask, np.abs(lchoose), 0.0).sum(axis=1))
    lam = np.zeros(rows)
    converged = np.zeros(rows, dtype=bool)
    failed = ~np.isfinite(ll)
    iterations = np.zeros(rows, dtype=int)
    eye = np.eye(2)
    for _ in range(maxiter):
        act = np.flatnonzero(~converged & ~failed)
        if act.size == 0:
            break
        iterations[act] += 1
        a = -hess[act]
        ga = g[act]
        emin = _glmm._eig_min_2x2(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            dec = np.einsum("ri,ri->r", ga, _glmm._solve_2x2(a, ga))
        done = (emin > 0) & (dec <= _glmm._DECREMENT_TOL)
        converged[act[done]] = True
        todo = ~done
        act, a, ga, emin = act[todo], a[todo], ga[todo], emin[todo]
        scale = np.maximum(np.abs(a).max(axis=(1, 2)), 1e-12)
        lam_act = np.maximum(lam[act], np.where(emin > 0, 0.0, -emin + 1e-6 * scale))
        accepted = np.zeros(act.size, dtype=bool)
        for _ in range(60):
            idx = np.flatnonzero(~accepted)
            if idx.size == 0:
                break
            rws = act[idx]
            step = _glmm._solve_2x2(a[idx] + lam_act[idx, None, None] * eye, ga[idx])
            big = np.abs(step).max(axis=1)
            cap = np.minimum(1.0, _glmm._MAX_STEP / np.maximum(big, 1e-300))
            step = step * cap[:, None]
            trial = theta[rws] + step
            # a non-finite trial (the damping overflowed) is rejected unevaluated: NaN
            # would keep the conditional modes of the whole batch iterating
            ll_new = np.full(idx.size, np.nan)
            g_new = np.full((idx.size, 2), np.nan)
            h_new = np.full((idx.size, 2, 2), np.nan)
            fin = np.flatnonzero(np.isfinite(trial).all(axis=1))
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                ll_new[fin], g_new[fin], h_new[fin] = aghq_derivatives(
                    x[rws[fin]], n[rws[fin]], mask[rws[fin]], trial[fin, 0],
                    trial[fin, 1], n_agq)
            ok = np.isfinite(ll_new) & (ll_new >= ll[rws] - slack[rws])
            good = idx[ok]
            theta[act[good]] = trial[ok]
            ll[act[good]] = ll_new[ok]
            g[act[good]] = g_new[ok]
            hess[act[good]] = h_new[ok]
            lam_act[good] = np.where(lam_act[good] > 1e-10 * scale[good],
                                     lam_act[good] / 10.0, 0.0)
            accepted[good] = True
            bad = idx[~ok]
            lam_act[bad] = np.maximum(10.0 * lam_act[bad], 1e-4 * scale[bad])
        lam[act] = lam_act
        failed[act[~accepted]] = True
        off = (np.abs(theta[:, 0]) > _glmm._BOUND) | (np.abs(theta[:, 1]) > _glmm._BOUND)
        failed |= off & ~converged
    return theta, ll, hess, converged & ~failed, iterations


def _glmm_homogeneity(x, n, mask):
    """metafor's QE.Wld and QE.LRT per analysis (``glmm._homogeneity_tests``)."""
    inner = mask & (x > 0) & (x < n)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(inner, x * (n - x) / n, 0.0)
        y = np.where(inner, np.log(x / (n - x)), 0.0)
        ybar = (w * y).sum(axis=1) / w.sum(axis=1)
        q_wld = np.where(inner.sum(axis=1) >= 2,
                         (w * (y - ybar[:, None]) ** 2).sum(axis=1), 0.0)
    xs = np.where(mask, x, 0.0)
    nx = np.where(mask, n - x, 0.0)
    pbar = (xs.sum(axis=1) / np.where(mask, n, 0.0).sum(axis=1))[:, None]
    terms = (special.xlogy(xs, xs / n) - special.xlogy(xs, pbar)
             + special.xlogy(nx, nx / n) - special.xlogy(nx, 1.0 - pbar))
    q_lrt = 2.0 * terms.sum(axis=1)
    return np.maximum(q_wld, 0.0), np.maximum(q_lrt, 0.0)


def _glmm_vt(x, n, mask):
    """metafor's typical within-study variance of the corrected logits (I², H²)."""
    _, vi, _ = _proportion_effects_batch(x, n, mask, measure="PLO",
                                        continuity_correction=0.5)
    w = np.where(mask, 1.0 / np.where(mask, vi, 1.0), 0.0)
    sw = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (mask.sum(axis=1) - 1) * sw / (sw * sw - (w * w).sum(axis=1))


def _check_glmm_options(level, ci, pi, n_agq, maxiter):
    if ci not in _glmm.GLMM_CI_METHODS:
        raise ValueError(f"ci must be one of {_glmm.GLMM_CI_METHODS}, got {ci!r}")
    if pi not in _glmm.GLMM_PI_METHODS:
        raise ValueError(f"pi must be one of {_glmm.GLMM_PI_METHODS}, got {pi!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) \
            or not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    _glmm._check_n_agq(n_agq)
    if not (_glmm._is_int(maxiter) and maxiter >= 1):
        raise ValueError(f"maxiter must be a positive integer, got {maxiter!r}")


def _no_maximum_reason(x, n, mask):
    """Why an analysis without a study strictly between 0 and n events is not pooled."""
    all0 = np.where(mask, x == 0, True).all(axis=1)
    alln = np.where(mask, x == n, True).all(axis=1)
    return np.where(
        all0, "every study has 0 events; the GLMM likelihood has no finite maximum "
              "(pooled logit -> -infinity)",
        np.where(alln, "every study has all events; the GLMM likelihood has no finite "
                       "maximum (pooled logit -> +infinity)",
                 "every study has 0 or all events; the GLMM likelihood has no finite "
                 "maximum (tau² -> infinity)"))


def fit_glmm_batch(events, total, *, level=0.95, ci="z", pi="z", n_agq=7, maxiter=200):
    """Binomial-normal GLMM meta-analyses of many sets of proportions at once.

    The batched :func:`metapool.glmm.fit_glmm`, with its starting points (the
    inverse-variance REML fit of the corrected logits, and the pooled logit with
    tau = 1), its choice between them and the boundary ``tau² = 0`` (the tau² score at
    0 is <= 0 and no start finds a higher interior maximum), its edge cases (k = 1;
    no study strictly between 0 and n events) and its warnings (coarse quadrature,
    k = 2). Where ``fit_glmm`` raises :class:`metapool.glmm.GLMMConvergenceError`, the
    analysis gets NaN for every pooled number, ``converged = False``, ``status = "not
    pooled: GLMM did not converge"`` and the error's message as its warning.

    The maximisation is :func:`maximise_glmm` (analytic Hessian, steps accepted within
    the rounding error of the log-likelihood). It reaches the same maximum as
    ``fit_glmm`` (Newton decrement below 1e-18, i.e. within 1e-9 SE), and the SE comes
    from the analytic instead of a central-difference Hessian: the results agree with
    ``fit_glmm`` to about 1e-9 relative, 2e-8 at worst (``iterations`` differ). With
    large counts it also converges where ``fit_glmm`` gives up (see
    :func:`maximise_glmm`).

    Parameters
    ----------
    events, total : array_like, shape (n_analyses, max_k)
        Counts, NaN in the same cells where an analysis has fewer studies.
    level, ci, pi, n_agq, maxiter
        As in :func:`metapool.glmm.fit_glmm`.

    Returns
    -------
    dict
        ``RESULT_KEYS`` + ``GLMM_KEYS`` (``converged`` bool, ``iterations`` int),
        ``natural_*`` (inverse logit), ``status``, ``warnings``.
    """
    _check_glmm_options(level, ci, pi, n_agq, maxiter)
    x, n, mask = _counts(events, total)
    m = x.shape[0]
    x = np.where(mask, x, 0.0)
    n = np.where(mask, n, 1.0)
    k = mask.sum(axis=1)
    nan = np.full(m, np.nan)
    out = {key: nan.copy() for key in RESULT_KEYS + GLMM_KEYS}
    out["k"] = k.astype(int)
    out["q_df"] = np.where(k >= 2, k - 1, 0).astype(int)
    out["converged"] = np.ones(m, dtype=bool)
    out["iterations"] = np.zeros(m, dtype=int)
    status = np.full(m, "pooled", dtype=object)
    warnings = [() for _ in range(m)]

    single = k == 1
    status[single] = _SINGLE
    for i in np.flatnonzero(single):
        warnings[i] = (_K1,)
    q_wld, q_lrt = _glmm_homogeneity(x, n, mask)
    df = np.maximum(k - 1, 1)
    multi = ~single
    out["q"] = np.where(multi, q_wld, np.nan)
    out["q_lrt"] = np.where(multi, q_lrt, np.nan)
    out["q_p"] = np.where(multi, stats.chi2.sf(q_wld, df), np.nan)
    out["q_lrt_p"] = np.where(multi, stats.chi2.sf(q_lrt, df), np.nan)
    no_max = multi & ~(mask & (x > 0) & (x < n)).any(axis=1)
    status[no_max] = np.char.add("not pooled: ", _no_maximum_reason(x, n, mask))[no_max]
    out["converged"][no_max] = False

    rows = np.flatnonzero(multi & ~no_max)
    if rows.size:
        fit = _glmm_fit_rows(x[rows], n[rows], mask[rows], level=level, ci=ci, pi=pi,
                             n_agq=n_agq, maxiter=maxiter)
        for key, value in fit.items():
            if key in out:
                out[key][rows] = value
        status[rows] = fit["status"]
        for i, w in zip(rows, fit["warnings"]):
            warnings[i] = w
    with np.errstate(invalid="ignore"):
        for key in NATURAL_KEYS:
            out[f"natural_{key}"] = special.expit(out[key])
    out["status"] = status
    out["warnings"] = warnings
    return out


def _glmm_fit_rows(x, n, mask, *, level, ci, pi, n_agq, maxiter):
    """The GLMM fit for analyses with k >= 2 and a study strictly between 0 and n."""
    f = x.shape[0]
    k = mask.sum(axis=1)
    sx = x.sum(axis=1, where=mask)
    sn = n.sum(axis=1, where=mask)
    pbar = sx / sn
    mu0 = np.log(pbar) - np.log1p(-pbar)
    # starting points: IV REML on the corrected logits, and the pooled logit with tau = 1
    yi, vi, _ = _proportion_effects_batch(x, n, mask, measure="PLO",
                                         continuity_correction=0.5)
    tau2_iv = estimate_tau2(yi, vi, "REML").tau2
    w_iv = np.where(mask, 1.0 / (np.where(mask, vi, 1.0) + tau2_iv[:, None]), 0.0)
    mu_iv = (w_iv * np.where(mask, yi, 0.0)).sum(axis=1) / w_iv.sum(axis=1)
    starts = np.concatenate([
        np.stack([mu_iv, np.maximum(np.sqrt(tau2_iv), 0.2)], axis=-1),
        np.stack([mu0, np.ones(f)], axis=-1)])
    x2, n2, mask2 = (np.concatenate([a, a]) for a in (x, n, mask))
    theta, ll, hess, conv, its = maximise_glmm(x2, n2, mask2, starts, n_agq, maxiter)
    theta, ll, hess, conv, its = (a.reshape((2, f) + a.shape[1:])
                                  for a in (theta, ll, hess, conv, its))
    iterations = its.sum(axis=0)

    ll0 = _glmm._aghq(x, n, mask, mu0, np.zeros(f), n_agq, False)[0]
    resid0 = np.where(mask, x - n * pbar[:, None], 0.0)
    boundary_max = (resid0**2).sum(axis=1) - pbar * (1.0 - pbar) * sn <= 0.0
    any_conv = conv.any(axis=0)
    best = np.where(conv[0] & (~conv[1] | (ll[0] >= ll[1])), 0, 1)
    r = np.arange(f)
    ll_best = np.where(any_conv, ll[best, r], np.nan)
    tie = _glmm._LL_TIE * (1.0 + np.abs(ll0))
    at_zero = boundary_max & (~any_conv | (ll_best <= ll0 + tie))
    higher = (np.where(np.isfinite(ll), ll, -np.inf) > ll0 + tie).any(axis=0)
    failure = np.full(f, "", dtype=object)
    for i in np.flatnonzero(at_zero & ~any_conv & higher):
        failure[i] = ("the GLMM likelihood maximisation did not converge from any start "
                      f"(iterations {its[:, i].tolist()}); tau² = 0 is a local maximum "
                      "but may not be the global one")
    for i in np.flatnonzero(~at_zero & ~any_conv):
        failure[i] = ("the GLMM likelihood maximisation did not converge from any start "
                      f"(iterations {its[:, i].tolist()}, last estimates "
                      f"{theta[:, i].tolist()})")

    mu_hat = np.where(at_zero, mu0, theta[best, r, 0])
    tau_hat = np.where(at_zero, 0.0, np.abs(theta[best, r, 1]))
    ll_hat = np.where(at_zero, ll0, ll_best)
    # observed information at the interior maximum; L is even in tau, so the Hessian
    # at -tau has the same (mu, mu) element of its inverse
    info = -hess[best, r]
    det = info[:, 0, 0] * info[:, 1, 1] - info[:, 0, 1] * info[:, 1, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        var_mu = np.where(at_zero, 1.0 / (pbar * (1.0 - pbar) * sn), info[:, 1, 1] / det)
    interior = ~at_zero & any_conv
    singular = interior & (_glmm._eig_min_2x2(info) <= 0)
    failure[singular] = "the GLMM maximum has a singular information matrix"
    bad = (failure == "") & ~(np.isfinite(mu_hat) & np.isfinite(var_mu) & (var_mu > 0))
    failure[bad] = "the GLMM fit gave a non-finite estimate or SE"

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _glmm_summary(x, n, mask, k, mu_hat, tau_hat, var_mu, ll_hat, failure,
                             iterations, level=level, ci=ci, pi=pi, n_agq=n_agq)


def _glmm_summary(x, n, mask, k, mu_hat, tau_hat, var_mu, ll_hat, failure, iterations,
                  *, level, ci, pi, n_agq):
    """CI, PI, I², H², conditional log-likelihood and warnings of fitted analyses."""
    f = len(k)
    failed = failure != ""
    tau2 = tau_hat * tau_hat
    se = np.sqrt(var_mu)
    stat = mu_hat / se
    alpha = 1.0 - level
    df = k - 1
    if ci == "t":
        crit = stats.t.ppf(1.0 - alpha / 2.0, df)
        p_value = 2.0 * stats.t.sf(np.abs(stat), df)
    else:
        crit = np.full(f, stats.norm.ppf(1.0 - alpha / 2.0))
        p_value = 2.0 * stats.norm.sf(np.abs(stat))
    if pi == "none":
        pi_lower = pi_upper = np.full(f, np.nan)
    else:
        pcrit = stats.t.ppf(1.0 - alpha / 2.0, df) if pi == "t" else \
            np.full(f, stats.norm.ppf(1.0 - alpha / 2.0))
        # as pooling.fit_batch: the PI's quantile is never below the CI's
        pcrit = np.maximum(pcrit, crit)
        half = np.where(k >= MIN_K_PI, pcrit * np.sqrt(tau2 + var_mu), np.nan)
        pi_lower, pi_upper = mu_hat - half, mu_hat + half
    vt = _glmm_vt(x, n, mask)
    # metafor's log-likelihood: the binomial one at the conditional modes
    fitted = np.flatnonzero(~failed)
    u0 = np.zeros(x.shape)
    u0[fitted] = _glmm._modes(x[fitted], n[fitted], mu_hat[fitted], tau_hat[fitted])[0]
    eta = mu_hat[:, None] + tau_hat[:, None] * u0
    lchoose = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)
    ll_cond = np.where(mask, lchoose - x * np.logaddexp(0.0, -eta)
                       - (n - x) * np.logaddexp(0.0, eta), 0.0).sum(axis=1)

    warn = [[] for _ in range(f)]
    check = ~failed & (tau_hat > 0)
    if n_agq < 50 and check.any():
        finer = 2 * n_agq + 1
        idx = np.flatnonzero(check)
        ll_fine = _glmm._aghq(x[idx], n[idx], mask[idx], mu_hat[idx], tau_hat[idx],
                              finer, False)[0]
        for i, lf in zip(idx, ll_fine):
            if abs(lf - ll_hat[i]) > _glmm._AGQ_WARN:
                warn[i].append(
                    f"the {n_agq}-point quadrature is coarse at this estimate: the "
                    f"log-likelihood changes by {lf - ll_hat[i]:+.3g} with {finer} "
                    "points, so the GLMM estimates depend on the number of quadrature "
                    f"points (tau² = {tau2[i]:.3g})")
    for i in np.flatnonzero(~failed & (k == 2)):
        warn[i].append(_K2)
    for i in np.flatnonzero(failed):
        warn[i] = [failure[i]]

    def ok(a):
        return np.where(failed, np.nan, a)

    return {
        "estimate": ok(mu_hat), "se": ok(se), "stat": ok(stat),
        "ci_lower": ok(mu_hat - crit * se), "ci_upper": ok(mu_hat + crit * se),
        "pi_lower": ok(pi_lower), "pi_upper": ok(pi_upper), "p_value": ok(p_value),
        "tau2": ok(tau2), "tau": ok(tau_hat), "i2": ok(100.0 * tau2 / (vt + tau2)),
        "h2": ok(tau2 / vt + 1.0), "loglik": ok(ll_hat),
        "loglik_conditional": ok(ll_cond),
        "vt": ok(vt), "converged": ~failed, "iterations": iterations,
        "status": np.where(failed, "not pooled: GLMM did not converge", "pooled"),
        "warnings": [tuple(w) for w in warn],
    }
