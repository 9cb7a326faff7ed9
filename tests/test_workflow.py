"""End-to-end tests of the Snakemake workflow on the synthetic mini tables.

The repository's Snakefile, workflow/ and profiles/ and the fixture's config/ and data/
are copied into a temporary directory and Snakemake runs there in a subprocess, exactly
as a user would run it on their own data (`--directory`). One full run is shared by the
tests of the module; the whole file takes well under a minute.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from metapool.analysis import POOLED_COLUMNS

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "tests" / "fixtures" / "mini"

# analysis -> (title, k of the overall model, level)
#: analysis -> (title, k, level, method): orr_mini takes the default cochrane2025
#: profile (GLMM for proportions), dcr_mini sets profile metafor (REML), os_hr_mini
#: inherits cochrane2025 for HRs (REML)
EXPECTED = {
    "orr_mini": ("Objective response rate, mini fixture", 4, 0.95, "GLMM"),
    "dcr_mini": ("Disease control rate, mini fixture", 3, 0.95, "REML"),
    "os_hr_mini": ("Overall survival hazard ratio, mini fixture", 3, 0.9, "REML"),
    # one HR with CI, one reconstructed from digitised Kaplan-Meier curves
    "pfs_hr_mini": ("Progression-free survival hazard ratio, mini fixture", 2, 0.95, "REML"),
}
#: the digitised Kaplan-Meier files of the mini tables (tests/fixtures/mini/make_km_fixture.py)
KM_FILES = ["data/raw/km/Alpha2019_PFS.curve.csv", "data/raw/km/Alpha2019_PFS.risk.csv"]
PER_ANALYSIS = [
    "pooled.csv",
    "studies.csv",
    "excluded.csv",
    "analysis.json",
    "sensitivity.csv",
    "forest.svg",
    "forest.png",
    "forest.pdf",
    *[f"{f}.{e}" for f in ("funnel", "leave_one_out", "cumulative", "sensitivity")
      for e in ("svg", "png", "pdf")],
]
# docs/architecture.md, "pooled row"


def make_workdir(path: Path) -> Path:
    """A working directory holding the workflow and the mini config and tables."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", path / "Snakefile")
    for name in ("workflow", "profiles"):
        shutil.copytree(
            REPO / name, path / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("config", "data"):
        shutil.copytree(MINI / name, path / name)
    return path


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--directory", str(workdir), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("mini") / "work")
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir


def test_every_output_exists(run):
    expected = [run / "results" / "report.html"] + [
        run / "results" / name / file for name in EXPECTED for file in PER_ANALYSIS
    ]
    missing = [str(p.relative_to(run)) for p in expected if not p.is_file()]
    assert not missing
    assert all(p.stat().st_size > 0 for p in expected if p.suffix != ".csv")
    for name in EXPECTED:
        assert (run / "logs" / "pool" / f"{name}.log").is_file()
        assert (run / "logs" / "plots" / f"{name}.log").is_file()


@pytest.mark.parametrize("name", EXPECTED)
def test_pooled_csv(run, name):
    _, k, level, method = EXPECTED[name]
    rows = read_csv(run / "results" / name / "pooled.csv")
    assert list(rows[0]) == POOLED_COLUMNS
    overall = rows[0]
    assert overall["analysis"] == name
    assert overall["model"] == "overall"
    assert int(overall["k"]) == k
    assert overall["status"] == "pooled"
    assert float(overall["level"]) == level
    assert overall["method"] == method  # from the profile filled in by the schema


def test_analysis_documents(run):
    docs = {
        name: json.loads((run / "results" / name / "analysis.json").read_text())
        for name in EXPECTED
    }
    ids = {name: {s["study_id"] for s in doc["studies"]} for name, doc in docs.items()}
    # The prognostic within-cohort HR is never pooled with treatment HRs, and the
    # ongoing study is listed, never pooled.
    assert "Delta2022" not in ids["os_hr_mini"]
    assert all("Epsilon_NCT09990002" not in s for s in ids.values())
    # (the left-out and ongoing studies of every analysis: results/left_out.json)
    left_out = json.loads((run / "results" / "left_out.json").read_text())
    assert list(left_out) == list(EXPECTED)
    for name in EXPECTED:
        assert "ongoing" not in docs[name]
        ongoing = left_out[name]["ongoing"]
        assert [o["study_id"] for o in ongoing] == ["Epsilon_NCT09990002"]
        excluded = read_csv(run / "results" / name / "excluded.csv")
        assert [e["study_id"] for e in excluded] == [
            e["study_id"] for e in left_out[name]["excluded"]]
    # one arm per study; the GLMM needs no continuity correction, the inverse-variance
    # logit model adds it to the all-event arm only
    orr = docs["orr_mini"]["studies"]
    assert len(orr) == len(ids["orr_mini"])
    assert not any(s["cc_added"] for s in orr)
    dcr = docs["dcr_mini"]["studies"]
    assert {s["study_id"] for s in dcr if s["cc_added"]} == {"Delta2022"}
    # every document carries the secondary analyses (leave-one-out from k = 3: with
    # k = 2 each "leave one out" is a single study, pfs_hr_mini)
    for doc in docs.values():
        assert doc["sensitivity"][0]["variant"] == "primary"
        assert doc["bias"]["computed"] is False
        if len(doc["studies"]) >= 3:
            assert doc["leave_one_out"]["rows"]
        else:
            assert doc["leave_one_out"] is None


def test_report_has_every_analysis(run):
    html = (run / "results" / "report.html").read_text(encoding="utf-8")
    assert "metapool mini test report" in html
    for title, *_ in EXPECTED.values():
        assert title in html


def test_second_run_has_nothing_to_do(run):
    result = snakemake(run, "-n")
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_snakemake_report_builds(run, tmp_path):
    """Snakemake's own report (captions in workflow/report/) renders from the run."""
    out = tmp_path / "snakemake_report.html"
    result = snakemake(run, "--report", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    html = out.read_text(encoding="utf-8")
    assert "Forest plot of the analysis" in html
    assert "metapool mini test report" in html


def test_editing_one_analysis_reruns_only_it(run, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(run, workdir, symlinks=True)
    config = workdir / "config" / "config.yaml"
    text = config.read_text()
    config.write_text(text.replace("    level: 0.9", "    level: 0.8"))
    result = snakemake(workdir, "-n")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    jobs = Counter(re.findall(r"^(?:local)?rule (\w+):", out, flags=re.MULTILINE))
    # one batch each for pooling and plotting (of the one analysis), its copy to
    # results/, the listing of left-out studies (its params hold every analysis)
    # and the run-level files
    batch_jobs = {rule: n for rule, n in jobs.items() if "_batch_" in rule}
    assert sorted(re.sub(r"_\d+$", "", rule) for rule in batch_jobs) == [
        "plots_batch", "pool_batch"], out
    assert set(batch_jobs.values()) == {1}, out
    assert {r: n for r, n in jobs.items() if r not in batch_jobs} == {
        "publish": 1, "excluded": 1, "history": 1, "report": 1, "report_pdf": 1,
        "manifest": 1, "default": 1}, out
    assert set(re.findall(r"wildcards: analysis=(\S+)", out)) == {"os_hr_mini"}
    assert "Params have changed" in out


def test_adding_a_study_reruns_only_the_analyses_that_select_it(run, tmp_path):
    """Issue "Scale": a new study recomputes only the analyses whose rows it joins;
    the other analyses' results stay as they are (their cache keys do not change)."""
    workdir = tmp_path / "work"
    shutil.copytree(run, workdir, symlinks=True)
    raw = workdir / "data" / "raw"
    studies = read_csv(raw / "studies.csv")
    new = dict(studies[0], study_id="Zeta2023", author="Zeta", year="2023",
               doi="10.5555/mini.zeta2023", registration="", pmid="")
    survival = read_csv(raw / "survival.csv")
    row = {key: "" for key in survival[0]}
    row.update(study_id="Zeta2023", outcome="OS",
               comparison="treatment: Agent X vs placebo", hr="0.8", hr_lower="0.6",
               hr_upper="1.07", ci_level="0.95", adjusted="no",
               source="HR 0.80 (95% CI 0.60-1.07) (synthetic)")
    for path, rows in ((raw / "studies.csv", studies + [new]),
                       (raw / "survival.csv", survival + [row])):
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    result = snakemake(workdir, "-n")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    jobs = Counter(re.findall(r"^(?:local)?rule (\w+):", out, flags=re.MULTILINE))
    assert jobs["publish"] == 1, out
    assert sum(n for rule, n in jobs.items() if rule.startswith("pool_batch_")) == 1, out
    assert set(re.findall(r"wildcards: analysis=(\S+)", out)) == {"os_hr_mini"}


def test_bad_table_stops_before_any_job(tmp_path):
    workdir = make_workdir(tmp_path / "work")
    table = workdir / "data" / "raw" / "proportions.csv"
    rows = read_csv(table)
    bad = next(i for i, r in enumerate(rows) if r["outcome"] == "DCR")
    rows[bad]["events"] = str(int(rows[bad]["total"]) + 5)
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    result = snakemake(workdir, "--cores", "2")

    assert result.returncode != 0
    message = result.stderr
    assert "proportions.csv" in message
    assert f"row {bad + 1}" in message
    assert "events" in message
    assert "Traceback" not in message
    assert not (workdir / "results").exists()


def test_bad_config_is_reported_briefly(tmp_path):
    workdir = make_workdir(tmp_path / "work")
    config = workdir / "config" / "config.yaml"
    config.write_text(config.read_text().replace("    level: 0.9", "    levle: 0.9"))

    result = snakemake(workdir, "-n")

    assert result.returncode != 0
    assert "os_hr_mini" in result.stderr
    assert "levle" in result.stderr
    assert "Traceback" not in result.stderr


def test_pooling_does_not_load_matplotlib():
    """A pool job imports metapool.io and metapool.analysis only: no plotting stack."""
    code = textwrap.dedent(f"""
        import sys, yaml
        from metapool.io import load_tables
        from metapool.analysis import run_analysis

        cfg = yaml.safe_load(open({str(MINI / "config" / "config.yaml")!r}))
        defaults = yaml.safe_load(open({str(REPO / "config" / "config.yaml")!r}))
        tables = load_tables(
            *({str(MINI)!r} + "/" + cfg["tables"][t]
              for t in ("studies", "proportions", "survival"))
        )
        run_analysis(tables, "orr_mini", cfg["analyses"]["orr_mini"],
                     defaults["defaults"])
        print(sorted(m for m in sys.modules
                     if m.split(".")[0] in ("matplotlib", "seaborn")))
        """)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_manifest_records_the_run(run):
    manifest = json.loads((run / "results" / "manifest.json").read_text())
    assert set(manifest["inputs"]) == {
        "data/raw/studies.csv", "data/raw/proportions.csv", "data/raw/survival.csv",
        "data/raw/risk_of_bias.csv", *KM_FILES}
    assert "results/report.html" in manifest["outputs"]
    assert manifest["config"]["analyses"].keys() == EXPECTED.keys()
    assert manifest["created_utc"].endswith("+00:00")


def test_km_reconstructed_hr_flows_through_the_workflow(run):
    """A row with only digitised Kaplan-Meier curves (survival.csv km_file) is pooled
    with the HR of a Cox model on the reconstructed data, logged as method "km"."""
    rows = {r["study_id"]: r for r in read_csv(run / "results" / "pfs_hr_mini" / "studies.csv")}
    assert rows["Alpha2019"]["effect_method"] == "km"
    assert rows["Alpha2019"]["strength"] == "4"
    assert rows["Gamma2021"]["effect_method"] == "hr_ci"
    # simulated with a true HR of 0.6 (Cox HR of the simulated data 0.51); the
    # reconstruction gives about 0.54
    assert 0.45 < float(rows["Alpha2019"]["effect"]) < 0.65
    doc = json.loads((run / "results" / "pfs_hr_mini" / "analysis.json").read_text())
    log = {c["row"].split(" / ")[0]: c for c in doc["conversions"]}
    km = log["Alpha2019"]
    assert km["conversion"]["method"] == "km"
    assert km["conversion"]["inputs"]["source"] == "Alpha2019_PFS"
    assert km["km"]["arms"]["experimental"]["n_risk_reconstructed"] == [40, 29, 12, 7, 1]
    assert [r["method"] for r in km["rejected"]] == ["hr_ci", "oe_v", "p_events", "hr_p"]
    html = (run / "results" / "report.html").read_text(encoding="utf-8")
    assert "Kaplan-Meier reconstruction" in html
    assert "Guyot" in html


def test_changed_km_file_reruns_its_analysis(run, tmp_path):
    """The KM files a selected row names are inputs of the pooling job: editing one
    schedules pooling again, and only jobs that read that file."""
    workdir = tmp_path / "work"
    shutil.copytree(run, workdir, symlinks=True)
    curve = workdir / KM_FILES[0]
    curve.write_text(curve.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    result = snakemake(workdir, "-n")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    blocks = re.split(r"^(?=(?:local)?rule \S+:)", out, flags=re.MULTILINE)
    pooling = [b for b in blocks if re.match(r"(?:local)?rule pool\w*:", b)]
    inputs = [re.search(r"^\s*input: (.*)$", b, flags=re.MULTILINE) for b in pooling]
    reading = [m.group(1) for m in inputs if m and KM_FILES[0] in m.group(1)]
    assert reading, out
    # any job that pools again without reading the curve may only copy results (the
    # per-analysis copy of a batch), never recompute another analysis
    for block in pooling:
        m = re.search(r"wildcards: analysis=(\S+)", block)
        assert m is None or m.group(1) == "pfs_hr_mini", block


def test_km_fixture_is_reproducible(tmp_path):
    """The committed KM files are what tests/fixtures/mini/make_km_fixture.py writes."""
    sys.path.insert(0, str(MINI))
    try:
        import make_km_fixture
    finally:
        sys.path.remove(str(MINI))
    for path in make_km_fixture.write(tmp_path):
        assert path.read_bytes() == (MINI / "data" / "raw" / "km" / path.name).read_bytes()


# --------------------------------------------------------------------------- risk of bias

ROB_OUTPUTS = [f"results/risk_of_bias/{figure}.{ext}" for figure in ("traffic_light", "summary")
               for ext in ("svg", "png", "pdf")]


def test_risk_of_bias_figures_report_and_sensitivity_variant(run):
    for path in ROB_OUTPUTS:
        assert (run / path).is_file() and (run / path).stat().st_size > 0, path
    assert (run / "results/risk_of_bias/summary.png").read_bytes().startswith(b"\x89PNG")
    assert (run / "results/risk_of_bias/summary.pdf").read_bytes().startswith(b"%PDF")
    svg = (run / "results/risk_of_bias/traffic_light.svg").read_text(encoding="utf-8")
    assert "Alpha 2019" in svg and "Delta 2022" in svg and "Gamma" not in svg
    assert (run / "logs" / "risk_of_bias.log").is_file()
    # Beta (ROBINS-I serious) and Delta (Newcastle-Ottawa poor) are left out; Gamma,
    # not assessed, is kept
    rows = read_csv(run / "results" / "orr_mini" / "sensitivity.csv")
    variant = [r for r in rows if r["variant"] == "exclude_high_rob"]
    assert len(variant) == 1 and variant[0]["k"] == "2"
    assert variant[0]["description"].endswith(
        "2 of 4 removed; 1 study without an assessment kept")
    doc = json.loads((run / "results" / "orr_mini" / "analysis.json").read_text())
    assert doc["risk_of_bias"]["n_high"] == 2 and doc["risk_of_bias"]["n_unassessed"] == 1
    html = (run / "results" / "report.html").read_text(encoding="utf-8")
    assert 'id="risk-of-bias"' in html and "3 studies assessed with RoB 2" in html
    assert html.count('alt="Risk-of-bias') == 2
    assert "Risk of bias (overall)" in html


def test_without_a_risk_of_bias_table_nothing_is_drawn(tmp_path):
    workdir = make_workdir(tmp_path / "work")
    config = workdir / "config" / "config.yaml"
    text = config.read_text()
    assert "  risk_of_bias: data/raw/risk_of_bias.csv\n" in text
    config.write_text(text.replace("  risk_of_bias: data/raw/risk_of_bias.csv\n", ""))
    result = snakemake(workdir, "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "rule risk_of_bias" not in out and "results/risk_of_bias" not in out
    assert "risk_of_bias.csv" not in out


def test_bad_risk_of_bias_table_stops_before_any_job(tmp_path):
    workdir = make_workdir(tmp_path / "work")
    table = workdir / "data" / "raw" / "risk_of_bias.csv"
    table.write_text(table.read_text().replace("Delta2022,Newcastle-Ottawa,Overall,poor,5",
                                               "Delta2022,Newcastle-Ottawa,Overall,fair,5"))
    result = snakemake(workdir, "-n")
    assert result.returncode != 0
    assert ("data/raw/risk_of_bias.csv, row 18 (study_id=Delta2022), column 'judgement': "
            "Overall 'fair' does not match the stars (selection 3, comparability 0, "
            "outcome 2): the AHRQ thresholds give 'poor'") in result.stderr
    assert "Traceback" not in result.stderr


def test_pooling_jobs_do_not_import_the_plotting_stack(tmp_path):
    """Issue "Scale": a job that only fits models starts light. The pooling script
    (workflow/scripts/pool.py) runs an analysis without importing matplotlib."""
    code = textwrap.dedent(f"""
        import runpy, sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO / "workflow" / "scripts")!r})
        import pool
        import yaml
        from metapool.io import load_tables
        cfg = yaml.safe_load(open({str(MINI / "config" / "config.yaml")!r}))
        raw = Path({str(MINI / "data" / "raw")!r})
        tables = load_tables(raw / "studies.csv", raw / "proportions.csv",
                             raw / "survival.csv", km_dir=raw / "km")
        entry = Path({str(tmp_path)!r})
        pool.run_one(tables, "orr_mini", cfg["analyses"]["orr_mini"], {{}}, entry)
        assert (entry / "log").read_text().startswith("orr_mini: k=4")
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in ("matplotlib", "seaborn", "jinja2"))
        print(heavy)
        sys.exit(1 if heavy else 0)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
