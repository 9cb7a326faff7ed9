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
    summary = html[html.index('<table class="summary">') : html.index("</nav>")]
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
