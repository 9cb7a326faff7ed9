"""Risk of bias: the three assessment tools, their vocabularies and the "high risk" rule.

``risk_of_bias.csv`` (optional, validated by :mod:`metapool.io` against
``schemas/risk_of_bias.schema.json``) holds one row per study x tool x domain, including
one ``Overall`` row per study and tool. This module holds what the rest of the package
needs to know about those rows; it imports nothing else from metapool.

Tools (:data:`TOOLS`):

* ``RoB 2`` (randomised trials; Sterne et al. 2019): domains D1-D5 and Overall, judged
  ``low``, ``some concerns`` or ``high``.
* ``ROBINS-I`` (non-randomised comparative studies of interventions; Sterne et al. 2016):
  domains D1-D7 and Overall, judged ``low``, ``moderate``, ``serious``, ``critical`` or
  ``no information``.
* ``Newcastle-Ottawa`` (cohorts and case series; Wells et al.): domains ``selection``
  (0-4 stars), ``comparability`` (0-2) and ``outcome`` (0-3), with the stars mapped to
  ``good``, ``fair`` or ``poor`` by the AHRQ thresholds (:func:`nos_domain_rating`,
  :func:`nos_overall`). The Overall row carries the sum of the domain stars.

A study is at *high risk of bias* (:func:`is_high`) when its Overall judgement is RoB 2
``high``, ROBINS-I ``serious`` or ``critical``, or Newcastle-Ottawa ``poor``
(:data:`HIGH_RULE`); the sensitivity panel has a variant without those studies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DARK_FILLS",
    "HIGH",
    "HIGH_RULE",
    "NOS_MAX_STARS",
    "OVERALL",
    "STYLE",
    "TOOLS",
    "TOOL_NAMES",
    "analysis_summary",
    "domain_proportions",
    "is_high",
    "methods_sentences",
    "nos_domain_rating",
    "nos_overall",
    "severity",
    "study_label",
]

#: Name of the domain that holds a study's overall judgement (every tool).
OVERALL = "Overall"

#: Per tool: its domains in display order (Overall last), the short column header of
#: each, the judgements from best to worst (``no information`` last, outside the order)
#: and a description for the methods text.
TOOLS: dict[str, dict[str, Any]] = {
    "RoB 2": {
        "domains": (
            "D1 randomisation process",
            "D2 deviations from intended interventions",
            "D3 missing outcome data",
            "D4 measurement of the outcome",
            "D5 selection of the reported result",
            OVERALL,
        ),
        "judgements": ("low", "some concerns", "high"),
        "design": "randomised trials",
        "description": "RoB 2 (version 2 of the Cochrane risk-of-bias tool)",
    },
    "ROBINS-I": {
        "domains": (
            "D1 confounding",
            "D2 selection of participants",
            "D3 classification of interventions",
            "D4 deviations from intended interventions",
            "D5 missing data",
            "D6 measurement of outcomes",
            "D7 selection of the reported result",
            OVERALL,
        ),
        "judgements": ("low", "moderate", "serious", "critical", "no information"),
        "design": "non-randomised comparative studies of interventions",
        "description": "ROBINS-I (risk of bias in non-randomised studies of interventions)",
    },
    "Newcastle-Ottawa": {
        "domains": ("selection", "comparability", "outcome", OVERALL),
        "judgements": ("good", "fair", "poor"),
        "design": "single-arm cohorts and case series",
        "description": (
            "the Newcastle-Ottawa scale (the stars of each domain rated good, fair or poor "
            "with the AHRQ thresholds)"
        ),
    },
}
#: The tools, in display order.
TOOL_NAMES: tuple[str, ...] = tuple(TOOLS)

#: Overall judgements that count as high risk of bias, per tool.
HIGH: dict[str, frozenset[str]] = {
    "RoB 2": frozenset({"high"}),
    "ROBINS-I": frozenset({"serious", "critical"}),
    "Newcastle-Ottawa": frozenset({"poor"}),
}
#: The rule in words (methods text, sensitivity variant, report).
HIGH_RULE = "RoB 2 high; ROBINS-I serious or critical; Newcastle-Ottawa poor"

#: Highest number of stars per Newcastle-Ottawa domain (Overall: their sum).
NOS_MAX_STARS = {"selection": 4, "comparability": 2, "outcome": 3, OVERALL: 9}

#: Fill colour and symbol of each judgement, shared by the figures and the report. The
#: fills are from the colour-blind-safe Okabe-Ito palette (green, yellow, vermillion),
#: with Paul Tol's wine for ROBINS-I "critical" and grey for "no information"; the
#: symbol repeats the judgement for readers who cannot tell the colours apart (and in
#: greyscale print): ``+`` low / good, ``−`` some concerns / moderate / fair, ``×`` high
#: / serious / poor, ``!`` critical, ``?`` no information.
STYLE: dict[str, tuple[str, str]] = {
    "low": ("#009E73", "+"),
    "good": ("#009E73", "+"),
    "some concerns": ("#F0E442", "\u2212"),
    "moderate": ("#F0E442", "\u2212"),
    "fair": ("#F0E442", "\u2212"),
    "high": ("#D55E00", "\u00d7"),
    "serious": ("#D55E00", "\u00d7"),
    "poor": ("#D55E00", "\u00d7"),
    "critical": ("#882255", "!"),
    "no information": ("#BDBDBD", "?"),
}
#: Fills dark enough to take white text.
DARK_FILLS = frozenset({"#009E73", "#D55E00", "#882255"})


def severity(tool: str, judgement: str) -> int | None:
    """Rank of a judgement within its tool (0 = best); None for ``no information``."""
    order = [j for j in TOOLS[tool]["judgements"] if j != "no information"]
    return order.index(judgement) if judgement in order else None


def is_high(tool: str, judgement: str) -> bool:
    """Whether an Overall judgement means high risk of bias (:data:`HIGH_RULE`)."""
    return judgement in HIGH.get(tool, frozenset())


def nos_domain_rating(domain: str, stars: int) -> str:
    """AHRQ rating of one Newcastle-Ottawa domain from its stars.

    The AHRQ thresholds rate a study *good* with 3-4 stars in selection, 1-2 in
    comparability and 2-3 in outcome; *fair* with 2 stars in selection and the same in
    the other two; *poor* with 0-1 in selection, 0 in comparability or 0-1 in outcome.
    Per domain that is: selection 3-4 good, 2 fair, 0-1 poor; comparability 1-2 good,
    0 poor; outcome 2-3 good, 0-1 poor. The study's rating is the worst of its domains.
    """
    if domain == "selection":
        return "good" if stars >= 3 else "fair" if stars == 2 else "poor"
    if domain == "comparability":
        return "good" if stars >= 1 else "poor"
    if domain == "outcome":
        return "good" if stars >= 2 else "poor"
    raise ValueError(f"not a Newcastle-Ottawa domain: {domain!r}")


def nos_overall(selection: int, comparability: int, outcome: int) -> str:
    """AHRQ rating of a study from its Newcastle-Ottawa stars (the worst domain rating)."""
    ratings = [
        nos_domain_rating("selection", selection),
        nos_domain_rating("comparability", comparability),
        nos_domain_rating("outcome", outcome),
    ]
    return max(ratings, key=lambda r: severity("Newcastle-Ottawa", r))


def study_label(study: Mapping[str, Any]) -> str:
    """``"Author Year"`` as the analyses label a study, else its study_id."""
    author = _text(study.get("author"))
    year = _text(study.get("year"))
    if author:
        return f"{author} {year}".strip()
    return _text(study.get("study_id"))


def _text(value: Any) -> str:
    """A cell as text: "" for None, NaN and pandas' NA; whole floats without ".0"."""
    if value is None or type(value).__name__ == "NAType":
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:g}"
    return str(value)


def _records(rows: Any) -> list[dict[str, Any]]:
    """Rows of a DataFrame or an iterable of mappings as plain dicts."""
    if rows is None:
        return []
    if hasattr(rows, "to_dict"):
        return [dict(r) for r in rows.to_dict(orient="records")]
    return [dict(r) for r in rows]


def overall_by_study(rows: Any) -> dict[str, list[tuple[str, str]]]:
    """``{study_id: [(tool, overall judgement), ...]}`` in tool order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for r in _records(rows):
        if r.get("domain") == OVERALL:
            out.setdefault(str(r["study_id"]), []).append((str(r["tool"]), str(r["judgement"])))
    for items in out.values():
        items.sort(key=lambda item: TOOL_NAMES.index(item[0]) if item[0] in TOOLS else 99)
    return out


def analysis_summary(rows: Any, studies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``risk_of_bias`` section of an analysis document.

    Parameters
    ----------
    rows : DataFrame or iterable of mapping
        The validated risk_of_bias table (all studies).
    studies : sequence of mapping
        The analysis' included study records (``study_id``, ``label``).

    Returns
    -------
    dict
        ``tools`` (the tools of these studies' assessments; only their rows are read, so
        the section changes only with them), ``high_rule``, ``studies`` (per included study:
        ``study_id``, ``label``, ``assessments`` [{tool, overall, high}], ``high``,
        ``assessed``), ``n_assessed``, ``n_high``, ``n_unassessed``.
    """
    ids = {str(s["study_id"]) for s in studies}
    records = [r for r in _records(rows) if str(r.get("study_id")) in ids]
    overall = overall_by_study(records)
    tools = [t for t in TOOL_NAMES if any(r.get("tool") == t for r in records)]
    out = []
    for s in studies:
        sid = str(s["study_id"])
        items = overall.get(sid, [])
        assessments = [{"tool": t, "overall": j, "high": is_high(t, j)} for t, j in items]
        out.append({
            "study_id": sid,
            "label": _text(s.get("label")) or sid,
            "assessments": assessments,
            "assessed": bool(assessments),
            "high": any(a["high"] for a in assessments),
        })
    return {
        "tools": tools,
        "high_rule": HIGH_RULE,
        "studies": out,
        "n_assessed": sum(1 for s in out if s["assessed"]),
        "n_high": sum(1 for s in out if s["high"]),
        "n_unassessed": sum(1 for s in out if not s["assessed"]),
    }


def methods_sentences(tools: Iterable[str]) -> list[str]:
    """Methods text: which tools were used and how "high risk" is defined."""
    used = [t for t in TOOL_NAMES if t in set(tools)]
    if not used:
        return []
    parts = [f"{TOOLS[t]['description']} for {TOOLS[t]['design']}" for t in used]
    if len(parts) > 1:
        joined = ", ".join(parts[:-1]) + " and " + parts[-1]
    else:
        joined = parts[0]
    return [
        f"Risk of bias was assessed per study with {joined}.",
        (
            "A sensitivity analysis excluded studies at high risk of bias (overall judgement "
            f"{HIGH_RULE}); studies without an assessment were kept."
        ),
    ]


def domain_proportions(
    rows: Any,
    weights: Mapping[str, float] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Share of the information per judgement, per tool and domain.

    Parameters
    ----------
    rows : DataFrame or iterable of mapping
        Risk-of-bias rows (``study_id``, ``tool``, ``domain``, ``judgement``).
    weights : mapping, optional
        ``{study_id: weight}`` (e.g. the sample size n_total); every assessed study
        must have a finite weight > 0. Without it every study counts once.

    Returns
    -------
    dict
        ``{tool: {domain: {judgement: proportion}}}`` with the tool's judgements in
        order (zeros included); the proportions of a domain sum to 1.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    totals: dict[tuple[str, str], float] = {}
    for r in _records(rows):
        tool, domain, judgement = str(r["tool"]), str(r["domain"]), str(r["judgement"])
        sid = str(r["study_id"])
        w = 1.0 if weights is None else float(weights[sid])
        if not (math.isfinite(w) and w > 0):
            raise ValueError(f"weight of {sid} must be a finite number > 0, got {w!r}")
        cells = out.setdefault(tool, {}).setdefault(
            domain, dict.fromkeys(TOOLS[tool]["judgements"], 0.0))
        cells[judgement] += w
        totals[tool, domain] = totals.get((tool, domain), 0.0) + w
    for tool, domains in out.items():
        for domain, cells in domains.items():
            for j in cells:
                cells[j] /= totals[tool, domain]
        order = TOOLS[tool]["domains"]
        out[tool] = {d: domains[d] for d in order if d in domains}
    return {t: out[t] for t in TOOL_NAMES if t in out}
