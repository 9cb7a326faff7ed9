"""Report-level sections: summary of findings with GRADE, statistical methods, what
changed since the previous run, warnings, data provenance, and the per-analysis
hazard-ratio conversion log.

Every builder returns plain rows of formatted text for the template, which escapes
them; nothing here emits markup. Missing values become ``"—"`` (or a sentence saying
why), never ``None`` or ``nan``.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from metapool import rob
from metapool.formatting import (
    DASH,
    RATIO_MEASURES,
    as_float,
    doi_url,
    fmt_effect,
    fmt_effect_ci,
    fmt_int,
    fmt_level,
    fmt_num,
    fmt_ratio,
    is_missing,
    is_proportion_measure,
)

__all__ = [
    "GRADE_DOMAINS",
    "HR_METHOD_NAMES",
    "HR_METHOD_SHORT",
    "GRADE_LEVELS",
    "changes_section",
    "check_grade",
    "conversion_log",
    "grade_cells",
    "analysis_rob",
    "outcome_labels",
    "provenance_section",
    "risk_of_bias_section",
    "rob_badge",
    "statistical_methods",
    "warnings_section",
]


# --------------------------------------------------------------------------- GRADE

#: GRADE certainty levels (config ``report.grade.<analysis>.certainty``) and how many
#: of the four circles are filled.
GRADE_LEVELS = {"high": 4, "moderate": 3, "low": 2, "very low": 1}
#: GRADE domains a judgement may give a reason for (``reasons.<domain>``): the five
#: reasons to rate down, then the three reasons to rate up (observational evidence).
GRADE_DOMAINS = {
    "risk_of_bias": "Risk of bias",
    "inconsistency": "Inconsistency",
    "indirectness": "Indirectness",
    "imprecision": "Imprecision",
    "publication_bias": "Publication bias",
    "large_effect": "Large effect",
    "dose_response": "Dose-response gradient",
    "plausible_confounding": "Plausible residual confounding",
}


def _norm_level(value: Any) -> str:
    return re.sub(r"[\s_-]+", " ", str(value).strip().lower())


def check_grade(
    grade: Mapping[str, Any] | None, analyses: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Validate the GRADE judgements of the config and normalise them.

    Parameters
    ----------
    grade : mapping or None
        ``{analysis: {certainty: high|moderate|low|very low, reasons: {domain: text}}}``
        (config ``report.grade``).
    analyses : sequence of str
        The analyses of the report.

    Returns
    -------
    dict
        ``{analysis: {"certainty": "moderate", "reasons": [(domain, text), ...]}}``,
        reasons in :data:`GRADE_DOMAINS` order.

    Raises
    ------
    ValueError
        Listing every problem: an unknown analysis, certainty or domain, a reason that
        is not text. A typo must not silently turn a judgement into "not assessed".
    """
    if not grade:
        return {}
    if not isinstance(grade, Mapping):
        raise ValueError("report.grade must map analysis names to GRADE judgements")
    problems, out = [], {}
    known = set(analyses)
    for name, entry in grade.items():
        where = f"report.grade.{name}"
        if name not in known:
            problems.append(f"{where}: no analysis of that name in this report")
            continue
        if entry is None:
            continue
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected certainty and reasons")
            continue
        for key in entry:
            if key not in ("certainty", "reasons"):
                problems.append(f"{where}.{key}: unknown key (certainty, reasons)")
        certainty = entry.get("certainty")
        level = None if certainty is None else _norm_level(certainty)
        if level is not None and level not in GRADE_LEVELS:
            problems.append(
                f"{where}.certainty: {certainty!r} is not one of "
                + ", ".join(GRADE_LEVELS)
            )
        reasons = entry.get("reasons") or {}
        if not isinstance(reasons, Mapping):
            problems.append(f"{where}.reasons: expected a mapping of domain: reason")
            reasons = {}
        for domain, text in reasons.items():
            if domain not in GRADE_DOMAINS:
                problems.append(
                    f"{where}.reasons.{domain}: unknown GRADE domain (one of "
                    + ", ".join(GRADE_DOMAINS) + ")"
                )
            elif text is not None and not isinstance(text, str):
                problems.append(f"{where}.reasons.{domain}: expected text")
        out[name] = {
            "certainty": level,
            "reasons": [
                (domain, str(reasons[domain]).strip())
                for domain in GRADE_DOMAINS
                if domain in reasons and not is_missing(reasons[domain])
            ],
        }
    if problems:
        raise ValueError("GRADE judgements in the config: " + "; ".join(problems))
    return out


def _letters(n: int) -> str:
    """Footnote marker number n (0-based): a ... z, aa, ab, ..."""
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(97 + r) + out
    return out


def grade_cells(
    names: Sequence[str], grade: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]]]:
    """The certainty cell of each analysis and the table's footnotes.

    Identical reasons (same domain and text) share one footnote marker.

    Returns
    -------
    cells : dict
        ``{analysis: {"assessed", "label", "symbols", "marks": [letters]}}``.
    footnotes : list of dict
        ``{"mark", "domain", "text"}`` in order of first use.
    """
    cells, footnotes, marks = {}, [], {}
    for name in names:
        entry = grade.get(name)
        if not entry or (entry.get("certainty") is None and not entry.get("reasons")):
            cells[name] = {"assessed": False, "label": "not assessed", "symbols": "",
                           "marks": []}
            continue
        level = entry.get("certainty")
        used = []
        for domain, text in entry.get("reasons") or []:
            key = (domain, text)
            if key not in marks:
                marks[key] = _letters(len(marks))
                footnotes.append({"mark": marks[key], "domain": GRADE_DOMAINS[domain],
                                  "text": text})
            used.append(marks[key])
        filled = GRADE_LEVELS.get(level or "", 0)
        cells[name] = {
            "assessed": level is not None,
            "label": level.capitalize() if level else "not assessed",
            "symbols": "\u2295" * filled + "\u229d" * (4 - filled) if filled else "",
            "marks": used,
        }
    return cells, footnotes


# --------------------------------------------------------------------------- labels


def outcome_labels(docs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Short name of each analysis: its outcome when unique in the report, else title."""
    outcomes = Counter(str(d.get("outcome") or "") for d in docs)
    out = {}
    for d in docs:
        outcome = str(d.get("outcome") or "")
        out[str(d["analysis"])] = (
            outcome if outcome and outcomes[outcome] == 1 else str(d.get("title") or d["analysis"])
        )
    return out


def _join(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------- methods

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\u03c4])")
_ABBREVIATIONS = ("et al.", "e.g.", "i.e.", "vs.", "cf.", "approx.", "Fig.", "ch.")
#: Sentences of the per-analysis methods text the report-level paragraph replaces.
_DROP = (re.compile(r"^Analyses used metapool\b"), re.compile(r"^Methods used here:"))


def _sentences(text: Any) -> list[str]:
    """The sentences of a methods text (paragraph breaks count as sentence ends)."""
    if is_missing(text):
        return []
    out: list[str] = []
    for para in re.split(r"\n\s*\n", str(text)):
        para = " ".join(para.split())
        if not para:
            continue
        pieces = _SENTENCE_END.split(para)
        merged: list[str] = []
        for piece in pieces:
            if merged and merged[-1].endswith(_ABBREVIATIONS):
                merged[-1] += " " + piece
            else:
                merged.append(piece)
        out.extend(p for p in merged if not any(rx.match(p) for rx in _DROP))
    return out


def _merge_orders(sequences: Sequence[Sequence[str]]) -> list[str]:
    """One order of all sentences that keeps each document's order where possible.

    Kahn's topological sort of the "comes right before" relation of every document,
    ties (and cycles) broken by first appearance.
    """
    rank: dict[str, int] = {}
    for seq in sequences:
        for s in seq:
            rank.setdefault(s, len(rank))
    succ: dict[str, set[str]] = {s: set() for s in rank}
    indeg = dict.fromkeys(rank, 0)
    for seq in sequences:
        for a, b in zip(seq, seq[1:]):
            if a != b and b not in succ[a]:
                succ[a].add(b)
                indeg[b] += 1
    heap = [(rank[s], s) for s, d in indeg.items() if d == 0]
    heapq.heapify(heap)
    done: set[str] = set()
    out: list[str] = []
    while len(out) < len(rank):
        if not heap:  # a cycle: take the earliest remaining sentence
            s = min((s for s in rank if s not in done), key=rank.__getitem__)
            heap = [(rank[s], s)]
        _, s = heapq.heappop(heap)
        if s in done:
            continue
        done.add(s)
        out.append(s)
        for t in sorted(succ[s], key=rank.__getitem__):
            indeg[t] -= 1
            if indeg[t] <= 0 and t not in done:
                heapq.heappush(heap, (rank[t], t))
    return out


#: How each HR conversion method is named in the methods text and the conversion log.
HR_METHOD_NAMES = {
    "hr_ci": "the reported HR and its confidence interval",
    "oe_v": "the log-rank O\u2212E and its variance",
    "p_events": "the p-value with the event counts (Tierney et al. 2007)",
    "hr_p": "the reported HR and its p-value",
    "km": "individual data reconstructed from the digitised Kaplan-Meier curves "
    "(Guyot et al. 2012)",
    "medians": "the ratio of medians (exponential survival assumed)",
}
#: Short names for tables.
HR_METHOD_SHORT = {
    "hr_ci": "HR and CI",
    "oe_v": "log-rank O\u2212E and V",
    "p_events": "p-value and events",
    "hr_p": "HR and p-value",
    "km": "Kaplan-Meier reconstruction",
    "medians": "ratio of medians",
}

#: Display names of packages in the software sentence.
_PACKAGE_NAMES = {
    "numpy": "NumPy",
    "scipy": "SciPy",
    "pandas": "pandas",
    "statsmodels": "statsmodels",
    "pymare": "PyMARE",
    "matplotlib": "matplotlib",
    "seaborn": "seaborn",
    "snakemake": "Snakemake",
    "jinja2": "Jinja2",
    "weasyprint": "WeasyPrint",
}


def _conversion_counts(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Counts of the HR conversion log over all analyses, or None without one."""
    logs = [c for d in docs for c in (d.get("conversions") or [])]
    if not logs:
        return None
    methods: Counter[str] = Counter()
    inverted = bounds = 0
    failed = 0
    for c in logs:
        conv = c.get("conversion")
        if not isinstance(conv, Mapping):
            failed += 1
            continue
        methods[str(conv.get("method"))] += 1
        inverted += bool(conv.get("inverted"))
        bounds += any("p reported as <" in str(n) for n in conv.get("notes") or [])
    return {"rows": len(logs), "methods": methods, "failed": failed,
            "inverted": inverted, "bounds": bounds}


def _software_sentence(software: Sequence[tuple[str, str]]) -> str:
    """"Analyses were run with ..." from ``(package, version)`` pairs."""
    versions = {pkg.lower(): ver for pkg, ver in software}
    python = versions.pop("python", None)
    parts = []
    core = [f"{_PACKAGE_NAMES.get(p, p)} {versions.pop(p)}"
            for p in ("numpy", "scipy", "pandas", "statsmodels", "pymare") if p in versions]
    metapool = versions.pop("metapool", None)
    lead = "Analyses were run"
    if python:
        lead += f" in Python {python}"
    if metapool:
        lead += f" with metapool {metapool}"
        if core:
            lead += f" ({', '.join(core)})"
    elif core:
        lead += f" with {_join(core)}"
    if "snakemake" in versions:
        lead += f", as a Snakemake {versions.pop('snakemake')} workflow"
    parts.append(lead)
    figures = [f"{_PACKAGE_NAMES.get(p, p)} {versions.pop(p)}"
               for p in ("matplotlib", "seaborn") if p in versions]
    if figures:
        parts.append(f"figures were drawn with {_join(figures)}")
    report = [f"{_PACKAGE_NAMES.get(p, p)} {versions.pop(p)}"
              for p in ("jinja2", "weasyprint") if p in versions]
    if report:
        parts.append(f"the report was rendered with {_join(report)}")
    if versions:
        parts.append("other software: " + ", ".join(
            f"{_PACKAGE_NAMES.get(p, p)} {v}" for p, v in sorted(versions.items())))
    return "; ".join(parts) + "."


def statistical_methods(
    docs: Sequence[Mapping[str, Any]],
    software: Sequence[tuple[str, str]],
    *,
    graded: bool = False,
) -> list[dict[str, str]]:
    """The report-level "Statistical methods" text, ready to paste into a manuscript.

    The per-analysis methods texts are split into sentences; a sentence every analysis
    shares is written once, and a sentence only some analyses share is written once
    under their names ("For ORR, DCR and pCR: ..."), so nothing is repeated. The
    per-analysis version line is replaced by one software sentence, and the HR
    conversion methods actually used are counted from the conversion logs.

    Returns
    -------
    list of dict
        Paragraphs: ``{"lead": "For ORR and DCR:" or "", "text": "..."}``.
    """
    labels = outcome_labels(docs)
    names = [str(d["analysis"]) for d in docs]
    per_doc = [_sentences((d.get("methods") or {}).get("text")) for d in docs]
    owners: dict[str, list[str]] = {}
    for name, sentences in zip(names, per_doc):
        for s in sentences:
            if name not in owners.setdefault(s, []):
                owners[s].append(name)
    paragraphs: list[dict[str, str]] = []
    run_key: tuple[str, ...] | None = None
    for s in _merge_orders(per_doc):
        key = tuple(n for n in names if n in owners[s])
        if paragraphs and key == run_key:
            paragraphs[-1]["text"] += " " + s
            continue
        lead = "" if len(key) == len(names) else f"For {_join([labels[n] for n in key])}:"
        paragraphs.append({"lead": lead, "text": s})
        run_key = key
    counts = _conversion_counts(docs)
    if counts:
        used = [f"{n} from {HR_METHOD_NAMES.get(m, m)}"
                for m, n in sorted(counts["methods"].items(),
                                   key=lambda kv: list(HR_METHOD_NAMES).index(kv[0])
                                   if kv[0] in HR_METHOD_NAMES else 99)]
        converted = counts["rows"] - counts["failed"]
        text = (
            f"Of {counts['rows']} selected survival result{'s' if counts['rows'] != 1 else ''}, "
            f"{converted} gave a log hazard ratio and its standard error"
            + (f" ({_join(used)})" if used else "")
        )
        if counts["failed"]:
            text += (f"; {counts['failed']} could not be converted with the enabled methods "
                     "and were excluded")
        text += "."
        if counts["inverted"]:
            text += (f" {counts['inverted']} reported as control vs experimental "
                     f"{'was' if counts['inverted'] == 1 else 'were'} inverted.")
        if counts["bounds"]:
            text += (f" {counts['bounds']} p-value{'s' if counts['bounds'] != 1 else ''} "
                     "reported as a bound (p < x) were used at the bound, which gives the "
                     "largest standard error the report allows.")
        text += (" The conversion log of each survival analysis lists every conversion, the "
                 "better methods that could not be used and why, and the consistency checks.")
        paragraphs.append({"lead": "", "text": text})
    if graded:
        paragraphs.append({
            "lead": "",
            "text": "The certainty of the evidence for each outcome was rated with GRADE "
            "(risk of bias, inconsistency, indirectness, imprecision and publication bias); "
            "the ratings and their reasons are given in the summary of findings.",
        })
    if software:
        paragraphs.append({"lead": "", "text": _software_sentence(software)})
    return paragraphs


# --------------------------------------------------------------------------- changes

_STATE_TEXT = {
    "new": "new outcome",
    "removed": "no longer analysed",
    "changed": "changed",
    "unchanged": "no change",
    "first run": "first recorded run",
}


def _threshold_text(threshold: Any, measure: str) -> str:
    t = as_float(threshold)
    if t is None:
        return ""
    return fmt_effect(t, measure) if is_proportion_measure(measure) else fmt_num(t, 2).rstrip(
        "0").rstrip(".") or "0"


def _conclusion_text(conclusion: Any, threshold: Any, measure: str) -> str:
    """``"CI below 1 (favours experimental)"`` / ``"CI includes 30.0%"``."""
    if is_missing(conclusion):
        if as_float(threshold) is None and is_proportion_measure(measure):
            return "no threshold configured (null_value)"
        return DASH
    t = _threshold_text(threshold, measure)
    text = f"CI {conclusion} {t}".strip()
    if str(measure).upper() == "HR":
        text += {"below": " (favours experimental)", "above": " (favours control)",
                 "includes": " (inconclusive)"}.get(str(conclusion), "")
    return text


def _change_text(before: Any, after: Any, measure: str) -> str:
    """Change of an estimate: percentage points for proportions, percent for ratios."""
    b, a = as_float(before), as_float(after)
    if a is None or b is None:
        return DASH
    minus = "\u2212"
    if is_proportion_measure(measure):
        diff = (a - b) * 100
        text = fmt_num(abs(diff), 1)
        if not text.strip("0."):
            return "no change at the shown precision"
        return f"{'+' if diff > 0 else minus}{text} percentage points"
    if str(measure).upper() in RATIO_MEASURES and b > 0:
        rel = (a / b - 1) * 100
        text = fmt_num(abs(rel), 1)
        if not text.strip("0."):
            return "no change at the shown precision"
        return f"{'+' if rel > 0 else minus}{text}% (ratio {fmt_ratio(a / b)})"
    diff = a - b
    return f"{'+' if diff > 0 else minus}{fmt_num(abs(diff), 3)}"


def changes_section(
    changes: Mapping[str, Any] | None, anchors: Mapping[str, str],
    cumulative: Mapping[str, bool] | None = None,
) -> dict[str, Any] | None:
    """The "What changed since the previous run" section, or None without a record.

    Parameters
    ----------
    changes : mapping or None
        :func:`metapool.history.compare` output (``results/changes.json``).
    anchors : mapping
        ``{analysis: section anchor}`` of this report, for links.
    cumulative : mapping, optional
        ``{analysis: True}`` where a cumulative forest plot is embedded.
    """
    if not changes:
        return None
    cumulative = cumulative or {}
    rows = []
    for e in changes.get("analyses") or []:
        measure = str(e.get("measure") or "")
        before, after = e.get("before") or {}, e.get("after") or {}
        name = str(e.get("analysis"))
        state = str(e.get("state") or "")
        rows.append({
            "analysis": name,
            "title": str(e.get("title") or name),
            "anchor": anchors.get(name, ""),
            "cumulative": bool(cumulative.get(name)),
            "state": state,
            "state_text": _STATE_TEXT.get(state, state or DASH),
            "added": [str(s) for s in e.get("added_studies") or []],
            "removed": [str(s) for s in e.get("removed_studies") or []],
            "k_before": fmt_int(before.get("k")) if before else DASH,
            "k_after": fmt_int(after.get("k")) if after else DASH,
            "before": fmt_effect_ci(before.get("estimate"), before.get("ci_lower"),
                                    before.get("ci_upper"), measure) if before else DASH,
            "after": fmt_effect_ci(after.get("estimate"), after.get("ci_lower"),
                                   after.get("ci_upper"), measure) if after else DASH,
            "change": (_change_text(before.get("estimate"), after.get("estimate"), measure)
                       if before and after else DASH),
            "conclusion_before": (_conclusion_text(before.get("conclusion"),
                                                   before.get("threshold"), measure)
                                  if before else DASH),
            "conclusion_after": (_conclusion_text(after.get("conclusion"),
                                                  after.get("threshold"), measure)
                                 if after else DASH),
            "crossed": bool(e.get("crossed")),
            "status_after": str(after.get("status") or "") if after else "",
            "level": fmt_level(e.get("level")),
        })
    previous = changes.get("previous")
    n_changed = sum(r["state"] in ("changed", "new", "removed") for r in rows)
    return {
        "run_id": str(changes.get("run_id") or DASH),
        "sequence": fmt_int(changes.get("sequence")),
        "previous_id": str(previous.get("run_id")) if previous else "",
        "previous_sequence": fmt_int(previous.get("sequence")) if previous else "",
        "first": previous is None,
        "rows": rows,
        "n_changed": n_changed,
        "n_crossed": sum(r["crossed"] for r in rows),
        "crossed": [r for r in rows if r["crossed"]],
    }


# --------------------------------------------------------------------------- warnings


def warnings_section(
    docs: Sequence[Mapping[str, Any]],
    row_warnings: Mapping[str, Sequence[str]],
    anchors: Mapping[str, str],
    table_warnings: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Every warning of the run, grouped: input tables first, then each analysis.

    An analysis' group holds its document and model warnings and the consistency checks
    of its conversion log whose message is not already among them.
    """
    groups = []
    tables = [str(w) for w in table_warnings or [] if not is_missing(w)]
    if tables:
        groups.append({"title": "Input tables", "anchor": "", "entries": tables})
    for doc in docs:
        name = str(doc["analysis"])
        items = list(row_warnings.get(name) or [])
        for c in doc.get("conversions") or []:
            for check in c.get("checks") or []:
                message = str(check.get("message") or "")
                if not message or any(message in w for w in items):
                    continue
                severity = str(check.get("severity") or "warning")
                items.append(f"{c.get('row')}: {message}"
                             + ("" if severity == "warning" else f" ({severity})"))
        if items:
            groups.append({"title": str(doc.get("title") or name),
                           "anchor": anchors.get(name, ""), "entries": items})
    return groups


# --------------------------------------------------------------------------- provenance


def provenance_section(
    docs: Sequence[Mapping[str, Any]],
    study_records: Sequence[Mapping[str, Any]] | None = None,
    inputs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Where every number comes from: the input tables (SHA-256) and each study with its
    DOI, PMID and registration and what each analysis did with it.

    Parameters
    ----------
    docs : sequence of mapping
        The analysis documents.
    study_records : sequence of mapping, optional
        Rows of ``studies.csv`` (study_id, author, year, title, journal, doi, pmid,
        registration, status). Without them the studies come from the documents.
    inputs : mapping, optional
        ``{path: sha256}`` of the input tables.
    """
    labels = outcome_labels(docs)
    use: dict[str, dict[str, list[str]]] = {}
    names: dict[str, str] = {}
    dois: dict[str, str] = {}

    def slot(sid: str) -> dict[str, list[str]]:
        return use.setdefault(sid, {"included": [], "excluded": [], "ongoing": []})

    for doc in docs:
        label = labels[str(doc["analysis"])]
        for s in doc.get("studies") or []:
            sid = str(s.get("study_id") or s.get("label"))
            names.setdefault(sid, str(s.get("label") or sid))
            if not is_missing(s.get("doi")):
                dois.setdefault(sid, str(s["doi"]))
            if label not in slot(sid)["included"]:
                slot(sid)["included"].append(label)
        for e in doc.get("excluded") or []:
            sid = str(e.get("study_id") or e.get("label"))
            names.setdefault(sid, str(e.get("label") or sid))
            if label not in slot(sid)["excluded"]:
                slot(sid)["excluded"].append(label)
        for g in doc.get("ongoing") or []:
            sid = str(g.get("study_id") or g.get("label"))
            names.setdefault(sid, str(g.get("label") or sid))
            if label not in slot(sid)["ongoing"]:
                slot(sid)["ongoing"].append(label)
    records = list(study_records or [])
    if not records:
        records = [{"study_id": sid, "doi": dois.get(sid)} for sid in names]
    rows = []
    for r in records:
        sid = str(r.get("study_id"))
        label = names.get(sid)
        if label is None:
            author, year = r.get("author"), r.get("year")
            label = " ".join(str(x) for x in (author, year) if not is_missing(x)) or sid
        u = use.get(sid, {"included": [], "excluded": [], "ongoing": []})
        reference = "; ".join(
            str(r[k]) for k in ("title", "journal") if not is_missing(r.get(k))
        )
        year = as_float(r.get("year"))
        if year is not None and reference:
            reference += f" ({int(year)})"
        doi = r.get("doi")
        ids = []
        if not is_missing(r.get("pmid")):
            ids.append(f"PMID {r['pmid']}")
        if not is_missing(r.get("registration")):
            ids.append(str(r["registration"]))
        rows.append({
            "study_id": sid,
            "label": label,
            "reference": reference or DASH,
            "doi": "" if is_missing(doi) else str(doi),
            "doi_url": doi_url(doi),
            "ids": ids,
            "status": "" if is_missing(r.get("status")) else str(r["status"]),
            "included": u["included"],
            # an analysis that took one row of the study and left another (a control
            # arm, an adjusted HR) included it: only analyses without it are listed
            "excluded": [x for x in u["excluded"] if x not in u["included"]],
            "ongoing": u["ongoing"],
            "unused": not any(u.values()),
        })
    rows.sort(key=lambda x: (x["label"].casefold(), x["study_id"]))
    return {
        "inputs": [(str(p), str(h)) for p, h in (inputs or {}).items()],
        "studies": rows,
    }


# --------------------------------------------------------------------------- risk of bias


def rob_badge(judgement: Any) -> dict[str, str]:
    """A judgement as the report shows it: ``text``, ``symbol`` and a CSS class."""
    text = "" if is_missing(judgement) else str(judgement)
    _, symbol = rob.STYLE.get(text, ("", ""))
    return {"text": text, "symbol": symbol, "css": "rob-" + text.replace(" ", "-")}


def risk_of_bias_section(
    rows: Sequence[Mapping[str, Any]] | None,
    study_records: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The report's "Risk of bias" section from the rows of ``risk_of_bias.csv``.

    Parameters
    ----------
    rows : sequence of mapping or None
        The validated risk-of-bias rows (``study_id``, ``tool``, ``domain``,
        ``judgement``, ``stars``, ``support``); None when no table was supplied.
    study_records : sequence of mapping, optional
        Rows of ``studies.csv``, for the study labels and the studies not assessed.

    Returns
    -------
    dict or None
        None without a table. Else ``intro`` (which tools, how many studies, how many at
        high risk and the rule), ``tools`` (per tool: ``tool``, ``design``, ``headers``
        [(short, full name)], ``rows`` [{``label``, ``cells`` (a badge or None per
        domain)}], ``key``), ``support`` (one row per judgement with its support text),
        ``unassessed`` and ``ongoing`` (labels of published studies without an
        assessment, and of ongoing studies).
    """
    if rows is None:
        return None
    records = list(study_records or [])
    labels = {str(r.get("study_id")): rob.study_label(r) for r in records}
    rows = [dict(r) for r in rows]
    assessed = list(dict.fromkeys(str(r["study_id"]) for r in rows))
    tools = []
    for tool, spec in rob.TOOLS.items():
        mine = [r for r in rows if r.get("tool") == tool]
        if not mine:
            continue
        ids = list(dict.fromkeys(str(r["study_id"]) for r in mine))
        cells = {(str(r["study_id"]), r["domain"]): r for r in mine}
        headers = [
            ("Overall" if d == rob.OVERALL else d.split(" ", 1)[0] if tool != "Newcastle-Ottawa"
             else d.capitalize(), d)
            for d in spec["domains"]
        ]
        table_rows = []
        for sid in ids:
            shown = []
            for d in spec["domains"]:
                r = cells.get((sid, d))
                if r is None:
                    shown.append(None)
                    continue
                badge = rob_badge(r.get("judgement"))
                stars = as_float(r.get("stars"))
                if stars is not None:
                    badge["text"] += f" ({int(stars)}\u2605)"
                shown.append(badge)
            table_rows.append({"study_id": sid, "label": labels.get(sid, sid), "cells": shown})
        if tool == "Newcastle-Ottawa":
            key = ("Stars per domain (selection 0-4, comparability 0-2, outcome 0-3; "
                   f"Overall: their sum, 0-{rob.NOS_MAX_STARS[rob.OVERALL]}), rated good, fair or "
                   "poor with the AHRQ thresholds: good = 3-4 selection, 1-2 comparability "
                   "and 2-3 outcome stars; fair = 2 selection stars and the same otherwise; "
                   "poor = 0-1 selection, 0 comparability or 0-1 outcome stars.")
        else:
            key = "; ".join(d.replace(" ", ": ", 1) for d in spec["domains"] if d != rob.OVERALL)
            key += "."
        tools.append({"tool": tool, "design": spec["design"], "headers": headers,
                      "rows": table_rows, "key": key})
    order = {t: i for i, t in enumerate(rob.TOOLS)}
    support = []
    for r in sorted(rows, key=lambda r: (labels.get(str(r["study_id"]), str(r["study_id"])),
                                         order.get(r["tool"], 99))):
        badge = rob_badge(r.get("judgement"))
        stars = as_float(r.get("stars"))
        support.append({
            "label": labels.get(str(r["study_id"]), str(r["study_id"])),
            "tool": str(r["tool"]),
            "domain": str(r["domain"]),
            "overall": r["domain"] == rob.OVERALL,
            "badge": badge,
            "stars": "" if stars is None else f"{int(stars)}\u2605",
            "support": "" if is_missing(r.get("support")) else str(r["support"]),
        })
    high = sorted({labels.get(str(r["study_id"]), str(r["study_id"])) for r in rows
                   if r["domain"] == rob.OVERALL
                   and rob.is_high(str(r["tool"]), str(r["judgement"]))}, key=str.casefold)
    names = [f"{t['tool']} for {t['design']}" for t in tools]
    intro = (f"{len(assessed)} stud{'y' if len(assessed) == 1 else 'ies'} assessed with "
             f"{_join(names)}. A study is at high risk of bias when its overall judgement is "
             f"{rob.HIGH_RULE}: {len(high)} of {len(assessed)} "
             f"({', '.join(high) if high else 'none'}). Each analysis' sensitivity panel "
             "repeats it without those studies (studies without an assessment are kept), "
             "and its table of included studies gives each study's overall judgement.")
    unassessed = [rob.study_label(r) for r in records
                  if str(r.get("study_id")) not in assessed and r.get("status") != "ongoing"]
    ongoing = [rob.study_label(r) for r in records if r.get("status") == "ongoing"
               and str(r.get("study_id")) not in assessed]
    return {"intro": intro, "tools": tools, "support": support, "unassessed": unassessed,
            "ongoing": ongoing, "high": high}


def analysis_rob(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """One analysis' risk of bias: ``{study_id: [badges with tool]}``, the note on its
    sensitivity variant, or None when the document has no risk-of-bias section."""
    section = doc.get("risk_of_bias")
    if not section:
        return None
    by_study = {}
    for s in section.get("studies") or []:
        by_study[str(s["study_id"])] = [
            {**rob_badge(a.get("overall")), "tool": str(a.get("tool")),
             "high": bool(a.get("high"))}
            for a in s.get("assessments") or []
        ]
    note = "" if section.get("sensitivity_variant") else str(section.get("sensitivity_note") or "")
    return {"studies": by_study, "note": note, "rule": str(section.get("high_rule") or "")}



# --------------------------------------------------------------------------- conversions


def _inputs_text(inputs: Any) -> list[str]:
    """``["hr = 0.38", "hr_lower = 0.27", ...]`` from a conversion's inputs."""
    if not isinstance(inputs, Mapping):
        return []
    out = []
    for key, value in inputs.items():
        if is_missing(value):
            continue
        if isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, float):
            value = f"{value:g}"
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        out.append(f"{key} = {value}")
    return out


def _km_text(km: Any, measure: str) -> list[str]:
    """A few lines on a Kaplan-Meier reconstruction, when the log has one."""
    if not isinstance(km, Mapping):
        return []
    out = []
    hr = fmt_effect_ci(km.get("hr"), km.get("ci_lower"), km.get("ci_upper"), "HR")
    if hr != DASH:
        out.append(f"Cox model on the reconstructed data: HR {hr}"
                   + (f" ({fmt_level(km['level'])} CI)" if as_float(km.get("level")) else ""))
    if as_float(km.get("logrank_p")) is not None:
        out.append(f"log-rank p = {fmt_num(km['logrank_p'], 3)}")
    for arm, rec in (km.get("arms") or {}).items():
        if not isinstance(rec, Mapping):
            continue
        part = f"{arm}: {fmt_int(rec.get('n'))} patients, {fmt_int(rec.get('n_events'))} events"
        if as_float(rec.get("total_events_reported")) is not None:
            part += f" ({fmt_int(rec['total_events_reported'])} reported)"
        if as_float(rec.get("max_abs_diff")) is not None:
            part += f"; numbers at risk off by at most {fmt_num(rec['max_abs_diff'], 1)}"
        out.append(part)
    out.extend(str(n) for n in km.get("notes") or [] if not is_missing(n))
    return out


def _pairs(items: Any, value_key: str) -> list[tuple[str, str]]:
    """``[(method, text)]`` from ``[{method, reason}]`` or ``[[method, reason]]``."""
    out = []
    for item in items or []:
        if isinstance(item, Mapping):
            method, text = item.get("method"), item.get(value_key)
        elif isinstance(item, (list, tuple)) and len(item) >= 2:
            method, text = item[0], item[1]
        else:
            continue
        out.append((str(method), DASH if is_missing(text) else str(text)))
    return out


def conversion_log(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The hazard-ratio conversion log of a survival analysis (PRISMA 2020 item 13b).

    One row per selected survival result: how its log HR and SE were obtained (method,
    strength, formula, inputs, inversion, notes), the better methods that could not be
    used and why, better methods the analysis did not enable, and consistency checks.
    None when the document has no conversion log.
    """
    logs = doc.get("conversions")
    if not logs:
        return None
    rows = []
    methods: Counter[str] = Counter()
    for c in logs:
        conv = c.get("conversion") if isinstance(c.get("conversion"), Mapping) else None
        rejected = [(HR_METHOD_SHORT.get(m, m), m, r)
                    for m, r in _pairs(c.get("rejected"), "reason")]
        not_allowed = [(HR_METHOD_SHORT.get(m, m), m, r)
                       for m, r in _pairs(c.get("not_allowed"), "would_give")]
        checks = [
            {
                "check": str(k.get("check") or ""),
                "severity": str(k.get("severity") or "warning"),
                "message": str(k.get("message") or DASH),
            }
            for k in c.get("checks") or []
            if isinstance(k, Mapping)
        ]
        row: dict[str, Any] = {
            "row": DASH if is_missing(c.get("row")) else str(c["row"]),
            "converted": conv is not None,
            "rejected": rejected,
            "not_allowed": not_allowed,
            "checks": checks,
            "km": _km_text(c.get("km"), "HR"),
        }
        if conv is not None:
            method = str(conv.get("method") or "")
            methods[method] += 1
            level = conv.get("level")
            strength = as_float(conv.get("strength"))
            row.update({
                "method": HR_METHOD_SHORT.get(method, method or DASH),
                "method_code": method,
                "strength": (f"{fmt_int(strength)} of 5" if strength is not None else DASH),
                "hr": fmt_effect_ci(conv.get("hr"), conv.get("ci_lower"),
                                    conv.get("ci_upper"), "HR"),
                "level": fmt_level(level),
                "yi": fmt_num(conv.get("yi"), 4),
                "sei": fmt_num(conv.get("sei"), 4),
                "formula": DASH if is_missing(conv.get("formula")) else str(conv["formula"]),
                "inputs": _inputs_text(conv.get("inputs")),
                "inverted": bool(conv.get("inverted")),
                "notes": [str(n) for n in conv.get("notes") or [] if not is_missing(n)],
            })
        else:
            status = str(c.get("status") or "")
            row["reason"] = (
                "no enabled method applies to the reported numbers"
                if status.startswith("not converted") or not status else status
            )
        rows.append(row)
    n_conv = sum(r["converted"] for r in rows)
    used = ", ".join(f"{HR_METHOD_SHORT.get(m, m)} {n}" for m, n in methods.most_common())
    summary = (f"{len(rows)} survival result{'s' if len(rows) != 1 else ''} selected: "
               f"{n_conv} converted" + (f" ({used})" if used else "")
               + f", {len(rows) - n_conv} not converted.")
    return {
        "rows": rows,
        "summary": summary,
        "n_checks": sum(len(r["checks"]) for r in rows),
        "strength_rule": (
            "Strength ranks the evidence a method rests on: 1 = HR and CI, 2 = log-rank "
            "O\u2212E and V, 3 = p-value with events or HR with p-value, 4 = reconstructed "
            "Kaplan-Meier data, 5 = ratio of medians (weakest)."
        ),
        "methods": {m: HR_METHOD_NAMES.get(m, m) for m in methods},
    }

