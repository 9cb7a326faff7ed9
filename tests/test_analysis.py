"""One configured analysis end to end inside the package (metapool.analysis)."""

import json

import pytest

from metapool.analysis import check_analyses, run_analysis, write_analysis_outputs
from metapool.io import DataError, load_tables

STUDIES = """study_id,author,year,title,journal,doi,pmid,registration,design,country,cancer,intervention,comparator,n_total,status,notes
A2019,Ames,2019,Trial A,J,10.1000/a,,,RCT,X,NSCLC,I-125 + chemo,chemo,60,published,
B2020,Bell,2020,Series B,J,10.1000/b,,,retrospective single-arm,X,NSCLC,BACE,,20,published,
C2021,Cole,2021,Series C,J,10.1000/c,,,retrospective single-arm,X,HCC,TACE,,30,published,
D2022,,2022,Cohort D,J,10.1000/d,,,retrospective comparative cohort,X,NSCLC,BACE,chemo,50,published,
T2026,,,Planned trial,,,,NCT01234567,RCT,X,NSCLC,I-125,chemo,100,ongoing,
"""
PROPORTIONS = """study_id,outcome,arm,events,total,timepoint,criteria,source,derived,derivation
A2019,ORR,experimental: I-125 + chemo,18,30,3 mo,RECIST,quote a1,no,
A2019,ORR,control: chemo,10,30,3 mo,RECIST,quote a2,no,
B2020,ORR,overall,20,20,3 mo,RECIST,=HYPERLINK("x"),no,
C2021,ORR,overall,12,30,3 mo,mRECIST,quote c,no,
D2022,ORR,experimental: BACE,11,25,2 mo,RECIST,quote d,yes,44% x 25
"""
SURVIVAL = """study_id,outcome,comparison,hr,hr_lower,hr_upper,ci_level,p_value,n_exp,n_ctrl,events_exp,events_ctrl,median_exp,median_ctrl,adjusted,source,derivation
A2019,OS,treatment: I-125 + chemo vs chemo,0.70,0.50,0.98,0.95,,30,30,,,,,no,quote,
A2019,OS,treatment: I-125 + chemo vs chemo,0.75,0.53,1.06,0.95,,30,30,,,,,yes,quote,
D2022,OS,treatment: BACE vs chemo,0.60,,,,<0.01,25,25,,,,,unknown,quote,
B2020,OS,prognostic: early vs late,0.50,0.30,0.83,0.95,,,,,,,,no,quote,
C2021,OS,treatment: TACE vs BSC,,,,,0.04,15,15,,,12,8,,quote,medians only
"""

# inverse-variance logit model (explicit overrides of the default cochrane2025 profile)
ORR = {"title": "ORR", "table": "proportions", "outcome": "ORR",
       "include": {"cancer": ["NSCLC"], "arm": ["overall*", "experimental*"]},
       "subgroup": "design", "method": "REML", "ci": "hksj", "measure": "PLO"}
OS = {"title": "OS", "table": "survival", "outcome": "OS",
      "include": {"comparison": ["treatment:*"]}, "exclude": {"adjusted": ["yes"]}}


@pytest.fixture()
def tables(tmp_path):
    paths = {}
    for name, text in (("studies", STUDIES), ("proportions", PROPORTIONS),
                       ("survival", SURVIVAL)):
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_text(text)
    return load_tables(paths["studies"], paths["proportions"], paths["survival"])


def test_proportion_analysis_selects_documents_and_pools(tables):
    doc = run_analysis(tables, "orr", ORR, {})
    assert [s["study_id"] for s in doc["studies"]] == ["A2019", "B2020", "D2022"]
    overall = doc["models"][0]
    assert overall["model"] == "overall" and overall["k"] == 3
    assert overall["n_participants"] == 75 and overall["n_events"] == 49
    assert 0 < overall["ci_lower"] < overall["estimate"] < overall["ci_upper"] < 1
    # the all-event study is corrected and says so
    b = doc["studies"][1]
    assert b["cc_added"] and "continuity correction 0.5" in b["effect_method"]
    assert b["ci_upper"] == 1.0 and b["label"] == "Bell 2020"
    assert abs(sum(s["weight_pct"] for s in doc["studies"]) - 100) < 1e-9
    # subgroups by design: one model per level, k = 1 reported without pooling
    subs = {m["subgroup"]: m for m in doc["models"][1:]}
    assert set(subs) == {"RCT", "retrospective comparative cohort",
                         "retrospective single-arm"}
    assert subs["RCT"]["status"] == "not pooled: single study"
    assert subs["RCT"]["estimate"] is None
    reasons = {(e["study_id"], e["reason"]) for e in doc["excluded"]}
    assert ("A2019", "arm 'control: chemo' not selected (include: overall*, experimental*)") in reasons
    assert ("C2021", "arm 'overall': cancer 'HCC' not selected (include: NSCLC)") in reasons
    assert [o["study_id"] for o in doc["ongoing"]] == ["T2026"]
    assert "logit" in doc["methods"]["text"] and "Clopper-Pearson" in doc["methods"]["text"]


def test_survival_analysis_records_how_each_hr_was_obtained(tables):
    doc = run_analysis(tables, "os", OS, {})
    by_id = {s["study_id"]: s for s in doc["studies"]}
    assert set(by_id) == {"A2019", "D2022"}
    assert by_id["A2019"]["effect_method"] == "hr_ci"
    assert by_id["D2022"]["effect_method"].startswith("hr_p (p reported as <0.01")
    assert any("conservative" in w for w in doc["warnings"])
    assert any("k = 2" in w for w in doc["warnings"])
    reasons = {e["study_id"]: e["reason"] for e in doc["excluded"]}
    assert "HR not obtainable" in reasons["C2021"] and "median_exp" in reasons["C2021"]
    assert reasons["B2020"].startswith("comparison 'prognostic: early vs late' not selected")
    assert "excluded by pattern 'yes'" in " ".join(e["reason"] for e in doc["excluded"])


def test_single_study_analysis_is_not_pooled(tables):
    spec = dict(ORR, include={"study_id": ["C2021"]}, subgroup=None)
    doc = run_analysis(tables, "one", spec, {})
    assert doc["models"][0]["status"] == "not pooled: single study"
    assert doc["studies"][0]["weight_pct"] is None


@pytest.mark.parametrize("spec,message", [
    (dict(ORR, outcome="ORRR"), "outcome 'ORRR' not found in proportions.csv (did you mean 'ORR'?)"),
    (dict(ORR, include={"cancr": ["NSCLC"]}), "unknown column 'cancr' (did you mean 'cancer'?)"),
    (dict(ORR, include={"cancer": ["breast"]}), "selects no published study"),
    (dict(OS, exclude={}), "selects 2 rows for study A2019 (survival.csv rows 1, 2)"),
    (dict(ORR, subgroup="desing"), "unknown column 'desing' (did you mean 'design'?)"),
])
def test_config_problems_are_named(tables, spec, message):
    with pytest.raises(DataError) as err:
        check_analyses(tables, {"analyses": {"bad": spec}})
    assert message in str(err.value)
    assert "analyses.bad" in str(err.value)


def test_outputs_are_deterministic_and_csv_safe(tables, tmp_path):
    paths = []
    for run in (1, 2):
        out = tmp_path / f"run{run}"
        doc = run_analysis(tables, "orr", ORR, {})
        files = {k: out / f"{k}.x" for k in ("pooled", "studies", "excluded", "document")}
        write_analysis_outputs(doc, **files)
        paths.append(files)
    for key in paths[0]:
        assert paths[0][key].read_bytes() == paths[1][key].read_bytes()
    studies_csv = paths[0]["studies"].read_text()
    assert "'=HYPERLINK" in studies_csv and ",=HYPERLINK" not in studies_csv
    doc = json.loads(paths[0]["document"].read_text())
    assert doc["models"][1]["estimate"] is None  # null, never NaN


def test_reported_ci_at_another_level_is_shown_at_the_analysis_level(tmp_path):
    survival = SURVIVAL.replace(
        "D2022,OS,treatment: BACE vs chemo,0.60,,,,<0.01,",
        "D2022,OS,treatment: BACE vs chemo,0.60,0.45,0.80,0.90,,")
    paths = []
    for name, text in (("studies", STUDIES), ("proportions", PROPORTIONS),
                       ("survival", survival)):
        paths.append(tmp_path / f"{name}.csv")
        paths[-1].write_text(text)
    doc = run_analysis(load_tables(*paths), "os", OS, {})
    d = {s["study_id"]: s for s in doc["studies"]}["D2022"]
    # SE from the 90% CI: (ln 0.80 - ln 0.45) / (2 * 1.6449)
    import math
    se = (math.log(0.80) - math.log(0.45)) / (2 * 1.6448536269514722)
    assert abs(d["sei"] - se) < 1e-12
    assert abs(d["ci_lower"] - math.exp(math.log(0.6) - 1.959963984540054 * se)) < 1e-12
    assert d["study_ci_method"] == "95% CI recomputed from the reported 90% CI"
    assert (d["hr_lower"], d["hr_upper"], d["ci_level"]) == (0.45, 0.80, 0.90)


def test_default_profile_pools_proportions_with_the_glmm(tables):
    spec = {k: v for k, v in ORR.items() if k not in ("method", "ci", "measure")}
    doc = run_analysis(tables, "orr", spec, {})
    overall = doc["models"][0]
    assert overall["method"] == "GLMM" and overall["ci_method"] == "t"
    assert doc["methods"]["profile"] == "cochrane2025"
    # no continuity correction and no inverse-variance weights under the GLMM
    assert not any(s["cc_added"] for s in doc["studies"])
    assert all(s["weight_pct"] is None for s in doc["studies"])
    assert "binomial-normal" in doc["methods"]["text"]
    # the secondary analyses say which model they use
    assert "inverse-variance logit" in doc["leave_one_out"]["model"]
    variants = {r["variant"] for r in doc["sensitivity"]}
    assert {"primary", "plo_reml_hksj", "pft_reml_hksj", "exclude_derived"} <= variants


def test_explicit_hksj_with_the_glmm_is_substituted_and_logged(tables):
    spec = {k: v for k, v in ORR.items() if k not in ("ci", "measure")}
    spec["method"] = "GLMM"
    doc = run_analysis(tables, "orr", spec, {"ci": "hksj"})
    assert doc["models"][0]["ci_method"] == "t"
    assert any("not defined for the GLMM" in w for w in doc["warnings"])
    assert "Note: ci 'hksj' is not defined for the GLMM" in doc["methods"]["text"]


def test_sections_for_secondary_analyses(tables):
    doc = run_analysis(tables, "orr", dict(ORR, moderators=["year"]), {})
    assert len(doc["leave_one_out"]["rows"]) == 3
    assert len(doc["cumulative"]["rows"]) == 3
    assert doc["bias"]["computed"] is False and "10" in doc["bias"]["reason"]
    assert doc["metaregression"]["computed"] is True
    assert [c["name"] for c in doc["metaregression"]["coefficients"]] == ["intrcpt", "year"]
    tests = {t["test"]: t for t in doc["subgroup_tests"]}
    assert set(tests) == {"separate_tau2", "common_tau2"}


def test_glmm_on_survival_is_a_config_error(tables):
    with pytest.raises(DataError, match="GLMM models binomial counts"):
        check_analyses(tables, {"analyses": {"bad": dict(OS, method="GLMM")}})


def test_glmm_without_finite_maximum_falls_back_and_says_so(tmp_path):
    proportions = PROPORTIONS
    for old, new in (("18,30", "0,30"), ("20,20", "0,20"), ("11,25", "0,25")):
        proportions = proportions.replace(old, new)
    paths = []
    for name, text in (("studies", STUDIES), ("proportions", proportions),
                       ("survival", SURVIVAL)):
        paths.append(tmp_path / f"{name}.csv")
        paths[-1].write_text(text)
    spec = {k: v for k, v in ORR.items() if k not in ("method", "ci", "measure")}
    doc = run_analysis(load_tables(*paths), "orr", dict(spec, subgroup=None), {})
    overall = doc["models"][0]
    assert overall["method"] == "REML" and overall["status"] == "pooled"
    assert "no finite maximum" in overall["warnings"]
    assert any("fell back" in w for w in doc["warnings"])


# --------------------------------------------------------------------------- optional columns
# survival.csv rows whose HR comes from the optional columns (oe/v, events_total with
# allocation_ratio, p_sided, hr_orientation, direction) and single-arm medians with CIs.
SURVIVAL_HEADER = ("study_id,outcome,comparison,hr,hr_lower,hr_upper,ci_level,"
                   "hr_orientation,p_value,p_sided,direction,n_exp,n_ctrl,allocation_ratio,"
                   "events_exp,events_ctrl,events_total,oe,v,median_exp,median_exp_lower,"
                   "median_exp_upper,median_ci_level,adjusted,source,derivation,median_ctrl")
SURVIVAL_OPTIONAL = SURVIVAL_HEADER + """
A2019,PFS,treatment: I-125 + chemo vs chemo,,,,,,,,,30,30,,,,,-6.0,16.0,,,,,,log-rank O-E and V,,
B2020,PFS,treatment: BACE vs chemo,1.6,1.1,2.33,0.95,ctrl_vs_exp,,,,10,10,,,,,,,,,,,no,chemo vs BACE,,
C2021,PFS,treatment: TACE vs BSC,0.65,,,,,0.03,1,,15,15,,,,,,,,,,,unknown,one-sided p,,
D2022,PFS,treatment: BACE vs chemo,,,,,,0.02,,experimental,30,20,2,,,40,,,,,,,,p and total events,,
B2020,OS,single-arm: whole cohort,,,,,,,,,20,,,,,,,,14.0,10.0,19.6,0.95,,median 14.0 (95% CI 10.0-19.6),,
C2021,OS,single-arm: whole cohort,,,,,,,,,30,,,,,,,,9.0,6.5,12.0,0.90,,median 9.0 (90% CI 6.5-12.0),,
D2022,OS,single-arm: BACE arm,,,,,,,,,25,,,,,,,,11.0,,,,,median 11 months,no CI reported,
"""


def _tables_with(tmp_path, survival):
    paths = []
    for name, text in (("studies", STUDIES), ("proportions", PROPORTIONS),
                       ("survival", survival)):
        paths.append(tmp_path / f"{name}.csv")
        paths[-1].write_text(text)
    return load_tables(*paths)


def test_hr_conversions_take_their_inputs_from_the_optional_columns(tmp_path):
    import math

    from scipy import stats

    spec = {"title": "PFS", "table": "survival", "outcome": "PFS",
            "include": {"comparison": ["treatment:*"]}, "method": "FE", "ci": "z"}
    doc = run_analysis(_tables_with(tmp_path, SURVIVAL_OPTIONAL), "pfs", spec, {})
    s = {x["study_id"]: x for x in doc["studies"]}
    log = {c["row"].split(" / ")[0]: c for c in doc["conversions"]}
    # oe_v: ln HR = (O-E)/V = -6/16, SE = 1/sqrt(16)
    assert s["A2019"]["effect_method"] == "oe_v"
    assert s["A2019"]["yi"] == pytest.approx(-0.375, abs=1e-12)
    assert s["A2019"]["sei"] == pytest.approx(0.25, abs=1e-12)
    # hr_orientation ctrl_vs_exp: 1.6 (1.1-2.33) inverted to 0.625, logged
    assert s["B2020"]["effect_method"] == "hr_ci (inverted to experimental vs control)"
    assert s["B2020"]["effect"] == pytest.approx(1 / 1.6)
    assert s["B2020"]["sei"] == pytest.approx(
        (math.log(2.33) - math.log(1.1)) / (2 * stats.norm.isf(0.025)))
    assert log["B2020"]["conversion"]["inverted"] is True
    assert "reported control vs experimental" in log["B2020"]["conversion"]["notes"][0]
    # p_sided 1: z = Phi^-1(1 - 0.03) for SE = |ln 0.65| / z
    assert s["C2021"]["effect_method"] == "hr_p"
    assert s["C2021"]["sei"] == pytest.approx(abs(math.log(0.65)) / stats.norm.isf(0.03))
    assert log["C2021"]["conversion"]["inputs"]["sided"] == "one"
    # p_events from events_total and allocation_ratio (V = D r / (1 + r)^2 with r = 2
    # from the column, not n_exp / n_ctrl = 1.5), sign from the direction column
    v = 40 * 2 / 3 ** 2
    assert s["D2022"]["effect_method"] == "p_events"
    assert s["D2022"]["yi"] == pytest.approx(-stats.norm.isf(0.01) / math.sqrt(v))
    assert s["D2022"]["sei"] == pytest.approx(1 / math.sqrt(v))
    inputs = log["D2022"]["conversion"]["inputs"]
    assert (inputs["events_total"], inputs["allocation_ratio"], inputs["direction"]) == (
        40, 2.0, "favours experimental")
    assert "r: allocation ratio" in log["D2022"]["conversion"]["formula"]
    # the direction column gives the sign: "control" turns the same row around
    flipped = SURVIVAL_OPTIONAL.replace(",0.02,,experimental,", ",0.02,,control,")
    doc2 = run_analysis(_tables_with(tmp_path, flipped), "pfs", spec, {})
    d2 = {x["study_id"]: x for x in doc2["studies"]}["D2022"]
    assert d2["yi"] == pytest.approx(-s["D2022"]["yi"])


def test_single_arm_medians_pool_end_to_end(tmp_path):
    import math

    import numpy as np
    from scipy import stats

    tables = _tables_with(tmp_path, SURVIVAL_OPTIONAL)
    base = {"title": "Median OS of single-arm series", "table": "survival",
            "outcome": "OS", "effect": "median",
            "include": {"comparison": ["single-arm:*"]}}
    # independently: ln median, SE = (ln U - ln L) / (2 z) at each CI's own level
    yi = np.log([14.0, 9.0])
    sei = np.array([(math.log(19.6) - math.log(10.0)) / (2 * stats.norm.isf(0.025)),
                    (math.log(12.0) - math.log(6.5)) / (2 * stats.norm.isf(0.05))])
    w = 1 / sei ** 2
    fe = float(np.sum(w * yi) / w.sum())
    z = stats.norm.isf(0.025)
    q = float(np.sum(w * (yi - fe) ** 2))
    tau2 = max(0.0, (q - 1) / (w.sum() - np.sum(w ** 2) / w.sum()))  # DerSimonian-Laird
    wr = 1 / (sei ** 2 + tau2)
    re_ = float(np.sum(wr * yi) / wr.sum())
    for method, est, se in (("FE", fe, 1 / math.sqrt(w.sum())),
                            ("DL", re_, 1 / math.sqrt(wr.sum()))):
        doc = run_analysis(tables, "median_os", dict(base, method=method, ci="z"), {})
        overall = doc["models"][0]
        assert (overall["k"], overall["status"]) == (2, "pooled")
        assert overall["estimate"] == pytest.approx(math.exp(est), rel=1e-9)
        assert overall["ci_lower"] == pytest.approx(math.exp(est - z * se), rel=1e-9)
        assert overall["ci_upper"] == pytest.approx(math.exp(est + z * se), rel=1e-9)
        assert overall["tau2"] == pytest.approx(0.0 if method == "FE" else tau2, abs=1e-12)
    # pooled medians in months, never called an HR
    assert doc["measure"] == "median"
    assert doc["scale"] == {"model": "log median", "natural": "months"}
    assert "months" in doc["effect_label"] and "not an HR" in doc["effect_label"]
    assert "medians" in doc["methods"]["text"]
    studies = {s["study_id"]: s for s in doc["studies"]}
    assert studies["B2020"]["effect"] == 14.0
    assert studies["C2021"]["sei"] == pytest.approx(sei[1])
    assert "reported 90% CI" in studies["C2021"]["study_ci_method"]
    # a median without a CI has no SE: listed as excluded with the reason, not dropped
    excluded = {e["study_id"]: e["reason"] for e in doc["excluded"]}
    assert excluded["D2022"] == ("comparison 'single-arm: BACE arm': no CI for the "
                                 "median: its SE is unknown")
    # the forest plot is drawn in months, without a null line or "Favours" labels
    from metapool.plots import forest_plot

    fig = forest_plot(json.loads(json.dumps(doc)))
    assert fig.metapool["xunit"] == "months" and fig.metapool["favours"] is None
    assert "months" in fig.metapool["xlabel"]
    lo, hi = fig.metapool["xlim"]
    assert lo <= 6.5 and hi >= 19.6 and 1.0 not in fig.metapool["xticks"]


# --------------------------------------------------------------------------- risk of bias

ROB = """study_id,tool,domain,judgement,stars,support
A2019,RoB 2,D1 randomisation process,low,,Central randomisation.
A2019,RoB 2,D2 deviations from intended interventions,some concerns,,Open label.
A2019,RoB 2,D3 missing outcome data,low,,All analysed.
A2019,RoB 2,D4 measurement of the outcome,low,,Blinded review.
A2019,RoB 2,D5 selection of the reported result,low,,Registered.
A2019,RoB 2,Overall,some concerns,,Some concerns in D2.
B2020,Newcastle-Ottawa,selection,good,3,Consecutive patients.
B2020,Newcastle-Ottawa,comparability,poor,0,Single-arm.
B2020,Newcastle-Ottawa,outcome,good,2,RECIST.
B2020,Newcastle-Ottawa,Overall,poor,5,AHRQ poor.
"""
D_SERIOUS = "".join(
    f"D2022,ROBINS-I,{d},{j},,x\n" for d, j in (
        ("D1 confounding", "serious"), ("D2 selection of participants", "low"),
        ("D3 classification of interventions", "low"),
        ("D4 deviations from intended interventions", "low"), ("D5 missing data", "low"),
        ("D6 measurement of outcomes", "low"), ("D7 selection of the reported result", "low"),
        ("Overall", "serious")))
RULE = "RoB 2 high; ROBINS-I serious or critical; Newcastle-Ottawa poor"


def rob_tables(tmp_path, rob=ROB):
    paths = []
    for name, text in (("studies", STUDIES), ("proportions", PROPORTIONS),
                       ("survival", SURVIVAL), ("risk_of_bias", rob)):
        paths.append(tmp_path / f"{name}.csv")
        paths[-1].write_text(text)
    return load_tables(*paths[:3], risk_of_bias=paths[3])


def variant(doc):
    rows = [r for r in doc["sensitivity"] if r["variant"] == "exclude_high_rob"]
    assert len(rows) <= 1
    return rows[0] if rows else None


def test_high_risk_of_bias_variant_keeps_unassessed_studies(tmp_path):
    tables = rob_tables(tmp_path)
    doc = run_analysis(tables, "orr", ORR, {})
    row = variant(doc)
    assert doc["sensitivity"][-1] is row
    assert row["k"] == 2 and row["status"] == "pooled"
    assert row["description"] == (f"excluding studies at high risk of bias ({RULE}): 1 of 3 "
                                  "removed; 1 study without an assessment kept")
    # the same as the primary analysis of the studies that are not at high risk
    alone = run_analysis(tables, "orr", dict(ORR, exclude={"study_id": ["B2020"]}), {})
    assert row["estimate"] == pytest.approx(alone["models"][0]["estimate"])
    assert row["ci_lower"] == pytest.approx(alone["models"][0]["ci_lower"])
    primary = doc["sensitivity"][0]
    inside = primary["ci_lower"] <= row["estimate"] <= primary["ci_upper"]
    assert row["changed"] is (not inside)
    section = doc["risk_of_bias"]
    assert section["tools"] == ["RoB 2", "Newcastle-Ottawa"] and section["high_rule"] == RULE
    assert [(s["study_id"], s["assessed"], s["high"]) for s in section["studies"]] == [
        ("A2019", True, False), ("B2020", True, True), ("D2022", False, False)]
    assert section["studies"][1]["assessments"] == [
        {"tool": "Newcastle-Ottawa", "overall": "poor", "high": True}]
    assert (section["n_assessed"], section["n_high"], section["n_unassessed"]) == (2, 1, 1)
    assert section["sensitivity_variant"] is True
    text = doc["methods"]["text"]
    assert "Risk of bias was assessed per study with RoB 2" in text
    assert f"excluded studies at high risk of bias (overall judgement {RULE})" in text


def test_high_risk_variant_with_one_study_left_shows_its_own_estimate(tmp_path):
    tables = rob_tables(tmp_path, ROB + D_SERIOUS)
    doc = run_analysis(tables, "orr", ORR, {})
    row = variant(doc)
    a = next(s for s in doc["studies"] if s["study_id"] == "A2019")
    assert row["k"] == 1 and row["status"] == "not pooled: single study"
    assert (row["estimate"], row["ci_lower"], row["ci_upper"]) == (
        a["effect"], a["ci_lower"], a["ci_upper"])
    assert row["description"].endswith(
        "2 of 3 removed; every study assessed (one study left (Ames 2019): its own estimate "
        "and CI, not pooled)")
    primary = doc["sensitivity"][0]
    assert row["changed"] is not (primary["ci_lower"] <= a["effect"] <= primary["ci_upper"])
    # hazard ratios: the conclusion of the study left is judged like any variant
    os_doc = run_analysis(tables, "os", OS, {})
    row = variant(os_doc)
    assert row["k"] == 1 and row["conclusion"] == "favours experimental"  # A: 0.50-0.98
    assert row["changed"] is (row["conclusion"] != os_doc["sensitivity"][0]["conclusion"])


@pytest.mark.parametrize("rob, note", [
    (ROB.replace("B2020,Newcastle-Ottawa,comparability,poor,0", "B2020,Newcastle-Ottawa,"
                 "comparability,good,1").replace("Overall,poor,5,AHRQ poor", "Overall,good,6,x"),
     "no included study is at high risk of bias, so the variant would repeat the primary "
     "analysis"),
    (ROB.replace("A2019,RoB 2,Overall,some concerns", "A2019,RoB 2,Overall,high") + D_SERIOUS,
     "every included study is at high risk of bias, so none would remain"),
    ("study_id,tool,domain,judgement,stars,support\n"
     + "".join(f"C2021,Newcastle-Ottawa,{d},poor,{n},x\n" for d, n in (
         ("selection", 1), ("comparability", 0), ("outcome", 1), ("Overall", 2))),
     "no included study has a risk-of-bias assessment"),
])
def test_no_high_risk_variant_says_why(tmp_path, rob, note):
    doc = run_analysis(rob_tables(tmp_path, rob), "orr", ORR, {})
    assert variant(doc) is None
    assert doc["risk_of_bias"]["sensitivity_variant"] is False
    assert doc["risk_of_bias"]["sensitivity_note"] == note


def test_without_a_risk_of_bias_table_nothing_changes(tables, tmp_path):
    doc = run_analysis(tables, "orr", ORR, {})
    assert doc["risk_of_bias"] is None and variant(doc) is None
    assert "Risk of bias" not in doc["methods"]["text"]
    with_rob = run_analysis(rob_tables(tmp_path), "orr", ORR, {})
    assert with_rob["sensitivity"][:-1] == doc["sensitivity"]
    assert with_rob["models"] == doc["models"]


def test_input_digest_follows_the_risk_of_bias_of_selected_studies(tmp_path):
    from metapool.analysis import input_digest

    base = input_digest(rob_tables(tmp_path), ORR, {})
    changed = input_digest(rob_tables(tmp_path, ROB.replace("AHRQ poor", "AHRQ: poor")),
                           ORR, {})
    other = "".join(f"C2021,Newcastle-Ottawa,{d},poor,{n},x\n" for d, n in (
        ("selection", 1), ("comparability", 0), ("outcome", 1), ("Overall", 2)))
    unselected = input_digest(rob_tables(tmp_path, ROB + other), ORR, {})  # C2021: HCC
    assert changed != base and unselected == base
