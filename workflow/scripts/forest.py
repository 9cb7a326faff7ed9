"""Draw one analysis' forest plot: rule `forest` (workflow/rules/figures.smk).

Thin adapter over metapool.plots; the plot is drawn from analysis.json alone, in the
layout given by the rule's `layout` param (config report.forest_layout).
"""

import json
import logging
import sys


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")  # warnings and tracebacks go to the log
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter

    from metapool.plots import write_forest

    with open(snakemake.input.document, encoding="utf-8") as f:
        doc = json.load(f)
    layout = snakemake.params.get("layout", "default")
    write_forest(
        doc,
        snakemake.output.svg,
        snakemake.output.png,
        layout=layout,
        pdf_path=snakemake.output.pdf,
    )
    logging.info("%s: forest plot written (layout %s)", doc["analysis"], layout)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
