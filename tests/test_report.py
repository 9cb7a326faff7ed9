"""Tests of metapool.report: content, escaping, self-containment, determinism."""

from __future__ import annotations

import base64
import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from metapool.report import render_report, write_report
from metapool.formatting import (
    doi_url,
    fmt_effect,
    fmt_effect_ci,
    fmt_interval,
    fmt_p,
    fmt_pct,
    fmt_tau2,
    heterogeneity_text,
    p_phrase,
)

FIXTURES = Path(__file__).parent / "fixtures" / "analysis"
#: proportion_subgroups and hr carry every section of the current document;
#: proportion_glmm is a real GLMM document (no study weights); single_study is an older
#: document without the secondary-analysis sections and must still render.
NAMES = ["proportion_subgroups", "hr", "single_study", "proportion_glmm"]
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>x</text></svg>'


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def docs() -> list[dict]:
    return [load(name) for name in NAMES]


def figures(ds: list[dict]) -> dict:
    return {d["analysis"]: SVG for d in ds}


class Page(HTMLParser):
    """Collects tags with their attributes and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("style", "script"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


@pytest.fixture(scope="module")
def html() -> str:
    ds = docs()
    return render_report(ds, figures(ds), title="Drug X evidence synthesis")


def test_contains_titles_labels_and_estimates(html):
    for doc in docs():
        assert str(escape(doc["title"])) in html
        for study in doc["studies"]:
            assert str(escape(study["label"])) in html
        for row in doc["excluded"]:
            assert str(escape(row["reason"])) in html
    assert "Drug X evidence synthesis" in html
    # pooled estimates, formatted by the filters
    assert "67.2% (45.8–83.2)" in html  # overall proportion
    assert "70.1% (16.8–96.5)" in html  # subgroup Adults
    assert "0.77 (0.63–0.94)" in html  # overall HR
    assert "0.55–1.09" in html  # HR prediction interval
    assert "18.5% (9.9–30.0)" in html  # single study shown in the summary
    assert "τ² = 0.3390 (95% CI 0.1105–10.22); τ = 0.5822; I² = 73.8% (95% CI 47.8–98.8%)" in html
    assert "0.3390" in html and "73.8%" in html and "20.96 (6)" in html
    # ongoing studies, methods text, software versions, warnings
    assert "NCT05550000" in html
    assert "Hartung-Knapp-Sidik-Jonkman method" in html
    assert "matplotlib 3.11.2" in html
    assert 'class="warnings"' in html and "100% events" in html


def test_sections_have_anchors_linked_from_summary(html):
    page = parse(html)
    ids = {attrs["id"] for _, attrs in page.tags if "id" in attrs}
    for doc in docs():
        assert f"analysis-{doc['analysis']}" in ids
        assert f'href="#analysis-{doc["analysis"]}"' in html


def test_study_details(html):
    # how the effect was obtained, derivation, verbatim source quote and the DOI link
    assert "continuity correction added" in html
    assert "SE from the two-sided p-value" in html
    assert str(escape("HR 0.61 (90% CI 0.45-0.82), p<0.001")) in html
    assert 'href="https://doi.org/10.1000/alvarez.2019"' in html
    assert "0.61 (0.45–0.82; 90% CI)" in html  # reported HR with a non-95% CI
    assert "0.93; p = 0.580" in html


def test_doi_is_quoted_and_escaped(html):
    # Müller's DOI contains < and >: percent-encoded in the URL, escaped in the text
    assert 'href="https://doi.org/10.1000/jmr.2021.%3C17%3E"' in html
    assert "doi:10.1000/jmr.2021.&lt;17&gt;" in html


def test_data_text_is_escaped():
    ds = docs()
    bad = "<script>alert(1)</script>"
    ds[1]["title"] = bad
    ds[1]["studies"][0]["label"] = bad
    ds[1]["studies"][0]["source"] = bad
    ds[1]["studies"][0]["doi"] = bad
    ds[1]["studies"][0]["group"] = '"><img src=x onerror=alert(1)>'
    ds[1]["excluded"][0]["reason"] = bad
    ds[1]["warnings"].append(bad)
    ds[1]["methods"]["text"] = bad
    ds[1]["software"][bad] = bad
    out = render_report(ds, figures(ds), title=bad, generated_note=bad)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "<script" not in out.lower()
    assert "<img src=x" not in out
    page = parse(out)
    assert not any(tag == "script" for tag, _ in page.tags)
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)


def test_no_external_resources(html):
    page = parse(html)
    assert "http://" not in html
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed")
        if "src" in attrs:
            assert attrs["src"].startswith("data:"), attrs["src"][:40]
        if "href" in attrs:
            assert tag == "a"
            assert attrs["href"].startswith(("#", "https://doi.org/")), attrs["href"]
    # every https:// URL is a doi.org anchor
    for match in re.finditer(r"https://", html):
        assert html[match.start() :].startswith("https://doi.org/")
        assert html[max(0, match.start() - 6) : match.start()] == 'href="'
    assert "@import" not in html and "url(" not in html
    assert "Content-Security-Policy" in html


def test_images_are_data_uris_with_alt(html):
    imgs = [attrs for tag, attrs in parse(html).tags if tag == "img"]
    assert len(imgs) == len(NAMES)
    for attrs in imgs:
        assert attrs["src"].startswith("data:image/svg+xml;base64,")
        assert base64.b64decode(attrs["src"].split(",", 1)[1]) == SVG
        assert attrs["alt"].startswith("Forest plot: ")


def test_figures_from_paths_and_missing_figure(tmp_path):
    ds = docs()
    svg_path = tmp_path / "f.svg"
    svg_path.write_bytes(SVG)
    out = render_report(
        ds, {ds[0]["analysis"]: svg_path, ds[1]["analysis"]: str(svg_path)}, title="t"
    )
    assert out.count("data:image/svg+xml;base64,") == 2
    assert "Forest plot not available." in out


def test_render_is_deterministic(html):
    ds = docs()
    assert render_report(ds, figures(ds), title="Drug X evidence synthesis") == html


def test_missing_values_render_as_dash(html):
    text = "".join(parse(html).text)
    assert not re.search(r"\b(None|nan|NaN|null|undefined|inf)\b", text)
    # nor anywhere in the markup (attributes, classes), figures aside
    markup = re.sub(r"data:[^\"]+", "", html)
    assert not re.search(r"\b(None|nan|NaN|undefined)\b", markup)
    # the k = 1 subgroup row has no estimate, PI, tau2, ...
    row = re.search(r"<td>Older adults</td>(.*?)</tr>", html, re.S).group(1)
    assert row.count("—") >= 6
    assert "not pooled: single study" in row


def test_write_report(tmp_path):
    ds = docs()
    out = write_report(ds, figures(ds), tmp_path / "sub" / "report.html", title="Report")
    data = out.read_bytes()
    assert data.decode("utf-8") == render_report(ds, figures(ds), title="Report")
    assert b"\r\n" not in data


def test_document_without_required_key():
    doc = load("hr")
    del doc["studies"]
    with pytest.raises(ValueError, match="studies"):
        render_report([doc], {}, title="t")


def test_with_real_forest_plot(tmp_path):
    from metapool.plots import forest_plot, save_figure

    doc = load("proportion_subgroups")
    path = save_figure(forest_plot(doc), tmp_path / "f.svg")
    out = render_report([doc], {doc["analysis"]: path}, title="t")
    uri = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', out).group(1)
    assert base64.b64decode(uri) == path.read_bytes()


def test_formatters():
    assert fmt_effect(0.7105, "PLO") == "71.1%"
    assert fmt_effect(None, "PLO") == "—"
    assert fmt_effect(float("nan"), "HR") == "—"
    assert fmt_effect_ci(0.7105, 0.5731, 0.8224, "PLO") == "71.1% (57.3–82.2)"
    assert fmt_effect_ci(0.7234, 0.551, 0.9449, "HR") == "0.72 (0.55–0.94)"
    assert fmt_effect_ci(0.72, None, None, "HR") == "0.72"
    assert fmt_interval(None, 0.5, "PLO") == "—"
    assert fmt_effect(0.045, "HR") == "0.045"
    assert fmt_p(0.10123) == "0.101"
    assert fmt_p(0.0004) == "<0.001"
    assert fmt_p("<0.001") == "<0.001"
    assert fmt_p("0.03") == "0.030"
    assert fmt_p(None) == "—"
    assert p_phrase(0.0001) == "p < 0.001"
    assert p_phrase(0.25) == "p = 0.250"
    assert fmt_tau2(0.123) == "0.1230"
    assert fmt_tau2(0.0) == "0"
    assert fmt_tau2(1e-7) == "<0.0001"
    assert fmt_pct(45.61) == "45.6%"
    assert heterogeneity_text({"tau2": 0.123, "i2": 45.6, "q": 9.2, "q_df": 5, "q_p": 0.101}) == (
        "τ² = 0.1230; I² = 45.6%; Q = 9.20 (df = 5), p = 0.101"
    )
    assert (
        heterogeneity_text({"tau2": None, "i2": None, "q": None, "q_df": None, "q_p": None}) == ""
    )
    assert doi_url("10.1000/abc") == "https://doi.org/10.1000/abc"
    assert doi_url("https://doi.org/10.1000/abc") == "https://doi.org/10.1000/abc"
    assert doi_url("javascript:alert(1)") is None
    assert doi_url(None) is None


def test_docs_are_not_modified():
    ds = docs()
    before = copy.deepcopy(ds)
    render_report(ds, figures(ds), title="t")
    assert ds == before
