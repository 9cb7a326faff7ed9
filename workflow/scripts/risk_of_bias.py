"""Draw the risk-of-bias figures: rule `risk_of_bias` (workflow/rules/figures.smk).

Thin adapter over metapool.plots: the traffic-light plot and the (sample-size weighted)
summary plot of risk_of_bias.csv, each written as SVG, PNG and PDF. The tables are
validated again on loading (risk_of_bias.csv against studies.csv).
"""

import logging
import sys


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")  # warnings and tracebacks go to the log
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter

    from metapool.io import load_tables
    from metapool.plots import rob_summary, rob_traffic_light, write_figure

    tables = load_tables(**snakemake.params.tables, km_dir=snakemake.params.km_dir)
    out = snakemake.output
    fig = write_figure(
        rob_traffic_light(tables.risk_of_bias, tables.studies),
        out.traffic_light,
        out.traffic_light_png,
        out.traffic_light_pdf,
    )
    logging.info(
        "traffic-light plot: %d judgements of %d tool(s)",
        fig.metapool.get("n_circles", 0),
        len(fig.metapool.get("panels", [])),
    )
    fig = write_figure(
        rob_summary(tables.risk_of_bias, tables.studies),
        out.summary,
        out.summary_png,
        out.summary_pdf,
    )
    logging.info(
        "summary plot: %s", "weighted by n_total" if fig.metapool.get("weighted") else
        fig.metapool.get("note") or "unweighted"
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
