"""Kaplan-Meier reconstruction (metapool.km): Guyot et al. 2012 on curves of known data.

The main check follows the validation design of Guyot et al. (2012): individual data are
simulated with a known HR, their KM curves are "digitised" the way a reader would (every
step, or a regular grid, with reading noise in time and survival), a risk table is taken
at regular times, and the data reconstructed from curve + table are compared with the
simulated ones.
"""

import json
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from metapool.km import (
    KMCurve,
    kaplan_meier,
    km_paths,
    logrank,
    read_km,
    reconstruct_hr,
    reconstruct_ipd,
    rmst,
)
from metapool.survival import best_conversion

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "km"
TRUE_HR = 0.6
N_ARM = 300
RISK_TIMES = np.arange(0.0, 43.0, 6.0)


# --------------------------------------------------------------------------- simulation
def simulate(seed=20240601, n=N_ARM, hr=TRUE_HR, median_ctrl=12.0):
    """Exponential survival (control median 12 months), HR 0.6, uniform censoring U(6, 48)."""
    rng = np.random.default_rng(seed)
    lam_c = math.log(2) / median_ctrl
    out = {}
    for arm, lam in (("experimental", lam_c * hr), ("control", lam_c)):
        t = rng.exponential(1 / lam, n)
        c = rng.uniform(6, 48, n)
        # times recorded to 0.01 month, never 0 (a curve starts at 1 at time 0)
        time = np.maximum(np.round(np.minimum(t, c), 2), 0.01)
        out[arm] = (time, (t <= c).astype(int))
    return out


def digitise(time, event, rng, *, grid=None, noise_s=0.002, noise_t=0.03):
    """Points a digitiser would read: the bottom of every step (or a grid), with noise."""
    kt, _, _, ks = kaplan_meier(time, event)
    end = time.max()
    if grid is None:
        pt = np.concatenate([kt, [end]])
        ps = np.concatenate([ks, [ks[-1]]])
    else:
        pt = np.linspace(0, end, grid + 1)[1:]
        idx = np.searchsorted(kt, pt, side="right") - 1
        ps = np.where(idx >= 0, ks[np.clip(idx, 0, None)], 1.0)
    ps = np.clip(ps + rng.normal(0, noise_s, len(ps)), 0, 1)
    pt = np.clip(pt + rng.normal(0, noise_t, len(pt)), 0, None)
    order = np.argsort(pt)
    return pt[order], ps[order]


def at_risk(time, times):
    s = np.sort(time)
    return len(time) - np.searchsorted(s, times, side="left")


def cox(ipd):
    t = np.concatenate([ipd["experimental"][0], ipd["control"][0]])
    e = np.concatenate([ipd["experimental"][1], ipd["control"][1]])
    g = np.r_[np.ones(len(ipd["experimental"][0])), np.zeros(len(ipd["control"][0]))]
    fit = PHReg(t, g[:, None], status=e, ties="efron").fit()
    return math.exp(fit.params[0]), fit.bse[0]


@pytest.fixture(scope="module")
def ipd():
    return simulate()


def _curves(ipd, seed, **kw):
    rng = np.random.default_rng(seed)
    out = {}
    for arm, (t, e) in ipd.items():
        pt, ps = digitise(t, e, rng, **kw)
        out[arm] = KMCurve(arm, pt, ps, RISK_TIMES, at_risk(t, RISK_TIMES))
    return out


@pytest.mark.parametrize("grid", [None, 80], ids=["every-step", "grid-80"])
def test_reconstructed_hr_matches_the_simulated_data(ipd, grid):
    # simulated IPD: Cox HR 0.581 (SE 0.102; 172 and 225 events). Reconstructed: 0.589
    # (every step) and 0.585 (80-point grid), 1.2% and 0.6% away; over 20 seeds the ratio
    # stayed within 0.987-1.012.
    hr_ipd, se_ipd = cox(ipd)
    curves = _curves(ipd, 7, grid=grid)
    res = reconstruct_hr(curves["experimental"], curves["control"], fix_monotone=True)
    assert abs(res.hr / hr_ipd - 1) < 0.05                       # the criterion
    assert abs(math.log(res.hr / TRUE_HR)) < 2.576 * res.se      # within sampling error
    assert abs(res.se / se_ipd - 1) < 0.05
    for arm in ("experimental", "control"):
        a = res.arms[arm]
        # RMSE 0.0015-0.013 here: the control tail after its last risk-table time (3 at
        # risk) is where Guyot's last-interval censoring assumption shows (max |diff|
        # 0.12 at its final drop); bound 0.02
        assert a.rmse < 0.02
        assert a.max_abs_diff < 0.15
        # numbers at risk: reproduced to within 1 (reading noise can forbid a match)
        assert np.max(np.abs(a.n_risk_reconstructed - a.n_risk_reported)) <= 1
        assert len(a.time) == N_ARM
        assert abs(a.n_events - ipd[arm][1].sum()) <= 0.03 * N_ARM
    # RMST difference to the common horizon (43.3 / 43.8 months): reconstructed 6.42 / 6.48
    # vs simulated 6.45 / 6.49 months (SE 1.3 months)
    d_ipd = (rmst(*ipd["experimental"], res.horizon)[0]
             - rmst(*ipd["control"], res.horizon)[0])
    assert abs(res.rmst_diff - d_ipd) < 0.25
    assert abs(res.rmst_diff - d_ipd) < 0.1 * res.rmst_diff_se
    assert res.rmst_diff_lower < res.rmst_diff < res.rmst_diff_upper
    # log-rank O-E and V from the same data agree with the Cox fit (Peto's estimator)
    assert abs(res.logrank_oe / res.logrank_v - res.log_hr) < 0.05
    json.dumps(res.to_dict(), allow_nan=False)


def test_noise_free_steps_reproduce_every_number_at_risk(ipd):
    curves = _curves(ipd, 11, noise_s=0.0, noise_t=0.0)
    res = reconstruct_hr(curves["experimental"], curves["control"])
    for arm in ("experimental", "control"):
        a = res.arms[arm]
        assert a.n_risk_reconstructed.tolist() == a.n_risk_reported.tolist()
        assert not any("n at risk" in n for n in a.notes)
    assert abs(res.hr / cox(ipd)[0] - 1) < 0.02


def test_total_events_are_matched_when_reported(ipd):
    curves = _curves(ipd, 7)
    totals = {arm: int(ipd[arm][1].sum()) for arm in ipd}  # 172 and 225 events
    res = reconstruct_hr(curves["experimental"], curves["control"],
                         total_events=totals, fix_monotone=True)
    for arm in ("experimental", "control"):
        assert res.arms[arm].n_events == totals[arm]
        assert res.arms[arm].total_events == totals[arm]
    assert abs(res.hr / cox(ipd)[0] - 1) < 0.05


def test_uncensored_curve_is_recovered_exactly():
    # 10 patients, one death at each of t = 1..10, no censoring: S drops by 0.1 per step.
    t = np.arange(0, 11.0)
    s = 1 - t / 10
    a = reconstruct_ipd(t, s, [0, 5], [10, 6])
    assert sorted(a.time.tolist()) == list(range(1, 11))
    assert a.event.tolist() == [1] * 10
    assert a.rmse < 1e-12 and a.max_abs_diff < 1e-12
    assert a.n_risk_reconstructed.tolist() == [10, 6]


def test_interval_without_events():
    # 20 patients: deaths at 1-4 (S 0.95 ... 0.80); no event between 6 and 12 months while
    # 6 patients are censored (16 -> 10 at risk); then deaths at 13 and 14 (10 and 9 at
    # risk: S 0.72, 0.64); the curve ends at 18 with 8 still at risk.
    t = [0, 1, 2, 3, 4, 13, 14, 18]
    s = [1, 0.95, 0.90, 0.85, 0.80, 0.72, 0.64, 0.64]
    a = reconstruct_ipd(t, s, [0, 6, 12, 18], [20, 16, 10, 8])
    ev = a.time[a.event == 1]
    assert sorted(ev.tolist()) == [1, 2, 3, 4, 13, 14]
    assert not np.any((ev >= 6) & (ev < 12))
    cens = a.time[a.event == 0]
    assert np.sum((cens >= 6) & (cens < 12)) == 6      # censored where the table says
    assert a.n_risk_reconstructed.tolist() == [20, 16, 10, 8]
    assert a.rmse < 1e-12


def test_kaplan_meier_rmst_and_logrank_match_references():
    rng = np.random.default_rng(3)
    t = np.round(rng.exponential(10, 80), 1)
    c = rng.uniform(0, 25, 80)
    tt, e = np.minimum(t, c), (t <= c).astype(int)
    g = np.r_[np.ones(40, int), np.zeros(40, int)]
    kt, n, _, s = kaplan_meier(tt, e)
    sf = SurvfuncRight(tt, e)
    assert_allclose(kt, sf.surv_times)
    assert_allclose(s, sf.surv_prob, rtol=1e-12)
    assert_allclose(n, sf.n_risk)
    oe, v, p = logrank(tt, e, g)
    chi2, p_ref = survdiff(tt, e, g)
    assert_allclose([oe ** 2 / v, p], [chi2, p_ref], rtol=1e-10)
    # without censoring the RMST is the mean of min(T, tau) and its variance the plug-in
    # variance of that mean (Greenwood reduces to the binomial variance)
    x = np.round(rng.exponential(10, 50), 1)
    r, se = rmst(x, np.ones(50, int), 15.0)
    assert_allclose(r, np.minimum(x, 15).mean(), rtol=1e-12)
    assert_allclose(se ** 2, np.minimum(x, 15).var() / 50, rtol=1e-10)


def test_read_km_fixture_and_conversion_record():
    # tests/fixtures/km/sim40: 40 patients per arm (seed 2012, control median 10 months,
    # HR 0.5; every step read without noise); the simulated data's Cox HR was 0.406 (SE
    # 0.325). With 40 per arm the reconstruction gives 0.376: small curves reconstruct
    # less well, which is why the diagnostics are part of the record.
    curve, risk = km_paths(FIXTURES, "sim40")
    curves = read_km(curve, risk)
    assert set(curves) == {"experimental", "control"}
    res = reconstruct_hr(curves["experimental"], curves["control"])
    for a in res.arms.values():
        assert a.n_risk_reconstructed.tolist() == a.n_risk_reported.tolist()
    assert abs(math.log(res.hr / 0.406)) < 0.1
    conv = res.to_conversion(source="sim40")
    assert conv.method == "km" and conv.strength == 4 and not conv.inverted
    assert conv.yi == pytest.approx(res.log_hr) and conv.sei == pytest.approx(res.se)
    d = conv.to_dict()
    assert d["inputs"]["n_risk_reconstructed_exp"] == [40, 28, 18, 11, 4]
    json.dumps(d, allow_nan=False)
    # best_conversion uses it after the better methods fail
    out = best_conversion({"study_id": "Sim", "outcome": "OS",
                           "comparison": "treatment: A vs B"},
                          ["hr_ci", "hr_p", "km"], km=conv)
    assert out.conversion.method == "km"
    assert [m for m, _ in out.rejected] == ["hr_ci", "hr_p"]


@pytest.mark.parametrize("time,surv,rt,nr,message", [
    ([0, 1, 2, 3], [1, 0.9, 0.95, 0.8], [0], [10], "must not increase"),
    ([0, 2, 1, 3], [1, 0.9, 0.85, 0.8], [0], [10], "must not decrease"),
    ([0, 1, 2, 3], [1, 0.9, 0.85, 0.8], [0, 2, 4], [10, 8, 5], "beyond the curve"),
    ([0, 1, 2, 3], [100, 90, 85, 80], [0], [10], "fractions, not percentages"),
    ([0, 1, 2, 3], [1, 0.9, 0.85, 0.8], [1, 2], [10, 8], "must start at time 0"),
    ([0, 1, 2, 3], [1, 0.9, 0.85, 0.8], [0, 2], [10, 12], "must not increase: 12"),
    ([0, 1, 2, 3], [1, 0.9, 0.85, 0.8], [0, 2, 2], [10, 8, 8], "strictly increasing"),
    ([0, 1], [1, 0.9, 0.8], [0], [10], "same length"),
])
def test_invalid_input_is_rejected(time, surv, rt, nr, message):
    with pytest.raises(ValueError, match=message):
        reconstruct_ipd(time, surv, rt, nr)


def test_monotone_fix_is_optional_and_logged():
    a = reconstruct_ipd([0, 1, 2, 3], [1, 0.9, 0.905, 0.8], [0], [10], fix_monotone=True)
    assert any("isotonic" in n for n in a.notes)


def test_read_km_reports_file_row_and_column(tmp_path):
    curve = tmp_path / "x.curve.csv"
    risk = tmp_path / "x.risk.csv"
    risk.write_text("arm,time,n_risk\nexperimental,0,10\ncontrol,0,10\n")
    curve.write_text("arm,time,survival\nexperimental,0,1\nplacebo,1,0.9\n")
    with pytest.raises(ValueError, match=r"row 2, column 'arm'.*not an arm"):
        read_km(curve, risk)
    curve.write_text("arm,time,survival\nexperimental,0,1\nexperimental,1,0.9x\n")
    with pytest.raises(ValueError, match=r"row 2, column 'survival'.*not a number"):
        read_km(curve, risk)
    curve.write_text("arm,time,surv\nexperimental,0,1\n")
    with pytest.raises(ValueError, match="missing column.*survival.*unknown column.*surv"):
        read_km(curve, risk)
    curve.write_text("arm,time,survival\nexperimental,0,1\nexperimental,1,0.9\n")
    with pytest.raises(ValueError, match="arms differ"):
        read_km(curve, risk)
    with pytest.raises(ValueError, match="letters, digits"):
        km_paths(tmp_path, "bad name")


def test_rmst_horizon_must_lie_within_follow_up():
    curves = read_km(*km_paths(FIXTURES, "sim40"))
    with pytest.raises(ValueError, match=r"horizon must lie in \(0, 24.8\]"):
        reconstruct_hr(curves["experimental"], curves["control"], horizon=30)


def test_both_corners_of_each_step_give_the_same_reconstruction(ipd):
    # a reader often clicks the top and the bottom of every drop: points at the same time
    # are merged into the lower reading, so the result equals bottom-only digitising
    t, e = ipd["control"]
    kt, _, _, ks = kaplan_meier(t, e)
    top = np.concatenate([[1.0], ks[:-1]])
    both_t = np.repeat(kt, 2)
    both_s = np.ravel(np.column_stack([top, ks]))
    nr = at_risk(t, RISK_TIMES)
    a = reconstruct_ipd(both_t, both_s, RISK_TIMES, nr)
    b = reconstruct_ipd(kt, ks, RISK_TIMES, nr)
    assert any("merged" in n for n in a.notes)
    assert_allclose(np.sort(a.time), np.sort(b.time))
    assert a.n_events == b.n_events
