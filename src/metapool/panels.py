"""Secondary analyses of one configured analysis, as sections of its analysis document.

Each function takes the included studies (model-scale ``yi``/``vi``, labels, years) and
the resolved settings, calls the statistical module that owns the method
(:mod:`metapool.sensitivity`, :mod:`metapool.bias`, :mod:`metapool.metareg`,
:mod:`metapool.subgroups`) and returns plain records for the document and the report.
Nothing here computes a statistic itself.

These analyses are defined for inverse-variance models. When the primary model is the
binomial-normal GLMM they use the inverse-variance logit model (REML, HKSJ), and the
section says so (``model`` key).
"""

from __future__ import annotations

import math

import numpy as np

from . import bias, metareg, sensitivity, subgroups

__all__ = [
    "iv_settings",
    "leave_one_out_section",
    "cumulative_section",
    "influence_section",
    "bias_section",
    "metareg_section",
    "subgroup_tests",
    "conclusion",
]

#: The inverse-variance model used for secondary analyses under a GLMM primary model.
GLMM_SECONDARY = {"method": "REML", "ci": "hksj", "pi": "t", "measure": "PLO"}


def iv_settings(settings):
    """Settings of the inverse-variance model behind the secondary analyses."""
    out = dict(settings)
    if settings["method"] == "GLMM":
        out.update(GLMM_SECONDARY)
    if settings["measure"] in ("PFT", "PAS", "PR"):
        # secondary panels are reported on the logit scale, whose back-transform needs
        # no sample size (the double arcsine's would differ per subset)
        out["measure"] = "PLO"
    return out


def describe_model(iv):
    ci = {"z": "Wald", "t": "Wald with t quantiles", "hksj": "HKSJ",
          "hksj_adhoc": "HKSJ (ad hoc)"}[iv["ci"]]
    scale = {"PLO": "logit", "logHR": "log HR"}.get(iv["measure"], iv["measure"])
    return f"inverse-variance {scale} model, {iv['method']} tau², {ci} CI"


def _natural(records):
    return [dict(r) for r in records]


def leave_one_out_section(yi, vi, labels, iv):
    """Leave-one-out rows (metafor ``leave1out``), or None when k < 3."""
    if len(yi) < 3:
        return None
    res = sensitivity.leave_one_out(yi, vi, method=iv["method"], ci=iv["ci"],
                                    pi=iv["pi"], level=iv["level"], labels=labels,
                                    measure=iv["measure"])
    rows = res.to_records("natural")
    model_rows = res.to_records("model")
    for r, m in zip(rows, model_rows):
        r["estimate_model"] = m["estimate"]
    return {"model": describe_model(iv), "rows": rows}


def cumulative_section(yi, vi, labels, years, iv):
    """Cumulative meta-analysis by publication year (ties by label), or None for k < 2."""
    if len(yi) < 2:
        return None
    order = sensitivity.cumulative_order(years, labels)
    res = sensitivity.cumulative(yi, vi, order, method=iv["method"], ci=iv["ci"],
                                 pi=iv["pi"], level=iv["level"], labels=labels,
                                 measure=iv["measure"])
    return {"model": describe_model(iv), "order": "publication year",
            "rows": res.to_records("natural")}


def influence_section(yi, vi, labels, iv):
    """Influence diagnostics (metafor ``influence.rma.uni``), or None when k < 3."""
    if len(yi) < 3:
        return None
    res = sensitivity.influence(yi, vi, method=iv["method"], ci=iv["ci"],
                                level=iv["level"], labels=labels)
    out = res.to_dict()
    out["model"] = describe_model(iv)
    return out


def bias_section(yi, vi, iv, *, min_k, force):
    """Egger, Begg and trim-and-fill; computed only when k >= min_k unless forced."""
    k = len(yi)
    common = dict(min_k=min_k, force=force)
    if k < bias.ABSOLUTE_MIN_K:
        return {"computed": False, "k": k, "min_k": min_k, "caveat": bias.CAVEAT,
                "reason": f"k = {k}: too few studies for any test of small-study effects",
                "egger": None, "begg": None, "trimfill": None,
                "model": describe_model(iv)}
    egger = bias.egger_test(yi, vi, method=iv["method"], ci=iv["ci"], level=iv["level"],
                            **common)
    begg = bias.begg_test(yi, vi, **common)
    trim = bias.trim_and_fill(yi, vi, method=iv["method"], ci=iv["ci"], pi=iv["pi"],
                              level=iv["level"], measure=iv["measure"], **common)
    computed = k >= min_k or force
    reason = None if computed else (
        f"k = {k} < {min_k}: not computed (set bias.force in the config to compute "
        "anyway)")
    return {
        "computed": computed, "k": k, "min_k": min_k, "forced": bool(force and k < min_k),
        "caveat": bias.CAVEAT, "reason": reason, "model": describe_model(iv),
        "egger": egger.to_dict(), "begg": begg.to_dict(),
        "trimfill": trim.to_dict("natural"),
    }


def _is_number(text):
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return math.isfinite(float(text))


def metareg_section(yi, vi, moderator_values, iv):
    """Meta-regression on the configured moderators (numeric or categorical).

    ``moderator_values`` maps a column name to the studies' values (text). A column
    whose every value is a number is numeric; otherwise it is categorical with the
    first level in sorted order as reference.
    """
    mods, categorical = {}, set()
    for name, values in moderator_values.items():
        if all(_is_number(v) for v in values):
            mods[name] = np.array([float(v) for v in values])
        else:
            mods[name] = np.array([str(v) if str(v) else "not reported" for v in values],
                                  dtype=object)
            categorical.add(name)
    X, names = metareg.design_matrix(mods, categorical)
    k, p = X.shape
    base = {"model": describe_model(iv), "moderators": list(moderator_values),
            "categorical": sorted(categorical), "k": k, "p": p}
    if k <= p:
        return dict(base, computed=False,
                    reason=f"k = {k} studies cannot estimate {p} coefficients")
    res = metareg.meta_regression(yi, vi, X, method=iv["method"], ci=iv["ci"],
                                  level=iv["level"], names=names)
    out = res.to_dict()
    out.update(base, computed=True)
    return out


def subgroup_tests(yi, vi, groups, iv, *, glmm_fits=None):
    """Both tests for subgroup differences (metafor/meta definitions).

    Separate tau² per subgroup: Q-between of the subgroup estimates with their Wald
    SEs (R meta, ``tau.common = FALSE``); a single-study subgroup enters with its own
    estimate and SE. Common tau²: the omnibus test of the meta-regression on the
    subgroup factor (metafor ``rma(yi, vi, mods = ~ factor(group))``), always an
    inverse-variance model. With a GLMM primary model, ``glmm_fits`` maps each level to
    its GLMM ``(estimate, se)`` (None for a single study) and the separate-tau² test
    uses them.
    """
    sub = subgroups.subgroup_analysis(yi, vi, list(groups), method=iv["method"],
                                      ci=iv["ci"], pi=iv["pi"], level=iv["level"],
                                      measure=iv["measure"])
    tests = {t["test"]: dict(t, model=describe_model(iv))
             for t in sub.to_dict("model")["tests"]}
    sizes = {level: sum(1 for g in groups if g == level) for level in set(groups)}
    usable = glmm_fits is not None and all(
        fit is not None or sizes[level] == 1 for level, fit in glmm_fits.items())
    if glmm_fits is not None and not usable:
        # a subgroup's GLMM could not be fitted (e.g. no events): the inverse-variance
        # test stands, and says so
        tests["separate_tau2"]["model"] += " (a subgroup's GLMM could not be fitted)"
    if usable and tests["separate_tau2"].get("statistic") is not None:
        ests, ses = [], []
        for level in sorted(glmm_fits):
            fit = glmm_fits[level]
            if fit is None:
                (i,) = [j for j, g in enumerate(groups) if g == level]
                fit = (float(yi[i]), math.sqrt(float(vi[i])))
            ests.append(fit[0])
            ses.append(fit[1])
        q, df, p = subgroups.q_between(ests, ses)
        tests["separate_tau2"].update(statistic=q, df=df, p_value=p,
                                      model="GLMM per subgroup")
    return [tests["separate_tau2"], tests["common_tau2"]]


def conclusion(row, table, null_value=None):
    """What a result says, for flagging changes across the sensitivity panel.

    Hazard ratios: "favours experimental" when the CI lies below 1, "favours control"
    when above, "inconclusive" otherwise. Proportions: relative to ``null_value`` when
    the config gives one ("above"/"below"/"includes <value>"), else None (the panel
    then flags a variant whose estimate lies outside the primary CI).
    """
    lo, hi = row.get("ci_lower"), row.get("ci_upper")
    if lo is None or hi is None:
        return "not pooled"
    if table == "survival":
        if hi < 1:
            return "favours experimental"
        if lo > 1:
            return "favours control"
        return "inconclusive"
    if null_value is None:
        return None
    if lo > null_value:
        return f"above {null_value:g}"
    if hi < null_value:
        return f"below {null_value:g}"
    return f"includes {null_value:g}"
