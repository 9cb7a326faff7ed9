"""Write the HTML report of every analysis: rule `report` (workflow/rules/report.smk).

Thin adapter over metapool.report; analyses appear in config order.
"""

import json
import logging
import sys


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")  # warnings and tracebacks go to the log
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")

    from metapool.report import write_report

    docs = []
    for path in snakemake.input.documents:
        with open(path, encoding="utf-8") as f:
            docs.append(json.load(f))
    figures = dict(zip(snakemake.params.analyses, snakemake.input.figures))
    write_report(docs, figures, snakemake.output[0], title=snakemake.params.title)
    logging.info("report of %d analyses written to %s", len(docs), snakemake.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
