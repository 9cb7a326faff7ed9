"""Tests of the PRISMA 2020 flow diagram: counts checked, boxes hold the counts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from metapool.plots import PrismaError, check_prisma, prisma_diagram, read_prisma, save_figure

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "config" / "prisma.yaml"


def counts() -> dict:
    """A consistent single-column example with exclusion reasons."""
    return {
        "identification": {
            "databases": {"MEDLINE": 120, "Embase": 95},
            "registers": 12,
            "duplicates_removed": 60,
            "automation_ineligible": 5,
            "other_removed": 2,
        },
        "screening": {"screened": 160, "excluded": 130},
        "retrieval": {"sought": 30, "not_retrieved": 3},
        "eligibility": {
            "assessed": 27,
            "excluded": {"Wrong population": 8, "No outcome data": 6, "Duplicate cohort": 1},
        },
        "included": {"studies": 10, "reports": 12},
    }


def box_texts(fig) -> list[str]:
    return [t.get_text().replace("\u00a0", " ") for t in fig.texts]


@pytest.fixture(scope="module")
def default_figure():
    return prisma_diagram(read_prisma(DEFAULT))


def test_default_counts_are_valid_and_consistent():
    data = read_prisma(DEFAULT)
    raw = yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))
    assert data["included"]["studies"] == raw["included"]["studies"] == 13
    assert data["included"]["ongoing_studies"] == 1
    assert data["totals"]["eligible"] + data["totals"]["other_eligible"] == (
        data["included"]["reports"] + data["included"]["ongoing_reports"]
    )
    # the curated default says so on the figure
    assert "Curated default" in raw["note"]


def test_default_diagram_boxes_hold_the_yaml_numbers(default_figure):
    raw = yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))
    boxes = default_figure.metapool["boxes"]
    ident = raw["identification"]
    assert f"Databases (n = {sum(ident['databases'].values())})" in boxes["identified"]
    assert f"Registers (n = {sum(ident['registers'].values())})" in boxes["identified"]
    assert boxes["screened"] == f"Records screened\n(n = {raw['screening']['screened']})"
    assert boxes["sought"] == f"Reports sought for retrieval\n(n = {raw['retrieval']['sought']})"
    assert boxes["assessed"].endswith(f"(n = {raw['eligibility']['assessed']})")
    assert f"Studies included in review (n = {raw['included']['studies']})" in boxes["included"]
    assert f"Reports of included studies (n = {raw['included']['reports']})" in boxes["included"]
    assert "Ongoing studies (n = 1)" in boxes["included"]
    seeds = raw["other_methods"]["identified"]
    name, n = next(iter(seeds.items()))
    assert f"{name} (n = {n})" in boxes["other_identified"]
    assert default_figure.metapool["columns"] == ["databases_registers", "other_methods"]
    # 4 down and 4 across in the main column, 2 down and 2 across in the other, and
    # the other column's eligible reports joining the included box
    assert default_figure.metapool["arrows"] == 13


def test_every_box_is_drawn_with_its_text(default_figure):
    drawn = " ".join(box_texts(default_figure))
    for text in default_figure.metapool["boxes"].values():
        for word in text.replace("\n", " ").split():
            assert word in drawn
    gids = {a.get_gid() for a in default_figure.artists if a.get_gid()}
    assert {f"prisma-{key}" for key in default_figure.metapool["boxes"]} <= gids
    titles = box_texts(default_figure)
    assert "Identification of studies via databases and registers" in titles
    assert "Identification of studies via other methods" in titles
    for phase in ("Identification", "Screening", "Included"):
        assert phase in titles


def test_single_column_diagram_with_reasons():
    fig = prisma_diagram(counts())
    boxes = fig.metapool["boxes"]
    assert fig.metapool["columns"] == ["databases_registers"]
    assert fig.metapool["arrows"] == 8
    assert boxes["identified"].splitlines() == [
        "Records identified from:",
        "Databases (n = 215)",
        "MEDLINE (n = 120)",
        "Embase (n = 95)",
        "Registers (n = 12)",
    ]
    assert "Duplicate records removed (n = 60)" in boxes["removed"]
    assert "Records marked as ineligible by automation tools (n = 5)" in boxes["removed"]
    assert boxes["screening_excluded"] == "Records excluded\n(n = 130)"
    assert boxes["not_retrieved"] == "Reports not retrieved\n(n = 3)"
    assert boxes["reports_excluded"].splitlines() == [
        "Reports excluded (n = 15):",
        "Wrong population (n = 8)",
        "No outcome data (n = 6)",
        "Duplicate cohort (n = 1)",
    ]
    assert not any(key.startswith("other_") for key in boxes)


def test_not_reported_counts_are_drawn_and_skip_their_checks():
    data = counts()
    data["identification"]["duplicates_removed"] = None
    data["screening"]["excluded"] = None
    fig = prisma_diagram(data)
    assert "Duplicate records removed (not reported)" in fig.metapool["boxes"]["removed"]
    assert fig.metapool["boxes"]["screening_excluded"] == "Records excluded\n(not reported)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["retrieval"].update(sought=31),
            "screening.screened - screening.excluded = 160 - 130 = 30, but retrieval.sought = 31",
        ),
        (
            lambda d: d["screening"].update(screened=150),
            "identification.databases + identification.registers - "
            "identification.duplicates_removed - identification.automation_ineligible - "
            "identification.other_removed = 227 - 60 - 5 - 2 = 160, but screening.screened = 150",
        ),
        (
            lambda d: d["eligibility"].update(assessed=26),
            "retrieval.sought - retrieval.not_retrieved = 30 - 3 = 27, "
            "but eligibility.assessed = 26",
        ),
        (
            lambda d: d["included"].update(reports=13),
            "eligibility.assessed - eligibility.excluded = 12 reports are eligible, "
            "but included.reports = 13",
        ),
        (
            lambda d: d["included"].update(studies=14, reports=12),
            "included.studies = 14 is more than included.reports = 12",
        ),
        (
            lambda d: d["eligibility"]["excluded"].update({"Wrong population": 40}),
            "eligibility.excluded adds up to 47, more than eligibility.assessed = 27",
        ),
    ],
)
def test_inconsistent_counts_raise_naming_the_keys(change, message):
    data = counts()
    change(data)
    with pytest.raises(PrismaError) as err:
        prisma_diagram(data)
    assert message in err.value.problems
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["screening"].update(screened=-1),
            "screening.screened must be a non-negative whole number or null (not reported), "
            "got -1",
        ),
        (
            lambda d: d["screening"].update(screened=10.5),
            "screening.screened must be a non-negative whole number or null (not reported), "
            "got 10.5",
        ),
        (
            lambda d: d["retrieval"].update(sought=True),
            "retrieval.sought must be a non-negative whole number or null (not reported), "
            "got True",
        ),
        (
            lambda d: d["retrieval"].update(sought="30"),
            "retrieval.sought must be a non-negative whole number or null (not reported), "
            "got '30'",
        ),
        (
            lambda d: d["eligibility"]["excluded"].update({"Wrong design": -2}),
            "eligibility.excluded.Wrong design must be a non-negative whole number or null, "
            "got -2",
        ),
        (
            lambda d: d["screening"].update(screend=3),
            "unknown key screening.screend (expected one of: screened, excluded)",
        ),
        (
            lambda d: d["retrieval"].pop("not_retrieved"),
            "missing key retrieval.not_retrieved (write null if it was not reported)",
        ),
        (lambda d: d.pop("included"), "missing section 'included'"),
        (
            lambda d: d["eligibility"].update(excluded=15),
            "eligibility.excluded must be a mapping of name: count (use {} for none), got 15",
        ),
    ],
)
def test_invalid_values_raise_naming_the_key(change, message):
    data = counts()
    change(data)
    with pytest.raises(PrismaError) as err:
        check_prisma(data, "config/prisma.yaml")
    assert message in err.value.problems
    assert str(err.value).startswith("config/prisma.yaml: ")


def test_every_problem_is_reported_at_once():
    data = counts()
    data["retrieval"]["sought"] = 31
    data["included"]["studies"] = 99
    with pytest.raises(PrismaError) as err:
        check_prisma(data)
    assert len(err.value.problems) == 3  # sought, sought - not retrieved, studies > reports


def test_other_methods_column_is_checked():
    data = yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))
    bad = copy.deepcopy(data)
    bad["other_methods"]["assessed"] = 4
    with pytest.raises(PrismaError, match="other_methods.sought - other_methods.not_retrieved"):
        check_prisma(bad)
    bad = copy.deepcopy(data)
    bad["other_methods"]["sought"] = 6
    bad["other_methods"]["assessed"] = 6
    with pytest.raises(PrismaError, match="more than the records identified"):
        check_prisma(bad)


def test_read_prisma_reports_yaml_problems(tmp_path):
    path = tmp_path / "prisma.yaml"
    path.write_text(
        DEFAULT.read_text(encoding="utf-8").replace(
            "screening:\n  screened: 10\n", "screening:\n  screened: 10\n  screened: 11\n"
        ),
        encoding="utf-8",
    )
    with pytest.raises(PrismaError, match="key 'screened' is given twice"):
        read_prisma(path)
    path.write_text("identification: [\n", encoding="utf-8")
    with pytest.raises(PrismaError, match="not valid YAML"):
        read_prisma(path)


def test_written_diagram_is_byte_identical_and_escaped(tmp_path):
    data = counts()
    data["eligibility"]["excluded"] = {"<b>Wrong</b> design & $x$": 15}
    for ext in ("svg", "pdf"):
        first, second = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
        save_figure(prisma_diagram(data), first)
        save_figure(prisma_diagram(data), second)
        assert first.read_bytes() == second.read_bytes()
    svg = (tmp_path / "a.svg").read_text(encoding="utf-8")
    # escaped by the SVG writer, never parsed as mathtext (the reason wraps in its box)
    assert "&lt;b&gt;Wrong&lt;/b&gt; design" in svg and "&amp; $x$" in svg
    assert "<b>" not in svg
