"""HR conversions, direction rules and consistency checks (metapool.survival).

Worked examples: Tierney et al. 2007 (Trials 8:16), the comment on it by Wang & Zeng
(Trials 2013;14:391), and rows of the default data (data/raw/survival.csv) whose
derivation texts state the expected numbers.
"""

import json
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

import metapool
from metapool.survival import (
    METHODS,
    PRIMARY_METHODS,
    STRENGTH,
    best_conversion,
    check_ci_symmetry,
    check_direction,
    check_hr_in_ci,
    check_median_ratio,
    check_p_vs_ci,
    check_row,
    hr_from_ci,
    hr_from_hr_p,
    hr_from_medians,
    hr_from_oe_v,
    hr_from_p_events,
    invert_hr,
    median_from_ci,
    z_from_p,
)


def row(**cells):
    base = {"study_id": "S", "outcome": "OS", "comparison": "treatment: A vs B"}
    base.update(cells)
    return base


# --------------------------------------------------------------------------- hr_ci
def test_tierney_hr_and_variance_worked_example():
    # Tierney 2007: HR 0.88 with V = 128.81 gives SE = 1/sqrt(V) = 0.0881 and a 95% CI of
    # 0.74 to 1.05.
    c = hr_from_oe_v(hr=0.88, v=128.81)
    assert c.method == "oe_v" and c.strength == 2
    assert_allclose(c.sei, 0.0881, atol=5e-5)
    assert (round(c.ci_lower, 2), round(c.ci_upper, 2)) == (0.74, 1.05)
    # the same from O-E = V ln HR = -16.47
    c2 = hr_from_oe_v(oe=128.81 * math.log(0.88), v=128.81)
    assert_allclose([c2.yi, c2.sei], [math.log(0.88), c.sei], rtol=1e-12)


def test_hr_from_ci_kim2021_and_other_levels():
    # Kim 2021 OS: HR 0.54 (95% CI 0.31-0.92): SE = (ln 0.92 - ln 0.31)/3.92 = 0.2775
    # (the row's derivation text)
    c = hr_from_ci(0.54, 0.31, 0.92, 0.95)
    assert c.method == "hr_ci" and c.strength == 1 and not c.inverted
    assert_allclose(c.yi, math.log(0.54))
    assert_allclose(c.sei, 0.2775, atol=5e-5)
    # the same numbers read as a 90% CI: z = 1.6449, SE = 1.0878/3.2897 = 0.3307
    c90 = hr_from_ci(0.54, 0.31, 0.92, 0.90)
    assert_allclose(c90.sei, 0.3307, atol=5e-5)
    # the record's CI is at the requested level, recomputed from the SE
    c99 = hr_from_ci(0.54, 0.31, 0.92, 0.95, level=0.99)
    assert_allclose(c99.ci_upper, math.exp(math.log(0.54) + 2.5758 * c.sei), rtol=1e-4)
    assert "reported 95% CI" in c99.notes[0]
    assert c.to_dict()["inputs"] == {"hr": 0.54, "hr_lower": 0.31, "hr_upper": 0.92,
                                     "ci_level": 0.95,
                                     "orientation": "experimental vs control"}


@pytest.mark.parametrize("args,message", [
    ((0.3, 0.4, 0.9), "outside its CI"),
    ((0.5, 0.9, 0.3), "must be below the upper"),
    ((0.5, 0.0, 0.9), "lower confidence limit must be positive"),
])
def test_hr_from_ci_rejects_bad_numbers(args, message):
    with pytest.raises(ValueError, match=message):
        hr_from_ci(*args)


# --------------------------------------------------------------------------- p-values
def test_sidedness_of_p_values():
    # Wang & Zeng, Trials 2013;14:391 (on Tierney 2007, eq. 14): a two-sided p = 0.075
    # corresponds to z = 1.78; a one-sided (right-tailed) p = 0.075 to z = 1.44
    assert round(z_from_p(0.075), 2) == 1.78
    assert round(z_from_p(0.0375, "one"), 2) == 1.78
    assert round(z_from_p(0.075, "one"), 2) == 1.44
    assert z_from_p(1.0) == 0.0
    with pytest.raises(ValueError, match="one-sided p-value must lie in"):
        z_from_p(0.6, "one")
    with pytest.raises(ValueError, match="two-sided p-value must lie in"):
        z_from_p(0.0)
    with pytest.raises(ValueError, match="sided must be"):
        z_from_p(0.05, "both")


def test_p_events_total_events_reproduce_the_default_data():
    # Anon2022 OS (data/raw/survival.csv): log-rank p = 0.529, 15 + 28 = 43 deaths, 32 vs
    # 32 patients. Derivation text: V = D/4 = 10.75; z = 0.630; lnHR = -0.1920 -> HR 0.83,
    # SE 0.305 (sign from the medians, stated here explicitly as a direction).
    c = hr_from_p_events(0.529, events_total=43, n_exp=32, n_ctrl=32,
                         direction="favours experimental")
    assert c.method == "p_events" and c.strength == 3
    assert_allclose(c.yi, -0.1920, atol=5e-5)
    assert_allclose(c.sei, 0.305, atol=5e-4)
    assert round(c.hr, 2) == 0.83
    assert any("n_exp / n_ctrl" in n for n in c.notes)
    # per-arm events win over a total that disagrees, and the record says so
    c4 = hr_from_p_events(0.529, events_exp=15, events_ctrl=28, events_total=44,
                          direction="favours experimental")
    assert any("differs" in n for n in c4.notes)
    # with the events per arm: V = Oe Oc / (Oe + Oc) = 15 x 28 / 43 = 9.767
    c2 = hr_from_p_events(0.529, events_exp=15, events_ctrl=28,
                          direction="favours experimental")
    assert_allclose(1 / c2.sei ** 2, 15 * 28 / 43, rtol=1e-12)
    assert_allclose(c2.yi, -stats.norm.isf(0.529 / 2) / math.sqrt(15 * 28 / 43))
    # the same p given one-sided (0.2645) is the same z
    c3 = hr_from_p_events(0.2645, events_exp=15, events_ctrl=28, sided="one",
                          direction="favours experimental")
    assert_allclose(c3.yi, c2.yi, rtol=1e-12)
    assert any("one-sided" in n for n in c3.notes)


def test_p_events_allocation_ratio():
    # Tierney 2007: V = D r / (1 + r)^2; 90 events with 2:1 allocation give V = 20.
    # With two-sided p = 0.075 (z = 1.7805): ln HR = -z/sqrt(20) = -0.3981, SE 0.2236.
    c = hr_from_p_events(0.075, events_total=90, allocation_ratio=2.0, hr=0.7)
    assert_allclose(1 / c.sei ** 2, 20.0)
    assert_allclose(c.yi, -stats.norm.isf(0.0375) / math.sqrt(20), rtol=1e-12)
    # r and 1/r give the same V
    c_inv = hr_from_p_events(0.075, events_total=90, allocation_ratio=0.5, hr=0.7)
    assert_allclose(c_inv.sei, c.sei)
    # the reported HR gave the sign only, and the record says so
    assert any("sign only" in n for n in c.notes)
    with pytest.raises(ValueError, match="allocation ratio"):
        hr_from_p_events(0.075, events_total=90, hr=0.7)


def test_p_events_direction_rules():
    # sign from a stated direction (no HR): favours control -> log HR > 0
    c = hr_from_p_events(0.04, events_exp=30, events_ctrl=20, direction="favours control")
    assert c.yi > 0
    assert hr_from_p_events(0.04, events_exp=30, events_ctrl=20,
                            direction="Favors Experimental").yi < 0
    with pytest.raises(ValueError, match="direction unclear: HR 0.7 but"):
        hr_from_p_events(0.04, events_exp=30, events_ctrl=20, hr=0.7,
                         direction="favours control")
    with pytest.raises(ValueError, match="direction unclear: neither an HR"):
        hr_from_p_events(0.04, events_exp=30, events_ctrl=20)
    with pytest.raises(ValueError, match="direction must be"):
        hr_from_p_events(0.04, events_exp=30, events_ctrl=20, direction="better")
    # p = 1: no sign needed, HR = 1
    assert hr_from_p_events(1.0, events_exp=30, events_ctrl=20).yi == 0.0
    with pytest.raises(ValueError, match="no events"):
        hr_from_p_events(0.04, events_exp=0, events_ctrl=20, direction="favours control")


def test_hr_and_p_alone():
    # Yu2023 PFS: HR 0.416, p = 0.005: SE = |ln 0.416| / z(0.005) = 0.8771/2.807 = 0.3125;
    # implied 95% CI 0.225-0.767 (the row's derivation text)
    c = hr_from_hr_p(0.416, 0.005)
    assert c.method == "hr_p" and c.strength == 3
    assert_allclose(c.sei, 0.8771 / 2.807, rtol=2e-4)
    assert (round(c.ci_lower, 3), round(c.ci_upper, 3)) == (0.225, 0.767)
    # a bound p < 0.001 gives the largest SE consistent with the report
    b = hr_from_hr_p(0.29, 0.001, p_is_bound=True)
    assert any("largest SE" in n for n in b.notes)
    with pytest.raises(ValueError, match="exactly 1"):
        hr_from_hr_p(1.0, 0.5)
    with pytest.raises(ValueError, match="p = 1"):
        hr_from_hr_p(0.8, 1.0)


# --------------------------------------------------------------------------- direction
def test_inversion_of_control_vs_experimental():
    assert invert_hr(2.0, 1.25, 3.2) == (0.5, 0.3125, 0.8)
    assert invert_hr(2.0) == (0.5, None, None)
    # Kim 2021 OS reported the other way round: 1/0.54 (1/0.92-1/0.31)
    c = hr_from_ci(1 / 0.54, 1 / 0.92, 1 / 0.31,
                   orientation="control vs experimental")
    ref = hr_from_ci(0.54, 0.31, 0.92)
    assert c.inverted and not ref.inverted
    assert_allclose([c.yi, c.sei], [ref.yi, ref.sei], rtol=1e-12)
    assert "inverted to 0.54 (0.31-0.92)" in c.notes[0]
    # O-E reported for the control arm changes sign, V does not
    o = hr_from_oe_v(oe=16.47, v=128.81, orientation="control vs experimental")
    assert o.inverted and o.yi < 0 and "control arm" in o.notes[0]
    # HR + p
    p = hr_from_hr_p(1 / 0.416, 0.005, orientation="control vs experimental")
    assert_allclose(p.hr, 0.416) and p.inverted
    with pytest.raises(ValueError, match="orientation must be one of"):
        hr_from_ci(0.5, 0.3, 0.9, orientation="B vs A")


def test_best_conversion_inverts_and_logs():
    r = row(hr=1.85, hr_lower=1.09, hr_upper=3.23, ci_level=0.95,
            hr_orientation="control vs experimental", source_row=4)
    out = best_conversion(r, METHODS)
    assert out.conversion.inverted
    assert_allclose(out.conversion.hr, 1 / 1.85)
    log = out.to_dict()
    assert log["row"] == "S / OS / treatment: A vs B [row 4]"
    assert log["conversion"]["inputs"]["hr"] == 1.85
    assert "inverted" in log["conversion"]["notes"][0]


# --------------------------------------------------------------------------- checks
@pytest.mark.parametrize("hr,lo,hi,flagged", [
    ("0.51", "0.36", "0.97", True),    # Kim2021 PFS: geometric midpoint 0.59
    ("0.44", "0.28", "0.53", True),    # Wei2020 PFS: geometric midpoint 0.385
    ("0.54", "0.31", "0.92", False),   # Kim2021 OS
    ("0.122", "0.027", "0.557", False),  # Salem2016 TTP
])
def test_ci_asymmetry_check(hr, lo, hi, flagged):
    found = check_ci_symmetry(hr, lo, hi, row="r")
    assert (found is not None) == flagged
    if flagged:
        assert found.check == "ci_asymmetric" and found.severity == "warning"
        assert found.row == "r" and "not symmetric" in found.message


def test_hr_outside_ci_fails():
    found = check_hr_in_ci(0.3, 0.4, 0.9, row="r")
    assert found.severity == "error" and found.check == "hr_outside_ci"
    assert check_hr_in_ci(0.4, 0.4, 0.9) is None
    with pytest.raises(ValueError, match=r"S / OS .* HR 0.3 lies outside its CI 0.4-0.9"):
        best_conversion(row(hr=0.3, hr_lower=0.4, hr_upper=0.9, ci_level=0.95))


def test_p_value_against_ci():
    # Kim2021 PFS: 0.51 (0.36-0.97) implies p = 0.008 (z 2.57-2.75 within rounding) but
    # p = 0.04 (z 2.00-2.11) is reported: flagged
    found = check_p_vs_ci("0.51", "0.36", "0.97", 0.95, "0.04", row="Kim2021 PFS")
    assert found.check == "p_vs_ci"
    assert_allclose(found.values["p_implied"], 0.0077, atol=1e-4)
    # consistent within rounding: Kim2021 OS 0.54 (0.31-0.92) p = 0.02 (implied 0.026);
    # Dhondt2022 0.36 (0.18-0.70) p = 0.002 (implied 0.0032); Wei2020 OS p < 0.0001
    assert check_p_vs_ci("0.54", "0.31", "0.92", 0.95, "0.02") is None
    assert check_p_vs_ci("0.36", "0.18", "0.7", 0.95, "0.002") is None
    assert check_p_vs_ci("0.38", "0.27", "0.53", 0.95, "0.0001", p_is_bound=True) is None
    # a one-sided p is compared on its own scale: 0.013 one-sided = 0.026 two-sided
    assert check_p_vs_ci("0.54", "0.31", "0.92", 0.95, "0.013", sided="one") is None
    assert check_p_vs_ci("0.54", "0.31", "0.92", 0.95, "0.2") is not None


def test_median_ratio_check():
    # Yu2023 OS: HR 0.316 but median ratio 22.5/28.5 = 0.79 (factor 2.5; Weibull shapes
    # 0.5-2 allow 0.100-0.562): far
    found = check_median_ratio(0.316, 28.5, 22.5, row="Yu2023 OS")
    assert found.check == "median_ratio"
    assert_allclose(found.values["median_ratio"], 22.5 / 28.5)
    assert_allclose(found.values["factor"], 22.5 / 28.5 / 0.316)
    # Yu2023 PFS: HR 0.416 vs 3.2/6.95 = 0.460 (factor 1.11): not far
    assert check_median_ratio(0.416, 6.95, 3.2) is None
    # Dhondt2022 TTP: HR 0.36 vs 9.5/17.1 = 0.556, a factor 1.54 but within the Weibull
    # band (shape 1.7): not far
    assert check_median_ratio(0.36, 17.1, 9.5) is None
    # a median ratio on the other side of 1, a factor 1.6 away: far
    assert check_median_ratio(0.8, 10, 13) is not None


def test_direction_unclear_check():
    assert check_direction(hr=0.5, direction="favours experimental",
                           comparison="treatment: A vs B") is None
    msg = check_direction(hr=0.5, direction="favours control").message
    assert "HR 0.5 but the stated direction is 'favours control'" in msg
    assert "opposite" in check_direction(hr=0.5, oe=3.0).message
    assert "favour the other arm" in check_direction(hr=0.5, median_exp=8,
                                                     median_ctrl=10).message
    assert "does not name the arms" in check_direction(
        comparison="treatment: TARE or TACE").message
    assert "neither an HR" in check_direction(needs_sign=True).message


def test_check_row_on_the_default_data_rows():
    kim_pfs = row(study_id="Kim2021", outcome="PFS", comparison="treatment: TARE vs cTACE",
                  hr=0.51, hr_lower=0.36, hr_upper=0.97, ci_level=0.95, p_value="0.04")
    assert [c.check for c in check_row(kim_pfs)] == ["ci_asymmetric", "p_vs_ci"]
    wei_pfs = row(hr=0.44, hr_lower=0.28, hr_upper=0.53, ci_level=0.95,
                  p_value="<0.0001", median_exp=10.3, median_ctrl=4.9)
    assert [c.check for c in check_row(wei_pfs)] == ["ci_asymmetric"]
    yu_os = row(hr=0.316, p_value="0.02", median_exp=28.5, median_ctrl=22.5)
    assert [c.check for c in check_row(yu_os)] == ["median_ratio"]
    anon_os = row(p_value="0.529", events_exp=15, events_ctrl=28, median_exp=22,
                  median_ctrl=18)
    assert [c.check for c in check_row(anon_os)] == ["direction_unclear"]


# --------------------------------------------------------------------------- medians
def test_medians_are_weakest_and_off_by_default():
    # Anon2025 PFS: HR ~ 11/17 = 0.647, SE = |ln HR|/z(p=0.035) = 0.4353/2.108 = 0.2065
    c = hr_from_medians(17, 11, p=0.035)
    assert c.method == "medians" and c.strength == 5 == max(STRENGTH.values())
    assert_allclose([c.hr, c.sei], [11 / 17, 0.4353 / 2.108], rtol=5e-4)
    assert "weakest" in c.notes[0]
    assert "medians" not in PRIMARY_METHODS
    # SE from the events when no p-value: sqrt(1/Oe + 1/Oc) (exponential model)
    e = hr_from_medians(22, 18, events_exp=15, events_ctrl=28)
    assert_allclose(e.sei, math.sqrt(1 / 15 + 1 / 28))
    # the default methods leave a medians-only row unconverted and say what it would give
    r = row(p_value="0.035", n_exp=112, n_ctrl=120, median_exp=17, median_ctrl=11)
    out = best_conversion(r)
    assert out.conversion is None and out.status.startswith("not converted")
    assert [m for m, _ in out.not_allowed] == ["medians"]
    assert best_conversion(r, METHODS).conversion.method == "medians"


def test_single_arm_median_from_ci():
    # Anon2020 OS: median 15.6 months (95% CI 10.1-21.1): yi = ln 15.6 = 2.7473,
    # SE = (ln 21.1 - ln 10.1)/3.92 = 0.7367/3.92 = 0.1879
    m = median_from_ci(15.6, 10.1, 21.1)
    assert_allclose(m.yi, 2.7473, atol=5e-5)
    assert_allclose(m.sei, 0.1879, atol=5e-5)
    assert any("natural scale" in n for n in m.notes)  # 15.6 +/- 5.5
    json.dumps(m.to_dict(), allow_nan=False)
    # pooled medians, common effect by hand: exp of the inverse-variance mean of the logs
    meds = [m, median_from_ci(8, 6.99, 9.01), median_from_ci(5.5, 4.43, 6.57)]
    yi = np.array([x.yi for x in meds])
    vi = np.array([x.sei for x in meds]) ** 2
    res = metapool.pool_generic(yi, np.sqrt(vi), method="FE", ci="z", measure="log")
    w = 1 / vi
    assert_allclose(res.to_dict("natural")["estimate"], math.exp(np.sum(w * yi) / w.sum()))
    with pytest.raises(ValueError, match="outside its CI"):
        median_from_ci(25, 10.1, 21.1)


# --------------------------------------------------------------------------- best
def test_best_conversion_follows_the_evidence_order():
    full = row(hr=0.54, hr_lower=0.31, hr_upper=0.92, ci_level=0.95, p_value="0.02",
               oe=-5.0, v=9.0, events_exp=15, events_ctrl=28, median_exp=20,
               median_ctrl=12)
    assert best_conversion(full, METHODS).conversion.method == "hr_ci"
    # disabling methods walks down the order, with the reasons the better ones failed
    assert best_conversion(full, ["oe_v", "p_events"]).conversion.method == "oe_v"
    out = best_conversion(full, ["p_events", "hr_p"])
    assert out.conversion.method == "p_events"
    assert [m for m, _ in out.not_allowed] == ["hr_ci", "oe_v"]
    # Anon2022 OS: p + events but no direction -> p_events rejected, medians used if
    # allowed; the reason names the problem
    anon = row(p_value="0.529", events_exp=15, events_ctrl=28, median_exp=22,
               median_ctrl=18, n_exp=32, n_ctrl=32)
    out = best_conversion(anon, ["p_events", "medians"])
    assert out.conversion.method == "medians"
    assert "direction unclear" in dict(out.rejected)["p_events"]
    assert [c.check for c in out.checks] == ["direction_unclear"]
    anon["direction"] = "favours experimental"
    assert best_conversion(anon, ["p_events"]).conversion.method == "p_events"
    with pytest.raises(ValueError, match="unknown HR methods"):
        best_conversion(anon, ["guess"])


def test_conversion_log_is_plain_json():
    nan = float("nan")
    r = row(hr=0.416, hr_lower=nan, hr_upper=None, ci_level="", p_value="0.005",
            median_exp=6.95, median_ctrl=3.2, source_row=15)
    out = best_conversion(r, METHODS)
    assert out.conversion.method == "hr_p"
    log = out.to_dict()
    json.dumps(log, allow_nan=False)
    assert set(log) == {"row", "status", "conversion", "rejected", "not_allowed", "checks"}
    assert set(log["conversion"]) == {"method", "yi", "sei", "hr", "ci_lower", "ci_upper",
                                      "level", "inputs", "formula", "inverted",
                                      "strength", "notes"}
    assert [x["method"] for x in log["rejected"]] == ["hr_ci", "oe_v", "p_events"]


# --------------------------------------------------------------------------- survival.csv
def test_row_options_in_their_survival_csv_spelling():
    """hr_orientation (exp_vs_ctrl | ctrl_vs_exp), p_sided (2 | 1) and direction
    (experimental | control) as survival.csv writes them mean what the module's own
    names mean (load_tables gives p_sided as an integer)."""
    inv = best_conversion(row(hr=1.85, hr_lower=1.09, hr_upper=3.23, ci_level=0.95,
                              hr_orientation="ctrl_vs_exp"), METHODS).conversion
    ref = best_conversion(row(hr=1.85, hr_lower=1.09, hr_upper=3.23, ci_level=0.95,
                              hr_orientation="control vs experimental"), METHODS).conversion
    assert inv.inverted and inv.to_dict() == ref.to_dict()
    assert not best_conversion(row(hr=0.5, hr_lower=0.3, hr_upper=0.83, ci_level=0.95,
                                   hr_orientation="exp_vs_ctrl")).conversion.inverted
    # O-E reported for the control arm (ctrl_vs_exp) changes sign
    oe = best_conversion(row(oe=4.0, v=16.0, hr_orientation="ctrl_vs_exp"), METHODS)
    assert oe.conversion.method == "oe_v" and oe.conversion.yi == pytest.approx(-0.25)
    for sided in (1, 1.0, "1", "one"):
        c = best_conversion(row(hr=0.65, p_value="0.03", p_sided=sided), METHODS).conversion
        assert c.inputs["sided"] == "one"
        assert_allclose(c.sei, abs(math.log(0.65)) / stats.norm.isf(0.03))
    assert best_conversion(row(hr=0.65, p_value="0.03", p_sided=2)).conversion.inputs[
        "sided"] == "two"
    base = row(p_value="0.529", events_exp=15, events_ctrl=28, median_exp=22, median_ctrl=18)
    for spelled, sign in (("experimental", -1), ("control", 1),
                          ("favours experimental", -1)):
        out = best_conversion(dict(base, direction=spelled), ["p_events"])
        assert np.sign(out.conversion.yi) == sign
    # the stated direction settles the direction check (medians agree with it)
    assert check_row(dict(base, direction="experimental")) == []
    assert [c.check for c in check_row(dict(base, direction="control"))] == [
        "direction_unclear"]
