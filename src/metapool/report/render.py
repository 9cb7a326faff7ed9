"""Render analysis documents into one self-contained HTML report.

The report is built from the analysis documents (``results/<analysis>/analysis.json``,
see ``docs/architecture.md``) and the forest plots written by :mod:`metapool.plots`.
Everything the page needs is inside the HTML file: CSS is inline, figures are embedded
as ``data:`` URIs (an SVG shown through ``<img>`` can never run script in the page) and a
Content-Security-Policy forbids scripts and any external load. The only external URLs
are ``https://doi.org/`` links, which are plain anchors.

Every text that comes from the data passes through Jinja2 autoescaping; numbers are
formatted by the filters defined here (shared with :mod:`metapool.plots` so the figure
and the report print the same values). Missing values render as an em dash, never as
``nan`` or ``None``.

Each analysis section shows, in this order: the forest plot, the pooled estimates, the
methods (profile, model, CI/PI/I² definitions, what the config set, logged
substitutions, the methods paragraph), heterogeneity with the Q-profile CIs of τ², I²
and H², the tests for subgroup differences, the sensitivity panel (rows whose conclusion
changed are highlighted, with the flagging rule), leave-one-out, cumulative and
influence tables (collapsible ``<details>`` that print expanded), small-study effects
(the caveat always, the reason when not computed), the meta-regression when configured,
and the included, excluded and ongoing studies. A document without the secondary
sections (an older one) renders without them.

Before the analyses, the page has the report-level sections a manuscript needs
(:mod:`metapool.report.sections`): the summary of findings (one row per outcome with
the GRADE certainty from the config and footnoted reasons), what changed since the
previous recorded run (:mod:`metapool.history`), the statistical methods assembled from
every analysis' settings, the PRISMA flow diagram, every warning of the run, and the
data provenance (input hashes, each study with its DOI and what each analysis did with
it). A survival analysis also shows its hazard-ratio conversion log (PRISMA 2020 item
13b). Figures beside the forest plot (funnel, leave-one-out, cumulative, sensitivity)
are embedded in their sections when given and left out otherwise.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from metapool.formatting import (
    CI_NAMES,
    DASH,
    EN_DASH,
    ESTIMATOR_NAMES,
    I2_NAMES,
    PI_NAMES,
    as_float,
    doi_url,
    fmt_effect,
    fmt_effect_ci,
    fmt_int,
    fmt_interval,
    fmt_level,
    fmt_num,
    fmt_num_ci,
    fmt_p,
    fmt_pct,
    fmt_pct_ci,
    fmt_ratio,
    fmt_stat,
    fmt_tau2,
    fmt_tau2_ci,
    heterogeneity_text,
    is_glmm,
    is_missing,
    is_proportion_measure,
    is_yes,
    method_name,
    p_phrase,
    weight_basis,
)
from metapool.report.sections import (
    analysis_rob,
    changes_section,
    check_grade,
    conversion_log,
    grade_cells,
    outcome_labels,
    provenance_section,
    risk_of_bias_section,
    statistical_methods,
    warnings_section,
)

__all__ = ["EXTRA_FIGURES", "REQUIRED_KEYS", "render_report", "write_report"]

#: Top-level keys every analysis document must have.
REQUIRED_KEYS = (
    "analysis",
    "title",
    "table",
    "outcome",
    "measure",
    "effect_label",
    "scale",
    "methods",
    "models",
    "studies",
    "excluded",
    "ongoing",
    "warnings",
    "software",
)

_TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

#: Figures an analysis section embeds besides its forest plot (``extra_figures``), with
#: the alt text and caption of each (the analysis title is appended).
EXTRA_FIGURES = {
    "funnel": ("Funnel plot", "Funnel plot"),
    "leave_one_out": ("Leave-one-out plot", "Leave-one-out meta-analysis"),
    "cumulative": ("Cumulative forest plot", "Cumulative meta-analysis"),
    "sensitivity": ("Sensitivity plot", "Sensitivity analyses"),
}


def _dash(value: Any) -> Any:
    """Jinja filter: the value itself, or ``"—"`` when missing."""
    return DASH if is_missing(value) else value


def _text(value: Any) -> str:
    """Jinja filter: a list as comma-separated text, booleans as yes/no, missing as ``"—"``."""
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value if not is_missing(v)]
        return ", ".join(items) if items else DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    return DASH if is_missing(value) else str(value)


def _sentence(value: Any) -> str:
    """Jinja filter: text with its first letter in upper case (``"—"`` when missing)."""
    text = _text(value)
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- documents


def _check_doc(doc: Mapping[str, Any]) -> None:
    """Raise ValueError when a document lacks a top-level key or an overall model."""
    missing = [key for key in REQUIRED_KEYS if key not in doc]
    if missing:
        name = doc.get("analysis", "<unnamed>")
        raise ValueError(f"analysis document {name!r} lacks keys: {', '.join(missing)}")
    if not doc["models"]:
        raise ValueError(f"analysis document {doc['analysis']!r} has no pooled rows")


def _figure_uri(figure: Any) -> str | None:
    """Encode a figure (path, SVG/PNG bytes or SVG text) as a ``data:`` URI."""
    if figure is None:
        return None
    if isinstance(figure, (bytes, bytearray)):
        data = bytes(figure)
    elif isinstance(figure, str) and figure.lstrip().startswith("<"):
        data = figure.encode("utf-8")
    elif isinstance(figure, (str, os.PathLike)):
        data = Path(figure).read_bytes()
    else:
        raise TypeError(f"figure must be a path, bytes or SVG text, not {type(figure).__name__}")
    mime = "image/png" if data.startswith(b"\x89PNG") else "image/svg+xml"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _anchor(slug: str, used: set[str]) -> str:
    """HTML id for an analysis section, unique within the page."""
    base = "analysis-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", str(slug)).strip("-") or "x")
    anchor, n = base, 2
    while anchor in used:
        anchor, n = f"{base}-{n}", n + 1
    used.add(anchor)
    return anchor


def _row_warnings(doc: Mapping[str, Any]) -> list[str]:
    """Document warnings followed by the pooled rows' warnings, without duplicates."""
    out: list[str] = []
    for text in doc.get("warnings") or []:
        if not is_missing(text) and str(text) not in out:
            out.append(str(text))
    for row in doc["models"]:
        label = "overall" if row.get("model") == "overall" else f"subgroup {row.get('subgroup')}"
        for part in str(row.get("warnings") or "").split(";"):
            part = part.strip()
            if part:
                text = f"{label}: {part}"
                if text not in out:
                    out.append(text)
    return out


#: Readable names of ``effect_method`` codes; unknown codes are shown as they are.
EFFECT_METHODS = {
    "logit": "logit of events/total",
    "hr_ci": "HR and CI as reported",
    "hr_p": "HR with SE from the p-value",
}


def _how_obtained(study: Mapping[str, Any]) -> list[str]:
    """Short notes on how a study's effect was obtained."""
    notes = []
    method = study.get("effect_method")
    if not is_missing(method):
        name = EFFECT_METHODS.get(str(method).split(" ")[0])
        notes.append(f"{name} ({method})" if name else f"effect: {method}")
    if not is_missing(study.get("study_ci_method")):
        notes.append(f"CI: {study['study_ci_method']}")
    if is_yes(study.get("cc_added")):
        notes.append("continuity correction added")
    derivation = study.get("derivation")
    if is_yes(study.get("derived")):
        notes.append("derived" + ("" if is_missing(derivation) else f": {derivation}"))
    elif not is_missing(derivation):
        notes.append(str(derivation))
    return notes


def _reported_text(study: Mapping[str, Any], measure: str) -> str:
    """Data column of a study: ``events/total`` or the reported ratio with CI/p."""
    if is_proportion_measure(measure):
        if is_missing(study.get("events")) or is_missing(study.get("total")):
            return DASH
        return f"{fmt_int(study['events'])}/{fmt_int(study['total'])}"
    value = study.get("hr")
    if as_float(value) is None:
        return DASH
    text = fmt_ratio(float(value))
    lo, hi = as_float(study.get("hr_lower")), as_float(study.get("hr_upper"))
    if lo is not None and hi is not None:
        level = study.get("ci_level")
        lvl = "" if as_float(level) in (None, 0.95, 95.0) else f"; {fmt_level(level)} CI"
        text += f" ({fmt_ratio(lo)}{EN_DASH}{fmt_ratio(hi)}{lvl})"
    elif not is_missing(study.get("p_value")):
        text += f"; {p_phrase(study.get('p_value'))}"
    return text


def _methods_paragraphs(text: Any) -> list[str]:
    """Split the methods text into paragraphs at blank lines."""
    if is_missing(text):
        return []
    return [p.strip() for p in re.split(r"\n\s*\n", str(text)) if p.strip()]


def _software(
    docs: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None = None
) -> list[tuple[str, str]]:
    """Union of the documents' software versions and ``extra``, sorted by package name."""
    versions: dict[str, list[str]] = {}
    for source in [*(doc.get("software") or {} for doc in docs), extra or {}]:
        for pkg, ver in source.items():
            if is_missing(ver):
                continue
            seen = versions.setdefault(str(pkg), [])
            if str(ver) not in seen:
                seen.append(str(ver))
    return [
        (pkg, " / ".join(vers))
        for pkg, vers in sorted(versions.items(), key=lambda kv: kv[0].lower())
    ]


# --------------------------------------------------------------------------- sections
#
# Each builder below turns one part of the analysis document into plain rows of
# formatted text for the template (which escapes them). A part that is absent (an older
# document) or null (not applicable, e.g. leave-one-out with k < 3) gives None and the
# template leaves the section out or says why.

#: Sections of the analysis document added after the first release; a document
#: without any of them (an older one) is shown without these sections.
SECTION_KEYS = (
    "subgroup_tests",
    "leave_one_out",
    "cumulative",
    "influence",
    "bias",
    "metaregression",
    "sensitivity",
)

#: Short names of the CI methods for the summary table.
_CI_SHORT = {"hksj": "HKSJ", "hksj_adhoc": "HKSJ (ad hoc)", "z": "Wald", "t": "t-based"}
#: What each CI method is, for the methods list.
_CI_DETAILS = {
    "z": "Wald, normal quantiles",
    "t": "Wald standard error with t quantiles (k \u2212 1 df)",
    "hksj": "Hartung-Knapp-Sidik-Jonkman (t, k \u2212 1 df)",
    "hksj_adhoc": "Hartung-Knapp-Sidik-Jonkman, never narrower than Wald (ad hoc)",
}
#: What each prediction-interval method is, for the methods list.
_PI_DETAILS = {
    "t": "t distribution, k \u2212 1 df (not reported when k < 3)",
    "riley": "t distribution, k \u2212 2 df (Riley et al. 2011; not reported when k < 3)",
    "z": "normal distribution (not reported when k < 3)",
    "none": "not reported",
}
#: Names of the influence criteria (``influence.rows[].criteria``).
_CRITERIA = {
    "dffits": "DFFITS",
    "cook_d": "Cook's D",
    "hat": "hat",
    "dfbetas": "DFBETAS",
    "cov_r": "covariance ratio",
}
#: Readable names of the subgroup tests.
_SUBGROUP_TESTS = {
    "separate_tau2": "Separate \u03c4\u00b2 per subgroup (Q between subgroups)",
    "common_tau2": "Common \u03c4\u00b2 (mixed-effects meta-regression on the subgroup)",
}


def _present(value: Any) -> bool:
    """Whether a section value exists (not None, not NaN, not an empty text)."""
    return not is_missing(value)


def _cleaned_reason(reason: Any) -> str:
    """A not-computed reason without its own "not computed" words (the page adds them)."""
    if is_missing(reason):
        return DASH
    text = str(reason).strip()
    text = re.sub(r"^not computed\s*[:;,\u2014-]?\s*", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\s*:\s*not computed\b", "", text, flags=re.IGNORECASE)
    return text or DASH


def _model_short(overall: Mapping[str, Any], methods: Mapping[str, Any]) -> str:
    """``"REML · HKSJ CI"`` / ``"GLMM · t-based CI"`` for the summary table."""
    method = overall.get("method")
    if is_missing(method):
        method = methods.get("estimator")
    ci = overall.get("ci_method")
    if is_missing(ci):
        ci = methods.get("ci")
    parts = [] if is_missing(method) else [str(method)]
    if not is_missing(ci):
        parts.append(f"{_CI_SHORT.get(str(ci), str(ci))} CI")
    return " \u00b7 ".join(parts) if parts else DASH


def _methods_list(doc: Mapping[str, Any], overall: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Term/definition pairs of the methods, for keys the document has."""
    m = doc.get("methods") or {}
    level = fmt_level(m.get("level", overall.get("level")))
    glmm = is_glmm(doc)
    rows: list[tuple[str, str]] = []
    if "profile" in m or "profile_label" in m:
        profile = _text(m.get("profile"))
        if not is_missing(m.get("profile_label")):
            profile += f" \u2014 {m['profile_label']}"
        rows.append(("Method profile", profile))
    estimator = overall.get("method")
    if is_missing(estimator):
        estimator = m.get("estimator")
    if glmm:
        model = "binomial-normal GLMM (random-intercept logistic regression); \u03c4\u00b2 by ML"
    elif str(estimator).upper() == "FE":
        model = "common effect (inverse variance)"
    else:
        name = method_name(ESTIMATOR_NAMES, estimator)
        model = "random effects (inverse variance)" + (f"; \u03c4\u00b2 by {name}" if name else "")
    rows.append(("Model", model))
    ci = overall.get("ci_method")
    if is_missing(ci):
        ci = m.get("ci")
    if not is_missing(ci):
        rows.append(
            (f"Confidence interval ({level})", _CI_DETAILS.get(str(ci), method_name(CI_NAMES, ci)))
        )
    pi = overall.get("pi_method")
    if is_missing(pi):
        pi = m.get("pi")
    if not is_missing(pi):
        rows.append(
            (f"Prediction interval ({level})", _PI_DETAILS.get(str(pi), method_name(PI_NAMES, pi)))
        )
    if "i2" in m:
        rows.append(("I\u00b2", _text(method_name(I2_NAMES, m.get("i2")))))
    if "tau2_ci" in m:
        if not is_missing(m.get("tau2_ci")):
            rows.append(("CI of \u03c4\u00b2, I\u00b2, H\u00b2", str(m["tau2_ci"])))
        else:
            rows.append(
                (
                    "CI of \u03c4\u00b2, I\u00b2, H\u00b2",
                    "not available (no Q-profile CI for the GLMM)" if glmm else "not available",
                )
            )
    transformation = _text(m.get("transformation"))
    if not is_missing(m.get("back_transformation")):
        transformation += f"; back-transformation: {m['back_transformation']}"
    rows.append(("Scale", transformation))
    rows.append(("Continuity correction", _text(m.get("continuity_correction"))))
    if m.get("hr_methods"):
        rows.append(("HR from", _text(m.get("hr_methods"))))
    rows.append(("Subgroups", _text(m.get("subgroup")) if _present(m.get("subgroup")) else "none"))
    if "moderators" in m:
        rows.append(("Moderators", _text(m.get("moderators")) if m.get("moderators") else "none"))
    if _present(m.get("secondary_model")):
        rows.append(("Secondary analyses", str(m["secondary_model"])))
    if _present(m.get("weight_basis")):
        rows.append(("Study weights", str(m["weight_basis"])))
    if "overrides" in m:
        overrides = m.get("overrides") or {}
        rows.append(
            (
                "Set in the config",
                ", ".join(f"{k} = {_text(v)}" for k, v in overrides.items())
                if overrides
                else "nothing (all methods from the profile)",
            )
        )
    return rows


def _heterogeneity(models: Sequence[Mapping[str, Any]], level: Any) -> list[dict[str, str]]:
    """One row of heterogeneity statistics (with their CIs) per pooled model."""
    rows = []
    for m in models:
        rows.append(
            {
                "label": "Overall" if m.get("model") == "overall" else _text(m.get("subgroup")),
                "overall": m.get("model") == "overall",
                "tau2": fmt_tau2_ci(
                    m.get("tau2"), m.get("tau2_lower"), m.get("tau2_upper"), level, False
                ),
                "tau": fmt_tau2(m.get("tau")),
                "i2": fmt_pct_ci(m.get("i2"), m.get("i2_lower"), m.get("i2_upper"), level, False),
                "h2": fmt_num_ci(
                    m.get("h2"), m.get("h2_lower"), m.get("h2_upper"), level, labelled=False
                ),
                "q": (
                    f"{fmt_num(m.get('q'))} ({fmt_int(m.get('q_df'))})"
                    if as_float(m.get("q")) is not None and as_float(m.get("q_df")) is not None
                    else fmt_num(m.get("q"))
                ),
                "q_p": fmt_p(m.get("q_p")),
                "i2_method": _text(m.get("i2_method")),
            }
        )
    return rows


def _subgroup_tests(doc: Mapping[str, Any]) -> list[dict[str, str]] | None:
    """Both tests for subgroup differences, labelled, or None when not applicable."""
    tests = doc.get("subgroup_tests")
    if not tests:
        return None
    out = []
    for t in tests:
        code = str(t.get("test") or "")
        computed = as_float(t.get("statistic")) is not None
        symbol = "Q" if code == "separate_tau2" else "QM"
        out.append(
            {
                "name": _SUBGROUP_TESTS.get(code, code or DASH),
                "label": _text(t.get("label")),
                "statistic": fmt_stat(
                    symbol, t.get("statistic"), t.get("df"), t.get("df2"), t.get("distribution")
                ),
                "p_value": fmt_p(t.get("p_value")),
                "tau2": fmt_tau2(t.get("tau2")) if as_float(t.get("tau2")) is not None else "",
                "model": _text(t.get("model")),
                "computed": computed,
                "reason": "" if computed else _cleaned_reason(t.get("reason")),
            }
        )
    return out


_THRESHOLD_RE = re.compile(r"^(?:above|below|includes)\s+([0-9.]+)$")


def _sensitivity(doc: Mapping[str, Any], measure: str, level: str) -> dict[str, Any] | None:
    """The sensitivity panel with its flagging rule, or None when there is none."""
    rows_in = doc.get("sensitivity")
    if not rows_in:
        return None
    primary = next((r for r in rows_in if r.get("variant") == "primary"), rows_in[0])
    proportion = is_proportion_measure(measure)
    conclusions = [r.get("conclusion") for r in rows_in if not is_missing(r.get("conclusion"))]
    thresholds = {
        match.group(1)
        for c in conclusions
        if (match := _THRESHOLD_RE.match(str(c).strip())) is not None
    }
    show_conclusion = bool(conclusions)
    if not proportion:
        rule = (
            "Conclusion from where the CI lies relative to 1: entirely below 1 = favours "
            "experimental, entirely above 1 = favours control, otherwise inconclusive. A "
            "variant is flagged when its conclusion differs from the primary analysis."
        )
    elif thresholds:
        values = ", ".join(fmt_effect(as_float(v), measure) for v in sorted(thresholds))
        rule = (
            f"Conclusion relative to the configured threshold ({values}): the CI entirely "
            "above it, entirely below it, or including it. A variant is flagged when its "
            "conclusion differs from the primary analysis."
        )
    else:
        rule = (
            "No threshold is configured (null_value), so a variant is flagged when its "
            f"estimate lies outside the primary analysis's {level} CI ("
            f"{fmt_interval(primary.get('ci_lower'), primary.get('ci_upper'), measure)})."
        )
    rows = []
    for r in rows_in:
        changed = r.get("changed")
        rows.append(
            {
                "variant": _text(r.get("variant")),
                "description": _text(r.get("description")),
                "primary": r is primary,
                "k": fmt_int(r.get("k")),
                "estimate": fmt_effect_ci(
                    r.get("estimate"), r.get("ci_lower"), r.get("ci_upper"), measure
                ),
                "pi": fmt_interval(r.get("pi_lower"), r.get("pi_upper"), measure),
                "tau2": fmt_tau2(r.get("tau2")),
                "i2": fmt_pct(r.get("i2")),
                "status": _text(r.get("status")),
                # a variant left with one study shows that study's own estimate
                "pooled": str(r.get("status") or "").startswith("pooled")
                or as_float(r.get("estimate")) is not None,
                "conclusion": _text(r.get("conclusion")),
                "changed": changed is True,
                "changed_text": (
                    "primary"
                    if r is primary
                    else DASH if changed is None else "yes" if changed else "no"
                ),
            }
        )
    changed_rows = [r for r in rows if r["changed"]]
    return {
        "rows": rows,
        "rule": rule,
        "show_conclusion": show_conclusion,
        "n_changed": len(changed_rows),
        "n_variants": len(rows) - 1,
        "changed_names": [r["description"] for r in changed_rows],
    }


def _loo(doc: Mapping[str, Any], measure: str) -> dict[str, Any] | None:
    """Leave-one-out rows and the range of their estimates, or None."""
    section = doc.get("leave_one_out")
    if not section or not section.get("rows"):
        return None
    rows = []
    for r in section["rows"]:
        rows.append(
            {
                "omitted": _text(r.get("omitted")),
                "k": fmt_int(r.get("k")),
                "estimate": fmt_effect_ci(
                    r.get("estimate"), r.get("ci_lower"), r.get("ci_upper"), measure
                ),
                "pi": fmt_interval(r.get("pi_lower"), r.get("pi_upper"), measure),
                "tau2": fmt_tau2(r.get("tau2")),
                "i2": fmt_pct(r.get("i2")),
                "q": fmt_num(r.get("q")),
                "q_p": fmt_p(r.get("q_p")),
                "status": _text(r.get("status")),
                "notes": [str(w) for w in (r.get("warnings") or []) if not is_missing(w)],
            }
        )
    valued = [r for r in section["rows"] if as_float(r.get("estimate")) is not None]
    span = ""
    if valued:
        low = min(valued, key=lambda r: float(r["estimate"]))
        high = max(valued, key=lambda r: float(r["estimate"]))
        span = (
            f"Omitting one study at a time, the estimate ranged from "
            f"{fmt_effect(low['estimate'], measure)} (without {_text(low.get('omitted'))}) to "
            f"{fmt_effect(high['estimate'], measure)} (without {_text(high.get('omitted'))})."
        )
    return {"rows": rows, "model": _text(section.get("model")), "span": span}


def _cumulative(doc: Mapping[str, Any], measure: str) -> dict[str, Any] | None:
    """Cumulative meta-analysis rows, or None."""
    section = doc.get("cumulative")
    if not section or not section.get("rows"):
        return None
    rows = []
    for r in section["rows"]:
        rows.append(
            {
                "step": fmt_int(r.get("step")),
                "added": _text(r.get("added")),
                "k": fmt_int(r.get("k")),
                "estimate": fmt_effect_ci(
                    r.get("estimate"), r.get("ci_lower"), r.get("ci_upper"), measure
                ),
                "pi": fmt_interval(r.get("pi_lower"), r.get("pi_upper"), measure),
                "tau2": fmt_tau2(r.get("tau2")),
                "i2": fmt_pct(r.get("i2")),
                "status": _text(r.get("status")),
            }
        )
    return {
        "rows": rows,
        "model": _text(section.get("model")),
        "order": _text(section.get("order")),
    }


def _influence(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """Influence diagnostics with the influential studies named, or None."""
    section = doc.get("influence")
    if not section or not section.get("rows"):
        return None
    rows = []
    flagged = []
    for r in section["rows"]:
        criteria = [str(c) for c in (r.get("criteria") or [])]
        influential = bool(r.get("influential"))
        if influential:
            names = ", ".join(_CRITERIA.get(c, c) for c in criteria)
            study = _text(r.get("study"))
            flagged.append(f"{study} ({names})" if names else study)
        rows.append(
            {
                "study": _text(r.get("study")),
                "rstudent": fmt_num(r.get("rstudent")),
                "dffits": fmt_num(r.get("dffits")),
                "cook_d": fmt_num(r.get("cook_d")),
                "cov_r": fmt_num(r.get("cov_r")),
                "tau2_del": fmt_tau2(r.get("tau2_del")),
                "qe_del": fmt_num(r.get("qe_del")),
                "hat": fmt_num(r.get("hat")),
                "weight": fmt_pct(r.get("weight")),
                "dfbetas": fmt_num(r.get("dfbetas")),
                "influential": influential,
                "criteria": set(criteria),
                "criteria_text": ", ".join(_CRITERIA.get(c, c) for c in criteria) or DASH,
            }
        )
    thresholds = section.get("thresholds") or {}
    parts = []
    for key, label, absolute in (
        ("dffits", "DFFITS", True),
        ("cook_d", "Cook's D", False),
        ("hat", "hat", False),
        ("dfbetas", "DFBETAS", True),
    ):
        if as_float(thresholds.get(key)) is not None:
            name = f"|{label}|" if absolute else label
            parts.append(f"{name} > {fmt_num(thresholds[key])}")
    return {
        "rows": rows,
        "model": _text(section.get("model")),
        "rule": _text(section.get("rule")),
        "thresholds": "; ".join(parts),
        "flagged": flagged,
    }


def _bias_caveat() -> str:
    """The standard caveat of tests for small-study effects (for documents without one)."""
    from metapool.bias import CAVEAT  # imported late: only older documents need it

    return str(CAVEAT)


def _bias(doc: Mapping[str, Any], measure: str, scale: str, level: str) -> dict[str, Any]:
    """Egger's and Begg's tests and trim-and-fill, always with the caveat."""
    section = doc.get("bias")
    if not isinstance(section, Mapping):
        return {
            "caveat": _bias_caveat(),
            "computed": False,
            "reason": "not assessed in this analysis document",
            "forced_note": "",
            "tests": [],
            "model": "",
        }
    caveat = section.get("caveat")
    k, min_k = as_float(section.get("k")), as_float(section.get("min_k"))
    computed = bool(section.get("computed"))
    reason = _cleaned_reason(section.get("reason"))
    if not computed and reason == DASH and k is not None and min_k is not None:
        reason = f"k = {fmt_int(k)} < {fmt_int(min_k)}"
    forced_note = ""
    if computed and k is not None and min_k is not None and k < min_k:
        forced_note = (
            f"Computed although k = {fmt_int(k)} < {fmt_int(min_k)} because the config "
            "forces it (bias.force); interpret with particular caution."
        )
    tests = []
    egger = section.get("egger")
    if isinstance(egger, Mapping):
        if egger.get("computed"):
            detail = []
            if as_float(egger.get("slope")) is not None:
                detail.append(
                    f"slope on the standard error {fmt_num(egger.get('slope'))} "
                    f"(SE {fmt_num(egger.get('slope_se'))})"
                )
            if as_float(egger.get("limit_estimate")) is not None:
                limit = fmt_num(egger.get("limit_estimate"))
                lo, hi = egger.get("limit_ci_lower"), egger.get("limit_ci_upper")
                if as_float(lo) is not None and as_float(hi) is not None:
                    limit += f" ({level} CI {fmt_num(lo)} to {fmt_num(hi)})"
                detail.append(f"limit estimate (SE \u2192 0) {limit} on the {scale} scale")
            tests.append(
                {
                    "name": "Egger's regression test",
                    "result": fmt_stat(
                        str(egger.get("stat_dist") or "z"),
                        egger.get("stat"),
                        egger.get("df"),
                        None,
                        egger.get("stat_dist"),
                    ),
                    "p_value": fmt_p(egger.get("p_value")),
                    "detail": "; ".join(detail) if detail else DASH,
                }
            )
        else:
            tests.append(_not_computed_test("Egger's regression test", egger))
    begg = section.get("begg")
    if isinstance(begg, Mapping):
        if begg.get("computed"):
            method = _text(begg.get("p_method"))
            tests.append(
                {
                    "name": "Begg's rank correlation test",
                    "result": f"Kendall's \u03c4 = {fmt_num(begg.get('tau'), 3)}",
                    "p_value": fmt_p(begg.get("p_value")),
                    "detail": f"{method} p-value" if method != DASH else DASH,
                }
            )
        else:
            tests.append(_not_computed_test("Begg's rank correlation test", begg))
    trimfill = section.get("trimfill")
    if isinstance(trimfill, Mapping):
        if trimfill.get("computed"):
            side = _text(trimfill.get("side"))
            result = f"k0 = {fmt_int(trimfill.get('k0'))}"
            if side != DASH:
                result += f" on the {side} side"
            detail = []
            if not is_missing(trimfill.get("estimator")):
                side_how = "estimated" if trimfill.get("side_estimated") else "set"
                detail.append(f"{trimfill['estimator']} estimator; side {side_how}")
            adjusted = trimfill.get("adjusted")
            adjusted_text = DASH
            if isinstance(adjusted, Mapping):
                adjusted_text = fmt_effect_ci(
                    adjusted.get("estimate"),
                    adjusted.get("ci_lower"),
                    adjusted.get("ci_upper"),
                    measure,
                )
                if adjusted_text != DASH:
                    adjusted_text = f"{adjusted_text}, k = {fmt_int(adjusted.get('k'))}"
            tests.append(
                {
                    "name": "Trim-and-fill",
                    "result": result,
                    "p_value": fmt_p(trimfill.get("p_k0")),
                    "detail": "; ".join(detail) if detail else DASH,
                    "adjusted": adjusted_text,
                }
            )
        else:
            tests.append(_not_computed_test("Trim-and-fill", trimfill))
    return {
        "caveat": _text(caveat) if _present(caveat) else _bias_caveat(),
        "computed": computed,
        "reason": reason,
        "forced_note": forced_note,
        "tests": tests if computed else [],
        "model": _text(section.get("model")) if _present(section.get("model")) else "",
    }


def _not_computed_test(name: str, test: Mapping[str, Any]) -> dict[str, str]:
    """A bias-test row that says why the test was not computed."""
    return {
        "name": name,
        "result": "not computed",
        "p_value": DASH,
        "detail": _cleaned_reason(test.get("reason")),
    }


def _metaregression(doc: Mapping[str, Any], scale: str) -> dict[str, Any] | None:
    """Meta-regression coefficients and tests, or None when none was configured."""
    section = doc.get("metaregression")
    if not isinstance(section, Mapping):
        return None
    moderators = [str(m) for m in section.get("moderators") or []]
    categorical = {str(c) for c in section.get("categorical") or []}
    described = [f"{m} ({'categorical' if m in categorical else 'numeric'})" for m in moderators]
    out: dict[str, Any] = {
        "computed": bool(section.get("computed")),
        "reason": _cleaned_reason(section.get("reason")),
        "moderators": ", ".join(described) if described else DASH,
        "model": _text(section.get("model")),
        "scale": scale,
        "coefficients": [],
    }
    if not out["computed"]:
        return out
    dist = str(section.get("stat_dist") or "z")
    out["stat_name"] = dist if dist in ("t", "z") else "z"
    for c in section.get("coefficients") or []:
        name = str(c.get("name") or "")
        if name == "intrcpt":
            name = "Intercept"
        else:
            for m in sorted(categorical, key=len, reverse=True):
                if name.startswith(m) and len(name) > len(m):
                    name = f"{m}: {name[len(m):]}"
                    break
        out["coefficients"].append(
            {
                "name": name or DASH,
                "estimate": fmt_num(c.get("estimate"), 4),
                "se": fmt_num(c.get("se"), 4),
                "stat": fmt_num(c.get("stat")),
                "p_value": fmt_p(c.get("p_value")),
                "ci": (
                    f"{fmt_num(c.get('ci_lower'), 4)} to {fmt_num(c.get('ci_upper'), 4)}"
                    if as_float(c.get("ci_lower")) is not None
                    and as_float(c.get("ci_upper")) is not None
                    else DASH
                ),
            }
        )
    qm = fmt_stat("QM", section.get("qm"), section.get("qm_df"), section.get("qm_df2"),
                  section.get("qm_dist"))
    out["qm"] = f"{qm}, {p_phrase(section.get('qm_p'))}" if qm != DASH else DASH
    qe = fmt_stat("QE", section.get("qe"), section.get("qe_df"), None, None)
    out["qe"] = f"{qe}, {p_phrase(section.get('qe_p'))}" if qe != DASH else DASH
    out["tau2"] = fmt_tau2(section.get("tau2"))
    out["i2"] = fmt_pct(section.get("i2"))
    out["r2"] = fmt_pct(section.get("r2"))
    out["warnings"] = [str(w) for w in section.get("warnings") or [] if not is_missing(w)]
    return out


def _weights_note(doc: Mapping[str, Any], basis: str, subgrouped: bool) -> tuple[bool, str]:
    """Whether study weights are unavailable, and the footnote of the weight column."""
    stated = (doc.get("methods") or {}).get("weight_basis")
    no_weights = (
        _present(stated) and str(stated).lower().startswith("not available")
    ) or (is_glmm(doc) and basis == "unknown")
    if no_weights:
        return True, (
            "Weights are not available: the binomial-normal GLMM models the event counts "
            "of all studies jointly and gives no inverse-variance study weights (the forest "
            "plot sizes its markers by study size instead)."
        )
    if subgrouped and basis == "subgroup":
        return False, "Weights are random-effects weights within each subgroup."
    if _present(stated):
        return False, f"Weights: {stated}."
    if basis == "overall":
        return False, "Weights are random-effects weights in the overall model."
    return False, ""


def _extra_figures(doc: Mapping[str, Any], figures: Mapping[str, Any] | None) -> dict:
    """``{kind: {"uri", "alt", "caption"} or None}`` for every kind of
    :data:`EXTRA_FIGURES` (None: not given)."""
    out: dict[str, Any] = dict.fromkeys(EXTRA_FIGURES)
    for kind, figure in (figures or {}).items():
        if kind not in EXTRA_FIGURES:
            raise ValueError(
                f"unknown figure kind {kind!r} for {doc['analysis']!r} "
                f"(one of {', '.join(EXTRA_FIGURES)})"
            )
        uri = _figure_uri(figure)
        if uri is None:
            continue
        alt, caption = EXTRA_FIGURES[kind]
        out[kind] = {"uri": uri, "alt": f"{alt}: {doc['title']}",
                     "caption": f"{caption}: {doc['title']}."}
    return out


def _context(
    doc: Mapping[str, Any], figure: Any, anchor: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the template needs for one analysis section."""
    measure = str(doc["measure"])
    models = list(doc["models"])
    overall = next((m for m in models if m.get("model") == "overall"), models[0])
    subgroups = [m for m in models if m is not overall]
    has_subgroups = bool(subgroups) or any(
        not is_missing(s.get("subgroup")) for s in doc["studies"]
    )
    studies = []
    for s in doc["studies"]:
        studies.append(
            {
                "row": s,
                "doi_url": doi_url(s.get("doi")),
                "reported": _reported_text(s, measure),
                "how": _how_obtained(s),
            }
        )
    methods = doc["methods"] or {}
    level_value = methods.get("level", overall.get("level"))
    level = fmt_level(level_value)
    pooled = overall.get("status") == "pooled" and as_float(overall.get("estimate")) is not None
    single_effect = None
    if not pooled and len(doc["studies"]) == 1:
        s = doc["studies"][0]
        single_effect = fmt_effect_ci(
            s.get("effect"), s.get("ci_lower"), s.get("ci_upper"), measure
        )
    scale = _text((doc.get("scale") or {}).get("model"))
    basis = weight_basis(doc["studies"], bool(subgroups))
    no_weights, weights_note = _weights_note(doc, basis, bool(subgroups))
    sensitivity = _sensitivity(doc, measure, level)
    glmm = is_glmm(doc)
    with_ci = any(
        as_float(m.get(key)) is not None for m in models for key in ("tau2_lower", "i2_lower")
    )
    return {
        "doc": doc,
        "anchor": anchor,
        "measure": measure,
        "proportion": is_proportion_measure(measure),
        "level": level,
        "overall": overall,
        "models": [overall, *subgroups],
        "has_subgroups": has_subgroups,
        "studies": studies,
        "figure_uri": _figure_uri(figure),
        "warnings": _row_warnings(doc),
        "methods_paragraphs": _methods_paragraphs(methods.get("text")),
        "methods_list": _methods_list(doc, overall),
        "methods_notes": [str(n) for n in methods.get("notes") or [] if not is_missing(n)],
        "pooled": pooled,
        "single_effect": single_effect,
        "weight_basis": basis,
        "no_weights": no_weights,
        "weights_note": weights_note,
        "model_short": _model_short(overall, methods),
        "i2_ci": fmt_pct_ci(
            overall.get("i2"), overall.get("i2_lower"), overall.get("i2_upper"), level_value
        ),
        "i2_ci_short": fmt_pct_ci(
            overall.get("i2"),
            overall.get("i2_lower"),
            overall.get("i2_upper"),
            level_value,
            labelled=False,
        ),
        "tau2_ci": fmt_tau2_ci(
            overall.get("tau2"), overall.get("tau2_lower"), overall.get("tau2_upper"), level_value
        ),
        "h2_ci": fmt_num_ci(
            overall.get("h2"), overall.get("h2_lower"), overall.get("h2_upper"), level_value
        ),
        "heterogeneity": _heterogeneity([overall, *subgroups], level_value),
        "het_ci_missing": not with_ci and (glmm or "tau2_ci" in methods),
        "glmm": glmm,
        "scale_name": scale,
        "i2_definition": method_name(I2_NAMES, methods.get("i2")) or "",
        "has_sections": any(key in doc for key in SECTION_KEYS),
        "subgroup_tests": _subgroup_tests(doc),
        "subgroup_tests_missing": (
            "subgroup_tests" in doc
            and not doc.get("subgroup_tests")
            and _present(methods.get("subgroup"))
        ),
        "sensitivity": sensitivity,
        "loo": _loo(doc, measure),
        "cumulative": _cumulative(doc, measure),
        "influence": _influence(doc),
        "bias": _bias(doc, measure, scale, level),
        "metaregression": _metaregression(doc, scale),
        "secondary_model": _text(methods.get("secondary_model"))
        if _present(methods.get("secondary_model"))
        else "",
        "extra": _extra_figures(doc, extra),
        "conversions": conversion_log(doc),
        "rob": analysis_rob(doc),
        "tau2_short": fmt_tau2(overall.get("tau2")),
    }


def _environment() -> Environment:
    """Jinja2 environment: autoescaping everywhere, strict undefined, our filters."""
    env = Environment(
        loader=FileSystemLoader(str(_TEMPLATE_DIR)),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml"), default_for_string=True, default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        effect=fmt_effect,
        interval=fmt_interval,
        effect_ci=fmt_effect_ci,
        pvalue=fmt_p,
        tau2=fmt_tau2,
        pct=fmt_pct,
        num=fmt_num,
        count=fmt_int,
        level=fmt_level,
        dash=_dash,
        text=_text,
        sentence=_sentence,
        heterogeneity=heterogeneity_text,
        yes=is_yes,
    )
    env.tests["missing"] = is_missing
    return env


def _rob_context(
    rows: Sequence[Mapping[str, Any]] | None,
    study_records: Sequence[Mapping[str, Any]] | None,
    figures: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """The "Risk of bias" section with its figures as data URIs (None: no table)."""
    section = risk_of_bias_section(rows, study_records)
    if section is None:
        return None
    figures = figures or {}
    unknown = set(figures) - {"traffic_light", "summary"}
    if unknown:
        raise ValueError(f"unknown risk-of-bias figure(s) {sorted(unknown)} "
                         "(traffic_light, summary)")
    section["figures"] = {kind: _figure_uri(figures.get(kind))
                          for kind in ("traffic_light", "summary")}
    return section


def render_report(
    docs: Sequence[Mapping[str, Any]],
    figures: Mapping[str, Any],
    *,
    title: str,
    generated_note: str = "",
    extra_figures: Mapping[str, Mapping[str, Any]] | None = None,
    prisma: Any = None,
    grade: Mapping[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
    software: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str] | None = None,
    study_records: Sequence[Mapping[str, Any]] | None = None,
    table_warnings: Sequence[str] | None = None,
    risk_of_bias: Sequence[Mapping[str, Any]] | None = None,
    rob_figures: Mapping[str, Any] | None = None,
) -> str:
    """Render analysis documents into one self-contained HTML page.

    Parameters
    ----------
    docs : sequence of mapping
        Analysis documents (see ``docs/architecture.md``) in the order of the config.
    figures : mapping
        ``{analysis slug: figure}``; a figure is a path to an SVG (or PNG) file, its
        bytes, or SVG text. Figures are embedded as base64 ``data:`` URIs. An analysis
        without a figure gets a visible note instead.
    title : str
        Page title.
    generated_note : str, optional
        Free text for the footer (e.g. the workflow version). Nothing time-dependent is
        added by this function, so equal inputs give identical output.
    extra_figures : mapping, optional
        ``{analysis slug: {kind: figure}}`` with kinds of :data:`EXTRA_FIGURES`
        (funnel, leave_one_out, cumulative, sensitivity); each is embedded in its
        section. Absent figures are left out.
    prisma : figure, optional
        The PRISMA 2020 flow diagram, shown under "Study selection".
    grade : mapping, optional
        GRADE judgements, config ``report.grade``: ``{analysis: {certainty, reasons}}``
        (:func:`metapool.report.sections.check_grade`). Analyses without one say "not
        assessed".
    changes : mapping, optional
        What changed since the previous recorded run (``results/changes.json``,
        :func:`metapool.history.compare`); without it the section is left out.
    software : mapping, optional
        ``{package: version}`` of the software besides the documents' own (Python,
        Snakemake, the report renderers).
    inputs : mapping, optional
        ``{path: sha256}`` of the input tables, for the provenance section.
    study_records : sequence of mapping, optional
        Rows of ``studies.csv`` for the provenance section (title, journal, DOI, PMID,
        registration); without them the studies come from the documents.
    table_warnings : sequence of str, optional
        Warnings of the input-table checks.
    risk_of_bias : sequence of mapping, optional
        Rows of ``risk_of_bias.csv`` for the "Risk of bias" section (a table of the
        judgements per tool, and each judgement's support); without them the section
        says that no assessment was supplied.
    rob_figures : mapping, optional
        ``{"traffic_light": figure, "summary": figure}``, embedded in that section.

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    ValueError
        When a document lacks a required top-level key or has no pooled rows, a GRADE
        judgement is malformed, or a figure kind is unknown.
    """
    used: set[str] = set()
    sections = []
    extra_figures = extra_figures or {}
    for doc in docs:
        _check_doc(doc)
        slug = str(doc["analysis"])
        sections.append(
            _context(doc, figures.get(slug), _anchor(slug, used), extra_figures.get(slug))
        )
    names = [str(doc["analysis"]) for doc in docs]
    grades = check_grade(grade, names)
    cells, footnotes = grade_cells(names, grades)
    labels = outcome_labels(docs)
    for s in sections:
        s["grade"] = cells[str(s["doc"]["analysis"])]
        s["label"] = labels[str(s["doc"]["analysis"])]
    anchors = {str(s["doc"]["analysis"]): s["anchor"] for s in sections}
    versions = _software(docs, software)
    template = _environment().get_template("report.html")
    return template.render(
        title=title,
        generated_note=generated_note,
        sections=sections,
        software=versions,
        dash=DASH,
        grade_footnotes=footnotes,
        sof_level=(f"{sections[0]['level']} " if len({s["level"] for s in sections}) == 1
                   and sections else ""),
        graded=any(c["assessed"] for c in cells.values()),
        changes=changes_section(
            changes,
            anchors,
            {
                str(s["doc"]["analysis"]): bool(s["extra"]["cumulative"] or s["cumulative"])
                for s in sections
            },
        ),
        statistical_methods=statistical_methods(
            docs, versions, graded=any(c["assessed"] for c in cells.values())
        ),
        prisma_uri=_figure_uri(prisma),
        run_warnings=warnings_section(
            docs,
            {str(s["doc"]["analysis"]): s["warnings"] for s in sections},
            anchors,
            table_warnings,
        ),
        provenance=provenance_section(docs, study_records, inputs),
        rob=_rob_context(risk_of_bias, study_records, rob_figures),
        run_id=(str(changes.get("run_id")) if changes and changes.get("run_id") else ""),
    )


def write_report(
    docs: Sequence[Mapping[str, Any]],
    figures: Mapping[str, Any],
    out_path: str | os.PathLike[str],
    *,
    title: str,
    **options: Any,
) -> Path:
    """Render the report and write it as UTF-8 with ``\\n`` line endings.

    Parameters
    ----------
    docs, figures, title
        As for :func:`render_report`.
    out_path : path-like
        Output HTML file; parent directories are created.
    **options
        The keyword options of :func:`render_report` (``generated_note``,
        ``extra_figures``, ``prisma``, ``grade``, ``changes``, ``software``, ``inputs``,
        ``study_records``, ``table_warnings``).

    Returns
    -------
    pathlib.Path
        The written path.
    """
    html = render_report(docs, figures, title=title, **options)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(html)
    return out
