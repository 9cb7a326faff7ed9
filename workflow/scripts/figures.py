"""Draw a batch of analyses' figures: rules `plots_batch_<i>` (workflow/rules/figures.smk).

Thin adapter over metapool.plots. Per analysis, from the analysis.json of its pooling
cache entry alone: the forest plot (layout from config report.forest_layout) and the
figures of config report.figures (funnel, leave-one-out, cumulative, sensitivity), each
in the formats of report.figure_formats, into the analysis' plotting cache entry, with
its own `log` written last. A figure the analysis has too few studies for is a
placeholder saying why.
"""

import json
import logging
import os
import sys
from pathlib import Path


def draw_one(document, entry, *, layout, kinds, formats):
    from metapool.plots import FIGURES, forest_plot, write_figure

    with open(document, encoding="utf-8") as f:
        doc = json.load(f)
    name = doc["analysis"]
    write_figure(forest_plot(doc, layout=layout), *(entry / f"forest.{e}" for e in formats))
    lines = [f"{name}: forest plot written (layout {layout})"]
    for kind in kinds:
        fig = write_figure(FIGURES[kind](doc), *(entry / f"{kind}.{e}" for e in formats))
        if fig.metapool.get("placeholder"):
            lines.append(f"{name}: {kind}: {fig.metapool['message']}")
        else:
            lines.append(f"{name}: {kind} plot written")
    # the log comes last and whole: an entry with a log is complete
    (entry / "log.tmp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(entry / "log.tmp", entry / "log")
    return lines


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")  # warnings and tracebacks go to the log
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter

    params = snakemake.params
    for document, (name, entry) in zip(params.documents, params.entries.items()):
        entry = Path(entry)
        entry.mkdir(parents=True, exist_ok=True)
        lines = draw_one(
            document,
            entry,
            layout=params.layout,
            kinds=params.kinds,
            formats=params.formats,
        )
        for line in lines:
            logging.info("%s", line)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
