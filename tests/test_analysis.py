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
