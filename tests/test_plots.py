"""Tests of metapool.plots: forest plot content and deterministic writers."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from matplotlib.patches import Polygon

from metapool.plots import forest_plot, save_figure, write_forest

FIXTURES = Path(__file__).parent / "fixtures" / "analysis"
NAMES = ["proportion_subgroups", "hr", "single_study", "proportion_glmm"]


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def figures():
    """One figure per fixture, drawn once for the content tests."""
    return {name: forest_plot(load(name)) for name in NAMES}


def texts(fig) -> list[str]:
    """Every text drawn in the figure (figure texts and axes texts)."""
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts]
    return out


def scale(doc: dict) -> float:
    return 100.0 if doc["measure"] == "PLO" else 1.0


@pytest.mark.parametrize("name", NAMES)
def test_one_row_and_marker_per_study(figures, name):
    doc, fig = load(name), figures[name]
    assert fig.metapool["n_study_rows"] == len(doc["studies"])
    ax = fig.axes[0]
    markers = [
        line
        for line in ax.lines
        if (line.get_gid() or "").startswith("study-") and "ci" not in line.get_gid()
    ]
    assert len(markers) == len(doc["studies"])
    # each marker sits at its study's effect (rows are grouped by subgroup, so the
    # drawing order need not be the document's)
    by_label = {s["label"]: s for s in doc["studies"]}
    for line in markers:
        label = fig.metapool["study_labels"][int(line.get_gid().split("-")[1])]
        assert line.get_xdata()[0] == pytest.approx(by_label[label]["effect"] * scale(doc))
    labels = texts(fig)
    for study in doc["studies"]:
        assert study["label"] in labels


@pytest.mark.parametrize("name", NAMES)
def test_diamonds_at_pooled_estimates(figures, name):
    doc, fig = load(name), figures[name]
    pooled = [m for m in doc["models"] if m["status"] == "pooled"]
    ax = fig.axes[0]
    diamonds = [
        p
        for p in ax.patches
        if isinstance(p, Polygon) and (p.get_gid() or "").startswith("diamond-")
    ]
    assert len(diamonds) == len(pooled) == len(fig.metapool["diamond_centers"])
    expected = sorted(m["estimate"] * scale(doc) for m in pooled)
    # the top and bottom vertices of the drawn polygon are at the estimate (data coordinates)
    drawn = sorted(p.get_xy()[1][0] for p in diamonds)
    assert drawn == pytest.approx(expected)
    assert sorted(fig.metapool["diamond_centers"]) == pytest.approx(expected)
    for p in diamonds:
        left, right = p.get_xy()[0][0], p.get_xy()[2][0]
        assert left <= p.get_xy()[1][0] <= right


def test_axis_scales(figures):
    prop, hr = figures["proportion_subgroups"].axes[0], figures["hr"].axes[0]
    assert prop.get_xscale() == "linear"
    assert figures["proportion_subgroups"].metapool["xunit"] == "percent"
    lo, hi = prop.get_xlim()
    assert 0 <= lo < hi <= 100
    assert hr.get_xscale() == "log"
    assert figures["hr"].metapool["xscale"] == "log"
    lo, hi = hr.get_xlim()
    assert lo < 1 < hi
    assert 1.0 in figures["hr"].metapool["xticks"]
    # the single study's percent axis is clipped to the data, not 0-100
    lo, hi = figures["single_study"].axes[0].get_xlim()
    doc = load("single_study")
    study = doc["studies"][0]
    assert 0 < lo <= study["ci_lower"] * 100 and study["ci_upper"] * 100 <= hi < 100


def test_all_drawn_intervals_inside_axis(figures):
    for name in NAMES:
        doc, fig = load(name), figures[name]
        lo, hi = fig.axes[0].get_xlim()
        for study in doc["studies"]:
            assert lo <= study["ci_lower"] * scale(doc) and study["ci_upper"] * scale(doc) <= hi


def test_subgroups_headers_notes_and_heterogeneity(figures):
    fig, doc = figures["proportion_subgroups"], load("proportion_subgroups")
    drawn = texts(fig)
    for level in ("Adults", "Children", "Older adults"):
        assert level in drawn
    assert "not pooled (k = 1)" in drawn
    assert fig.metapool["not_pooled"] == ["Older adults"]
    assert "Overall (k = 7)" in drawn
    assert "Subtotal (k = 4)" in drawn
    assert (
        "Heterogeneity: \u03c4\u00b2 = 0.3390; I\u00b2 = 73.8%; Q = 20.96 (df = 6), p = 0.002"
        in drawn
    )
    assert (
        "Heterogeneity: \u03c4\u00b2 = 1.1730; I\u00b2 = 92.5%; Q = 14.94 (df = 3), p = 0.002"
        in drawn
    )
    # the 100% study and its continuity-correction mark, events/total and weights
    assert "100.0 (91.2\u2013100.0) \u2021" in drawn
    assert "40/40" in drawn and "29.3%" in drawn
    assert "67.2 (45.8\u201383.2)" in drawn
    overall = doc["models"][0]
    assert fig.metapool["prediction_interval"] == pytest.approx(
        (overall["pi_lower"] * 100, overall["pi_upper"] * 100)
    )
    method = fig.metapool["method_line"]
    assert method == (
        "Random effects, REML \u03c4\u00b2, Hartung-Knapp-Sidik-Jonkman 95% CI, "
        "t-based 95% prediction interval; logit transformation. Profile: metafor."
    )
    assert method in drawn


def test_hr_figure_text(figures):
    fig, doc = figures["hr"], load("hr")
    drawn = texts(fig)
    assert any("Favours experimental" in t for t in drawn)
    assert any("Favours control" in t for t in drawn)
    assert "0.77 (0.63\u20130.94)" in drawn  # pooled HR
    assert "0.61 (0.45\u20130.82; 90%)" in drawn  # reported 90% CI kept as reported
    assert "0.93; p = 0.580" in drawn  # HR reported with a p-value only
    assert "(0.55\u20131.09)" in drawn  # prediction interval text
    overall = doc["models"][0]
    assert fig.metapool["prediction_interval"] == pytest.approx(
        (overall["pi_lower"], overall["pi_upper"])
    )


def test_single_study_not_pooled(figures):
    fig = figures["single_study"]
    assert fig.metapool["single_study"] is True
    assert fig.metapool["diamonds"] == []
    assert fig.metapool["prediction_interval"] is None
    assert "single study \u2014 not pooled" in texts(fig)
    assert not any(isinstance(p, Polygon) for p in fig.axes[0].patches)


def test_figure_grows_with_rows():
    doc = load("hr")
    small = forest_plot(doc).get_size_inches()[1]
    more = copy.deepcopy(doc)
    more["studies"] = doc["studies"] * 3
    assert forest_plot(more).get_size_inches()[1] > small


def test_compact_layout_and_unknown_layout():
    doc = load("proportion_subgroups")
    fig = forest_plot(doc, layout="compact")
    assert "40/40" not in texts(fig)
    assert fig.metapool["n_study_rows"] == len(doc["studies"])
    with pytest.raises(ValueError, match="layout"):
        forest_plot(doc, layout="nope")


@pytest.mark.parametrize("ext", ["svg", "png", "pdf"])
def test_written_files_are_byte_identical(tmp_path, ext):
    doc = load("proportion_subgroups")
    first, second = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
    save_figure(forest_plot(doc), first)
    save_figure(forest_plot(doc), second)
    assert first.read_bytes() == second.read_bytes()
    data = first.read_bytes()
    if ext == "png":
        assert (
            data.startswith(b"\x89PNG")
            and b"Software" not in data
            and b"matplotlib" not in data.lower()
        )
    if ext == "pdf":
        assert b"CreationDate" not in data and b"Producer" not in data


def test_svg_keeps_text_escaped_and_no_date(tmp_path):
    doc = load("proportion_subgroups")
    doc["studies"][0]["label"] = "<script>alert(1)</script>"
    doc["studies"][2]["label"] = "Cost $5 and $10 2020"  # must not be parsed as mathtext
    svg_path, png_path = tmp_path / "f.svg", tmp_path / "f.png"
    write_forest(doc, svg_path, png_path)
    svg = svg_path.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "<script" not in svg
    assert ">Cost $5 and $10 2020<" in svg
    assert "Silva &amp; O'Neil 2023" in svg or "Silva &amp; O&apos;Neil 2023" in svg
    assert "M\u00fcller 2021" in svg or "M&#252;ller 2021" in svg
    assert "<dc:date>" not in svg
    assert "DejaVu Sans" in svg
    assert png_path.read_bytes().startswith(b"\x89PNG")


def test_hr_svg_contains_labels(tmp_path):
    doc = load("hr")
    path = tmp_path / "hr.svg"
    save_figure(forest_plot(doc), path)
    svg = path.read_text(encoding="utf-8")
    for study in doc["studies"]:
        assert study["label"] in svg


def test_save_figure_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="format"):
        save_figure(forest_plot(load("single_study")), tmp_path / "f.jpg")


def test_weight_basis_footnote():
    doc = load("proportion_subgroups")
    fig = forest_plot(doc)
    assert fig.metapool["weight_basis"] == "subgroup"
    assert "Weights are within subgroup." in " ".join(texts(fig))
    for study, weight in zip(doc["studies"], [10, 10, 10, 10, 20, 20, 20]):
        study["weight_pct"] = weight  # weights of the overall model
    fig = forest_plot(doc)
    assert fig.metapool["weight_basis"] == "overall"
    assert "Weights are from the overall model." in " ".join(texts(fig))


def test_derived_effects_are_marked(figures):
    drawn = texts(figures["hr"])
    assert "0.61 (0.43\u20130.87) \u2020" in drawn  # SE from a 90% CI
    assert "0.93 (0.72\u20131.20) \u2020" in drawn  # SE from the p-value
    assert "0.72 (0.55\u20130.94)" in drawn  # as reported: no mark
    assert any(t.startswith("\u2020 Value derived") for t in drawn)


def test_output_identical_across_processes(tmp_path):
    """A fresh interpreter with another hash seed writes the same bytes."""
    import os
    import subprocess
    import sys

    doc_path = FIXTURES / "proportion_subgroups.json"
    code = (
        "import json, sys; from metapool.plots import write_forest; "
        "write_forest(json.load(open(sys.argv[1], encoding='utf-8')), sys.argv[2], sys.argv[3])"
    )
    rc = tmp_path / "matplotlibrc"  # a user's settings must not leak into the figure
    rc.write_text("savefig.bbox: tight\nlines.linewidth: 5\nfont.family: serif\nsavefig.dpi: 50\n")
    env = dict(os.environ, PYTHONHASHSEED="12345", MPLBACKEND="svg", MATPLOTLIBRC=str(rc))
    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(doc_path),
            str(tmp_path / "a.svg"),
            str(tmp_path / "a.png"),
        ],
        check=True,
        env=env,
    )
    write_forest(load("proportion_subgroups"), tmp_path / "b.svg", tmp_path / "b.png")
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_glmm_method_line_and_markers_by_study_size(figures):
    fig, doc = figures["proportion_glmm"], load("proportion_glmm")
    drawn = texts(fig)
    assert fig.metapool["method_line"] == (
        "Binomial-normal GLMM (ML \u03c4\u00b2), t-based 95% CI, t-based 95% prediction "
        "interval; logit scale. Profile: cochrane2025."
    )
    assert fig.metapool["method_line"] in drawn
    # no weight column (the GLMM has no study weights); markers sized by study size
    assert "Weight" not in drawn and not any(t.endswith("%") and t[:1].isdigit() for t in drawn)
    assert fig.metapool["marker_size"] == "study size"
    assert any(
        "Marker size proportional to study size; the GLMM has no inverse-variance weights."
        in t
        for t in [" ".join(drawn)]
    )
    size = {
        fig.metapool["study_labels"][int(line.get_gid().split("-")[1])]: line.get_markersize()
        for line in fig.axes[0].lines
        if (line.get_gid() or "").startswith("study-") and "ci" not in line.get_gid()
    }
    by_total = sorted(doc["studies"], key=lambda s: s["total"])
    sizes = [size[s["label"]] for s in by_total]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert size["Cao 2024"] == pytest.approx(10.0)  # the largest study, n = 460
    assert size["Anon2025_FrontOncol_BACE"] == pytest.approx(10.0 * (112 / 460) ** 0.5)


def test_weighted_markers_follow_weights(figures):
    fig = figures["hr"]
    assert fig.metapool["marker_size"] == "weight"
    assert "Marker size proportional to study size" not in " ".join(texts(fig))
    assert figures["single_study"].metapool["marker_size"] == "fixed"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"ci_method": "t", "pi_method": "riley"},
            (
                "Random effects, REML \u03c4\u00b2, t-based 95% CI, t-based 95% prediction "
                "interval (k \u2212 2 df, Riley); pooled on the log scale."
            ),
        ),
        (
            {"ci_method": "hksj_adhoc", "pi_method": "z"},
            (
                "Random effects, REML \u03c4\u00b2, Hartung-Knapp-Sidik-Jonkman 95% CI (ad "
                "hoc: never narrower than Wald), normal-based 95% prediction interval; pooled "
                "on the log scale."
            ),
        ),
        (
            {
                "method": "DL",
                "ci_method": "z",
                "pi_method": "none",
                "pi_lower": None,
                "pi_upper": None,
            },
            (
                "Random effects, DerSimonian-Laird \u03c4\u00b2, Wald (z) 95% CI; pooled on "
                "the log scale."
            ),
        ),
        (
            {"k": 2, "pi_lower": None, "pi_upper": None},
            (
                "Random effects, REML \u03c4\u00b2, Hartung-Knapp-Sidik-Jonkman 95% CI, no "
                "prediction interval (k < 3); pooled on the log scale."
            ),
        ),
        (
            {"method": "FE", "ci_method": "z", "pi_method": "z"},
            (
                "Common effect (inverse variance), Wald (z) 95% CI, normal-based 95% "
                "prediction interval; pooled on the log scale."
            ),
        ),
    ],
)
def test_method_line_names_the_fitted_model(changes, expected):
    doc = load("hr")
    doc["methods"]["transformation"] = "log HR"
    doc["models"][0].update(changes)
    line = forest_plot(doc).metapool["method_line"]
    assert line == expected + " Profile: cochrane2025."


def test_method_line_of_an_older_document_has_no_profile(figures):
    assert figures["single_study"].metapool["method_line"] == "Not pooled: single study."


def test_wide_ratio_axis_keeps_ticks_apart():
    doc = load("hr")
    doc["models"][0].update(ci_lower=0.00049, ci_upper=139.5)  # a CI from two studies
    fig = forest_plot(doc)
    assert fig.metapool["xticks"] == [0.01, 0.1, 1.0, 10.0, 100.0]
