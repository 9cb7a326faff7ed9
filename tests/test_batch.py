"""The batched engine equals a loop of single-analysis fits, row by row.

Tolerances (relative, with an absolute floor of 1e-12 where the single fit gives 0):

* inverse-variance models, every estimator x CI x PI and every proportion measure:
  1e-10. The batch and the single fit run the same code (``pooling.fit_batch``, the
  single fit being the batch of one), so the iterative estimators (ML, REML, PM and the
  Q-profile limits) agree as closely as the closed forms; the observed differences are
  at rounding level (below 1e-13), from sums over NaN-padded rows. The absolute floor
  covers exact zeros (Q, HKSJ SE of identical proportions) that rounding leaves at
  ~1e-17 in one order of summation; infinite values (the HKSJ statistic when the SE
  is 0) must be equal.
* GLMM: 1e-7 (the issue's tolerance for the iterative GLMM), relative to the SE for the
  estimate and the interval limits (which can lie near 0 on the logit scale).
  ``fit_glmm_batch`` reaches the same maximum as ``fit_glmm`` (both stop at a Newton
  decrement of 1e-18, about 1e-9 SE from it) and takes the SE from the analytic instead
  of the central-difference Hessian; observed differences are below ~2e-8 (estimate
  ~1e-10; the largest are tau² and p-values near the boundary and SEs at tau² ~ 10).
  Closed forms (Q, QE.LRT, vt, k) agree to 1e-14 and the boundary case tau² = 0
  exactly.
* status and warnings: identical strings.
"""

import itertools

import numpy as np
import pytest

from metapool import estimators, pool_generic, pool_proportions
from metapool import glmm as glmm_module
from metapool.batch import (
    GLMM_KEYS,
    NATURAL_KEYS,
    RESULT_KEYS,
    aghq_derivatives,
    fit_glmm_batch,
    pool_generic_batch,
    pool_proportions_batch,
)
from metapool.glmm import GLMMConvergenceError, fit_glmm

RTOL_IV, RTOL_GLMM, ATOL = 1e-10, 1e-7, 1e-12
METHODS = ("FE", "DL", "HE", "SJ", "ML", "REML", "PM")
CIS = ("z", "t", "hksj", "hksj_adhoc")
PIS = ("z", "t", "riley", "none")


def _generic_batch():
    """NaN-padded batch: k = 1, 2, 3, tau² = 0, studies not left-aligned, k = 10."""
    rng = np.random.default_rng(20240611)
    k_max = 10
    ks = [1, 2, 3, 5, 10, 4, 7, 6]
    y = np.full((len(ks), k_max), np.nan)
    v = np.full((len(ks), k_max), np.nan)
    for i, k in enumerate(ks):
        vi = rng.uniform(0.01, 0.5, k)
        tau2 = 0.0 if i == 3 else rng.uniform(0.0, 0.4)
        y[i, :k] = rng.normal(0.2, 1.0) + rng.normal(0, np.sqrt(tau2 + vi))
        v[i, :k] = vi
    y[5, :4] = [0.3, 0.31, 0.29, 0.305]  # Q << k - 1: tau² = 0 (all but SJ)
    # studies spread over the row with gaps
    spread = [0, 2, 3, 6, 8, 9]
    y[7, spread], v[7, spread] = y[7, :6].copy(), v[7, :6].copy()
    y[7, [1, 4, 5]] = v[7, [1, 4, 5]] = np.nan
    return y, np.sqrt(v)


def _present(row):
    return row[~np.isnan(row)]


def _assert_row(batch, i, single, keys, rtol, label="", scale=None):
    """``batch[key][i]`` equals ``single[key]`` within ``rtol`` relative to the larger of
    ``|single[key]|`` and ``scale[key]`` (e.g. the SE for an interval limit near 0)."""
    for key in keys:
        ref = single[key]
        got = batch[key][i]
        if ref is None:
            assert np.isnan(got), f"{label} row {i} {key}: {got}, single None"
            continue
        if np.isinf(ref):  # e.g. the HKSJ statistic of identical effects (SE 0)
            assert got == ref, f"{label} row {i} {key}: batch {got!r} single {ref!r}"
            continue
        diff = abs(float(got) - float(ref))
        size = max(abs(float(ref)), (scale or {}).get(key, 0.0))
        assert diff <= max(ATOL, rtol * size), (
            f"{label} row {i} {key}: batch {got!r} single {ref!r}")


def _assert_labels(batch, i, single, label=""):
    assert batch["status"][i] == single["status"], label
    assert batch["warnings"][i] == tuple(single["warnings"]), label


NUMBERS = list(RESULT_KEYS)


@pytest.mark.parametrize("method,ci,pi", list(itertools.product(METHODS, CIS, PIS)))
def test_generic_batch_equals_loop(method, ci, pi):
    y, s = _generic_batch()
    batch = pool_generic_batch(y, s, method=method, ci=ci, pi=pi)
    for i in range(len(y)):
        res = pool_generic(_present(y[i]), _present(s[i]), method=method, ci=ci, pi=pi)
        model, natural = res.to_dict("model"), res.to_dict("natural")
        label = f"{method}/{ci}/{pi}"
        _assert_row(batch, i, model, NUMBERS, RTOL_IV, label)
        _assert_row({f"{k}": batch[f"natural_{k}"] for k in NATURAL_KEYS}, i, natural,
                    NATURAL_KEYS, RTOL_IV, label + " natural")
        _assert_labels(batch, i, model, label)


def test_generic_batch_level_measure_and_i2_options():
    y, s = _generic_batch()
    for opts in ({"level": 0.9, "measure": "none"}, {"i2": "q", "measure": "log"}):
        batch = pool_generic_batch(y, s, **opts)
        for i in range(len(y)):
            res = pool_generic(_present(y[i]), _present(s[i]), **opts)
            _assert_row(batch, i, res.to_dict("model"), NUMBERS, RTOL_IV, str(opts))
            natural = res.to_dict("natural")
            for key in NATURAL_KEYS:
                _assert_row({key: batch[f"natural_{key}"]}, i, natural, [key], RTOL_IV)


def test_fallback_warning_equals_loop(monkeypatch):
    # Fisher scoring cut short: REML falls back to DL, with the same warning per row
    monkeypatch.setattr(estimators, "_MAXITER", 1)
    y, s = _generic_batch()
    batch = pool_generic_batch(y, s, method="REML")
    fell_back = 0
    for i in range(len(y)):
        d = pool_generic(_present(y[i]), _present(s[i]), method="REML").to_dict()
        _assert_row(batch, i, d, NUMBERS, RTOL_IV)
        _assert_labels(batch, i, d)
        fell_back += any("fallback" in w for w in d["warnings"])
    assert fell_back >= 2


def test_tau2_ci_false_drops_only_the_q_profile_limits():
    y, s = _generic_batch()
    full = pool_generic_batch(y, s)
    lean = pool_generic_batch(y, s, tau2_ci=False)
    for key in RESULT_KEYS:
        if key in ("tau2_lower", "tau2_upper", "i2_lower", "i2_upper", "h2_lower",
                   "h2_upper"):
            assert np.isnan(lean[key]).all()
            assert np.isfinite(full[key][full["k"] >= 2]).any()
        else:
            np.testing.assert_array_equal(lean[key], full[key])


def test_result_layout():
    y, s = _generic_batch()
    res = pool_generic_batch(y, s)
    expected = set(RESULT_KEYS) | {f"natural_{k}" for k in NATURAL_KEYS} | {
        "status", "warnings"}
    assert set(res) == expected
    m = len(y)
    for key in expected - {"warnings"}:
        assert res[key].shape == (m,), key
    assert res["k"].dtype.kind == "i" and res["q_df"].dtype.kind == "i"
    assert res["k"].tolist() == [1, 2, 3, 5, 10, 4, 7, 6]
    assert isinstance(res["warnings"], list) and len(res["warnings"]) == m
    assert all(isinstance(w, tuple) for w in res["warnings"])
    assert res["status"][0] == "not pooled: single study"
    # exactly the keys of PoolResult.to_dict that hold numbers
    d = pool_generic([0.1, 0.2, 0.4], [0.1, 0.2, 0.1]).to_dict("model")
    numeric = {key for key, val in d.items() if isinstance(val, (int, float))
               and not isinstance(val, bool) and key != "level"}
    assert numeric == set(RESULT_KEYS)


def _proportion_batch():
    """Counts with 0/n and n/n studies, k = 1 and 2, an all-zero analysis."""
    rng = np.random.default_rng(7)
    k_max = 8
    ks = [1, 2, 3, 8, 6, 5, 4, 7, 8, 3]
    x = np.full((len(ks), k_max), np.nan)
    n = np.full((len(ks), k_max), np.nan)
    for i, k in enumerate(ks):
        nn = rng.integers(5, 80, k)
        p = 1.0 / (1.0 + np.exp(-rng.normal(-1.0, 1.2, k)))
        x[i, :k] = rng.binomial(nn, p)
        n[i, :k] = nn
    x[3, [0, 2]] = 0  # 0/n studies
    x[4, 1] = n[4, 1]  # n/n
    x[5, :5] = 0  # every study at 0
    x[6, :4] = n[6, :4]  # every study at n
    x[9, :3] = [0, n[9, 1], 0]  # only 0 or n
    x[1, :2] = [3, 3]
    n[1, :2] = [30, 30]  # k = 2, identical
    return x, n


@pytest.mark.parametrize("measure,method", list(itertools.product(
    ("PLO", "PFT", "PAS", "PR"), ("REML", "DL", "PM"))))
def test_proportions_batch_equals_loop(measure, method):
    x, n = _proportion_batch()
    batch = pool_proportions_batch(x, n, measure=measure, method=method)
    for i in range(len(x)):
        res = pool_proportions(_present(x[i]), _present(n[i]), measure=measure,
                               method=method)
        model, natural = res.to_dict("model"), res.to_dict("natural")
        label = f"{measure}/{method}"
        _assert_row(batch, i, model, NUMBERS, RTOL_IV, label)
        _assert_row({k: batch[f"natural_{k}"] for k in NATURAL_KEYS}, i, natural,
                    NATURAL_KEYS, RTOL_IV, label + " natural")
        _assert_labels(batch, i, model, label)
        cc = batch["cc_added"][i][~np.isnan(x[i])]
        assert tuple(bool(c) for c in cc) == res.cc_added


def test_proportions_continuity_correction_and_ci_options():
    x, n = _proportion_batch()
    opts = {"continuity_correction": 0.25, "ci": "z", "pi": "riley", "level": 0.8}
    batch = pool_proportions_batch(x, n, **opts)
    for i in range(len(x)):
        d = pool_proportions(_present(x[i]), _present(n[i]), **opts).to_dict("model")
        _assert_row(batch, i, d, NUMBERS, RTOL_IV)


# ---------------------------------------------------------------------------------
# GLMM
# ---------------------------------------------------------------------------------


def _glmm_batch():
    x, n = _proportion_batch()
    rng = np.random.default_rng(11)
    extra_x = np.full((6, x.shape[1]), np.nan)
    extra_n = np.full((6, x.shape[1]), np.nan)
    for i, k in enumerate([8, 6, 5, 8, 4, 7]):
        nn = rng.integers(20, 200, k)
        p = 1.0 / (1.0 + np.exp(-rng.normal(-1.5, 0.8, k)))
        extra_x[i, :k] = rng.binomial(nn, p)
        extra_n[i, :k] = nn
    extra_x[3, :8] = 0.25 * extra_n[3, :8] // 1  # about the same proportion
    extra_n[4, :4] = 40
    extra_x[4, :4] = 10  # identical proportions: tau² = 0 on the boundary
    return np.vstack([x, extra_x]), np.vstack([n, extra_n])


def _se_scale(d):
    """Estimate and interval limits are compared in SE units (they can be near 0)."""
    se = d["se"] or 0.0
    return dict.fromkeys(("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper"), se)


GLMM_NUMBERS = NUMBERS + [key for key in GLMM_KEYS if key not in ("converged",
                                                                  "iterations")]


@pytest.mark.parametrize("ci,pi", [("z", "z"), ("t", "t"), ("t", "none")])
def test_glmm_batch_equals_fit_glmm(ci, pi):
    x, n = _glmm_batch()
    batch = pool_proportions_batch(x, n, method="GLMM", ci=ci, pi=pi)
    statuses = set()
    for i in range(len(x)):
        res = fit_glmm(_present(x[i]), _present(n[i]), ci=ci, pi=pi)
        model, natural = res.to_dict("model"), res.to_dict("natural")
        _assert_row(batch, i, model, GLMM_NUMBERS, RTOL_GLMM, f"GLMM {ci}/{pi}",
                    _se_scale(model))
        _assert_row({k: batch[f"natural_{k}"] for k in NATURAL_KEYS}, i, natural,
                    NATURAL_KEYS, RTOL_GLMM, "GLMM natural")
        _assert_labels(batch, i, model, f"GLMM {ci}/{pi}")
        assert bool(batch["converged"][i]) == res.converged
        statuses.add(res.status if res.tau2 != 0.0 else "tau2 = 0")
    # the batch covers every edge case of fit_glmm
    assert len(statuses) == 6, statuses


def test_glmm_boundary_is_exact_and_layout():
    x, n = _glmm_batch()
    batch = fit_glmm_batch(x, n)
    assert set(batch) == (set(RESULT_KEYS) | set(GLMM_KEYS) | {"status", "warnings"}
                          | {f"natural_{k}" for k in NATURAL_KEYS})
    assert batch["converged"].dtype == bool and batch["iterations"].dtype.kind == "i"
    np.testing.assert_allclose(batch["natural_estimate"], 1 / (1 + np.exp(
        -batch["estimate"])), rtol=1e-15)
    i = len(x) - 2  # identical proportions
    pbar = 10 / 40
    assert batch["tau2"][i] == 0.0
    assert batch["estimate"][i] == pytest.approx(np.log(pbar / (1 - pbar)), rel=1e-14)


def test_glmm_non_convergence_gives_nan_status_and_warning():
    x, n = _glmm_batch()
    batch = fit_glmm_batch(x, n, maxiter=1)
    failed = 0
    for i in range(len(x)):
        try:
            fit_glmm(_present(x[i]), _present(n[i]), maxiter=1)
        except GLMMConvergenceError as err:
            failed += 1
            assert batch["status"][i] == "not pooled: GLMM did not converge"
            # the same message; the last estimates it quotes agree to ~1e-9
            prefix = str(err).split(" (iterations")[0]
            assert len(batch["warnings"][i]) == 1
            assert batch["warnings"][i][0].startswith(prefix)
            assert not batch["converged"][i]
            for key in ("estimate", "se", "ci_lower", "tau2", "i2", "loglik"):
                assert np.isnan(batch[key][i])
            assert np.isfinite(batch["q"][i]) and batch["q_df"][i] == batch["k"][i] - 1
    assert failed >= 3


def test_aghq_derivatives_match_glmm():
    x, n = _glmm_batch()
    mask = ~np.isnan(x)
    x, n = np.where(mask, x, 0.0), np.where(mask, n, 1.0)
    rng = np.random.default_rng(3)
    mu = rng.normal(-1.0, 1.0, len(x))
    tau = rng.uniform(-2.0, 2.0, len(x))
    tau[0] = 0.0
    ll, g, h = aghq_derivatives(x, n, mask, mu, tau)
    theta = np.stack([mu, tau], axis=-1)
    ll_ref, g_ref = glmm_module._loglik_grad(x, n, mask, theta, 7)
    np.testing.assert_allclose(ll, ll_ref, rtol=1e-14)
    np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-10)
    h_ref = glmm_module._hessian(x, n, mask, theta, 7)  # central differences
    scale = np.abs(h_ref).max(axis=(1, 2))[:, None, None]
    assert np.all(np.abs(h - h_ref) <= 1e-6 * scale)
    np.testing.assert_array_equal(h, np.swapaxes(h, 1, 2))


# ---------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------

Y2 = np.array([[0.1, 0.2, np.nan], [0.3, 0.1, 0.2]])
S2 = np.array([[0.1, 0.2, np.nan], [0.1, 0.1, 0.2]])


@pytest.mark.parametrize("yi,sei,kwargs,message", [
    ([0.1, 0.2], [0.1, 0.2], {}, "must be 2-D"),
    (Y2, S2[:, :2], {}, "same shape"),
    (Y2, np.where(np.isnan(S2), 0.1, S2), {}, "NaN in the same cells"),
    (np.full((1, 2), np.nan), np.full((1, 2), np.nan), {}, "without any study"),
    (np.zeros((0, 3)), np.zeros((0, 3)), {}, "empty"),
    (np.where(np.isnan(Y2), np.nan, np.inf), S2, {}, "finite"),
    (Y2, -S2, {}, "positive"),
    (Y2, S2, {"method": "XX"}, "method must be one of"),
    (Y2, S2, {"ci": "knha"}, "ci must be one of"),
    (Y2, S2, {"pi": "k-2"}, "pi must be one of"),
    (Y2, S2, {"level": 1.0}, "level must lie strictly"),
    (Y2, S2, {"i2": "h"}, "i2 must be one of"),
    (Y2, S2, {"measure": "PLO"}, "measure must be"),
    (Y2, S2, {"tau2_ci": "yes"}, "tau2_ci must be True or False"),
    ([["a", "b"]], [[0.1, 0.2]], {}, "must be numbers"),
])
def test_generic_validation(yi, sei, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pool_generic_batch(yi, sei, **kwargs)


X2 = np.array([[1, 2, np.nan], [0, 5, 3]])
N2 = np.array([[10, 10, np.nan], [10, 10, 10]])


@pytest.mark.parametrize("events,total,kwargs,message", [
    (X2 + 0.5, N2, {}, "whole numbers"),
    (X2, np.where(np.isnan(N2), np.nan, 0.0), {}, "at least 1"),
    (X2 + 20, N2, {}, "between 0 and total"),
    (-X2, N2, {}, "between 0 and total"),
    (X2[0], N2[0], {}, "must be 2-D"),
    (X2, N2, {"measure": "XX"}, "measure must be one of"),
    (X2, N2, {"method": "GLMM", "measure": "PFT"}, "logit scale"),
    (X2, N2, {"method": "GLMM", "ci": "hksj"}, "not defined for the GLMM"),
    (X2, N2, {"method": "GLMM", "ci": "z", "pi": "riley"}, "pi must be one of"),
    (X2, N2, {"method": "GLMM", "ci": "z", "i2": "q"}, "I² from tau² only"),
    (X2, N2, {"method": "GLMM", "ci": "z", "n_agq": 0}, "n_agq"),
    (X2, N2, {"method": "GLMM", "ci": "z", "maxiter": 0}, "maxiter"),
    (X2, N2, {"method": "GLMM", "ci": "z", "level": True}, "level"),
    (X2, N2, {"continuity_correction": 0.0}, "continuity_correction"),
])
def test_proportion_validation(events, total, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pool_proportions_batch(events, total, **kwargs)


#: large counts: the log-likelihood is a sum of terms of ~1e4 that cancel to ~1e2, so
#: near the maximum a Newton step's gain (~1e-17) is far below the rounding of the
#: comparison. fit_glmm rejects such steps: it needs 17, 209 and 20 iterations for the
#: first three and raises GLMMConvergenceError for the last (measured when this test was
#: written; the second and fourth take seconds, so they are not rerun here). The batch
#: accepts steps within the rounding error and converges in about ten.
LARGE = [
    ([2, 1, 8, 25234, 5283, 79, 2691, 12280, 14, 11107, 11],
     [6, 2, 19, 52745, 10583, 140, 6401, 32465, 33, 23550, 23]),
    ([545, 22812, 21, 292, 1], [2673, 88085, 88, 1495, 4]),
    ([24596, 1, 3238, 2843, 22480, 4, 0, 122, 28, 6, 9000, 1406],
     [25184, 5, 3684, 7638, 34393, 124, 7, 235, 72, 94, 10324, 1818]),
    ([4, 22, 1634, 1098, 19276, 1868, 43126, 25, 2040, 734],
     [4, 32, 2547, 1605, 22277, 2057, 54848, 30, 5337, 888]),
]


def test_glmm_large_counts():
    x = np.full((len(LARGE), 12), np.nan)
    n = np.full((len(LARGE), 12), np.nan)
    for i, (xi, ni) in enumerate(LARGE):
        x[i, :len(xi)], n[i, :len(ni)] = xi, ni
    batch = fit_glmm_batch(x, n)
    assert (batch["status"] == "pooled").all()
    assert batch["iterations"].max() <= 40
    for i, (xi, ni) in enumerate(LARGE[:2]):
        d = fit_glmm(xi, ni).to_dict()
        _assert_row(batch, i, d, GLMM_NUMBERS, RTOL_GLMM, scale=_se_scale(d))
    # the others: maxima all the same (zero gradient, negative definite Hessian)
    for i in (2, 3):
        xi, ni = (np.array(a, dtype=float)[None] for a in LARGE[i])
        mu, tau = batch["estimate"][i:i + 1], np.sqrt(batch["tau2"][i:i + 1])
        _, g, h = aghq_derivatives(xi, ni, np.ones_like(xi, dtype=bool), mu, tau)
        assert g[0] @ np.linalg.solve(-h[0], g[0]) <= 1e-18
        assert np.all(np.linalg.eigvalsh(-h[0]) > 0)
