"""Parity with R metafor, number by number, against committed golden values.

The goldens (tests/golden/metafor_goldens.json) are written by
tests/golden/make_goldens.R (``make goldens``) with metafor 3.8-1; each fit records
the exact R call, e.g. ``rma(yi, vi, data = dat, method = "REML", test = "knha",
control = list(threshold = 1e-12, maxiter = 10000, tol = 1e-12))`` followed by
``predict(res)`` and ``predict(res, transf = transf.ilogit)``.

Tolerances (relative unless the reference is 0):
- closed-form estimators (DL, FE) and everything computed from a given tau²: 1e-8;
  the reference is printed with 15 significant digits, so this leaves room only for
  floating-point reordering and quantile functions (scipy vs R's qt/qnorm);
- REML: 1e-6; both sides iterate to a change in tau² below 1e-12, so the observed
  difference is far smaller (see the closing assertion on the largest difference);
- at the tau² = 0 boundary, absolute: tau² 1e-10, I² 1e-6 percentage points, H² 1e-8
  (metafor's Fisher scoring stops a hair above the boundary, e.g. tau² = 4.5e-14).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from metapool import pool_generic, pool_proportions
from metapool.effects import clopper_pearson, proportion_effects

GOLDEN = json.loads((Path(__file__).parent / "golden" / "metafor_goldens.json").read_text())
CASES = GOLDEN["cases"]
RTOL = {"DL": 1e-8, "FE": 1e-8, "HE": 1e-8, "SJ": 1e-8, "REML": 1e-6, "ML": 1e-6,
        "PM": 1e-6}
#: absolute tolerances for quantities whose reference sits at the tau² = 0 boundary:
#: metafor's Fisher scoring stops a hair above it (tau² = 4.5e-14, I² = 1.5e-10 %)
#: where metapool returns exactly 0
ATOL = {"tau2": 1e-10, "i2": 1e-6, "h2": 1e-8}
#: Q-profile limits: both sides solve the same monotone equation to 1e-12, but metafor's
#: uniroot stops at its own tolerance (1e-12 on tau²); relative 1e-6 leaves room for it
QP_RTOL = 1e-6
#: metapool ci method for each metafor test
CI_OF_TEST = {"z": "z", "knha": "hksj", "adhoc": "hksj_adhoc"}
#: metafor's predict() uses the normal quantile with test="z" and t(k-1) with knha
PI_OF_TEST = {"z": "z", "knha": "t", "adhoc": "t"}

FIELDS = ["estimate", "se", "ci_lower", "ci_upper", "pval", "tau2", "i2", "h2", "q",
          "q_p", "pi_lower", "pi_upper"]
OURS = {"pval": "p_value"}

_worst = {}
_compared = [0]


def _params():
    for case, spec in sorted(CASES.items()):
        for method in RTOL:
            for test in CI_OF_TEST:
                yield pytest.param(case, method, test, id=f"{case}-{method}-{test}")


def _fit(case, method, test):
    spec = CASES[case]
    inp = spec["input"]
    kwargs = dict(method=method, ci=CI_OF_TEST[test], pi=PI_OF_TEST[test])
    if spec["kind"] == "proportion":
        return pool_proportions(inp["events"], inp["total"], **kwargs)
    measure = "none" if spec.get("back_transform") in (None, "none") else "log"
    return pool_generic(inp["yi"], np.sqrt(inp["vi"]), measure=measure, **kwargs)


def _close(ours, ref, rtol, label):
    assert ours is not None, f"{label}: metapool gave None, metafor {ref}"
    field = label.split(":")[0].split()[-1]
    atol = ATOL.get(field, 0.0)
    diff = abs(ours - ref)
    _compared[0] += 1
    if abs(ref) > atol:
        key = label.split(":")[0]
        _worst[key] = max(_worst.get(key, 0.0), diff / abs(ref))
    assert diff <= max(atol, rtol * abs(ref)), (
        f"{label}: {ours!r} vs metafor {ref!r} (diff {diff:.2e})")


@pytest.mark.parametrize("case,method,test", list(_params()))
def test_pooled_fit_matches_metafor(case, method, test):
    ref = CASES[case]["fits"][f"{method}_{test}"]
    assert ref["error"] is None
    res = _fit(case, method, test)
    model = res.to_dict("model")
    rtol = RTOL[method]
    assert model["k"] == ref["k"]
    for field in FIELDS:
        want = ref.get(field)
        got = model[OURS.get(field, field)]
        if field.startswith("pi_") and (ref["k"] < 3 or method == "FE"):
            # documented: no prediction interval for k < 3; metafor has none for FE
            assert got is None or method == "FE"
            continue
        if want is None:
            continue
        _close(got, want, rtol, f"{field}: {case} {method}_{test}")
    if ref["k"] >= 3 and method != "FE":
        natural = res.to_dict("natural")
        for field in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper"):
            want = (ref.get("natural") or {}).get(field)
            if want is not None:
                _close(natural[field], want, rtol, f"natural {field}: {case} {method}_{test}")
    np.testing.assert_allclose(res.weights, ref["weights_pct"], rtol=rtol)
    _compared[0] += len(ref["weights_pct"])
    conf = ref.get("confint")
    if conf and method != "FE" and ref["k"] >= 2:
        # R: confint(res, control = list(tol = 1e-12, maxiter = 10000)) (Q-profile)
        for quantity in ("tau2", "i2", "h2"):
            for side in ("lower", "upper"):
                want = conf[quantity][f"ci_{side}"]
                got = model[f"{quantity}_{side}"]
                if side == "upper" and conf.get("ub_sign") == ">":
                    # metafor stops its search at tau² = 100 and reports '>'
                    assert got is not None and got >= want
                    continue
                _close(got, want, QP_RTOL, f"{quantity}_{side} qprofile: {case} {method}_{test}")
    riley = ref.get("pi_riley")
    if riley and ref["k"] >= 3 and method != "FE":
        # R: predict(res, pi.type = "riley"): t with k - 2 df
        kwargs = dict(method=method, ci=CI_OF_TEST[test], pi="riley")
        spec = CASES[case]
        if spec["kind"] == "proportion":
            r2 = pool_proportions(spec["input"]["events"], spec["input"]["total"], **kwargs)
        else:
            r2 = pool_generic(spec["input"]["yi"], np.sqrt(spec["input"]["vi"]), **kwargs)
        _close(r2.pi_lower, riley["pi_lower"], rtol, f"pi_lower riley: {case} {method}_{test}")
        _close(r2.pi_upper, riley["pi_upper"], rtol, f"pi_upper riley: {case} {method}_{test}")


@pytest.mark.parametrize("case", sorted(c for c, s in CASES.items() if s["kind"] == "proportion"))
def test_study_level_values_match(case):
    inp = CASES[case]["input"]
    # R: escalc(measure = "PLO", xi = events, ni = total)  (add = 1/2, to = "only0")
    eff = proportion_effects(inp["events"], inp["total"])
    np.testing.assert_allclose(eff.yi, inp["yi"], rtol=1e-12)
    np.testing.assert_allclose(eff.vi, inp["vi"], rtol=1e-12)
    # R: binom.test(x, n)$conf.int
    lo, hi = clopper_pearson(inp["events"], inp["total"])
    np.testing.assert_allclose(lo, inp["cp_lower"], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(hi, inp["cp_upper"], rtol=1e-9, atol=1e-15)


def test_golden_grid_is_complete():
    # the comparison cannot quietly shrink: every case carries every fit compared above
    assert len(CASES) >= 11
    assert GOLDEN["meta"]["metafor"]
    for case, spec in CASES.items():
        for method in RTOL:
            for test in CI_OF_TEST:
                assert f"{method}_{test}" in spec["fits"], (case, method, test)


SENS = json.loads(
    (Path(__file__).parent / "golden" / "sensitivity_goldens.json").read_text())["cases"]


@pytest.mark.parametrize("fit_key", ["REML_knha", "REML_z", "DL_z"])
def test_large_simulated_meta_analysis_matches(fit_key):
    # simulated k = 200 (tests/golden/make_goldens_sensitivity.R, set.seed fixed):
    # R: rma(yi, vi, method = <method>, test = <test>, control = ctrl)
    case = SENS["sim200"]
    method, test = fit_key.split("_")
    ref = case["fits"][fit_key]["fit"]
    res = pool_generic(case["input"]["yi"], np.sqrt(case["input"]["vi"]), method=method,
                       ci=CI_OF_TEST[test], pi=PI_OF_TEST[test], measure="none")
    assert res.k == 200
    for key in ("estimate", "se", "tau2", "q"):
        _close(getattr(res, key), ref[key], RTOL[method], f"{key}: sim200 {fit_key}")


def test_k1_is_documented_where_metafor_stops():
    # metafor: confint() of a k = 1 model errors; metapool reports the study unpooled
    res = pool_generic([0.3], [0.2])
    d = res.to_dict("model")
    assert d["status"] == "not pooled: single study"
    assert all(d[key] is None for key in ("tau2_lower", "tau2_upper", "i2_lower",
                                          "i2_upper", "estimate", "pi_lower"))


def test_report_largest_differences(capsys):
    # runs last in this module (pytest keeps file order): prints the worst relative
    # difference per quantity for the closing note of the parity suite
    with capsys.disabled():
        print(f"\nmetafor parity: {_compared[0]} golden values compared", end="")
        for key in sorted(_worst):
            print(f"\nmetafor parity worst rel. diff {key}: {_worst[key]:.2e}", end="")
