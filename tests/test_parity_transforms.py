"""PFT, PAS and PR proportions against R metafor (tests/golden/transforms_goldens.json).

Each fit records its R call, e.g.
``es <- escalc(measure = "PFT", xi = events, ni = total, data = dat);
rma(yi, vi, data = es, method = "REML", test = "knha", control = ctrl)`` and
``predict(res, transf = transf.ipft.hm, targs = list(ni = dat$total))``.
Regenerate with ``make goldens``. Tolerances: 1e-8 relative for DL (closed form) and the
study-level transforms, 1e-6 for REML (both sides iterate to 1e-12); absolute 1e-10 at
tau² = 0 and for back-transformed values of 0 or 1.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from metapool import pool_proportions
from metapool.effects import proportion_effects

GOLDEN = json.loads(
    (Path(__file__).parent / "golden" / "transforms_goldens.json").read_text())
CASES = GOLDEN["cases"]
RTOL = {"DL": 1e-8, "REML": 1e-6}
CI = {"z": "z", "knha": "hksj"}
PI = {"z": "z", "knha": "t"}


def _params():
    for case in sorted(CASES):
        for name in sorted(CASES[case]["fits"]):
            yield pytest.param(case, name, id=f"{case}-{name}")


def _check(got, want, rtol, label):
    if want is None:
        return
    assert got is not None, label
    assert abs(got - want) <= max(1e-10, rtol * abs(want)), f"{label}: {got} vs {want}"


@pytest.mark.parametrize("case,name", list(_params()))
def test_transformed_proportions_match_metafor(case, name):
    ref = CASES[case]["fits"][name]
    measure, method, test = name.split("_")
    inp = CASES[case]["input"]
    eff = proportion_effects(inp["events"], inp["total"], measure=measure)
    np.testing.assert_allclose(eff.yi, ref["yi"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(eff.vi, ref["vi"], rtol=1e-12)
    res = pool_proportions(inp["events"], inp["total"], measure=measure, method=method,
                           ci=CI[test], pi=PI[test])
    rtol = RTOL[method]
    model, natural = res.to_dict("model"), res.to_dict("natural")
    for key in ("estimate", "se", "ci_lower", "ci_upper", "tau2", "i2", "h2", "q"):
        _check(model[key], ref[key], rtol, f"{key} {case} {name}")
    _check(model["p_value"], ref["pval"], rtol, f"pval {case} {name}")
    for key in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper"):
        if key.startswith("pi") and ref["k"] < 3:
            continue
        _check(natural[key], ref["natural"][key], rtol, f"natural {key} {case} {name}")


def test_transform_grid_is_complete():
    assert set(CASES) == {"dcr_default", "miller_extremes", "orr_default", "pritz1997"}
    for case in CASES.values():
        assert len(case["fits"]) == 12


def test_pft_back_transform_uses_harmonic_mean():
    # metafor tests (Miller 1978 extremes): PFT, EE, transf.ipft.hm -> 0.6886
    res = pool_proportions([0, 4, 9, 16, 20], [10, 10, 15, 20, 20], measure="PFT",
                           method="FE", ci="z", pi="none")
    assert res.n_harmonic == pytest.approx(5 / (1 / 10 + 1 / 10 + 1 / 15 + 1 / 20 + 1 / 20))
    assert res.to_dict("natural")["estimate"] == pytest.approx(0.6886, abs=5e-5)
