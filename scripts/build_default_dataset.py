#!/usr/bin/env python3
"""Convert a curated extraction folder into metapool's ``data/raw`` tables.

Usage::

    python scripts/build_default_dataset.py CURATION_DIR OUT_DIR

``CURATION_DIR`` holds the reference extraction (``studies.csv``, ``proportions.csv``,
``survival.csv`` in the curation's own column layout, see its README.md).  ``OUT_DIR``
receives ``studies.csv``, ``proportions.csv`` and ``survival.csv`` in the project's table
contract (docs/architecture.md, config/README.md).

The conversion is deterministic (same input bytes -> same output bytes), uses only the
standard library and never invents numbers:

* every value is copied as written in the curation (numbers keep their reported text,
  e.g. ``0.316``), or moved into ``notes`` / ``derivation`` when it does not fit a typed
  column ("not reached", median CIs, "NR", volume/pages, ...);
* the controlled vocabularies (design, cancer, arm role, comparison kind, adjusted) are
  assigned by explicit rules below; a value no rule recognises raises ``ConversionError``
  instead of being guessed;
* no hazard ratio is computed here (the pipeline derives and logs them);
* median CIs (``median_exp_ci``, ``median_ctrl_ci``) fill the typed median CI columns at the
  95% level their quote states; a ``direction`` is written only where a curator judgement
  is listed in ``CURATOR_DIRECTIONS`` (with its reason in ``derivation``) and the row's
  own medians and events support it; no other optional survival column has a source;
* a text cell starting with ``=``, ``+``, ``-`` or ``@`` raises (spreadsheet-formula risk;
  provenance text is never silently altered);
* row order is the curation's row order.

Checks (raise): events <= total, 0 <= events, lower <= hr <= upper, every study_id in the
outcome tables is in studies.csv, unique study ids, ongoing studies have no outcome rows.
Flags (stderr warning, row kept): hazard-ratio CIs that are not symmetric on the log scale.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
from pathlib import Path

STUDIES_COLUMNS = [
    "study_id", "author", "year", "title", "journal", "doi", "pmid", "registration",
    "design", "country", "cancer", "intervention", "comparator", "n_total", "status", "notes",
]
PROPORTIONS_COLUMNS = [
    "study_id", "outcome", "arm", "events", "total", "timepoint", "criteria", "source",
    "derived", "derivation",
]
# all columns of the survival contract, optional ones included (schema x-column-order)
SURVIVAL_COLUMNS = [
    "study_id", "outcome", "comparison", "hr", "hr_lower", "hr_upper", "ci_level",
    "hr_orientation", "p_value", "p_sided", "direction", "n_exp", "n_ctrl",
    "allocation_ratio", "events_exp", "events_ctrl", "events_total", "oe", "v",
    "median_exp", "median_exp_lower", "median_exp_upper", "median_ctrl",
    "median_ctrl_lower", "median_ctrl_upper", "median_ci_level", "km_file", "adjusted",
    "source", "derivation",
]

CURATED_STUDIES = [
    "study_id", "title", "journal", "year", "doi", "pmid", "design", "country", "cancer",
    "intervention", "comparator", "n_total", "source", "provenance", "registration",
    "follow_up", "notes",
]
CURATED_PROPORTIONS = [
    "study_id", "outcome", "arm", "events", "total", "timepoint", "criteria", "source_quote",
    "seed_only", "derived", "derivation_note", "source",
]
CURATED_SURVIVAL = [
    "study_id", "outcome", "comparison", "n_exp", "n_ctrl", "median_exp", "median_ctrl", "hr",
    "hr_lower", "hr_upper", "p_value", "events", "source_quote", "seed_only", "median_exp_ci",
    "median_ctrl_ci", "hr_type", "derivation_note", "source",
]

SINGLE_ARM_DESIGNS = {"retrospective single-arm", "retrospective case series"}
FORMULA_PREFIXES = ("=", "+", "-", "@")
STUDY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
NUMBER_RE = re.compile(r"^\d+(\.\d+)?$")
INT_RE = re.compile(r"^\d+$")
P_VALUE_RE = re.compile(r"^<?(0(\.\d+)?|1(\.0+)?|\.\d+)$")
# relative log-scale asymmetry |ln hr - mid| / half-width above which a CI is flagged
ASYMMETRY_FLAG = 0.2
MEDIAN_CI_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)$")

# Curator judgements: values the sources imply but do not state, each with its reason
# (written into the row's derivation). Keyed by (study_id, outcome, comparison) as
# curated; the converter checks that the row's own numbers support the judgement and
# raises otherwise. Documented in config/README.md ("Curator judgements").
CURATOR_DIRECTIONS = {
    ("Anon2022_BMCGastro_TACE-ISB", "OS", "TACE + 125I (exp) vs TACE (ctrl)"): "experimental",
}


class ConversionError(ValueError):
    """The curation holds a value the converter has no rule for (or an inconsistency)."""


def warn(msg: str) -> None:
    print(f"WARNING: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- reading


def read_curated(path: Path, expected: list[str]) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames != expected:
        raise ConversionError(
            f"{path.name}: columns {reader.fieldnames} differ from expected {expected}"
        )
    rows = []
    for i, row in enumerate(reader, start=2):
        if None in row or any(v is None for v in row.values()):
            raise ConversionError(f"{path.name} line {i}: wrong number of cells")
        rows.append({k: v.strip() for k, v in row.items()})
    return rows


def join(parts: list[str]) -> str:
    """`; `-join the non-empty parts (order preserved)."""
    return "; ".join(p for p in (q.strip() for q in parts) if p)


def is_nr(value: str) -> bool:
    return value.strip().upper() == "NR"


def strip_parens(text: str) -> str:
    """Remove parenthetical asides (one nesting level is enough for the curation)."""
    prev = None
    while prev != text:
        prev = text
        text = re.sub(r"\([^()]*\)", "", text)
    return re.sub(r"\s+", " ", text).strip()


def number(value: str, where: str) -> str:
    """A reported number, kept as written ('0.3' stays '0.3')."""
    if not NUMBER_RE.match(value):
        raise ConversionError(f"{where}: {value!r} is not a plain number")
    return value


def integer(value: str, where: str) -> str:
    if not INT_RE.match(value):
        raise ConversionError(f"{where}: {value!r} is not a non-negative integer")
    return str(int(value))


# --------------------------------------------------------------------------- studies


def map_author(study_id: str) -> str:
    """First-author surname encoded in ids such as ``Tang2025``; empty for placeholders
    (``Anon...``) and registry ids (``PLA960_NCT...``)."""
    m = re.match(r"^([A-Z][A-Za-z'-]*?)(\d{4})$", study_id)
    if not m or m.group(1).lower() == "anon":
        return ""
    return m.group(1)


def map_design(design: str, comparator: str) -> str:
    d = design.lower()
    if re.search(r"\brct\b", d) or ("randomi" in d and "non-random" not in d):
        return "RCT"
    if "case series" in d:
        return "retrospective case series"
    if "single-arm" in d or "single arm" in d:
        return "retrospective single-arm"
    if "retrospective" in d and ("comparative" in d or "propensity" in d or (
            "cohort" in d and comparator and not comparator.lower().startswith("none"))):
        return "retrospective comparative cohort"
    raise ConversionError(f"no design rule for {design!r}")


def map_cancer(population: str) -> str:
    core = strip_parens(population)
    low = core.lower()
    if "breast cancer liver metast" in low:
        return "breast cancer liver metastases"
    if "multiple metasta" in low:
        return "multiple metastases"
    if re.search(r"\bhcc\b", low) or "hepatocellular" in low:
        return "HCC"
    if re.search(r"\bnsclc\b", low) or "non-small cell" in low:
        return "NSCLC"
    if "lung cancer" in low:
        return "lung cancer"
    raise ConversionError(f"no cancer rule for {population!r}")


def map_journal(journal: str) -> tuple[str, list[str]]:
    """Journal name only; volume/pages, publisher or record type go to the notes."""
    if not journal:
        return "", []
    if "registration" in journal.lower():
        return "", [f"Record type: {journal}"]
    name, extra = journal, []
    m = re.match(r"^(.*?)\s*\(([^()]*)\)$", name)
    if m:
        name = m.group(1)
        extra.append(f"Publisher: {m.group(2)}")
    m = re.match(r"^(.*?[A-Za-z.])\s+(\d+(?:\(\d+\))?(?::[\w.]+(?:-[\w.]+)?)?)$", name)
    if m:
        name = m.group(1)
        extra.insert(0, f"Volume/pages: {m.group(2)}")
    return name.strip(), extra


def map_country(country: str) -> str:
    low = country.lower()
    if not country or low.startswith("not stated") or low.startswith("not reported"):
        return ""
    return strip_parens(country)


def map_n_total(value: str, where: str) -> str:
    m = re.match(r"^(\d+)\b", value)
    if not m:
        raise ConversionError(f"{where}: n_total {value!r} does not start with an integer")
    return str(int(m.group(1)))


def is_ongoing(row: dict[str, str]) -> bool:
    return row["design"].lower().startswith("protocol") or "no results" in row["journal"].lower()


def convert_studies(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for row in rows:
        sid = row["study_id"]
        if not STUDY_ID_RE.match(sid):
            raise ConversionError(f"studies: invalid study_id {sid!r}")
        where = f"studies[{sid}]"
        journal, journal_notes = map_journal(row["journal"])
        design = map_design(row["design"], row["comparator"])
        cancer = map_cancer(row["cancer"])
        country = map_country(row["country"])
        comparator = "" if row["comparator"].lower().startswith("none") else row["comparator"]
        n_total = map_n_total(row["n_total"], where) if row["n_total"] else ""
        year = integer(row["year"], where) if row["year"] else ""
        pmid = integer(row["pmid"], where) if row["pmid"] else ""
        notes = join([
            row["notes"],
            f"Design (as curated): {row['design']}",
            f"Population (as curated): {row['cancer']}",
            f"Country (as curated): {row['country']}" if row["country"] != country else "",
            f"Comparator (as curated): {row['comparator']}"
            if row["comparator"] != comparator else "",
            f"Sample size (as curated): {row['n_total']}" if row["n_total"] != n_total else "",
            *journal_notes,
            f"Follow-up: {row['follow_up']}" if row["follow_up"] else "",
            f"Provenance: {row['provenance']}" if row["provenance"] else "",
            f"Extracted from: {row['source']}" if row["source"] else "",
        ])
        out.append({
            "study_id": sid,
            "author": map_author(sid),
            "year": year,
            "title": row["title"],
            "journal": journal,
            "doi": row["doi"],
            "pmid": pmid,
            "registration": row["registration"],
            "design": design,
            "country": country,
            "cancer": cancer,
            "intervention": row["intervention"],
            "comparator": comparator,
            "n_total": n_total,
            "status": "ongoing" if is_ongoing(row) else "published",
            "notes": notes,
        })
    ids = [r["study_id"] for r in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConversionError(f"studies: duplicate study_id {dup}")
    return out


# --------------------------------------------------------------------------- shared helpers


def split_outcome(outcome: str) -> tuple[str, str]:
    """``ORR (reported as total response)`` -> (``ORR``, "outcome reported as 'total response'")."""
    m = re.match(r"^(.*?)\s*\(reported as (.*)\)$", outcome)
    if not m:
        return outcome, ""
    label = m.group(2).strip().strip('"').strip("'")
    return m.group(1).strip(), f"outcome reported as '{label}'"


def row_provenance(row: dict[str, str], study: dict[str, str]) -> str:
    """Row-level source facts not already carried by the study row (usually none)."""
    facts = []
    if row["source"] and row["source"] not in study["source"]:
        facts.append(f"Extracted from: {row['source']}")
    seed_study = study["provenance"].lower().startswith("seed")
    if row["seed_only"] == "yes" and not seed_study:
        facts.append("all numbers in a seed document")
    if row["seed_only"] == "no" and seed_study:
        facts.append("numbers not (only) from a seed document")
    if row["seed_only"] not in ("yes", "no"):
        raise ConversionError(f"seed_only {row['seed_only']!r} is not yes/no")
    return join(facts)


def tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[\s()+,/]+", text.lower()) if t}


def overlap(label: str, text: str) -> float:
    lt = tokens(label)
    return len(lt & tokens(text)) / len(lt) if lt else 0.0


# --------------------------------------------------------------------------- proportions


def map_arm(arm: str, study: dict[str, str], design: str, study_arms: list[str]) -> str:
    where = f"proportions[{study['study_id']}] arm {arm!r}"
    if arm == "all":
        return "overall"
    m = re.match(r"^all\s*(?:\((.*)\)|(.*))$", arm)
    if m:
        return f"overall: {(m.group(1) or m.group(2)).strip()}"
    if design in SINGLE_ARM_DESIGNS:
        named = sorted({a for a in study_arms if not a.startswith("all")})
        has_all = any(a.startswith("all") for a in study_arms)
        if len(named) == 1 and not has_all:
            return f"overall: {arm}"  # the whole single-arm cohort under its treatment name
        return f"subgroup: {arm}"
    exp_score = overlap(arm, study["intervention"])
    ctrl_score = overlap(arm, study["comparator"])
    if exp_score > ctrl_score:
        return f"experimental: {arm}"
    if ctrl_score > exp_score:
        return f"control: {arm}"
    raise ConversionError(f"{where}: cannot tell experimental from control arm")


def convert_proportions(rows, studies_by_id, designs):
    out = []
    arms_by_study: dict[str, list[str]] = {}
    for row in rows:
        arms_by_study.setdefault(row["study_id"], []).append(row["arm"])
    for row in rows:
        sid = row["study_id"]
        if sid not in studies_by_id:
            raise ConversionError(f"proportions: study_id {sid!r} not in studies.csv")
        where = f"proportions[{sid}, {row['outcome']}, {row['arm']}]"
        events = integer(row["events"], where)
        total = integer(row["total"], where)
        if int(total) < 1 or int(events) > int(total):
            raise ConversionError(f"{where}: events {events} / total {total} impossible")
        outcome, outcome_note = split_outcome(row["outcome"])
        if row["derived"] not in ("yes", "no"):
            raise ConversionError(f"{where}: derived {row['derived']!r} is not yes/no")
        out.append({
            "study_id": sid,
            "outcome": outcome,
            "arm": map_arm(row["arm"], studies_by_id[sid], designs[sid], arms_by_study[sid]),
            "events": events,
            "total": total,
            "timepoint": "" if row["timepoint"] == "n/a" else row["timepoint"],
            "criteria": "" if row["criteria"] == "n/a" else row["criteria"],
            "source": row["source_quote"],
            "derived": row["derived"],
            "derivation": join([
                row["derivation_note"], outcome_note, row_provenance(row, studies_by_id[sid]),
            ]),
        })
    return out


# --------------------------------------------------------------------------- survival

COMPARISON_RE = re.compile(r"^(?P<exp>.+?) \(exp\) vs (?P<ctrl>.+?) \(ctrl\)(?:, (?P<tail>.+))?$")


def factor_suffix(exp: str, ctrl: str) -> str:
    """``early intervention`` / ``late intervention`` -> ``early vs late intervention``."""
    e, c = exp.split(), ctrl.split()
    k = 0
    while k < min(len(e), len(c)) - 1 and e[-1 - k] == c[-1 - k]:
        k += 1
    if k == 0:
        return f"{exp} vs {ctrl}"
    return f"{' '.join(e[:-k])} vs {' '.join(c[:-k])} {' '.join(e[-k:])}"


def map_comparison(comparison: str, design: str, where: str) -> tuple[str, str]:
    """Return (comparison, note) with comparison ``<kind>: <label>``."""
    if re.match(r"^subgroup: .+", comparison):
        return comparison, ""
    m = re.match(r"^single[- ]arm(?: \((.*)\))?$", comparison)
    if m:
        detail = m.group(1)
        note = f"cohort: {detail}" if detail and detail != "whole cohort" else ""
        return "single-arm: whole cohort", note
    m = COMPARISON_RE.match(comparison)
    if m:
        tail = f" ({m.group('tail')})" if m.group("tail") else ""
        if design in SINGLE_ARM_DESIGNS:
            return f"prognostic: {factor_suffix(m.group('exp'), m.group('ctrl'))}{tail}", (
                "within-cohort comparison (not a randomized or between-treatment contrast)"
            )
        return f"treatment: {m.group('exp')} vs {m.group('ctrl')}{tail}", ""
    raise ConversionError(f"{where}: no comparison rule for {comparison!r}")


def map_p_value(value: str, where: str) -> str:
    v = value.replace(" ", "")
    if v and not P_VALUE_RE.match(v):
        raise ConversionError(f"{where}: p_value {value!r} is not a number or <x")
    return v


def map_count(value: str, name: str, where: str) -> tuple[str, str]:
    if not value:
        return "", ""
    if is_nr(value):
        return "", f"{name} not reported"
    return integer(value, where), ""


def map_events(value: str, single_arm: bool, where: str) -> tuple[str, str, str]:
    """Return (events_exp, events_ctrl, note)."""
    if not value:
        return "", "", ""
    if is_nr(value):
        return "", "", "events not reported"
    m = re.match(r"^(\d+) vs (\d+)(?: (\w+))?(?: \(total (\d+)\))?$", value)
    if m and not single_arm:
        if m.group(4) and int(m.group(1)) + int(m.group(2)) != int(m.group(4)):
            raise ConversionError(f"{where}: events {value!r} do not add up")
        return str(int(m.group(1))), str(int(m.group(2))), ""
    m = re.match(r"^(\d+)(?: (deaths|events))?$", value)
    if m and single_arm:
        return str(int(m.group(1))), "", ""
    m = re.match(r"^(\d+) \((.+)\)$", value)
    if m and single_arm:
        return str(int(m.group(1))), "", f"events_exp = {m.group(2)}"
    raise ConversionError(f"{where}: no events rule for {value!r}")


def map_median(value: str, name: str, where: str) -> tuple[str, str]:
    if not value:
        return "", ""
    if NUMBER_RE.match(value):
        return value, ""
    low = value.lower()
    if is_nr(value):
        return "", f"{name} not reported"
    m = re.match(r"^>\s*(\d+(?:\.\d+)?) \(not reached\)$", low)
    if m:
        return "", f"{name} not reached (>{m.group(1)} months)"
    if low in ("not reached", "not captured"):
        return "", f"{name} {low}"
    raise ConversionError(f"{where}: no rule for {name} {value!r}")


def map_adjusted(hr: str, hr_type: str, where: str) -> tuple[str, str]:
    """Return (adjusted, hr_type note)."""
    t = hr_type.lower()
    if not hr:
        if t.startswith("reported") or t.startswith("adjusted") or t.startswith("unadjusted"):
            raise ConversionError(f"{where}: hr_type {hr_type!r} but no HR")
        if t in ("", "n/a"):
            return "", ""
        return "", f"HR {hr_type}"
    if t.startswith("unadjusted"):
        value = "no"
    elif t.startswith("adjusted"):
        value = "yes"
    elif t.startswith("reported"):
        value = "unknown"
    else:
        raise ConversionError(f"{where}: no adjusted rule for hr_type {hr_type!r}")
    return value, f"HR type: {hr_type}"


P_IN_QUOTE_RE = re.compile(r"\bP\s*[=<]\s*(0?\.\d+)", re.IGNORECASE)


def other_p_values(quote: str, p_value: str) -> list[str]:
    """p-values written in the quote that are not the row's p_value (text as in the quote)."""
    own = float(p_value.lstrip("<")) if p_value else None
    others = []
    for m in P_IN_QUOTE_RE.finditer(quote):
        if own is None or not math.isclose(float(m.group(1)), own):
            others.append(m.group(0))
    return others


def map_median_ci(value: str, median: str, name: str, quote: str,
                  where: str) -> tuple[str, str]:
    """``'10.1-21.1'`` -> (``'10.1'``, ``'21.1'``), as written; checked against the median."""
    if not value:
        return "", ""
    m = MEDIAN_CI_RE.match(value)
    if not m:
        raise ConversionError(f"{where}: {name}_ci {value!r} is not 'lower-upper'")
    lower, upper = m.group(1), m.group(2)
    if not median:
        raise ConversionError(f"{where}: {name}_ci {value!r} without {name}")
    if not float(lower) < float(upper) or not float(lower) <= float(median) <= float(upper):
        raise ConversionError(f"{where}: {name} {median} outside its CI {value}")
    if not re.search(r"95\s*%", quote):
        raise ConversionError(f"{where}: {name}_ci level not stated as 95% in the quote")
    if lower not in quote or upper not in quote:
        warn(f"{where}: {name} CI bounds {lower} and {upper} not both in the quote")
    return lower, upper


def map_direction(row: dict[str, str], ev_exp: str, ev_ctrl: str, n_exp: str, n_ctrl: str,
                  med_exp: str, med_ctrl: str, where: str) -> tuple[str, str]:
    """(direction, note) for rows with a curator judgement (CURATOR_DIRECTIONS)."""
    direction = CURATOR_DIRECTIONS.get((row["study_id"], row["outcome"], row["comparison"]))
    if direction is None:
        return "", ""
    if row["hr"]:
        raise ConversionError(f"{where}: a curated direction on a row with a reported HR")
    if not (ev_exp and ev_ctrl and n_exp and n_ctrl and med_exp and med_ctrl):
        raise ConversionError(f"{where}: a curated direction needs events, group sizes "
                              "and medians in both groups to check it against")
    favours_exp = (float(med_exp) > float(med_ctrl)
                   and int(ev_exp) / int(n_exp) < int(ev_ctrl) / int(n_ctrl))
    favours_ctrl = (float(med_exp) < float(med_ctrl)
                    and int(ev_exp) / int(n_exp) > int(ev_ctrl) / int(n_ctrl))
    if (direction, favours_exp, favours_ctrl) not in (("experimental", True, False),
                                                      ("control", False, True)):
        raise ConversionError(f"{where}: the curated direction {direction!r} is not what "
                              "the medians and events both show")
    arms = COMPARISON_RE.match(row["comparison"])
    arm = f" ({arms.group('exp' if direction == 'experimental' else 'ctrl')})" if arms else ""
    note = (f"direction {direction}: curator judgement, not stated by the source (its "
            f"p = {row['p_value']} gives no direction): the medians {med_exp} vs "
            f"{med_ctrl} months and the events {ev_exp}/{n_exp} vs {ev_ctrl}/{n_ctrl} both "
            f"favour the {direction} group{arm}")
    return direction, note


def convert_survival(rows, studies_by_id, designs):
    out = []
    for row in rows:
        sid = row["study_id"]
        if sid not in studies_by_id:
            raise ConversionError(f"survival: study_id {sid!r} not in studies.csv")
        where = f"survival[{sid}, {row['outcome']}, {row['comparison']}]"
        outcome, outcome_note = split_outcome(row["outcome"])
        comparison, comparison_note = map_comparison(row["comparison"], designs[sid], where)
        single_arm = comparison.startswith("single-arm:")
        hr = number(row["hr"], where) if row["hr"] else ""
        lo = number(row["hr_lower"], where) if row["hr_lower"] else ""
        hi = number(row["hr_upper"], where) if row["hr_upper"] else ""
        if (lo or hi) and not (hr and lo and hi):
            raise ConversionError(f"{where}: incomplete hazard ratio / CI")
        ci_level = ""
        if lo:
            if not (float(lo) <= float(hr) <= float(hi)):
                raise ConversionError(f"{where}: HR {hr} outside its CI {lo}-{hi}")
            if not re.search(r"95\s*%", row["source_quote"]):
                raise ConversionError(f"{where}: CI level not stated as 95% in the quote")
            ci_level = "0.95"
            l_hr, l_lo, l_hi = math.log(float(hr)), math.log(float(lo)), math.log(float(hi))
            half = (l_hi - l_lo) / 2
            if half > 0 and abs(l_hr - (l_lo + l_hi) / 2) / half > ASYMMETRY_FLAG:
                warn(f"{where}: CI {lo}-{hi} not symmetric about HR {hr} on the log scale "
                     "(kept as reported)")
        p_value = map_p_value(row["p_value"], where)
        n_exp, n_exp_note = map_count(row["n_exp"], "n_exp", where)
        n_ctrl, n_ctrl_note = map_count(row["n_ctrl"], "n_ctrl", where)
        ev_exp, ev_ctrl, ev_note = map_events(row["events"], single_arm, where)
        for e, n in ((ev_exp, n_exp), (ev_ctrl, n_ctrl)):
            if e and n and int(e) > int(n):
                raise ConversionError(f"{where}: {e} events > {n} patients")
        med_exp, med_exp_note = map_median(row["median_exp"], "median_exp", where)
        med_ctrl, med_ctrl_note = map_median(row["median_ctrl"], "median_ctrl", where)
        mexp_lo, mexp_hi = map_median_ci(row["median_exp_ci"], med_exp, "median_exp",
                                         row["source_quote"], where)
        mctrl_lo, mctrl_hi = map_median_ci(row["median_ctrl_ci"], med_ctrl, "median_ctrl",
                                           row["source_quote"], where)
        direction, direction_note = map_direction(row, ev_exp, ev_ctrl, n_exp, n_ctrl,
                                                  med_exp, med_ctrl, where)
        adjusted, hr_note = map_adjusted(hr, row["hr_type"], where)
        extra_p = other_p_values(row["source_quote"], p_value) if hr else []
        extra_p_note = (
            f"p_value {p_value} is the HR's p-value, the source also reports "
            f"{' and '.join(extra_p)} (another test, not used)" if extra_p else ""
        )
        if hr_note and hr_note.lower() in row["derivation_note"].lower():
            hr_note = ""  # already said by the curated note
        derivation = join([
            row["derivation_note"],
            hr_note,
            outcome_note,
            comparison_note,
            n_exp_note,
            n_ctrl_note,
            ev_note,
            med_exp_note,
            f"median_exp 95% CI {row['median_exp_ci']}" if row["median_exp_ci"] else "",
            med_ctrl_note,
            f"median_ctrl 95% CI {row['median_ctrl_ci']}" if row["median_ctrl_ci"] else "",
            extra_p_note,
            direction_note,
            row_provenance(row, studies_by_id[sid]),
        ])
        out.append({
            "study_id": sid,
            "outcome": outcome,
            "comparison": comparison,
            "hr": hr,
            "hr_lower": lo,
            "hr_upper": hi,
            "ci_level": ci_level,
            "hr_orientation": "",  # the curation writes every HR experimental vs control
            "p_value": p_value,
            "p_sided": "",  # no p-value in the curation is stated as one-sided
            "direction": direction,
            "n_exp": n_exp,
            "n_ctrl": n_ctrl,
            "allocation_ratio": "",
            "events_exp": ev_exp,
            "events_ctrl": ev_ctrl,
            "events_total": "",  # only as the sum of the events per group, given above
            "oe": "",
            "v": "",
            "median_exp": med_exp,
            "median_exp_lower": mexp_lo,
            "median_exp_upper": mexp_hi,
            "median_ctrl": med_ctrl,
            "median_ctrl_lower": mctrl_lo,
            "median_ctrl_upper": mctrl_hi,
            "median_ci_level": "0.95" if (mexp_lo or mctrl_lo) else "",
            "km_file": "",  # no digitised Kaplan-Meier curve in the curation
            "adjusted": adjusted,
            "source": row["source_quote"],
            "derivation": derivation,
        })
    return out


# --------------------------------------------------------------------------- writing


def check_cells(table: str, rows: list[dict[str, str]]) -> None:
    for i, row in enumerate(rows, start=2):
        for col, value in row.items():
            if value.startswith(FORMULA_PREFIXES):
                raise ConversionError(
                    f"{table} line {i} column {col}: cell starts with {value[0]!r} "
                    "(formula-like text is not altered; fix the curation)"
                )
            if "\n" in value or "\r" in value:
                raise ConversionError(f"{table} line {i} column {col}: line break in cell")


def render(columns: list[str], rows: list[dict[str, str]]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n",
                            quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def convert(curation: Path) -> dict[str, str]:
    """Return {file name: CSV text} for the three tables."""
    studies_in = read_curated(curation / "studies.csv", CURATED_STUDIES)
    props_in = read_curated(curation / "proportions.csv", CURATED_PROPORTIONS)
    surv_in = read_curated(curation / "survival.csv", CURATED_SURVIVAL)

    studies = convert_studies(studies_in)
    studies_by_id = {r["study_id"]: r for r in studies_in}
    designs = {r["study_id"]: r["design"] for r in studies}
    proportions = convert_proportions(props_in, studies_by_id, designs)
    survival = convert_survival(surv_in, studies_by_id, designs)

    ongoing = {r["study_id"] for r in studies if r["status"] == "ongoing"}
    with_outcomes = {r["study_id"] for r in proportions + survival}
    if ongoing & with_outcomes:
        raise ConversionError(f"ongoing studies with outcome rows: {sorted(ongoing & with_outcomes)}")

    tables = {
        "studies.csv": (STUDIES_COLUMNS, studies),
        "proportions.csv": (PROPORTIONS_COLUMNS, proportions),
        "survival.csv": (SURVIVAL_COLUMNS, survival),
    }
    result = {}
    for name, (columns, rows) in tables.items():
        check_cells(name, rows)
        result[name] = render(columns, rows)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("curation", type=Path, help="curation folder (studies/proportions/survival.csv)")
    parser.add_argument("out", type=Path, help="output folder, e.g. data/raw")
    args = parser.parse_args(argv)
    try:
        tables = convert(args.curation)
    except ConversionError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (args.out / name).write_bytes(text.encode("utf-8"))
        print(f"wrote {args.out / name} ({text.count(chr(10)) - 1} rows)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
