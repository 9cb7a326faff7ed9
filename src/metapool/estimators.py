"""Between-study variance (tau²) estimators, vectorised over analyses.

Inputs are 2-D arrays of shape ``(n_analyses, max_k)``: one row per meta-analysis,
padded with NaN where an analysis has fewer studies; an optional design matrix of
moderators ``X`` of shape ``(n_analyses, max_k, p)`` (or ``(max_k, p)``) turns each row
into a meta-regression. A single meta-analysis is the batch of one, so the single and
batched paths share one implementation.

Every estimator is written with the projection ``P = W - W X (X'WX)^-1 X'W`` of metafor's
``rma.uni`` but never forms the k x k matrix: the traces and quadratic forms it needs
reduce to p x p algebra, so k = 1000 costs no more memory than k = 10.

References
----------
.. [1] DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials
   1986;7:177-188 (DL).
.. [2] Hedges LV. A random effects model for effect sizes. Psychol Bull 1983;93:388-395
   (HE).
.. [3] Sidik K, Jonkman JN. Simple heterogeneity variance estimation for meta-analysis.
   J R Stat Soc C 2005;54:367-384 (SJ).
.. [4] Paule RC, Mandel J. Consensus values and weighting factors. J Res Natl Bur Stand
   1982;87:377-385 (PM).
.. [5] Viechtbauer W. Bias and efficiency of meta-analytic variance estimators in the
   random-effects model. J Educ Behav Stat 2005;30:261-293 (ML and REML by Fisher
   scoring, as in metafor).
.. [6] Press WH, Teukolsky SA, Vetterling WT, Flannery BP. Numerical Recipes, 3rd ed.
   Cambridge University Press 2007, section 9.4 (``rtsafe``: Newton-Raphson safeguarded
   by bisection, used where Fisher scoring cycles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "TAU2_METHODS", "Tau2Estimate", "WLSFit", "estimate_tau2", "prepare",
    "solve_generalised_q", "wls_fit",
]

#: tau² estimators: common effect, DerSimonian-Laird, Hedges, Sidik-Jonkman,
#: maximum likelihood, restricted maximum likelihood, Paule-Mandel.
TAU2_METHODS = ("FE", "DL", "HE", "SJ", "ML", "REML", "PM")

_TOL = 1e-12
_MAXITER = 1000
#: Fisher scoring is taken to cycle after this many consecutive steps that alternate
#: in sign without shrinking (the fixed point repels); the row then goes to
#: :func:`_score_root`
_CYCLE = 8


@dataclass(frozen=True)
class Tau2Estimate:
    """tau² per analysis with convergence information.

    Attributes
    ----------
    tau2 : ndarray, shape (n_analyses,)
    converged : ndarray of bool
        False only where an iterative estimator failed: hit the iteration limit, or
        (ML/REML) the likelihood is not finite (degenerate input).
    iterations : ndarray of int
    method : str
    """

    tau2: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    method: str


@dataclass(frozen=True)
class WLSFit:
    """Weighted least squares ``beta = (X'WX)^-1 X'W y`` per analysis with P-traces."""

    beta: np.ndarray  # (m, p)
    cov_unscaled: np.ndarray  # (m, p, p): (X'WX)^-1
    resid: np.ndarray  # (m, k), 0 where masked
    py: np.ndarray  # (m, k): P y = W (y - X beta)
    q: np.ndarray  # (m,): y'Py = sum w r²
    ypp_y: np.ndarray  # (m,): y'PPy
    tr_p: np.ndarray  # (m,)
    tr_pp: np.ndarray  # (m,)
    sum_w: np.ndarray
    sum_w2: np.ndarray


def prepare(y, v, X=None):
    """Validate and pad a batch; returns ``y, v, X, mask`` with zeros where masked.

    ``y`` and ``v`` are NaN-padded 2-D arrays (a 1-D input is one analysis); ``X`` is
    ``(m, k, p)``, ``(k, p)`` or None (intercept only).
    """
    y = np.atleast_2d(np.asarray(y, dtype=float))
    v = np.atleast_2d(np.asarray(v, dtype=float))
    if y.shape != v.shape:
        raise ValueError("y and v must have the same shape")
    mask = np.isfinite(y) & np.isfinite(v)
    if np.any(v[mask] <= 0):
        raise ValueError("sampling variances must be positive")
    if X is None:
        X = np.ones(y.shape + (1,))
    else:
        X = np.asarray(X, dtype=float)
        if X.ndim == 2:
            X = np.broadcast_to(X, (y.shape[0],) + X.shape)
        if X.shape[:2] != y.shape:
            raise ValueError(f"X must have shape {y.shape + ('p',)}, got {X.shape}")
        if not np.all(np.isfinite(X[mask])):
            raise ValueError("moderators must be finite for every study")
    X = np.where(mask[..., None], X, 0.0)
    return np.where(mask, y, 0.0), np.where(mask, v, 1.0), X, mask


def wls_fit(y, X, w):
    """Weighted least squares for a batch; ``w`` is 0 where a study is absent.

    Rows whose ``X'WX`` is singular (fewer studies than coefficients) get NaN.
    """
    if X.shape[-1] == 1:
        return _wls_fit_1(y, X[..., 0], w)
    A = np.einsum("mkp,mk,mkq->mpq", X, w, X)
    b = np.einsum("mkp,mk,mk->mp", X, w, y)
    det_ok = np.linalg.matrix_rank(A) == A.shape[-1]
    A_safe = np.where(det_ok[:, None, None], A, np.eye(A.shape[-1]))
    cov = np.linalg.inv(A_safe)
    cov = np.where(det_ok[:, None, None], cov, np.nan)
    beta = np.einsum("mpq,mq->mp", cov, b)
    resid = np.where(w > 0, y - np.einsum("mkp,mp->mk", X, beta), 0.0)
    py = w * resid
    B2 = np.einsum("mkp,mk,mkq->mpq", X, w**2, X)
    B3 = np.einsum("mkp,mk,mkq->mpq", X, w**3, X)
    cb2 = cov @ B2
    sum_w = w.sum(axis=1)
    sum_w2 = (w**2).sum(axis=1)
    tr_p = sum_w - np.trace(cb2, axis1=1, axis2=2)
    tr_pp = (sum_w2 - 2.0 * np.trace(cov @ B3, axis1=1, axis2=2)
             + np.trace(cb2 @ cb2, axis1=1, axis2=2))
    return WLSFit(beta, cov, resid, py, (w * resid**2).sum(axis=1),
                  (py**2).sum(axis=1), tr_p, tr_pp, sum_w, sum_w2)


def _wls_fit_1(y, x, w):
    """:func:`wls_fit` with one coefficient: the p x p algebra is scalar."""
    xw = x * w
    a = (xw * x).sum(axis=1)
    ok = a > 0  # rank 1 (w >= 0, so a is 0 only without a study)
    cov = np.where(ok, 1.0 / np.where(ok, a, 1.0), np.nan)
    beta = cov * (xw * y).sum(axis=1)
    resid = np.where(w > 0, y - x * beta[:, None], 0.0)
    py = w * resid
    w2 = w * w
    xx = x * x
    cb2 = cov * (w2 * xx).sum(axis=1)
    sum_w = w.sum(axis=1)
    sum_w2 = w2.sum(axis=1)
    tr_p = sum_w - cb2
    tr_pp = sum_w2 - 2.0 * cov * (w2 * w * xx).sum(axis=1) + cb2 * cb2
    return WLSFit(beta[:, None], cov[:, None, None], resid, py, (w * resid**2).sum(axis=1),
                  (py**2).sum(axis=1), tr_p, tr_pp, sum_w, sum_w2)


def _weights(v, mask, tau2):
    return np.where(mask, 1.0 / (v + tau2[:, None]), 0.0)


def _dl(y, v, X, mask, df):
    return _dl_from_fit(wls_fit(y, X, _weights(v, mask, np.zeros(len(y)))), df)


def _dl_from_fit(fit, df):
    """DerSimonian-Laird from the common-effect fit (tau² = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tau2 = (fit.q - df) / fit.tr_p
    return np.where(df > 0, np.maximum(np.nan_to_num(tau2), 0.0), 0.0)


def _he(y, v, X, mask, df):
    # ordinary least squares residuals; E[RSS] = tr(P0 V) + tau2 (k - p)
    ones = mask.astype(float)
    fit = wls_fit(y, X, ones)
    xvx = np.einsum("mkp,mk,mkq->mpq", X, np.where(mask, v, 0.0), X)
    tr_p0v = np.where(mask, v, 0.0).sum(axis=1) - np.trace(fit.cov_unscaled @ xvx,
                                                             axis1=1, axis2=2)
    rss = (fit.resid**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau2 = (rss - tr_p0v) / df
    return np.where(df > 0, np.maximum(np.nan_to_num(tau2), 0.0), 0.0)


def _sj(y, v, X, mask, df):
    k = mask.sum(axis=1)
    # metafor's start, also with moderators: var(yi) (k - 1) / k of the raw effects
    mean = np.where(mask, y, 0.0).sum(axis=1) / np.maximum(k, 1)
    centred = np.where(mask, y - mean[:, None], 0.0)
    tau0 = (centred**2).sum(axis=1) / np.maximum(k, 1)
    fit = wls_fit(y, X, _weights(v, mask, tau0))
    with np.errstate(divide="ignore", invalid="ignore"):
        tau2 = tau0 * fit.q / df
    return np.where(df > 0, np.nan_to_num(tau2), 0.0)


def _score(fit, method):
    """Twice the score of the (restricted) log-likelihood in tau²: ``y'PPy - tr(P)``
    (REML) or ``y'PPy - sum(w)`` (ML), and the Fisher information times 2."""
    if method == "REML":
        return fit.ypp_y - fit.tr_p, fit.tr_pp
    return fit.ypp_y - fit.sum_w, fit.sum_w2


def _loglik(fit, v, mask, tau2, method):
    """(Restricted) log-likelihood up to the constant ``-(k - p)/2 log(2 pi)`` (REML) or
    ``-k/2 log(2 pi)`` (ML), which is the same for every tau² of a row."""
    ll = -0.5 * (np.where(mask, np.log(v + tau2[:, None]), 0.0).sum(axis=1) + fit.q)
    if method == "REML":
        # log det(X'WX) = -log det((X'WX)^-1)
        ll = ll + 0.5 * np.linalg.slogdet(fit.cov_unscaled)[1]
    return ll


def _fisher(y, v, X, mask, df, method):
    """ML or REML: Fisher scoring from DL (metafor's algorithm), made safe.

    1. Fisher scoring with step halving at the boundary, as in metafor, until the change
       in tau² is below ``_TOL`` relative to ``max(1, tau²)``.
    2. Rows where it cycles (``_CYCLE`` steps in a row that alternate in sign and do not
       shrink, or ``_MAXITER`` steps; about 1 in 100 REML fits of k = 10, where the
       observed information is more than twice the expected one, so the fixed point
       repels): the local maximum between the last iterates by safeguarded Newton on
       the score, see :func:`_score_root`.
    3. Where the score at 0 is not positive, tau² = 0 is a local maximum too: it is
       taken when its log-likelihood is higher than at the stationary point found
       (metafor's ``ll0check``; the likelihood is then bimodal).
    """
    m = len(y)
    fit0 = wls_fit(y, X, _weights(v, mask, np.zeros(m)))
    tau2 = _dl_from_fit(fit0, df)  # the start: DerSimonian-Laird
    score0 = _score(fit0, method)[0]
    active = df > 0
    converged = ~active
    iterations = np.zeros(m, dtype=int)

    def step(yr, vr, Xr, mr, t):
        s, info = _score(wls_fit(yr, Xr, _weights(vr, mr, t)), method)
        return s / info

    # the rows still iterating, compacted as they converge (cost O(active) per step)
    idx = np.flatnonzero(active)
    yr, vr, Xr, mr = y[idx], v[idx], X[idx], mask[idx]
    old = tau2[idx]
    last_adj = np.zeros(idx.size)
    grow = np.zeros(idx.size, dtype=int)
    cyc_idx, cyc_pts = [], []  # rows handed to _score_root, with their last two iterates
    for it in range(1, _MAXITER + 1):
        if idx.size == 0:
            break
        adj = step(yr, vr, Xr, mr, old)
        # step halving keeps tau² non-negative; at the boundary with a negative score
        # the step shrinks to nothing and the estimate stays at 0
        for _ in range(64):
            neg = old + adj < 0
            if not neg.any():
                break
            adj = np.where(neg, adj / 2.0, adj)
        new = np.maximum(old + adj, 0.0)
        tau2[idx] = new
        iterations[idx] = it
        done = np.abs(new - old) <= _TOL * np.maximum(1.0, old)
        converged[idx[done]] = True
        alternate = adj * last_adj < 0
        grow = np.where(alternate & (np.abs(adj) >= np.abs(last_adj)), grow + 1, 0)
        # (a non-finite step is handed over at once: it fails there, and pooling falls
        # back to DL with a warning)
        cycling = ~done & ((grow >= _CYCLE) | (it == _MAXITER) | ~np.isfinite(adj))
        if it >= 50:
            # a slowly shrinking oscillation (towards a stable 2-cycle) that, at its
            # current rate, would need more than twice the iterations that are left
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.abs(adj) / np.abs(last_adj)
                need = np.log(_TOL * np.maximum(1.0, new) / np.abs(adj)) / np.log(rate)
            cycling |= ~done & alternate & (rate < 1) & (need > 2 * (_MAXITER - it))
        if cycling.any():
            cyc_idx.append(idx[cycling])
            cyc_pts.append(np.stack([old[cycling], new[cycling]], axis=1))
        if done.any() or cycling.any():
            keep = ~done & ~cycling
            idx, yr, vr, Xr, mr, new, adj, grow = idx[keep], yr[keep], vr[keep], Xr[keep], \
                mr[keep], new[keep], adj[keep], grow[keep]
        old, last_adj = new, adj
    if cyc_idx:
        r = np.concatenate(cyc_idx)
        t, ok, its = _score_root(y[r], v[r], X[r], mask[r], np.concatenate(cyc_pts),
                                 score0[r], method)
        tau2[r] = t
        converged[r] = ok
        iterations[r] += its
    # Fisher scoring only approaches the boundary geometrically: where the score at
    # tau² = 0 is not positive and the iterate is (numerically) 0, the estimate is 0
    tau2[active & (tau2 < 1e-8) & (score0 <= 0)] = 0.0
    # bimodal likelihood: a local maximum at 0 that is higher than the interior one
    check = np.flatnonzero(active & converged & (tau2 > 0) & (score0 <= 0))
    if check.size:
        t = tau2[check]
        ll = _loglik(wls_fit(y[check], X[check], _weights(v[check], mask[check], t)),
                     v[check], mask[check], t, method)
        ll0 = _loglik(_take(fit0, check), v[check], mask[check], np.zeros(check.size),
                      method)
        tau2[check[ll0 - ll > 1e-12 * np.maximum(1.0, np.abs(ll))]] = 0.0
    return tau2, converged, iterations


def _take(fit, idx):
    """The rows ``idx`` of a :class:`WLSFit`."""
    return WLSFit(*(getattr(fit, f)[idx] for f in WLSFit.__dataclass_fields__))


def _score_root(y, v, X, mask, points, score0, method):
    """The local maximum of the (restricted) log-likelihood next to the last Fisher
    iterates, for rows where Fisher scoring cycles: safeguarded Newton on the score.

    ``points`` (n, 2) are the last two iterates, ``score0`` the score at tau² = 0.

    1. A bracket ``lo < hi`` with score(lo) > 0 > score(hi), which holds a local maximum:
       the two iterates where their scores have these signs (a cycle straddles the
       maximum); otherwise a search from the last iterate uphill (in the direction of
       its score), with the Fisher step as the first step and doubling it, until the
       score changes sign. Going down to 0 with a score at 0 that is not positive, the
       maximum is at the boundary: tau² = 0.
    2. Newton steps with the exact derivative of the score (the observed information)
       where they land inside the bracket and at most half the previous step, bisection
       otherwise (``rtsafe``): it cannot cycle, and converges quadratically near the
       root. It stops when the step or the bracket is below ``_TOL * max(1, tau²)``.

    Returns
    -------
    tau2, converged, iterations : ndarray
        ``converged`` is False only where the score is not finite.
    """
    n = len(y)
    iterations = np.zeros(n, dtype=int)

    def score(r, t):
        fit = wls_fit(y[r], X[r], _weights(v[r], mask[r], t))
        s, info = _score(fit, method)
        return s, info

    all_rows = np.arange(n)
    s_a, _ = score(all_rows, points[:, 0])
    s_b, info_b = score(all_rows, points[:, 1])
    ok = np.isfinite(s_a) & np.isfinite(s_b) & np.isfinite(score0)
    a, b = points[:, 0], points[:, 1]
    # 1. bracket from the two iterates
    lo = np.where(s_a > 0, a, np.where(s_b > 0, b, np.nan))
    hi = np.where(s_a < 0, a, np.where(s_b < 0, b, np.nan))
    straddle = ok & (s_a * s_b < 0) & (lo < hi)
    tau2 = np.where(straddle, (lo + hi) / 2.0, b)
    done = ~ok | (s_b == 0)  # a root on the nose (or a non-finite score)
    lo = np.where(straddle, lo, 0.0)
    hi = np.where(straddle, hi, np.inf)
    # ... or search uphill from the last iterate
    search = np.flatnonzero(~done & ~straddle)
    if search.size:
        up = s_b[search] > 0
        anchor = b[search]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.abs(s_b[search]) / info_b[search]  # the Fisher step
        d = np.where(np.isfinite(d) & (d > 0), d, np.maximum(anchor, 1.0))
        for _ in range(200):
            if search.size == 0:
                break
            trial = np.where(up, anchor + d, np.maximum(anchor - d, 0.0))
            s, _ = score(search, trial)
            s = np.where(trial == 0, score0[search], s)
            bad = ~np.isfinite(s)
            ok[search[bad]] = False
            flip = np.where(up, s < 0, s > 0)
            lo[search] = np.where(up, np.where(flip, anchor, trial),
                                  np.where(flip, trial, lo[search]))
            hi[search] = np.where(up, np.where(flip, trial, hi[search]),
                                  np.where(flip, anchor, trial))
            boundary = ~up & (trial == 0) & ~flip
            tau2[search[boundary]] = 0.0
            on_root = s == 0
            tau2[search[on_root]] = trial[on_root]
            stop = bad | flip | boundary | on_root
            done[search[bad | boundary | on_root]] = True
            keep = ~stop
            search, up, anchor, d = search[keep], up[keep], trial[keep], 2.0 * d[keep]
        done[search] = True  # never changed sign (the score stayed finite): give up
        ok[search] = False
    converged = done & ok
    idx = np.flatnonzero(~done)
    lo_r, hi_r = lo[idx], hi[idx]
    t = np.clip(b[idx], lo_r, hi_r)
    t = np.where((t > lo_r) & (t < hi_r), t, (lo_r + hi_r) / 2.0)
    dx_old = hi_r - lo_r
    yr, vr, Xr, mr = y[idx], v[idx], X[idx], mask[idx]
    for it in range(1, _MAXITER + 1):
        if idx.size == 0:
            break
        w = _weights(vr, mr, t)
        fit = wls_fit(yr, Xr, w)
        s, info = _score(fit, method)
        ds = info - 2.0 * _upu(fit.py, Xr, w, fit.cov_unscaled)
        bad = ~np.isfinite(s) | ~np.isfinite(ds)
        lo_r = np.where(s > 0, t, lo_r)
        hi_r = np.where(s < 0, t, hi_r)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = t - s / ds
        use = (ds < 0) & (newton > lo_r) & (newton < hi_r) & \
            (np.abs(newton - t) <= 0.5 * np.abs(dx_old))
        new = np.where(s == 0, t, np.where(use, newton, (lo_r + hi_r) / 2.0))
        dx_old = new - t
        tau2[idx[~bad]] = new[~bad]
        iterations[idx] = it
        tol = _TOL * np.maximum(1.0, t)
        fin = (np.abs(new - t) <= tol) | (hi_r - lo_r <= tol)
        converged[idx] = fin & ~bad
        stop = fin | bad
        if stop.any():
            keep = ~stop
            idx, yr, vr, Xr, mr, new, dx_old, lo_r, hi_r = idx[keep], yr[keep], vr[keep], \
                Xr[keep], mr[keep], new[keep], dx_old[keep], lo_r[keep], hi_r[keep]
        t = new
    return tau2, converged, iterations


def _upu(u, X, w, cov):
    """``u'Pu`` per row for ``P = W - W X (X'WX)^-1 X'W`` (``u`` zero where masked)."""
    wu = w * u
    xwu = np.einsum("mkp,mk->mp", X, wu)
    return (wu * u).sum(axis=1) - np.einsum("mp,mpq,mq->m", xwu, cov, xwu)


def solve_generalised_q(y, v, X, mask, target):
    """tau² at which the generalised Q statistic equals ``target`` (per analysis).

    ``Q(tau²) = sum w (y - X beta)^2`` with ``w = 1/(v + tau²)`` is decreasing in tau².
    Where ``Q(0) <= target`` the root is 0. Safeguarded Newton (``dQ/dtau² = -y'PPy``)
    inside a bracket that is widened until it holds the root, so each step either
    moves by Newton or halves the bracket.

    Returns
    -------
    tau2, converged, iterations : ndarray
    """
    m = len(y)
    target = np.broadcast_to(np.asarray(target, dtype=float), (m,)).copy()
    tau2 = np.zeros(m)
    iterations = np.zeros(m, dtype=int)
    fit0 = wls_fit(y, X, _weights(v, mask, tau2))
    converged = ~np.isfinite(fit0.q) | (fit0.q <= target)
    lo = np.zeros(m)
    hi = np.where(converged, 0.0, np.maximum(1.0, fit0.q / np.maximum(fit0.sum_w, 1e-300)))
    # widen hi until Q(hi) <= target
    for _ in range(200):
        todo = ~converged
        if not todo.any():
            break
        qh = wls_fit(y[todo], X[todo], _weights(v[todo], mask[todo], hi[todo])).q
        short = qh > target[todo]
        if not short.any():
            break
        idx = np.flatnonzero(todo)[short]
        lo[idx] = hi[idx]
        hi[idx] *= 10.0
    idx = np.flatnonzero(~converged)
    yr, vr, Xr, mr, tg = y[idx], v[idx], X[idx], mask[idx], target[idx]
    for it in range(1, _MAXITER + 1):
        if idx.size == 0:
            break
        t = tau2[idx]
        fit = wls_fit(yr, Xr, _weights(vr, mr, t))
        f = fit.q - tg
        lo[idx] = np.where(f > 0, np.maximum(lo[idx], t), lo[idx])
        hi[idx] = np.where(f < 0, np.minimum(hi[idx], t), hi[idx])
        with np.errstate(divide="ignore", invalid="ignore"):
            new = t + f / fit.ypp_y
        bad = ~np.isfinite(new) | (new <= lo[idx]) | (new >= hi[idx])
        new = np.where(bad, (lo[idx] + hi[idx]) / 2.0, new)
        tau2[idx] = new
        iterations[idx] = it
        done = np.abs(new - t) <= _TOL * np.maximum(1.0, t)
        converged[idx[done]] = True
        if done.any():
            keep = ~done
            idx, yr, vr, Xr, mr, tg = idx[keep], yr[keep], vr[keep], Xr[keep], mr[keep], \
                tg[keep]
    return tau2, converged, iterations


def _pm(y, v, X, mask, df):
    """Paule-Mandel: the tau² at which the generalised Q equals k - p."""
    tau2, converged, iterations = solve_generalised_q(y, v, X, mask, df.astype(float))
    return np.where(df > 0, tau2, 0.0), converged | (df <= 0), iterations


def estimate_tau2(y, v, method="REML", X=None):
    """Estimate tau² for each row of a batch of meta-analyses (or meta-regressions).

    Parameters
    ----------
    y, v : array_like, shape (n_analyses, max_k) or (k,)
        Effects and within-study variances, NaN-padded.
    method : {"FE", "DL", "HE", "SJ", "ML", "REML", "PM"}
        ``FE``: tau² = 0. ``DL``: DerSimonian-Laird moment estimator. ``HE``: Hedges'
        unweighted moment estimator. ``SJ``: Sidik-Jonkman, one step from
        ``var(yi) (k-1)/k`` (metafor's start, with or without moderators). ``ML``/``REML``:
        (restricted) maximum likelihood by Fisher scoring with step halving, started at
        DL, until the change in tau² is below 1e-12 relative to max(1, tau²); where
        Fisher scoring cycles, safeguarded Newton on the score to the same tolerance, and
        tau² = 0 where that is a higher local maximum (see :func:`_fisher`). ``PM``: Paule-Mandel, the root of the
        generalised Q statistic minus (k - p). All but SJ are truncated at 0, as in
        metafor. With k <= p the estimate is 0.
    X : array_like, optional
        Moderator design matrix including the intercept column; default intercept only.

    Returns
    -------
    Tau2Estimate
    """
    if method not in TAU2_METHODS:
        raise ValueError(f"method must be one of {TAU2_METHODS}, got {method!r}")
    y, v, X, mask = prepare(y, v, X)
    m = y.shape[0]
    df = mask.sum(axis=1) - X.shape[-1]
    ones = np.ones(m, dtype=bool)
    zeros = np.zeros(m, dtype=int)
    if method == "FE":
        return Tau2Estimate(np.zeros(m), ones, zeros, method)
    if method == "DL":
        return Tau2Estimate(_dl(y, v, X, mask, df), ones, zeros, method)
    if method == "HE":
        return Tau2Estimate(_he(y, v, X, mask, df), ones, zeros, method)
    if method == "SJ":
        return Tau2Estimate(_sj(y, v, X, mask, df), ones, zeros, method)
    if method == "PM":
        return Tau2Estimate(*_pm(y, v, X, mask, df), method)
    return Tau2Estimate(*_fisher(y, v, X, mask, df, method), method)
