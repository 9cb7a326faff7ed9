"""Leave-one-out, cumulative meta-analysis and influence diagnostics against R metafor.

Goldens: tests/golden/sensitivity_goldens.json, written by
tests/golden/make_goldens_sensitivity.R (metafor 3.8-1). Per case and fit the script runs
``res <- rma(yi, vi, data = dat, method = M, test = T, control = list(threshold = 1e-12,
maxiter = 10000, tol = 1e-12))`` and then ``leave1out(res)``, ``cumul(res, order = pos)``
and ``influence(res)``; prediction intervals come from ``predict()`` of the model refitted
to each subset (the call is stored as ``pi_call``).

Tolerances (relative; absolute where the reference is ~0):
- DL fits (closed form): 1e-8;
- REML fits (Fisher scoring to 1e-12 on both sides): 1e-6;
- references below 1e-10 in absolute value (tau² = 0, I² = 0): absolute 1e-10 (I²: 1e-6
  percentage points, H²: 1e-8), as in tests/golden/README.md.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from metapool import pooling, sensitivity
from metapool.sensitivity import (
    INFLUENCE_COLUMNS,
    cumulative,
    cumulative_order,
    influence,
    leave_one_out,
)

HERE = Path(__file__).parent
GOLDEN = json.loads((HERE / "golden" / "sensitivity_goldens.json").read_text())
CASES = GOLDEN["cases"]
FIT_KEYS = ("REML_z", "REML_knha", "DL_z")
RTOL = {"DL": 1e-8, "REML": 1e-6}
ATOL = {"i2": 1e-6, "h2": 1e-8}
ATOL_DEFAULT = 1e-10
CI_OF_TEST = {"z": "z", "knha": "hksj"}
PI_OF_TEST = {"z": "z", "knha": "t"}  # metafor's predict(): normal for z, t(k-1) for knha
#: metafor's leave1out()/cumul() field -> metapool record key
LIST_FIELDS = {"estimate": "estimate", "se": "se", "stat": "stat", "pval": "p_value",
               "ci_lower": "ci_lower", "ci_upper": "ci_upper", "q": "q", "q_p": "q_p",
               "tau2": "tau2", "i2": "i2", "h2": "h2"}

_worst: dict[str, float] = {}
_count = {"n": 0}


def _inputs(case):
    inp = CASES[case]["input"]
    if case == "sim200":
        # the simulated set is read from the committed CSV, exactly as R read it
        import csv

        with open(HERE / "golden" / "inputs" / "sim200.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        return (np.array([float(r["yi"]) for r in rows]),
                np.array([float(r["vi"]) for r in rows]), [r["study"] for r in rows])
    return np.array(inp["yi"]), np.array(inp["vi"]), list(inp["label"])


def _close(ours, ref, rtol, key, label):
    """Compare one number; record the relative difference under ``key``."""
    assert ours is not None, f"{label}: metapool gave None, metafor {ref}"
    assert math.isfinite(ours), f"{label}: metapool gave {ours}"
    atol = ATOL.get(key.split(".")[-1], ATOL_DEFAULT)
    diff = abs(ours - ref)
    assert diff <= max(atol, rtol * abs(ref)), (
        f"{label}: {ours!r} vs metafor {ref!r} (diff {diff:.2e})")
    _count["n"] += 1
    if abs(ref) > atol:
        _worst[key] = max(_worst.get(key, 0.0), diff / abs(ref))


def _params():
    for case in sorted(CASES):
        for fit in FIT_KEYS:
            yield pytest.param(case, fit, id=f"{case}-{fit}")


def _settings(case, fit):
    ref = CASES[case]["fits"][fit]
    test = ref["test"]
    return ref, {"method": ref["method"], "ci": CI_OF_TEST[test], "pi": PI_OF_TEST[test]}


def test_golden_grid_is_complete():
    # the comparison cannot quietly shrink: every case carries every fit and block
    assert GOLDEN["meta"]["metafor"] == "3.8-1"
    assert set(CASES) == {"bcg", "egger2001", "pritz1997", "orr_default", "sim200"}
    for case, spec in CASES.items():
        k = spec["input"]["k"]
        assert set(spec["fits"]) == set(FIT_KEYS), case
        for fit in FIT_KEYS:
            rec = spec["fits"][fit]
            for block in ("leave1out", "cumul"):
                for field in list(LIST_FIELDS) + ["pi_lower", "pi_upper"]:
                    assert len(rec[block][field]) == k, (case, fit, block, field)
                assert rec[block]["call"]
            for col in INFLUENCE_COLUMNS:
                assert len(rec["influence"][col]) == k, (case, fit, col)
            assert len(rec["influence"]["influential"]) == k
            assert len(rec["cumul"]["order"]) == k
    # published/cross-check data sets are what they claim to be
    assert CASES["bcg"]["input"]["k"] == 13
    assert CASES["egger2001"]["input"]["k"] == 16
    assert CASES["pritz1997"]["input"]["k"] == 14
    assert CASES["orr_default"]["input"]["k"] == 6
    assert CASES["sim200"]["input"]["k"] == 200


def test_sim200_csv_matches_golden_input():
    # R wrote the CSV and read it back; the JSON copy must be the same numbers
    yi, vi, labels = _inputs("sim200")
    np.testing.assert_allclose(yi, CASES["sim200"]["input"]["yi"], rtol=1e-14)
    np.testing.assert_allclose(vi, CASES["sim200"]["input"]["vi"], rtol=1e-14)
    assert labels == CASES["sim200"]["input"]["label"]


@pytest.mark.parametrize("case,fit", list(_params()))
def test_leave_one_out_matches_metafor(case, fit):
    ref, kw = _settings(case, fit)
    yi, vi, labels = _inputs(case)
    rtol = RTOL[kw["method"]]
    res = leave_one_out(yi, vi, labels=labels, **kw)
    records = res.to_records()
    lo = ref["leave1out"]
    # R: leave1out(res)
    for i, row in enumerate(records):
        assert row["omitted"] == lo["omitted"][i]
        assert row["k"] == len(yi) - 1
        for theirs, ours in LIST_FIELDS.items():
            _close(row[ours], lo[theirs][i], rtol, f"leave1out.{ours}",
                   f"{case} {fit} omit {i} {ours}")
        # R: predict(rma(yi, vi, data = dat, subset = -i, ...)); none here for k - 1 < 3
        for key in ("pi_lower", "pi_upper"):
            if len(yi) - 1 >= pooling.MIN_K_PI:
                _close(row[key], lo[key][i], rtol, f"leave1out.{key}", f"{case} {fit} {key}")
            else:
                assert row[key] is None
    if "natural" in lo:
        # R: leave1out(res, transf = exp | transf.ilogit)
        measure = "PLO" if CASES[case]["back_transform"] == "ilogit" else "log"
        nat = leave_one_out(yi, vi, labels=labels, measure=measure, **kw).to_records(
            "natural")
        for i, row in enumerate(nat):
            for key in ("estimate", "ci_lower", "ci_upper"):
                _close(row[key], lo["natural"][key][i], rtol, f"leave1out.natural.{key}",
                       f"{case} {fit} natural {key}")


@pytest.mark.parametrize("case,fit", list(_params()))
def test_cumulative_matches_metafor(case, fit):
    ref, kw = _settings(case, fit)
    yi, vi, labels = _inputs(case)
    rtol = RTOL[kw["method"]]
    cu = ref["cumul"]
    inp = CASES[case]["input"]
    # the order: by year, ties by label (R: order(dat$year, dat$label, method = "radix"))
    if "year" in inp:
        order = cumulative_order(inp["year"], labels)
    else:
        order = list(range(len(yi)))
    assert order == cu["order"]
    res = cumulative(yi, vi, order, labels=labels, **kw)
    records = res.to_records()
    assert [r["added"] for r in records] == cu["added"]
    # step 1: metapool does not pool a single study; metafor reports the study itself
    first = records[0]
    assert first["k"] == 1 and first["status"] == "not pooled: single study"
    assert all(first[key] is None for key in ("estimate", "se", "ci_lower", "tau2", "q_p"))
    assert cu["estimate"][0] == pytest.approx(yi[order[0]], rel=1e-14)
    assert cu["se"][0] == pytest.approx(math.sqrt(vi[order[0]]), rel=1e-14)
    # R: cumul(res, order = pos), rows 2..k
    for j in range(1, len(yi)):
        row = records[j]
        assert row["step"] == row["k"] == j + 1
        for theirs, ours in LIST_FIELDS.items():
            _close(row[ours], cu[theirs][j], rtol, f"cumul.{ours}",
                   f"{case} {fit} step {j + 1} {ours}")
        for key in ("pi_lower", "pi_upper"):
            if j + 1 >= pooling.MIN_K_PI:
                _close(row[key], cu[key][j], rtol, f"cumul.{key}", f"{case} {fit} {key}")
            else:
                assert row[key] is None


@pytest.mark.parametrize("case,fit", list(_params()))
def test_influence_matches_metafor(case, fit):
    ref, kw = _settings(case, fit)
    yi, vi, labels = _inputs(case)
    rtol = RTOL[kw["method"]]
    inf = ref["influence"]
    # R: influence(res)
    res = influence(yi, vi, method=kw["method"], ci=kw["ci"], labels=labels)
    records = res.to_records()
    for col in INFLUENCE_COLUMNS:
        for i, row in enumerate(records):
            _close(row[col], inf[col][i], rtol, f"influence.{col}", f"{case} {fit} {col} {i}")
    assert [r["influential"] for r in records] == inf["influential"]
    _count["n"] += len(records)  # the flags


def test_published_bcg_values():
    # Viechtbauer (2010) / metafor documentation, dat.bcg log RR, REML, z test. These
    # six-decimal values were printed by metafor with its *default* convergence control
    # (threshold = 1e-5): e.g. step 4 is -1.0010937 there and -1.0010962 with
    # threshold = 1e-12 (the goldens above), so the cumulative estimates are compared at
    # 5e-6; the leave-one-out and influence values agree to their printed digits.
    yi, vi, labels = _inputs("bcg")
    order = cumulative_order(CASES["bcg"]["input"]["year"], labels)
    cu = cumulative(yi, vi, order, method="REML", ci="z", pi="z")
    published = [-1.325003, -0.97208, -1.001094, -1.101424, -0.973464, -0.901251,
                 -0.788566, -0.865607, -0.785211, -0.708206, -0.794768, -0.714532]
    np.testing.assert_allclose([f.estimate for f in cu.fits[1:]], published, rtol=0,
                               atol=5e-6)
    lo = leave_one_out(yi, vi, method="REML", ci="z", pi="z").fits[0]
    assert lo.estimate == pytest.approx(-0.707084, abs=1e-6)
    assert lo.se == pytest.approx(0.189961, abs=1e-6)
    assert lo.ci_lower == pytest.approx(-1.079401, abs=1e-6)
    assert lo.ci_upper == pytest.approx(-0.334767, abs=1e-6)
    assert lo.tau2 == pytest.approx(0.336157, abs=1e-6)
    assert lo.i2 == pytest.approx(93.2259, abs=1e-4)
    assert lo.q == pytest.approx(151.5826, abs=1e-4)
    inf = influence(yi, vi, method="REML", ci="z")
    assert inf.rstudent[0] == pytest.approx(-0.2181, abs=1e-4)
    assert inf.cook_d[0] == pytest.approx(0.001717, abs=1e-6)
    assert inf.hat[0] == pytest.approx(0.0506, abs=1e-4)
    assert not inf.influential.any()


def _counting(monkeypatch):
    calls = []
    real = pooling.fit_batch

    def counted(y, v, **kw):
        calls.append(np.shape(y))
        return real(y, v, **kw)

    monkeypatch.setattr(pooling, "fit_batch", counted)
    return calls


def test_each_panel_is_one_batched_fit(monkeypatch):
    yi, vi, _ = _inputs("bcg")
    k = len(yi)
    calls = _counting(monkeypatch)
    leave_one_out(yi, vi)
    assert calls == [(k, k - 1)]
    calls.clear()
    cumulative(yi, vi, list(range(k)))
    assert calls == [(k, k)]
    calls.clear()
    influence(yi, vi)
    assert calls == [(k + 1, k)]


def test_k2_leave_one_out_leaves_single_studies():
    res = leave_one_out([0.1, 0.5], [0.04, 0.09], method="REML", ci="hksj", pi="t",
                        labels=["a", "b"])
    for row in res.to_records():
        assert row["k"] == 1
        assert row["status"] == "not pooled: single study"
        assert row["estimate"] is None and row["pi_lower"] is None and row["q_p"] is None
    assert res.to_records()[0]["omitted"] == "a"


def test_k3_leave_one_out_has_no_prediction_interval():
    res = leave_one_out([0.1, 0.5, 0.3], [0.04, 0.09, 0.05], pi="t")
    for row in res.to_records():
        assert row["k"] == 2 and row["status"] == "pooled"
        assert row["pi_lower"] is None and row["pi_upper"] is None
        assert any("k = 2" in w for w in row["warnings"])


def test_cumulative_single_study_and_order_validation():
    res = cumulative([0.3], [0.02], [0])
    (row,) = res.to_records()
    assert row["status"] == "not pooled: single study" and row["estimate"] is None
    with pytest.raises(ValueError, match="permutation"):
        cumulative([0.1, 0.2], [0.1, 0.1], [0, 0])
    with pytest.raises(ValueError, match="each of the 2"):
        cumulative([0.1, 0.2], [0.1, 0.1], [0])
    with pytest.raises(ValueError, match="integer"):
        cumulative([0.1, 0.2], [0.1, 0.1], [0.5, 1.5])


def test_cumulative_order_years_ties_and_missing():
    assert cumulative_order([2025, 2024, 2015, 2025], ["Tang", "Cao", "Yu", "Anon"]) == [
        2, 1, 3, 0]
    assert cumulative_order([None, 2000, float("nan"), 1999], ["a", "b", "c", "d"]) == [
        3, 1, 0, 2]
    with pytest.raises(ValueError):
        cumulative_order([2000], ["a", "b"])


def test_all_equal_effects_give_tau2_zero_and_defined_diagnostics():
    yi = np.full(5, 0.4)
    vi = np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    lo = leave_one_out(yi, vi, ci="hksj")
    for row in lo.to_records():
        assert row["tau2"] == 0.0 and row["q"] == pytest.approx(0.0, abs=1e-20)
        assert row["estimate"] == pytest.approx(0.4, rel=1e-14)
    inf = influence(yi, vi, ci="z")
    rec = inf.to_records()
    assert all(r["rstudent"] == 0.0 for r in rec)
    assert all(r["cook_d"] == pytest.approx(0.0, abs=1e-20) for r in rec)
    # hksj: the deleted fits have a zero Knapp-Hartung scale, so DFFITS is 0/0
    hk = influence(yi, vi, ci="hksj").to_records()
    assert all(r["dffits"] is None or math.isfinite(r["dffits"]) for r in hk)


def test_influence_k2_is_defined():
    res = influence([0.1, 0.5], [0.04, 0.09], labels=["a", "b"])
    rec = res.to_records()
    for row in rec:
        for col in ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "qe_del",
                    "dfbetas"):
            assert row[col] is None
        assert row["hat"] is not None and row["weight"] is not None
        assert row["influential"] is False
    assert sum(r["weight"] for r in rec) == pytest.approx(100.0)
    assert any("k = 2" in w for w in res.warnings)


def test_wald_t_ci_uses_unscaled_deleted_fits():
    # metafor test = "t": the deleted fits' SEs are not Knapp-Hartung scaled (s2w = 1),
    # so every influence diagnostic equals the z-test one (checked in R 3.8-1:
    # all.equal(influence(rma(..., test = "z"))$inf, influence(rma(..., test = "t"))$inf))
    yi, vi, _ = _inputs("bcg")
    z = influence(yi, vi, ci="z")
    t = influence(yi, vi, ci="t")
    for col in INFLUENCE_COLUMNS:
        np.testing.assert_allclose(getattr(t, col), getattr(z, col), rtol=1e-14)
    lo = leave_one_out(yi, vi, ci="t", pi="t").to_records()
    loz = leave_one_out(yi, vi, ci="z", pi="z").to_records()
    for a, b in zip(lo, loz):
        assert a["se"] == pytest.approx(b["se"], rel=1e-14)
        assert a["ci_lower"] < b["ci_lower"]  # t quantile with k - 2 df is wider


def test_q_based_i2_option():
    yi, vi, _ = _inputs("bcg")
    res = leave_one_out(yi, vi, i2="q")
    assert res.to_dict()["i2_method"] == "Q-based"
    for row in res.to_records():
        df = row["q_df"]
        assert row["i2"] == pytest.approx(max(0.0, 100 * (row["q"] - df) / row["q"]))
        assert "i2_method" not in row
    cu = cumulative(yi, vi, list(range(len(yi))), i2="q")
    assert cu.to_dict()["i2_method"] == "Q-based"
    with pytest.raises(ValueError, match="i2"):
        leave_one_out(yi, vi, i2="x")


def test_input_validation():
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out([0.1], [0.1])
    with pytest.raises(ValueError, match="at least 2"):
        influence([0.1], [0.1])
    with pytest.raises(ValueError, match="positive"):
        leave_one_out([0.1, 0.2], [0.1, 0.0])
    with pytest.raises(ValueError, match="finite"):
        leave_one_out([0.1, np.nan], [0.1, 0.1])
    with pytest.raises(ValueError, match="same length"):
        leave_one_out([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="labels"):
        leave_one_out([0.1, 0.2], [0.1, 0.1], labels=["a"])
    with pytest.raises(ValueError, match="method"):
        leave_one_out([0.1, 0.2], [0.1, 0.1], method="XX")
    with pytest.raises(ValueError, match="measure"):
        leave_one_out([0.1, 0.2], [0.1, 0.1], measure="OR")
    with pytest.raises(ValueError, match="measure"):  # needs the subsets' sample sizes
        cumulative([0.1, 0.2], [0.1, 0.1], [0, 1], measure="PFT")
    with pytest.raises(ValueError, match="scale"):
        leave_one_out([0.1, 0.2, 0.3], [0.1, 0.1, 0.1]).to_records("odds")


def _assert_plain(obj, path="result"):
    if isinstance(obj, dict):
        for key, val in obj.items():
            assert isinstance(key, str), path
            _assert_plain(val, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, val in enumerate(obj):
            _assert_plain(val, f"{path}[{i}]")
    else:
        assert obj is None or type(obj) in (str, int, float, bool), (path, type(obj))
        if isinstance(obj, float):
            assert math.isfinite(obj), path


def test_results_are_plain_python_without_nan():
    yi, vi, labels = _inputs("orr_default")
    for res in (leave_one_out(yi, vi, labels=labels, measure="PLO"),
                cumulative(yi, vi, list(range(len(yi))), labels=labels, measure="PLO")):
        _assert_plain(res.to_dict())
        _assert_plain(res.to_dict("natural"))
        _assert_plain(res.to_records())
    _assert_plain(influence(yi, vi, labels=labels).to_dict())
    _assert_plain(influence([0.1, 0.5], [0.04, 0.09]).to_dict())
    json.dumps(influence(yi, vi).to_dict(), allow_nan=False)


def test_record_keys_are_stable():
    yi, vi, _ = _inputs("bcg")
    lo = leave_one_out(yi, vi).to_records()[0]
    assert list(lo)[:2] == ["omitted", "omitted_index"]
    assert {"k", "estimate", "se", "stat", "p_value", "ci_lower", "ci_upper", "pi_lower",
            "pi_upper", "tau2", "tau", "i2", "h2", "q", "q_df", "q_p", "status",
            "warnings"} <= set(lo)
    cu = cumulative(yi, vi, list(range(len(yi)))).to_records()[0]
    assert list(cu)[:3] == ["step", "added", "added_index"]
    inf = influence(yi, vi).to_records()[0]
    assert list(inf) == ["study", "index", *INFLUENCE_COLUMNS, "influential", "criteria"]
    assert sensitivity.INFLUENCE_RULE in influence(yi, vi).to_dict()["rule"]


def test_report_largest_differences(capsys):
    # runs last in this module: worst relative difference per quantity, and the count
    with capsys.disabled():
        for key in sorted(_worst):
            print(f"\nsensitivity worst rel. diff {key}: {_worst[key]:.2e}", end="")
        print(f"\nsensitivity golden values compared: {_count['n']}")
