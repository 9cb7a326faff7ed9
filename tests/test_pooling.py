"""Pooling behaviour beyond the metafor grid: edge cases, options, batch = single."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from metapool import pool_generic, pool_proportions
from metapool.pooling import fit_batch

YI = np.array([-0.6, -0.08, -0.24, 0.17, -0.3])
SEI = np.array([0.35, 0.08, 0.15, 0.31, 0.2])


def test_single_study_is_reported_not_pooled():
    res = pool_generic([-0.6], [0.35])
    assert res.k == 1 and res.status == "not pooled: single study"
    d = res.to_dict("natural")
    assert all(d[key] is None for key in ("estimate", "ci_lower", "pi_lower", "tau2", "i2"))
    assert "k = 1" in d["warnings"][0]


def test_two_studies_pool_without_prediction_interval():
    res = pool_generic(YI[:2], SEI[:2])
    assert res.pooled and res.k == 2
    assert res.pi_lower is None and res.pi_upper is None
    assert any("k = 2" in w for w in res.warnings)


def test_all_event_and_zero_event_studies_give_finite_results():
    res = pool_proportions([0, 12, 23, 5], [10, 12, 23, 40])
    d = res.to_dict("natural")
    assert res.cc_added == (True, True, True, False)
    for key in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "tau2", "i2"):
        assert d[key] is not None and math.isfinite(d[key])
    assert 0 < d["ci_lower"] < d["estimate"] < d["ci_upper"] < 1


def test_tau2_zero_collapses_pi_onto_ci_under_hksj():
    # identical effects: tau² = 0 and the t-based PI equals the HKSJ CI
    res = pool_generic([0.2, 0.2, 0.2, 0.2], [0.1, 0.2, 0.3, 0.4], measure="none")
    assert res.tau2 == 0.0 and res.i2 == 0.0
    assert_allclose([res.pi_lower, res.pi_upper], [res.ci_lower, res.ci_upper])


def test_hksj_narrower_than_wald_is_reported():
    res = pool_generic([0.10, 0.12, 0.11, 0.09], np.sqrt([0.04, 0.05, 0.03, 0.06]),
                       measure="none")
    assert any("narrower than the Wald" in w for w in res.warnings)


def test_batch_rows_equal_single_fits():
    # NaN padding: analyses with 5, 3 and 2 studies in one call
    y = np.full((3, 5), np.nan)
    v = np.full((3, 5), np.nan)
    y[0], v[0] = YI, SEI**2
    y[1, :3], v[1, :3] = YI[:3], SEI[:3] ** 2
    y[2, :2], v[2, :2] = YI[3:], SEI[3:] ** 2
    fit = fit_batch(y, v)
    for row, (yy, ss) in enumerate([(YI, SEI), (YI[:3], SEI[:3]), (YI[3:], SEI[3:])]):
        single = pool_generic(yy, ss)
        assert fit["k"][row] == single.k
        assert_allclose(fit["estimate"][row], single.estimate, rtol=1e-13)
        assert_allclose(fit["tau2"][row], single.tau2, rtol=1e-12, atol=1e-15)
        assert_allclose(fit["ci_upper"][row], single.ci_upper, rtol=1e-13)


@pytest.mark.parametrize("kwargs,message", [
    ({"method": "XX"}, "method must be one of"),
    ({"ci": "knha"}, "ci must be one of"),
    ({"pi": "k-2"}, "pi must be one of"),
    ({"level": 1.0}, "level must lie strictly"),
])
def test_invalid_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pool_generic(YI, SEI, **kwargs)


@pytest.mark.parametrize("yi,sei,message", [
    ([], [], "empty"), ([0.1, np.nan], [0.1, 0.2], "finite"),
    ([0.1, 0.2], [0.1, 0.0], "positive"), ([0.1, 0.2], [0.1], "same length"),
])
def test_invalid_inputs_are_named(yi, sei, message):
    with pytest.raises(ValueError, match=message):
        pool_generic(yi, sei)


def test_natural_scale_back_transforms():
    res = pool_generic(YI, SEI)
    m, n = res.to_dict("model"), res.to_dict("natural")
    for key in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper"):
        assert_allclose(n[key], math.exp(m[key]))
    assert n["scale"] == "hazard ratio" and m["scale"] == "log hazard ratio"
    with pytest.raises(ValueError):
        res.to_dict("odds")


def test_non_convergence_falls_back_to_dl_and_says_so(monkeypatch):
    import metapool.estimators as est
    monkeypatch.setattr(est, "_MAXITER", 1)
    res = pool_generic(YI, SEI, method="REML")
    assert any("did not converge" in w and "DerSimonian-Laird" in w for w in res.warnings)
    dl = pool_generic(YI, SEI, method="DL")
    assert res.tau2 == pytest.approx(dl.tau2)


def test_adhoc_is_never_narrower_than_wald_with_t():
    # toy data with Q < k - 1: HKSJ shrinks, the ad hoc rule does not
    y, s = [0.10, 0.12, 0.11, 0.09], np.sqrt([0.04, 0.05, 0.03, 0.06])
    hk = pool_generic(y, s, ci="hksj", measure="none")
    ah = pool_generic(y, s, ci="hksj_adhoc", measure="none")
    t = pool_generic(y, s, ci="t", measure="none")
    assert hk.ci_upper - hk.ci_lower < ah.ci_upper - ah.ci_lower
    assert ah.ci_upper == pytest.approx(t.ci_upper)


def test_q_based_i2_option():
    res = pool_generic(YI, SEI, i2="q")
    q, df = res.q, res.k - 1
    assert res.i2 == pytest.approx(max(0.0, 100 * (q - df) / q))
    assert res.i2_lower is None and res.to_dict()["i2_method"] == "Q-based"
