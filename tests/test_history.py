"""Tests of metapool.history (the living-review record) and of its workflow rule.

The unit tests build records from small analysis documents; the workflow test runs
Snakemake twice on the mini tables, the second time with one study added and one
estimate changed, and reads the "What changed since the previous run" section of the
second report as a person would.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from metapool.history import (
    compare,
    conclusion,
    hash_inputs,
    load_records,
    record_run,
    run_id,
    snapshot,
    threshold_of,
    update_history,
)

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "tests" / "fixtures" / "mini"


def doc(name="os", measure="HR", estimate=0.8, lo=0.7, hi=0.95, studies=("a", "b", "c"),
        null_value=None):
    """A minimal analysis document with an overall model."""
    return {
        "analysis": name, "title": f"Title {name}", "outcome": name.upper(),
        "measure": measure, "methods": {"level": 0.95, "null_value": null_value},
        "models": [{"model": "overall", "k": len(studies), "n_participants": 100,
                    "status": "pooled" if len(studies) > 1 else "not pooled: single study",
                    "estimate": estimate, "ci_lower": lo, "ci_upper": hi,
                    "pi_lower": None, "pi_upper": float("nan"), "tau2": 0.01, "i2": 12.0}],
        "studies": [{"study_id": s, "label": s.capitalize() + " 2020"} for s in studies],
    }


# --------------------------------------------------------------------------- unit


def test_run_id_depends_on_inputs_and_settings_not_time():
    a = run_id({"studies": "1" * 64, "survival": "2" * 64}, {"analyses": {"x": {"level": 0.9}}})
    assert re.fullmatch(r"[0-9a-f]{16}", a)
    assert a == run_id({"survival": "2" * 64, "studies": "1" * 64},
                       {"analyses": {"x": {"level": 0.9}}})  # order does not matter
    assert a != run_id({"studies": "1" * 64, "survival": "3" * 64},
                       {"analyses": {"x": {"level": 0.9}}})
    assert a != run_id({"studies": "1" * 64, "survival": "2" * 64},
                       {"analyses": {"x": {"level": 0.8}}})


def test_hash_inputs_keys_by_name(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "b.csv").write_text("x\n1\n")
    assert hash_inputs({"studies": tmp_path / "a.csv"}) == hash_inputs(
        {"studies": tmp_path / "b.csv"})  # same bytes, moved file: same hash


def test_conclusion_and_thresholds():
    assert threshold_of("HR") == 1.0
    assert threshold_of("PLO") is None and threshold_of("PLO", 0.3) == 0.3
    assert threshold_of("log", 0.3) is None  # pooled medians: no threshold
    assert conclusion(0.5, 0.9, 1.0) == "below"
    assert conclusion(1.1, 1.5, 1.0) == "above"
    assert conclusion(0.9, 1.1, 1.0) == "includes"
    assert conclusion(None, 1.1, 1.0) is None
    assert conclusion(0.2, 0.4, None) is None


def test_snapshot_has_no_nan():
    snap = snapshot([doc(), doc("orr", "PLO", 0.4, 0.35, 0.45, null_value=0.3)])
    assert list(snap) == ["os", "orr"]
    assert snap["os"]["conclusion"] == "below" and snap["os"]["pi_upper"] is None
    assert snap["orr"]["conclusion"] == "above" and snap["orr"]["threshold"] == 0.3
    assert snap["os"]["studies"][0] == {"study_id": "a", "label": "A 2020"}
    json.dumps(snap, allow_nan=False)
    # the config's null_value when the document has none
    snap = snapshot([doc("orr", "PLO", 0.4, 0.2, 0.45)], {"orr": 0.3})
    assert snap["orr"]["conclusion"] == "includes"


def test_unchanged_rerun_adds_no_record(tmp_path):
    store = tmp_path / "history"
    changes, action = update_history(store, [doc()], {"t": "1"})
    assert action == "added" and changes["previous"] is None
    assert changes["analyses"][0]["state"] == "first run"
    files = sorted(store.glob("*.json"))
    assert [f.name for f in files] == [f"{changes['run_id']}.json"]
    before = files[0].read_bytes()
    again, action = update_history(store, [doc()], {"t": "1"})
    assert action == "unchanged" and again == changes
    assert sorted(store.glob("*.json")) == files and files[0].read_bytes() == before
    record = json.loads(before)
    assert record["sequence"] == 1 and record["inputs"] == {"t": "1"}
    assert not re.search(r"(19|20)\d\d-[01]\d-[0-3]\d", before.decode())  # no time


def test_changed_inputs_are_compared_with_the_previous_run(tmp_path):
    store = tmp_path / "history"
    first, _ = update_history(store, [doc(estimate=0.85, lo=0.7, hi=1.03, studies="abc"),
                                      doc("gone", "PLO", 0.4, 0.3, 0.5)], {"t": "1"})
    second, action = update_history(
        store, [doc(estimate=0.77, lo=0.63, hi=0.94, studies="abd"),
                doc("new", "PLO", 0.5, 0.4, 0.6)], {"t": "2"})
    assert action == "added"
    assert second["previous"] == {"run_id": first["run_id"], "sequence": 1}
    assert second["sequence"] == 2
    os_, new, gone = second["analyses"]
    assert os_["state"] == "changed"
    assert os_["added_studies"] == ["D 2020"] and os_["removed_studies"] == ["C 2020"]
    assert os_["estimate_changed"] and os_["ci_changed"]
    assert os_["before"]["conclusion"] == "includes" and os_["after"]["conclusion"] == "below"
    assert os_["crossed"] is True
    assert (new["state"], new["before"]) == ("new", None)
    assert (gone["state"], gone["after"]) == ("removed", None)
    json.dumps(second, allow_nan=False)
    # the same second run again: still compared with the first
    again, action = update_history(
        store, [doc(estimate=0.77, lo=0.63, hi=0.94, studies="abd"),
                doc("new", "PLO", 0.5, 0.4, 0.6)], {"t": "2"})
    assert action == "unchanged" and again == second
    assert len(load_records(store)) == 2


def test_reverted_inputs_become_the_latest_record(tmp_path):
    store = tmp_path / "history"
    first, _ = update_history(store, [doc(estimate=0.85)], {"t": "1"})
    update_history(store, [doc(estimate=0.77)], {"t": "2"})
    back, action = update_history(store, [doc(estimate=0.85)], {"t": "1"})
    assert action == "moved" and back["run_id"] == first["run_id"]
    assert back["sequence"] == 3 and back["previous"]["sequence"] == 2
    assert back["analyses"][0]["state"] == "changed"
    # a fourth run compares with the reverted one, the latest
    fourth, _ = update_history(store, [doc(estimate=0.7)], {"t": "4"})
    assert fourth["previous"] == {"run_id": first["run_id"], "sequence": 3}


def test_same_inputs_new_results_update_the_record(tmp_path):
    store = tmp_path / "history"
    update_history(store, [doc(estimate=0.85)], {"t": "1"})
    _, action = update_history(store, [doc(estimate=0.84)], {"t": "1"})
    assert action == "updated"
    (record,) = load_records(store)
    assert record["analyses"]["os"]["estimate"] == 0.84 and record["sequence"] == 1


def test_store_ignores_other_files(tmp_path):
    store = tmp_path / "history"
    store.mkdir()
    (store / "notes.json").write_text('{"hello": 1}')
    (store / ".x.json.tmp").write_text("{")
    (store / "broken.json").write_text("{")
    record, previous, action = record_run(store, "abc", {"os": {}})
    assert action == "added" and previous is None and record["sequence"] == 1


def test_compare_without_previous():
    current = {"run_id": "r", "sequence": 1, "analyses": snapshot([doc()])}
    out = compare(current, None)
    assert out["previous"] is None and out["analyses"][0]["state"] == "first run"


# --------------------------------------------------------------------------- workflow


class Text(HTMLParser):
    """What a reader sees: cells and paragraphs apart, inline markup joined."""

    BLOCKS = {"p", "div", "li", "td", "th", "tr", "br", "h1", "h2", "h3", "section", "table"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("style", "script")
        if tag in self.BLOCKS:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        self.skip -= tag in ("style", "script")
        if tag in self.BLOCKS:
            self.parts.append(" ")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def seen(html: str) -> str:
    parser = Text()
    parser.feed(html)
    return re.sub(r"\s+", " ", "".join(parser.parts)).strip()


def changes_section(html: str) -> str:
    match = re.search(r'<section class="changes" id="changes">(.*?)</section>', html, re.DOTALL)
    assert match, "no What-changed section"
    return match.group(1)


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--directory", str(workdir), *args],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )


def add_study(workdir: Path) -> None:
    """A new study with an OS hazard ratio, and a corrected HR of an existing one."""
    raw = workdir / "data" / "raw"
    with open(raw / "studies.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    new = dict(rows[0], study_id="Zeta2023", author="Zeta", year="2023",
               doi="10.5555/mini.zeta2023", registration="", pmid="",
               title="Zeta trial (synthetic)")
    rows.insert(len(rows) - 1, new)
    with open(raw / "studies.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(raw / "survival.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:  # Beta's HR moves below 1 everywhere: the pooled CI shifts down
        if row["study_id"] == "Beta2020":
            row.update(hr="0.62", hr_lower="0.45", hr_upper="0.85")
    rows.append(dict(rows[0], study_id="Zeta2023", hr="0.50", hr_lower="0.35",
                     hr_upper="0.71", p_value="<0.001", source="OS HR 0.50 (synthetic)"))
    with open(raw / "survival.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.workflow
def test_two_runs_show_what_changed(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy2(REPO / "Snakefile", work / "Snakefile")
    for name in ("workflow", "profiles"):
        shutil.copytree(REPO / name, work / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("config", "data"):
        shutil.copytree(MINI / name, work / name)

    result = snakemake(work, "--cores", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    history = work / "results" / "history"
    (first,) = history.glob("*.json")
    html = (work / "results" / "report.html").read_text(encoding="utf-8")
    text = seen(changes_section(html))
    assert "This is the first recorded run (record 1, run " + first.stem + ")" in text

    # An unchanged rerun, even forced, adds no record and changes no byte of the report.
    result = snakemake(work, "--cores", "2", "--forcerun", "history")
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(history.glob("*.json")) == [first]
    assert (work / "results" / "report.html").read_text(encoding="utf-8") == html

    add_study(work)
    result = snakemake(work, "--cores", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    records = sorted(history.glob("*.json"))
    assert len(records) == 2 and first in records  # the store survived the rerun
    second = next(p for p in records if p != first)
    html = (work / "results" / "report.html").read_text(encoding="utf-8")
    section = changes_section(html)
    text = seen(section)
    assert (f"This run (record 2, run {second.stem}) compared with the previous recorded run "
            f"(record 1, run {first.stem}): 1 of 4 outcomes changed") in text
    os_row = seen(re.search(r'<tr[^>]*data-analysis="os_hr_mini">(.*?)</tr>', section,
                            re.DOTALL).group(1))
    changes = json.loads((work / "results" / "changes.json").read_text())
    os_change = next(a for a in changes["analyses"] if a["analysis"] == "os_hr_mini")
    assert os_change["added_studies"] == ["Zeta 2023"]
    assert "Zeta 2023" in os_row and "3 → 4" in os_row
    # the previous and current estimates as the report formats them
    from metapool.formatting import fmt_effect_ci

    before, after = os_change["before"], os_change["after"]
    assert fmt_effect_ci(before["estimate"], before["ci_lower"], before["ci_upper"],
                         "HR") in os_row
    assert fmt_effect_ci(after["estimate"], after["ci_lower"], after["ci_upper"],
                         "HR") in os_row
    assert after["estimate"] < before["estimate"]
    assert "cumulative meta-analysis" in os_row
    for name in ("orr_mini", "dcr_mini", "pfs_hr_mini"):
        row = re.search(rf'<tr[^>]*data-analysis="{name}">(.*?)</tr>', section, re.DOTALL)
        assert "no change" in seen(row.group(1))
    # the rule's log says what it did
    assert "added (record 2)" in (work / "logs" / "history.log").read_text()
