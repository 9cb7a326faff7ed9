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
}
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
        assert (run / "logs" / "forest" / f"{name}.log").is_file()


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
    for doc in docs.values():
        assert [o["study_id"] for o in doc["ongoing"]] == ["Epsilon_NCT09990002"]
    # one arm per study; the GLMM needs no continuity correction, the inverse-variance
    # logit model adds it to the all-event arm only
    orr = docs["orr_mini"]["studies"]
    assert len(orr) == len(ids["orr_mini"])
    assert not any(s["cc_added"] for s in orr)
    dcr = docs["dcr_mini"]["studies"]
    assert {s["study_id"] for s in dcr if s["cc_added"]} == {"Delta2022"}
    # every document carries the secondary analyses
    for doc in docs.values():
        assert doc["sensitivity"][0]["variant"] == "primary"
        assert doc["leave_one_out"]["rows"] and doc["bias"]["computed"] is False


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
    jobs = Counter(re.findall(r"^rule (\w+):", out, flags=re.MULTILINE))
    assert jobs == {"pool": 1, "forest": 1, "figures": 1, "history": 1, "report": 1,
                    "report_pdf": 1, "manifest": 1, "default": 1}, out
    assert set(re.findall(r"wildcards: analysis=(\S+)", out)) == {"os_hr_mini"}
    assert "Params have changed" in out


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
        "data/raw/studies.csv", "data/raw/proportions.csv", "data/raw/survival.csv"}
    assert "results/report.html" in manifest["outputs"]
    assert manifest["config"]["analyses"].keys() == EXPECTED.keys()
    assert manifest["created_utc"].endswith("+00:00")
