"""Run a batch of configured analyses: rules `pool_batch_<i>` (workflow/rules/pool.smk).

Thin adapter over metapool.analysis; all statistics live in the package. Each analysis
goes to its own cache entry (pooled.csv, studies.csv, analysis.json, sensitivity.csv
and `log`, its own log, written last). Deliberately imports no plotting code, so a
pooling job stays light.
"""

import logging
import os
import sys
import warnings
from pathlib import Path


def run_one(tables, name, spec, defaults, entry):
    from metapool.analysis import run_analysis, write_analysis_outputs

    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        doc = run_analysis(tables, name, spec, defaults, listing=False)
    write_analysis_outputs(
        doc,
        pooled=entry / "pooled.csv",
        studies=entry / "studies.csv",
        document=entry / "analysis.json",
        sensitivity=entry / "sensitivity.csv",
    )
    overall = doc["models"][0]
    lines.append(
        f"{name}: k={overall['k']}, {overall['status']}, "
        f"{len(doc['dropped'])} selected row(s) without a usable effect"
    )
    lines += [f"warning: {w}" for w in doc["warnings"]]
    lines += [f"python warning: {w.message}" for w in caught]
    # the log comes last and whole: an entry with a log is complete
    (entry / "log.tmp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(entry / "log.tmp", entry / "log")
    return lines


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")  # tracebacks go to the batch log
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")

    from metapool.io import load_tables

    tables = load_tables(**snakemake.params.tables, km_dir=snakemake.params.km_dir)
    for name, spec in snakemake.params.analyses.items():
        entry = Path(snakemake.params.entries[name])
        entry.mkdir(parents=True, exist_ok=True)
        for line in run_one(tables, name, spec, snakemake.params.defaults, entry):
            logging.info("%s", line)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
