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
from metapool.report import render_report, write_report

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
    assert "τ² = 0.3390 (95% CI 0.1105–10.22); τ = 0.5822;" in html
    assert "I² = 73.8% (95% CI 47.8–98.8%)" in html
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
    row = re.search(r"<td>Older adults</td>(.*?)</tr>", html, re.DOTALL).group(1)
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


# --------------------------------------------------------------------------- new sections


def section(html: str, analysis: str) -> str:
    """The HTML of one analysis section."""
    match = re.search(
        rf'<section class="analysis" id="analysis-{re.escape(analysis)}">(.*?)</section>',
        html,
        re.DOTALL,
    )
    assert match, analysis
    return match.group(1)


def rows_with_class(fragment: str, cls: str) -> list[str]:
    """The ``<tr>`` elements of a fragment whose class is ``cls``."""
    return re.findall(rf'<tr class="{cls}">(.*?)</tr>', fragment, re.DOTALL)


def visible(fragment: str) -> str:
    """Visible text of a fragment, one space between text nodes, whitespace collapsed."""
    return re.sub(r"\s+", " ", " ".join(parse(fragment).text)).strip()


def test_summary_shows_model_and_i2_ci(html):
    start = html.index('<table class="summary">')
    summary = html[start : html.index("</table>", start)]
    text = visible(summary)
    assert text.count("REML · HKSJ CI") == 3
    assert "GLMM · t-based CI" in text
    assert "73.8% (47.8–98.8)" in text  # I² with its Q-profile CI
    assert "27.8% (0.0–92.6)" in text
    # the GLMM has no CI for I²: the value alone
    assert re.search(r"38\.0–86\.1\s*</td>\s*<td[^>]*>70\.0%</td>", summary)
    # analyses whose sensitivity panel changes the conclusion are flagged
    assert text.count("▲ sensitivity: 1 of 5 changed") == 1  # proportions
    assert text.count("▲ sensitivity: 1 of 4 changed") == 1  # HR
    assert 'href="#analysis-response_by_age-sensitivity"' in summary


def test_methods_section(html):
    prop = visible(section(html, "response_by_age"))
    assert "Method profile metafor — metafor defaults with <HKSJ> & t-based PI" in prop
    assert "Model random effects (inverse variance); τ² by REML" in prop
    assert "Confidence interval (95%) Hartung-Knapp-Sidik-Jonkman (t, k − 1 df)" in prop
    assert "Prediction interval (95%) t distribution, k − 1 df" in prop
    assert "I² from τ² and the typical within-study variance (τ²-based)" in prop
    assert "CI of τ², I², H² Q-profile" in prop
    assert "Set in the config ci = hksj, pi = t" in prop
    assert "Logged substitutions a continuity correction of 0.5 was added to Okafor 2022" in prop
    assert "Secondary analyses inverse-variance logit model, REML tau², HKSJ CI" in prop
    glmm = visible(section(html, "orr_glmm"))
    assert "binomial-normal GLMM (random-intercept logistic regression); τ² by ML" in glmm
    assert "Wald standard error with t quantiles (k − 1 df)" in glmm
    assert "not available (no Q-profile CI for the GLMM)" in glmm
    assert "Set in the config nothing (all methods from the profile)" in glmm
    assert "Logged substitutions none" in glmm
    assert "Methods follow the 'cochrane2025' profile" in glmm  # the methods paragraph
    # the methods come right after the pooled table, before the secondary analyses
    raw = section(html, "orr_glmm")
    assert raw.index("Pooled estimates") < raw.index("-methods") < raw.index("-heterogeneity")


def test_methods_pi_variants():
    doc = load("hr")
    doc["models"][0].update(ci_method="hksj_adhoc", pi_method="riley")
    out = visible(render_report([doc], {}, title="t"))
    assert "never narrower than Wald (ad hoc)" in out
    assert "t distribution, k − 2 df (Riley et al. 2011" in out
    assert "HKSJ (ad hoc) CI" in out  # summary


def test_heterogeneity_with_q_profile_cis(html):
    prop = section(html, "response_by_age")
    text = visible(prop)
    assert "τ² = 0.3390 (95% CI 0.1105–10.22)" in text
    assert "I² = 73.8% (95% CI 47.8–98.8%)" in text
    assert "H² = 3.81 (95% CI 1.92–85.67)" in text
    # one row per model, the subgroups with their own CIs
    table = re.search(r'<table class="heterogeneity">(.*?)</table>', prop, re.DOTALL).group(1)
    adults = visible(re.search(r"<td>Adults</td>(.*?)</tr>", table, re.DOTALL).group(1))
    assert "1.1730 (0.1617–56.67)" in adults and "92.5% (63.0–99.8)" in adults
    older = re.search(r"<td>Older adults</td>(.*?)</tr>", table, re.DOTALL).group(1)
    assert older.count("—") == 6
    assert "CIs of τ², I² and H²: Q-profile." in text
    hr = visible(section(html, "os_drugx"))
    assert "τ² = 0.0067 (95% CI 0–0.2172)" in hr  # 0.00672 to 4 decimals
    glmm = visible(section(html, "orr_glmm"))
    assert "τ² = 0.1543; τ = 0.3928; I² = 70.0%;" in glmm
    assert "No CI of τ², I² or H² is available for the GLMM" in glmm


def test_subgroup_tests_both_labelled(html):
    prop = section(html, "response_by_age")
    table = re.search(r'<table class="subgroup-tests">(.*?)</table>', prop, re.DOTALL).group(1)
    text = visible(table)
    assert "Separate τ² per subgroup (Q between subgroups)" in text
    assert "Common τ² (mixed-effects meta-regression on the subgroup)" in text
    assert "Q = 0.90 (χ², df = 2)" in text and "0.638" in text
    assert "F = 0.12 (df = 2, 4)" in text and "0.894" in text
    assert "residual τ² = 0.9494" in text
    assert text.count("inverse-variance logit model, REML tau², HKSJ CI") == 2
    glmm = visible(section(html, "orr_glmm"))
    assert "Q = 15.65 (χ², df = 2)" in glmm and "GLMM per subgroup" in glmm
    assert "F = 3.90 (df = 2, 3)" in glmm
    # no subgroups, no section
    assert "Tests for subgroup differences" not in section(html, "os_drugx")


def test_subgroup_test_not_computed_shows_reason():
    doc = load("proportion_subgroups")
    doc["subgroup_tests"][1].update(
        statistic=None, df=None, df2=None, p_value=None, tau2=None,
        reason="meta-regression on the subgroup factor not possible: singular design",
    )
    text = visible(render_report([doc], {}, title="t"))
    assert "not computed meta-regression on the subgroup factor not possible" in text
    doc["subgroup_tests"] = None  # subgroups configured but fewer than two levels
    text = visible(render_report([doc], {}, title="t"))
    assert "Not computed: fewer than two subgroups have studies." in text


def test_sensitivity_changed_rows_stand_out(html):
    prop = section(html, "response_by_age")
    changed = rows_with_class(prop, "changed")
    assert len(changed) == 1
    assert "high-dose cohorts only (Okafor 2022, Chen 2020)" in changed[0]
    assert "94.5% (0.0–100.0)" in changed[0] and "▲ yes" in changed[0]
    text = visible(prop)
    assert "1 of 5 variants changes the conclusion: high-dose cohorts only" in text
    assert (
        "a variant is flagged when its estimate lies outside the primary analysis's 95% CI "
        "(45.8–83.2)" in text
    )
    assert "not pooled: fit failed" in text  # a variant without estimate: status, dash
    assert "63.7% (48.1–76.9)" in text  # an unchanged variant
    hr = section(html, "os_drugx")
    changed = rows_with_class(hr, "changed")
    assert len(changed) == 1
    assert "low risk of bias only (Brooks 2021 &amp; &lt;Dubois&gt; 2023)" in changed[0]
    assert "inconclusive" in changed[0]
    text = visible(hr)
    assert "entirely below 1 = favours experimental" in text
    assert text.count("favours experimental") >= 4
    glmm = visible(section(html, "orr_glmm"))
    assert "No variant changes the conclusion of the primary analysis." in glmm
    assert not rows_with_class(section(html, "orr_glmm"), "changed")


def test_sensitivity_threshold_rule():
    doc = load("proportion_subgroups")
    for row in doc["sensitivity"]:
        if row["estimate"] is not None:
            row["conclusion"] = "above 0.3" if row["ci_lower"] > 0.3 else "includes 0.3"
    text = visible(render_report([doc], {}, title="t"))
    assert "Conclusion relative to the configured threshold (30.0%)" in text
    assert "includes 0.3" in text and "above 0.3" in text


def test_leave_one_out_and_cumulative(html):
    prop = section(html, "response_by_age")
    text = visible(prop)
    assert (
        "Omitting one study at a time, the estimate ranged from 62.2% (without Chen 2020) "
        "to 70.7% (without Silva & O'Neil 2023)." in text
    )
    loo = re.search(r'<table class="leave-one-out">(.*?)</table>', prop, re.DOTALL).group(1)
    chen = '<td>Chen 2020</td><td class="num">6</td><td class="est">62.2% (44.1–77.4)</td>'
    assert chen in loo
    cum = re.search(r'<table class="cumulative">(.*?)</table>', prop, re.DOTALL).group(1)
    first = visible(re.search(r"<tr>(.*?)</tr>", cum.split("<tbody>")[1], re.DOTALL).group(1))
    assert first.startswith("1 Ivanova 2019 1 — — — —")
    assert "not pooled: single study" in first
    assert "75.9% (0.0–100.0)" in cum
    assert "studies added in order of publication year (7 steps)" in text
    assert text.count("Model: inverse-variance logit model, REML tau², HKSJ CI.") >= 2
    # the long tables are collapsible but print expanded
    assert prop.count("<details>") == 3 and prop.count('<div class="details-body">') == 3
    css = html[html.index("@media print") :]
    assert "details::details-content { content-visibility: visible" in css
    assert "details:not([open]) > .details-body { display: block; }" in css


def test_influence_highlighted_with_rule(html):
    glmm = section(html, "orr_glmm")
    flagged = rows_with_class(glmm, "influential")
    assert len(flagged) == 1 and "Anon2025_FrontOncol_BACE" in flagged[0]
    assert "▲ yes: DFFITS, DFBETAS" in flagged[0]
    assert '<td class="num hit">−1.77</td>' in flagged[0]  # DFFITS beyond its threshold
    text = visible(glmm)
    assert "Influential: Anon2025_FrontOncol_BACE (DFFITS, DFBETAS)." in text
    assert "Rule: influential (metafor 3.8-1 influence.rma.uni" in text
    assert (
        "Thresholds here: |DFFITS| > 1.34; Cook's D > 0.45; hat > 0.50; |DFBETAS| > 1.00"
        in text
    )
    prop = visible(section(html, "response_by_age"))
    assert "No study meets the influence criteria." in prop


def test_small_study_effects(html):
    # the caveat is in every analysis, computed or not, new document or old
    for name in ("response_by_age", "os_drugx", "cr_single", "orr_glmm"):
        text = visible(section(html, name))
        assert "Caveat: Tests for small-study effects have low power" in text, name
    assert "Not computed: k = 7 < 10 (set bias.force in the config to compute anyway)." in visible(
        section(html, "response_by_age")
    )
    assert "Not computed: not assessed in this analysis document." in visible(
        section(html, "cr_single")
    )
    hr = visible(section(html, "os_drugx"))
    assert "Computed although k = 5 < 10 because the config forces it" in hr
    assert "Egger's regression test t = −1.74 (df = 3) 0.179" in hr
    assert "slope on the standard error −3.92 (SE 2.25)" in hr
    assert "Begg's rank correlation test Kendall's τ = −0.800 0.083 exact p-value" in hr
    assert "Trim-and-fill k0 = 2 on the right side" in hr
    assert "Adjusted estimate after filling: 0.83 (0.68–1.01), k = 7" in hr


def test_small_study_test_not_computed_and_too_few():
    doc = load("hr")
    doc["bias"]["egger"].update(computed=False, stat=None, p_value=None,
                                reason="not computed: the fit did not converge")
    text = visible(render_report([doc], {}, title="t"))
    assert "Egger's regression test not computed — the fit did not converge" in text
    doc = load("hr")
    doc["bias"] = {"computed": False, "k": 2, "min_k": 10, "caveat": "Low power <b>.",
                   "reason": "k = 2: too few studies for any test of small-study effects",
                   "egger": None, "begg": None, "trimfill": None, "model": "m"}
    out = render_report([doc], {}, title="t")
    assert "Caveat: Low power <b>." in visible(out) and "Low power &lt;b&gt;." in out
    assert "Not computed: k = 2: too few studies for any test" in visible(out)


def test_metaregression(html):
    hr = section(html, "os_drugx")
    text = visible(hr)
    assert "Moderators: year (numeric)." in text
    table = re.search(r'<table class="metaregression">(.*?)</table>', hr, re.DOTALL).group(1)
    assert "<td>Intercept</td>" in table and "<td>year</td>" in table
    assert "0.0007" in table and "0.989" in table
    assert "Test of moderators: F = 0.00 (df = 1, 3), p = 0.989." in text
    assert "Residual heterogeneity: QE = 5.72 (df = 3), p = 0.126; τ² = 0.0159" in text
    assert "Coefficients on the log HR scale." in text
    # not configured: no section
    assert "Meta-regression" not in section(html, "response_by_age")


def test_metaregression_categorical_and_not_computed():
    doc = load("hr")
    mr = doc["metaregression"]
    mr.update(moderators=["design"], categorical=["design"])
    mr["coefficients"][1]["name"] = "designRCT"
    text = visible(render_report([doc], {}, title="t"))
    assert "Moderators: design (categorical)." in text and "design: RCT" in text
    doc["metaregression"] = {"model": "m", "moderators": ["year"], "categorical": [], "k": 2,
                             "p": 2, "computed": False,
                             "reason": "k = 2 studies cannot estimate 2 coefficients"}
    text = visible(render_report([doc], {}, title="t"))
    assert "Not computed: k = 2 studies cannot estimate 2 coefficients." in text


def test_glmm_has_no_weights_and_says_why(html):
    glmm = section(html, "orr_glmm")
    table = re.search(r'<table class="studies">(.*?)</table>', glmm, re.DOTALL).group(1)
    assert 'Weight<sup class="fn">*</sup>' in table
    cells = re.findall(r'<td class="num">([^<]*)</td>', table)
    assert cells and set(cells) == {"—"}
    assert "Weights are not available: the binomial-normal GLMM" in visible(glmm)
    prop = visible(section(html, "response_by_age"))
    assert "Weights are random-effects weights within each subgroup." in prop
    assert "Weights: overall random-effects model." in visible(section(html, "os_drugx"))


def test_older_document_without_sections(html):
    single = visible(section(html, "cr_single"))
    for heading in ("Sensitivity analyses", "Leave-one-out", "Cumulative", "Influence"):
        assert heading not in single
    assert "Small-study effects" in single and "Methods" in single


def test_new_sections_escape_data_text():
    bad = "<script>alert(1)</script>"
    doc = load("hr")
    doc["methods"]["profile_label"] = bad
    doc["methods"]["notes"] = [bad]
    doc["methods"]["overrides"] = {"ci": bad}
    doc["sensitivity"][1]["description"] = bad
    doc["leave_one_out"]["rows"][0]["omitted"] = bad
    doc["cumulative"]["rows"][0]["added"] = bad
    doc["influence"]["rows"][0]["study"] = bad
    doc["influence"]["rule"] = bad
    doc["bias"]["caveat"] = bad
    doc["metaregression"]["moderators"] = [bad]
    doc["metaregression"]["coefficients"][1]["name"] = bad
    prop = load("proportion_subgroups")
    prop["subgroup_tests"][0]["label"] = bad
    prop["subgroup_tests"][1]["model"] = bad
    out = render_report([doc, prop], {}, title="t")
    assert "<script" not in out.lower()
    assert out.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 12


# --------------------------------------------------------------------------- manuscript

GRADE = {
    "os_drugx": {
        "certainty": "low",
        "reasons": {
            "risk_of_bias": "Two of five studies are retrospective cohorts.",
            "imprecision": "Fewer than 300 events in total.",
        },
    },
    "response_by_age": {
        "certainty": "Very_Low",  # normalised: case, _ and - are accepted
        "reasons": {
            "risk_of_bias": "Two of five studies are retrospective cohorts.",  # shared
            "inconsistency": "I² above 70%.",
        },
    },
}


def conversions() -> list[dict]:
    """A conversion log as the engine writes it (see metapool.survival)."""
    return [
        {
            "row": "alvarez2019 / OS / treatment: X vs Y [row 1]",
            "status": "converted (hr_ci)",
            "conversion": {
                "method": "hr_ci", "yi": -0.4943, "sei": 0.1809, "hr": 0.61,
                "ci_lower": 0.4279, "ci_upper": 0.8696, "level": 0.95,
                "inputs": {"hr": 0.61, "hr_lower": 0.45, "hr_upper": 0.82, "ci_level": 0.9,
                           "orientation": "experimental vs control"},
                "formula": "yi = ln HR = ln 0.61 = -0.4943; SE = (ln U - ln L) / (2 z)",
                "inverted": False, "strength": 1, "notes": [],
            },
            "rejected": [], "not_allowed": [], "checks": [],
        },
        {
            "row": "sato2022 / OS / treatment: X vs Y [row 3]",
            "status": "converted (hr_p)",
            "conversion": {
                "method": "hr_p", "yi": 0.0725, "sei": 0.1304, "hr": 1.075,
                "ci_lower": 0.8326, "ci_upper": 1.388, "level": 0.95,
                "inputs": {"hr": 0.93, "p_value": 0.58, "p_is_bound": False,
                           "orientation": "control vs experimental"},
                "formula": "yi = ln HR = 0.0725; SE = |ln HR| / z",
                "inverted": True, "strength": 3,
                "notes": ["reported as control vs experimental: HR 0.93 inverted to 1.075"],
            },
            "rejected": [{"method": "hr_ci", "reason": "needs hr_lower, hr_upper"}],
            "not_allowed": [],
            "checks": [{"check": "p_vs_ci", "severity": "warning", "row": "sato2022",
                        "message": "p = 0.58 does not match the CI", "values": {}}],
        },
        {
            "row": "kumar2020 / OS / treatment: X vs Y [row 6]",
            "status": "not converted: hr_ci: needs hr; hr_p: needs hr",
            "conversion": None,
            "rejected": [["hr_ci", "needs hr, hr_lower, hr_upper (missing: hr)"],
                         ["hr_p", "needs hr, p_value (missing: hr)"]],
            "not_allowed": [{"method": "medians", "would_give": "HR 0.8182 (0.438-1.528)"}],
            "checks": [{"check": "direction_unclear", "severity": "warning",
                        "row": "kumar2020", "message": "direction unclear: no HR",
                        "values": {}}],
            "km": {"hr": 0.7, "ci_lower": 0.5, "ci_upper": 0.98, "level": 0.95,
                   "logrank_p": 0.04, "notes": ["curve digitised from Figure 2"],
                   "arms": {"experimental": {"n": 40, "n_events": 25,
                                             "total_events_reported": 26,
                                             "max_abs_diff": 1.0}}},
        },
    ]


def hr_with_conversions() -> dict:
    doc = load("hr")
    doc["conversions"] = conversions()
    return doc


CHANGES = {
    "schema": 1, "run_id": "b" * 16, "sequence": 2,
    "previous": {"run_id": "a" * 16, "sequence": 1},
    "analyses": [
        {"analysis": "os_drugx", "title": "Overall survival (Drug X)", "outcome": "OS",
         "measure": "HR", "level": 0.95, "threshold": 1.0, "state": "changed",
         "added_studies": ["Nguyen 2024"], "removed_studies": ["Old <b> 2001"],
         "before": {"k": 4, "n_participants": 800, "status": "pooled", "estimate": 0.85,
                    "ci_lower": 0.7, "ci_upper": 1.03, "pi_lower": None, "pi_upper": None,
                    "tau2": 0.01, "i2": 10.0, "conclusion": "includes", "threshold": 1.0},
         "after": {"k": 5, "n_participants": 1000, "status": "pooled", "estimate": 0.77,
                   "ci_lower": 0.63, "ci_upper": 0.94, "pi_lower": 0.55, "pi_upper": 1.09,
                   "tau2": 0.0067, "i2": 27.8, "conclusion": "below", "threshold": 1.0},
         "estimate_changed": True, "ci_changed": True, "crossed": True},
        {"analysis": "response_by_age", "title": "Response by age", "outcome": "ORR",
         "measure": "PLO", "level": 0.95, "threshold": None, "state": "unchanged",
         "added_studies": [], "removed_studies": [],
         "before": {"k": 7, "estimate": 0.672, "ci_lower": 0.458, "ci_upper": 0.832,
                    "conclusion": None, "threshold": None},
         "after": {"k": 7, "estimate": 0.672, "ci_lower": 0.458, "ci_upper": 0.832,
                   "conclusion": None, "threshold": None},
         "estimate_changed": False, "ci_changed": False, "crossed": False},
        {"analysis": "gone", "title": "A removed analysis", "outcome": "X",
         "measure": "PLO", "level": 0.95, "threshold": 0.3, "state": "removed",
         "added_studies": [], "removed_studies": [],
         "before": {"k": 3, "estimate": 0.4, "ci_lower": 0.35, "ci_upper": 0.45,
                    "conclusion": "above", "threshold": 0.3},
         "after": None, "estimate_changed": False, "ci_changed": False, "crossed": False},
    ],
}


@pytest.fixture(scope="module")
def full_html() -> str:
    """The report with every optional input: GRADE, history, PRISMA, extra figures."""
    ds = docs()
    ds[1] = hr_with_conversions()
    extra = {"os_drugx": {k: SVG for k in ("funnel", "leave_one_out", "cumulative",
                                           "sensitivity")},
             "response_by_age": {"cumulative": SVG}}
    return render_report(
        ds, figures(ds), title="Drug X evidence synthesis", extra_figures=extra,
        prisma=SVG, grade=GRADE, changes=CHANGES,
        software={"Python": "3.11.7", "snakemake": "9.27.1", "jinja2": "3.1.6"},
        inputs={"data/raw/studies.csv": "0" * 64},
        study_records=[
            {"study_id": "alvarez2019", "author": "Alvarez", "year": 2019,
             "title": "A trial of X", "journal": "J Test", "doi": "10.1000/alvarez.2019",
             "pmid": "123456", "registration": "NCT0001", "status": "published"},
            {"study_id": "unused2018", "author": "Unused", "year": 2018, "title": "Other",
             "journal": "", "doi": "", "pmid": "", "registration": "", "status": "published"},
        ],
        table_warnings=["survival.csv, row 4, column hr (sato2022): CI is not symmetric"],
    )


_BLOCKS = {"p", "div", "li", "ul", "ol", "td", "th", "tr", "table", "br", "h1", "h2", "h3",
           "dt", "dd", "figcaption", "figure", "section", "summary", "details"}


class Seen(HTMLParser):
    """Text as a reader sees it: blocks and cells apart, inline markup (code, a, span,
    sup, strong) joined to its neighbours."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self._skip += 1
        if tag in _BLOCKS:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1
        if tag in _BLOCKS:
            self.parts.append(" ")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def seen(fragment: str) -> str:
    page = Seen()
    page.feed(fragment)
    return re.sub(r"\s+", " ", "".join(page.parts)).strip()


def part(html: str, section_id: str) -> str:
    """The HTML of a top-level ``<section id=...>``."""
    match = re.search(rf'<section[^>]* id="{section_id}"[^>]*>(.*?)</section>', html, re.DOTALL)
    assert match, section_id
    return match.group(1)


def test_summary_of_findings_rows_and_grade(full_html):
    sof = part(full_html, "summary")
    rows = {
        name: seen(row)
        for name, row in re.findall(r'<tr data-analysis="([^"]+)">(.*?)</tr>', sof, re.DOTALL)
    }
    assert list(rows) == ["response_by_age", "os_drugx", "cr_single", "orr_glmm"]
    hr = rows["os_drugx"]
    # studies, participants, estimate with CI and PI, I² with CI, τ², certainty
    assert re.search(r"\b5 [\d,]+ 0\.77 \(0\.63–0\.94\)", hr), hr
    assert "0.55–1.09" in hr and "27.8% (0.0–92.6)" in hr and "0.0067" in hr
    assert "⊕⊕⊝⊝ Lowa,c" in hr  # superscript markers a and c
    prop = rows["response_by_age"]
    assert "67.2% (45.8–83.2)" in prop and "73.8% (47.8–98.8)" in prop and "0.3390" in prop
    assert "⊕⊝⊝⊝ Very lowa,b" in prop  # markers in table order
    assert rows["cr_single"].endswith("not assessed")
    assert "not pooled: single study" in rows["cr_single"]
    notes = seen(sof[sof.index('class="grade-notes"') :])
    assert "a Risk of bias: Two of five studies are retrospective cohorts." in notes
    assert "b Inconsistency: I² above 70%." in notes
    assert "c Imprecision: Fewer than 300 events in total." in notes  # "a" is shared
    assert notes.count("Risk of bias") == 1
    assert 'href="#grade-note-a"' in sof and 'id="grade-note-a"' in sof
    # it comes first, before the analyses
    assert full_html.index('id="summary"') < full_html.index('<section class="analysis"')


def test_summary_of_findings_without_grade(html):
    sof = visible(part(html, "summary"))
    assert sof.count("not assessed") == 4
    assert "The certainty of the evidence has not been assessed" in sof


@pytest.mark.parametrize(
    ("grade", "message"),
    [
        ({"os_drugx": {"certainty": "medium"}}, "'medium' is not one of high, moderate"),
        ({"os_drugx": {"certainty": "low", "reasons": {"bias": "x"}}},
         "reasons.bias: unknown GRADE domain"),
        ({"os_drugx_typo": {"certainty": "low"}}, "report.grade.os_drugx_typo: no analysis"),
        ({"os_drugx": {"certainty": "low", "reason": {}}}, "reason: unknown key"),
    ],
)
def test_grade_mistakes_are_errors(grade, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        render_report([load("hr")], {}, title="t", grade=grade)


def test_conversion_log(full_html):
    hr = section(full_html, "os_drugx")
    table = re.search(r'<table class="conversions">(.*?)</table>', hr, re.DOTALL).group(1)
    text = seen(hr)
    assert "Hazard-ratio conversion log" in text
    assert "3 survival results selected: 2 converted (HR and CI 1, HR and p-value 1), " \
           "1 not converted." in text
    assert "PRISMA 2020 item 13b" in text
    rows = re.findall(r'<tr class="(converted|not-converted)">(.*?)</tr>', table, re.DOTALL)
    assert [c for c, _ in rows] == ["converted", "converted", "not-converted"]
    first, second, third = (seen(r) for _, r in rows)
    assert "HR 0.61 (0.43–0.87)" in first and "ln HR −0.4943, SE 0.1809" in first
    assert "HR and CI (strength 1 of 5)" in first
    assert "yi = ln HR = ln 0.61 = -0.4943" in first
    assert "Inputs: hr = 0.61; hr_lower = 0.45; hr_upper = 0.82; ci_level = 0.9" in first
    assert first.endswith("none none")  # nothing better rejected, no check
    assert "HR and p-value (strength 3 of 5); inverted: reported as control vs" in second
    assert "HR 0.93 inverted to 1.075" in second
    assert "HR and CI: needs hr_lower, hr_upper" in second  # the better method and why
    assert "warning: p = 0.58 does not match the CI" in second
    assert "not converted no enabled method applies" in third
    assert "HR and CI: needs hr, hr_lower, hr_upper (missing: hr)" in third  # list form
    assert "ratio of medians (not enabled in this analysis): would give HR 0.8182" in third
    assert "Cox model on the reconstructed data: HR 0.70 (0.50–0.98) (95% CI)" in third
    assert "experimental: 40 patients, 25 events (26 reported)" in third
    # only survival documents with a log have the section
    assert "conversion log" not in visible(section(full_html, "response_by_age"))


def test_statistical_methods_are_assembled_once(full_html):
    text = seen(part(full_html, "statistical-methods"))
    assert "Log hazard ratios were pooled with a random-effects model." in text
    assert "Analyses used metapool" not in text  # the per-analysis version line
    assert "Analyses were run in Python 3.11.7 with metapool 0.1.0 (NumPy 2.4.6, " \
           "SciPy 1.17.1, pandas 3.1.1), as a Snakemake 9.27.1 workflow" in text
    assert "figures were drawn with matplotlib 3.11.2" in text
    assert "the report was rendered with Jinja2 3.1.6" in text
    assert "Of 3 selected survival results, 2 gave a log hazard ratio and its standard " \
           "error (1 from the reported HR and its confidence interval and 1 from the " \
           "reported HR and its p-value); 1 could not be converted" in text
    assert "1 reported as control vs experimental was inverted." in text
    assert "rated with GRADE" in text


def test_statistical_methods_do_not_repeat_shared_sentences():
    shared = "With a single study the result is reported without pooling."
    ds = docs()
    for d in ds:
        d["methods"]["text"] = (d["methods"]["text"] or "") + " " + shared
    text = seen(part(render_report(ds, {}, title="t"), "statistical-methods"))
    assert text.count(shared) == 1
    # sentences of one analysis only are written once, under its name
    assert "For Overall survival: Log hazard ratios were pooled" in text
    assert "For Objective response: Proportions were pooled" in text


def test_statistical_methods_group_by_analyses():
    from metapool.report.sections import statistical_methods

    a = {"analysis": "a", "outcome": "ORR", "title": "A",
         "methods": {"text": "Methods follow X. Proportions by GLMM. The PI is t-based. "
                             "Analyses used metapool 0.1.0."}}
    b = {"analysis": "b", "outcome": "OS", "title": "B",
         "methods": {"text": "Methods follow X. Hazard ratios by REML (Tierney et al. 2007). "
                             "The PI is t-based."}}
    paragraphs = statistical_methods([a, b], [("metapool", "0.1.0")])
    assert paragraphs[:4] == [
        {"lead": "", "text": "Methods follow X."},
        {"lead": "For ORR:", "text": "Proportions by GLMM."},
        {"lead": "For OS:", "text": "Hazard ratios by REML (Tierney et al. 2007)."},
        {"lead": "", "text": "The PI is t-based."},
    ]
    assert paragraphs[-1]["text"] == "Analyses were run with metapool 0.1.0."


def test_what_changed_section(full_html):
    changes = part(full_html, "changes")
    text = seen(changes)
    assert ("This run (record 2, run bbbbbbbbbbbbbbbb) compared with the previous recorded "
            "run (record 1, run aaaaaaaaaaaaaaaa): 2 of 3 outcomes changed; the conclusion "
            "of 1 crossed its threshold.") in text
    assert ("▲ Conclusion changed for Overall survival (Drug X): CI includes 1 "
            "(inconclusive) → CI below 1 (favours experimental).") in text
    rows = dict(re.findall(r'<tr class="([^"]+)" data-analysis="[^"]+">(.*?)</tr>', changes,
                           re.DOTALL))
    hr = seen(rows["crossed"])
    assert "▲ conclusion crossed Nguyen 2024 Old <b> 2001 4 → 5" in hr
    assert "0.85 (0.70–1.03) 0.77 (0.63–0.94) −9.4% (ratio 0.91)" in hr
    assert "Old &lt;b&gt; 2001" in rows["crossed"]
    assert 'href="#analysis-os_drugx-cumulative"' in rows["crossed"]
    unchanged = seen(rows["state-unchanged"])
    assert "no change" in unchanged and "no threshold configured (null_value)" in unchanged
    removed = seen(rows["state-removed"])
    assert "no longer analysed" in removed and "40.0% (35.0–45.0) —" in removed
    assert "CI above 30.0%" in removed
    # listed in the contents, before the methods
    assert full_html.index('id="changes"') < full_html.index('id="statistical-methods"')


def test_first_recorded_run():
    first = {"schema": 1, "run_id": "c" * 16, "sequence": 1, "previous": None,
             "analyses": [dict(CHANGES["analyses"][0], state="first run", before=None)]}
    text = seen(render_report([load("hr")], {}, title="t", changes=first))
    assert "This is the first recorded run (record 1, run cccccccccccccccc)" in text
    assert "What changed since the previous run" in text


def test_extra_figures_and_prisma(full_html):
    imgs = [attrs for tag, attrs in parse(full_html).tags if tag == "img"]
    alts = [a["alt"] for a in imgs]
    assert alts.count("PRISMA 2020 flow diagram of study selection") == 1
    hr = section(full_html, "os_drugx")
    for alt in ("Funnel plot", "Leave-one-out plot", "Cumulative forest plot",
                "Sensitivity plot"):
        assert f'alt="{alt}: Overall survival' in hr
    # each figure sits in its own section, after that section's heading
    for anchor, heading in (("funnel-plot", "-small-study"), ("cumulative-plot", "-cumulative"),
                            ("leave-one-out-plot", "-leave-one-out"),
                            ("sensitivity-plot", "-sensitivity")):
        assert hr.index(f'analysis-os_drugx{heading}"') < hr.index(f"os_drugx-{anchor}")
    prop = section(full_html, "response_by_age")
    assert "Cumulative forest plot" in prop and "Funnel plot" not in prop
    for attrs in imgs:
        assert attrs["src"].startswith("data:image/svg+xml;base64,")
    with pytest.raises(ValueError, match="unknown figure kind 'galaxy'"):
        render_report([load("hr")], {}, title="t", extra_figures={"os_drugx": {"galaxy": SVG}})


def test_without_optional_inputs_sections_are_left_out(html):
    assert 'id="changes"' not in html and 'id="study-selection"' not in html
    assert "What changed" not in visible(html)
    assert 'id="statistical-methods"' in html and 'id="provenance"' in html


def test_run_warnings(full_html):
    text = seen(part(full_html, "run-warnings"))
    assert "Input tables (1) survival.csv, row 4, column hr (sato2022): CI is not symmetric" in text
    assert "100% events" in text  # a document warning
    # conversion checks, once
    assert text.count("p = 0.58 does not match the CI") == 1
    assert "kumar2020 / OS / treatment: X vs Y [row 6]: direction unclear: no HR" in text


def test_provenance(full_html):
    prov = part(full_html, "provenance")
    text = seen(prov)
    assert "data/raw/studies.csv " + "0" * 64 in text
    row = seen(re.search(r"<tr>\s*<td>Alvarez 2019.*?</tr>", prov, re.DOTALL).group(0))
    assert "A trial of X; J Test (2019)" in row
    assert "doi:10.1000/alvarez.2019 PMID 123456 NCT0001" in row
    assert "Included: OS" in row or "Included: Overall survival" in row
    assert 'href="https://doi.org/10.1000/alvarez.2019"' in prov
    assert "Unused 2018" in text and "not selected by any analysis" in text
    # without studies.csv rows the studies come from the documents
    prov = seen(part(render_report([load("hr")], {}, title="t"), "provenance"))
    assert "Brooks 2021" in prov


def test_full_report_is_safe_and_complete(full_html):
    text = "".join(parse(full_html).text)
    assert not re.search(r"\b(None|nan|NaN|null|undefined|inf)\b", text)
    markup = re.sub(r"data:[^\"]+", "", full_html)
    assert not re.search(r"\b(None|nan|NaN|undefined)\b", markup)
    page = parse(full_html)
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed")
        if "href" in attrs:
            assert attrs["href"].startswith(("#", "https://doi.org/")), attrs["href"]
    # every in-page link has its target
    ids = {attrs["id"] for _, attrs in page.tags if "id" in attrs}
    for _, attrs in page.tags:
        if attrs.get("href", "").startswith("#"):
            assert attrs["href"][1:] in ids, attrs["href"]
    assert len(ids) == sum(1 for _, a in page.tags if "id" in a)  # ids are unique


def test_full_report_is_deterministic(full_html):
    ds = docs()
    ds[1] = hr_with_conversions()
    extra = {"os_drugx": {k: SVG for k in ("funnel", "leave_one_out", "cumulative",
                                           "sensitivity")},
             "response_by_age": {"cumulative": SVG}}
    again = render_report(
        ds, figures(ds), title="Drug X evidence synthesis", extra_figures=extra,
        prisma=SVG, grade=GRADE, changes=CHANGES,
        software={"Python": "3.11.7", "snakemake": "9.27.1", "jinja2": "3.1.6"},
        inputs={"data/raw/studies.csv": "0" * 64},
        study_records=[
            {"study_id": "alvarez2019", "author": "Alvarez", "year": 2019,
             "title": "A trial of X", "journal": "J Test", "doi": "10.1000/alvarez.2019",
             "pmid": "123456", "registration": "NCT0001", "status": "published"},
            {"study_id": "unused2018", "author": "Unused", "year": 2018, "title": "Other",
             "journal": "", "doi": "", "pmid": "", "registration": "", "status": "published"},
        ],
        table_warnings=["survival.csv, row 4, column hr (sato2022): CI is not symmetric"],
    )
    assert again == full_html


def test_manuscript_sections_escape_data_text():
    bad = "<script>alert(1)</script>"
    doc = hr_with_conversions()
    doc["title"] = bad
    doc["outcome"] = bad
    conv = doc["conversions"]
    conv[0]["row"] = bad
    conv[0]["conversion"]["formula"] = bad
    conv[0]["conversion"]["inputs"] = {bad: bad}
    conv[1]["conversion"]["notes"] = [bad]
    conv[1]["rejected"] = [{"method": bad, "reason": bad}]
    conv[1]["checks"][0]["message"] = bad
    conv[2]["not_allowed"] = [{"method": "medians", "would_give": bad}]
    conv[2]["km"]["notes"] = [bad]
    changes = copy.deepcopy(CHANGES)
    changes["run_id"] = bad
    changes["analyses"][0].update(title=bad, added_studies=[bad], removed_studies=[bad])
    out = render_report(
        [doc], {"os_drugx": SVG}, title=bad,
        grade={"os_drugx": {"certainty": "high", "reasons": {"indirectness": bad}}},
        changes=changes, software={bad: bad}, inputs={bad: bad},
        study_records=[{"study_id": "alvarez2019", "title": bad, "journal": bad,
                        "doi": bad, "pmid": bad, "registration": bad, "status": bad}],
        table_warnings=[bad],
    )
    assert "<script" not in out.lower()
    assert out.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 20
    page = parse(out)
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)


def test_pdf_is_deterministic_and_fetches_nothing(tmp_path):
    from metapool.report.pdf import PDFError, render_pdf, write_pdf

    html = render_report([load("single_study")], {"cr_single": SVG}, title="PDF test")
    first = render_pdf(html)
    assert first.startswith(b"%PDF-") and first.rstrip().endswith(b"%%EOF")
    assert render_pdf(html) == first  # no creation date, no random id
    source = tmp_path / "report.html"
    source.write_text(html, encoding="utf-8")
    assert write_pdf(source, tmp_path / "out" / "report.pdf").read_bytes() == first
    for url in ("http://127.0.0.1:9/x.png", "file:///etc/hostname"):
        with pytest.raises(PDFError, match="refers to something outside itself"):
            render_pdf(f'<html><body><img src="{url}" alt="x"></body></html>')


# --------------------------------------------------------------------------- risk of bias

BAD = "<script>alert(1)</script> & 'x'"
RB2 = ["D1 randomisation process", "D2 deviations from intended interventions",
       "D3 missing outcome data", "D4 measurement of the outcome",
       "D5 selection of the reported result", "Overall"]


def rob_rows() -> list[dict]:
    rows = [{"study_id": "alvarez2019", "tool": "RoB 2", "domain": d, "judgement": j,
             "stars": None, "support": BAD if d == "Overall" else f"{d} support"}
            for d, j in zip(RB2, ["low", "some concerns", "low", "low", "low",
                                  "some concerns"])]
    rows += [{"study_id": "brooks2021", "tool": "Newcastle-Ottawa", "domain": d,
              "judgement": j, "stars": n, "support": "NOS support"}
             for d, j, n in (("selection", "good", 3), ("comparability", "poor", 0),
                             ("outcome", "good", 2), ("Overall", "poor", 5))]
    return rows


RECORDS = [
    {"study_id": "alvarez2019", "author": "Alvarez", "year": 2019, "status": "published"},
    {"study_id": "brooks2021", "author": "Brooks", "year": 2021, "status": "published"},
    {"study_id": "sato2022", "author": "Sato", "year": 2022, "status": "published"},
    {"study_id": "ongo2026", "author": "Ongo", "year": 2026, "status": "ongoing"},
]


def rob_doc() -> dict:
    from metapool.rob import analysis_summary

    doc = load("hr")
    doc["risk_of_bias"] = analysis_summary(rob_rows(), doc["studies"])
    doc["risk_of_bias"].update(sensitivity_variant=False,
                               sensitivity_note="no <i>variant</i> here")
    return doc


def test_risk_of_bias_section_says_when_nothing_was_supplied(html):
    rob = part(html, "risk-of-bias")
    assert "No risk-of-bias assessment was supplied (config key tables.risk_of_bias" in seen(rob)
    assert 'href="#risk-of-bias"' in html
    assert "Risk of bias (overall)" not in html


def test_risk_of_bias_section_with_figures_judgements_and_support():
    doc = rob_doc()
    out = render_report([doc], figures([doc]), title="t", risk_of_bias=rob_rows(),
                        rob_figures={"traffic_light": SVG, "summary": SVG},
                        study_records=RECORDS)
    rob = part(out, "risk-of-bias")
    text = seen(rob)
    assert text.startswith("Risk of bias 2 studies assessed with RoB 2 for randomised trials and "
                           "Newcastle-Ottawa for single-arm cohorts and case series.")
    assert ("A study is at high risk of bias when its overall judgement is RoB 2 high; "
            "ROBINS-I serious or critical; Newcastle-Ottawa poor: 1 of 2 (Brooks 2021)") in text
    imgs = [a for t, a in parse(rob).tags if t == "img"]
    assert [a["alt"].split(":")[0] for a in imgs] == [
        "Risk-of-bias traffic-light plot", "Risk-of-bias summary plot"]
    assert all(a["src"].startswith("data:image/svg+xml;base64,") for a in imgs)
    # one table per tool: a cell per domain with the judgement, its symbol and class
    rob2 = re.search(r'<table class="rob" data-tool="RoB 2">(.*?)</table>', rob, re.DOTALL)
    row = seen(re.search(r'<tr data-study="alvarez2019">.*?</tr>', rob2.group(1)).group(0))
    assert row == "Alvarez 2019 + low − some concerns + low + low + low − some concerns"
    assert rob2.group(1).count('class="rob rob-low"') == 4
    nos = re.search(r'<table class="rob" data-tool="Newcastle-Ottawa">(.*?)</table>', rob,
                    re.DOTALL).group(1)
    assert seen(nos).endswith("Brooks 2021 + good (3★) × poor (0★) + good (2★) × poor (5★)")
    assert "Not assessed: Sato 2022." in text
    assert "Ongoing studies have no results to assess: Ongo 2026." in text
    # support, escaped
    assert "Support for each judgement (10 judgements)" in text
    assert escape(BAD) in rob and "<script>" not in out
    assert "D2 deviations from intended interventions support" in text


def test_included_studies_show_their_overall_risk_of_bias():
    doc = rob_doc()
    out = render_report([doc], figures([doc]), title="t")
    body = section(out, "os_drugx")
    start = body.index('<table class="studies">')
    studies = body[start:body.index("</table>", start)]
    assert "Risk of bias (overall)" in studies
    rows = {seen(r).split(" doi")[0].split(" ")[0]: seen(r)
            for r in re.findall(r"<tr>.*?</tr>", studies, re.DOTALL)}
    assert "− some concerns RoB 2" in rows["Alvarez"]
    assert "× poor Newcastle-Ottawa" in rows["Brooks"]
    assert "not assessed" in rows["Sato"]
    # no variant: the sensitivity section says why, escaped
    assert ("No variant without studies at high risk of bias (RoB 2 high; ROBINS-I serious "
            "or critical; Newcastle-Ottawa poor): no &lt;i&gt;variant&lt;/i&gt; here.") in body
    # the section of a report without a table still says so
    assert "No risk-of-bias assessment was supplied" in seen(part(out, "risk-of-bias"))


def test_single_study_variant_shows_its_estimate():
    doc = load("hr")
    doc["sensitivity"].append({
        "variant": "exclude_high_rob", "description": "excluding studies at high risk",
        "k": 1, "status": "not pooled: single study", "estimate": 0.7, "ci_lower": 0.5,
        "ci_upper": 0.98, "pi_lower": None, "pi_upper": None, "tau2": None, "i2": None,
        "conclusion": "favours experimental", "changed": False})
    body = section(render_report([doc], figures([doc]), title="t"), "os_drugx")
    row = re.search(r"<tr[^>]*>\s*<td>excluding studies at high risk.*?</tr>", body, re.DOTALL)
    assert fmt_effect_ci(0.7, 0.5, 0.98, "HR") in seen(row.group(0))


def test_unknown_risk_of_bias_figure_is_an_error():
    with pytest.raises(ValueError, match="unknown risk-of-bias figure"):
        render_report([load("hr")], {}, title="t", risk_of_bias=rob_rows(),
                      rob_figures={"pie": SVG})
