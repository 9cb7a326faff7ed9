"""Determinism and safety of the workflow's outputs, end to end.

* Two runs on the same inputs, in two directories, give byte-identical result files
  (CSV, JSON, SVG, PNG, PDF, HTML); only ``results/manifest.json`` records the time of
  the run, and no other output holds a date or time.
* Text taken from the tables or the config is escaped in report.html and in the SVG
  figures, and CSV text cells that a spreadsheet would run as a formula are neutralised.
* A run killed mid-way (SIGKILL of Snakemake's whole process group while a pool job is
  writing) leaves nothing a rerun trusts: Snakemake refuses the partial outputs without
  ``--rerun-incomplete``, and the rerun the default profile does (after
  ``snakemake --unlock`` releases the killed process' lock) reproduces the clean run's
  files exactly, with no temporary files left.

The projects are the mini fixture (tests/fixtures/mini) in temporary directories, run
with the repository's Snakefile as a user runs their own project (``--directory``).
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "tests" / "fixtures" / "mini"
#: Outputs allowed to differ between two runs (patterns on the path under results/): the
#: run record, which holds the time. The issue's rule is that it is the only one.
TIME_FILES = ("manifest.json",)
TEXT_SUFFIXES = {".csv", ".json", ".svg", ".html", ".txt", ".tsv"}
TIMESTAMP = re.compile(rb"(19|20)\d\d-[01]\d-[0-3]\d[T ][0-2]\d:[0-5]\d")

XSS = "<script>alert(1)</script>"
FORMULAS = {
    "source": "=cmd|' /C calc'!A0",
    "derivation": "@SUM(1+1)*cmd|' /C calc'!A0",
}


def make_project(path: Path, *, hostile: bool = False) -> Path:
    path.mkdir(parents=True)
    for name in ("config", "data"):
        shutil.copytree(MINI / name, path / name)
    if hostile:
        _make_hostile(path)
    return path


def _edit_csv(path: Path, edit) -> None:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    edit(rows)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _make_hostile(root: Path) -> None:
    """Markup and spreadsheet formulas in table cells and config titles."""
    raw = root / "data" / "raw"
    _edit_csv(raw / "studies.csv", lambda rows: rows[0].update(author=XSS))
    _edit_csv(raw / "proportions.csv", lambda rows: rows[0].update(FORMULAS))
    _edit_csv(raw / "survival.csv", lambda rows: rows[0].update(source="+1+cmd|' /C calc'!A0"))
    config_path = root / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["report"]["title"] = "<img src=x onerror=alert(2)> report"
    config["analyses"]["orr_mini"]["title"] = "ORR <b>bold</b> & <i>co</i>"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def start(workdir: Path, *args: str) -> subprocess.Popen:
    """Snakemake on a project, in a process group of its own (so it can be killed whole)."""
    with open(workdir.parent / f"{workdir.name}.log", "ab") as log:  # the child keeps it
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--directory", str(workdir),
             "-s", str(REPO / "Snakefile"), *args],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )


def finish(proc: subprocess.Popen, workdir: Path, timeout: float = 900) -> str:
    proc.wait(timeout=timeout)
    text = (workdir.parent / f"{workdir.name}.log").read_text(errors="replace")
    assert proc.returncode == 0, text[-5000:]
    return text


def holds_time(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in TIME_FILES)


def results(workdir: Path) -> dict[str, bytes]:
    folder = workdir / "results"
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three complete runs at once: two on the mini fixture, one on hostile text."""
    root = tmp_path_factory.mktemp("determinism")
    projects = {
        "a": make_project(root / "a"),
        "b": make_project(root / "b"),
        "hostile": make_project(root / "hostile", hostile=True),
    }
    procs = {name: start(path, "--cores", "1") for name, path in projects.items()}
    for name, proc in procs.items():
        finish(proc, projects[name])
    return projects


# --------------------------------------------------------------------------- determinism
def test_two_runs_give_byte_identical_outputs(runs):
    a, b = results(runs["a"]), results(runs["b"])
    assert sorted(a) == sorted(b)
    kinds = {Path(name).suffix for name in a}
    assert {".csv", ".json", ".svg", ".png", ".html"} <= kinds
    differ = [name for name in a if a[name] != b[name] and not holds_time(name)]
    assert not differ, f"outputs differ between two runs on the same inputs: {differ}"


def test_only_the_manifest_records_a_time(runs):
    for name, data in results(runs["a"]).items():
        if holds_time(name):
            continue
        suffix = Path(name).suffix
        if suffix in TEXT_SUFFIXES:
            found = TIMESTAMP.search(data)
            assert not found, f"{name} holds a date and time: {found.group().decode()}"
        elif suffix == ".png":
            assert b"tIME" not in data and b"Creation Time" not in data, name
        elif suffix == ".pdf":
            assert b"/CreationDate" not in data and b"/ModDate" not in data, name
    manifest = json.loads((runs["a"] / "results" / "manifest.json").read_text())
    assert TIMESTAMP.search(manifest["created_utc"].encode())


def test_manifest_hashes_match_the_outputs(runs):
    workdir = runs["a"]
    manifest = json.loads((workdir / "results" / "manifest.json").read_text())
    assert manifest["outputs"]
    for path, digest in {**manifest["inputs"], **manifest["outputs"]}.items():
        assert hashlib.sha256((workdir / path).read_bytes()).hexdigest() == digest, path


# --------------------------------------------------------------------------- safety
def _csv_cells(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_text_from_tables_and_config_is_escaped_in_html_and_svg(runs):
    out = runs["hostile"] / "results"
    html = (out / "report.html").read_text(encoding="utf-8")
    for raw in (XSS, "<img src=x onerror", "<b>bold</b>", "<i>co</i>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    for svg in out.rglob("*.svg"):
        text = svg.read_text(encoding="utf-8")
        assert "<script" not in text.lower() and "<b>" not in text, svg.name
    assert "&lt;script&gt;" in (out / "orr_mini" / "forest.svg").read_text(encoding="utf-8")


def test_csv_text_cells_cannot_run_as_formulas(runs):
    out = runs["hostile"] / "results"
    cells = [c for path in sorted(out.rglob("*.csv")) for c in _csv_cells(path)]
    risky = [c for c in cells if c[:1] in ("=", "+", "-", "@") and not _is_number(c)]
    assert not risky, risky
    studies = _csv_cells(out / "orr_mini" / "studies.csv")
    assert "'" + FORMULAS["source"] in studies
    assert "'" + FORMULAS["derivation"] in studies
    # the analysis document keeps the text as typed: only the CSV view is neutralised
    doc = json.loads((out / "orr_mini" / "analysis.json").read_text(encoding="utf-8"))
    assert FORMULAS["source"] in {s["source"] for s in doc["studies"]}


# --------------------------------------------------------------------------- interruption
def _wait_for_first_pool_output(proc: subprocess.Popen, workdir: Path, timeout=300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list((workdir / "results").glob("*/pooled.csv")):
            return
        assert proc.poll() is None, "the run ended before any pool output appeared"
        time.sleep(0.005)
    raise AssertionError("no pool output appeared")


def test_interrupted_run_leaves_nothing_a_rerun_trusts(runs, tmp_path):
    workdir = make_project(tmp_path / "killed")
    proc = start(workdir, "--cores", "1")
    _wait_for_first_pool_output(proc, workdir)
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its running job, at once
    proc.wait(timeout=60)
    partial = results(workdir)
    assert "manifest.json" not in partial and "report.html" not in partial

    # Without --rerun-incomplete Snakemake refuses the outputs of the killed job ...
    check = subprocess.run(
        [sys.executable, "-m", "snakemake", "--directory", str(workdir), "-s",
         str(REPO / "Snakefile"), "--workflow-profile", "none", "--cores", "1", "-n"],
        cwd=workdir, capture_output=True, text=True, timeout=300, check=False,
    )
    assert check.returncode != 0
    assert "incomplete" in (check.stdout + check.stderr).lower()

    # ... and after releasing the lock the killed process left (`snakemake --unlock`),
    # the default profile's rerun redoes them: the same files as a clean run.
    finish(start(workdir, "--unlock"), workdir)
    finish(start(workdir, "--cores", "2"), workdir)
    clean, rerun = results(runs["a"]), results(workdir)
    assert sorted(rerun) == sorted(clean), "stray or missing files after the rerun"
    differ = [n for n in clean if clean[n] != rerun[n] and not holds_time(n)]
    assert not differ, differ
    # (results/.cache/ is the result cache, see README "Many analyses")
    leftovers = [p.name for p in (workdir / "results").rglob("*")
                 if (p.name.startswith(".") and p.name != ".cache")
                 or p.suffix in (".tmp", ".part")]
    assert not leftovers
    for name, data in rerun.items():
        if name.endswith(".json"):
            json.loads(data)
