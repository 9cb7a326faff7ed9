"""Read and validate the input tables ``studies.csv``, ``proportions.csv`` and ``survival.csv``.

The contract for each table lives in ``metapool/schemas/<table>.schema.json`` (JSON Schema draft
2020-12, one row per instance). Column order, required cells, types, patterns, enums, bounds,
unique keys (``x-unique-key``) and conditional requirements (``dependentRequired``) all come from
those schemas; :data:`COLUMNS`, :data:`REQUIRED_COLUMNS` and :data:`DTYPES` are derived from them.

The optional ``risk_of_bias.csv`` (:data:`OPTIONAL_TABLES`; read only when its path is given)
follows the same rules. Its schema fixes each tool's domains and judgements (``allOf`` rules on
``tool``); the rules across its rows (every domain of the tool present, an Overall judgement at
least as severe as the worst domain, Newcastle-Ottawa stars matching the AHRQ rating) are
checked here with :mod:`metapool.rob`, and its problems are listed after the other tables'.

Reading
-------
Each file is read as UTF-8 text (with or without a BOM; any line endings), every cell and header
name is stripped of surrounding whitespace, and every cell is parsed and validated here so that a
problem can be reported with its file, row, column and reason. Every column of the contract must
be present in the header (in any order), except the *optional* columns a schema lists in
``x-optional-columns`` (:data:`OPTIONAL_COLUMNS`): those may be left out of the header, which is
the same as a column of empty cells, and are validated like any other column when present.
Unknown columns are errors either way. *Required* columns additionally must not have empty
cells. Rows whose cells are all empty (blank lines, ``,,,`` rows from spreadsheets) are skipped.

A survival row may name digitised Kaplan-Meier files (``km_file``, a stem): ``<stem>.curve.csv``
and ``<stem>.risk.csv`` must exist in the KM directory (``km_dir`` of :func:`load_tables`,
by default the ``km`` folder next to ``survival.csv``) and be readable by
:func:`metapool.km.read_km`; a problem is reported on the row's ``km_file`` cell.

Row numbers
-----------
``row N`` and the ``source_row`` column are 1-based data row numbers with the header excluded,
so data row N is line N + 1 of the file (unless a quoted cell spans several lines).

Data types
----------
The returned DataFrames have the contract columns in contract order (optional columns included,
empty when left out of the header) plus ``source_row``:

* text columns: pandas ``str`` dtype, ``""`` for an empty cell (never NaN);
* integer columns (counts, year, n_total): nullable ``Int64``, ``<NA>`` for an empty cell;
* number columns (hr, CI bounds, ci_level, medians): ``float64``, NaN only for an empty cell;
* ``p_value`` is kept as text (``"0.03"`` or ``"<0.001"``); see :func:`parse_p_value`;
* ``source_row``: ``int64``.

Problems
--------
All problems in all three tables are collected before anything is raised. Errors raise one
:class:`DataError` listing every error in file order (studies, proportions, survival), then row,
then column (contract order). Warnings do not stop loading and are returned in
:attr:`Tables.warnings`:

* a hazard-ratio CI that is not symmetric around the HR on the log scale. With
  ``a = ln HR``, ``m = (ln L + ln U) / 2`` and ``w = (ln U - ln L) / 2`` the CI is accepted when
  ``|a - m| <= 0.1 w`` for *some* HR, L, U within half a unit of the last reported decimal of
  each number (so ``0.51`` may be anything in [0.505, 0.515]); otherwise it warns;
* ``events == 1`` with ``total >= 20`` (possibly a proportion, 1 = 100%, typed as a count).
  Zero events are not flagged: a true 0/n (no deaths, no severe complications) is common in
  this literature and a typed "0" cannot be told from it.

The module is pure: it does not print or log.
"""

from __future__ import annotations

import codecs
import difflib
import io
import json
import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml

__all__ = [
    "COLUMNS",
    "DTYPES",
    "OPTIONAL_COLUMNS",
    "OPTIONAL_TABLES",
    "REQUIRED_COLUMNS",
    "SCHEMAS",
    "SCHEMA_TABLES",
    "TABLES",
    "DataError",
    "Issue",
    "Tables",
    "check_config",
    "check_config_file",
    "check_tables",
    "config_key_path",
    "default_km_dir",
    "format_issues",
    "load_schema",
    "load_tables",
    "parse_p_value",
]

#: The input tables, in the order their problems are reported.
TABLES: tuple[str, ...] = ("studies", "proportions", "survival")
#: Tables read only when the config names them (``tables.<name>``), after the others.
OPTIONAL_TABLES: tuple[str, ...] = ("risk_of_bias",)
#: Every table with a schema in ``schemas/``.
SCHEMA_TABLES: tuple[str, ...] = TABLES + OPTIONAL_TABLES

_INT_RE = re.compile(r"^[+-]?\d+$")
_NUM_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
# Placeholders people type for "not reported"; an empty cell is the way to say that.
_MISSING_WORDS = {"na", "n/a", "nr", "nan", "none", "null", "-", "--", ".", "?", "ne", "missing"}
# Registration tokens need digits, so words like 'not registered' never match each other.
_REG_TOKEN_RE = re.compile(r"^(?=(?:.*\d){4})\S+$")
_BOUND_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def load_schema(table: str) -> dict[str, Any]:
    """Load the JSON schema of one input table.

    Parameters
    ----------
    table : str
        One of :data:`SCHEMA_TABLES`.

    Returns
    -------
    dict
        The parsed ``<table>.schema.json`` shipped with the package.
    """
    if table not in SCHEMA_TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(SCHEMA_TABLES)}")
    schema_file = resources.files("metapool").joinpath("schemas", f"{table}.schema.json")
    return json.loads(schema_file.read_text(encoding="utf-8"))


def _dtype(prop: dict[str, Any]) -> str:
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    if types == ["integer"]:
        return "Int64"
    if types == ["number"]:
        return "float64"
    return "str"  # text, and mixed number-or-text cells such as p_value


#: Parsed schema per table.
SCHEMAS: dict[str, dict[str, Any]] = {t: load_schema(t) for t in SCHEMA_TABLES}
#: All columns per table, in contract order (all but the optional ones must be in the header).
COLUMNS: dict[str, tuple[str, ...]] = {
    t: tuple(SCHEMAS[t]["x-column-order"]) for t in SCHEMA_TABLES
}
#: Columns that may be left out of the header (``x-optional-columns``), in contract order.
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    t: tuple(c for c in COLUMNS[t] if c in SCHEMAS[t].get("x-optional-columns", ()))
    for t in SCHEMA_TABLES
}
#: Columns whose cells must not be empty, in contract order.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    t: tuple(c for c in COLUMNS[t] if c in SCHEMAS[t]["required"]) for t in SCHEMA_TABLES
}
#: pandas dtype of each column of the loaded DataFrames ("str", "Int64" or "float64").
DTYPES: dict[str, dict[str, str]] = {
    t: {c: _dtype(SCHEMAS[t]["properties"][c]) for c in COLUMNS[t]} for t in SCHEMA_TABLES
}
_VALIDATORS = {t: jsonschema.Draft202012Validator(SCHEMAS[t]) for t in SCHEMA_TABLES}


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class Issue:
    """One problem found in an input table.

    Attributes
    ----------
    file : str
        Path of the table as given to :func:`load_tables`.
    row : int or None
        1-based data row (header excluded), or None for a file-level problem.
    column : str or None
        Column name, or None when the problem concerns a whole row or file.
    message : str
        What is wrong.
    severity : {"error", "warning"}
        Errors stop loading; warnings are returned in :attr:`Tables.warnings`.
    study_id : str or None
        The row's study_id when known.
    """

    file: str
    row: int | None
    column: str | None
    message: str
    severity: str = "error"
    study_id: str | None = None

    def __str__(self) -> str:
        if self.row is None:
            return f"{self.file}: {self.message}"
        where = f"{self.file}, row {self.row}"
        if self.study_id:
            where += f" (study_id={self.study_id})"
        if self.column is not None:
            where += f", column '{self.column}'"
        return f"{where}: {self.message}"


def format_issues(issues: list[Issue], subject: str = "the input tables") -> str:
    """Render issues as a header line and one bullet per issue.

    Parameters
    ----------
    issues : list of Issue
        Issues in the order they should be shown.
    subject : str, default "the input tables"
        What the issues are about, for the header (e.g. ``"the config"``).

    Returns
    -------
    str
        ``"N problem(s) in <subject>:"`` followed by one ``"  - <issue>"`` line per
        issue; warnings are marked ``"  - warning: <issue>"``.
    """
    lines = [f"{len(issues)} problem(s) in {subject}:"]
    for issue in issues:
        mark = "warning: " if issue.severity == "warning" else ""
        lines.append(f"  - {mark}{issue}")
    return "\n".join(lines)


class DataError(Exception):
    """The input tables are invalid.

    Parameters
    ----------
    issues : list of Issue
        Every error found, in report order.
    warnings : list of Issue, optional
        Warnings found alongside the errors.
    """

    def __init__(self, issues: list[Issue], warnings: list[Issue] | None = None) -> None:
        self.issues = list(issues)
        self.warnings = list(warnings or [])
        super().__init__(self.issues, self.warnings)  # args that rebuild it, e.g. when pickled

    def __str__(self) -> str:
        return format_issues(self.issues)


@dataclass(frozen=True)
class Tables:
    """The validated input tables.

    Attributes
    ----------
    studies, proportions, survival : pandas.DataFrame
        Contract columns in contract order plus ``source_row`` (see the module docstring for
        dtypes).
    paths : dict of str to pathlib.Path
        Path of each table, keyed by table name.
    warnings : list of Issue
        Non-fatal problems, in report order.
    km_dir : pathlib.Path or None
        Directory of the digitised Kaplan-Meier files named in ``survival.csv`` ``km_file``.
    risk_of_bias : pandas.DataFrame or None
        The optional ``risk_of_bias.csv`` (one row per study x tool x domain), or None
        when it was not given.
    """

    studies: pd.DataFrame
    proportions: pd.DataFrame
    survival: pd.DataFrame
    paths: dict[str, Path]
    warnings: list[Issue] = field(default_factory=list)
    km_dir: Path | None = None
    risk_of_bias: pd.DataFrame | None = None


def parse_p_value(text: str) -> tuple[float, bool]:
    """Parse a validated ``p_value`` cell.

    Parameters
    ----------
    text : str
        ``""``, a number such as ``"0.03"``, or a bound such as ``"<0.001"``.

    Returns
    -------
    value : float
        The number or the bound (NaN for an empty cell).
    is_bound : bool
        True when the text is ``<x`` ("p below x").
    """
    if text == "":
        return math.nan, False
    if text.startswith("<"):
        return float(text[1:].strip()), True
    return float(text), False


# --------------------------------------------------------------------------- working state


@dataclass
class _Row:
    number: int
    text: dict[str, str]
    value: dict[str, Any] = field(default_factory=dict)  # only cells that passed validation

    @property
    def study_id(self) -> str | None:
        return self.text.get("study_id") or None


@dataclass
class _Table:
    name: str
    file: str
    readable: bool = False
    columns: set[str] = field(default_factory=set)  # contract columns usable from the header
    rows: list[_Row] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def add(self, message: str, row: _Row | None = None, column: str | None = None,
            severity: str = "error") -> None:
        self.issues.append(Issue(
            self.file, row.number if row else None, column, message, severity,
            row.study_id if row else None,
        ))


# --------------------------------------------------------------------------- reading


def _read_raw(path: str) -> tuple[pd.DataFrame | None, str | None]:
    """Read a CSV as stripped text cells (header in row 0), or return why it can't be read."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None, "file not found"
    except IsADirectoryError:
        return None, "is a directory, not a CSV file"
    except PermissionError:
        return None, "cannot be read (permission denied)"
    problem = _sniff_format(data)
    if problem:
        return None, problem
    bom = data.startswith(codecs.BOM_UTF8)
    try:
        text = data[3 if bom else 0:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start + (3 if bom else 0)
        line = data[:at].count(b"\n") + 1
        return None, (f"is not valid UTF-8 text (byte {at}, line {line}); "
                      "save it as 'CSV UTF-8'")
    separator = _foreign_separator(text)
    if separator:
        return None, (f"uses {separator} as the column separator; save it as comma-separated "
                      "'CSV UTF-8' (with a decimal point in numbers)")
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, header=None,
                          skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        return None, "file is empty (no header row)"
    except pd.errors.ParserError as exc:
        return None, _parser_message(exc)
    raw = raw.fillna("").apply(lambda col: col.str.strip())
    if raw.empty or (raw.iloc[0] == "").all():
        return None, "file is empty (no header row)"
    return raw, None


def _sniff_format(data: bytes) -> str | None:
    """Name a file format that is not CSV text from its first bytes, or None."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "is UTF-16 text, not UTF-8; save it as 'CSV UTF-8'"
    if data.startswith(b"PK\x03\x04"):
        return ("is a spreadsheet workbook (.xlsx or .ods), not a CSV file; "
                "save the sheet as 'CSV UTF-8'")
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        return "is an Excel 97-2003 workbook (.xls), not a CSV file; save the sheet as 'CSV UTF-8'"
    return None


def _foreign_separator(text: str) -> str | None:
    """``"';'"`` or ``"tabs"`` when the header line has no comma but is split by those."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    if "," in header:
        return None
    if header.count(";") >= 2:
        return "';'"
    if header.count("\t") >= 2:
        return "tabs"
    return None


def _parser_message(exc: Exception) -> str:
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if not found:
        return f"cannot be parsed as CSV: {str(exc).strip()}"
    expected, line, saw = found.groups()
    return (f"line {line} has {saw} fields but the header has {expected} "
            "(quote cells that contain commas)")


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest choice, ignoring case, or ""."""
    lowered = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[match[0]]}'?)" if match else ""


def _map_header(table: _Table, raw: pd.DataFrame) -> dict[str, int]:
    """Check the header; return the position of each usable contract column."""
    names = list(raw.iloc[0])
    known = COLUMNS[table.name]
    positions: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        positions[name].append(i)
    usable: dict[str, int] = {}
    for name, where in positions.items():
        if name == "":
            _check_unnamed(table, raw, where)
        elif name not in known:
            table.add(f"unknown column '{name}'{_suggest(name, known)}", column=name)
        elif len(where) > 1:
            cols = " and ".join(str(i + 1) for i in where)
            table.add(f"duplicated column '{name}' (columns {cols})", column=name)
        else:
            usable[name] = where[0]
    optional = OPTIONAL_COLUMNS.get(table.name, ())
    for name in known:
        if name not in positions and name not in optional:
            table.add(f"missing required column '{name}'", column=name)
    return usable


def _check_unnamed(table: _Table, raw: pd.DataFrame, where: list[int]) -> None:
    # Spreadsheets add trailing unnamed empty columns; only complain when they hold data.
    for i in where:
        if (raw.iloc[1:, i] != "").any():
            table.add(f"column {i + 1} has values but no header name")


def _read_table(name: str, path: str | os.PathLike[str]) -> _Table:
    table = _Table(name, os.fspath(path))
    raw, problem = _read_raw(table.file)
    if raw is None:
        table.add(problem or "cannot be read")
        return table
    usable = _map_header(table, raw)
    table.readable = True
    table.columns = set(usable)
    records = raw.to_numpy(dtype=object).tolist()
    for number, cells in enumerate(records[1:], start=1):
        if all(c == "" for c in cells):
            continue
        text = {col: cells[pos] for col, pos in usable.items()}
        table.rows.append(_Row(number, text))
    return table


# --------------------------------------------------------------------------- cells


_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}([,\u00a0\u202f ]\d{3})+(\.\d+)?$")
_DECIMAL_COMMA_RE = re.compile(r"^([+-]?|<\s*)(\d*),(\d+)$")
_PERCENT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)\s*%$")


def _fix_hint(text: str, prop: dict[str, Any], integer: bool) -> str:
    """A hint for a cell that is not the number its column needs, or ""."""
    if text.lower() in _MISSING_WORDS:
        return " (leave the cell empty when not reported)"
    if _THOUSANDS_RE.match(text) and (integer or "," not in text or "." in text):
        plain = re.sub(r"[,\u00a0\u202f ]", "", text)
        return f" (write numbers without thousands separators: {plain})"
    decimal_comma = _DECIMAL_COMMA_RE.match(text)
    if decimal_comma and not integer:
        return f" (use a decimal point: {text.replace(',', '.')})"
    if _PERCENT_RE.match(text):
        if integer:
            return " (a percentage where a count belongs: enter the number of patients)"
        return f" ({prop['x-hint']})" if "x-hint" in prop else " (write the number without '%')"
    if integer and _NUM_RE.match(text):
        value = float(text)
        if 0 < value < 1:
            return " (a proportion where a count belongs: enter the number of patients)"
        if value.is_integer():
            return f" (write {int(value)})"
    return ""


def _parse_cell(text: str, prop: dict[str, Any]) -> tuple[Any, str | None]:
    """Convert a non-empty cell to the schema type; return (value, problem)."""
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    if "integer" in types:
        if _INT_RE.match(text):
            return int(text), None
        return None, f"'{text}' is not an integer{_fix_hint(text, prop, True)}"
    if "number" in types:
        if _NUM_RE.match(text):
            return float(text), None
        if "string" not in types or _DECIMAL_COMMA_RE.match(text):
            what = "a valid bound" if text.startswith("<") else "a number"
            return None, f"'{text}' is not {what}{_fix_hint(text, prop, False)}"
    return text, None


def _range_message(prop: dict[str, Any], text: str) -> str:
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    if low is not None and high is not None:
        left = "[" if "minimum" in prop else "("
        right = "]" if "maximum" in prop else ")"
        message = f"{text} is outside {left}{low}, {high}{right}"
    elif low is not None:
        message = f"{text} must be {'>=' if 'minimum' in prop else '>'} {low}"
    else:
        message = f"{text} must be {'<=' if 'maximum' in prop else '<'} {high}"
    return f"{message} ({prop['x-hint']})" if "x-hint" in prop else message


def _keyword_message(error: jsonschema.ValidationError, text: str) -> str:
    prop = error.schema
    if error.validator == "pattern":
        expected = prop.get("x-expected", f"a value matching {prop['pattern']}")
        return f"'{text}' is not valid: expected {expected}"
    if error.validator == "enum":
        choices = ", ".join(map(str, prop["enum"]))
        if "x-expected" in prop:  # a vocabulary that depends on another cell (e.g. the tool)
            hint = _suggest(text, [str(c) for c in prop["enum"]])
            return f"'{text}' is not {prop['x-expected']}; one of: {choices}{hint}"
        return f"'{text}' is not one of: {choices}"
    if error.validator in _BOUND_KEYWORDS:
        return _range_message(prop, text)
    return f"'{text}' is invalid: {error.message}"


def _validate_row(table: _Table, row: _Row) -> None:
    """Parse and validate every cell of a row against the schema; keep the good values."""
    props = SCHEMAS[table.name]["properties"]
    instance: dict[str, Any] = {}
    for col, text in row.text.items():
        if text == "":
            continue  # empty = absent, so 'required' reports it
        value, problem = _parse_cell(text, props[col])
        if problem:
            table.add(problem, row, col)
        else:
            instance[col] = value
    bad: set[str] = set()
    handled: set[str] = set()
    for error in _VALIDATORS[table.name].iter_errors(instance):
        keyword = error.validator
        if keyword in ("required", "dependentRequired"):
            if keyword not in handled:  # one error per missing name; report them all once
                handled.add(keyword)
                _report_missing(table, row, keyword, error.validator_value, instance)
        elif error.path:
            col = str(error.path[0])
            bad.add(col)
            table.add(_keyword_message(error, row.text[col]), row, col)
    row.value = {c: v for c, v in instance.items() if c not in bad}


def _report_missing(table: _Table, row: _Row, keyword: str, rule: Any,
                    instance: dict[str, Any]) -> None:
    if keyword == "required":
        for col in rule:
            if row.text.get(col) == "":  # a missing column or a bad value is reported already
                table.add("required value is empty", row, col)
        return
    because: dict[str, list[str]] = defaultdict(list)
    optional = OPTIONAL_COLUMNS.get(table.name, ())
    for given, needs in rule.items():
        if given in instance:
            for col in needs:
                # a left-out optional column is empty; a left-out contract column is
                # reported already ("missing required column")
                if row.text.get(col, "" if col in optional else None) == "":
                    because[col].append(given)
    for col, givens in because.items():
        empty = "empty" if col in row.text else "empty (the column is not in the header)"
        table.add(f"{empty}, but required because {' and '.join(givens)} "
                  f"{'is' if len(givens) == 1 else 'are'} given", row, col)


# --------------------------------------------------------------------------- table rules


def _check_unique(table: _Table) -> None:
    """Report rows that repeat the table's unique key, naming the first row."""
    key = SCHEMAS[table.name]["x-unique-key"]
    required = REQUIRED_COLUMNS[table.name]
    if not set(key) <= table.columns:
        return
    first: dict[tuple[str, ...], int] = {}
    for row in table.rows:
        if any(row.text[c] == "" for c in key if c in required):
            continue  # an empty key cell is reported as such
        values = tuple(row.text[c] for c in key)
        if values not in first:
            first[values] = row.number
            continue
        same = ", ".join(f"{c}='{v}'" for c, v in zip(key, values))
        column = key[0] if len(key) == 1 else None
        table.add(f"duplicate of row {first[values]} (same {same})", row, column)


def _check_same_cohort(table: _Table) -> None:
    """Two study rows with the same DOI or registration are one cohort entered twice."""
    for col, tokens in (("doi", _doi_tokens), ("registration", _registration_tokens)):
        seen: dict[str, _Row] = {}
        for row in table.rows:
            for token in tokens(row.text.get(col, "")):
                other = seen.setdefault(token.upper(), row)
                if other is not row:
                    table.add(f"{col} '{token}' is also on row {other.number} "
                              f"(study_id={other.study_id}); one cohort must be one study row",
                              row, col)


def _doi_tokens(text: str) -> list[str]:
    return [text] if text else []


def _registration_tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[;,\s]+", text) if _REG_TOKEN_RE.match(t)]


def _check_proportion_rows(table: _Table) -> None:
    for row in table.rows:
        events, total = row.value.get("events"), row.value.get("total")
        if events is None or total is None:
            continue
        if events > total:
            table.add(f"{row.text['events']} events > total {row.text['total']}", row, "events")
        elif events == 1 and total >= 20:
            table.add(f"events {row.text['events']} with total {row.text['total']}: possibly a "
                      "percentage or proportion typed as a count", row, "events", "warning")


def _check_survival_rows(table: _Table) -> None:
    for row in table.rows:
        for arm in ("exp", "ctrl"):
            _check_not_greater(table, row, f"events_{arm}", f"n_{arm}")
            _check_median_ci(table, row, arm)
        _check_hr_ci(table, row)
        _check_survival_options(table, row)


def _check_median_ci(table: _Table, row: _Row, arm: str) -> None:
    median, low, high = (row.value.get(c) for c in (
        f"median_{arm}", f"median_{arm}_lower", f"median_{arm}_upper"))
    if low is None or high is None:
        return
    lo_col, hi_col = f"median_{arm}_lower", f"median_{arm}_upper"
    if low >= high:
        table.add(f"{lo_col} {row.text[lo_col]} >= {hi_col} {row.text[hi_col]}", row, lo_col)
    elif median is not None and not low <= median <= high:
        table.add(f"median_{arm} {row.text[f'median_{arm}']} outside its CI "
                  f"{row.text[lo_col]}-{row.text[hi_col]}", row, f"median_{arm}")


def _check_survival_options(table: _Table, row: _Row) -> None:
    """Rules between the optional survival columns that a schema cannot express."""
    value, text = row.value, row.text
    if "v" in value and "oe" not in value and "hr" not in value and \
            text.get("oe", "") == "" and text.get("hr", "") == "":
        table.add(f"v {text['v']} given without oe or hr: the log-rank variance gives a log "
                  "HR only with O-E (or with the reported HR)", row, "v")
    total = value.get("events_total")
    if total is not None:
        n_exp, n_ctrl = value.get("n_exp"), value.get("n_ctrl")
        if n_exp is not None and n_ctrl is not None and total > n_exp + n_ctrl:
            table.add(f"events_total {text['events_total']} > n_exp + n_ctrl = "
                      f"{n_exp + n_ctrl}", row, "events_total")
        e_exp, e_ctrl = value.get("events_exp"), value.get("events_ctrl")
        if e_exp is not None and e_ctrl is not None and total != e_exp + e_ctrl:
            table.add(f"events_total {text['events_total']} differs from events_exp + "
                      f"events_ctrl = {e_exp + e_ctrl}; the events per group are used",
                      row, "events_total", "warning")
    if value.get("p_sided") == 1 and isinstance(value.get("p_value"), float) \
            and value["p_value"] > 0.5:
        table.add(f"a one-sided p-value lies in (0, 0.5], got {text['p_value']} (above 0.5 "
                  "the effect lies the other way; give the two-sided p with p_sided 2)",
                  row, "p_value")


def _check_not_greater(table: _Table, row: _Row, small: str, large: str) -> None:
    a, b = row.value.get(small), row.value.get(large)
    if a is not None and b is not None and a > b:
        table.add(f"{small} {row.text[small]} > {large} {row.text[large]}", row, small)


def _check_hr_ci(table: _Table, row: _Row) -> None:
    hr, low, high = (row.value.get(c) for c in ("hr", "hr_lower", "hr_upper"))
    if low is None or high is None:
        return
    if low > high:
        table.add(f"hr_lower {row.text['hr_lower']} > hr_upper {row.text['hr_upper']}",
                  row, "hr_lower")
        return
    if hr is None:
        return
    ci = f"{row.text['hr_lower']}-{row.text['hr_upper']}"
    if not low <= hr <= high:
        table.add(f"HR {row.text['hr']} outside its CI {ci}", row, "hr")
    elif high > low and _ci_asymmetry(row.text["hr"], row.text["hr_lower"],
                                      row.text["hr_upper"]) > 0:
        centre = math.exp((math.log(low) + math.log(high)) / 2)
        table.add(f"CI {ci} is not symmetric around HR {row.text['hr']} on the log scale "
                  f"(its geometric midpoint is {centre:.2f}) beyond what rounding explains; "
                  "check the numbers", row, "hr", "warning")


def _half_unit(text: str) -> float:
    """Half a unit of the last reported decimal of a number's text ('0.51' -> 0.005)."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2]) - int(exponent or 0)
    return 0.5 * 10.0 ** (-decimals)


def _ci_asymmetry(hr: str, lower: str, upper: str) -> float:
    """Smallest achievable ``|ln HR - m| - 0.1 w`` over the rounding box; > 0 means asymmetric.

    With ``m`` the log midpoint and ``w`` the log half-width of the CI. When HR sits above the
    midpoint the most symmetric reading rounds HR down and both bounds up (and vice versa); if
    even that reading stays beyond the tolerance, no reading within rounding is symmetric.
    """
    h, lo, up = float(hr), float(lower), float(upper)
    eh, el, eu = _half_unit(hr), _half_unit(lower), _half_unit(upper)
    tiny = 1e-300  # keeps logs finite if rounding reaches zero
    if math.log(h) >= (math.log(lo) + math.log(up)) / 2:
        a, b, c = max(h - eh, tiny), lo + el, up + eu
        return math.log(a) - 0.45 * math.log(b) - 0.55 * math.log(c)
    a, b, c = h + eh, max(lo - el, tiny), max(up - eu, tiny)
    return -math.log(a) + 0.55 * math.log(b) + 0.45 * math.log(c)


def _check_references(table: _Table, studies: _Table) -> None:
    """Results rows must name a known, published study."""
    if not studies.readable or "study_id" not in studies.columns or not studies.rows:
        return  # the studies problem is reported already; avoid one error per results row
    known: dict[str, _Row] = {}
    for row in studies.rows:
        if row.study_id:  # even a malformed id: its row already carries the error
            known.setdefault(row.study_id, row)
    studies_name = Path(studies.file).name
    for row in table.rows:
        study_id = row.value.get("study_id")
        if study_id is None:
            continue
        if study_id not in known:
            table.add(f"'{study_id}' is not in {studies_name}{_suggest(study_id, list(known))}",
                      row, "study_id")
        elif known[study_id].value.get("status") == "ongoing":
            table.add(f"'{study_id}' has status 'ongoing' in {studies_name}: ongoing studies "
                      "must have no results rows", row, "study_id")


def _check_risk_of_bias(table: _Table, studies: _Table) -> None:
    """Rules across the rows of risk_of_bias.csv; the vocabularies are in its schema.

    Each row names a known, published study; Newcastle-Ottawa rows have stars whose AHRQ
    rating is the judgement (other tools have none); each study x tool has every domain
    of the tool and an Overall row whose judgement is at least as severe as its worst
    domain (for Newcastle-Ottawa: the AHRQ rating of the stars, which add up).
    """
    from . import rob  # no metapool imports of its own

    skip: set[str | None] = set()  # studies whose rows already carry an error of this kind
    if studies.readable and "study_id" in studies.columns and studies.rows:
        known = {r.study_id: r for r in reversed(studies.rows) if r.study_id}
        name = Path(studies.file).name
        for row in table.rows:
            sid = row.value.get("study_id")
            if sid is not None and sid not in known:
                table.add(f"'{sid}' is not in {name}{_suggest(sid, list(known))}",
                          row, "study_id")
                # a mistyped id takes its rows from the study it was meant to be
                skip.update([sid, *difflib.get_close_matches(sid, list(known), n=1)])
            elif sid is not None and known[sid].value.get("status") == "ongoing":
                table.add(f"'{sid}' has status 'ongoing' in {name}: risk of bias is judged on "
                          "published results, so ongoing studies have no rows here",
                          row, "study_id")
                skip.add(sid)
    nos = "Newcastle-Ottawa"
    groups: dict[tuple[str, str], list[_Row]] = defaultdict(list)
    broken: set[tuple[str, str]] = set()
    for row in table.rows:
        if row.value.get("tool") is None:  # an unknown tool: its rows' domains are unknown
            skip.add(row.study_id)
    for row in table.rows:
        tool, domain, judgement = (row.value.get(c) for c in ("tool", "domain", "judgement"))
        stars = row.value.get("stars")
        if tool == nos and row.text.get("stars") == "" and "stars" in table.columns:
            table.add("empty, but Newcastle-Ottawa rows need the stars of the domain "
                      "(the Overall row: their sum)", row, "stars")
        elif tool is not None and tool != nos and row.text.get("stars", "") != "":
            table.add(f"stars are given only for Newcastle-Ottawa rows; leave the cell empty "
                      f"for {tool}", row, "stars")
        elif (tool == nos and domain not in (None, rob.OVERALL) and stars is not None
              and judgement is not None):
            expected = rob.nos_domain_rating(domain, stars)
            if judgement != expected:
                table.add(f"'{judgement}' does not match {stars} {domain} star(s): the AHRQ "
                          f"thresholds give '{expected}'", row, "judgement")
        if row.value.get("study_id") is None or tool is None:
            continue
        key = (row.value["study_id"], tool)
        groups[key].append(row)
        if (domain is None or judgement is None or (tool == nos and stars is None)
                or any(r.value.get("domain") == domain for r in groups[key][:-1])):
            broken.add(key)  # the cell's own error (or the duplicate) is reported already
    for key, rows in groups.items():
        if key not in broken and key[0] not in skip:
            _check_rob_study(table, rows, key[1])


def _check_rob_study(table: _Table, rows: list[_Row], tool: str) -> None:
    """Domains complete and the Overall judgement consistent, for one study x tool."""
    from . import rob

    by_domain = {r.value["domain"]: r for r in rows}
    missing = [d for d in rob.TOOLS[tool]["domains"] if d not in by_domain]
    if missing:
        names = ", ".join(f"'{d}'" for d in missing)
        table.add(f"tool '{tool}' has no row for {names}; each assessed study needs one row "
                  f"per domain of its tool, including one '{rob.OVERALL}' row", rows[0], "domain")
        return
    overall = by_domain.pop(rob.OVERALL)
    judgement = overall.value["judgement"]
    if tool == "Newcastle-Ottawa":
        stars = {d: r.value["stars"] for d, r in by_domain.items()}
        given = ", ".join(f"{d} {n}" for d, n in stars.items())
        expected = rob.nos_overall(stars["selection"], stars["comparability"], stars["outcome"])
        if judgement != expected:
            table.add(f"Overall '{judgement}' does not match the stars ({given}): the AHRQ "
                      f"thresholds give '{expected}'", overall, "judgement")
        total = sum(stars.values())
        if overall.value["stars"] != total:
            table.add(f"Overall stars {overall.value['stars']} is not the sum of the domain "
                      f"stars ({' + '.join(map(str, stars.values()))} = {total})",
                      overall, "stars")
        return
    rank = rob.severity(tool, judgement)
    worst_domain, worst = None, -1
    for domain, row in by_domain.items():
        level = rob.severity(tool, row.value["judgement"])
        if level is not None and level > worst:
            worst_domain, worst = domain, level
    unknown = [d for d, r in by_domain.items() if r.value["judgement"] == "no information"]
    if rank is not None and rank < worst:
        worst_judgement = by_domain[worst_domain].value["judgement"]
        table.add(f"Overall '{judgement}' is less severe than {worst_domain} "
                  f"('{worst_judgement}'); the overall judgement is at least the most severe "
                  "domain judgement", overall, "judgement")
    elif rank == 0 and unknown:
        table.add(f"Overall '{judgement}' needs every domain 'low', but {unknown[0]} is 'no "
                  "information'", overall, "judgement")
    elif rank is None and worst >= rob.severity(tool, "serious"):
        worst_judgement = by_domain[worst_domain].value["judgement"]
        table.add(f"Overall 'no information' although {worst_domain} is '{worst_judgement}'; "
                  f"the overall judgement is at least '{worst_judgement}'", overall, "judgement")


# --------------------------------------------------------------------------- assembly


def _frame(table: _Table) -> pd.DataFrame:
    """Build the typed DataFrame of a table that has no errors."""
    data: dict[str, Any] = {}
    for col in COLUMNS[table.name]:
        dtype = DTYPES[table.name][col]
        if dtype == "str":  # .get: an optional column left out of the header is empty
            data[col] = pd.Series([r.text.get(col, "") for r in table.rows], dtype="str")
        elif dtype == "Int64":
            data[col] = pd.array([r.value.get(col, pd.NA) for r in table.rows], dtype="Int64")
        else:
            data[col] = pd.Series([r.value.get(col, math.nan) for r in table.rows],
                                  dtype="float64")
    data["source_row"] = pd.Series([r.number for r in table.rows], dtype="int64")
    return pd.DataFrame(data, index=pd.RangeIndex(len(table.rows)))


def _sorted_issues(table: _Table) -> list[Issue]:
    order = {c: i for i, c in enumerate(COLUMNS[table.name])}

    def key(item: tuple[int, Issue]) -> tuple[int, int, int, int]:
        seq, issue = item
        if issue.column is None:  # whole-row problems first, whole-file problems last
            column = -1 if issue.row is not None else len(order) + 1
        else:
            column = order.get(issue.column, len(order))
        return (issue.row is not None, issue.row or 0, column, seq)

    return [issue for _, issue in sorted(enumerate(table.issues), key=key)]


def _validate(studies: _Table, proportions: _Table, survival: _Table) -> None:
    if studies.readable and not studies.rows:
        studies.add("has no study rows below the header; add one row per study")
    for table in (studies, proportions, survival):
        for row in table.rows:
            _validate_row(table, row)
        _check_unique(table)
    _check_same_cohort(studies)
    _check_proportion_rows(proportions)
    _check_survival_rows(survival)
    _check_references(proportions, studies)
    _check_references(survival, studies)


def default_km_dir(survival: str | os.PathLike[str]) -> Path:
    """The KM directory used when none is given: ``km`` next to ``survival.csv``."""
    return Path(survival).parent / "km"


def _check_km_files(table: _Table, km_dir: Path) -> None:
    """Every ``km_file`` names a readable pair ``<stem>.curve.csv`` + ``<stem>.risk.csv``."""
    if all(row.value.get("km_file") is None for row in table.rows):
        return  # without curves, no need to import km (and scipy) at all
    from .km import km_paths, read_km  # km imports this module; imported when needed

    checked: dict[str, str | None] = {}
    for row in table.rows:
        stem = row.value.get("km_file")
        if stem is None:
            continue
        if stem not in checked:
            problem = None
            bare = re.sub(r"\.(curve|risk)\.csv$", "", stem)
            if bare != stem:
                problem = f"'{stem}': write the stem only, '{bare}'"
            else:
                curve, risk = km_paths(km_dir, stem)
                gone = [os.fspath(p) for p in (curve, risk) if not p.is_file()]
                if gone:
                    problem = (f"'{stem}': {' and '.join(gone)} not found (KM directory "
                               f"{os.fspath(km_dir)}, config key tables.km_dir)")
                else:
                    try:
                        read_km(curve, risk)
                    except ValueError as exc:
                        problem = f"'{stem}': {exc}"
            checked[stem] = problem
        if checked[stem]:
            table.add(checked[stem], row, "km_file")


def check_tables(
    studies: str | os.PathLike[str],
    proportions: str | os.PathLike[str],
    survival: str | os.PathLike[str],
    *,
    km_dir: str | os.PathLike[str] | None = None,
    risk_of_bias: str | os.PathLike[str] | None = None,
) -> tuple[Tables | None, list[Issue]]:
    """Read and validate the three input tables without raising.

    Parameters
    ----------
    studies, proportions, survival : str or os.PathLike
        Paths of ``studies.csv``, ``proportions.csv`` and ``survival.csv``.
    km_dir : str or os.PathLike, optional
        Directory of the digitised Kaplan-Meier files named in ``km_file``; default
        :func:`default_km_dir` (``km`` next to ``survival.csv``).
    risk_of_bias : str or os.PathLike, optional
        Path of the optional ``risk_of_bias.csv`` (config ``tables.risk_of_bias``); its
        problems are listed after those of the other tables.

    Returns
    -------
    tables : Tables or None
        The loaded tables, or None when there is at least one error.
    issues : list of Issue
        Every error and warning, in report order.
    """
    paths = {"studies": studies, "proportions": proportions, "survival": survival}
    tables = {name: _read_table(name, path) for name, path in paths.items()}
    _validate(tables["studies"], tables["proportions"], tables["survival"])
    km = Path(km_dir) if km_dir is not None else default_km_dir(survival)
    _check_km_files(tables["survival"], km)
    if risk_of_bias is not None:
        paths["risk_of_bias"] = risk_of_bias
        tables["risk_of_bias"] = rob_table = _read_table("risk_of_bias", risk_of_bias)
        for row in rob_table.rows:
            _validate_row(rob_table, row)
        _check_unique(rob_table)
        _check_risk_of_bias(rob_table, tables["studies"])
    issues = [i for name in tables for i in _sorted_issues(tables[name])]
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        return None, issues
    warnings = [i for i in issues if i.severity == "warning"]
    frames = {name: _frame(tables[name]) for name in TABLES}
    rob_frame = _frame(tables["risk_of_bias"]) if "risk_of_bias" in tables else None
    return Tables(**frames, paths={k: Path(v) for k, v in paths.items()},
                  warnings=warnings, km_dir=km, risk_of_bias=rob_frame), issues


def load_tables(
    studies: str | os.PathLike[str],
    proportions: str | os.PathLike[str],
    survival: str | os.PathLike[str],
    *,
    km_dir: str | os.PathLike[str] | None = None,
    risk_of_bias: str | os.PathLike[str] | None = None,
) -> Tables:
    """Read and validate the three input tables (and the optional risk-of-bias table).

    Parameters
    ----------
    studies, proportions, survival : str or os.PathLike
        Paths of ``studies.csv``, ``proportions.csv`` and ``survival.csv``.
    km_dir : str or os.PathLike, optional
        Directory of the digitised Kaplan-Meier files named in ``survival.csv``
        ``km_file`` (config ``tables.km_dir``); default: ``km`` next to ``survival.csv``.
    risk_of_bias : str or os.PathLike, optional
        Path of ``risk_of_bias.csv`` (config ``tables.risk_of_bias``); without it
        :attr:`Tables.risk_of_bias` is None.

    Returns
    -------
    Tables
        Typed DataFrames (see the module docstring), their paths and any warnings.

    Raises
    ------
    DataError
        Listing every error in every table when any is found.
    """
    tables, issues = check_tables(studies, proportions, survival, km_dir=km_dir,
                                  risk_of_bias=risk_of_bias)
    if tables is None:
        errors = [i for i in issues if i.severity == "error"]
        warnings = [i for i in issues if i.severity == "warning"]
        raise DataError(errors, warnings)
    return tables


# --------------------------------------------------------------------------- config
#
# The config is validated against ``workflow/schemas/config.schema.yaml`` by the workflow;
# these helpers turn the schema's findings into messages that name the key path and the fix,
# and check the YAML file itself before Snakemake loads it.

_JSON_TYPE_WORDS = {
    "string": "text", "number": "a number", "integer": "a whole number",
    "boolean": "true or false", "array": "a list", "object": "a mapping (key: value)",
    "null": "nothing",
}
_PLAIN_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def config_key_path(config: Any, path: list[Any] | tuple[Any, ...]) -> str:
    """Render a key path as ``analyses.orr.level`` (``top level`` for the empty path).

    List positions are shown as ``[i]`` and keys that are not plain words are quoted, so
    ``['analyses', '../x']`` is ``analyses.'../x'``.
    """
    parts: list[str] = []
    node = config
    for step in path:
        if isinstance(node, list) and isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            text = str(step)
            shown = text if _PLAIN_KEY_RE.match(text) else "'" + text.replace("'", "\\'") + "'"
            parts.append(("." if parts else "") + shown)
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts) or "top level"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text '{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _type_hint(expected: list[str], value: Any) -> str:
    if "array" in expected and isinstance(value, str):
        return f" (write [{value}])"
    if "string" in expected and isinstance(value, bool):
        return (" (YAML reads unquoted yes, no, true, false, on and off as true or false; "
                "quote the text, e.g. \"no\")")
    if "string" in expected and isinstance(value, (int, float)):
        return f" (quote it: \"{value}\")"
    if "number" in expected and isinstance(value, str) and _NUM_RE.match(value.strip()):
        return f" (write it without quotes: {value.strip()})"
    return ""


def _position(config: Any, path: list[Any]) -> tuple[int, ...]:
    """Where a key path sits in the config, for reporting problems in file order."""
    out: list[int] = []
    node = config
    for step in path:
        if isinstance(node, dict):
            keys = list(node)
            out.append(keys.index(step) if step in keys else len(keys))
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int):
            out.append(step)
            node = node[step] if step < len(node) else None
        else:
            out.append(0)
            node = None
    return tuple(out)


def _schema_issues(error: jsonschema.ValidationError) -> list[tuple[list[Any], str]]:
    """(key path, message) pairs for one schema validation error."""
    path = list(error.absolute_path)
    value, schema, keyword = error.instance, error.schema, error.validator
    if "propertyNames" in error.relative_schema_path:
        expected = schema.get("x-expected", f"a name matching {schema.get('pattern')}")
        return [(path + [value], f"invalid name: {expected}")]
    if keyword == "additionalProperties" and schema.get("additionalProperties") is False:
        allowed = list(schema.get("properties", {}))
        out = []
        for key in value:
            if key in allowed:
                continue
            hint = _suggest(str(key), allowed) or f"; allowed: {', '.join(allowed)}"
            out.append((path + [key], f"unknown key{hint}"))
        return out
    if keyword == "required":
        return [(path, f"missing required key '{key}'")
                for key in error.validator_value if key not in value]
    if keyword == "type":
        expected = error.validator_value
        expected = expected if isinstance(expected, list) else [expected]
        words = " or ".join(_JSON_TYPE_WORDS.get(t, t) for t in expected)
        return [(path, f"expected {words}, got {_describe(value)}{_type_hint(expected, value)}")]
    if keyword == "enum":
        choices = [str(c) for c in error.validator_value]
        shown = f"'{value}'" if isinstance(value, str) else _describe(value)
        hint = _suggest(value, choices) if isinstance(value, str) else ""
        return [(path, f"{shown} is not one of: {', '.join(choices)}{hint}")]
    if keyword in _BOUND_KEYWORDS:
        return [(path, _range_message(schema, f"{value!r}"))]
    if keyword == "minLength":
        return [(path, "must not be empty")]
    if keyword == "minItems":
        return [(path, f"must list at least {error.validator_value} item(s)")]
    if keyword == "uniqueItems":
        return [(path, "lists the same value twice")]
    if keyword == "minProperties":
        return [(path, "is empty; add at least one entry")]
    if keyword == "pattern":
        expected = schema.get("x-expected", f"a value matching {schema.get('pattern')}")
        return [(path, f"'{value}' is not valid: expected {expected}")]
    return [(path, error.message)]


def check_config(config: Any, schema: dict[str, Any], file: str) -> list[Issue]:
    """Validate a loaded config against its JSON schema without raising.

    Parameters
    ----------
    config : Any
        The config as loaded from YAML (before defaults are filled in).
    schema : dict
        The parsed ``config.schema.yaml``.
    file : str
        Name of the config file(s), for the messages.

    Returns
    -------
    list of Issue
        One issue per problem, in the order of the keys in the config; each message starts
        with the key path (``analyses.orr.level: 1.5 is outside (0, 1) ...``).
    """
    found: list[tuple[tuple[int, ...], int, list[Any], str]] = []
    seen: set[tuple[str, str]] = set()
    for error in jsonschema.Draft202012Validator(schema).iter_errors(config):
        for path, message in _schema_issues(error):
            shown = config_key_path(config, path)
            if (shown, message) not in seen:
                seen.add((shown, message))
                found.append((_position(config, path), len(found), path, message))
    analyses = config.get("analyses") if isinstance(config, dict) else None
    for name in analyses if isinstance(analyses, dict) else []:
        if not isinstance(name, str):
            message = (f"analysis names must be text, but YAML reads this name as "
                       f"{_describe(name)}; quote it or start it with a letter")
            found.append((_position(config, ["analyses", name]), -1, ["analyses", name],
                          message))
    found.sort(key=lambda item: item[:2])
    return [Issue(file, None, None, f"{config_key_path(config, path)}: {message}")
            for *_, path, message in found]


class _DuplicateKeys:
    """Mixin for a safe YAML loader: records keys given twice in one mapping."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[Any, int, int, int]] = []  # key, line, column, first line

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                line = first.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key; SafeLoader reports it
                continue
            if line != key_node.start_mark.line + 1:
                self.duplicates.append((key, key_node.start_mark.line + 1,
                                        key_node.start_mark.column + 1, line))
        return super().construct_mapping(node, deep)


class _PlainLoader(_DuplicateKeys, yaml.SafeLoader):
    """The pure-Python safe loader (its error messages are the ones reported)."""


class _FastPlainLoader(_DuplicateKeys, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The same on libyaml (much faster on a config of many analyses)."""


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    tag = re.search(r"tag '(tag:yaml\.org,2002:)?([^']*)'", problem)
    if isinstance(exc, yaml.constructor.ConstructorError) and tag:
        name = ("!!" if tag.group(1) else "") + tag.group(2)
        return (f"{where}the tag '{name}' is not allowed: the config holds plain data only "
                "(text, numbers, true/false, lists and mappings)")
    hint = ""
    if "\\t" in problem or "'\\t'" in problem or "tab" in problem:
        hint = " (indent with spaces, not tabs)"
    return f"{where}not valid YAML: {problem}{hint}"


def check_config_file(path: str | os.PathLike[str]) -> list[Issue]:
    """Check that a config file is plain YAML data before Snakemake loads it.

    Snakemake reads config files with YTE, which evaluates Python expressions in files
    that set ``__use_yte__: true``, keeps only the last of two equal keys, and reports a
    syntax error without its line. This reads the file with a safe loader first.

    Parameters
    ----------
    path : str or os.PathLike
        The config file; a missing file gives no issue (Snakemake reports it).

    Returns
    -------
    list of Issue
        Not UTF-8, not valid YAML (with line and column), a tag that would build Python
        objects, a template switch, keys given twice, or a top level that is not a mapping.
    """
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            data = fh.read()
    except OSError:
        return []
    bom = data.startswith(codecs.BOM_UTF8)
    try:
        text = data[3 if bom else 0:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start + (3 if bom else 0)
        line = data[:at].count(b"\n") + 1
        return [Issue(file, None, None, f"is not valid UTF-8 text (byte {at}, line {line}); "
                                        "save it as UTF-8")]
    loader = _FastPlainLoader(text)
    try:
        config = loader.get_single_data()
    except yaml.YAMLError:
        # read again with the pure-Python parser, whose messages are the documented ones
        loader.dispose()
        loader = _PlainLoader(text)
        try:
            config = loader.get_single_data()
        except yaml.YAMLError as exc:
            return [Issue(file, None, None, _yaml_message(exc))]
    finally:
        loader.dispose()
    issues = [Issue(file, None, None, f"line {line}, column {column}: key '{key}' is given "
                    f"twice in one mapping (first on line {first}); YAML would silently keep "
                    "only the last one")
              for key, line, column, first in loader.duplicates]
    if config is None:
        issues.append(Issue(file, None, None, "is empty: the config needs at least the key "
                                              "'analyses'"))
    elif not isinstance(config, dict):
        issues.append(Issue(file, None, None, f"the top level must be a mapping of keys "
                            f"(tables, report, defaults, analyses), not {_describe(config)}"))
    elif "__use_yte__" in config:
        found = re.search(r"^__use_yte__\s*:", text, flags=re.MULTILINE)
        line = text[:found.start()].count("\n") + 1 if found else 0
        issues.append(Issue(file, None, None, f"line {line}: '__use_yte__' (YAML templates that "
                            "run Python code) is not allowed: the config is plain data"))
    return issues
