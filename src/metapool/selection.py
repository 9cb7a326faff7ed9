"""Which rows each configured analysis selects, and what its result depends on.

The light part of :mod:`metapool.analysis` (no statistics, no scipy): the workflow
calls these for every analysis when it starts (``workflow/rules/common.smk``), to
check the config against the tables and to key each analysis' cached result on
exactly the rows it selects.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import math
import os
import weakref

import pandas as pd

from .io import DataError, Issue

_TABLES = ("proportions", "survival")


def _text(value):
    """Cell value as the text a pattern is matched against."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:g}"
    if value is pd.NA:
        return ""
    return str(value)


# id(tables) -> (weak reference, {(table, outcome): (merged rows, the same as dicts)}):
# a job or the workflow's parse step selects rows for many analyses of one Tables.
_MERGED = {}


def _tables_cache(tables):
    ref, cache = _MERGED.get(id(tables), (None, None))
    if ref is None or ref() is not tables:
        cache, key = {}, id(tables)
        _MERGED[key] = (weakref.ref(tables, lambda _, key=key: _MERGED.pop(key, None)),
                        cache)
    return cache


def _rob_texts(tables):
    """study_id -> its risk-of-bias rows as lists of cell texts (empty: no table)."""
    cache = _tables_cache(tables)
    if "risk_of_bias" not in cache:
        frame = getattr(tables, "risk_of_bias", None)
        by_study = {}
        if frame is not None:
            for row in frame.to_dict(orient="records"):
                by_study.setdefault(row["study_id"], []).append(
                    [_text(row[c]) for c in frame.columns])
        cache["risk_of_bias"] = by_study
    return cache["risk_of_bias"]


def _merged_rows(tables, table, outcome):
    """Rows of one outcome joined with their study's columns, and the same as dicts."""
    cache = _tables_cache(tables)
    if (table, outcome) not in cache:
        rows = getattr(tables, table)
        rows = rows[rows["outcome"] == outcome]
        studies = tables.studies.drop(columns=["source_row"], errors="ignore")
        merged = rows.merge(studies, on="study_id", how="left", validate="many_to_one")
        cache[(table, outcome)] = (merged, merged.to_dict(orient="records"))
    return cache[(table, outcome)]


def _row_reason(row, include, exclude):
    """Why a row is not selected, or None when it is."""
    for column, patterns in include.items():
        value = _text(row[column])
        if not any(fnmatch.fnmatchcase(value, str(p)) for p in patterns):
            shown = ", ".join(str(p) for p in patterns)
            return f"{column} '{value}' not selected (include: {shown})"
    for column, patterns in exclude.items():
        value = _text(row[column])
        hit = [str(p) for p in patterns if fnmatch.fnmatchcase(value, str(p))]
        if hit:
            return f"{column} '{value}' excluded by pattern '{hit[0]}'"
    return None


def _select(tables, name, spec):
    """Rows selected for an analysis, and per-study reasons for what was left out."""
    table, outcome = spec["table"], spec["outcome"]
    include = spec.get("include") or {}
    exclude = spec.get("exclude") or {}
    merged, records = _merged_rows(tables, table, outcome)
    reasons = [
        _row_reason(row, include, exclude) if row["status"] == "published"
        else "ongoing study"
        for row in records
    ]
    selected = merged.iloc[[i for i, reason in enumerate(reasons) if reason is None]]
    return selected, merged.assign(_reason=reasons)


def _selected_records(tables, spec):
    """The rows :func:`_select` selects, as dicts in table order (no DataFrame is built:
    the checks and cache keys of the workflow call this for every analysis)."""
    include = spec.get("include") or {}
    exclude = spec.get("exclude") or {}
    key = ("selected", json.dumps([spec["table"], spec["outcome"], include, exclude],
                                  sort_keys=True, default=str))
    cache = _tables_cache(tables)
    if key not in cache:
        _, records = _merged_rows(tables, spec["table"], spec["outcome"])
        cache[key] = [row for row in records if row["status"] == "published"
                      and _row_reason(row, include, exclude) is None]
    return cache[key]


def _uses_km(spec, defaults=None):
    """Whether the analysis' ``hr_methods`` (analysis entry, else config defaults, else
    the default evidence order, which ends with ``km``) include ``km``."""
    for source in (spec, defaults or {}):
        if source.get("hr_methods") is not None:
            return "km" in source["hr_methods"]
    return True


def km_files(tables, spec, defaults=None, km_dir=None):
    """The digitised Kaplan-Meier files the rows of one analysis would reconstruct.

    For a survival HR analysis whose ``hr_methods`` include ``km``: the curve and risk
    files (:func:`metapool.km.km_paths`) of every selected row with a ``km_file``, so
    that the workflow can declare them as inputs (a changed curve reruns the analysis).

    Parameters
    ----------
    tables : metapool.io.Tables
    spec : dict
        The analysis entry of the config.
    defaults : dict, optional
        The config's ``defaults`` (for ``hr_methods``).
    km_dir : str or path-like, optional
        The KM directory; default ``tables.km_dir``.

    Returns
    -------
    list of str
        Sorted paths (empty for other analyses).
    """
    if spec.get("table") != "survival" or spec.get("effect", "hr") != "hr":
        return []
    if not _uses_km(spec, defaults):
        return []
    stems = sorted({_text(row.get("km_file")) for row in _selected_records(tables, spec)}
                   - {""})
    if not stems:
        return []
    from .km import km_paths

    directory = km_dir or getattr(tables, "km_dir", None) or "data/raw/km"
    return sorted(os.fspath(p) for stem in stems for p in km_paths(directory, stem))


def _file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_digest(tables, spec, defaults=None):
    """SHA-256 over everything ``run_analysis(..., listing=False)`` reads for one analysis.

    That is the settings (``spec`` and ``defaults``), the table file names (they appear
    in messages), every cell of the selected rows with their row numbers and study
    columns, the digitised Kaplan-Meier files those rows name, and the risk-of-bias
    rows of the selected studies. Rows the analysis does not select do not count: a
    study added to the tables changes the digest of the analyses that select it only.
    The workflow keys its result cache on this digest (plus the code's hash).

    Returns
    -------
    str
        64 hex digits.
    """
    selected = _selected_records(tables, spec)
    columns = list(_merged_rows(tables, spec["table"], spec["outcome"])[0].columns)
    rob = _rob_texts(tables)
    rob_rows = [r for sid in sorted({row["study_id"] for row in selected})
                for r in rob.get(sid, [])]
    content = {
        "spec": spec,
        "defaults": defaults or {},
        "paths": {k: str(v) for k, v in sorted(getattr(tables, "paths", {}).items())},
        "columns": columns,
        "rows": [[_text(row[c]) for c in columns] for row in selected],
        "km": {os.path.basename(p): _file_digest(p) if os.path.exists(p) else "missing"
               for p in km_files(tables, spec, defaults)},
        "risk_of_bias": rob_rows,
    }
    text = json.dumps(content, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- checks
def _suggest(word, choices):
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def check_analyses(tables, config, *, config_path="config/config.yaml"):
    """Check the configured analyses against the tables; raise one DataError for all.

    Catches what a schema cannot: an unknown outcome, a filter or subgroup on an
    unknown column, an analysis that selects no study, and an analysis that selects
    two rows of one study (which would count a cohort twice).

    Raises
    ------
    metapool.io.DataError
    """
    issues = []

    def add(key, message):
        issues.append(Issue(file=str(config_path), row=None, column=None,
                            message=f"{key}: {message}"))

    for name, spec in (config.get("analyses") or {}).items():
        table = spec.get("table")
        if table not in _TABLES:
            add(f"analyses.{name}.table", f"unknown table '{table}'{_suggest(table, _TABLES)}")
            continue
        rows = getattr(tables, table)
        outcomes = sorted(set(rows["outcome"]))
        if spec.get("outcome") not in outcomes:
            add(f"analyses.{name}.outcome",
                f"outcome '{spec.get('outcome')}' not found in {table}.csv"
                f"{_suggest(spec.get('outcome'), outcomes)}")
            continue
        columns = [c for c in rows.columns if c != "source_row"] + [
            c for c in tables.studies.columns if c not in ("source_row", "study_id")]
        bad = False
        for key in ("include", "exclude"):
            for column in (spec.get(key) or {}):
                if column not in columns:
                    add(f"analyses.{name}.{key}.{column}",
                        f"unknown column '{column}'{_suggest(column, columns)}")
                    bad = True
        sub = spec.get("subgroup")
        if sub is not None and sub not in columns:
            add(f"analyses.{name}.subgroup",
                f"unknown column '{sub}'{_suggest(sub, columns)}")
            bad = True
        for column in spec.get("moderators") or []:
            if column not in columns:
                add(f"analyses.{name}.moderators",
                    f"unknown column '{column}'{_suggest(column, columns)}")
                bad = True
        method = spec.get("method") or (config.get("defaults") or {}).get("method")
        if table == "survival" and method == "GLMM":
            add(f"analyses.{name}.method",
                "GLMM models binomial counts and applies to proportions only; choose a "
                "tau² estimator (e.g. REML) for hazard ratios")
            bad = True
        if table == "survival" and "measure" in spec:
            add(f"analyses.{name}.measure",
                "measure applies to proportions only; hazard ratios are pooled as log HR")
            bad = True
        if method == "GLMM" and spec.get("measure", "PLO") != "PLO":
            add(f"analyses.{name}.measure",
                "the GLMM models proportions on the logit scale; use measure PLO or "
                "another method")
            bad = True
        if bad:
            continue
        selected = _selected_records(tables, spec)
        if not selected:
            add(f"analyses.{name}", f"selects no published study with outcome "
                f"'{spec['outcome']}' in {table}.csv; check include/exclude")
            continue
        by_study = {}
        for row in selected:
            by_study.setdefault(row["study_id"], []).append(row)
        for sid, group in sorted(by_study.items()):
            if len(group) < 2:
                continue
            rows_txt = ", ".join(str(int(r["source_row"])) for r in group)
            add(f"analyses.{name}",
                f"selects {len(group)} rows for study {sid} ({table}.csv rows "
                f"{rows_txt}); refine include/exclude so each study counts once")
    if issues:
        raise DataError(issues)
