"""Draw the PRISMA 2020 flow diagram: rule `prisma` (workflow/rules/figures.smk).

Thin adapter over metapool.plots: the counts file (config/prisma.yaml) is validated
(every problem, with its key, goes to the log and fails the job) and drawn.
"""

import logging
import sys


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")  # warnings and tracebacks go to the log
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter

    from metapool.plots import PrismaError, prisma_diagram, read_prisma, write_figure

    try:
        counts = read_prisma(snakemake.input.counts)
    except PrismaError as e:
        logging.error("%s", e)
        sys.exit(1)
    out = snakemake.output
    write_figure(prisma_diagram(counts), out.svg, out.png, out.pdf)
    logging.info("PRISMA flow diagram written from %s", snakemake.input.counts)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
