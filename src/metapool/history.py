"""Living review: what each run pooled, and what changed since the previous run.

Every run of the workflow records the overall result of each analysis (studies, k,
participants, estimate with CI and PI, heterogeneity, the conclusion relative to the
analysis' threshold) in one JSON file per run, ``<store>/<run-id>.json`` (the workflow's
store is ``results/history/``). The run id is derived from the SHA-256 of the inputs
(the tables, reconstructed Kaplan-Meier files) and of the analysis settings, never from
the time, so a rerun on unchanged inputs finds its own record and adds none. The report
then shows what changed against the previous recorded run (:func:`compare`): studies
added and removed per analysis, the change of each estimate and CI, and a conclusion
that crossed its threshold (a hazard ratio's CI that now excludes or includes 1, a
proportion's CI that moved across the configured ``null_value``).

The store is a side store: no workflow rule declares it as an output, so Snakemake never
deletes it before a job runs (it does delete a job's declared outputs), and
``snakemake --delete-all-output`` leaves it alone. Deleting ``results/`` by hand does
delete it: keep ``results/history/`` (or copy it elsewhere and back) to keep the record.

Record order: each record has a ``sequence`` number. A new run id gets the next number;
a rerun of a run id that is not the latest record moves that record to the end (the
inputs were reverted to an earlier state, which is then the latest state). The
*previous* run of a run is the record with the highest sequence among the others.
Neither the records nor the comparison hold a time: two runs on the same inputs write
byte-identical files (the time of a run is in its ``results/manifest.json``; commit
``results/history/`` to keep the dates with the records).

This module never imports Snakemake: ``workflow/scripts/history.py`` is its adapter.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "compare",
    "conclusion",
    "hash_inputs",
    "load_records",
    "record_run",
    "run_id",
    "snapshot",
    "threshold_of",
    "update_history",
    "write_json",
]

#: Version of the record and comparison formats.
SCHEMA_VERSION = 1

#: Measures compared with 1 (no difference) for the conclusion.
_RATIO_MEASURES = frozenset({"HR", "RR", "OR", "IRR", "LOGHR"})
#: Measures on the proportion scale (a threshold comes from ``null_value``).
_PROPORTION_MEASURES = frozenset({"PLO", "PAS", "PFT", "PR", "PRAW", "PLN"})
#: Relative tolerance under which two numbers count as unchanged.
_RTOL = 1e-9


def _num(value: Any) -> float | None:
    """A finite float, or None (missing, NaN, text)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _canonical(value: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces) for hashing."""
    return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"),
                      default=str)


# --------------------------------------------------------------------------- run id


def hash_inputs(paths: Mapping[str, str | os.PathLike[str]]) -> dict[str, str]:
    """SHA-256 of each input file, under the given names.

    Parameters
    ----------
    paths : mapping
        ``{name: path}``, e.g. ``{"studies": "data/raw/studies.csv", ...}``. A name
        rather than the path keys the hash, so moving the tables keeps the run id.

    Returns
    -------
    dict
        ``{name: hex digest}``, sorted by name.
    """
    out = {}
    for name in sorted(paths):
        digest = hashlib.sha256()
        with open(paths[name], "rb") as fh:
            for block in iter(lambda: fh.read(1 << 16), b""):
                digest.update(block)
        out[str(name)] = digest.hexdigest()
    return out


def run_id(inputs: Mapping[str, str], settings: Any = None) -> str:
    """The id of a run: 16 hex digits of the SHA-256 of its inputs and settings.

    Parameters
    ----------
    inputs : mapping
        ``{name: sha256}`` of the input files (:func:`hash_inputs`).
    settings : object, optional
        Plain-data settings that shape the results (the configured analyses and their
        defaults). Titles and report options belong here only if they should start a
        new record.

    Returns
    -------
    str
        The same text for the same inputs and settings, whatever the time or machine.
    """
    payload = _canonical({"inputs": dict(inputs), "settings": settings})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------- snapshot


def threshold_of(measure: Any, null_value: Any = None) -> float | None:
    """The value a result's CI is judged against: 1 for ratios, ``null_value`` for
    proportions (None when not configured), None otherwise."""
    code = str(measure or "").upper()
    if code in _RATIO_MEASURES:
        return 1.0
    if code in _PROPORTION_MEASURES:
        return _num(null_value)
    return None


def conclusion(ci_lower: Any, ci_upper: Any, threshold: Any) -> str | None:
    """Where a CI lies relative to a threshold: ``"below"``, ``"above"`` or
    ``"includes"``; None without a CI or a threshold."""
    lo, hi, t = _num(ci_lower), _num(ci_upper), _num(threshold)
    if lo is None or hi is None or t is None:
        return None
    if hi < t:
        return "below"
    if lo > t:
        return "above"
    return "includes"


def snapshot(
    docs: Iterable[Mapping[str, Any]], null_values: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The recorded result of each analysis document.

    Parameters
    ----------
    docs : iterable of mapping
        Analysis documents (``results/<analysis>/analysis.json``).
    null_values : mapping, optional
        ``{analysis: null_value}`` from the config, used when a document does not carry
        ``methods.null_value`` itself.

    Returns
    -------
    dict
        ``{analysis: {title, measure, level, threshold, k, n_participants, status,
        estimate, ci_lower, ci_upper, pi_lower, pi_upper, tau2, i2, conclusion,
        studies: [{study_id, label}]}}`` in document order; numbers are floats or None.
    """
    null_values = dict(null_values or {})
    out: dict[str, dict[str, Any]] = {}
    for doc in docs:
        name = str(doc["analysis"])
        models = list(doc.get("models") or [])
        overall = next((m for m in models if m.get("model") == "overall"),
                       models[0] if models else {})
        methods = doc.get("methods") or {}
        null_value = methods.get("null_value")
        if _num(null_value) is None:
            null_value = null_values.get(name)
        threshold = threshold_of(doc.get("measure"), null_value)
        studies = sorted(
            ({"study_id": str(s.get("study_id") or s.get("label") or ""),
              "label": str(s.get("label") or s.get("study_id") or "")}
             for s in doc.get("studies") or []),
            key=lambda s: (s["study_id"], s["label"]),
        )
        k = _num(overall.get("k"))
        out[name] = {
            "title": str(doc.get("title") or name),
            "outcome": str(doc.get("outcome") or ""),
            "measure": str(doc.get("measure") or ""),
            "level": _num(methods.get("level", overall.get("level"))),
            "threshold": threshold,
            "k": int(k) if k is not None else len(studies),
            "n_participants": _num(overall.get("n_participants")),
            "status": str(overall.get("status") or ""),
            **{key: _num(overall.get(key)) for key in (
                "estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "tau2", "i2")},
            "conclusion": conclusion(overall.get("ci_lower"), overall.get("ci_upper"),
                                     threshold),
            "studies": studies,
        }
    return out


# --------------------------------------------------------------------------- store


def write_json(path: str | os.PathLike[str], data: Any, *, sort_keys: bool = True) -> Path:
    """Write indented JSON with ``\\n`` line endings (atomic replace); keys sorted unless
    ``sort_keys`` is False (a record keeps its analyses in config order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(json.dumps(data, indent=2, sort_keys=sort_keys, ensure_ascii=False,
                            allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def load_records(store: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record in the store, oldest first (by ``sequence``, then run id).

    Files that are not records (other JSON, a half-written temporary file) are
    skipped; a record whose file name differs from its run id is taken by its content.
    """
    store = Path(store)
    records = []
    if not store.is_dir():
        return records
    for path in sorted(store.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("run_id") and "analyses" in data:
            records.append(data)
    records.sort(key=lambda r: (int(r.get("sequence") or 0), str(r["run_id"])))
    return records


def record_run(
    store: str | os.PathLike[str],
    rid: str,
    analyses: Mapping[str, Any],
    inputs: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """Record a run in the store and return it with the previous run.

    Parameters
    ----------
    store : path-like
        Directory of the records (created when missing).
    rid : str
        The run id (:func:`run_id`).
    analyses : mapping
        The run's :func:`snapshot`.
    inputs : mapping, optional
        ``{name: sha256}`` of the inputs, kept in the record for the reader.

    Returns
    -------
    record : dict
        This run's record as stored.
    previous : dict or None
        The previous recorded run (highest sequence among the other records).
    action : str
        ``"added"`` (a new run id), ``"unchanged"`` (the same run id and results),
        ``"updated"`` (the same run id, other results: the code changed) or
        ``"moved"`` (an earlier run id run again: it becomes the latest record).
    """
    store = Path(store)
    records = load_records(store)
    others = [r for r in records if r["run_id"] != rid]
    mine = next((r for r in records if r["run_id"] == rid), None)
    top = max((int(r.get("sequence") or 0) for r in records), default=0)
    # plain JSON types, in the given (config) order
    analyses = json.loads(json.dumps(analyses, ensure_ascii=True, default=str))
    if mine is None:
        record = {
            "schema": SCHEMA_VERSION,
            "run_id": rid,
            "sequence": top + 1,
            "inputs": dict(sorted((inputs or {}).items())),
            "analyses": analyses,
        }
        action = "added"
    else:
        record = dict(mine)
        action = "unchanged"
        if json.dumps(record.get("analyses")) != json.dumps(analyses):  # order counts
            record["analyses"] = analyses
            action = "updated"
        if int(record.get("sequence") or 0) < top:
            record["sequence"] = top + 1
            action = "moved"
    if action != "unchanged":
        write_json(store / f"{rid}.json", record, sort_keys=False)
    previous = max(others, key=lambda r: (int(r.get("sequence") or 0), str(r["run_id"])),
                   default=None)
    return record, previous, action


# --------------------------------------------------------------------------- comparison


def _same(a: Any, b: Any) -> bool:
    """Equal numbers (within a relative 1e-9) or both missing."""
    x, y = _num(a), _num(b)
    if x is None or y is None:
        return x is None and y is None
    return abs(x - y) <= _RTOL * max(abs(x), abs(y), 1e-300)


_NUMBERS = ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "tau2", "i2")


def _result(entry: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The numbers of one analysis in a record (for the comparison document)."""
    if entry is None:
        return None
    return {
        "k": entry.get("k"),
        "n_participants": entry.get("n_participants"),
        "status": entry.get("status"),
        **{key: _num(entry.get(key)) for key in _NUMBERS},
        "conclusion": entry.get("conclusion"),
        "threshold": _num(entry.get("threshold")),
    }


def compare(
    current: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What changed between two records.

    Parameters
    ----------
    current : mapping
        This run's record (:func:`record_run`).
    previous : mapping or None
        The previous record, or None for the first recorded run.

    Returns
    -------
    dict
        ``{schema, run_id, sequence, previous: {run_id, sequence} or None,
        analyses: [...]}`` with one entry per analysis of either run (this run's order
        first, then analyses no longer run): ``analysis, title, measure, level, state``
        (``new``, ``removed``, ``changed``, ``unchanged`` or ``first run``),
        ``added_studies``/``removed_studies`` (labels), ``before``/``after`` (k,
        participants, status, estimate, CI, PI, τ², I², conclusion, threshold),
        ``estimate_changed``, ``ci_changed``, ``crossed`` (the conclusion moved across
        the threshold) and ``threshold``.
    """
    cur = current.get("analyses") or {}
    prev = (previous or {}).get("analyses") or {}
    entries = []
    for name in [*cur, *(n for n in prev if n not in cur)]:
        now, before = cur.get(name), prev.get(name)
        base = now if now is not None else before
        entry: dict[str, Any] = {
            "analysis": name,
            "title": base.get("title") or name,
            "outcome": base.get("outcome") or "",
            "measure": base.get("measure") or "",
            "level": base.get("level"),
            "threshold": _num((now or before).get("threshold")),
            "before": _result(before),
            "after": _result(now),
            "added_studies": [],
            "removed_studies": [],
            "estimate_changed": False,
            "ci_changed": False,
            "crossed": False,
        }
        if previous is None:
            entry["state"] = "first run"
        elif before is None:
            entry["state"] = "new"
        elif now is None:
            entry["state"] = "removed"
        else:
            ids_now = {s["study_id"]: s["label"] for s in now.get("studies") or []}
            ids_before = {s["study_id"]: s["label"] for s in before.get("studies") or []}
            entry["added_studies"] = sorted(ids_now[i] for i in ids_now.keys() - ids_before)
            entry["removed_studies"] = sorted(
                ids_before[i] for i in ids_before.keys() - ids_now)
            entry["estimate_changed"] = not _same(now.get("estimate"),
                                                  before.get("estimate"))
            entry["ci_changed"] = not (_same(now.get("ci_lower"), before.get("ci_lower"))
                                       and _same(now.get("ci_upper"),
                                                 before.get("ci_upper")))
            c_now, c_before = now.get("conclusion"), before.get("conclusion")
            entry["crossed"] = (c_now is not None and c_before is not None
                                and c_now != c_before
                                and _same(now.get("threshold"), before.get("threshold")))
            other = (now.get("k") != before.get("k")
                     or now.get("status") != before.get("status")
                     or not all(_same(now.get(key), before.get(key)) for key in _NUMBERS))
            changed = (entry["added_studies"] or entry["removed_studies"]
                       or entry["estimate_changed"] or entry["ci_changed"] or other
                       or c_now != c_before)
            entry["state"] = "changed" if changed else "unchanged"
        entries.append(entry)
    return {
        "schema": SCHEMA_VERSION,
        "run_id": current.get("run_id"),
        "sequence": current.get("sequence"),
        "previous": (None if previous is None else
                     {"run_id": previous.get("run_id"),
                      "sequence": previous.get("sequence")}),
        "analyses": entries,
    }


def update_history(
    store: str | os.PathLike[str],
    docs: Sequence[Mapping[str, Any]],
    inputs: Mapping[str, str],
    settings: Any = None,
    null_values: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Record this run and compare it with the previous one: the whole step.

    Parameters
    ----------
    store : path-like
        History directory (``results/history``).
    docs : sequence of mapping
        This run's analysis documents, in config order.
    inputs : mapping
        ``{name: sha256}`` of the input files.
    settings : object, optional
        The analysis settings that enter the run id.
    null_values : mapping, optional
        ``{analysis: null_value}`` from the config.

    Returns
    -------
    changes : dict
        :func:`compare` of this run with the previous one.
    action : str
        What :func:`record_run` did.
    """
    rid = run_id(inputs, settings)
    record, previous, action = record_run(store, rid, snapshot(docs, null_values), inputs)
    return compare(record, previous), action
