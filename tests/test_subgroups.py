"""Subgroup analysis parity with R metafor 3.8-1.

Goldens: ``subgroups`` in tests/golden/metareg_goldens.json, written by
``Rscript tests/golden/make_goldens_metareg.R``. Per case, method and test:

- each subgroup: ``rma(yi, vi, data = dat, subset = <group> == "<level>",
  method = <method>, test = <test>, control = list(threshold = 1e-12, maxiter = 10000,
  tol = 1e-12))`` and ``predict(res)``;
- separate tau²: ``b``, ``se`` from the same fits with ``test = "z"`` (Wald SE), then
  ``w <- 1 / se^2; sum(w * (b - sum(w * b) / sum(w))^2)`` (checked in R against
  ``rma(b, sei = se, method = "FE")$QE``), chi² with G - 1 df;
- common tau²: ``rma(yi, vi, mods = ~ <group>, data = dat, method = <method>,
  test = <test>, control = ...)``: QM, QMdf, QMp, tau2.

Cases: BCG by allocation (levels of 2, 7, 4 trials), BCG by decade (two single-trial
levels), default ORR (logit) by design (3 + 3).

Tolerances as in test_metareg.py: relative 1e-8 for closed-form estimators (FE, DL, HE,
SJ), 1e-6 for iterative ones (REML, ML, PM); absolute 1e-10 for tau² at 0 and 1e-6
percentage points for I² at 0 (metafor's Fisher scoring stops a hair above 0).
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from metapool.subgroups import (
    TEST_COMMON,
    TEST_SEPARATE,
    SubgroupResult,
    q_between,
    subgroup_analysis,
)

GOLDEN = json.loads(
    (Path(__file__).parent / "golden" / "metareg_goldens.json").read_text())
CASES = GOLDEN["subgroups"]
INPUTS = GOLDEN["inputs"]
METHODS = ("REML", "DL", "ML", "PM", "HE", "SJ", "FE")
TESTS = ("z", "knha", "adhoc")
CI_OF_TEST = {"z": "z", "knha": "hksj", "adhoc": "hksj_adhoc"}
#: metafor's predict() uses the normal quantile with test="z" and t(k-1) otherwise
PI_OF_TEST = {"z": "z", "knha": "t", "adhoc": "t"}
MEASURE = {"bcg": "log", "orr": "PLO"}
RTOL = {"FE": 1e-8, "DL": 1e-8, "HE": 1e-8, "SJ": 1e-8, "REML": 1e-6, "ML": 1e-6,
        "PM": 1e-6}
ATOL = {"tau2": 1e-10, "common_tau2": 1e-10, "i2": 1e-6, "h2": 1e-8}

_worst = {}
_compared = [0]  # golden numbers compared (passing tests only)


def _run(case, method, test):
    spec = CASES[case]
    inp = INPUTS[spec["data"]]
    return subgroup_analysis(inp["yi"], inp["vi"], inp[spec["group"]], method=method,
                             ci=CI_OF_TEST[test], pi=PI_OF_TEST[test],
                             measure=MEASURE[spec["data"]])


def _close(ours, ref, rtol, label, record=True):
    assert ours is not None, f"{label}: metapool gave None, metafor {ref}"
    quantity = label.split(":")[0]
    atol = ATOL.get(quantity, 0.0)
    diff = abs(ours - ref)
    _compared[0] += record
    if record and abs(ref) > atol:
        group = f"{quantity} ({'closed form' if rtol <= 1e-8 else 'iterative'})"
        _worst[group] = max(_worst.get(group, 0.0), diff / abs(ref))
    assert diff <= max(atol, rtol * abs(ref)), (
        f"{label}: {ours!r} vs metafor {ref!r} (diff {diff:.2e})")


def _params(methods):
    for case in sorted(CASES):
        for method in methods:
            for test in TESTS:
                yield pytest.param(case, method, test, id=f"{case}-{method}-{test}")


LEVEL_FIELDS = {"estimate": "estimate", "se": "se", "stat": "stat", "p_value": "pval",
                "ci_lower": "ci_lower", "ci_upper": "ci_upper", "tau2": "tau2",
                "i2": "i2", "h2": "h2", "q": "q", "q_p": "q_p", "pi_lower": "pi_lower",
                "pi_upper": "pi_upper"}


@pytest.mark.parametrize("case,method,test", list(_params(METHODS)))
def test_subgroups_and_separate_tau2_test_match_metafor(case, method, test):
    ref = CASES[case]["fits"][f"{method}_{test}"]
    rtol = RTOL[method]
    res = _run(case, method, test)
    label = f"{case} {method}_{test}"
    assert list(res.levels) == CASES[case]["levels"]
    rows = res.to_records()
    for row, lev, est, se in zip(rows, ref["subgroups"], res.between_estimate,
                                 res.between_se):
        assert row["subgroup"] == lev["level"] and row["k"] == lev["k"]
        where = f"{label} {lev['level']}"
        # the inputs of Q_between: RE estimate and Wald SE, or the single study itself
        _close(est, lev["wald_estimate"], rtol, f"between_estimate: {where}")
        _close(se, lev["wald_se"], rtol, f"between_se: {where}")
        if lev["k"] == 1:
            # documented: a single study is reported, not pooled
            assert row["status"] == "not pooled: single study"
            assert row["estimate"] is None and row["tau2"] is None
            continue
        assert row["status"] == "pooled"
        for ours, theirs in LEVEL_FIELDS.items():
            if theirs.startswith("pi_") and (lev["k"] < 3 or method == "FE"):
                # documented: no PI for k < 3 (metafor gives one); for FE metafor's
                # "PI" is the CI and not compared (as in test_parity_metafor.py)
                assert row[ours] is None or method == "FE"
                continue
            _close(row[ours], lev[theirs], rtol, f"{theirs}: {where}")
        assert row["q_df"] == lev["q_df"]
    sep = ref["separate"]
    t = res.separate
    assert t.test == TEST_SEPARATE and t.distribution == "chi2"
    assert t.df == sep["df"] and t.df2 is None
    _close(t.statistic, sep["q"], rtol, f"q_between: {label}")
    _close(t.p_value, sep["p"], rtol, f"q_between_p: {label}")


@pytest.mark.parametrize("case,method,test",
                         list(_params([m for m in METHODS if m != "SJ"])))
def test_common_tau2_test_matches_metafor(case, method, test):
    # R: rma(yi, vi, mods = ~ <group>, data = dat, method, test, control = ...)
    ref = CASES[case]["fits"][f"{method}_{test}"]["common"]
    rtol = RTOL[method]
    res = _run(case, method, test)
    label = f"{case} {method}_{test}"
    t = res.common
    assert t.test == TEST_COMMON and t.reason is None
    assert t.distribution == ref["qm_dist"]
    assert t.df == ref["qm_df"] and t.df2 == ref["qm_df2"]
    _close(t.statistic, ref["qm"], rtol, f"qm: {label}")
    _close(t.p_value, ref["qm_p"], rtol, f"qm_p: {label}")
    _close(t.tau2, ref["tau2"], rtol, f"common_tau2: {label}")
    fit = res.common_fit
    assert fit.k == ref["k"] and fit.p == ref["p"]
    # metapool names the factor "group" (groupalternate, ...), R after its column
    prefix = CASES[case]["group"]
    assert [n.replace("group", prefix, 1) for n in fit.names] == ref["names"]
    for c, b, s in zip(fit.coefficients, ref["estimate"], ref["se"]):
        _close(c.estimate, b, rtol, f"coef: {label}")
        _close(c.se, s, rtol, f"coef_se: {label}")
    _close(fit.qe, ref["qe"], rtol, f"common_qe: {label}")


@pytest.mark.parametrize("case,test", [(c, t) for c in sorted(CASES) for t in TESTS])
def test_common_tau2_test_sj(case, test):
    ref = CASES[case]["fits"][f"SJ_{test}"]["common"]
    _close(_run(case, "SJ", test).common.tau2, ref["tau2"], 1e-8, "tau2: SJ",
           record=False)


def test_golden_grid_is_complete():
    assert GOLDEN["meta"]["metafor"] == "3.8-1"
    assert set(CASES) == {"bcg_alloc", "bcg_decade", "orr_design"}
    for case, spec in CASES.items():
        assert set(spec["fits"]) == {f"{m}_{t}" for m in METHODS for t in TESTS}, case
        for key, fit in spec["fits"].items():
            assert [s["level"] for s in fit["subgroups"]] == spec["levels"]
            assert [s["k"] for s in fit["subgroups"]] == spec["level_k"]
            assert fit["separate"]["df"] == len(spec["levels"]) - 1
            for field in ("q", "p"):
                assert fit["separate"][field] is not None, (case, key)
            for field in ("qm", "qm_p", "tau2"):
                assert fit["common"][field] is not None, (case, key)
    # the k = 1 edge case is in the grid
    assert CASES["bcg_decade"]["level_k"] == [2, 1, 4, 5, 1]
    assert CASES["bcg_alloc"]["level_k"] == [2, 7, 4]
    assert CASES["orr_design"]["level_k"] == [3, 3]


# ------------------------------------------------------------------------------------
# properties and edge cases
# ------------------------------------------------------------------------------------

BCG = INPUTS["bcg"]


def test_fe_separate_and_common_tests_coincide():
    # with tau² = 0 both tests are the classical fixed-effect Q-between
    res = subgroup_analysis(BCG["yi"], BCG["vi"], BCG["alloc"], method="FE", ci="z")
    assert res.separate.statistic == pytest.approx(res.common.statistic, rel=1e-10)
    assert res.separate.p_value == pytest.approx(res.common.p_value, rel=1e-9)


def test_separate_test_does_not_depend_on_ci():
    stats = {ci: subgroup_analysis(BCG["yi"], BCG["vi"], BCG["alloc"], ci=ci).separate
             for ci in ("z", "hksj", "hksj_adhoc")}
    assert len({s.statistic for s in stats.values()}) == 1


def test_single_study_levels_enter_with_their_own_se():
    res = subgroup_analysis(BCG["yi"], BCG["vi"], BCG["decade"], method="REML")
    i = res.levels.index("1950s")
    (j,) = res.members[i]
    assert res.between_estimate[i] == BCG["yi"][j]
    assert res.between_se[i] == math.sqrt(BCG["vi"][j])
    assert res.result("1950s").status == "not pooled: single study"
    assert any("single study" in w for w in res.warnings)
    assert res.separate.df == 4


def test_single_level_gives_no_tests():
    res = subgroup_analysis([0.1, 0.2, 0.4], [0.1, 0.1, 0.2], ["a", "a", "a"])
    assert res.separate.statistic is None and res.common.statistic is None
    assert "single subgroup" in res.separate.reason
    assert res.common_fit is None and res.results[0].pooled
    json.dumps(res.to_dict(), allow_nan=False)


def test_too_few_studies_for_the_common_test():
    # k = G: no residual df for a random-effects meta-regression; separate test stays
    res = subgroup_analysis([0.1, 0.5], [0.1, 0.2], ["a", "b"], method="REML", ci="z")
    assert res.common.statistic is None and res.common_fit is None
    assert "not possible" in res.common.reason
    q, df, _p = q_between([0.1, 0.5], np.sqrt([0.1, 0.2]))
    assert res.separate.statistic == pytest.approx(q) and res.separate.df == df == 1
    # FE with z: the common test exists (the classical Q-between)
    fe = subgroup_analysis([0.1, 0.5], [0.1, 0.2], ["a", "b"], method="FE", ci="z")
    assert fe.common.statistic == pytest.approx(q, rel=1e-12)
    # FE with HKSJ: no residual df, numbers None with the reason
    fe_hk = subgroup_analysis([0.1, 0.5], [0.1, 0.2], ["a", "b"], method="FE", ci="hksj")
    assert fe_hk.common.statistic is None and "degrees of freedom" in fe_hk.common.reason


def test_numeric_groups_sort_by_value():
    res = subgroup_analysis([0.1, 0.2, 0.3, 0.5, 0.4, 0.6], [0.1] * 6,
                            [10, 9, 10, 9, 10, 9])
    assert res.levels == ("9", "10")
    assert res.members == ((1, 3, 5), (0, 2, 4))


def test_q_between_formula():
    q, df, p = q_between([0.0, 1.0], [1.0, 1.0])
    assert (q, df) == (0.5, 1) and p == pytest.approx(0.4795001221869535, rel=1e-12)
    assert q_between([0.3], [0.1])[2] is None
    with pytest.raises(ValueError):
        q_between([0.0, 1.0], [0.0, 1.0])


@pytest.mark.parametrize("kwargs,message", [
    ({"method": "XX"}, "method"),
    ({"ci": "knha"}, "ci must"),
    ({"pi": "x"}, "pi must"),
    ({"level": 0}, "level"),
    ({"measure": "OR"}, "measure"),
])
def test_option_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        subgroup_analysis([0.1, 0.2], [0.1, 0.1], ["a", "b"], **kwargs)


@pytest.mark.parametrize("args,message", [
    (([0.1, 0.2], [0.1], ["a", "b"]), "same length"),
    (([0.1, 0.2], [0.1, 0.1], ["a"]), "groups has 1"),
    (([0.1, 0.2], [0.1, -0.1], ["a", "b"]), "positive"),
    (([0.1, 0.2], [0.1, 0.1], ["a", None]), "missing"),
    (([0.1, math.inf], [0.1, 0.1], ["a", "b"]), "finite"),
])
def test_input_validation(args, message):
    with pytest.raises(ValueError, match=message):
        subgroup_analysis(*args)


def test_result_dict_and_records():
    inp = INPUTS["orr"]
    res = subgroup_analysis(inp["yi"], inp["vi"], inp["design"], measure="PLO")
    assert isinstance(res, SubgroupResult)
    d = res.to_dict("natural")
    json.dumps(d, allow_nan=False)
    assert set(d) == {"levels", "subgroups", "tests", "method", "ci_method",
                      "pi_method", "level", "measure", "common_fit", "warnings"}
    assert [t["test"] for t in d["tests"]] == [TEST_SEPARATE, TEST_COMMON]
    assert set(d["tests"][0]) == {"test", "label", "statistic", "df", "df2",
                                  "distribution", "p_value", "tau2", "reason"}
    assert "separate" in d["tests"][0]["label"] and "common" in d["tests"][1]["label"]
    assert d["tests"][1]["distribution"] == "F" and "F with" in d["tests"][1]["label"]
    rows = res.to_records("natural")
    assert [r["subgroup"] for r in rows] == ["comparative", "single-arm"]
    assert {"subgroup", "between_estimate", "between_se"} <= set(rows[0])
    assert 0 < rows[0]["estimate"] < 1  # back-transformed proportion


def test_report_largest_differences(capsys):
    with capsys.disabled():
        print(f"\nsubgroup parity: {_compared[0]} golden numbers compared", end="")
        for key in sorted(_worst):
            print(f"\nsubgroup parity worst rel. diff {key}: {_worst[key]:.2e}", end="")
