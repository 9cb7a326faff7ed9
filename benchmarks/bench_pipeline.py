"""Whole-pipeline benchmark: many analyses through the real Snakemake workflow.

Generates a synthetic review (``--studies`` studies, default 50, with response counts
and hazard ratios) and a config of ``--analyses`` analyses (default 1,000: outcomes x
study filters x method profiles), copies the workflow next to it, and times with the
real ``snakemake`` command:

1. the first run: every analysis pooled with its leave-one-out, cumulative, influence,
   small-study and sensitivity panels (all in analysis.json and the report), its forest
   plot drawn (SVG; config report.figures [] and figure_formats [svg]), the excluded
   studies listed, the history recorded and the HTML report written (report.pdf off);
2. a rerun with nothing changed;
3. the dry run after one study is added to the tables: the number of pooling jobs it
   schedules must equal the number of analyses that select the new study, which the
   script works out independently from the filters it generated; then that run.

Prints the times and the counts, and PASS/FAIL against the targets of the issue
("Scale"): first run under 5 minutes, unchanged rerun under 10 seconds, and only the
analyses that include the new study rerun. Exit status 1 when a run fails or the
rerun set is wrong (a correctness failure); slow timings are printed, not fatal.

Usage::

    .venv/bin/python benchmarks/bench_pipeline.py                 # about 3-5 minutes
    .venv/bin/python benchmarks/bench_pipeline.py --analyses 100  # a quick look
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import itertools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]

CANCERS = ["NSCLC", "HCC", "CRC", "breast", "pancreatic"]
DESIGNS = ["RCT", "retrospective comparative cohort", "prospective single-arm",
           "retrospective single-arm"]
COUNTRIES = ["China", "USA", "Germany", "Japan", "Italy"]
PROFILES = ["cochrane2025", "metafor", "revman5", "meta"]
PROPORTION_OUTCOMES = ["ORR", "DCR", "CR"]
SURVIVAL_OUTCOMES = ["OS", "PFS"]


def header(table: str) -> list[str]:
    """Column order of a table, from the package's table contract."""
    schema = json.loads((REPO / "src" / "metapool" / "schemas" /
                         f"{table}.schema.json").read_text(encoding="utf-8"))
    return list(schema["x-column-order"])


def study_rows(index: int, rng: np.random.Generator) -> dict[str, list[dict]]:
    """The rows of synthetic study number `index` in the three tables."""
    sid = f"Synth{index:03d}"
    cancer = CANCERS[index % len(CANCERS)]
    design = DESIGNS[(index // len(CANCERS)) % len(DESIGNS)]
    country = COUNTRIES[(index * 7) % len(COUNTRIES)]
    year = 2000 + index % 25
    n = int(rng.integers(30, 300))
    study = {
        "study_id": sid, "author": f"Author{index:03d}", "year": year,
        "title": f"Synthetic study {index} of locoregional therapy in {cancer}",
        "journal": "Journal of Synthetic Oncology", "doi": f"10.5555/bench.{index}",
        "design": design, "country": country, "cancer": cancer,
        "intervention": "locoregional therapy", "comparator": "standard care",
        "n_total": n, "status": "published",
        "notes": "synthetic benchmark study; made-up values",
    }
    proportions = []
    for outcome, mean in zip(PROPORTION_OUTCOMES, (-0.3, 1.0, -2.0)):
        p = 1 / (1 + np.exp(-(mean + rng.normal(0, 0.5))))
        proportions.append({
            "study_id": sid, "outcome": outcome, "arm": "overall: treated cohort",
            "events": int(rng.binomial(n, p)), "total": n,
            "source": f"{outcome} (synthetic)", "derived": "no",
        })
    survival = []
    for outcome, mean in zip(SURVIVAL_OUTCOMES, (-0.3, -0.4)):
        log_hr = mean + rng.normal(0, 0.15)
        se = 2 / np.sqrt(n)
        hr, lo, hi = (round(float(np.exp(log_hr + d * 1.959964 * se)), 2)
                      for d in (0, -1, 1))
        if not lo < hr < hi:
            lo, hi = round(hr * 0.8, 2), round(hr * 1.25, 2)
        survival.append({
            "study_id": sid, "outcome": outcome,
            "comparison": "treatment: locoregional therapy vs standard care",
            "hr": hr, "hr_lower": lo, "hr_upper": hi, "ci_level": 0.95,
            "n_exp": n // 2, "n_ctrl": n - n // 2, "adjusted": "no",
            "source": f"{outcome} HR {hr} ({lo}-{hi}) (synthetic)",
        })
    return {"studies": [study], "proportions": proportions, "survival": survival}


def write_tables(directory: Path, studies: list[dict[str, list[dict]]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for table in ("studies", "proportions", "survival"):
        columns = header(table)
        with open(directory / f"{table}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            for rows in studies:
                writer.writerows(rows[table])


def generate_analyses(count: int, studies: list[dict[str, list[dict]]]) -> dict:
    """`count` analyses (outcome x cancer filter x design filter x profile), each
    selecting at least two of `studies`."""
    records = [s["studies"][0] for s in studies]
    cancer_sets = [[c] for c in CANCERS] + [list(p) for p in
                                            itertools.combinations(CANCERS, 2)]
    cancer_sets += [list(p) for p in itertools.combinations(CANCERS, 3)] + [["*"]]
    design_filters = [None, ["RCT"], ["*single-arm"], ["RCT", "*cohort"],
                      ["prospective*"], ["retrospective*"]]
    analyses = {}
    for outcome, cancers, designs, profile in itertools.product(
            PROPORTION_OUTCOMES + SURVIVAL_OUTCOMES, cancer_sets, design_filters,
            PROFILES):
        include = {"cancer": cancers}
        if designs:
            include["design"] = designs
        k = sum(all(any(fnmatch.fnmatchcase(str(r[col]), p) for p in pats)
                    for col, pats in include.items()) for r in records)
        if k < 2:
            continue
        table = "proportions" if outcome in PROPORTION_OUTCOMES else "survival"
        name = f"a{len(analyses) + 1:04d}_{outcome.lower()}"
        analyses[name] = {
            "title": f"{outcome}: cancer {', '.join(cancers)}"
                     + (f"; design {', '.join(designs)}" if designs else ""),
            "table": table, "outcome": outcome, "include": include,
            "profile": profile,
        }
        if len(analyses) == count:
            return analyses
    raise SystemExit(f"only {len(analyses)} distinct analyses can be generated")


def selects(spec: dict, study: dict) -> bool:
    """Whether an analysis selects `study` (its filters, evaluated here, not by metapool)."""
    return all(any(fnmatch.fnmatchcase(str(study[col]), p) for p in pats)
               for col, pats in spec["include"].items())


def make_workdir(path: Path, n_studies: int, n_analyses: int, seed: int) -> tuple:
    shutil.copy2(REPO / "Snakefile", path / "Snakefile")
    for name in ("workflow", "profiles"):
        shutil.copytree(REPO / name, path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    rng = np.random.default_rng(seed)
    studies = [study_rows(i + 1, rng) for i in range(n_studies)]
    write_tables(path / "data" / "raw", studies)
    analyses = generate_analyses(n_analyses, studies)
    config = {
        "tables": {t: f"data/raw/{t}.csv" for t in ("studies", "proportions", "survival")},
        "report": {
            "title": f"Benchmark: {n_analyses} analyses over {n_studies} studies",
            "figures": [],
            "figure_formats": ["svg"],
            "pdf": False,
        },
        "analyses": analyses,
    }
    (path / "config").mkdir()
    (path / "config" / "config.yaml").write_text(
        yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    new_study = study_rows(n_studies + 1, rng)
    return studies, analyses, new_study


def snakemake(workdir: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--directory", str(workdir), *args],
        cwd=workdir, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table (rule -> count) from a run or dry run."""
    counts = {}
    block = output.split("Job stats:", 1)[-1] if "Job stats:" in output else ""
    for line in block.splitlines()[3:]:
        match = re.fullmatch(r"\s*(\S+)\s+(\d+)\s*", line)
        if not match:
            break
        if match.group(1) != "total":
            rule = re.sub(r"_batch_\d+$", "_batch_<i>", match.group(1))
            counts[rule] = counts.get(rule, 0) + int(match.group(2))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--analyses", type=int, default=1000)
    parser.add_argument("--studies", type=int, default=50)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--workdir", type=Path, help="keep the run here (default: a "
                        "temporary directory, removed afterwards)")
    args = parser.parse_args()

    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="metapool-bench-")) if temporary else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    failed = False
    try:
        studies, analyses, new_study = make_workdir(
            workdir, args.studies, args.analyses, args.seed)
        print(f"workdir {workdir}: {len(analyses)} analyses over {args.studies} studies, "
              f"{args.cores} cores")
        common = ("--cores", str(args.cores))

        first, proc = snakemake(workdir, *common)
        jobs = job_counts(proc.stdout + proc.stderr)
        print(f"first run              {first:8.1f} s  exit {proc.returncode}  "
              f"{sum(jobs.values())} jobs ({', '.join(f'{k} {v}' for k, v in jobs.items())})")
        if proc.returncode:
            print(proc.stderr[-3000:])
            return 1

        rerun, proc = snakemake(workdir, *common)
        nothing = "Nothing to be done" in proc.stdout + proc.stderr
        print(f"rerun, nothing changed {rerun:8.1f} s  exit {proc.returncode}  "
              f"{'nothing to be done' if nothing else 'JOBS RAN'}")
        failed |= proc.returncode != 0 or not nothing

        # one study more: append its rows to the three tables
        raw = workdir / "data" / "raw"
        for table in ("studies", "proportions", "survival"):
            with open(raw / f"{table}.csv", "a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, fieldnames=header(table), restval="").writerows(
                    new_study[table])
        study = new_study["studies"][0]
        expected = sorted(name for name, spec in analyses.items() if selects(spec, study))
        dry, proc = snakemake(workdir, *common, "-n")
        planned = job_counts(proc.stdout + proc.stderr)
        rerun_names = sorted(set(re.findall(r"wildcards: analysis=(\S+)", proc.stdout)))
        pool_jobs = planned.get("publish", 0)
        print(f"dry run after adding {study['study_id']} ({study['cancer']}, "
              f"{study['design']}) {dry:.1f} s: {len(expected)} analyses select it; "
              f"analyses to publish again {pool_jobs}; "
              f"all jobs: {', '.join(f'{k} {v}' for k, v in planned.items())}")
        same = rerun_names == expected and pool_jobs == len(expected)
        failed |= not same
        update, proc = snakemake(workdir, *common)
        print(f"run after adding it    {update:8.1f} s  exit {proc.returncode}")
        failed |= proc.returncode != 0

        print()
        print(f"{'PASS' if first < 300 else 'FAIL'}  first run {first:.1f} s < 300 s")
        print(f"{'PASS' if rerun < 10 and nothing else 'FAIL'}  unchanged rerun "
              f"{rerun:.1f} s < 10 s")
        print(f"{'PASS' if same else 'FAIL'}  a new study reruns only the analyses that "
              f"select it ({pool_jobs} pooling jobs planned, {len(expected)} expected)")
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
