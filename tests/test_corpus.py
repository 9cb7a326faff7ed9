"""The bad-input corpus (tests/corpus/): every case through the real pipeline command.

Each case of ``tests/corpus/cases/`` is built from the mini fixture plus its edits (see
tests/corpus/README.md) and run as a user runs the workflow on their own project::

    snakemake --cores 1 --directory <case> -s <repo>/Snakefile      (--dry-run if exit: 0)

A case passes when the exit status is the expected one, the normalised stderr is exactly
``expected.txt``, and ``results/`` (which holds a sentinel file before the run) is
unchanged with nothing added. Errors must stop the run at parse time, so no ``logs/``
appear either. The runs go through a small thread pool (each is its own process), so the
file takes about (number of cases x 2.6 s) / cores.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from metapool.io import TABLES, load_tables

pytestmark = pytest.mark.workflow

CORPUS = Path(__file__).resolve().parent / "corpus"


def _load_builder():
    spec = importlib.util.spec_from_file_location("corpus_build", CORPUS / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


build = _load_builder()
CASES = build.load_cases()
WORKERS = max(2, min(4, os.cpu_count() or 2))


@dataclass
class Outcome:
    workdir: Path
    result: subprocess.CompletedProcess
    before: dict[str, tuple[bytes, int]]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` with its bytes and modification time."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, Outcome]:
    """Run every selected case once, a few at a time."""
    selected = {
        item.callspec.params["case"].id
        for item in request.session.items
        if item.module is sys.modules[__name__]
        and "case" in getattr(getattr(item, "callspec", None), "params", {})
    }
    root = tmp_path_factory.mktemp("corpus")

    def go(case) -> Outcome:
        workdir = build.build(case, root / case.id)
        before = snapshot(workdir / "results")
        return Outcome(workdir, build.run(case, workdir), before)

    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {c.id: pool.submit(go, c) for c in CASES if c.id in selected}
        return {name: future.result() for name, future in futures.items()}


def test_corpus_size_and_layout():
    assert len(CASES) >= 45
    assert len({c.id for c in CASES}) == len(CASES)
    for case in CASES:
        assert case.about and case.expected.strip(), case.id
        assert case.exit in (0, 1), case.id
        assert case.needs in (None, "config-precheck"), case.id
    # every kind of outcome is represented
    assert {c.id[0] for c in CASES} == {"t", "c", "w", "a"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case, outcomes, request):
    if case.needs == "config-precheck" and not build.precheck_installed():
        request.applymarker(
            pytest.mark.xfail(
                reason="needs the config pre-check in workflow/Snakefile "
                "(tests/corpus/README.md)",
                strict=True,
            )
        )
    out = outcomes[case.id]
    stderr = out.result.stderr
    message = build.normalise(stderr, out.workdir)

    if case.exit == 0:
        assert out.result.returncode == 0, stderr
    else:
        assert out.result.returncode != 0, stderr
    assert message == case.expected
    assert "Traceback" not in stderr
    # results/ untouched: the sentinel is unchanged and nothing was added
    assert snapshot(out.workdir / "results") == out.before
    if case.exit != 0:
        assert not (out.workdir / "logs").exists()
    for name in case.absent:
        assert not (out.workdir / name).exists(), f"{name} was created"


def _frames(root: Path) -> dict[str, pd.DataFrame]:
    tables = load_tables(*(root / build.FILES[t] for t in TABLES))
    return {t: getattr(tables, t) for t in TABLES}


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.same_tables_as_base],
    ids=[c.id for c in CASES if c.same_tables_as_base],
)
def test_accepted_input_reads_as_the_base_tables(case, tmp_path):
    """BOM, CRLF, spaces around cells, column order and empty rows change nothing."""
    base = _frames(build.BASE)
    variant = _frames(build.build(case, tmp_path / case.id))
    for table in TABLES:
        pd.testing.assert_frame_equal(variant[table], base[table], obj=table)
