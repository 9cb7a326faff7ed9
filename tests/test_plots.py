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
        "Marker size proportional to study size; the GLMM has no inverse-variance weights." in t
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


# --------------------------------------------------------------------------- layouts

# fig.metapool descriptions are checked, and the texts drawn, never pixels.


def rules(fig) -> list[float]:
    """Line widths of the horizontal rules drawn across the figure."""
    from matplotlib.lines import Line2D

    return [a.get_linewidth() for a in fig.artists if isinstance(a, Line2D)]


@pytest.mark.parametrize("layout", ["revman5", "jama"])
@pytest.mark.parametrize("name", NAMES)
def test_layouts_draw_the_same_content(name, layout):
    doc = load(name)
    fig = forest_plot(doc, layout=layout)
    default = forest_plot(doc)
    assert fig.metapool["layout"] == layout
    assert fig.metapool["n_study_rows"] == len(doc["studies"])
    assert fig.metapool["diamond_centers"] == pytest.approx(default.metapool["diamond_centers"])
    assert fig.metapool["xlim"] == default.metapool["xlim"]
    assert fig.metapool["xscale"] == default.metapool["xscale"]
    labels = texts(fig)
    for study in doc["studies"]:
        assert study["label"] in labels


def test_revman5_layout_hr():
    doc = load("hr")
    fig = forest_plot(doc, layout="revman5")
    drawn = texts(fig)
    meta = fig.metapool
    # columns: study | log[HR] | SE | weight | effect [CI] | plot on the right
    assert meta["headers"]["label"] == "Study or Subgroup"
    assert meta["headers"]["data"] == "log[Hazard Ratio]"
    assert meta["headers"]["data2"] == "SE"
    assert meta["headers"]["effect"] == "Hazard Ratio\nIV, Random, 95% CI"
    assert all(x < meta["plot_x"][0] for x in meta["columns"].values())
    assert "\u22120.3285" in drawn and "0.1367" in drawn  # Alvarez 2019: yi and sei
    assert "19.1%" in drawn and "100.0%" in drawn
    assert "0.72 [0.55, 0.94]" in drawn
    assert "0.77 [0.63, 0.94]" in drawn  # Total (95% CI)
    assert "Total (95% CI)" in drawn
    assert "[0.55, 1.09]" in drawn  # prediction interval
    assert (
        "Heterogeneity: Tau\u00b2 = 0.01; Chi\u00b2 = 5.72, df = 4 (P = 0.221); I\u00b2 = 28%"
        in drawn
    )
    assert "Test for overall effect: t = 3.61, df = 4 (P = 0.022)" in drawn
    assert meta["favours"] == ("Favours experimental", "Favours control")
    assert "Favours experimental" in drawn and "Favours control" in drawn
    assert rules(fig) == []  # RevMan draws no rules
    # the black diamond and a solid line at 1
    diamond = next(p for p in fig.axes[0].patches if p.get_gid() == "diamond-0")
    assert diamond.get_facecolor()[:3] == (0.0, 0.0, 0.0)
    # the figure is wide enough for "Favours control" right of the plot
    right_edge = fig.get_size_inches()[0]
    assert meta["plot_x"][1] * right_edge < right_edge - 0.12


def test_revman5_layout_subgroups_and_events():
    doc = load("proportion_subgroups")
    fig = forest_plot(doc, layout="revman5")
    drawn = texts(fig)
    assert (
        fig.metapool["headers"]["data"] == "Events" and fig.metapool["headers"]["data2"] == "Total"
    )
    # three subgroups (one of them a single study, not estimable) and the total
    assert drawn.count("Total events") == 4
    assert "Subtotal (95% CI)" in drawn and "Not estimable" in drawn
    assert "Heterogeneity: Not applicable" in drawn
    assert any(t.startswith("Test for subgroup differences: Chi\u00b2 = ") for t in drawn)
    assert "40" in drawn and "100.0 [91.2, 100.0] \u2021" in drawn


def test_jama_layout():
    doc = load("hr")
    fig = forest_plot(doc, layout="jama")
    drawn = texts(fig)
    meta = fig.metapool
    # estimates right of the plot, no data column for HRs, JAMA spelling and P style
    assert meta["columns"]["effect"] > meta["plot_x"][1]
    assert "data" not in meta["columns"]
    assert meta["headers"]["label"] == "Source"
    assert meta["headers"]["effect"] == "HR (95% CI)"
    assert meta["headers"]["weight"] == "Weight, %"
    assert "0.77 (0.63-0.94)" in drawn and "19.1" in drawn
    assert "Overall (k = 5)" in drawn
    assert meta["favours"] == ("Favors experimental", "Favors control")
    assert any(t.startswith("Heterogeneity: ") and t.endswith("P = .221") for t in drawn)
    assert meta["xlabel"] == "Hazard ratio (95% CI)"
    assert rules(fig) == [0.5]  # one thin rule under the header, no heavy rules
    assert max(rules(forest_plot(doc))) == pytest.approx(0.9)  # the default has them


def test_jama_layout_proportions_keep_events():
    fig = forest_plot(load("proportion_subgroups"), layout="jama")
    assert "40/40" in texts(fig)
    assert fig.metapool["headers"]["effect"] == "Proportion, % (95% CI)"


@pytest.mark.parametrize("layout", ["revman5", "jama"])
def test_layouts_are_written_byte_identical(tmp_path, layout):
    doc = load("proportion_subgroups")
    for ext in ("svg", "pdf"):
        first, second = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
        save_figure(forest_plot(doc, layout=layout), first)
        save_figure(forest_plot(doc, layout=layout), second)
        assert first.read_bytes() == second.read_bytes()


def test_write_forest_writes_pdf(tmp_path):
    fig = write_forest(
        load("hr"), tmp_path / "f.svg", tmp_path / "f.png", pdf_path=tmp_path / "f.pdf"
    )
    assert (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
    assert fig.metapool["layout"] == "default"


# --------------------------------------------------------------------------- secondary figures

from metapool.plots import (  # noqa: E402
    FIGURES,
    cumulative_plot,
    funnel_plot,
    leave_one_out_plot,
    sensitivity_plot,
    write_figure,
)


def flat(pairs) -> list[float]:
    return [float(v) for pair in pairs for v in pair]


def gid_lines(fig, prefix: str, ax_index: int = 0) -> list:
    return [line for line in fig.axes[ax_index].lines if (line.get_gid() or "").startswith(prefix)]


@pytest.fixture(scope="module")
def funnels():
    return {
        name: funnel_plot(load(name))
        for name in ("hr", "hr_k12", "proportion_k12", "proportion_glmm")
    }


def test_funnel_points_are_the_studies(funnels):
    for name, fig in funnels.items():
        doc = load(name)
        points = gid_lines(fig, "study-point-")
        assert len(points) == len(doc["studies"]) == fig.metapool["k"]
        drawn = sorted((p.get_xdata()[0], p.get_ydata()[0]) for p in points)
        expected = sorted((s["yi"], s["sei"]) for s in doc["studies"])
        assert flat(drawn) == pytest.approx(flat(expected))
        lo, hi = fig.axes[0].get_ylim()
        assert lo > hi == 0.0  # SE axis inverted: precise studies at the top
        assert fig.metapool["yinverted"] is True


def test_funnel_contours_for_hazard_ratios(funnels):
    fig, doc = funnels["hr_k12"], load("hr_k12")
    assert fig.metapool["contours"] == [0.9, 0.95, 0.99]
    assert fig.metapool["null"] == 0.0 and fig.metapool["xscale"] == "log HR"
    ymax = fig.axes[0].get_ylim()[0]
    for level, z in ((90, 1.6448536269514722), (95, 1.959963984540054), (99, 2.5758293035489004)):
        tri = next(p for p in fig.axes[0].patches if p.get_gid() == f"contour-{level}")
        xy = tri.get_xy()
        assert (xy[0][0], xy[0][1]) == (0.0, 0.0)  # apex at log HR 0, SE 0
        assert xy[2][0] == pytest.approx(z * ymax)
    # the pooled line at the overall log HR, labelled on the natural scale
    pooled = gid_lines(fig, "pooled")[0]
    assert pooled.get_xdata()[0] == pytest.approx(doc["models"][0]["estimate_model"])
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "1" in labels
    assert fig.metapool["caveat"] is None  # k = 12
    drawn = " ".join(texts(fig))
    assert "p \u2264 0.01" in drawn and "Peters" in drawn


def test_funnel_trim_and_fill_as_open_circles(funnels):
    for name in ("hr_k12", "proportion_k12", "hr"):
        fig, doc = funnels[name], load(name)
        filled = doc["bias"]["trimfill"]["filled"]
        assert filled
        drawn = gid_lines(fig, "filled-point-")
        assert len(drawn) == len(filled) == len(fig.metapool["filled"])
        for line, f in zip(drawn, filled, strict=True):
            assert line.get_xdata()[0] == pytest.approx(f["yi"])
            assert line.get_ydata()[0] == pytest.approx(f["vi"] ** 0.5)
            assert line.get_markerfacecolor() == "white"
        assert gid_lines(fig, "trimfill-adjusted")


def test_funnel_for_proportions_has_pseudo_ci_and_sample_size_panel(funnels):
    fig, doc = funnels["proportion_k12"], load("proportion_k12")
    assert fig.metapool["contours"] == [] and fig.metapool["null"] is None
    assert fig.metapool["pseudo_ci"] == 0.95
    assert fig.metapool["panels"] == ["se", "n"] and len(fig.axes) == 2
    center = doc["models"][0]["estimate_model"]
    upper = gid_lines(fig, "pseudo-ci-upper")[0]
    ymax = fig.axes[0].get_ylim()[0]
    assert upper.get_xdata() == pytest.approx([center, center + 1.959963984540054 * ymax])
    n_points = gid_lines(fig, "n-point-", ax_index=1)
    drawn = sorted((p.get_xdata()[0], p.get_ydata()[0]) for p in n_points)
    expected = sorted((s["yi"], s["total"]) for s in doc["studies"])
    assert flat(drawn) == pytest.approx(flat(expected))
    assert "would not be meaningful" in " ".join(texts(fig))


def test_funnel_caveat_below_ten_studies(funnels):
    fig = funnels["proportion_glmm"]
    caveat = "k = 6: funnel plots are unreliable with fewer than 10 studies"
    assert fig.metapool["caveat"] == caveat
    assert caveat in texts(fig)


def test_funnel_single_study_is_a_placeholder():
    fig = funnel_plot(load("single_study"))
    assert fig.metapool["placeholder"] is True and fig.metapool["figure"] == "funnel"
    assert "Funnel plot not drawn: k = 1" in fig.metapool["message"]
    assert fig.axes == []


def test_leave_one_out_rows_and_reference():
    doc = load("proportion_glmm")
    fig = leave_one_out_plot(doc)
    meta = fig.metapool
    rows = [r for r in meta["rows"] if r["kind"] == "row"]
    section = doc["leave_one_out"]["rows"]
    assert [r["label"] for r in rows] == [r["omitted"] for r in section]
    assert [r["estimate"] for r in rows] == pytest.approx([r["estimate"] * 100 for r in section])
    assert [r["lower"] for r in rows] == pytest.approx([r["ci_lower"] * 100 for r in section])
    drawn = [line.get_xdata()[0] for line in gid_lines(fig, "point-")]
    assert drawn == pytest.approx([r["estimate"] * 100 for r in section])
    # the all-studies estimate of the same (inverse-variance) model: the last cumulative
    # step, drawn as a diamond and a dashed line
    full = doc["cumulative"]["rows"][-1]["estimate"] * 100
    summary = next(r for r in meta["rows"] if r["kind"] == "summary")
    assert summary["label"] == "All studies" and summary["estimate"] == pytest.approx(full)
    assert meta["reference_lines"] == [{"kind": "all-studies", "x": pytest.approx(full)}]
    assert meta["xscale"] == "linear" and meta["xunit"] == "percent"
    assert "Leave-one-out analysis" in texts(fig)
    assert any("binomial-normal GLMM" in t for t in texts(fig))  # names the primary model


def test_leave_one_out_hazard_ratios_on_log_axis():
    doc = load("hr")
    fig = leave_one_out_plot(doc)
    assert fig.metapool["xscale"] == "log" and fig.axes[0].get_xscale() == "log"
    kinds = {r["kind"]: r["x"] for r in fig.metapool["reference_lines"]}
    assert kinds["null"] == 1.0
    assert fig.metapool["n_rows"] == len(doc["leave_one_out"]["rows"]) + 1


def test_cumulative_rows():
    doc = load("hr")
    fig = cumulative_plot(doc)
    rows = [r for r in fig.metapool["rows"] if r["kind"] == "row"]
    section = doc["cumulative"]["rows"]
    assert len(rows) == len(section)
    # step 1 is the first study alone (open marker), later steps are pooled estimates
    first = next(s for s in doc["studies"] if s["label"] == section[0]["added"])
    assert rows[0]["estimate"] == pytest.approx(first["effect"])
    assert gid_lines(fig, "point-")[0].get_markerfacecolor() == "white"
    assert [r["estimate"] for r in rows[1:]] == pytest.approx([r["estimate"] for r in section[1:]])
    ref = {r["kind"]: r["x"] for r in fig.metapool["reference_lines"]}
    assert ref["all-studies"] == pytest.approx(section[-1]["estimate"])
    drawn = texts(fig)
    assert str(first["year"]) in drawn  # years as 2019, not 2,019
    assert "Cumulative meta-analysis by publication year" in drawn


@pytest.mark.parametrize(
    ("draw", "message"),
    [
        (
            leave_one_out_plot,
            "Leave-one-out analysis not done: it needs at least 3 studies (k = 1).",
        ),
        (
            cumulative_plot,
            "Cumulative meta-analysis not done: it needs at least 2 studies (k = 1).",
        ),
        (sensitivity_plot, "Sensitivity analyses not done: single study (k = 1)."),
    ],
)
def test_placeholders_when_a_section_is_null(draw, message):
    fig = draw(load("single_study"))
    assert fig.metapool["placeholder"] is True
    assert fig.metapool["message"] == message
    assert message in texts(fig)


def test_leave_one_out_placeholder_for_two_studies():
    doc = load("hr")
    doc["leave_one_out"] = None
    doc["models"][0]["k"] = 2
    fig = leave_one_out_plot(doc)
    assert fig.metapool["message"].endswith("(k = 2).")


def test_sensitivity_panel_marks_primary_and_changed():
    doc = load("hr")
    fig = sensitivity_plot(doc)
    meta = fig.metapool
    rows = [r for r in meta["rows"] if r["kind"] == "row"]
    assert len(rows) == len(doc["sensitivity"])
    primary = doc["sensitivity"][0]
    assert rows[0]["marker"] == "D" and rows[0]["label"].startswith("Primary analysis")
    assert rows[0]["estimate"] == pytest.approx(primary["estimate"])
    changed = {v["description"] for v in doc["sensitivity"] if v["changed"]}
    for row in rows[1:]:
        is_changed = row["label"].lower() in {c.lower() for c in changed}
        assert row["highlight"] is is_changed
        assert row["marker"] == ("^" if is_changed else "o")
    assert sum(r["highlight"] for r in rows) == meta["n_changed"] == 1
    assert meta["band"] == pytest.approx((primary["ci_lower"], primary["ci_upper"]))
    ref = {r["kind"]: r["x"] for r in meta["reference_lines"]}
    assert ref["null"] == 1.0 and ref["primary"] == pytest.approx(primary["estimate"])
    assert "inconclusive" in texts(fig)


def test_sensitivity_panel_not_pooled_variant_is_a_note():
    doc = load("proportion_subgroups")
    fig = sensitivity_plot(doc)
    notes = [r for r in fig.metapool["rows"] if r["kind"] == "note"]
    assert [n["label"] for n in notes] == ["Children only"]
    assert fig.metapool["xunit"] == "percent"
    assert any(r["highlight"] for r in fig.metapool["rows"] if r["kind"] == "row")


def test_secondary_figure_text_is_escaped(tmp_path):
    doc = load("hr")
    doc["leave_one_out"]["rows"][0]["omitted"] = "<script>alert(1)</script> $x$"
    path = tmp_path / "loo.svg"
    save_figure(leave_one_out_plot(doc), path)
    svg = path.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; $x$" in svg and "<script" not in svg


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_secondary_figures_byte_identical(tmp_path, name):
    doc = load("hr")
    for ext in ("svg", "png", "pdf"):
        first, second = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
        save_figure(FIGURES[name](doc), first)
        save_figure(FIGURES[name](doc), second)
        assert first.read_bytes() == second.read_bytes(), ext
    assert b"CreationDate" not in (tmp_path / "a.pdf").read_bytes()


def test_write_figure_writes_every_format(tmp_path):
    paths = [tmp_path / f"f.{ext}" for ext in ("svg", "png", "pdf")]
    fig = write_figure(funnel_plot(load("hr")), *paths)
    assert fig.metapool["figure"] == "funnel"
    assert [p.read_bytes()[:4] for p in paths] == [b"<?xm", b"\x89PNG", b"%PDF"]


def test_figures_work_on_every_fixture():
    for path in sorted(FIXTURES.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for name, draw in FIGURES.items():
            fig = draw(doc)
            assert fig.metapool["figure"] == name, (path.name, name)


# --------------------------------------------------------------------------- risk of bias

ROB_STUDIES = [
    {"study_id": "Trial1", "author": "Ames", "year": 2019, "n_total": 100},
    {"study_id": "Trial2", "author": "Bell", "year": 2020, "n_total": 300},
    {"study_id": "Cohort1", "author": "<b>Cole & Co</b>", "year": 2021, "n_total": 50},
    {"study_id": "Series1", "author": "", "year": 2022, "n_total": 30},
]
RB2 = ["D1 randomisation process", "D2 deviations from intended interventions",
       "D3 missing outcome data", "D4 measurement of the outcome",
       "D5 selection of the reported result", "Overall"]
RI = ["D1 confounding", "D2 selection of participants", "D3 classification of interventions",
      "D4 deviations from intended interventions", "D5 missing data",
      "D6 measurement of outcomes", "D7 selection of the reported result", "Overall"]


def rob_rows() -> list[dict]:
    rows = []
    for sid, judgements in (("Trial1", ["low"] * 6),
                            ("Trial2", ["low", "some concerns", "high", "low", "low", "high"])):
        rows += [{"study_id": sid, "tool": "RoB 2", "domain": d, "judgement": j, "stars": None,
                  "support": "s"} for d, j in zip(RB2, judgements)]
    judgements = ["serious", "no information", "low", "moderate", "low", "low", "critical",
                  "critical"]
    rows += [{"study_id": "Cohort1", "tool": "ROBINS-I", "domain": d, "judgement": j,
              "stars": None, "support": "s"} for d, j in zip(RI, judgements)]
    for domain, judgement, stars in (("selection", "fair", 2), ("comparability", "poor", 0),
                                     ("outcome", "good", 3), ("Overall", "poor", 5)):
        rows.append({"study_id": "Series1", "tool": "Newcastle-Ottawa", "domain": domain,
                     "judgement": judgement, "stars": stars, "support": "s"})
    return rows


def test_rob_traffic_light_draws_one_circle_per_judgement():
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Circle

    from metapool import rob
    from metapool.plots import rob_traffic_light

    rows = rob_rows()
    fig = rob_traffic_light(rows, ROB_STUDIES)
    meta = fig.metapool
    assert meta["figure"] == "rob_traffic_light"
    assert [p["tool"] for p in meta["panels"]] == ["RoB 2", "ROBINS-I", "Newcastle-Ottawa"]
    assert [p["studies"] for p in meta["panels"]] == [
        ["Ames 2019", "Bell 2020"], ["<b>Cole & Co</b> 2021"], ["Series1"]]
    assert meta["panels"][0]["headers"] == ["D1", "D2", "D3", "D4", "D5", "Overall"]
    assert [len(p["domains"]) for p in meta["panels"]] == [6, 8, 4]
    assert meta["n_circles"] == len(rows) == 24
    cells = [c for p in meta["panels"] for c in p["cells"]]
    given = {(r["study_id"], r["domain"]): r["judgement"] for r in rows}
    assert {(c["study_id"], c["domain"]): c["judgement"] for c in cells} == given
    for c in cells:
        assert (c["color"], c["symbol"]) == rob.STYLE[c["judgement"]]
    assert {c["color"] for c in cells if c["judgement"] in ("high", "serious", "poor")} == {
        "#D55E00"}
    assert [c["stars"] for c in cells if c["study_id"] == "Series1"] == [2, 0, 3, 5]
    # the drawn circles: one per judgement plus the legend's (3 + 5 + 3 judgements)
    circles = [a for a in fig.artists if isinstance(a, Circle)]
    assert len(circles) == 24 + 11
    drawn = [a.get_facecolor() for a in circles[:6]]  # Trial1's row: all low
    assert drawn == [to_rgba(rob.STYLE["low"][0])] * 6
    shown = texts(fig)
    assert "Bell 2020" in shown and "5\u2605" in shown and "\u00d7" in shown and "!" in shown
    assert any(t.startswith("D1: randomisation process; D2:") for t in shown)


def test_rob_summary_weights_by_sample_size():
    from metapool.plots import rob_summary

    fig = rob_summary(rob_rows(), ROB_STUDIES)
    meta = fig.metapool
    assert meta["figure"] == "rob_summary" and meta["weighted"] and meta["note"] == ""
    panels = {p["tool"]: p for p in meta["panels"]}
    assert panels["RoB 2"]["total_weight"] == 400 and panels["RoB 2"]["n_studies"] == 2
    bars = {b["domain"]: {s["judgement"]: s["proportion"] for s in b["segments"]}
            for b in panels["RoB 2"]["bars"]}
    assert list(bars) == RB2
    assert bars["Overall"] == pytest.approx({"low": 0.25, "some concerns": 0.0, "high": 0.75})
    d2 = bars["D2 deviations from intended interventions"]
    assert d2["some concerns"] == pytest.approx(0.75)
    for panel in meta["panels"]:
        for bar in panel["bars"]:
            assert sum(s["proportion"] for s in bar["segments"]) == pytest.approx(1.0)
    nos = panels["Newcastle-Ottawa"]["bars"]
    assert [b["domain"] for b in nos] == ["selection", "comparability", "outcome", "Overall"]
    # one bar segment per judgement with a share > 0
    patches = sum(len(ax.patches) for ax in fig.axes)
    positive = sum(s["proportion"] > 0 for p in meta["panels"] for b in p["bars"]
                   for s in b["segments"])
    assert patches == positive
    assert "75%" in texts(fig) and "25%" in texts(fig)


def test_rob_summary_unweighted_and_without_sample_sizes():
    from metapool.plots import rob_summary

    fig = rob_summary(rob_rows(), ROB_STUDIES, weighted=False)
    overall = fig.metapool["panels"][0]["bars"][-1]["segments"]
    assert not fig.metapool["weighted"] and fig.metapool["note"] == ""
    assert [s["proportion"] for s in overall] == pytest.approx([0.5, 0.0, 0.5])
    studies = [dict(s, n_total=None) if s["study_id"] == "Trial2" else s for s in ROB_STUDIES]
    fig = rob_summary(rob_rows(), studies)
    assert not fig.metapool["weighted"]
    assert fig.metapool["note"] == ("Unweighted: no sample size (n_total) for Trial2; every "
                                    "study counts once.")
    assert any(t.startswith("Unweighted: no sample size (n_total)") for t in texts(fig))


def test_rob_figures_without_rows_are_placeholders():
    from metapool.plots import rob_summary, rob_traffic_light

    for draw, name in ((rob_traffic_light, "rob_traffic_light"), (rob_summary, "rob_summary")):
        fig = draw([], ROB_STUDIES)
        assert fig.metapool == {"figure": name, "placeholder": True,
                                "message": "No risk-of-bias assessment was supplied."}


def test_rob_figures_byte_identical_and_escaped(tmp_path):
    from metapool.plots import rob_summary, rob_traffic_light

    for draw in (rob_traffic_light, rob_summary):
        for ext in ("svg", "png", "pdf"):
            first, second = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
            write_figure(draw(rob_rows(), ROB_STUDIES), first)
            write_figure(draw(rob_rows(), ROB_STUDIES), second)
            assert first.read_bytes() == second.read_bytes(), (draw.__name__, ext)
    save_figure(rob_traffic_light(rob_rows(), ROB_STUDIES), tmp_path / "t.svg")
    svg = (tmp_path / "t.svg").read_text(encoding="utf-8")
    assert "&lt;b&gt;Cole &amp; Co&lt;/b&gt; 2021" in svg and "<b>" not in svg


def test_rob_figures_of_the_default_data():
    from metapool.io import TABLES, load_tables
    from metapool.plots import rob_summary, rob_traffic_light

    data = Path(__file__).resolve().parents[1] / "data" / "raw"
    tables = load_tables(*(data / f"{t}.csv" for t in TABLES),
                         risk_of_bias=data / "risk_of_bias.csv")
    fig = rob_traffic_light(tables.risk_of_bias, tables.studies)
    assert fig.metapool["n_circles"] == len(tables.risk_of_bias)
    assert {p["tool"]: len(p["studies"]) for p in fig.metapool["panels"]} == {
        "RoB 2": 4, "ROBINS-I": 5, "Newcastle-Ottawa": 4}
    fig = rob_summary(tables.risk_of_bias, tables.studies)
    assert fig.metapool["weighted"]
    n = dict(zip(tables.studies["study_id"], tables.studies["n_total"]))
    rob2 = {"Yu2015", "Dhondt2022", "Salem2016", "Wei2020"}
    assert fig.metapool["panels"][0]["total_weight"] == sum(n[s] for s in rob2)
