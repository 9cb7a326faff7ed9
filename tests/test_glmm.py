"""Binomial-normal GLMM (metapool.glmm) against R metafor ``rma.glmm``, number by number.

Goldens: tests/golden/glmm_goldens.json, written by
``Rscript tests/golden/make_goldens_glmm.R`` (metafor 3.8-1, lme4 1.1-31). Every fit is
the recorded call, e.g.::

    rma.glmm(measure = "PLO", xi = events, ni = total, data = dat, method = "ML",
             test = "z", nAGQ = 7, retfit = TRUE)
    predict(res); predict(res, transf = transf.ilogit)

once with metafor's defaults (``default``: glmer with bobyqa + Nelder-Mead,
``tolPwrss = 1e-7``) and once with a tight optimiser (``tight``: ``control =
list(glmerCtrl = list(optimizer = "bobyqa", tolPwrss = 1e-10, optCtrl = list(rhoend =
1e-12, maxfun = 1e5)))``), each with ``test = "z"`` and ``test = "t"``.

Tolerances. metapool maximises the same AGHQ likelihood to a Newton decrement of 1e-18
(about 1e-9 SE from the maximum), so the differences are lme4's:

* the likelihood itself, at lme4's own (beta, theta): AGHQ deviance relative 1e-9,
  conditional modes absolute 1e-8. Both sides evaluate the same formula; lme4 scales the
  nodes with the Cholesky factor of its last PIRLS iteration, formed before the final
  update of the modes (src/external.cpp, ``glmerAGQ``), so its scale differs from the
  exact curvature at the mode by ~1e-5 relative for 0-event studies (checked:
  0.72376048 vs 0.72376541). As the 7-point rule is not exact this moves the deviance by
  up to ~5e-10 relative (achieved 4e-10 for nielweise2007_treatment, ~1e-13 without
  0-event studies); the gap shrinks with nAGQ;
* location (estimate, CI and PI bounds, on the logit scale): in units of the SE,
  ``|ours - R| <= tol * se``, because relative errors blow up for estimates near 0
  (glmm_k2 has mu = 0.02). ``tight``: estimate 1e-6 SE (achieved 2e-7), CI/PI 2e-5 SE
  (achieved 6e-6, from the SE); ``default``: 1e-4 and 2e-4 SE (achieved 2.3e-5 and
  5e-5): lme4's default Nelder-Mead stops with a deviance gradient of up to 2.5e-4, so
  the default reference itself is only that close to the maximum;
* se: relative 1e-5 (tight; achieved 2.1e-6: lme4's SE comes from a finite-difference
  Hessian of the deviance, step 1e-4, evaluated through PIRLS), 1e-4 (default; 7e-6);
* tau², I², H²: relative 5e-7 (tight; achieved 9e-8) and 1e-4 (default; 2.1e-5); where
  R's tau² is 0, ours must be exactly 0.0 (and I² 0, H² 1);
* test statistic: ``tol_est + |stat| * tol_se``; p-values through the statistic they
  imply (``isf(p / 2)``), since a relative tolerance on p ~ 1e-42 would be meaningless;
* natural scale (``transf.ilogit``): relative 5e-6 (tight; 1.3e-6), 1e-4 (default;
  1.3e-5);
* QE.Wld: relative 1e-6 (metafor takes it from the last IRLS iterate of the saturated
  logistic glm, which stops at a deviance change of 1e-8; 0/n studies are still
  contributing ~1e-7 there while their limit is 0); QE.LRT: relative 1e-8 + absolute
  1e-8 (the saturated glm's log-likelihood of 0/n studies); their p-values via
  ``chi2.isf``;
* log-likelihood (marginal, the maximised quantity): relative 1e-8 (flat at the
  maximum; the reference carries the saturated glm's ~1e-8); metafor's printed
  log-likelihood (conditional, at the conditional modes): relative 1e-7 (tight; 1.2e-8)
  and 1e-4 (default; 2.6e-6);
* vt (typical within-study variance for I²): relative 1e-12 (closed form).

Literature values (rounded to 4 digits) for a cross-check: nielweise2007 control arm
GLMM logit -3.4964 (se 0.2570), tau² 0.8124 -> 0.0294 [0.0180, 0.0478]; treatment arm
-4.8121 (se 0.3555), tau² 0.8265; pritz1997 1.3766 (se 0.2884), tau² 0.5893 -> 0.7984
[0.6924, 0.8746], PI [0.4426, 0.9518]; with test = "t" CI [0.6800, 0.8808].
"""

import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

from metapool.glmm import (
    GLMMConvergenceError,
    GLMMResult,
    _aghq,
    _counts_2d,
    _tau_curvature_at_zero,
    conditional_modes,
    fit_glmm,
    marginal_loglik,
)
from metapool.pooling import fit_batch

GOLDEN = json.loads((Path(__file__).parent / "golden" / "glmm_goldens.json").read_text())
CASES = GOLDEN["cases"]

#: cases metafor fits (the others document its errors / garbage and metapool's result)
FITTED = ["dcr_default", "glmm_k2", "glmm_tau2zero", "glmm_zeros", "glmm_zeros_boundary",
          "nielweise2007_control", "nielweise2007_treatment", "orr_default", "pritz1997"]
R_ERRORS = ["glmm_all_events", "glmm_all_zero", "glmm_identical", "glmm_k1"]
VARIANTS = ("default", "tight")
TESTS = ("z", "t")

TOL = {
    "tight": {"est": 1e-6, "interval": 2e-5, "se": 1e-5, "tau2": 5e-7, "natural": 5e-6,
              "loglik_cond": 1e-7},
    "default": {"est": 1e-4, "interval": 2e-4, "se": 1e-4, "tau2": 1e-4, "natural": 1e-4,
                "loglik_cond": 1e-4},
}
RTOL_QWLD = 1e-6
RTOL_QLRT, ATOL_QLRT = 1e-8, 1e-8
RTOL_LOGLIK = 1e-8
RTOL_VT = 1e-12

_worst = {}
_compared = [0]


def _note(key, err):
    _worst[key] = max(_worst.get(key, 0.0), err)
    _compared[0] += 1


def _counts(case):
    inp = CASES[case]["input"]
    return np.asarray(inp["events"], float), np.asarray(inp["total"], float)


@cache
def _fit(case, test):
    x, n = _counts(case)
    return fit_glmm(x, n, ci=test, pi=test)


def _ll_saturated(x, n):
    """Exact saturated binomial log-likelihood, sum log dbinom(x, n, x / n)."""
    lc = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)
    return float((lc + special.xlogy(x, x / n) + special.xlogy(n - x, 1 - x / n)).sum())


def _implied_stat(p, test, df):
    return stats.t.isf(p / 2, df) if test == "t" else stats.norm.isf(p / 2)


# --------------------------------------------------------------------------------------
# the likelihood at lme4's own estimates (no optimiser involved)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", FITTED)
@pytest.mark.parametrize("variant", VARIANTS)
def test_likelihood_matches_lme4_at_its_estimates(case, variant):
    ref = CASES[case]["fits"][f"{variant}_z"]
    lme = ref["lme4"]
    x, n = _counts(case)
    beta, theta = lme["beta"], lme["theta"]
    sat = _ll_saturated(x, n)
    # R: res$res.ML@devcomp$cmp[["dev"]] (AGHQ deviance, relative to the saturated model)
    dev = 2.0 * (sat - marginal_loglik(x, n, beta, theta)[0])
    err = abs(dev - lme["deviance_agq"]) / lme["deviance_agq"]
    _note("deviance_agq at lme4 estimates (rel)", err)
    assert err <= 1e-9, (dev, lme["deviance_agq"])
    # R: lme4::getME(res$res.ML, "u") (spherical conditional modes)
    u = conditional_modes(x, n, beta, theta)[0]
    np.testing.assert_allclose(u, lme["u"], rtol=0, atol=1e-8)
    _note("conditional modes u at lme4 estimates (abs)", float(np.abs(u - lme["u"]).max()))
    # R: deviance(res$res.ML), lme4's conditional deviance (metafor's printed logLik)
    eta = beta + theta * u
    p = special.expit(eta)
    dev_cond = 2.0 * float((special.xlogy(x, x / n) - special.xlogy(x, p)
                            + special.xlogy(n - x, 1 - x / n)
                            - special.xlogy(n - x, 1 - p)).sum())
    err = abs(dev_cond - lme["deviance_conditional"]) / lme["deviance_conditional"]
    _note("conditional deviance at lme4 estimates (rel)", err)
    assert err <= 1e-9


# --------------------------------------------------------------------------------------
# the fit
# --------------------------------------------------------------------------------------


def _check_location(label, ours, ref, se_ref, tol):
    assert ours is not None, label
    err = abs(ours - ref) / se_ref
    _note(label + " (SE units)", err)
    assert err <= tol, f"{label}: {ours!r} vs R {ref!r} ({err:.2e} SE > {tol:g})"


def _check_rel(label, ours, ref, rtol, atol=0.0):
    assert ours is not None, label
    diff = abs(ours - ref)
    if ref != 0:
        _note(label + " (rel)", diff / abs(ref))
    else:
        _compared[0] += 1
    assert diff <= atol + rtol * abs(ref), f"{label}: {ours!r} vs R {ref!r}"


@pytest.mark.parametrize("case", FITTED)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("test", TESTS)
def test_fit_matches_metafor(case, variant, test):
    ref = CASES[case]["fits"][f"{variant}_{test}"]
    assert ref["error"] is None
    res = _fit(case, test)
    d = res.to_dict()
    tol = TOL[variant]
    tag = f"{variant}"
    k = ref["k"]
    assert d["k"] == k and d["status"] == "pooled" and d["converged"] is True
    assert d["q_df"] == ref["q_df"] == k - 1
    if test == "t":
        assert ref["df"] == k - 1
    se_ref = ref["se"]

    _check_location(f"{tag} estimate", d["estimate"], ref["estimate"], se_ref, tol["est"])
    _check_rel(f"{tag} se", d["se"], se_ref, tol["se"])
    for key in ("ci_lower", "ci_upper"):
        _check_location(f"{tag} {key}", d[key], ref[key], se_ref, tol["interval"])
    stat_tol = tol["est"] + abs(ref["stat"]) * tol["se"]
    err = abs(d["stat"] - ref["stat"])
    _note(f"{tag} stat (abs)", err)
    assert err <= stat_tol
    # p-value through the statistic it implies
    z_ours = _implied_stat(d["p_value"], test, k - 1)
    z_ref = _implied_stat(ref["pval"], test, k - 1)
    _note(f"{tag} p-value as statistic (abs)", abs(z_ours - z_ref))
    assert abs(z_ours - z_ref) <= stat_tol
    assert abs(z_ref - abs(ref["stat"])) < 1e-6  # the implied statistic is R's own

    if ref["tau2"] == 0:
        # R: exactly 0 from glmer's bounded optimiser; ours exactly 0 by the boundary rule
        assert d["tau2"] == 0.0 and d["i2"] == 0.0 and d["h2"] == 1.0
        _compared[0] += 3
    else:
        for key in ("tau2", "i2", "h2"):
            _check_rel(f"{tag} {key}", d[key], ref[key], tol["tau2"])
    _check_rel("vt", d["vt"], ref["vt"], RTOL_VT)

    if k >= 3:
        for key in ("pi_lower", "pi_upper"):
            _check_location(f"{tag} {key}", d[key], ref[key], se_ref, tol["interval"])
    else:
        # documented: no prediction interval for k < 3 (metafor gives one with df = 1)
        assert d["pi_lower"] is None and d["pi_upper"] is None
    nat = res.to_dict("natural")
    for key in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper"):
        if nat[key] is None:
            continue
        _check_rel(f"{tag} natural {key}", nat[key], ref["natural"][key], tol["natural"])

    # heterogeneity tests and log-likelihoods
    _check_rel("QE.Wld", d["q"], ref["q_wld"], RTOL_QWLD)
    _check_rel("QE.LRT", d["q_lrt"], ref["q_lrt"], RTOL_QLRT, ATOL_QLRT)
    for ours, want, q, rt in ((d["q_p"], ref["q_wld_p"], ref["q_wld"], RTOL_QWLD),
                              (d["q_lrt_p"], ref["q_lrt_p"], ref["q_lrt"], RTOL_QLRT)):
        implied = stats.chi2.isf(ours, k - 1)
        _check_rel("QE p-values as statistic", implied, stats.chi2.isf(want, k - 1),
                   10 * rt, ATOL_QLRT)
        assert abs(stats.chi2.isf(want, k - 1) - q) <= 1e-6 * q + 1e-9
    _check_rel("loglik (marginal)", d["loglik"], ref["loglik_marginal"], RTOL_LOGLIK)
    _check_rel(f"{tag} loglik (metafor, conditional)", d["loglik_conditional"],
               ref["loglik_metafor"], tol["loglik_cond"])


def test_literature_values():
    # Nielweise et al. 2007 and Pritz 1997 as published for metafor's rma.glmm
    # (rounded to 4 digits): see the module docstring
    c = _fit("nielweise2007_control", "z")
    assert (round(c.estimate, 4), round(c.se, 4), round(c.tau2, 4)) == (-3.4964, 0.2570,
                                                                        0.8124)
    cn = c.to_dict("natural")
    assert [round(cn[k], 4) for k in ("estimate", "ci_lower", "ci_upper")] == [
        0.0294, 0.0180, 0.0478]
    t = _fit("nielweise2007_treatment", "z")
    assert (round(t.estimate, 4), round(t.se, 4), round(t.tau2, 4)) == (-4.8121, 0.3555,
                                                                        0.8265)
    p = _fit("pritz1997", "z")
    assert (round(p.estimate, 4), round(p.se, 4), round(p.tau2, 4)) == (1.3766, 0.2884,
                                                                        0.5893)
    pn = p.to_dict("natural")
    assert [round(pn[k], 4) for k in ("estimate", "ci_lower", "ci_upper", "pi_lower",
                                      "pi_upper")] == [0.7984, 0.6924, 0.8746, 0.4426,
                                                       0.9518]
    ptn = _fit("pritz1997", "t").to_dict("natural")
    assert [round(ptn[k], 4) for k in ("ci_lower", "ci_upper")] == [0.6800, 0.8808]


# --------------------------------------------------------------------------------------
# edge cases with a defined result
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["glmm_tau2zero", "glmm_zeros_boundary"])
def test_boundary_is_exactly_zero(case):
    res = _fit(case, "z")
    x, n = _counts(case)
    pbar = x.sum() / n.sum()
    assert res.tau2 == 0.0 and res.i2 == 0.0 and res.h2 == 1.0
    assert _tau_curvature_at_zero(x, n) < 0
    # the pooled binomial: mu = logit(sum x / sum n), se = 1 / sqrt(p (1 - p) sum n)
    assert res.estimate == pytest.approx(math.log(pbar / (1 - pbar)), rel=1e-14)
    assert res.se == pytest.approx(1 / math.sqrt(pbar * (1 - pbar) * n.sum()), rel=1e-14)
    # R: glmer reports theta = 0 exactly here, with a singular-fit message
    for key in ("default_z", "tight_z"):
        assert CASES[case]["fits"][key]["tau2"] == 0


def test_identical_proportions():
    # lme4 refuses ("Response is constant"); the GLMM maximum is at tau² = 0, where the
    # model is the common-effect binomial model:
    # R: rma.glmm(measure = "PLO", xi = events, ni = total, data = dat, method = "FE")
    spec = CASES["glmm_identical"]
    assert all(f["error"].startswith("Cannot fit ML model") for f in spec["fits"].values())
    fe = spec["fe_reference"]
    res = _fit("glmm_identical", "z")
    assert res.pooled and res.tau2 == 0.0 and res.q == 0.0 and res.q_lrt == 0.0
    for key in ("estimate", "se", "ci_lower", "ci_upper"):
        # closed form on both sides: 1e-8
        _check_rel(f"identical {key}", getattr(res, key), fe[key], 1e-8)
    assert res.vt == pytest.approx(fe["vt"], rel=1e-12)


def test_k1_not_pooled():
    # R: metafor stops ("Number of parameters to be estimated is larger than the number
    # of observations."); metapool reports the study on its own, as pooling.py does
    assert all("larger than the number of observations" in f["error"]
               for f in CASES["glmm_k1"]["fits"].values())
    res = fit_glmm([3], [10])
    assert res.status == "not pooled: single study" and not res.pooled
    d = res.to_dict()
    for key in ("estimate", "se", "stat", "ci_lower", "ci_upper", "pi_lower", "pi_upper",
                "p_value", "tau2", "tau", "i2", "h2", "q", "q_p", "q_lrt", "q_lrt_p",
                "loglik", "loglik_conditional", "vt", "weights"):
        assert d[key] is None, key
    assert d["q_df"] == 0 and d["k"] == 1
    assert res.to_dict("natural")["estimate"] is None


@pytest.mark.parametrize("case,direction", [("glmm_all_zero", "-infinity"),
                                            ("glmm_all_events", "+infinity")])
def test_all_zero_or_all_events_not_estimable(case, direction):
    # R: rma.glmm errors ("Cannot fit ML model"; glmer: "Response is constant")
    assert all(f["error"].startswith("Cannot fit ML model")
               for f in CASES[case]["fits"].values())
    x, n = _counts(case)
    res = fit_glmm(x, n)
    assert res.status.startswith("not pooled: every study has")
    assert direction in res.status
    assert res.converged is False and res.estimate is None and res.tau2 is None
    # the homogeneity statistics describe the data and exist: all 0
    assert res.q == 0.0 and res.q_lrt == 0.0 and res.q_p == 1.0 and res.q_lrt_p == 1.0
    assert res.q_df == 2


def test_zero_and_all_events_not_estimable():
    # only 0/n and n/n studies: the likelihood rises without bound as tau -> infinity.
    # lme4 returns an arbitrary large tau² without an error (recorded: ~4e4, differing
    # between optimisers); metapool reports "not pooled" instead.
    spec = CASES["glmm_zero_and_all"]
    assert spec["fits"]["default_z"]["tau2"] > 1e4
    assert spec["fits"]["tight_z"]["tau2"] > 1e4
    x, n = _counts("glmm_zero_and_all")
    res = fit_glmm(x, n)
    assert not res.pooled and "tau² -> infinity" in res.status and not res.converged
    ref = spec["fits"]["default_z"]
    _check_rel("QE.LRT 0-and-n", res.q_lrt, ref["q_lrt"], RTOL_QLRT, ATOL_QLRT)
    assert res.q == 0.0 and abs(ref["q_wld"]) < 1e-6  # glm's last IRLS iterate


def test_k2():
    res = _fit("glmm_k2", "t")
    assert res.pooled and res.pi_lower is None and res.pi_upper is None
    assert any("k = 2" in w for w in res.warnings)
    # t with 1 df
    assert res.ci_upper - res.estimate == pytest.approx(stats.t.ppf(0.975, 1) * res.se,
                                                        rel=1e-12)


def test_studies_with_zero_and_all_events_enter_uncorrected():
    # the binomial likelihood of a 0/n study is (1 - p)^n: no continuity correction
    x = np.array([0, 3, 7, 12.0])
    n = np.array([15, 30, 25, 40.0])
    mu, tau = -1.2, 0.6
    z, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    # accurate reference by non-adaptive 80-point quadrature (smooth integrand, small tau)
    p = special.expit(mu + tau * z[:, None])
    lik = (w[:, None] * stats.binom.pmf(x, n, p)).sum(axis=0)
    ref = np.log(lik).sum()
    # AGHQ converges to it; 7 points (lme4's default) are within 1e-7 here
    assert marginal_loglik(x, n, mu, tau, n_agq=40)[0] == pytest.approx(ref, rel=1e-12)
    assert marginal_loglik(x, n, mu, tau)[0] == pytest.approx(ref, rel=1e-7)
    # a continuity-corrected likelihood would be far off
    xc, nc = np.where(x == 0, 0.5, x), np.where(x == 0, n + 1, n)
    assert abs(marginal_loglik(xc, nc, mu, tau, n_agq=40)[0] - ref) > 1e-2


# --------------------------------------------------------------------------------------
# properties of the implementation
# --------------------------------------------------------------------------------------


def test_mirror_symmetry_and_order_invariance():
    x, n = _counts("nielweise2007_control")
    a = fit_glmm(x, n)
    b = fit_glmm(n - x, n)  # non-events: logit -> -logit
    assert b.estimate == pytest.approx(-a.estimate, rel=1e-8)
    assert b.se == pytest.approx(a.se, rel=1e-6)
    assert b.tau2 == pytest.approx(a.tau2, rel=1e-7)
    perm = np.random.default_rng(1).permutation(x.size)
    c = fit_glmm(x[perm], n[perm])
    assert c.estimate == pytest.approx(a.estimate, rel=1e-9)
    assert c.tau2 == pytest.approx(a.tau2, rel=1e-7)


def test_gradient_is_exact():
    x, n = _counts("pritz1997")
    xs, ns, mask = _counts_2d(x, n)
    for mu, tau in [(1.3, 0.7), (0.5, -1.2), (-2.0, 3.0), (1.0, 0.0)]:
        g = _aghq(xs, ns, mask, np.array([mu]), np.array([tau]), 7, True)[2][0]
        h = 1e-6
        fd = [(marginal_loglik(x, n, mu + h, tau) - marginal_loglik(x, n, mu - h, tau))[0]
              / (2 * h),
              (marginal_loglik(x, n, mu, tau + h) - marginal_loglik(x, n, mu, tau - h))[0]
              / (2 * h)]
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)


def test_tau_curvature_closed_form():
    # d² loglik / d tau² at tau = 0 equals sum (x - n p)² - p (1 - p) sum n for AGHQ
    for case in ("pritz1997", "glmm_tau2zero", "orr_default"):
        x, n = _counts(case)
        p = x.sum() / n.sum()
        mu = math.log(p / (1 - p))
        d = 1e-4  # truncation error ~ d², rounding ~ 1e-16 |loglik| / d²: both < 1e-6
        fd = 2 * (marginal_loglik(x, n, mu, d) - marginal_loglik(x, n, mu, 0.0))[0] / d**2
        assert fd == pytest.approx(_tau_curvature_at_zero(x, n), rel=1e-6)


def test_batched_likelihood_matches_single_rows():
    x1, n1 = _counts("orr_default")
    x2, n2 = _counts("glmm_k2")
    xs = np.full((2, x1.size), np.nan)
    ns = np.full((2, x1.size), np.nan)
    xs[0], ns[0] = x1, n1
    xs[1, :2], ns[1, :2] = x2, n2
    mu, tau = np.array([0.6, 0.1]), np.array([0.4, 0.5])
    both = marginal_loglik(xs, ns, mu, tau)
    assert both[0] == pytest.approx(marginal_loglik(x1, n1, 0.6, 0.4)[0], rel=1e-14)
    assert both[1] == pytest.approx(marginal_loglik(x2, n2, 0.1, 0.5)[0], rel=1e-14)


def test_quadrature_points():
    x, n = _counts("pritz1997")
    fits = {q: fit_glmm(x, n, n_agq=q) for q in (1, 7, 15, 25)}
    # the quadrature has converged by 15 points; 7 (lme4/metafor's default) is within
    # 1e-4, the Laplace approximation (1) visibly differs
    assert fits[15].estimate == pytest.approx(fits[25].estimate, rel=1e-9)
    assert fits[7].estimate == pytest.approx(fits[25].estimate, rel=1e-4)
    assert fits[1].n_agq == 1 and fits[1].pooled
    assert fits[1].tau2 != pytest.approx(fits[25].tau2, rel=1e-3)


def test_coarse_quadrature_warns():
    # most studies at 0 or n events and tau² in the hundreds: the 7-point rule is too
    # coarse for the estimate to be trusted (it moves with nAGQ, in metafor as here)
    x = [3, 4, 0, 2, 3, 0, 0, 1, 3, 9, 1, 9, 6, 4, 4, 0, 0]
    n = [3, 4, 7, 2, 3, 6, 9, 3, 4, 9, 1, 9, 6, 4, 4, 5, 2]
    res = fit_glmm(x, n)
    assert res.pooled and res.tau2 > 100
    assert any("quadrature is coarse" in w for w in res.warnings)
    for case in FITTED:
        assert not any("quadrature" in w for w in _fit(case, "z").warnings), case


def test_random_data_gives_a_verified_maximum_or_a_defined_result():
    # fuzz: every fit either reaches a maximum (zero gradient, or the tau = 0 boundary
    # with a non-positive tau² score) or reports the documented not-pooled result
    rng = np.random.default_rng(20250101)
    for _ in range(25):
        k = int(rng.integers(2, 15))
        n = rng.integers(1, int(rng.choice([4, 40, 4000])), size=k)
        eta = rng.normal(rng.choice([-5.0, 0.0, 5.0]), rng.choice([0.01, 1.0, 2.5]), k)
        x = rng.binomial(n, special.expit(eta))
        res = fit_glmm(x, n)
        inner = ((x > 0) & (x < n)).any()
        assert res.pooled == inner
        if not inner:
            assert not res.converged
            continue
        assert res.converged
        xs, ns, mask = _counts_2d(x, n)
        g = _aghq(xs, ns, mask, np.array([res.estimate]),
                  np.array([math.sqrt(res.tau2)]), 7, True)[2][0]
        assert abs(g[0]) < 1e-6
        if res.tau2 > 0:
            assert abs(g[1]) < 1e-6
        else:
            assert _tau_curvature_at_zero(x.astype(float), n.astype(float)) <= 0
        d = res.to_dict()
        assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in d.values())


def test_nonconvergence_raises():
    x, n = _counts("pritz1997")
    with pytest.raises(GLMMConvergenceError):
        fit_glmm(x, n, maxiter=1)


def test_to_dict_plain_types_and_batch_keys():
    res = _fit("pritz1997", "z")
    assert isinstance(res, GLMMResult)
    row = fit_batch(np.array([[0.1, 0.5, 0.3]]), np.array([[0.1, 0.2, 0.1]]))
    for scale in ("model", "natural"):
        d = res.to_dict(scale)
        assert set(row) <= set(d)
        assert {"loglik", "q_lrt", "q_lrt_p"} <= set(d)
        assert d["weights"] is None and d["method"] == "GLMM"
        for key, val in d.items():
            assert val is None or type(val) in (int, float, bool, str, list), (key, val)
            if isinstance(val, float):
                assert math.isfinite(val), key
    with pytest.raises(ValueError, match="scale"):
        res.to_dict("log")


@pytest.mark.parametrize("events,total,kwargs,match", [
    ([1, 2], [10], {}, "same length"),
    ([], [], {}, "empty"),
    ([-1, 2], [10, 10], {}, "between 0 and total"),
    ([11, 2], [10, 10], {}, "between 0 and total"),
    ([1, 2], [0, 10], {}, "at least 1"),
    ([1.5, 2], [10, 10], {}, "whole numbers"),
    ([np.nan, 2], [10, 10], {}, "finite"),
    ([1, 2], [np.inf, 10], {}, "finite"),
    ([[1, 2]], [[10, 10]], {}, "one-dimensional"),
    (["a", 2], [10, 10], {}, "numbers"),
    ([1, 2], [10, 10], {"ci": "hksj"}, "ci must be"),
    ([1, 2], [10, 10], {"pi": "riley"}, "pi must be"),
    ([1, 2], [10, 10], {"level": 1.0}, "level"),
    ([1, 2], [10, 10], {"level": 0}, "level"),
    ([1, 2], [10, 10], {"level": True}, "level"),
    ([1, 2], [10, 10], {"n_agq": 0}, "n_agq"),
    ([1, 2], [10, 10], {"n_agq": 7.0}, "n_agq"),
    ([1, 2], [10, 10], {"n_agq": True}, "n_agq"),
    ([1, 2], [10, 10], {"maxiter": 0}, "maxiter"),
])
def test_input_validation(events, total, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_glmm(events, total, **kwargs)


# --------------------------------------------------------------------------------------
# the golden grid
# --------------------------------------------------------------------------------------


def test_golden_grid_is_complete():
    # the comparison cannot quietly shrink
    assert sorted(CASES) == sorted(FITTED + R_ERRORS + ["glmm_zero_and_all"])
    meta = GOLDEN["meta"]
    assert meta["metafor"] and meta["lme4"] and meta["R"]
    for case, spec in CASES.items():
        assert sorted(spec["fits"]) == sorted(f"{v}_{t}" for v in VARIANTS for t in TESTS)
        assert spec["input"]["k"] == len(spec["input"]["events"])
        for fit in spec["fits"].values():
            assert fit["call"].startswith('rma.glmm(measure = "PLO"')
            assert ("nAGQ = 7" in fit["call"]) and ('method = "ML"' in fit["call"])
            assert (fit["error"] is None) == (case not in R_ERRORS)
            if fit["error"] is None:
                assert fit["lme4"]["nAGQ"] == 7
    assert "fe_reference" in CASES["glmm_identical"]


def test_report_largest_differences(capsys):
    # runs last in this module: prints the worst difference per quantity and the count
    # of golden numbers compared (for the closing note of the parity suite)
    with capsys.disabled():
        for key in sorted(_worst):
            print(f"\nglmm parity worst {key}: {_worst[key]:.2e}", end="")
        print(f"\nglmm parity: {_compared[0]} golden numbers compared", end="")
