"""Per-study effect sizes (metapool.effects)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from metapool.effects import (
    clopper_pearson,
    loghr_from_ci,
    loghr_from_p,
    proportion_effects,
)


def test_logit_only_zero_and_all_event_studies_are_corrected():
    # R: escalc(measure="PLO", xi=c(0, 3, 12), ni=c(10, 10, 12))  (add=1/2, to="only0")
    eff = proportion_effects([0, 3, 12], [10, 10, 12])
    assert eff.cc_added.tolist() == [True, False, True]
    assert_allclose(eff.yi, [np.log(0.5 / 10.5), np.log(3 / 7), np.log(12.5 / 0.5)],
                    rtol=1e-14)
    assert_allclose(eff.vi, [1 / 0.5 + 1 / 10.5, 1 / 3 + 1 / 7, 1 / 12.5 + 1 / 0.5],
                    rtol=1e-14)


@pytest.mark.parametrize(
    "events,total,message",
    [([5], [4], "between 0 and total"), ([-1], [4], "between 0 and total"),
     ([1.5], [4], "whole numbers"), ([1], [0], "at least 1"),
     ([1, 2], [4], "same shape"), ([np.nan], [4], "finite")],
)
def test_bad_counts_are_rejected(events, total, message):
    with pytest.raises(ValueError, match=message):
        proportion_effects(events, total)


def test_clopper_pearson_matches_binomtest():
    x = np.array([0, 1, 32, 43, 45])
    n = np.array([10, 10, 45, 45, 45])
    lo, hi = clopper_pearson(x, n)
    for xi, ni, l, h in zip(x, n, lo, hi):
        ref = stats.binomtest(int(xi), int(ni)).proportion_ci(method="exact")
        assert_allclose([l, h], [ref.low, ref.high], rtol=1e-12, atol=1e-15)
    assert lo[0] == 0.0 and hi[-1] == 1.0


def test_loghr_from_ci_matches_the_worked_value():
    # Kim 2021 OS: HR 0.54 (0.31-0.92): SE = (ln 0.92 - ln 0.31) / 3.92 = 0.2775
    yi, sei = loghr_from_ci(0.54, 0.31, 0.92)
    assert_allclose(yi, np.log(0.54))
    assert_allclose(sei, 0.27750, atol=5e-5)
    # a 90% CI uses z = 1.645
    _, sei90 = loghr_from_ci(0.54, 0.31, 0.92, level=0.90)
    assert_allclose(sei90, (np.log(0.92) - np.log(0.31)) / (2 * stats.norm.ppf(0.95)))


def test_loghr_from_ci_rejects_swapped_bounds():
    with pytest.raises(ValueError, match="lower confidence limit"):
        loghr_from_ci(0.5, 0.9, 0.3)


def test_loghr_from_p_two_sided():
    # Yu 2023 OS: HR 0.316, p = 0.02: SE = |ln 0.316| / 2.326 = 0.4953
    yi, sei = loghr_from_p(0.316, 0.02)
    assert_allclose(sei, abs(np.log(0.316)) / stats.norm.isf(0.01), rtol=1e-14)
    assert_allclose(sei, 0.4953, atol=1e-4)
    with pytest.raises(ValueError, match="exactly 1"):
        loghr_from_p(1.0, 0.5)
