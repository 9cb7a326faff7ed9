"""Draw one analysis' secondary figures: rule `figures` (workflow/rules/figures.smk).

Thin adapter over metapool.plots: the funnel, leave-one-out, cumulative and sensitivity
plots, each written as SVG, PNG and PDF from analysis.json alone. A section the analysis
does not have (too few studies) gives a placeholder figure that says why.
"""

import json
import logging
import sys


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")  # warnings and tracebacks go to the log
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter

    from metapool.plots import FIGURES, write_figure

    with open(snakemake.input.document, encoding="utf-8") as f:
        doc = json.load(f)
    out = snakemake.output
    for name, draw in FIGURES.items():
        paths = (out[name], out[f"{name}_png"], out[f"{name}_pdf"])
        fig = write_figure(draw(doc), *paths)
        if fig.metapool.get("placeholder"):
            logging.info("%s: %s: %s", doc["analysis"], name, fig.metapool["message"])
        else:
            logging.info("%s: %s plot written", doc["analysis"], name)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
