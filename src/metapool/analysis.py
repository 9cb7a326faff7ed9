"""One configured analysis: select rows, compute per-study effects, pool, document.

``run_analysis`` turns validated tables (:mod:`metapool.io`) and one analysis entry of
the config into the *analysis document* described in ``docs/architecture.md``: the
pooled models, the included studies with their effects and provenance, the excluded
studies with the reason, the ongoing studies, the methods used and every warning.
``write_analysis_outputs`` writes its CSV and JSON views deterministically.
"""

from __future__ import annotations

import functools
import json
import math
import os
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import __version__
from .effects import (
    clopper_pearson,
    proportion_effects,
)
from . import panels, rob, survival
from .glmm import GLMMConvergenceError
from .pooling import MIN_K_PI, pool_generic, pool_proportions
from .profiles import DEFAULT_PROFILE, describe_profile, profile_settings
from .selection import (  # noqa: F401 (check_analyses, input_digest, km_files: API)
    _select,
    _tables_cache,
    _text,
    check_analyses,
    input_digest,
    km_files,
)

__all__ = [
    "DEFAULTS",
    "HR_METHODS",
    "check_analyses",
    "km_files",
    "resolve_settings",
    "run_analysis",
    "write_analysis_outputs",
    "POOLED_COLUMNS",
    "STUDY_COLUMNS",
    "EXCLUDED_COLUMNS",
]

#: Settings every analysis has besides the method choices of its profile.
BASE_SETTINGS = {
    "level": 0.95,
    "continuity_correction": 0.5,
    "hr_methods": list(survival.PRIMARY_METHODS),
    "bias_min_k": 10,
    "bias_force": False,
    "null_value": None,
}
#: Method choices a profile fixes and the config may override.
METHOD_KEYS = ("measure", "method", "ci", "pi", "i2")
#: Backwards-compatible name: the settings used when the config says nothing.
DEFAULTS = dict(BASE_SETTINGS, profile=DEFAULT_PROFILE)

#: How a log HR and its SE may be obtained (the evidence order is fixed).
HR_METHODS = survival.DESCRIPTIONS

_EVIDENCE_COLUMNS = (
    "hr", "hr_lower", "hr_upper", "p_value", "direction", "n_exp", "n_ctrl",
    "events_exp", "events_ctrl", "events_total", "oe", "v", "median_exp", "median_ctrl",
    "km_file",
)

POOLED_COLUMNS = [
    "analysis", "model", "subgroup", "k", "n_participants", "n_events", "status",
    "estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "estimate_model",
    "se_model", "ci_lower_model", "ci_upper_model", "pi_lower_model", "pi_upper_model",
    "p_value", "tau2", "tau2_lower", "tau2_upper", "tau", "i2", "i2_lower", "i2_upper",
    "h2", "h2_lower", "h2_upper", "q", "q_df", "q_p", "measure", "method", "ci_method",
    "pi_method", "i2_method", "level", "warnings",
]
STUDY_COLUMNS = [
    "study_id", "label", "year", "subgroup", "group", "events", "total", "hr",
    "hr_lower", "hr_upper", "ci_level", "p_value", "effect", "ci_lower", "ci_upper",
    "study_ci_method", "yi", "sei", "weight_pct", "cc_added", "effect_method",
    "strength", "derived", "derivation", "source", "doi", "source_row",
]
EXCLUDED_COLUMNS = ["study_id", "label", "reason"]
SENSITIVITY_COLUMNS = [
    "variant", "description", "k", "status", "estimate", "ci_lower", "ci_upper",
    "pi_lower", "pi_upper", "tau2", "i2", "conclusion", "changed",
]

_METHOD_NAMES = {
    "REML": "restricted maximum likelihood (REML)",
    "ML": "maximum likelihood (ML)",
    "DL": "the DerSimonian-Laird moment estimator",
    "PM": "the Paule-Mandel estimator",
    "HE": "the Hedges (unweighted moment) estimator",
    "SJ": "the Sidik-Jonkman estimator",
    "FE": "none (common-effect model, tau² fixed at 0)",
    "GLMM": "maximum likelihood in the binomial-normal model",
}
_MEASURE_NAMES = {
    "PLO": "logit", "PFT": "Freeman-Tukey double arcsine", "PAS": "arcsine square root",
    "PR": "untransformed (raw) proportion",
}


# --------------------------------------------------------------------------- settings
def resolve_settings(spec, defaults=None, table=None):
    """The settings of one analysis: profile < config ``defaults`` < analysis entry.

    Returns a dict with the method choices (``measure, method, ci, pi, i2``), the other
    settings of :data:`BASE_SETTINGS`, ``profile``, ``overrides`` (method keys the config
    set explicitly) and ``notes`` (substitutions the data model forces, e.g. HKSJ is not
    defined for the GLMM and becomes the t-based CI: logged, never silent).
    """
    defaults = defaults or {}
    table = table or spec.get("table", "proportions")
    profile = spec.get("profile") or defaults.get("profile") or DEFAULT_PROFILE
    merged = dict(BASE_SETTINGS)
    merged.update(profile_settings(profile, table))
    overrides = {}
    for source in (defaults, spec):
        bias_cfg = source.get("bias") or {}
        if "min_k" in bias_cfg:
            merged["bias_min_k"] = int(bias_cfg["min_k"])
        if "force" in bias_cfg:
            merged["bias_force"] = bool(bias_cfg["force"])
        for key in METHOD_KEYS + ("level", "continuity_correction", "hr_methods",
                                  "null_value"):
            if key in source and source[key] is not None:
                merged[key] = source[key]
                if key in METHOD_KEYS:
                    overrides[key] = source[key]
    notes = []
    if table == "survival":
        merged["measure"] = "log" if spec.get("effect") == "median" else "logHR"
        overrides.pop("measure", None)
    if merged["method"] == "GLMM":
        if merged["ci"] in ("hksj", "hksj_adhoc"):
            notes.append(f"ci '{merged['ci']}' is not defined for the GLMM; the Wald CI "
                         "with t quantiles (k-1 df, metafor test='t') is used instead")
            merged["ci"] = "t"
        if merged["pi"] == "riley":
            notes.append("pi 'riley' is not available for the GLMM; t with k-1 df is used")
            merged["pi"] = "t"
        if merged["i2"] == "q":
            notes.append("the GLMM reports I² from tau² only")
            merged["i2"] = "tau2"
    merged["level"] = float(merged["level"])
    merged["hr_methods"] = list(merged["hr_methods"])
    merged["profile"] = profile
    merged["effect"] = spec.get("effect", "hr") if table == "survival" else "proportion"
    merged["overrides"] = overrides
    merged["notes"] = notes
    return merged


def _table_path(tables, table):
    return str(tables.paths.get(table, f"{table}.csv"))


# --------------------------------------------------------------------------- selection
def _label(study):
    author = _text(study.get("author", ""))
    year = _text(study.get("year", ""))
    if author:
        return f"{author} {year}".strip()
    return _text(study["study_id"])


def _group_column(table):
    return "arm" if table == "proportions" else "comparison"


def _row_exclusion(group, row):
    """Reason text for a left-out row, naming the arm/comparison it belongs to."""
    reason = row["_reason"]
    if reason.startswith(f"{group} '"):
        return reason
    return f"{group} '{row[group]}': {reason}"


def _studies_table_records(tables):
    """studies.csv as dicts (cached per Tables)."""
    cache = _tables_cache(tables)
    if "studies" not in cache:
        cache["studies"] = tables.studies.to_dict(orient="records")
    return cache["studies"]


def _excluded_and_ongoing(tables, spec, merged, included_ids):
    group = _group_column(spec["table"])
    excluded, ongoing = [], []
    rows_by_study = {}
    for row in merged.to_dict(orient="records"):
        rows_by_study.setdefault(row["study_id"], []).append(row)
    for study in _studies_table_records(tables):
        sid = study["study_id"]
        label = _label(study)
        if study["status"] == "ongoing":
            ongoing.append({
                "study_id": sid, "label": label, "title": _text(study["title"]),
                "registration": _text(study["registration"]),
                "design": _text(study["design"]),
                "n_total": None if pd.isna(study["n_total"]) else int(study["n_total"]),
            })
            continue
        rows = rows_by_study.get(sid, [])
        if sid in included_ids:
            # rows of an included study that were left out (e.g. the control arm)
            for row in rows:
                if pd.notna(row["_reason"]):
                    excluded.append({"study_id": sid, "label": label,
                                     "reason": _row_exclusion(group, row)})
            continue
        if not rows:
            excluded.append({"study_id": sid, "label": label,
                             "reason": f"no {spec['outcome']} data in {spec['table']}.csv"})
            continue
        for row in rows:
            excluded.append({"study_id": sid, "label": label,
                             "reason": _row_exclusion(group, row)})
    return excluded, ongoing


def _study_effects(tables, spec, settings, selected):
    """Per-study effects of the selected rows: (effects, dropped, conversions), where
    ``dropped`` pairs each row without a usable effect with the reason."""
    if spec["table"] == "proportions":
        return (*_proportion_rows(selected, settings), [])
    if spec.get("effect", "hr") == "median":
        return (*_median_rows(selected, settings), [])
    return _survival_rows(selected, settings, getattr(tables, "km_dir", None))


def _left_out(tables, spec, selected, merged, dropped_ids):
    merged = merged.copy()
    for sid, reason in dropped_ids.items():
        merged.loc[(merged["study_id"] == sid) & merged["_reason"].isna(), "_reason"] = reason
    included = set(selected["study_id"]) - set(dropped_ids)
    return _excluded_and_ongoing(tables, spec, merged, included)


def left_out(tables, spec, defaults=None):
    """The studies and rows one analysis leaves out, with reasons, and ongoing studies.

    The same lists as ``run_analysis(..., listing=True)`` gives, without pooling: the
    per-study effects are computed to find the selected rows that have none.

    Parameters
    ----------
    tables : metapool.io.Tables
    spec : dict
        The analysis entry of the config.
    defaults : dict, optional
        The config's ``defaults``.

    Returns
    -------
    excluded, ongoing : list of dict
    """
    settings = resolve_settings(spec, defaults, spec["table"])
    selected, merged = _select(tables, None, spec)
    _, dropped, _ = _study_effects(tables, spec, settings, selected)
    dropped_ids = {row["study_id"]: reason for row, reason in dropped}
    return _left_out(tables, spec, selected, merged, dropped_ids)


# --------------------------------------------------------------------------- effects
def _none(x):
    if x is None or x is pd.NA:
        return None
    if isinstance(x, (float, np.floating)):
        # a non-finite number (e.g. an infinite influence statistic) is not a value a
        # table or JSON can hold: reported as absent
        return float(x) if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


def _int_or_none(x):
    x = _none(x)
    return None if x is None else int(x)


def _proportion_rows(selected, settings):
    """Per-study proportions, exact CIs and model-scale effects.

    ``yi``/``sei`` are on the analysis' transformation; under the GLMM (which uses the
    counts themselves) they are the logits with the continuity correction, as used by
    the inverse-variance secondary analyses.
    """
    events = selected["events"].astype(float).to_numpy()
    total = selected["total"].astype(float).to_numpy()
    measure = "PLO" if settings["method"] == "GLMM" else settings["measure"]
    eff = proportion_effects(events, total, measure=measure,
                             continuity_correction=settings["continuity_correction"])
    lower, upper = clopper_pearson(events, total, settings["level"])
    out = []
    for i, (_, row) in enumerate(selected.iterrows()):
        if settings["method"] == "GLMM":
            method = "binomial counts (GLMM)"
        else:
            method = _MEASURE_NAMES[measure]
            if eff.cc_added[i]:
                method += (f" with continuity correction "
                           f"{settings['continuity_correction']:g}")
        out.append({
            "events": int(events[i]), "total": int(total[i]),
            "effect": float(events[i] / total[i]),
            "ci_lower": float(lower[i]), "ci_upper": float(upper[i]),
            "study_ci_method": "Clopper-Pearson exact",
            "yi": float(eff.yi[i]), "sei": float(math.sqrt(eff.vi[i])),
            "cc_added": bool(eff.cc_added[i]) and settings["method"] != "GLMM",
            "effect_method": method,
        })
    return out, []


def _hr_effect(row, methods, level, km_dir=None):
    """log HR and SE for one survival row by the best allowed method.

    Returns ``(effect, reason, log)``: the effect dict (None when no allowed method
    applies), the exclusion reason, and the conversion-log record (PRISMA 2020 item 13b)
    of :func:`metapool.survival.best_conversion`.
    """
    record = {key: (None if _none(value) in ("",) else _none(value))
              for key, value in row.items() if not str(key).startswith("_")}
    km = None
    km_record = None
    if "km" in methods and record.get("km_file"):
        from .km import km_paths, read_km, reconstruct_hr  # only rows with curves need it

        km_dir = km_dir or "data/raw/km"
        try:
            curves = read_km(*km_paths(km_dir, record["km_file"]))
            rec = reconstruct_hr(curves["experimental"], curves["control"],
                                 total_events={"experimental": record.get("events_exp"),
                                               "control": record.get("events_ctrl")},
                                 level=level)
        except (KeyError, ValueError) as err:  # name the row and its files
            raise ValueError(f"{survival._row_label(record)}: Kaplan-Meier files "
                             f"'{record['km_file']}' in {km_dir}: {err}") from None
        km = rec.to_conversion(level, source=record["km_file"])
        km_record = rec.to_dict()
    outcome = survival.best_conversion(record, methods, level, km=km)
    log = outcome.to_dict()
    if km_record is not None:
        log["km"] = km_record
    conv = outcome.conversion
    if conv is None:
        present = [c for c in _EVIDENCE_COLUMNS if record.get(c) not in (None, "")]
        have = ", ".join(present) if present else "nothing"
        better = "; ".join(f"{m} would give {g} but is not enabled"
                           for m, g in outcome.not_allowed)
        reason = (f"HR not obtainable with the enabled methods ({', '.join(methods)}); "
                  f"the row reports: {have}" + (f" ({better})" if better else ""))
        return None, reason, log
    method = conv.method
    bound_notes = [n for n in conv.notes if "p reported as <" in n]
    warning = None
    if bound_notes:
        method += f" ({bound_notes[0]})"
        warning = bound_notes[0]
    if conv.inverted:
        method += " (inverted to experimental vs control)"
    ci_level = record.get("ci_level") or level
    if conv.method == "hr_ci" and ci_level == level and not conv.inverted:
        shown = (record["hr_lower"], record["hr_upper"], f"reported {100 * level:g}% CI")
    elif conv.method == "hr_ci":
        shown = (conv.ci_lower, conv.ci_upper,
                 f"{100 * level:g}% CI recomputed from the reported "
                 f"{100 * ci_level:g}% CI")
    else:
        shown = (conv.ci_lower, conv.ci_upper,
                 f"{100 * level:g}% CI from {survival.DESCRIPTIONS[conv.method].split(':')[0]}")
    checks = [str(c) for c in outcome.checks if c.check != "ci_asymmetric"]
    return {
        "yi": float(conv.yi), "sei": float(conv.sei), "effect": conv.hr,
        "ci_lower": shown[0], "ci_upper": shown[1], "study_ci_method": shown[2],
        "effect_method": method, "strength": conv.strength,
        "_warning": "; ".join(filter(None, [warning] + checks)) or None,
    }, None, log


def _survival_rows(selected, settings, km_dir=None):
    out, dropped, logs = [], [], []
    for _, row in selected.iterrows():
        eff, reason, log = _hr_effect(row, settings["hr_methods"], settings["level"],
                                      km_dir)
        logs.append(log)
        if eff is None:
            dropped.append((row, reason))
            continue
        p = _none(row["p_value"])
        eff.update({
            "hr": _none(row["hr"]), "hr_lower": _none(row["hr_lower"]),
            "hr_upper": _none(row["hr_upper"]), "ci_level": _none(row["ci_level"]),
            "p_value": None if p in (None, "") else str(p), "cc_added": False,
        })
        out.append(eff)
    return out, dropped, logs


def _median_rows(selected, settings):
    """Single-arm medians with their CIs, as log medians (pooled medians, not an HR)."""
    out, dropped = [], []
    for _, row in selected.iterrows():
        median = _none(row.get("median_exp"))
        lower = _none(row.get("median_exp_lower"))
        upper = _none(row.get("median_exp_upper"))
        ci_level = _none(row.get("median_ci_level")) or 0.95
        if median is None:
            dropped.append((row, "no median reported"))
            continue
        if lower is None or upper is None:
            dropped.append((row, "no CI for the median: its SE is unknown"))
            continue
        est = survival.median_from_ci(median, lower, upper, ci_level)
        z = stats.norm.ppf(0.5 + settings["level"] / 2)
        out.append({
            "effect": median, "yi": est.yi, "sei": est.sei,
            "ci_lower": math.exp(est.yi - z * est.sei),
            "ci_upper": math.exp(est.yi + z * est.sei),
            "study_ci_method": (f"{100 * settings['level']:g}% CI on the log scale from "
                                f"the reported {100 * ci_level:g}% CI of the median"),
            "effect_method": "median with CI (log scale)", "cc_added": False,
            "_warning": "; ".join(est.notes) or None,
        })
    return out, dropped


# --------------------------------------------------------------------------- pooling
def _pool(members, settings, table):
    if table == "survival" and settings.get("effect") == "median":
        res = pool_generic([s["yi"] for s in members], [s["sei"] for s in members],
                           method=settings["method"], ci=settings["ci"],
                           pi=settings["pi"], level=settings["level"], measure="log",
                           i2=settings["i2"])
        return res, []
    return _pool_effects(members, settings, table)


def _pool_effects(members, settings, table):
    """Fit the primary model to the given study rows; returns (result, warnings).

    A GLMM that cannot be fitted (no finite maximum, failed convergence) falls back to
    the inverse-variance logit model with REML and HKSJ: logged, never silent.
    """
    if table == "survival":
        res = pool_generic([s["yi"] for s in members], [s["sei"] for s in members],
                           method=settings["method"], ci=settings["ci"],
                           pi=settings["pi"], level=settings["level"], measure="logHR",
                           i2=settings["i2"])
        return res, []
    events = [s["events"] for s in members]
    total = [s["total"] for s in members]
    common = dict(level=settings["level"], pi=settings["pi"],
                  continuity_correction=settings["continuity_correction"])
    if settings["method"] == "GLMM":
        reason = None
        try:
            res = pool_proportions(events, total, method="GLMM", ci=settings["ci"],
                                   **common)
        except GLMMConvergenceError as err:
            reason = f"the GLMM did not converge ({err})"
        else:
            if res.pooled or len(members) < 2:
                return res, []
            reason = f"the GLMM has no finite maximum ({res.status})"
        fallback = panels.GLMM_SECONDARY
        res = pool_proportions(events, total, measure="PLO", method=fallback["method"],
                               ci=fallback["ci"], **common)
        return res, [f"{reason}; fell back to the {panels.describe_model(dict(fallback, level=settings['level']))}"]
    res = pool_proportions(events, total, measure=settings["measure"],
                           method=settings["method"], ci=settings["ci"],
                           i2=settings["i2"], **common)
    return res, []


def _sum_or_none(values):
    vals = [_none(v) for v in values]
    if not vals or any(v is None for v in vals):
        return None
    return int(sum(vals))


def _pooled_row(name, model, subgroup, res, counts, *, empty_reason=None, extra=()):
    row = dict.fromkeys(POOLED_COLUMNS)
    row.update({"analysis": name, "model": model, "subgroup": subgroup,
                "n_participants": counts[0], "n_events": counts[1]})
    if res is None:
        row.update({"k": 0, "status": f"not pooled: {empty_reason}", "warnings": ""})
        return row
    m = res.to_dict("model")
    n = res.to_dict("natural")
    row.update({key: m.get(key) for key in (
        "k", "status", "p_value", "tau2", "tau2_lower", "tau2_upper", "tau", "i2",
        "i2_lower", "i2_upper", "h2", "h2_lower", "h2_upper", "q", "q_df", "q_p",
        "measure", "method", "ci_method", "pi_method", "i2_method", "level")})
    row.update({key: n[key] for key in ("estimate", "ci_lower", "ci_upper", "pi_lower",
                                        "pi_upper")})
    row.update({"estimate_model": m["estimate"], "se_model": m["se"],
                "ci_lower_model": m["ci_lower"], "ci_upper_model": m["ci_upper"],
                "pi_lower_model": m["pi_lower"], "pi_upper_model": m["pi_upper"],
                "warnings": "; ".join(list(extra) + list(m["warnings"]))})
    if row["i2_method"] is None:
        row["i2_method"] = "tau²-based"
    return row


def _counts(table, rows):
    if table == "proportions":
        return (_sum_or_none(r["total"] for r in rows),
                _sum_or_none(r["events"] for r in rows))
    n = [_sum_or_none([r["n_exp"], r["n_ctrl"]]) for r in rows]
    e = [_sum_or_none([r["events_exp"], r["events_ctrl"]]) for r in rows]
    return _sum_or_none(n), _sum_or_none(e)


# --------------------------------------------------------------------------- sensitivity
def _panel_variants(settings, table, studies):
    """(name, description, settings, members) for the sensitivity panel."""
    variants = []

    def add(name, description, **changes):
        variant = dict(settings, **changes)
        if (variant["method"], variant["ci"], variant["pi"], variant.get("measure"),
                variant["i2"]) == (settings["method"], settings["ci"], settings["pi"],
                                   settings.get("measure"), settings["i2"]):
            return
        if variant["method"] == "GLMM" and variant["ci"] not in ("z", "t"):
            variant["ci"] = "t"
        variants.append((name, description, variant, studies))

    if table == "proportions":
        add("glmm", "binomial-normal GLMM (ML), t-based CI", method="GLMM", ci="t",
            measure="PLO")
        add("plo_reml_hksj", "logit, REML, HKSJ CI", method="REML", ci="hksj",
            measure="PLO")
        add("plo_pm_hksj", "logit, Paule-Mandel, HKSJ CI", method="PM", ci="hksj",
            measure="PLO")
        add("plo_dl_z", "logit, DerSimonian-Laird, Wald CI", method="DL", ci="z",
            measure="PLO")
        add("pft_reml_hksj", "Freeman-Tukey double arcsine, REML, HKSJ CI",
            method="REML", ci="hksj", measure="PFT")
        add("pas_reml_hksj", "arcsine square root, REML, HKSJ CI", method="REML",
            ci="hksj", measure="PAS")
        add("pr_reml_hksj", "raw proportion, REML, HKSJ CI (its CI may cross 0% or 100%)",
            method="REML", ci="hksj", measure="PR")
    else:
        add("reml_hksj", "REML, HKSJ CI", method="REML", ci="hksj")
        add("reml_hksj_adhoc", "REML, HKSJ CI never narrower than Wald (ad hoc)",
            method="REML", ci="hksj_adhoc")
        add("pm_hksj", "Paule-Mandel, HKSJ CI", method="PM", ci="hksj")
        add("dl_z", "DerSimonian-Laird, Wald CI", method="DL", ci="z")
        add("fe", "common-effect model", method="FE", ci="z")
        direct = [s for s in studies if s["effect_method"] == "hr_ci"]
        if 0 < len(direct) < len(studies):
            variants.append(("reported_hr_ci_only",
                             "only HRs reported with a CI (directly reported HRs)",
                             settings, direct))
        for method, text in (("km", "without HRs reconstructed from Kaplan-Meier curves"),
                             ("medians", "without HRs derived from medians")):
            rest = [s for s in studies if not s["effect_method"].startswith(method)]
            if 0 < len(rest) < len(studies):
                variants.append((f"without_{method}", text, settings, rest))
    derived = [s for s in studies if str(s.get("derived", "")).lower() != "yes"]
    if table == "proportions" and 0 < len(derived) < len(studies):
        variants.append(("exclude_derived",
                         "excluding studies whose counts were derived from percentages",
                         settings, derived))
    return variants


def _panel_row(name, description, res, table, settings, primary_row):
    n = res.to_dict("natural") if res is not None else {}
    row = {"variant": name, "description": description, "k": n.get("k", 0),
           "status": n.get("status"), "estimate": n.get("estimate"),
           "ci_lower": n.get("ci_lower"), "ci_upper": n.get("ci_upper"),
           "pi_lower": n.get("pi_lower"), "pi_upper": n.get("pi_upper"),
           "tau2": n.get("tau2"), "i2": n.get("i2")}
    _judge_row(row, table, settings, primary_row)
    return row


def _judge_row(row, table, settings, primary_row):
    """Set a panel row's ``conclusion`` and ``changed`` (vs the primary row)."""
    kind = "median" if settings.get("effect") == "median" else table
    row["conclusion"] = panels.conclusion(row, kind, settings.get("null_value"))
    if primary_row is None or row["estimate"] is None:
        row["changed"] = None
    elif row["conclusion"] is not None:
        row["changed"] = row["conclusion"] != primary_row["conclusion"]
    else:
        # no threshold for proportions: flag an estimate outside the primary CI
        row["changed"] = not (primary_row["ci_lower"] <= row["estimate"]
                              <= primary_row["ci_upper"])


def rob_variant(studies, risk_of_bias):
    """The sensitivity variant without studies at high risk of bias, or why there is none.

    Parameters
    ----------
    studies : list of dict
        The included study records.
    risk_of_bias : dict or None
        The document's ``risk_of_bias`` section (:func:`metapool.rob.analysis_summary`).

    Returns
    -------
    members : list of dict or None
        The studies kept (unassessed studies are kept), or None when the variant does not
        apply: no risk-of-bias table, no study assessed, none at high risk, or every study
        at high risk.
    text : str
        The variant's description, or the reason it does not apply.
    """
    if not risk_of_bias:
        return None, "no risk-of-bias assessment was supplied"
    high = {s["study_id"] for s in risk_of_bias["studies"] if s["high"]}
    members = [s for s in studies if s["study_id"] not in high]
    k, removed = len(studies), len(studies) - len(members)
    unassessed = sum(1 for s in risk_of_bias["studies"] if not s["assessed"])
    if unassessed == k:
        return None, "no included study has a risk-of-bias assessment"
    if removed == 0:
        return None, ("no included study is at high risk of bias, so the variant would "
                      "repeat the primary analysis")
    if not members:
        return None, "every included study is at high risk of bias, so none would remain"
    text = (f"excluding studies at high risk of bias ({rob.HIGH_RULE}): {removed} of {k} "
            "removed")
    text += (f"; {unassessed} stud{'y' if unassessed == 1 else 'ies'} without an "
             "assessment kept" if unassessed else "; every study assessed")
    return members, text


def sensitivity_panel(settings, table, studies, risk_of_bias=None):
    """The primary analysis redone across estimators, transformations and subsets.

    With a ``risk_of_bias`` section (see :func:`rob_variant`) the last variant,
    ``exclude_high_rob``, leaves out the studies at high risk of bias; when a single
    study remains its own estimate and CI are shown (not pooled).
    """
    if len(studies) < 2:
        return []
    primary, _ = _pool(studies, settings, table)
    first = _panel_row("primary", "primary analysis", primary, table, settings, None)
    first["changed"] = False
    rows = [first]
    for name, description, variant, members in _panel_variants(settings, table, studies):
        if len(members) < 2:
            continue
        res, notes = _pool(members, variant, table)
        row = _panel_row(name, description, res, table, variant, first)
        if notes:
            row["description"] += f" ({'; '.join(notes)})"
        rows.append(row)
    members, description = rob_variant(studies, risk_of_bias)
    if members:
        res, notes = _pool(members, settings, table)
        row = _panel_row("exclude_high_rob", description, res, table, settings, first)
        if len(members) == 1:  # one study left: its own estimate, not pooled
            only = members[0]
            row.update(estimate=only["effect"], ci_lower=only["ci_lower"],
                       ci_upper=only["ci_upper"])
            _judge_row(row, table, settings, first)
            left = f"one study left ({only['label']}): its own estimate and CI, not pooled"
            notes = [*notes, left]
        if notes:
            row["description"] += f" ({'; '.join(notes)})"
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- methods
def _pct(x):
    return f"{100 * x:.0f}%"


def methods_text(settings, table, studies, rob_tools=()):
    """A methods paragraph generated from the settings actually used.

    ``rob_tools``: the risk-of-bias tools of the review, named when a risk-of-bias table
    was supplied (empty: risk of bias is not mentioned).
    """
    level = _pct(settings["level"])
    method = settings["method"]
    profile = (f"Methods follow the '{settings['profile']}' profile "
               f"({describe_profile(settings['profile'])})")
    if settings["overrides"]:
        profile += ", with " + ", ".join(f"{k} = {v}" for k, v in
                                        sorted(settings["overrides"].items()))
    profile += "."
    if table == "proportions" and method == "GLMM":
        first = ("Proportions were pooled with a binomial-normal generalised linear mixed "
                 "model (random-intercept logistic regression) fitted by maximum "
                 "likelihood with adaptive Gauss-Hermite quadrature (7 points), which "
                 "needs no continuity correction, and back-transformed with the inverse "
                 f"logit. Per-study {level} confidence intervals are exact "
                 "(Clopper-Pearson). The GLMM has no inverse-variance study weights.")
    elif table == "proportions":
        measure = settings["measure"]
        back = {"PLO": "the inverse logit",
                "PFT": "the inverse double arcsine at the harmonic mean of the sample "
                       "sizes (Miller 1978)",
                "PAS": "sin²", "PR": "none needed"}[measure]
        first = (f"Proportions were pooled on the {_MEASURE_NAMES[measure]} scale with "
                 f"inverse-variance weights and back-transformed with {back}.")
        n_cc = sum(1 for s in studies if s["cc_added"])
        if measure in ("PLO", "PR"):
            first += (f" A continuity correction of {settings['continuity_correction']:g}"
                      " was added to the event and non-event counts of studies with 0 or "
                      f"all events only ({n_cc} of {len(studies)} studies).")
        first += f" Per-study {level} confidence intervals are exact (Clopper-Pearson)."
    elif settings.get("effect") == "median":
        first = ("Single-arm median times to event were pooled as a secondary outcome on "
                 "the log scale with inverse-variance weights, each study's standard error "
                 "recovered from its reported confidence interval of the median as "
                 "(ln U - ln L)/(2 z), and back-transformed to months. These are pooled "
                 "medians, not hazard ratios.")
    else:
        used = sorted({s["effect_method"].split(" ")[0] for s in studies})
        how = "; ".join(f"{m}: {survival.DESCRIPTIONS[m]}" for m in survival.METHODS
                        if m in settings["hr_methods"])
        first = ("Hazard ratios (experimental vs control) were pooled on the log scale "
                 "with inverse-variance weights and back-transformed by exponentiation. "
                 "Per study, the log HR and its standard error were obtained by the first "
                 f"applicable method in this order of evidence: {how} (Tierney et al. "
                 f"2007; Guyot et al. 2012). Methods used here: "
                 f"{', '.join(used) if used else 'none'}. Every conversion, with its inputs, "
                 "is listed in the conversion log.")
    if method == "FE":
        model = "A common-effect model was fitted (tau² = 0)."
    elif method == "GLMM":
        model = "The between-study variance (tau²) was estimated by maximum likelihood."
    else:
        model = (f"A random-effects model was fitted; the between-study variance (tau²) "
                 f"was estimated by {_METHOD_NAMES[method]}, with a Q-profile "
                 f"{level} confidence interval.")
    ci = {
        "hksj": (f"The {level} confidence interval of the pooled estimate used the "
                 "Hartung-Knapp-Sidik-Jonkman method (t distribution with k-1 degrees of "
                 "freedom, no truncation of the variance scale factor)."),
        "hksj_adhoc": (f"The {level} confidence interval of the pooled estimate used the "
                       "Hartung-Knapp-Sidik-Jonkman method with the ad hoc rule that its "
                       "variance scale factor is at least 1."),
        "t": (f"The {level} confidence interval of the pooled estimate used the Wald "
              "standard error with t quantiles (k-1 degrees of freedom)."),
        "z": f"The {level} confidence interval of the pooled estimate is a Wald (normal) interval.",
    }[settings["ci"]]
    if settings["pi"] == "none":
        pi = "No prediction interval was computed."
    else:
        dist = {"t": "a t distribution with k-1 degrees of freedom",
                "riley": "a t distribution with k-2 degrees of freedom (Riley et al. 2011)",
                "z": "the normal distribution"}[settings["pi"]]
        pi = (f"The {level} prediction interval used {dist} and the variance tau² + "
              f"SE² of the pooled estimate; it is not reported when k < {MIN_K_PI}.")
    i2 = ("I² and H² were computed from tau² and the typical within-study variance (as "
          "metafor)" if settings["i2"] == "tau2" and method != "FE"
          else "I² and H² were computed from Cochran's Q as (Q - df)/Q and Q/df")
    het = (f"Heterogeneity is reported as tau², Cochran's Q with its chi-squared p-value; "
           f"{i2}. With a single study the result is reported without pooling, and with "
           "two studies no prediction interval is given.")
    extra = ("Subgroup differences are tested with separate tau² per subgroup "
             "(Q-between) and with a common tau² (meta-regression on the subgroup "
             "factor). Leave-one-out, cumulative (by publication year) and influence "
             "analyses, meta-regression and tests for small-study effects (Egger's "
             "regression test, Begg's rank test, trim-and-fill; only with at least "
             f"{settings['bias_min_k']} studies) use the "
             f"{panels.describe_model(panels.iv_settings(settings))}. A sensitivity "
             "panel repeats the analysis across estimators and transformations.")
    bias = " ".join(rob.methods_sentences(rob_tools))
    notes = " ".join(f"Note: {n}." for n in settings["notes"])
    soft = f"Analyses used metapool {__version__}."
    return " ".join(filter(None, [profile, first, model, ci, pi, het, extra, bias, notes,
                                  soft]))


@functools.lru_cache(maxsize=None)
def _installed_versions():
    out = {"metapool": __version__}
    for pkg in ("numpy", "scipy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[pkg] = "unknown"
    return out


def _software():
    return dict(_installed_versions())


# --------------------------------------------------------------------------- run
def _study_records(kept, effects, table, subgroup_col, warnings):
    group = _group_column(table)
    studies = []
    for (_, row), eff in zip(kept.iterrows(), effects):
        warning = eff.pop("_warning", None)
        if warning:
            warnings.append(f"{_label(row)}: {warning}")
        sub = (_text(row[subgroup_col]) or "not reported") if subgroup_col else ""
        studies.append({
            "study_id": row["study_id"], "label": _label(row),
            "year": _int_or_none(row["year"]), "subgroup": sub,
            "group": _text(row[group]),
            "events": eff.get("events"), "total": eff.get("total"),
            "hr": eff.get("hr"), "hr_lower": eff.get("hr_lower"),
            "hr_upper": eff.get("hr_upper"), "ci_level": eff.get("ci_level"),
            "p_value": eff.get("p_value"),
            "effect": eff["effect"], "ci_lower": eff["ci_lower"],
            "ci_upper": eff["ci_upper"], "study_ci_method": eff["study_ci_method"],
            "yi": eff["yi"], "sei": eff["sei"], "weight_pct": None,
            "cc_added": eff["cc_added"], "effect_method": eff["effect_method"],
            "strength": eff.get("strength"),
            "derived": _text(row.get("derived", "")),
            "derivation": _text(row["derivation"]), "source": _text(row["source"]),
            "doi": _text(row["doi"]), "source_row": int(row["source_row"]),
            "_row": row,
        })
    return studies


def run_analysis(tables, name, spec, defaults=None, *, listing=True):
    """Run one configured analysis and return its analysis document.

    Parameters
    ----------
    tables : metapool.io.Tables
        Validated input tables.
    name : str
        Analysis name (becomes ``results/<name>/``).
    spec : dict
        The analysis entry of the config (``table``, ``outcome``, ``include``,
        ``exclude``, ``subgroup``, ``moderators``, ``title``, ``profile`` and optional
        method overrides).
    defaults : dict, optional
        The config's ``defaults``.
    listing : bool, optional
        Also list the studies and rows the analysis leaves out (``excluded``) and the
        ongoing studies (``ongoing``), which depends on every row of the tables. The
        workflow's pooling jobs pass False, so that their result depends only on the
        rows the analysis selects (:func:`input_digest`), and list them for all
        analyses at once with :func:`left_out`. ``dropped`` (selected rows without a
        usable effect, with the reason) is always there.

    Returns
    -------
    dict
        The analysis document (see ``docs/architecture.md``).
    """
    table = spec["table"]
    settings = resolve_settings(spec, defaults, table)
    selected, merged = _select(tables, name, spec)
    selected = selected.sort_values(["year", "study_id"], na_position="last",
                                    kind="mergesort")
    effect_kind = spec.get("effect", "hr") if table == "survival" else "proportion"
    effects, dropped, conversions = _study_effects(tables, spec, settings, selected)
    dropped_ids = {row["study_id"]: reason for row, reason in dropped}
    kept = selected[~selected["study_id"].isin(dropped_ids)]
    left = _left_out(tables, spec, selected, merged, dropped_ids) if listing else None

    subgroup_col = spec.get("subgroup")
    warnings = [f"{n}" for n in settings["notes"]]
    studies = _study_records(kept, effects, table, subgroup_col, warnings)

    # risk of bias of the included studies (None: no risk-of-bias table was supplied)
    rob_frame = getattr(tables, "risk_of_bias", None)
    rob_section = None
    if rob_frame is not None:
        rob_section = rob.analysis_summary(rob_frame, studies)
        members, text = rob_variant(studies, rob_section)
        if len(studies) < 2:
            members, text = None, "no sensitivity panel (fewer than two studies)"
        rob_section["sensitivity_variant"] = members is not None
        rob_section["sensitivity_note"] = text

    # warnings the validator raised on rows this analysis uses
    used_rows = {s["source_row"] for s in studies}
    path = _table_path(tables, table)
    for issue in getattr(tables, "warnings", []):
        if str(issue.file) == path and issue.row in used_rows:
            warnings.append(str(issue))

    models = []
    sections = {"subgroup_tests": None, "leave_one_out": None, "cumulative": None,
                "influence": None, "bias": None, "metaregression": None,
                "sensitivity": []}
    if studies:
        overall, notes = _pool(studies, settings, table)
        weights = overall.weights if overall.pooled else None
        for s, w in zip(studies, weights or [None] * len(studies)):
            s["weight_pct"] = w
        models.append(_pooled_row(name, "overall", "", overall,
                                  _counts(table, [s["_row"] for s in studies]),
                                  extra=notes))
        yi = np.array([s["yi"] for s in studies])
        vi = np.array([s["sei"] for s in studies]) ** 2
        labels = [s["label"] for s in studies]
        iv = panels.iv_settings(settings)
        if subgroup_col:
            glmm_fits = {} if settings["method"] == "GLMM" else None
            for level in sorted({s["subgroup"] for s in studies}):
                members = [s for s in studies if s["subgroup"] == level]
                res, notes = _pool(members, settings, table)
                models.append(_pooled_row(name, "subgroup", level, res,
                                          _counts(table, [s["_row"] for s in members]),
                                          extra=notes))
                if glmm_fits is not None:
                    glmm_fits[level] = ((res.estimate, res.se) if res.pooled
                                        and res.method == "GLMM" else None)
            if len({s["subgroup"] for s in studies}) >= 2:
                sections["subgroup_tests"] = panels.subgroup_tests(
                    yi, vi, [s["subgroup"] for s in studies], iv, glmm_fits=glmm_fits)
        sections["leave_one_out"] = panels.leave_one_out_section(yi, vi, labels, iv)
        sections["cumulative"] = panels.cumulative_section(
            yi, vi, labels, [s["year"] for s in studies], iv)
        sections["influence"] = panels.influence_section(yi, vi, labels, iv)
        sections["bias"] = panels.bias_section(yi, vi, iv,
                                               min_k=settings["bias_min_k"],
                                               force=settings["bias_force"])
        if spec.get("moderators"):
            sections["metaregression"] = panels.metareg_section(
                yi, vi, {m: [_text(s["_row"][m]) for s in studies]
                         for m in spec["moderators"]}, iv)
        sections["sensitivity"] = sensitivity_panel(settings, table, studies, rob_section)
    else:
        models.append(_pooled_row(name, "overall", "", None, (None, None),
                                  empty_reason="no study with a usable effect"))
    for m in models:
        for w in filter(None, (m["warnings"] or "").split("; ")):
            tag = "overall" if m["model"] == "overall" else f"subgroup {m['subgroup']}"
            warnings.append(f"{tag}: {w}")
    for s in studies:
        del s["_row"]

    if table == "proportions":
        measure = "PLO" if settings["method"] == "GLMM" else settings["measure"]
        scale = {"model": _MEASURE_NAMES[measure], "natural": "proportion"}
        back = {"PLO": "inverse logit", "PFT": "inverse double arcsine (harmonic mean n)",
                "PAS": "sin²", "PR": "none"}[measure]
        effect_label = "Proportion"
        if settings["method"] == "GLMM" or measure in ("PFT", "PAS"):
            cc = "none (not needed)"
        else:
            cc = (f"{settings['continuity_correction']:g} added to both cells of 0-event "
                  "and all-event studies only")
        doc_measure = measure
    elif effect_kind == "median":
        scale = {"model": "log median", "natural": "months"}
        back = "exponential"
        effect_label = "Pooled median (months; not an HR)"
        cc = "not applicable"
        doc_measure = "median"
    else:
        scale = {"model": "log HR", "natural": "HR"}
        back = "exponential"
        effect_label = "Hazard ratio"
        cc = "not applicable"
        doc_measure = "HR"
    weight_basis = {"GLMM": "not available (GLMM: no inverse-variance weights)",
                    "FE": "overall common-effect model"}.get(
                        models[0].get("method"), "overall random-effects model")
    return {
        "analysis": name,
        "title": spec.get("title", name),
        "table": table,
        "outcome": spec["outcome"],
        "measure": doc_measure,
        "effect_label": effect_label,
        "scale": scale,
        "methods": {
            "profile": settings["profile"],
            "profile_label": describe_profile(settings["profile"]),
            "overrides": settings["overrides"],
            "estimator": settings["method"],
            "ci": settings["ci"],
            "pi": settings["pi"],
            "i2": settings["i2"],
            "tau2_ci": "Q-profile" if settings["method"] not in ("FE", "GLMM") else None,
            "level": settings["level"],
            "transformation": scale["model"],
            "back_transformation": back,
            "continuity_correction": cc,
            "hr_methods": settings["hr_methods"] if table == "survival" else [],
            "subgroup": subgroup_col,
            "moderators": list(spec.get("moderators") or []),
            "null_value": settings.get("null_value"),
            "sensitivity_rule": (
                "hazard ratios: the conclusion changes when the CI moves to another side "
                "of 1 (or onto it)" if table == "survival" else
                f"proportions: the conclusion changes when the CI moves to another side "
                f"of {settings['null_value']:g}" if settings.get("null_value") is not None
                else "proportions: a variant is flagged when its estimate lies outside "
                     "the primary CI"),
            "secondary_model": panels.describe_model(panels.iv_settings(settings)),
            "weight_basis": weight_basis,
            "notes": settings["notes"],
            "text": methods_text(settings, table, studies,
                                 rob.TOOL_NAMES if rob_section else ()),
        },
        "models": models,
        "studies": studies,
        "dropped": [{"study_id": sid, "reason": reason}
                    for sid, reason in dropped_ids.items()],
        **({"excluded": left[0], "ongoing": left[1]} if listing else {}),
        "conversions": conversions,
        **sections,
        "risk_of_bias": rob_section,
        "warnings": warnings,
        "software": _software(),
    }


# --------------------------------------------------------------------------- writing
_FORMULA_PREFIXES = ("=", "+", "-", "@")


def neutralise_csv_text(value):
    """Prefix text that a spreadsheet would run as a formula with a quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def _frame(rows, columns):
    df = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c].map(neutralise_csv_text)
    return df


def _atomic_write(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _csv_text(df):
    return df.to_csv(index=False, float_format="%.12g", lineterminator="\n")


def _json_ready(obj):
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    return _none(obj) if isinstance(obj, (float, np.floating, np.integer)) else obj


def write_excluded(path, excluded):
    """Write an analysis' excluded.csv (deterministic, atomic)."""
    _atomic_write(path, _csv_text(_frame(excluded, EXCLUDED_COLUMNS)))


def write_analysis_outputs(doc, *, pooled, studies, document, excluded=None,
                           sensitivity=None):
    """Write the analysis document and its CSV views (deterministic, atomic).

    ``excluded`` needs a document made with ``run_analysis(..., listing=True)``.
    """
    _atomic_write(pooled, _csv_text(_frame(doc["models"], POOLED_COLUMNS)))
    _atomic_write(studies, _csv_text(_frame(doc["studies"], STUDY_COLUMNS)))
    if excluded is not None:
        write_excluded(excluded, doc["excluded"])
    if sensitivity is not None:
        _atomic_write(sensitivity,
                      _csv_text(_frame(doc.get("sensitivity") or [], SENSITIVITY_COLUMNS)))
    text = json.dumps(_json_ready(doc), indent=2, ensure_ascii=False, allow_nan=False)
    _atomic_write(document, text + "\n")
