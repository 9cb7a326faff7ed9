"""Property-based tests (hypothesis) of the pooling functions over random valid inputs.

For every method, CI and PI choice:

* the CI contains the estimate, and the PI contains the CI whenever the PI's quantile is
  at least the CI's (every combination except a normal PI with a t-based CI, see
  :func:`test_pi_contains_ci`);
* tau² >= 0, I² in [0, 100], H² >= 1, 0 <= p <= 1, weights add up to 100 %;
* results do not depend on the order of the studies;
* scaling all standard errors by one factor leaves the HKSJ estimate and CI of the
  common-effect weights unchanged, and scaling effects and SEs together scales the
  estimate (and tau by the same factor) for every estimator;
* k = 1, k = 2 and all-equal effects give defined results: no NaN in any reported field.

The same is checked end to end for ``run_analysis`` on degenerate tables (k = 1, k = 2,
identical proportions, no events at all) under every method profile.

Examples are derandomised (the same in every run, so CI is stable) and bounded: the
file runs in well under 30 s.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from metapool import pool_generic, pool_proportions
from metapool.io import load_tables
from metapool.pooling import CI_METHODS, PI_METHODS

METHODS = ("REML", "ML", "DL", "PM", "HE", "SJ", "FE")
MEASURES = ("PLO", "PFT", "PAS", "PR")
MINI = Path(__file__).resolve().parent / "fixtures" / "mini"


def fast(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- strategies
effects = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)
ses = st.floats(0.05, 2.0, allow_nan=False, allow_infinity=False)
levels = st.sampled_from([0.8, 0.9, 0.95, 0.99])
options = st.fixed_dictionaries({
    "method": st.sampled_from(METHODS),
    "ci": st.sampled_from(CI_METHODS),
    "pi": st.sampled_from(PI_METHODS),
    "level": levels,
})


@st.composite
def studies(draw, min_k=1, max_k=10):
    k = draw(st.integers(min_k, max_k))
    y = draw(st.lists(effects, min_size=k, max_size=k))
    s = draw(st.lists(ses, min_size=k, max_size=k))
    return np.array(y), np.array(s)


@st.composite
def counts(draw, min_k=1, max_k=8, max_n=150):
    k = draw(st.integers(min_k, max_k))
    total = draw(st.lists(st.integers(1, max_n), min_size=k, max_size=k))
    events = [draw(st.integers(0, n)) for n in total]
    return np.array(events), np.array(total)


# --------------------------------------------------------------------------- helpers
TOL = 1e-9


def reported(result, scale="model"):
    return result.to_dict(scale)


def non_finite(d):
    """Reported numbers that are NaN or infinite ('stat' is checked on its own)."""
    return {k: v for k, v in d.items()
            if k != "stat" and isinstance(v, float) and not math.isfinite(v)}


def check_invariants(result, scale="model"):
    d = reported(result, scale)
    assert not non_finite(d), non_finite(d)
    if result.k < 2:
        assert d["status"].startswith("not pooled")
        return d
    if d["estimate"] is None:  # a GLMM without a finite maximum says so
        assert d["status"].startswith("not pooled"), d["status"]
        return d
    assert d["status"] == "pooled"
    assert d["ci_lower"] - TOL <= d["estimate"] <= d["ci_upper"] + TOL
    assert d["tau2"] >= 0
    assert 0 <= d["i2"] <= 100
    if d["h2"] is not None:  # (Q - df)/Q-type H² = Q/df may fall below 1
        q_based = d.get("i2_method", "tau²-based") != "tau²-based"
        assert d["h2"] >= (0 if q_based else 1 - TOL)
    if d["p_value"] is not None:
        assert 0 <= d["p_value"] <= 1
    if d["q"] is not None:
        assert d["q"] >= -TOL
    if d["pi_lower"] is not None:
        assert d["pi_lower"] - TOL <= d["estimate"] <= d["pi_upper"] + TOL
    if getattr(result, "weights", None):
        assert sum(result.weights) == pytest.approx(100.0)
    return d


def same(a, b, rel=1e-6, abs_=1e-9):
    """Two reported dicts agree on every number (None where the other is None)."""
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float) or isinstance(y, float):
            if x is None or y is None:
                assert x is y, key
            else:
                assert y == pytest.approx(x, rel=rel, abs=abs_), key
        elif key != "warnings":
            assert x == y, key


# --------------------------------------------------------------------------- pool_generic
@fast(60)
@given(studies(), options)
def test_generic_invariants(data, opts):
    y, s = data
    check_invariants(pool_generic(y, s, **opts))
    check_invariants(pool_generic(y, s, **opts), "natural")


@fast(50)
@given(studies(min_k=3), options)
def test_pi_contains_ci(data, opts):
    """The PI contains the CI, for every pairing of PI and CI methods.

    PI half-width q_PI sqrt(tau² + SE²) >= q_CI SE needs q_PI >= q_CI, which pooling
    guarantees by never using a PI quantile below the CI's.
    """
    assume(opts["pi"] != "none")
    y, s = data
    d = pool_generic(y, s, **opts).to_dict()
    assert d["pi_lower"] <= d["ci_lower"] + TOL
    assert d["ci_upper"] <= d["pi_upper"] + TOL


@fast(40)
@given(studies(min_k=2), options, st.randoms(use_true_random=False))
def test_generic_row_order_does_not_matter(data, opts, rnd):
    y, s = data
    order = list(range(len(y)))
    rnd.shuffle(order)
    a = pool_generic(y, s, **opts)
    b = pool_generic(y[order], s[order], **opts)
    same(a.to_dict(), b.to_dict(), rel=1e-6, abs_=1e-8)
    assert np.allclose(np.array(a.weights)[order], b.weights, rtol=1e-6, atol=1e-8)


@fast(60)
@given(studies(min_k=2), st.floats(0.1, 10.0), levels)
def test_hksj_common_effect_ignores_a_common_se_scale(data, factor, level):
    """HKSJ rescales the variance by the weighted residual spread, so multiplying every
    SE by one factor leaves the estimate, its SE and the CI unchanged (common-effect
    weights; a random-effects tau² is not rescaled with them)."""
    y, s = data
    a = pool_generic(y, s, method="FE", ci="hksj", pi="t", level=level).to_dict()
    b = pool_generic(y, s * factor, method="FE", ci="hksj", pi="t", level=level).to_dict()
    for key in ("estimate", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper",
                "p_value"):
        if a[key] is None:
            assert b[key] is None
        else:
            assert b[key] == pytest.approx(a[key], rel=1e-7, abs=1e-10), key


@fast(60)
@given(studies(min_k=2), st.floats(0.2, 5.0), options)
def test_scaling_effects_and_ses_together(data, factor, opts):
    """Every estimator is scale-equivariant: y -> c y, SE -> c SE gives estimate -> c
    estimate, tau² -> c² tau², and leaves I², Q and p unchanged."""
    assume(opts["ci"] != "hksj_adhoc")  # its floor of 1 on the scale factor is not
    y, s = data                          # scale-free
    a = pool_generic(y, s, **opts).to_dict()
    b = pool_generic(y * factor, s * factor, **opts).to_dict()
    for key in ("estimate", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper"):
        if a[key] is not None:
            assert b[key] == pytest.approx(factor * a[key], rel=1e-5, abs=1e-7), key
    assert b["tau2"] == pytest.approx(factor**2 * a["tau2"], rel=1e-4, abs=1e-7)
    for key in ("i2", "q"):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


# --------------------------------------------------------------------------- proportions
prop_options = st.fixed_dictionaries({
    "measure": st.sampled_from(MEASURES),
    "method": st.sampled_from(METHODS),
    "ci": st.sampled_from(CI_METHODS),
    "pi": st.sampled_from(PI_METHODS),
    "level": levels,
})


@fast(60)
@given(counts(), prop_options)
def test_proportion_invariants(data, opts):
    events, total = data
    res = pool_proportions(events, total, **opts)
    check_invariants(res)
    natural = check_invariants(res, "natural")
    if natural["estimate"] is not None and opts["measure"] != "PR":
        assert -TOL <= natural["ci_lower"] and natural["ci_upper"] <= 1 + TOL


@fast(60)
@given(counts(min_k=2), prop_options, st.randoms(use_true_random=False))
def test_proportion_row_order_does_not_matter(data, opts, rnd):
    events, total = data
    order = list(range(len(events)))
    rnd.shuffle(order)
    a = pool_proportions(events, total, **opts).to_dict("natural")
    b = pool_proportions(events[order], total[order], **opts).to_dict("natural")
    same(a, b, rel=1e-6, abs_=1e-8)


glmm_options = st.fixed_dictionaries({
    "ci": st.sampled_from(("z", "t")),
    "pi": st.sampled_from(("z", "t", "none")),
    "level": levels,
})


@fast(8)
@given(counts(min_k=1, max_k=5, max_n=50), glmm_options, st.randoms(use_true_random=False))
def test_glmm_invariants_and_row_order(data, opts, rnd):
    events, total = data
    res = pool_proportions(events, total, method="GLMM", **opts)
    check_invariants(res)
    check_invariants(res, "natural")
    order = list(range(len(events)))
    rnd.shuffle(order)
    again = pool_proportions(events[order], total[order], method="GLMM", **opts)
    same(res.to_dict(), again.to_dict(), rel=1e-4, abs_=1e-6)
    if res.pooled and res.pi_lower is not None and opts["ci"] == opts["pi"]:
        assert res.pi_lower <= res.ci_lower + TOL and res.ci_upper <= res.pi_upper + TOL


# --------------------------------------------------------------------------- edge cases
EDGE_GENERIC = {
    "k1": ([0.3], [0.2]),
    "k2": ([0.3, -0.5], [0.2, 0.3]),
    "k2_equal": ([0.1, 0.1], [0.1, 0.3]),
    "equal": ([0.3, 0.3, 0.3, 0.3], [0.2, 0.3, 0.1, 0.5]),
    "equal_zero": ([0.0, 0.0, 0.0], [0.2, 0.2, 0.2]),
}


@pytest.mark.parametrize("case", EDGE_GENERIC)
@pytest.mark.parametrize("method", METHODS)
def test_edge_cases_generic_have_no_nan(case, method):
    y, s = EDGE_GENERIC[case]
    for ci in CI_METHODS:
        for pi in PI_METHODS:
            res = pool_generic(y, s, method=method, ci=ci, pi=pi)
            d = check_invariants(res)
            check_invariants(res, "natural")
            if len(y) == 1:
                assert d["estimate"] is None and d["status"] == "not pooled: single study"
            if len(y) == 2:
                assert d["pi_lower"] is None and any("k = 2" in w for w in d["warnings"])
            if len(set(y)) == 1 and len(y) > 1:
                assert d["tau2"] == 0 and d["i2"] == 0 and d["q"] == pytest.approx(0)
                assert d["estimate"] == pytest.approx(y[0])


EDGE_COUNTS = {
    "k1": ([7], [20]),
    "k1_zero": ([0], [20]),
    "k2": ([3, 9], [20, 25]),
    "equal": ([5, 10, 15], [20, 40, 60]),
    "all_zero": ([0, 0, 0], [10, 20, 30]),
    "all_events": ([10, 20, 30], [10, 20, 30]),
    "zero_and_all": ([0, 12], [10, 12]),
}


@pytest.mark.parametrize("case", EDGE_COUNTS)
@pytest.mark.parametrize("method", METHODS + ("GLMM",))
def test_edge_cases_proportions_have_no_nan(case, method):
    events, total = EDGE_COUNTS[case]
    for measure in (("PLO",) if method == "GLMM" else MEASURES):
        for ci in (("z", "t") if method == "GLMM" else CI_METHODS):
            res = pool_proportions(events, total, measure=measure, method=method, ci=ci,
                                   pi="t")
            check_invariants(res)
            check_invariants(res, "natural")


def test_identical_effects_hksj_stat_is_finite_or_none():
    d = pool_generic([0.25, 0.25, 0.25], [0.2, 0.2, 0.2], method="REML", ci="hksj").to_dict()
    assert d["stat"] is None or math.isfinite(d["stat"])


# --------------------------------------------------------------------------- end to end
# Treated ORR arms of the mini fixture: proportions.csv rows 1 (Alpha), 5 (Beta),
# 7 (Gamma) and 11 (Delta); `None` drops the row.
DEGENERATE = {
    "k1": {1: None, 5: None, 7: None},
    "k2": {1: None, 5: None},
    "identical": {1: (10, 40), 5: (10, 40), 7: (10, 40), 11: (10, 40)},
    "no_events": {1: (0, 40), 5: (0, 25), 7: (0, 45), 11: (0, 18)},
}
PROFILES = ("cochrane2025", "revman5", "metafor", "meta")
GLMM_PROFILES = ("cochrane2025", "meta")
KNOWN = {}  # defects found here were fixed (non-finite numbers, GLMM subgroup fallback)


def _degenerate_tables(tmp_path: Path, edits: dict):
    shutil.copytree(MINI / "data", tmp_path / "data")
    path = tmp_path / "data" / "raw" / "proportions.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row, value in edits.items():
        if value is not None:
            rows[row - 1]["events"], rows[row - 1]["total"] = map(str, value)
    rows = [r for i, r in enumerate(rows, start=1) if edits.get(i, ()) is not None]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return load_tables(*(tmp_path / "data" / "raw" / f"{t}.csv"
                         for t in ("studies", "proportions", "survival")))


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("case", DEGENERATE)
def test_degenerate_analyses_write_defined_outputs(case, profile, tmp_path, request):
    """k = 1, k = 2, identical and all-zero proportions through run_analysis and the
    writers: no exception, JSON without NaN/Infinity, no 'nan'/'inf' cell in the CSVs."""
    from metapool.analysis import run_analysis, write_analysis_outputs

    if case in KNOWN and profile in GLMM_PROFILES:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN[case]))
    tables = _degenerate_tables(tmp_path, DEGENERATE[case])
    spec = yaml.safe_load((MINI / "config" / "config.yaml").read_text())["analyses"]
    spec = dict(spec["orr_mini"], profile=profile)
    doc = run_analysis(tables, "orr_mini", spec, {})
    out = {key: tmp_path / f"{key}.out"
           for key in ("pooled", "studies", "excluded", "document", "sensitivity")}
    write_analysis_outputs(doc, **out)
    json.loads(out["document"].read_text(), parse_constant=lambda c: pytest.fail(c))
    for key in ("pooled", "studies", "excluded", "sensitivity"):
        with open(out[key], newline="", encoding="utf-8") as fh:
            cells = [c.lower() for row in csv.reader(fh) for c in row]
        assert not {"nan", "inf", "-inf", "infinity"} & set(cells), key
    overall = doc["models"][0]
    expected_k = {"k1": 1, "k2": 2}.get(case, 4)
    assert overall["k"] == expected_k
    if expected_k == 1:
        assert overall["status"].startswith("not pooled")
