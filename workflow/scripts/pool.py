"""Run one configured analysis: rule `pool` (workflow/rules/pool.smk).

Thin adapter over metapool.analysis; all statistics live in the package.
Deliberately imports no plotting code, so a pooling job stays light.
"""

import logging
import sys


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")  # warnings and tracebacks go to the log
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")

    from metapool.analysis import run_analysis, write_analysis_outputs
    from metapool.io import load_tables

    name = snakemake.wildcards.analysis
    tables = load_tables(
        snakemake.input.studies, snakemake.input.proportions, snakemake.input.survival
    )
    doc = run_analysis(tables, name, snakemake.params.spec, snakemake.params.defaults)
    write_analysis_outputs(
        doc,
        pooled=snakemake.output.pooled,
        studies=snakemake.output.studies,
        excluded=snakemake.output.excluded,
        document=snakemake.output.document,
        sensitivity=snakemake.output.sensitivity,
    )
    overall = doc["models"][0]
    logging.info(
        "%s: k=%s, %s, %d excluded",
        name,
        overall["k"],
        overall["status"],
        len(doc["excluded"]),
    )
    for warning in doc["warnings"]:
        logging.info("warning: %s", warning)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
