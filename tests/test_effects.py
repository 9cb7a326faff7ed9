"""Per-study effect sizes (metapool.effects)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from metapool.effects import (
    clopper_pearson,
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
