"""Small-study-effect tests against R metafor: regtest(), ranktest(), trimfill().

Goldens: tests/golden/sensitivity_goldens.json, written by
tests/golden/make_goldens_sensitivity.R (metafor 3.8-1). For each case and fit
``res <- rma(yi, vi, data = dat, method = M, test = T, control = list(threshold = 1e-12,
maxiter = 10000, tol = 1e-12))`` the script records (the exact call is stored as ``call``):

- ``regtest(res)`` (meta-regression on sei, same method, test and control as ``res``);
- ``regtest(res, model = "lm")`` (Egger et al. 1997) and, for dat.egger2001,
  ``regtest(res, model = "lm", predictor = "sqrtninv", ni = dat$ni)``;
- ``ranktest(res)`` (exact = TRUE) and ``ranktest(res, exact = FALSE)``;
- ``trimfill(res, estimator = "L0" | "R0", test = T, control = ...)`` and ``predict()``.

Tolerances (relative; absolute 1e-10 where the reference is ~0): closed forms (DL fits,
``model = "lm"``, Kendall's tau and its p-values) 1e-8; REML fits 1e-6.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from metapool import bias, pooling
from metapool.bias import CAVEAT, begg_test, egger_test, trim_and_fill

HERE = Path(__file__).parent
GOLDEN = json.loads((HERE / "golden" / "sensitivity_goldens.json").read_text())
CASES = GOLDEN["cases"]
FIT_KEYS = ("REML_z", "REML_knha", "DL_z")
RTOL = {"DL": 1e-8, "REML": 1e-6}
RTOL_CLOSED = 1e-8
ATOL = 1e-10
CI_OF_TEST = {"z": "z", "knha": "hksj"}
PI_OF_TEST = {"z": "z", "knha": "t"}

_worst: dict[str, float] = {}
_count = {"n": 0}


def _inputs(case):
    if case == "sim200":
        import csv

        with open(HERE / "golden" / "inputs" / "sim200.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        return (np.array([float(r["yi"]) for r in rows]),
                np.array([float(r["vi"]) for r in rows]))
    inp = CASES[case]["input"]
    return np.array(inp["yi"]), np.array(inp["vi"])


def _close(ours, ref, rtol, key, label):
    assert ours is not None, f"{label}: metapool gave None, metafor {ref}"
    assert math.isfinite(ours), f"{label}: metapool gave {ours}"
    diff = abs(ours - ref)
    assert diff <= max(ATOL, rtol * abs(ref)), (
        f"{label}: {ours!r} vs metafor {ref!r} (diff {diff:.2e})")
    _count["n"] += 1
    if abs(ref) > ATOL:
        _worst[key] = max(_worst.get(key, 0.0), diff / abs(ref))


def _params():
    for case in sorted(CASES):
        for fit in FIT_KEYS:
            yield pytest.param(case, fit, id=f"{case}-{fit}")


def test_golden_grid_is_complete():
    assert GOLDEN["meta"]["metafor"] == "3.8-1"
    assert set(CASES) == {"bcg", "egger2001", "pritz1997", "orr_default", "sim200"}
    for case, spec in CASES.items():
        assert set(spec["fits"]) == set(FIT_KEYS), case
        for fit in FIT_KEYS:
            rec = spec["fits"][fit]
            for block in ("regtest", "regtest_lm", "ranktest", "ranktest_normal",
                          "trimfill_L0", "trimfill_R0"):
                assert rec[block]["call"], (case, fit, block)
            for block in ("trimfill_L0", "trimfill_R0"):
                tf = rec[block]
                assert len(tf["filled_yi"]) == len(tf["filled_vi"]) == tf["k0"]
    assert "regtest_lm_sqrtninv" in CASES["egger2001"]["fits"]["REML_z"]


@pytest.mark.parametrize("case,fit", list(_params()))
def test_egger_matches_regtest(case, fit):
    ref = CASES[case]["fits"][fit]
    yi, vi = _inputs(case)
    method, test = ref["method"], ref["test"]
    rtol = RTOL[method]
    # R: regtest(res)  -- meta-regression yi ~ sei with res's method and test
    r = ref["regtest"]
    e = egger_test(yi, vi, method=method, ci=CI_OF_TEST[test], force=True)
    assert e.computed and e.stat_dist == r["stat_dist"]
    assert e.df == (None if test == "z" else len(yi) - 2)
    for ours, theirs in (("stat", "stat"), ("p_value", "pval"), ("slope", "slope"),
                         ("slope_se", "slope_se"), ("limit_estimate", "est"),
                         ("limit_ci_lower", "ci_lower"), ("limit_ci_upper", "ci_upper"),
                         ("tau2", "tau2")):
        _close(getattr(e, ours), r[theirs], rtol, f"regtest.{ours}", f"{case} {fit} {ours}")
    # R: regtest(res, model = "lm")  -- weighted regression, multiplicative dispersion
    r = ref["regtest_lm"]
    e = egger_test(yi, vi, model="lm", force=True)
    assert e.df == r["df"] == len(yi) - 2
    for ours, theirs in (("stat", "stat"), ("p_value", "pval"), ("slope", "slope"),
                         ("slope_se", "slope_se"), ("limit_estimate", "est"),
                         ("limit_ci_lower", "ci_lower"), ("limit_ci_upper", "ci_upper")):
        _close(getattr(e, ours), r[theirs], RTOL_CLOSED, f"regtest_lm.{ours}",
               f"{case} {fit} lm {ours}")


def test_egger_sqrtninv_matches_regtest():
    # R: regtest(res, model = "lm", predictor = "sqrtninv", ni = dat$ni)  (dat.egger2001)
    r = CASES["egger2001"]["fits"]["REML_z"]["regtest_lm_sqrtninv"]
    yi, vi = _inputs("egger2001")
    ni = CASES["egger2001"]["input"]["ni"]
    e = egger_test(yi, vi, model="lm", predictor="sqrtninv", ni=ni)
    for ours, theirs in (("stat", "stat"), ("p_value", "pval"), ("slope", "slope"),
                         ("limit_estimate", "est"), ("limit_ci_lower", "ci_lower"),
                         ("limit_ci_upper", "ci_upper")):
        _close(getattr(e, ours), r[theirs], RTOL_CLOSED, f"regtest_sqrtninv.{ours}",
               f"egger2001 sqrtninv {ours}")
    assert e.stat == pytest.approx(-5.6083, abs=1e-4)  # documented value
    # predictors without a limit (n -> infinity is not predictor -> 0): no limit estimate
    e2 = egger_test(yi, vi, model="lm", predictor="sqrtni", ni=ni)
    assert e2.computed and e2.limit_estimate is None and e2.limit_ci_lower is None


@pytest.mark.parametrize("case,fit", list(_params()))
def test_begg_matches_ranktest(case, fit):
    ref = CASES[case]["fits"][fit]
    yi, vi = _inputs(case)
    # R: ranktest(res)  -- cor.test(yi.star, vi, method = "kendall", exact = TRUE)
    r = ref["ranktest"]
    b = begg_test(yi, vi, force=True)
    _close(b.tau, r["tau"], RTOL_CLOSED, "ranktest.tau", f"{case} tau")
    _close(b.p_value, r["pval"], RTOL_CLOSED, "ranktest.p_value", f"{case} p")
    r_ties = any("ties" in w for w in r.get("warnings", []))
    assert b.ties == r_ties
    assert b.p_method == ("normal" if r_ties else "exact")
    assert any("ties" in w for w in b.warnings) == r_ties
    # R: ranktest(res, exact = FALSE)
    r = ref["ranktest_normal"]
    b = begg_test(yi, vi, exact=False, force=True)
    _close(b.p_value, r["pval"], RTOL_CLOSED, "ranktest_normal.p_value", f"{case} p normal")


@pytest.mark.parametrize("case,fit", list(_params()))
@pytest.mark.parametrize("estimator", ["L0", "R0"])
def test_trim_and_fill_matches_trimfill(case, fit, estimator):
    ref = CASES[case]["fits"][fit]
    yi, vi = _inputs(case)
    method, test = ref["method"], ref["test"]
    rtol = RTOL[method]
    # R: trimfill(res, estimator = E, test = T, control = ...); predict(tf)
    r = ref[f"trimfill_{estimator}"]
    tf = trim_and_fill(yi, vi, estimator=estimator, method=method, ci=CI_OF_TEST[test],
                       pi=PI_OF_TEST[test], force=True)
    assert tf.computed
    assert tf.k0 == r["k0"] and tf.side == r["side"] and tf.side_estimated
    _count["n"] += 2
    _close(tf.se_k0, r["se_k0"], RTOL_CLOSED, "trimfill.se_k0", f"{case} se_k0")
    if estimator == "R0":
        _close(tf.p_k0, r["p_k0"], RTOL_CLOSED, "trimfill.p_k0", f"{case} p_k0")
    else:
        assert tf.p_k0 is None and r["p_k0"] is None
    row = tf.to_records()[0]
    assert row["k_filled"] == r["k"] == len(yi) + tf.k0
    for ours, theirs in (("estimate", "estimate"), ("se", "se"), ("p_value", "pval"),
                         ("ci_lower", "ci_lower"), ("ci_upper", "ci_upper"),
                         ("tau2", "tau2"), ("pi_lower", "pi_lower"),
                         ("pi_upper", "pi_upper")):
        _close(row[ours], r[theirs], rtol, f"trimfill.{ours}", f"{case} {fit} {ours}")
    adj = tf.fit
    _close(adj.stat, r["stat"], rtol, "trimfill.stat", f"{case} {fit} stat")
    _close(adj.q, r["q"], rtol, "trimfill.q", f"{case} {fit} q")
    _close(adj.i2, r["i2"], rtol, "trimfill.i2", f"{case} {fit} i2")
    for i in range(tf.k0):
        _close(tf.filled_yi[i], r["filled_yi"][i], rtol, "trimfill.filled_yi",
               f"{case} filled yi {i}")
        _close(tf.filled_vi[i], r["filled_vi"][i], RTOL_CLOSED, "trimfill.filled_vi",
               f"{case} filled vi {i}")


def test_documented_values():
    # metafor documentation / help pages (printed to 4 decimals)
    yi, vi = _inputs("egger2001")
    assert egger_test(yi, vi).stat == pytest.approx(-4.6686, abs=1e-4)
    b = begg_test(yi, vi)
    assert b.tau == pytest.approx(0.15, abs=1e-12)
    assert b.p_value == pytest.approx(0.4503, abs=1e-4)
    yi, vi = _inputs("bcg")
    e = egger_test(yi, vi)
    assert e.stat == pytest.approx(-0.8033, abs=1e-4)
    assert e.p_value == pytest.approx(0.4218, abs=1e-4)
    b = begg_test(yi, vi)
    assert b.tau == pytest.approx(0.0256, abs=1e-4)
    assert b.p_value == pytest.approx(0.9524, abs=1e-4)
    tf = trim_and_fill(yi, vi)
    assert (tf.k0, tf.side) == (1, "right")
    assert tf.fit.estimate == pytest.approx(-0.6571, abs=1e-4)


def test_small_k_is_not_computed_unless_forced():
    yi, vi = _inputs("orr_default")  # k = 6
    for fn in (egger_test, begg_test, trim_and_fill):
        res = fn(yi, vi)
        assert res.computed is False and res.forced is False
        assert "k = 6 is below min_k = 10" in res.reason
        assert res.caveat == CAVEAT
        d = res.to_dict()
        assert d["computed"] is False and d["caveat"] == CAVEAT
        forced = fn(yi, vi, force=True)
        assert forced.computed is True and forced.forced is True
        assert forced.reason is None and forced.caveat == CAVEAT
        assert any("force=True" in w for w in forced.warnings)
        # min_k can be lowered explicitly
        assert fn(yi, vi, min_k=5).computed and not fn(yi, vi, min_k=5).forced
    e = egger_test(yi, vi)
    assert e.stat is None and e.p_value is None and e.limit_estimate is None
    tf = trim_and_fill(yi, vi)
    assert tf.k0 is None and tf.fit is None and tf.to_dict()["adjusted"] is None
    # fewer than 3 studies: never computed
    assert not egger_test([0.1, 0.2], [0.1, 0.2], force=True).computed
    assert "at least 3" in begg_test([0.1, 0.2], [0.1, 0.2], force=True).reason


def test_caveat_is_always_present():
    yi, vi = _inputs("bcg")
    for res in (egger_test(yi, vi), begg_test(yi, vi), trim_and_fill(yi, vi)):
        assert res.computed and res.caveat == CAVEAT
        assert "fewer than 10 studies" in res.to_dict()["caveat"]
        assert "publication bias" in res.to_records()[0]["caveat"]


def test_kendall_exact_distribution():
    # brute force for small n: the number of inversions over all permutations
    from itertools import permutations

    n = 6
    inv = [sum(p[i] > p[j] for i in range(n) for j in range(i + 1, n))
           for p in permutations(range(n))]
    for q in range(-1, n * (n - 1) // 2 + 1):
        assert bias._kendall_exact_cdf(q, n) == pytest.approx(
            np.mean(np.array(inv) <= q), rel=1e-12, abs=1e-15)
    # n = 200 without ties: R's C_pKendall overflows (p = NA); scipy's exact test agrees
    rng = np.random.default_rng(7)
    yi = rng.normal(0, 0.3, 200)
    vi = rng.uniform(0.01, 0.2, 200)
    b = begg_test(yi, vi)
    assert b.p_method == "exact" and not b.ties
    wi = 1 / vi
    ystar = (yi - np.sum(wi * yi) / np.sum(wi)) / np.sqrt(vi - 1 / np.sum(wi))
    ref = stats.kendalltau(ystar, vi, method="exact")
    assert b.tau == pytest.approx(ref.statistic, rel=1e-12)
    assert b.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    # and the exact p is close to the normal approximation at this n
    assert b.p_value == pytest.approx(begg_test(yi, vi, exact=False).p_value, rel=0.05)


def test_constant_variances():
    yi = np.linspace(-0.5, 0.5, 12)
    vi = np.full(12, 0.04)
    e = egger_test(yi, vi)
    assert not e.computed and "same for every study" in e.reason
    b = begg_test(yi, vi)
    assert not b.computed and "undefined" in b.reason
    tf = trim_and_fill(yi, vi)
    assert not tf.computed and "side" in tf.reason
    tf = trim_and_fill(yi, vi, side="left")  # symmetric: nothing to fill
    assert tf.computed and tf.k0 == 0 and tf.filled_yi == ()
    assert tf.fit.k == 12


def test_trim_and_fill_is_one_batched_fit(monkeypatch):
    calls = []
    real = pooling.fit_batch

    def counted(y, v, **kw):
        calls.append(np.shape(y))
        return real(y, v, **kw)

    monkeypatch.setattr(pooling, "fit_batch", counted)
    yi, vi = _inputs("bcg")
    tf = trim_and_fill(yi, vi)
    assert calls == [(1, len(yi) + tf.k0)]


def test_trim_and_fill_given_side_and_natural_scale():
    yi, vi = _inputs("bcg")
    left = trim_and_fill(yi, vi, side="left", measure="log")
    assert left.side == "left" and not left.side_estimated
    nat = left.to_dict("natural")["adjusted"]
    assert nat["estimate"] == pytest.approx(math.exp(left.fit.estimate))
    # filled studies are mirror images about the trimmed estimate, with the same vi
    right = trim_and_fill(yi, vi, side="right")
    assert right.k0 == 1
    assert right.filled_vi[0] in set(vi)


def test_egger_wald_t_test():
    # metafor regtest() of an rma(..., test = "t") fit: the same statistic as with
    # test = "z" (unscaled SEs), p-value and limit CI from t with k - 2 df
    yi, vi = _inputs("bcg")
    z = egger_test(yi, vi, ci="z")
    t = egger_test(yi, vi, ci="t")
    assert t.stat == pytest.approx(z.stat, rel=1e-14)
    assert t.df == len(yi) - 2 and t.stat_dist == "t"
    assert t.p_value == pytest.approx(2 * stats.t.sf(abs(t.stat), len(yi) - 2), rel=1e-12)
    assert t.p_value == pytest.approx(0.4387987, abs=1e-7)  # R 3.8-1 printed value
    half_z = z.limit_ci_upper - z.limit_estimate
    half_t = t.limit_ci_upper - t.limit_estimate
    assert half_t / half_z == pytest.approx(
        stats.t.ppf(0.975, len(yi) - 2) / stats.norm.ppf(0.975), rel=1e-12)


def test_input_validation():
    yi, vi = _inputs("bcg")
    with pytest.raises(ValueError, match="model"):
        egger_test(yi, vi, model="glm")
    with pytest.raises(ValueError, match="predictor"):
        egger_test(yi, vi, predictor="n")
    with pytest.raises(ValueError, match="needs the sample sizes"):
        egger_test(yi, vi, predictor="sqrtninv")
    with pytest.raises(ValueError, match="ni must"):
        egger_test(yi, vi, predictor="ni", ni=[10] * 3)
    with pytest.raises(ValueError, match="method"):
        egger_test(yi, vi, method="XX")
    with pytest.raises(ValueError, match="min_k"):
        begg_test(yi, vi, min_k=0)
    with pytest.raises(TypeError, match="force"):
        begg_test(yi, vi, force="yes")
    with pytest.raises(ValueError, match="side"):
        trim_and_fill(yi, vi, side="up")
    with pytest.raises(ValueError, match="estimator"):
        trim_and_fill(yi, vi, estimator="L1")
    with pytest.raises(ValueError, match="measure"):
        trim_and_fill(yi, vi, measure="PFT")
    with pytest.raises(TypeError, match="exact"):
        begg_test(yi, vi, exact="yes")
    with pytest.raises(ValueError, match="positive"):
        begg_test(yi, -vi)
    with pytest.raises(ValueError, match="same length"):
        egger_test(yi, vi[:-1])


def _assert_plain(obj, path="result"):
    if isinstance(obj, dict):
        for key, val in obj.items():
            _assert_plain(val, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, val in enumerate(obj):
            _assert_plain(val, f"{path}[{i}]")
    else:
        assert obj is None or type(obj) in (str, int, float, bool), (path, type(obj))
        if isinstance(obj, float):
            assert math.isfinite(obj), path


def test_results_are_plain_python_without_nan():
    yi, vi = _inputs("egger2001")
    small = _inputs("orr_default")
    for res in (egger_test(yi, vi), egger_test(yi, vi, model="lm"), begg_test(yi, vi),
                trim_and_fill(yi, vi, estimator="R0"), egger_test(*small),
                begg_test(*small), trim_and_fill(*small)):
        _assert_plain(res.to_dict())
        _assert_plain(res.to_records())
        json.dumps(res.to_dict(), allow_nan=False)


def test_report_largest_differences(capsys):
    with capsys.disabled():
        for key in sorted(_worst):
            print(f"\nbias worst rel. diff {key}: {_worst[key]:.2e}", end="")
        print(f"\nbias golden values compared: {_count['n']}")
