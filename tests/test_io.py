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
