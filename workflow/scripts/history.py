"""Record this run in the living-review history: rule `history` (workflow/rules/report.smk).

Thin adapter over metapool.history. The history store (params.store, results/history/)
is read and extended here but is not a declared output, so Snakemake never deletes it;
the declared output is the comparison with the previous recorded run.
"""

import json
import logging
import sys
from pathlib import Path


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")  # warnings and tracebacks go to the log
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")

    from metapool.history import hash_inputs, update_history, write_json

    docs = []
    for path in snakemake.input.documents:
        with open(path, encoding="utf-8") as f:
            docs.append(json.load(f))
    # Input files by role ("studies", ...) and, for reconstructed Kaplan-Meier curves,
    # by their path: the run id changes when any of them does.
    paths = dict(zip(snakemake.params.table_names, snakemake.input.tables))
    for directory in snakemake.params.km_dirs:
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file():
                paths[f"km:{path.as_posix()}"] = path
    changes, action = update_history(
        snakemake.params.store,
        docs,
        hash_inputs(paths),
        settings=snakemake.params.settings,
        null_values=snakemake.params.null_values,
    )
    write_json(snakemake.output.changes, changes)
    previous = changes["previous"]
    logging.info(
        "history: run %s %s (record %s); previous: %s",
        changes["run_id"],
        action,
        changes["sequence"],
        "none" if previous is None else f"{previous['run_id']} (record {previous['sequence']})",
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
