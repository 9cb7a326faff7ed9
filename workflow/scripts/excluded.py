"""List what each analysis leaves out: rule `excluded` (workflow/rules/pool.smk).

Thin adapter over metapool.analysis.left_out: per analysis, the studies and rows it
does not use with the reason (results/<analysis>/excluded.csv), and for the report the
same lists plus the ongoing studies (results/left_out.json).
"""

import json
import logging
import sys


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")  # warnings and tracebacks go to the log
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")

    from metapool.analysis import left_out, write_excluded
    from metapool.io import load_tables

    tables = load_tables(**snakemake.params.tables, km_dir=snakemake.params.km_dir)
    listing = {}
    specs = snakemake.params.analyses
    for name, path in zip(specs, snakemake.output.excluded):
        excluded, ongoing = left_out(tables, specs[name], snakemake.params.defaults)
        write_excluded(path, excluded)
        listing[name] = {"excluded": excluded, "ongoing": ongoing}
        logging.info("%s: %d excluded, %d ongoing", name, len(excluded), len(ongoing))
    with open(snakemake.output.listing, "w", encoding="utf-8") as f:
        json.dump(listing, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
