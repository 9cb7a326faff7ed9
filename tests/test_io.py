"""Tests for metapool.io: reading and validating the input tables."""

from __future__ import annotations

import copy
import csv
import io
import pickle
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from metapool import io as mio
from metapool.io import DataError, Issue, Tables, check_tables, format_issues, load_tables

FIXTURES = Path(__file__).parent / "fixtures" / "io"
RAW = "data/raw"  # tests chdir into tmp_path so messages show short relative paths
S, P, V = f"{RAW}/studies.csv", f"{RAW}/proportions.csv", f"{RAW}/survival.csv"


def _read_fixture(table: str) -> list[dict[str, str]]:
    with open(FIXTURES / "good" / f"{table}.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


GOOD = {t: _read_fixture(t) for t in mio.TABLES}


def good() -> dict[str, list[dict[str, str]]]:
    """A fresh, editable copy of the good tables (rows as dicts)."""
    return copy.deepcopy(GOOD)


def _csv_text(rows: list[dict[str, str]], header: list[str] | None = None) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = header or list(rows[0])
    writer.writerow(header)
    writer.writerows([[r.get(c, "") for c in header] for r in rows])
    return buf.getvalue()


def write(root: Path, data: dict, raw: dict[str, str | bytes] | None = None) -> list[str]:
    """Write the tables under root/data/raw; ``raw`` overrides a table with literal content."""
    (root / RAW).mkdir(parents=True, exist_ok=True)
    for table, rows in data.items():
        (root / RAW / f"{table}.csv").write_text(_csv_text(rows), encoding="utf-8")
    for table, content in (raw or {}).items():
        target = root / RAW / f"{table}.csv"
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return [S, P, V]


def messages(issues: list[Issue], severity: str = "error") -> list[str]:
    return [str(i) for i in issues if i.severity == severity]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def errors_for(root: Path, data: dict, raw: dict | None = None) -> list[str]:
    _, issues = check_tables(*write(root, data, raw))
    return messages(issues)


# --------------------------------------------------------------------------- schemas, constants


def test_schemas_are_valid_and_describe_every_column() -> None:
    for table in mio.TABLES:
        schema = mio.SCHEMAS[table]
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["x-column-order"] == list(schema["properties"])
        assert all(p.get("description") for p in schema["properties"].values())


def test_constants_derived_from_schemas() -> None:
    assert mio.COLUMNS["proportions"] == (
        "study_id", "outcome", "arm", "events", "total", "timepoint", "criteria", "source",
        "derived", "derivation",
    )
    assert mio.REQUIRED_COLUMNS["studies"] == (
        "study_id", "title", "design", "cancer", "intervention", "status",
    )
    assert mio.REQUIRED_COLUMNS["survival"] == ("study_id", "outcome", "comparison", "source")
    assert mio.DTYPES["survival"]["p_value"] == "str"
    assert mio.DTYPES["survival"]["n_exp"] == "Int64"
    assert mio.DTYPES["survival"]["hr"] == "float64"


# --------------------------------------------------------------------------- good input


def test_good_fixture_loads_with_dtypes_and_source_row() -> None:
    tables = load_tables(*(FIXTURES / "good" / f"{t}.csv" for t in mio.TABLES))
    assert isinstance(tables, Tables)
    assert tables.warnings == []
    assert tables.paths["survival"] == FIXTURES / "good" / "survival.csv"
    for table in mio.TABLES:
        frame = getattr(tables, table)
        assert list(frame.columns) == [*mio.COLUMNS[table], "source_row"]
        for col, dtype in mio.DTYPES[table].items():
            assert frame[col].dtype == dtype, (table, col)
        assert frame["source_row"].dtype == "int64"
        assert frame["source_row"].tolist() == list(range(1, len(frame) + 1))
    studies, survival = tables.studies, tables.survival
    assert studies.loc[0, "title"] == "Drug X in advanced HCC, a phase 2 trial"
    assert studies.loc[0, "comparator"] == ""  # empty text is "", never NaN
    assert studies["n_total"].isna().tolist() == [False, False, True]
    assert studies.loc[1, "year"] == 2020
    assert survival["p_value"].tolist() == ["0.03", "<0.001", "", ""]
    assert survival.loc[0, "median_exp"] == 12.5
    assert survival["events_exp"].isna().tolist() == [False, True, True, True]
    assert survival.loc[3, "adjusted"] == ""
    assert tables.proportions.loc[2, "source"] == 'Text: "ORR was 30%"'


def test_bom_crlf_and_whitespace(root: Path) -> None:
    data = good()
    text = _csv_text(data["studies"]).replace("study_id,author", " study_id , author")
    text = text.replace("Tang2025,Tang", "  Tang2025 ,\tTang ")
    raw = {"studies": ("\ufeff" + text).replace("\n", "\r\n").encode("utf-8")}
    tables = load_tables(*write(root, data, raw))
    assert tables.studies.loc[0, "study_id"] == "Tang2025"
    assert tables.studies.loc[0, "author"] == "Tang"
    assert list(tables.studies.columns)[:2] == ["study_id", "author"]


def test_blank_rows_are_skipped_and_rows_keep_their_numbers(root: Path) -> None:
    text = _csv_text(GOOD["proportions"]).replace("\nLee2020", "\n\n,,,,,,,,,\nLee2020", 1)
    tables = load_tables(*write(root, good(), {"proportions": text}))
    assert tables.proportions["source_row"].tolist() == [1, 4, 5]


def test_columns_in_any_order_and_trailing_empty_columns(root: Path) -> None:
    rows = good()["proportions"]
    header = list(reversed(mio.COLUMNS["proportions"])) + [""]
    tables = load_tables(*write(root, good(), {"proportions": _csv_text(rows, header)}))
    assert list(tables.proportions.columns) == [*mio.COLUMNS["proportions"], "source_row"]
    assert tables.proportions.loc[0, "events"] == 20


def test_header_only_tables_give_empty_typed_frames(root: Path) -> None:
    header = ",".join(mio.COLUMNS["survival"]) + "\n"
    tables = load_tables(*write(root, good(), {"survival": header}))
    assert len(tables.survival) == 0
    assert tables.survival["hr"].dtype == "float64"


# --------------------------------------------------------------------------- error kinds

def _set(table: str, row: int, **cells: str):
    def edit(data):
        data[table][row - 1].update(cells)
    return edit


def _append(table: str, **cells: str):
    def edit(data):
        new = dict.fromkeys(data[table][0], "")
        new.update(cells)
        data[table].append(new)
    return edit


STUDY4 = dict(study_id="Kim2021", title="T", design="cohort", cancer="HCC", intervention="X",
              status="published")

CELL_CASES = [
    ("events_gt_total", _set("proportions", 1, events="50", total="45"),
     f"{P}, row 1 (study_id=Tang2025), column 'events': 50 events > total 45"),
    ("not_integer", _set("proportions", 2, events="4o"),
     f"{P}, row 2 (study_id=Lee2020), column 'events': '4o' is not an integer"),
    ("decimal_count", _set("proportions", 2, total="12.5"),
     f"{P}, row 2 (study_id=Lee2020), column 'total': '12.5' is not an integer"),
    ("placeholder_count", _set("survival", 1, n_exp="NA"),
     f"{V}, row 1 (study_id=Lee2020), column 'n_exp': 'NA' is not an integer "
     "(leave the cell empty when not reported)"),
    ("not_number", _set("survival", 2, median_exp="12,5"),
     f"{V}, row 2 (study_id=Lee2020), column 'median_exp': '12,5' is not a number "
     "(use a decimal point: 12.5)"),
    ("required_empty", _set("studies", 1, title=""),
     f"{S}, row 1 (study_id=Tang2025), column 'title': required value is empty"),
    ("required_study_id_empty", _set("proportions", 1, study_id=""),
     f"{P}, row 1, column 'study_id': required value is empty"),
    ("study_id_pattern", _set("proportions", 1, study_id="Tang 2025"),
     f"{P}, row 1 (study_id=Tang 2025), column 'study_id': 'Tang 2025' is not valid: "
     "expected letters, digits, '_', '.' or '-' only (no spaces), e.g. Tang2025"),
    ("doi_pattern", _set("studies", 1, doi="https://doi.org/10.1000/abc1"),
     f"{S}, row 1 (study_id=Tang2025), column 'doi': 'https://doi.org/10.1000/abc1' is not "
     "valid: expected a bare DOI such as 10.1056/NEJMoa2034577 (no 'https://doi.org/' or "
     "'doi:' prefix)"),
    ("pmid_pattern", _set("studies", 1, pmid="PMID31234567"),
     f"{S}, row 1 (study_id=Tang2025), column 'pmid': 'PMID31234567' is not valid: "
     "expected digits only (a PubMed ID such as 31234567)"),
    ("status_enum", _set("studies", 2, status="Published"),
     f"{S}, row 2 (study_id=Lee2020), column 'status': 'Published' is not one of: "
     "published, ongoing"),
    ("derived_enum", _set("proportions", 1, derived="y"),
     f"{P}, row 1 (study_id=Tang2025), column 'derived': 'y' is not one of: yes, no"),
    ("adjusted_enum", _set("survival", 1, adjusted="Yes"),
     f"{V}, row 1 (study_id=Lee2020), column 'adjusted': 'Yes' is not one of: yes, no, unknown"),
    ("arm_pattern", _set("proportions", 2, arm="treatment: Drug X"),
     f"{P}, row 2 (study_id=Lee2020), column 'arm': 'treatment: Drug X' is not valid: expected "
     "'<role>' or '<role>: <label>' with role one of overall, experimental, control, subgroup"),
    ("comparison_pattern", _set("survival", 1, comparison="X vs Y"),
     f"{V}, row 1 (study_id=Lee2020), column 'comparison': 'X vs Y' is not valid: expected "
     "'<kind>: <label>' or 'single-arm' with kind one of treatment, prognostic, single-arm, "
     "subgroup"),
    ("year_range", _set("studies", 1, year="1700"),
     f"{S}, row 1 (study_id=Tang2025), column 'year': 1700 is outside [1800, 2100]"),
    ("total_minimum", _set("proportions", 1, events="0", total="0"),
     f"{P}, row 1 (study_id=Tang2025), column 'total': 0 must be >= 1"),
    ("events_negative", _set("proportions", 1, events="-2"),
     f"{P}, row 1 (study_id=Tang2025), column 'events': -2 must be >= 0"),
    ("hr_not_positive", _set("survival", 2, hr="0", hr_lower="", hr_upper="", ci_level=""),
     f"{V}, row 2 (study_id=Lee2020), column 'hr': 0 must be > 0 (a hazard ratio is above 0: "
     "enter the HR itself, not its logarithm)"),
    ("ci_level_range", _set("survival", 1, ci_level="95"),
     f"{V}, row 1 (study_id=Lee2020), column 'ci_level': 95 is outside (0, 1) "
     "(write 0.95 for a 95% CI)"),
    ("p_above_one", _set("survival", 1, p_value="1.5"),
     f"{V}, row 1 (study_id=Lee2020), column 'p_value': 1.5 is outside [0, 1]"),
    ("p_bound_zero", _set("survival", 1, p_value="<0"),
     f"{V}, row 1 (study_id=Lee2020), column 'p_value': '<0' is not valid: expected a number "
     "in [0, 1] or '<x' with 0 < x <= 1, e.g. 0.03 or <0.001"),
    ("events_exp_gt_n", _set("survival", 1, events_exp="60"),
     f"{V}, row 1 (study_id=Lee2020), column 'events_exp': events_exp 60 > n_exp 50"),
    ("events_ctrl_gt_n", _set("survival", 1, events_ctrl="51"),
     f"{V}, row 1 (study_id=Lee2020), column 'events_ctrl': events_ctrl 51 > n_ctrl 50"),
    ("lower_gt_upper", _set("survival", 1, hr="0.54", hr_lower="0.97", hr_upper="0.36"),
     f"{V}, row 1 (study_id=Lee2020), column 'hr_lower': hr_lower 0.97 > hr_upper 0.36"),
    ("hr_outside_ci", _set("survival", 1, hr="0.30", hr_lower="0.36", hr_upper="0.97"),
     f"{V}, row 1 (study_id=Lee2020), column 'hr': HR 0.30 outside its CI 0.36-0.97"),
    ("upper_missing", _set("survival", 1, hr_upper=""),
     f"{V}, row 1 (study_id=Lee2020), column 'hr_upper': empty, but required because "
     "hr_lower is given"),
    ("lower_missing", _set("survival", 1, hr_lower=""),
     f"{V}, row 1 (study_id=Lee2020), column 'hr_lower': empty, but required because "
     "hr_upper is given"),
    ("ci_level_missing", _set("survival", 1, ci_level=""),
     f"{V}, row 1 (study_id=Lee2020), column 'ci_level': empty, but required because "
     "hr_lower and hr_upper are given"),
    ("hr_missing_with_ci", _set("survival", 1, hr=""),
     f"{V}, row 1 (study_id=Lee2020), column 'hr': empty, but required because "
     "hr_lower and hr_upper are given"),
    ("ongoing_with_results", _set("proportions", 1, study_id="Ong2024"),
     f"{P}, row 1 (study_id=Ong2024), column 'study_id': 'Ong2024' has status 'ongoing' in "
     "studies.csv: ongoing studies must have no results rows"),
    ("unknown_study", _set("survival", 3, study_id="Tang2052"),
     f"{V}, row 3 (study_id=Tang2052), column 'study_id': 'Tang2052' is not in studies.csv "
     "(did you mean 'Tang2025'?)"),
    ("duplicate_proportion_key", _set("proportions", 3, arm="experimental: Drug X"),
     f"{P}, row 3 (study_id=Lee2020): duplicate of row 2 (same study_id='Lee2020', "
     "outcome='ORR', arm='experimental: Drug X')"),
    ("duplicate_survival_key", _set("survival", 2, outcome="OS", adjusted="no"),
     f"{V}, row 2 (study_id=Lee2020): duplicate of row 1 (same study_id='Lee2020', "
     "outcome='OS', comparison='treatment: Drug X vs Drug Y', adjusted='no')"),
    ("duplicate_study_id", _append("studies", **{**STUDY4, "study_id": "Tang2025"}),
     f"{S}, row 4 (study_id=Tang2025), column 'study_id': duplicate of row 1 "
     "(same study_id='Tang2025')"),
    ("same_doi", _append("studies", **STUDY4, doi="10.1000/ABC1"),
     f"{S}, row 4 (study_id=Kim2021), column 'doi': doi '10.1000/ABC1' is also on row 1 "
     "(study_id=Tang2025); one cohort must be one study row"),
    ("same_registration", _append("studies", **STUDY4, registration="ISRCTN1; NCT07654321"),
     f"{S}, row 4 (study_id=Kim2021), column 'registration': registration 'NCT07654321' is "
     "also on row 2 (study_id=Lee2020); one cohort must be one study row"),
]


@pytest.mark.parametrize("edit, expected", [c[1:] for c in CELL_CASES],
                         ids=[c[0] for c in CELL_CASES])
def test_each_error_kind_has_its_message(root: Path, edit, expected: str) -> None:
    data = good()
    edit(data)
    assert errors_for(root, data) == [expected]


def test_registration_words_without_digits_are_not_duplicates(root: Path) -> None:
    data = good()
    data["studies"][0]["registration"] = "not registered"
    data["studies"][1]["registration"] = "not registered"
    assert errors_for(root, data) == []


def _drop_column(table: str, column: str):
    def edit(data):
        for row in data[table]:
            del row[column]
    return edit


def _rename_column(table: str, old: str, new: str):
    def edit(data):
        data[table] = [{(new if k == old else k): v for k, v in r.items()} for r in data[table]]
    return edit


HEADER = ",".join(mio.COLUMNS["studies"])
# Results tables without rows, for cases that replace studies.csv wholesale.
NO_RESULTS = {t: ",".join(mio.COLUMNS[t]) + "\n" for t in ("proportions", "survival")}
FILE_CASES = [
    ("missing_column", _drop_column("survival", "hr_upper"), {},
     [f"{V}: missing required column 'hr_upper'"]),
    ("unknown_column", _rename_column("proportions", "events", "event"), {},
     [f"{P}: missing required column 'events'",
      f"{P}: unknown column 'event' (did you mean 'events'?)"]),
    ("unknown_column_no_suggestion", None,
     {"proportions": _csv_text(GOOD["proportions"]).replace("derivation\n", "derivation,zzz\n")},
     [f"{P}: unknown column 'zzz'"]),
    ("duplicated_column", None, {"studies": HEADER + ",notes\n", **NO_RESULTS},
     [f"{S}: duplicated column 'notes' (columns 16 and 17)",
      f"{S}: has no study rows below the header; add one row per study"]),
    ("unnamed_column_with_data", None,
     {"studies": HEADER + ",\nKim2021,,,T,,,,,cohort,,HCC,X,,,published,,x\n", **NO_RESULTS},
     [f"{S}: column 17 has values but no header name"]),
    ("empty_file", None, {"survival": ""}, [f"{V}: file is empty (no header row)"]),
    ("blank_header", None, {"survival": "\n\n"}, [f"{V}: file is empty (no header row)"]),
    ("ragged_row", None, {"studies": HEADER + "\n" + "a," * 17 + "\n", **NO_RESULTS},
     [f"{S}: line 2 has 18 fields but the header has 16 (quote cells that contain commas)"]),
    ("not_utf8", None,
     {"studies": (HEADER + "\nM\xfcller\n").encode("latin-1"), **NO_RESULTS},
     [f"{S}: is not valid UTF-8 text (byte {len(HEADER) + 2}, line 2); save it as "
      "'CSV UTF-8'"]),
]


@pytest.mark.parametrize("edit, raw, expected", [c[1:] for c in FILE_CASES],
                         ids=[c[0] for c in FILE_CASES])
def test_file_level_errors(root: Path, edit, raw: dict, expected: list[str]) -> None:
    data = good()
    if edit:
        edit(data)
    data = {t: rows for t, rows in data.items() if t not in raw}
    assert errors_for(root, data, raw) == expected


def test_missing_file(root: Path) -> None:
    paths = write(root, {t: GOOD[t] for t in ("studies", "proportions")})
    with pytest.raises(DataError) as caught:
        load_tables(*paths)
    assert str(caught.value) == f"1 problem(s) in the input tables:\n  - {V}: file not found"


def test_unreadable_studies_do_not_flood_results_rows(root: Path) -> None:
    data = good()
    del data["studies"]
    assert errors_for(root, data) == [f"{S}: file not found"]


def test_all_problems_in_all_files_reported_together_in_order() -> None:
    paths = [FIXTURES / "bad" / f"{t}.csv" for t in mio.TABLES]
    with pytest.raises(DataError) as caught:
        load_tables(*paths)
    s, p, v = map(str, paths)
    expected = [
        f"{s}, row 1 (study_id=Tang2025), column 'status': 'Published' is not one of: "
        "published, ongoing",
        f"{s}, row 2 (study_id=Lee2020), column 'year': '20x0' is not an integer",
        f"{s}, row 2 (study_id=Lee2020), column 'title': required value is empty",
        f"{s}, row 2 (study_id=Lee2020), column 'doi': doi '10.1000/abc1' is also on row 1 "
        "(study_id=Tang2025); one cohort must be one study row",
        f"{p}: missing required column 'events'",
        f"{p}: unknown column 'event' (did you mean 'events'?)",
        f"{v}, row 1 (study_id=Lee2020), column 'hr': HR 0.30 outside its CI 0.36-0.97",
        f"{v}, row 1 (study_id=Lee2020), column 'events_exp': events_exp 60 > n_exp 50",
        f"{v}, row 2 (study_id=Tang2052), column 'study_id': 'Tang2052' is not in studies.csv "
        "(did you mean 'Tang2025'?)",
    ]
    error = caught.value
    assert [str(i) for i in error.issues] == expected
    assert str(error) == "\n".join(["9 problem(s) in the input tables:",
                                    *(f"  - {m}" for m in expected)])
    assert all(i.severity == "error" for i in error.issues)
    assert error.issues[1].row == 2 and error.issues[1].column == "year"
    assert error.issues[1].study_id == "Lee2020"
    assert error.issues[4].row is None and error.issues[4].file == p


# --------------------------------------------------------------------------- warnings


@pytest.mark.parametrize("hr, lower, upper, warns", [
    ("0.51", "0.36", "0.97", True),
    ("0.44", "0.28", "0.53", True),
    ("0.54", "0.31", "0.92", False),
    ("0.38", "0.27", "0.53", False),
    ("0.36", "0.18", "0.70", False),
    ("0.122", "0.027", "0.557", False),
])
def test_ci_asymmetry_warning(root: Path, hr: str, lower: str, upper: str, warns: bool) -> None:
    data = good()
    data["survival"][0].update(hr=hr, hr_lower=lower, hr_upper=upper)
    tables = load_tables(*write(root, data))
    assert [w.column for w in tables.warnings] == (["hr"] if warns else [])


def test_warning_messages(root: Path) -> None:
    data = good()
    data["survival"][0].update(hr="0.51", hr_lower="0.36", hr_upper="0.97")
    data["proportions"][0].update(events="1", total="45")
    tables = load_tables(*write(root, data))
    assert messages(tables.warnings, "warning") == [
        f"{P}, row 1 (study_id=Tang2025), column 'events': events 1 with total 45: possibly a "
        "percentage or proportion typed as a count",
        f"{V}, row 1 (study_id=Lee2020), column 'hr': CI 0.36-0.97 is not symmetric around "
        "HR 0.51 on the log scale (its geometric midpoint is 0.59) beyond what rounding "
        "explains; check the numbers",
    ]
    assert {w.severity for w in tables.warnings} == {"warning"}


def test_warnings_travel_with_errors(root: Path) -> None:
    data = good()
    data["proportions"][0].update(events="1", total="20")
    data["studies"][0]["title"] = ""
    with pytest.raises(DataError) as caught:
        load_tables(*write(root, data))
    assert len(caught.value.issues) == 1
    assert [w.column for w in caught.value.warnings] == ["events"]


def test_small_count_warning_threshold(root: Path) -> None:
    data = good()
    data["proportions"][0].update(events="1", total="19")
    data["proportions"][1].update(events="2", total="50")
    assert load_tables(*write(root, data)).warnings == []


# --------------------------------------------------------------------------- helpers


def test_data_error_survives_pickling() -> None:
    error = DataError([Issue("a.csv", 1, "x", "bad")], [Issue("a.csv", 2, "y", "odd", "warning")])
    copy_ = pickle.loads(pickle.dumps(error))
    assert copy_.issues == error.issues and copy_.warnings == error.warnings
    assert str(copy_) == "1 problem(s) in the input tables:\n  - a.csv, row 1, column 'x': bad"


def test_issue_str_forms() -> None:
    assert str(Issue("a.csv", None, "hr", "missing required column 'hr'")) == (
        "a.csv: missing required column 'hr'")
    assert str(Issue("a.csv", 3, None, "bad row")) == "a.csv, row 3: bad row"
    assert str(Issue("a.csv", 3, "x", "bad", study_id="S1")) == (
        "a.csv, row 3 (study_id=S1), column 'x': bad")


def test_format_issues_marks_warnings() -> None:
    issues = [Issue("a.csv", 1, "x", "bad"), Issue("a.csv", 2, "y", "odd", "warning")]
    assert format_issues(issues) == (
        "2 problem(s) in the input tables:\n"
        "  - a.csv, row 1, column 'x': bad\n"
        "  - warning: a.csv, row 2, column 'y': odd")


@pytest.mark.parametrize("text, expected", [
    ("0.03", (0.03, False)), ("<0.001", (0.001, True)), ("< 0.05", (0.05, True)),
])
def test_parse_p_value(text: str, expected: tuple[float, bool]) -> None:
    assert mio.parse_p_value(text) == expected


def test_parse_p_value_empty_is_nan() -> None:
    value, is_bound = mio.parse_p_value("")
    assert pd.isna(value) and not is_bound


# --------------------------------------------------------------------------- optional columns
# survival.csv columns listed in the schema's x-optional-columns may be left out of the
# header (= empty); when present they are validated like any other column.

OPTIONAL = list(mio.OPTIONAL_COLUMNS["survival"])


def _survival_text(edits: dict[int, dict[str, str]], columns: list[str] | None = None) -> str:
    """The good survival rows with cell edits, under the base header plus ``columns``."""
    rows = good()["survival"]
    for number, cells in edits.items():
        rows[number - 1].update(cells)
    header = list(GOOD["survival"][0]) + (OPTIONAL if columns is None else columns)
    return _csv_text(rows, header)


def _km_files(root: Path, stem: str, folder: str = f"{RAW}/km", curve: str | None = None) -> None:
    """A tiny valid pair of digitised KM files."""
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / f"{stem}.curve.csv").write_text(curve or (
        "arm,time,survival\nexperimental,0,1\nexperimental,2,0.8\nexperimental,4,0.6\n"
        "control,0,1\ncontrol,2,0.6\ncontrol,4,0.4\n"), encoding="utf-8")
    (root / folder / f"{stem}.risk.csv").write_text(
        "arm,time,n_risk\nexperimental,0,10\ncontrol,0,10\n", encoding="utf-8")


def test_optional_columns_come_from_the_schema() -> None:
    assert mio.OPTIONAL_COLUMNS["survival"] == (
        "hr_orientation", "p_sided", "direction", "allocation_ratio", "events_total", "oe",
        "v", "median_exp_lower", "median_exp_upper", "median_ctrl_lower",
        "median_ctrl_upper", "median_ci_level", "km_file")
    assert set(OPTIONAL) <= set(mio.COLUMNS["survival"])
    assert not set(OPTIONAL) & set(mio.REQUIRED_COLUMNS["survival"])
    assert mio.OPTIONAL_COLUMNS["studies"] == mio.OPTIONAL_COLUMNS["proportions"] == ()
    assert mio.DTYPES["survival"]["p_sided"] == "Int64"
    assert mio.DTYPES["survival"]["events_total"] == "Int64"
    assert mio.DTYPES["survival"]["oe"] == mio.DTYPES["survival"]["v"] == "float64"
    assert mio.DTYPES["survival"]["direction"] == mio.DTYPES["survival"]["km_file"] == "str"


def test_absent_optional_columns_are_empty_columns(root: Path) -> None:
    # the good fixture has none of them; some only; all of them (empty): same frame
    frames = []
    for columns in ([], ["oe", "v"], OPTIONAL):
        tables = load_tables(*write(root, good(), {"survival": _survival_text({}, columns)}))
        assert tables.warnings == []
        frames.append(tables.survival)
    for frame in frames:
        assert list(frame.columns) == [*mio.COLUMNS["survival"], "source_row"]
        assert (frame["direction"] == "").all() and (frame["km_file"] == "").all()
        assert frame["p_sided"].isna().all() and frame["v"].isna().all()
        for col, dtype in mio.DTYPES["survival"].items():
            assert frame[col].dtype == dtype, col
    pd.testing.assert_frame_equal(frames[0], frames[2])


def test_present_optional_columns_are_typed(root: Path) -> None:
    _km_files(root, "Lee2020_OS")
    text = _survival_text({
        1: dict(hr_orientation="ctrl_vs_exp", p_sided="1", direction="experimental",
                allocation_ratio="2", events_total="50", oe="-4.5", v="12.25",
                median_exp_lower="10.1", median_exp_upper="15.0", median_ctrl_lower="6",
                median_ctrl_upper="11.2", median_ci_level="0.95", km_file="Lee2020_OS"),
    })
    tables = load_tables(*write(root, good(), {"survival": text}))
    row = tables.survival.loc[0]
    assert (row.hr_orientation, row.direction, row.km_file) == (
        "ctrl_vs_exp", "experimental", "Lee2020_OS")
    assert (row.p_sided, row.events_total) == (1, 50)
    assert (row.allocation_ratio, row.oe, row.v) == (2.0, -4.5, 12.25)
    assert (row.median_exp_lower, row.median_ctrl_upper, row.median_ci_level) == (
        10.1, 11.2, 0.95)
    assert tables.km_dir == Path(RAW) / "km"  # next to survival.csv by default


V1, V3 = f"{V}, row 1 (study_id=Lee2020)", f"{V}, row 3 (study_id=Tang2025)"
OPTIONAL_CASES = [
    ("v_positive", {1: dict(oe="-2", v="0")}, None,
     [f"{V1}, column 'v': 0 must be > 0"]),
    ("allocation_ratio_positive", {1: dict(allocation_ratio="-1")}, None,
     [f"{V1}, column 'allocation_ratio': -1 must be > 0 (write 2:1 as 2)"]),
    ("allocation_ratio_text", {1: dict(allocation_ratio="2:1")}, None,
     [f"{V1}, column 'allocation_ratio': '2:1' is not a number"]),
    ("p_sided_enum", {1: dict(p_sided="3")}, None,
     [f"{V1}, column 'p_sided': '3' is not one of: 1, 2"]),
    ("p_sided_needs_p", {3: dict(p_sided="2")}, None,
     [f"{V3}, column 'p_value': empty, but required because p_sided is given"]),
    ("one_sided_p_above_half", {1: dict(p_sided="1", p_value="0.6")}, None,
     [f"{V1}, column 'p_value': a one-sided p-value lies in (0, 0.5], got 0.6 (above 0.5 "
      "the effect lies the other way; give the two-sided p with p_sided 2)"]),
    ("direction_enum", {1: dict(direction="favours experimental")}, None,
     [f"{V1}, column 'direction': 'favours experimental' is not one of: experimental, "
      "control"]),
    ("orientation_enum", {1: dict(hr_orientation="B vs A")}, None,
     [f"{V1}, column 'hr_orientation': 'B vs A' is not one of: exp_vs_ctrl, ctrl_vs_exp"]),
    ("oe_needs_v", {1: dict(oe="-3.2")}, None,
     [f"{V1}, column 'v': empty, but required because oe is given"]),
    ("oe_needs_v_column", {1: dict(oe="-3.2")}, ["oe"],
     [f"{V1}, column 'v': empty (the column is not in the header), but required because "
      "oe is given"]),
    ("v_needs_oe_or_hr", {3: dict(hr="", hr_lower="", hr_upper="", ci_level="", adjusted="",
                                  v="9.5")}, None,
     [f"{V3}, column 'v': v 9.5 given without oe or hr: the log-rank variance gives a log "
      "HR only with O-E (or with the reported HR)"]),
    ("events_total_above_n", {1: dict(events_total="101")}, None,
     [f"{V1}, column 'events_total': events_total 101 > n_exp + n_ctrl = 100"]),
    ("median_ci_pair", {1: dict(median_exp_lower="10")}, None,
     [f"{V1}, column 'median_exp_upper': empty, but required because median_exp_lower is "
      "given",
      f"{V1}, column 'median_ci_level': empty, but required because median_exp_lower is "
      "given"]),
    ("median_ci_needs_median", {2: dict(median_ctrl_lower="3", median_ctrl_upper="5",
                                        median_ci_level="0.95")}, None,
     [f"{V}, row 2 (study_id=Lee2020), column 'median_ctrl': empty, but required because "
      "median_ctrl_lower and median_ctrl_upper are given"]),
    ("median_outside_ci", {1: dict(median_exp_lower="13", median_exp_upper="20",
                                   median_ci_level="0.95")}, None,
     [f"{V1}, column 'median_exp': median_exp 12.5 outside its CI 13-20"]),
    ("median_ci_reversed", {1: dict(median_ctrl_lower="9", median_ctrl_upper="7",
                                    median_ci_level="0.95")}, None,
     [f"{V1}, column 'median_ctrl_lower': median_ctrl_lower 9 >= median_ctrl_upper 7"]),
    ("median_ci_level_range", {1: dict(median_exp_lower="10", median_exp_upper="15",
                                       median_ci_level="95")}, None,
     [f"{V1}, column 'median_ci_level': 95 is outside (0, 1) (write 0.95 for a 95% CI)"]),
    ("unknown_column", {}, ["o_e"],
     [f"{V}: unknown column 'o_e' (did you mean 'oe'?)"]),
    ("km_file_missing", {1: dict(km_file="Lee2020_OS")}, None,
     [f"{V1}, column 'km_file': 'Lee2020_OS': {RAW}/km/Lee2020_OS.curve.csv and "
      f"{RAW}/km/Lee2020_OS.risk.csv not found (KM directory {RAW}/km, config key "
      "tables.km_dir)"]),
    ("km_file_suffix", {1: dict(km_file="Lee2020_OS.curve.csv")}, None,
     [f"{V1}, column 'km_file': 'Lee2020_OS.curve.csv': write the stem only, 'Lee2020_OS'"]),
    ("km_file_path", {1: dict(km_file="../Lee2020_OS")}, None,
     [f"{V1}, column 'km_file': '../Lee2020_OS' is not valid: expected a file stem: "
      "letters, digits, '_', '.' and '-' only, not starting with '.', without "
      "'.curve.csv', e.g. Yu2015_PFS"]),
]


@pytest.mark.parametrize("edits, columns, expected", [c[1:] for c in OPTIONAL_CASES],
                         ids=[c[0] for c in OPTIONAL_CASES])
def test_optional_column_errors(root: Path, edits, columns, expected: list[str]) -> None:
    text = _survival_text(edits, columns)
    assert errors_for(root, good(), {"survival": text}) == expected


def test_km_file_content_and_directory(root: Path) -> None:
    text = _survival_text({1: dict(km_file="Lee2020_OS"), 2: dict(km_file="Lee2020_OS")})
    # a broken curve file is reported once per row, naming the file, row and column
    _km_files(root, "Lee2020_OS", curve="arm,time,survival\nexperimental,0,1\n"
              "experimental,2,high\ncontrol,0,1\n")
    found = errors_for(root, good(), {"survival": text})
    detail = (f"'Lee2020_OS': {RAW}/km/Lee2020_OS.curve.csv, row 2, column 'survival': "
              "'high' is not a number")
    assert found == [f"{V1}, column 'km_file': {detail}",
                     f"{V}, row 2 (study_id=Lee2020), column 'km_file': {detail}"]
    # the KM directory is configurable (config tables.km_dir)
    _km_files(root, "Lee2020_OS", folder="curves")
    paths = write(root, good(), {"survival": text})
    tables, issues = check_tables(*paths, km_dir="curves")
    assert messages(issues) == [] and tables.km_dir == Path("curves")
    assert load_tables(*paths, km_dir=root / "curves").km_dir == root / "curves"


def test_events_total_differing_from_the_events_per_group_warns(root: Path) -> None:
    text = _survival_text({1: dict(events_total="51")})
    tables = load_tables(*write(root, good(), {"survival": text}))
    assert messages(tables.warnings, "warning") == [
        f"{V1}, column 'events_total': events_total 51 differs from events_exp + events_ctrl "
        "= 50; the events per group are used"]


# --------------------------------------------------------------------------- risk_of_bias.csv

R = f"{RAW}/risk_of_bias.csv"
ROB_HEADER = "study_id,tool,domain,judgement,stars,support\n"
ROB_GOOD = ROB_HEADER + """\
Lee2020,RoB 2,D1 randomisation process,low,,Central computer randomisation.
Lee2020,RoB 2,D2 deviations from intended interventions,some concerns,,Open label.
Lee2020,RoB 2,D3 missing outcome data,low,,All randomised patients analysed.
Lee2020,RoB 2,D4 measurement of the outcome,low,,Blinded central review.
Lee2020,RoB 2,D5 selection of the reported result,low,,Registered protocol.
Lee2020,RoB 2,Overall,some concerns,,Some concerns in D2 only.
Tang2025,Newcastle-Ottawa,selection,good,3,"Consecutive patients; records; no comparison cohort."
Tang2025,Newcastle-Ottawa,comparability,poor,0,Single-arm.
Tang2025,Newcastle-Ottawa,outcome,good,2,RECIST 1.1; losses not reported.
Tang2025,Newcastle-Ottawa,Overall,poor,5,AHRQ: poor (comparability 0 stars).
"""
ROBINS = ROB_HEADER + """\
Lee2020,ROBINS-I,D1 confounding,moderate,,Adjusted for stage.
Lee2020,ROBINS-I,D2 selection of participants,low,,Consecutive.
Lee2020,ROBINS-I,D3 classification of interventions,low,,Recorded.
Lee2020,ROBINS-I,D4 deviations from intended interventions,no information,,Not reported.
Lee2020,ROBINS-I,D5 missing data,low,,Complete.
Lee2020,ROBINS-I,D6 measurement of outcomes,moderate,,Unblinded imaging.
Lee2020,ROBINS-I,D7 selection of the reported result,moderate,,No protocol.
Lee2020,ROBINS-I,Overall,moderate,,Moderate in D1 and D6.
"""


def rob_errors(root: Path, text: str) -> list[str]:
    """Errors of the good tables plus a risk_of_bias.csv with ``text``."""
    paths = write(root, good(), {"risk_of_bias": text})
    _, issues = check_tables(*paths, risk_of_bias=R)
    return messages(issues)


def test_risk_of_bias_schema_lists_the_tools_vocabularies() -> None:
    from metapool import rob

    schema = mio.SCHEMAS["risk_of_bias"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["x-column-order"] == list(schema["properties"])
    assert all(p.get("description") for p in schema["properties"].values())
    assert "risk_of_bias" not in mio.TABLES and "risk_of_bias" in mio.SCHEMA_TABLES
    assert schema["properties"]["tool"]["enum"] == list(rob.TOOLS)
    for rule, (tool, spec) in zip(schema["allOf"], rob.TOOLS.items()):
        assert rule["if"]["properties"]["tool"]["const"] == tool
        then = rule["then"]["properties"]
        assert then["domain"]["enum"] == list(spec["domains"])
        assert then["judgement"]["enum"] == list(spec["judgements"])
    maxima = {rule["if"]["properties"]["domain"]["const"]:
              rule["then"]["properties"]["stars"]["maximum"] for rule in schema["allOf"][3:]}
    assert maxima == rob.NOS_MAX_STARS
    assert mio.DTYPES["risk_of_bias"]["stars"] == "Int64"
    assert mio.REQUIRED_COLUMNS["risk_of_bias"] == (
        "study_id", "tool", "domain", "judgement", "support")


def test_risk_of_bias_is_optional_and_loads_typed(root: Path) -> None:
    paths = write(root, good(), {"risk_of_bias": ROB_GOOD})
    assert load_tables(*paths).risk_of_bias is None
    tables = load_tables(*paths, risk_of_bias=R)
    rob = tables.risk_of_bias
    assert list(rob.columns) == [*mio.COLUMNS["risk_of_bias"], "source_row"]
    assert len(rob) == 10 and rob["source_row"].tolist() == list(range(1, 11))
    assert rob["stars"].dtype == "Int64"
    assert rob["stars"].isna().tolist() == [True] * 6 + [False] * 4
    assert rob.loc[9, "stars"] == 5 and rob.loc[6, "support"].startswith("Consecutive")
    assert tables.paths["risk_of_bias"] == Path(R)
    assert load_tables(*write(root, good(), {"risk_of_bias": ROBINS}),
                       risk_of_bias=R).risk_of_bias["tool"].unique().tolist() == ["ROBINS-I"]


def test_default_risk_of_bias_table_loads() -> None:
    data = Path(__file__).resolve().parents[1] / "data" / "raw"
    tables = load_tables(*(data / f"{t}.csv" for t in mio.TABLES),
                         risk_of_bias=data / "risk_of_bias.csv")
    overall = tables.risk_of_bias[tables.risk_of_bias["domain"] == "Overall"]
    assert len(overall) == overall["study_id"].nunique() == 13


L1 = f"{R}, row 1 (study_id=Lee2020)"
L6 = f"{R}, row 6 (study_id=Lee2020)"
T7 = f"{R}, row 7 (study_id=Tang2025)"
T10 = f"{R}, row 10 (study_id=Tang2025)"
ROB_CASES = [
    ("domain_of_another_spelling",
     ("Lee2020,RoB 2,D1 randomisation process", "Lee2020,RoB 2,D1 randomization process"),
     [f"{L1}, column 'domain': 'D1 randomization process' is not a RoB 2 domain; one of: "
      "D1 randomisation process, D2 deviations from intended interventions, D3 missing "
      "outcome data, D4 measurement of the outcome, D5 selection of the reported result, "
      "Overall (did you mean 'D1 randomisation process'?)"]),
    ("judgement_of_another_tool",
     ("Lee2020,RoB 2,Overall,some concerns", "Lee2020,RoB 2,Overall,moderate"),
     [f"{L6}, column 'judgement': 'moderate' is not a RoB 2 judgement; one of: low, some "
      "concerns, high"]),
    ("unknown_tool",
     ("Lee2020,RoB 2,D1 randomisation process", "Lee2020,RoB2,D1 randomisation process"),
     [f"{L1}, column 'tool': 'RoB2' is not one of: RoB 2, ROBINS-I, Newcastle-Ottawa"]),
    ("stars_out_of_range",
     ("Tang2025,Newcastle-Ottawa,selection,good,3", "Tang2025,Newcastle-Ottawa,selection,good,5"),
     [f"{T7}, column 'stars': 5 is outside [0, 4] (selection has 0-4 stars)"]),
    ("stars_not_matching_the_judgement",
     ("Tang2025,Newcastle-Ottawa,selection,good,3", "Tang2025,Newcastle-Ottawa,selection,good,2"),
     [f"{T7}, column 'judgement': 'good' does not match 2 selection star(s): the AHRQ "
      "thresholds give 'fair'",
      f"{T10}, column 'stars': Overall stars 5 is not the sum of the domain stars "
      "(2 + 0 + 2 = 4)"]),
    ("nos_overall_not_the_ahrq_rating",
     ("Tang2025,Newcastle-Ottawa,Overall,poor", "Tang2025,Newcastle-Ottawa,Overall,fair"),
     [f"{T10}, column 'judgement': Overall 'fair' does not match the stars (selection 3, "
      "comparability 0, outcome 2): the AHRQ thresholds give 'poor'"]),
    ("nos_without_stars",
     ("Tang2025,Newcastle-Ottawa,selection,good,3", "Tang2025,Newcastle-Ottawa,selection,good,"),
     [f"{T7}, column 'stars': empty, but Newcastle-Ottawa rows need the stars of the domain "
      "(the Overall row: their sum)"]),
    ("stars_on_a_rob2_row",
     ("Lee2020,RoB 2,Overall,some concerns,", "Lee2020,RoB 2,Overall,some concerns,2"),
     [f"{L6}, column 'stars': stars are given only for Newcastle-Ottawa rows; leave the "
      "cell empty for RoB 2"]),
    ("no_overall_row",
     ("Lee2020,RoB 2,Overall,some concerns,,Some concerns in D2 only.\n", ""),
     [f"{L1}, column 'domain': tool 'RoB 2' has no row for 'Overall'; each assessed study "
      "needs one row per domain of its tool, including one 'Overall' row"]),
    ("missing_domain",
     ("Lee2020,RoB 2,D3 missing outcome data,low,,All randomised patients analysed.\n", ""),
     [f"{L1}, column 'domain': tool 'RoB 2' has no row for 'D3 missing outcome data'; each "
      "assessed study needs one row per domain of its tool, including one 'Overall' row"]),
    ("two_overall_rows",
     ("Lee2020,RoB 2,Overall,some concerns,,Some concerns in D2 only.\n",
      "Lee2020,RoB 2,Overall,some concerns,,Some concerns in D2 only.\n"
      "Lee2020,RoB 2,Overall,high,,Second opinion.\n"),
     [f"{R}, row 7 (study_id=Lee2020): duplicate of row 6 (same study_id='Lee2020', "
      "tool='RoB 2', domain='Overall')"]),
    ("overall_milder_than_a_domain",
     ("Lee2020,RoB 2,D3 missing outcome data,low", "Lee2020,RoB 2,D3 missing outcome data,high"),
     [f"{L6}, column 'judgement': Overall 'some concerns' is less severe than D3 missing "
      "outcome data ('high'); the overall judgement is at least the most severe domain "
      "judgement"]),
    ("unknown_study",
     ("Tang2025,Newcastle-Ottawa,comparability", "Tang2052,Newcastle-Ottawa,comparability"),
     [f"{R}, row 8 (study_id=Tang2052), column 'study_id': 'Tang2052' is not in studies.csv "
      "(did you mean 'Tang2025'?)"]),
    ("ongoing_study",
     ("Lee2020", "Ong2024"),
     [f"{R}, row {i} (study_id=Ong2024), column 'study_id': 'Ong2024' has status 'ongoing' "
      "in studies.csv: risk of bias is judged on published results, so ongoing studies have "
      "no rows here" for i in range(1, 7)]),
    ("required_support_empty",
     ("Single-arm.", ""),
     [f"{R}, row 8 (study_id=Tang2025), column 'support': required value is empty"]),
]


@pytest.mark.parametrize("change, expected", [c[1:] for c in ROB_CASES],
                         ids=[c[0] for c in ROB_CASES])
def test_risk_of_bias_errors(root: Path, change, expected: list[str]) -> None:
    old, new = change
    assert old in ROB_GOOD
    assert rob_errors(root, ROB_GOOD.replace(old, new)) == expected


@pytest.mark.parametrize("old, new, expected", [
    ("D1 confounding,moderate", "D1 confounding,critical",
     "Overall 'moderate' is less severe than D1 confounding ('critical'); the overall "
     "judgement is at least the most severe domain judgement"),
    ("Lee2020,ROBINS-I,Overall,moderate", "Lee2020,ROBINS-I,Overall,low",
     "Overall 'low' is less severe than D1 confounding ('moderate'); the overall judgement "
     "is at least the most severe domain judgement"),
])
def test_robins_overall_rules(root: Path, old: str, new: str, expected: str) -> None:
    assert rob_errors(root, ROBINS.replace(old, new)) == [
        f"{R}, row 8 (study_id=Lee2020), column 'judgement': {expected}"]


def test_robins_overall_low_or_no_information(root: Path) -> None:
    low = ROBINS
    for domain in ("D1 confounding", "D6 measurement of outcomes",
                   "D7 selection of the reported result", "Overall"):
        low = low.replace(f"{domain},moderate", f"{domain},low")
    assert rob_errors(root, low) == [
        f"{R}, row 8 (study_id=Lee2020), column 'judgement': Overall 'low' needs every "
        "domain 'low', but D4 deviations from intended interventions is 'no information'"]
    unknown = ROBINS.replace("D1 confounding,moderate", "D1 confounding,serious").replace(
        "ROBINS-I,Overall,moderate", "ROBINS-I,Overall,no information")
    assert rob_errors(root, unknown) == [
        f"{R}, row 8 (study_id=Lee2020), column 'judgement': Overall 'no information' "
        "although D1 confounding is 'serious'; the overall judgement is at least 'serious'"]
    # 'no information' overall is allowed when no domain is serious or critical
    fine = ROBINS.replace("ROBINS-I,Overall,moderate", "ROBINS-I,Overall,no information")
    assert rob_errors(root, fine) == []


def test_risk_of_bias_problems_come_after_the_other_tables(root: Path) -> None:
    data = good()
    data["proportions"][0]["events"] = "x"
    paths = write(root, data, {"risk_of_bias": ROB_GOOD.replace("RoB 2,Overall", "RoB 2,Total")})
    _, issues = check_tables(*paths, risk_of_bias=R)
    found = messages(issues)
    assert [Path(i.split(",")[0]).name for i in found] == ["proportions.csv", "risk_of_bias.csv"]
    assert found[1].startswith(f"{L6}, column 'domain': 'Total' is not a RoB 2 domain")
    with pytest.raises(DataError) as caught:
        load_tables(*paths, risk_of_bias=R)
    assert str(caught.value).startswith("2 problem(s) in the input tables:")
    # a missing file is one file-level error
    assert rob_errors(root, ROB_GOOD) == []
    _, issues = check_tables(*write(root, good()), risk_of_bias=f"{RAW}/nothing.csv")
    assert messages(issues) == [f"{RAW}/nothing.csv: file not found"]
