"""Binomial-normal random-effects model (GLMM) for single proportions.

The model of metafor's ``rma.glmm(measure="PLO", xi=, ni=, method="ML")``, which fits
``lme4::glmer(cbind(xi, ni - xi) ~ 1 + (1 | study), family = binomial, nAGQ = 7)``::

    x_i ~ Binomial(n_i, p_i),    logit(p_i) = mu + tau * u_i,    u_i ~ N(0, 1),

with ``mu`` and ``tau² >= 0`` estimated by maximum likelihood. The binomial likelihood is
used as it is: studies with 0 or ``n`` events need no continuity correction.

The marginal likelihood of each study, ``int Binomial(x_i | n_i, expit(mu + tau u))
phi(u) du``, is evaluated by adaptive Gauss-Hermite quadrature (AGHQ) exactly as lme4
does for ``nAGQ > 1``: the nodes of the ``n_agq``-point Gauss-Hermite rule for the
standard normal are centred at the study's conditional mode ``u0`` of the integrand
and scaled by ``1 / sqrt(1 + tau² n p0 (1 - p0))``, the curvature there. For a given
``(mu, tau)`` the result is the same number as lme4's deviance function (checked to
about 1e-12 in the tests); ``n_agq = 1`` is the Laplace approximation.

The core functions (:func:`conditional_modes`, :func:`marginal_loglik`) take batches:
``(n_analyses, max_k)`` arrays of counts, NaN padded, and one ``(mu, tau)`` per row, so
a batched fit over analyses can reuse them; :func:`fit_glmm` fits one meta-analysis.

References
----------
.. [1] Stijnen T, Hamza TH, Ozdemir P. Random effects meta-analysis of event outcome in
   the framework of the generalized linear mixed model with applications in sparse
   data. Stat Med 2010;29:3046-3067.
.. [2] Hamza TH, van Houwelingen HC, Stijnen T. The binomial distribution of
   meta-analysis was preferred to model within-study variability. J Clin Epidemiol
   2008;61:41-51.
.. [3] Pinheiro JC, Bates DM. Approximations to the log-likelihood function in the
   nonlinear mixed-effects model. J Comput Graph Stat 1995;4:12-35 (adaptive
   Gauss-Hermite quadrature).
.. [4] Bates D, Maechler M, Bolker B, Walker S. Fitting linear mixed-effects models using
   lme4. J Stat Softw 2015;67(1) (``glmer``, ``nAGQ``).
.. [5] Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat
   Softw 2010;36(3) (``rma.glmm``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from scipy import special, stats

from .effects import proportion_effects

__all__ = [
    "GLMM_CI_METHODS",
    "GLMM_PI_METHODS",
    "GLMMConvergenceError",
    "GLMMResult",
    "conditional_modes",
    "fit_glmm",
    "marginal_loglik",
]

#: CI of the pooled logit: Wald with normal quantiles (metafor's default ``test="z"``)
#: or t quantiles with k - 1 df (``test="t"``). HKSJ is not defined for the GLMM.
GLMM_CI_METHODS = ("z", "t")
#: Prediction interval ``mu +/- q sqrt(tau² + se²)``: ``q`` normal (what metafor's
#: ``predict()`` uses after ``test="z"``), t with k - 1 df (after ``test="t"``), or none.
GLMM_PI_METHODS = ("z", "t", "none")

#: Largest |mu| and tau accepted as a finite maximum (logit scale); beyond these the
#: optimiser is taken to be running off to a maximum at infinity.
_BOUND = 100.0
#: Newton-decrement stopping rule: ``g' (-H)^-1 g`` below this, i.e. the distance to the
#: maximum is below 1e-9 standard errors.
_DECREMENT_TOL = 1e-18
#: Largest Newton step per coordinate (logit units) in the maximisation.
_MAX_STEP = 2.0
#: Relative step for the central-difference Hessian (of the analytic gradient).
_HESS_STEP = 1e-5
#: Warn when the log-likelihood at the estimate changes by more than this between
#: ``n_agq`` and ``2 n_agq + 1`` quadrature points (the approximation is then too coarse
#: for the estimate to be trusted; typical of tau² >> 10 with most studies at 0 or n).
_AGQ_WARN = 0.01
#: An interior maximum must beat the tau = 0 maximum by this much log-likelihood to be
#: preferred to it (below it, both are the same point within rounding).
_LL_TIE = 1e-9


class GLMMConvergenceError(RuntimeError):
    """The GLMM likelihood could not be maximised reliably.

    Raised instead of returning a doubtful estimate: no start of the damped Newton
    iteration reached a maximum (gradient zero, Hessian negative definite) within the
    iteration limit, or the iterates ran off towards infinity. Callers fall back to the
    inverse-variance logit model and say so.
    """


# --------------------------------------------------------------------------------------
# quadrature and the per-study integrand
# --------------------------------------------------------------------------------------


@cache
def _gh_rule(n_agq):
    """Gauss-Hermite rule for the standard normal (lme4 ``GHrule(n_agq)``).

    Returns nodes ``z`` and log weights; the weights sum to 1.
    """
    z, w = np.polynomial.hermite_e.hermegauss(n_agq)
    w = w / w.sum()
    z = z.copy()
    if n_agq % 2:
        z[n_agq // 2] = 0.0  # exactly 0 (the rule gives about 1e-17)
    z.setflags(write=False)
    logw = np.log(w)
    logw.setflags(write=False)
    return z, logw


def _counts_2d(events, total):
    """Counts as 2-D float arrays with a mask of present studies (NaN = absent)."""
    x = np.atleast_2d(np.asarray(events, dtype=float))
    n = np.atleast_2d(np.asarray(total, dtype=float))
    if x.shape != n.shape:
        raise ValueError(f"events and total must have the same shape, got {x.shape} "
                         f"and {n.shape}")
    if x.ndim != 2:
        raise ValueError("events and total must be 1-D (one analysis) or 2-D "
                         "(analyses x studies)")
    mask = np.isfinite(x) & np.isfinite(n)
    # absent studies get harmless dummy counts; every sum over studies is masked
    return np.where(mask, x, 0.0), np.where(mask, n, 1.0), mask


def _residual(x, n, p, q):
    """``x - n p`` computed as ``x q - (n - x) p`` (accurate when p is near 0 or 1)."""
    return x * q - (n - x) * p


def conditional_modes(events, total, mu, tau, *, tol=1e-14, maxiter=200):
    """Conditional modes ``u0`` of the standardised random effects.

    For each study the mode of ``h(u) = log Binomial(x | n, expit(mu + tau u)) - u²/2``,
    the root of ``tau (x - n p) - u``. ``h`` is strictly concave (``h'' <= -1``) and the
    root lies in ``[tau (x - n), tau x]`` (sign-adjusted for ``tau < 0``), so Newton's
    method safeguarded by bisection in that bracket always converges. This is lme4's
    ``pwrssUpdate`` for a model with one random intercept per study.

    Parameters
    ----------
    events, total : array_like, shape (n_analyses, max_k) or (k,)
        Counts, NaN where a row has fewer studies.
    mu, tau : array_like, shape (n_analyses,) or scalar
        Pooled logit and between-study SD per row (any real tau; the model is symmetric
        in its sign).
    tol : float
        Stop when every Newton step is below ``tol * (1 + |u|)``.
    maxiter : int

    Returns
    -------
    ndarray, shape (n_analyses, max_k)
        0 where a study is absent.

    Raises
    ------
    GLMMConvergenceError
        If the iteration limit is reached (not expected: the bracket halves at worst).
    """
    x, n, mask = _counts_2d(events, total)
    mu = np.broadcast_to(np.atleast_1d(np.asarray(mu, float)), (x.shape[0],))
    tau = np.broadcast_to(np.atleast_1d(np.asarray(tau, float)), (x.shape[0],))
    u, ok = _modes(x, n, mu, tau, tol, maxiter)
    if not ok.all():
        raise GLMMConvergenceError(
            f"conditional modes did not converge in {maxiter} iterations")
    return np.where(mask, u, 0.0)


def _modes(x, n, mu, tau, tol=1e-14, maxiter=200):
    """Safeguarded Newton for the modes; returns ``u`` and a per-row success flag.

    Newton's step is taken when it lands strictly inside the current bracket and at
    least halves the previous step; otherwise the bracket is bisected (as in
    Numerical Recipes' ``rtsafe``), which rules out the cycling plain Newton can fall
    into on this sigmoid-shaped score.
    """
    m = mu[:, None]
    t = tau[:, None]
    lo = np.minimum(t * (x - n), t * x)
    hi = np.maximum(t * (x - n), t * x)
    u = np.zeros(np.broadcast_shapes(x.shape, m.shape))
    prev = np.full(u.shape, np.inf)
    done = np.zeros(u.shape, dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        for _ in range(maxiter):
            eta = m + t * u
            p = special.expit(eta)
            q = special.expit(-eta)
            g = t * _residual(x, n, p, q) - u
            d = t * t * n * p * q + 1.0  # -h''(u)
            lo = np.where(g > 0, u, lo)
            hi = np.where(g < 0, u, hi)
            step = g / d
            new = u + step
            small = np.abs(step) <= tol * (1.0 + np.abs(u))
            newton = (new > lo) & (new < hi) & (np.abs(step) <= 0.5 * prev)
            # a converged element stays where it is: iterating it further while other
            # elements (or rows) converge could move it off by a bisection step
            nxt = np.where(done, u, np.where(small | newton, new, 0.5 * (lo + hi)))
            prev = np.abs(nxt - u)
            u = nxt
            # converged: a negligible Newton step, or a bracket at rounding width
            done |= small | (hi - lo <= 4.0 * np.finfo(float).eps * (1.0 + np.abs(u)))
            if done.all():
                break
    return u, done.all(axis=1) & np.isfinite(u).all(axis=1)


def _aghq(x, n, mask, mu, tau, n_agq, grad):
    """AGHQ log-likelihood per row, and optionally its gradient in (mu, tau).

    The marginal log-likelihood of study i is

        log sd + log sum_j w_j exp(h(u0 + sd z_j) + z_j² / 2),   sd = (1 + tau² W0)^-1/2,

    with ``h`` the binomial log-likelihood (with its binomial coefficient) minus
    ``u²/2`` and ``W0 = n p0 (1 - p0)`` at the mode. The gradient is exact for this
    approximation: it differentiates through the mode (implicit function theorem) and
    through the scale.
    """
    z, logw = _gh_rule(n_agq)
    u0, ok = _modes(x, n, mu, tau)
    m = mu[:, None]
    t = tau[:, None]
    eta0 = m + t * u0
    p0 = special.expit(eta0)
    q0 = special.expit(-eta0)
    w0 = n * p0 * q0
    dd = 1.0 + t * t * w0
    sd = 1.0 / np.sqrt(dd)
    lchoose = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)

    uj = u0[..., None] + sd[..., None] * z  # (m, k, J)
    etaj = m[..., None] + t[..., None] * uj
    xj = x[..., None]
    nj = n[..., None]
    # x log p + (n - x) log(1 - p), accurate in both tails
    loglik_j = -xj * np.logaddexp(0.0, -etaj) - (nj - xj) * np.logaddexp(0.0, etaj)
    a = loglik_j - 0.5 * uj**2 + 0.5 * z**2 + logw
    lse = special.logsumexp(a, axis=-1)
    per_study = np.where(mask, lchoose + np.log(sd) + lse, 0.0)
    ll = np.where(ok, per_study.sum(axis=1), np.nan)
    if not grad:
        return ll, u0
    pij = np.exp(a - lse[..., None])  # weights of the nodes
    pj = special.expit(etaj)
    qj = special.expit(-etaj)
    rj = _residual(xj, nj, pj, qj)
    h_u = t[..., None] * rj - uj
    r0 = _residual(x, n, p0, q0)
    du0_dmu = -t * w0 / dd
    du0_dtau = (r0 - t * w0 * u0) / dd
    dw0 = w0 * (q0 - p0)  # d W / d eta
    deta_dmu = 1.0 + t * du0_dmu
    deta_dtau = u0 + t * du0_dtau
    dlogsd_dmu = -0.5 * (t * t * dw0 * deta_dmu) / dd
    dlogsd_dtau = -0.5 * (2.0 * t * w0 + t * t * dw0 * deta_dtau) / dd
    duj_dmu = du0_dmu[..., None] + z * (sd * dlogsd_dmu)[..., None]
    duj_dtau = du0_dtau[..., None] + z * (sd * dlogsd_dtau)[..., None]
    g_mu = dlogsd_dmu + (pij * (rj + h_u * duj_dmu)).sum(axis=-1)
    g_tau = dlogsd_dtau + (pij * (rj * uj + h_u * duj_dtau)).sum(axis=-1)
    g = np.stack([np.where(mask, g_mu, 0.0).sum(axis=1),
                  np.where(mask, g_tau, 0.0).sum(axis=1)], axis=-1)
    return ll, u0, g


def marginal_loglik(events, total, mu, tau, *, n_agq=7):
    """Marginal log-likelihood of the binomial-normal model by AGHQ.

    Parameters
    ----------
    events, total : array_like, shape (n_analyses, max_k) or (k,)
        Counts, NaN padded.
    mu, tau : array_like, shape (n_analyses,) or scalar
    n_agq : int
        Quadrature points per study (lme4 ``nAGQ``; 1 is the Laplace approximation).

    Returns
    -------
    ndarray, shape (n_analyses,)
        Including the binomial coefficients, so that it equals lme4's
        ``logLik(saturated glm) - deviance/2`` with ``deviance = fit@devcomp$cmp["dev"]``
        (``lme4::logLik`` itself omits the saturated log-likelihood for ``nAGQ > 1``).
    """
    _check_n_agq(n_agq)
    x, n, mask = _counts_2d(events, total)
    mu = np.broadcast_to(np.atleast_1d(np.asarray(mu, float)), (x.shape[0],))
    tau = np.broadcast_to(np.atleast_1d(np.asarray(tau, float)), (x.shape[0],))
    return _aghq(x, n, mask, mu, tau, n_agq, grad=False)[0]


def _loglik_grad(x, n, mask, theta, n_agq):
    ll, _, g = _aghq(x, n, mask, theta[:, 0], theta[:, 1], n_agq, grad=True)
    return ll, g


def _hessian(x, n, mask, theta, n_agq):
    """Hessian in (mu, tau) by central differences of the analytic gradient."""
    h = np.empty(theta.shape + (2,))
    for j in range(2):
        step = _HESS_STEP * np.maximum(1.0, np.abs(theta[:, j]))
        e = np.zeros_like(theta)
        e[:, j] = step
        gp = _loglik_grad(x, n, mask, theta + e, n_agq)[1]
        gm = _loglik_grad(x, n, mask, theta - e, n_agq)[1]
        h[:, :, j] = (gp - gm) / (2.0 * step[:, None])
    return 0.5 * (h + np.swapaxes(h, 1, 2))


# --------------------------------------------------------------------------------------
# maximisation
# --------------------------------------------------------------------------------------


def _eig_min_2x2(a):
    tr = a[:, 0, 0] + a[:, 1, 1]
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    disc = np.sqrt(np.maximum(0.25 * tr * tr - det, 0.0))
    return 0.5 * tr - disc


def _solve_2x2(a, b):
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    return np.stack([(a[:, 1, 1] * b[:, 0] - a[:, 0, 1] * b[:, 1]) / det,
                     (a[:, 0, 0] * b[:, 1] - a[:, 1, 0] * b[:, 0]) / det], axis=-1)


# --------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GLMMResult:
    """Result of one binomial-normal GLMM meta-analysis of proportions.

    Quantities that do not exist for the fit are ``None`` (never NaN); ``status`` and
    ``warnings`` say why. The field names follow :class:`metapool.pooling.PoolResult`.

    Attributes
    ----------
    k : int
        Number of studies.
    estimate, se : float or None
        ML estimate of the pooled logit ``mu`` and its SE from the observed information
        of ``(mu, tau)`` (the inverse Hessian's mu element, as lme4's ``vcov``). At
        ``tau² = 0`` the Hessian is diagonal and this is ``1 / sqrt(n p (1 - p))`` of
        the pooled binomial.
    stat, p_value : float or None
        Wald test of ``mu = 0`` (z, or t with k - 1 df for ``ci="t"``).
    ci_lower, ci_upper : float or None
        ``estimate -/+ q * se``.
    pi_lower, pi_upper : float or None
        ``estimate -/+ q * sqrt(tau² + se²)``; None for k < 3 or ``pi="none"``.
    tau2 : float or None
        ML estimate of tau² (exactly 0 when the maximum is on the boundary).
    i2, h2 : float or None
        ``100 tau² / (tau² + vt)`` and ``(tau² + vt) / vt`` with metafor's typical
        within-study variance ``vt = (k - 1) sum(w) / (sum(w)² - sum(w²))``, ``w = 1/vi``
        of the logits with 0.5 added to studies with 0 or n events (what
        ``rma.glmm`` computes).
    q, q_p : float or None
        Wald-type test of homogeneity (metafor ``QE.Wld``, ``QEp.Wld``): Cochran's Q of
        the study logits ``log(x / (n - x))`` with weights ``x (n - x) / n``; studies
        with 0 or n events have no finite logit and contribute 0 (their limit in the
        saturated logistic model).
    q_lrt, q_lrt_p : float or None
        Likelihood-ratio test of homogeneity (metafor ``QE.LRT``, ``QEp.LRT``): the
        deviance of the common-proportion binomial model.
    q_df : int
        k - 1 (0 when not pooled).
    loglik : float or None
        Maximised marginal log-likelihood (AGHQ, with binomial coefficients).
    loglik_conditional : float or None
        ``sum log Binomial(x | n, expit(mu + tau u0))`` at the conditional modes: the
        number metafor 3.8-1 prints as the log-likelihood (``fit.stats["ll", "ML"]``,
        computed from ``deviance()`` of the glmer fit, which lme4 >= 1.1 defines as the
        conditional deviance).
    vt : float or None
    converged : bool
        True when a maximum was found and verified (zero gradient, negative definite
        Hessian, or the boundary condition at tau = 0). False only for data without a
        finite maximum (``status`` says which).
    iterations : int
        Newton iterations summed over the starting points.
    tau2_lower, tau2_upper, i2_lower, i2_upper, h2_lower, h2_upper : None
        No confidence interval for tau² is computed for the GLMM (metafor 3.8-1's
        ``confint()`` has no method for ``rma.glmm`` either); the Q-profile CI of the
        inverse-variance models does not apply to the binomial likelihood.
    weights : None
        The GLMM has no inverse-variance study weights.
    measure, method, ci, pi : str
        ``"PLO"``, ``"GLMM"`` and the interval methods.
    level : float
    n_agq : int
    status : str
        ``"pooled"`` or ``"not pooled: <reason>"``.
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
    q_lrt: float | None
    q_lrt_p: float | None
    loglik: float | None
    loglik_conditional: float | None
    vt: float | None
    converged: bool
    iterations: int
    ci: str
    pi: str
    level: float
    n_agq: int
    status: str
    warnings: tuple = field(default_factory=tuple)
    weights: None = None
    tau2_lower: None = None
    tau2_upper: None = None
    i2_lower: None = None
    i2_upper: None = None
    h2_lower: None = None
    h2_upper: None = None
    measure: str = "PLO"
    method: str = "GLMM"

    @property
    def pooled(self) -> bool:
        return self.status == "pooled"

    def to_dict(self, scale="model"):
        """The result as a plain dict (Python scalars, None for absent numbers).

        Holds the keys of one row of :func:`metapool.pooling.fit_batch` (``weights`` and
        the tau²/I²/H² CI bounds are None, ``fallback``, ``hksj_narrower`` and ``hksj_zero`` are False)
        plus ``tau``, ``q_lrt``,
        ``q_lrt_p``, ``loglik``, ``loglik_conditional``, ``vt``, ``n_agq`` and the
        descriptive keys of :meth:`metapool.pooling.PoolResult.to_dict`.

        Parameters
        ----------
        scale : {"model", "natural"}
            ``natural``: estimate, CI and PI back-transformed with the inverse logit
            (metafor ``transf.ilogit``); ``se`` is then the delta-method SE
            ``se p (1 - p)``, for reference only.
        """
        if scale not in ("model", "natural"):
            raise ValueError("scale must be 'model' or 'natural'")
        d = {
            "k": self.k,
            "estimate": self.estimate,
            "se": self.se,
            "stat": self.stat,
            "ci_lower": self.ci_lower,
            "ci_upper": self.ci_upper,
            "pi_lower": self.pi_lower,
            "pi_upper": self.pi_upper,
            "p_value": self.p_value,
            "tau2": self.tau2,
            "tau": None if self.tau2 is None else math.sqrt(self.tau2),
            "tau2_lower": None,
            "tau2_upper": None,
            "i2": self.i2,
            "i2_lower": None,
            "i2_upper": None,
            "h2": self.h2,
            "h2_lower": None,
            "h2_upper": None,
            "q": self.q,
            "q_df": self.q_df,
            "q_p": self.q_p,
            "q_lrt": self.q_lrt,
            "q_lrt_p": self.q_lrt_p,
            "loglik": self.loglik,
            "loglik_conditional": self.loglik_conditional,
            "vt": self.vt,
            "weights": None,
            "converged": self.converged,
            "iterations": self.iterations,
            "fallback": False,
            "hksj_narrower": False,
            "hksj_zero": False,
            "measure": self.measure,
            "method": self.method,
            "ci_method": self.ci,
            "pi_method": self.pi,
            "level": self.level,
            "n_agq": self.n_agq,
            "status": self.status,
            "warnings": list(self.warnings),
        }
        if scale == "natural":
            if self.estimate is not None:
                p = float(special.expit(self.estimate))
                d["se"] = self.se * p * (1.0 - p)
            for key in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper"):
                if d[key] is not None:
                    d[key] = float(special.expit(d[key]))
            d["scale"] = "proportion"
            d["back_transformation"] = "inverse logit (metafor transf.ilogit)"
        else:
            d["scale"] = "logit"
        return d


# --------------------------------------------------------------------------------------
# closed-form pieces
# --------------------------------------------------------------------------------------


def _homogeneity_tests(x, n):
    """metafor's QE.Wld and QE.LRT for intercept-only rma.glmm (see GLMMResult)."""
    inner = (x > 0) & (x < n)
    xi, ni = x[inner], n[inner]
    if xi.size >= 2:
        w = xi * (ni - xi) / ni
        y = np.log(xi / (ni - xi))
        ybar = (w * y).sum() / w.sum()
        q_wld = float((w * (y - ybar) ** 2).sum())
    else:
        q_wld = 0.0
    pbar = x.sum() / n.sum()
    # G² = 2 sum [x log(x / (n pbar)) + (n - x) log((n - x) / (n (1 - pbar)))]
    q_lrt = 2.0 * float((special.xlogy(x, x / n) - special.xlogy(x, pbar)
                         + special.xlogy(n - x, (n - x) / n)
                         - special.xlogy(n - x, 1.0 - pbar)).sum())
    return max(q_wld, 0.0), max(q_lrt, 0.0)


def _typical_variance(x, n):
    """metafor's vt = (k - 1) / tr(P) for the continuity-corrected logits."""
    vi = proportion_effects(x, n).vi
    w = 1.0 / vi
    sw = w.sum()
    return (x.size - 1) * sw / (sw * sw - (w * w).sum())


def _tau_curvature_at_zero(x, n):
    """d² loglik / d tau² at tau = 0 and mu at its tau = 0 maximum.

    ``sum (x - n p)² - p (1 - p) sum n`` with ``p = sum x / sum n``: the score for tau²
    at 0 (up to a factor 2). The maximum is on the boundary tau² = 0 when it is <= 0.
    The same holds for the AGHQ approximation with any number of nodes (both are exact
    to second order in tau).
    """
    p = x.sum() / n.sum()
    return float(((x - n * p) ** 2).sum() - p * (1.0 - p) * n.sum())


# --------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_n_agq(n_agq):
    if not (_is_int(n_agq) and 1 <= n_agq <= 100):
        raise ValueError(f"n_agq must be an integer between 1 and 100, got {n_agq!r}")


def _validate(events, total, level, ci, pi, n_agq, maxiter):
    if ci not in GLMM_CI_METHODS:
        raise ValueError(f"ci must be one of {GLMM_CI_METHODS}, got {ci!r}")
    if pi not in GLMM_PI_METHODS:
        raise ValueError(f"pi must be one of {GLMM_PI_METHODS}, got {pi!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) \
            or not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    _check_n_agq(n_agq)
    if not (_is_int(maxiter) and maxiter >= 1):
        raise ValueError(f"maxiter must be a positive integer, got {maxiter!r}")
    arrays = []
    for name, a in (("events", events), ("total", total)):
        try:
            a = np.asarray(a, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numbers") from None
        a = np.atleast_1d(a)
        if a.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional")
        if a.size == 0:
            raise ValueError(f"{name} is empty: at least one study is needed")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must contain finite numbers only")
        if np.any(a != np.round(a)):
            raise ValueError(f"{name} must be whole numbers")
        arrays.append(a)
    x, n = arrays
    if x.shape != n.shape:
        raise ValueError(f"events and total must have the same length, got {x.size} "
                         f"and {n.size}")
    if np.any(n < 1):
        raise ValueError("total must be at least 1 in every study")
    if np.any(x < 0) or np.any(x > n):
        raise ValueError("events must lie between 0 and total in every study")
    return x, n


def _not_pooled(k, reason, extra, *, ci, pi, level, n_agq, converged, q_stats=None):
    q = q_lrt = q_p = q_lrt_p = None
    q_df = 0
    if q_stats is not None:
        q, q_lrt = q_stats
        q_df = k - 1
        q_p = float(stats.chi2.sf(q, q_df))
        q_lrt_p = float(stats.chi2.sf(q_lrt, q_df))
    return GLMMResult(
        k=k, estimate=None, se=None, stat=None, ci_lower=None, ci_upper=None,
        pi_lower=None, pi_upper=None, p_value=None, tau2=None, i2=None, h2=None,
        q=q, q_df=q_df, q_p=q_p, q_lrt=q_lrt, q_lrt_p=q_lrt_p, loglik=None,
        loglik_conditional=None, vt=None, converged=converged, iterations=0, ci=ci,
        pi=pi, level=float(level), n_agq=int(n_agq), status=f"not pooled: {reason}",
        warnings=tuple(extra))


def fit_glmm(events, total, *, level=0.95, ci="z", pi="z", n_agq=7, maxiter=200):
    """Random-effects meta-analysis of proportions with the binomial-normal GLMM.

    Maximum likelihood for ``logit(p_i) = mu + u_i``, ``u_i ~ N(0, tau²)``,
    ``x_i ~ Binomial(n_i, p_i)``, with the marginal likelihood from adaptive
    Gauss-Hermite quadrature (see the module docstring). R equivalent::

        metafor::rma.glmm(measure = "PLO", xi = events, ni = total, method = "ML",
                          test = ci, nAGQ = n_agq)
        # = lme4::glmer(cbind(xi, ni - xi) ~ 1 + (1 | study), family = binomial,
        #               nAGQ = n_agq)

    Studies with 0 or all events enter through their binomial likelihood; no
    continuity correction is added (except inside ``vt`` for I² and H², as metafor).

    Parameters
    ----------
    events, total : array_like of int, shape (k,)
        Events and participants per study (0 <= events <= total, total >= 1).
    level : float
        Coverage of CI and PI.
    ci : {"z", "t"}
        Wald CI with normal quantiles (metafor ``test="z"``) or t quantiles with k - 1
        df (``test="t"``), which also gives the test of ``mu = 0``.
    pi : {"z", "t", "none"}
        Quantile of the prediction interval: normal or t with k - 1 df, as metafor's
        ``predict()`` after ``test="z"`` and ``test="t"``.
    n_agq : int
        Quadrature points per study (lme4/metafor ``nAGQ``, default 7; 1 = Laplace).
    maxiter : int
        Newton iterations per starting point.

    Returns
    -------
    GLMMResult
        Defined results for the edge cases:

        * k = 1: ``status = "not pooled: single study"``, all pooled numbers None
          (metafor stops: more parameters than studies).
        * all studies with 0 events (or all with n events): no finite maximum, the
          likelihood increases as mu -> -inf (+inf) for every tau. ``status = "not
          pooled: ..."``, ``converged = False``, pooled numbers None; ``q``/``q_lrt``
          (both 0) are given. (glmer stops with "Response is constant".)
        * every study at 0 or n events, some of each: the likelihood increases as
          tau -> inf; the same not-pooled result. (glmer returns an arbitrary large
          tau² here without an error.)
        * all studies with the same proportion: the maximum is at tau² = 0 and the
          estimate is the pooled binomial logit (glmer stops with "Response is
          constant").
        * k = 2: pooled, with a warning; no prediction interval (k < 3).
        * tau² = 0 (the score for tau² at 0 is <= 0 and no interior maximum is
          higher): ``tau2 = 0.0`` exactly, ``mu`` and ``se`` those of the pooled
          binomial.

    Raises
    ------
    ValueError
        Invalid counts or options.
    GLMMConvergenceError
        The likelihood could not be maximised (see the exception).

    Notes
    -----
    The likelihood is maximised over ``(mu, tau)`` by a damped Newton iteration with
    the analytic gradient of the AGHQ likelihood and a central-difference Hessian of
    it, from two starts: the inverse-variance REML fit of the logits (0.5 added to 0/n
    studies) and the pooled binomial logit with tau = 1. It stops when the Newton
    decrement is below 1e-18 (distance to the maximum below 1e-9 SE). As tau enters
    the likelihood only through tau², tau = 0 is a stationary point; it is the
    maximum when ``sum (x - n p)² <= p (1 - p) sum n`` (the tau² score at 0) and no
    start finds a higher interior maximum. lme4's default optimiser stops earlier
    (Nelder-Mead), so metafor's numbers differ from these in about the 5th significant
    digit; with a tight optimiser they agree to about 1e-7 (see tests/test_glmm.py).

    The 7-point quadrature (lme4's and metafor's default) is itself an approximation.
    For extreme heterogeneity (tau² >> 10, most studies at 0 or n events) it becomes
    coarse and the estimates change with ``n_agq``, in metafor as here; a warning is
    added when the log-likelihood at the estimate moves by more than 0.01 between
    ``n_agq`` and ``2 n_agq + 1`` points.

    Examples
    --------
    Pritz (1997), k = 14 with two studies at 100% (metafor: 1.3766, se 0.2884,
    tau² 0.5893):

    >>> import numpy as np
    >>> x = [16, 10, 4, 43, 10, 25, 13, 12, 22, 4, 5, 18, 58, 6]
    >>> n = [17, 12, 8, 58, 10, 42, 14, 12, 41, 5, 6, 23, 68, 10]
    >>> res = fit_glmm(x, n)
    >>> round(res.estimate, 4), round(res.se, 4), round(res.tau2, 4)
    (1.3766, 0.2884, 0.5893)
    """
    x, n = _validate(events, total, level, ci, pi, n_agq, maxiter)
    from .batch import fit_glmm_batch  # the batch of one (imports this module)

    out = fit_glmm_batch(x[None], n[None], level=level, ci=ci, pi=pi, n_agq=n_agq,
                         maxiter=maxiter)
    status = str(out["status"][0])
    if status == "not pooled: GLMM did not converge":
        raise GLMMConvergenceError(out["warnings"][0][0])

    def number(key):
        value = float(out[key][0])
        return None if math.isnan(value) else value

    numbers = ("estimate", "se", "stat", "ci_lower", "ci_upper", "pi_lower", "pi_upper",
               "p_value", "tau2", "i2", "h2", "q", "q_p", "q_lrt", "q_lrt_p", "loglik",
               "loglik_conditional", "vt")
    return GLMMResult(
        **{key: number(key) for key in numbers}, k=int(out["k"][0]),
        q_df=int(out["q_df"][0]), converged=bool(out["converged"][0]),
        iterations=int(out["iterations"][0]), ci=ci, pi=pi, level=float(level),
        n_agq=int(n_agq), status=status, warnings=tuple(out["warnings"][0]))
