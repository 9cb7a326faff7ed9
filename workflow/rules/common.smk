# Configuration, input checks and small helpers shared by the rule files.
#
# Everything here runs when the workflow is parsed, before any job: a bad config or a bad
# table stops `snakemake` (and `snakemake -n`, `--lint`, `--report`) with one message
# listing the problems, and no results file is touched.

import hashlib
import os
import sys
from pathlib import Path

import metapool
from metapool.analysis import check_analyses
from metapool.io import DataError, load_tables


def stop(message):
    """End the run with `message` on stderr and exit status 1, without a traceback."""
    sys.exit(f"metapool: {message}\nNothing was run.")


# ---- config ----------------------------------------------------------------------------
# Validated against the schema, which also fills in the defaults of absent keys.
try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as e:
    problem = e.__context__  # the jsonschema ValidationError
    if problem is None or not hasattr(problem, "absolute_path"):
        raise
    where = " -> ".join(str(p) for p in problem.absolute_path) or "(top level)"
    stop(f"invalid configuration at {where}: {problem.message}")

ANALYSES = list(config["analyses"])

# ---- tables ----------------------------------------------------------------------------
# Load and check the tables now, so that a bad row stops the run before any job runs.
# The pool jobs read the same files again (they are the jobs' inputs).
# Config files given with --configfile override config/config.yaml: name those.
CONFIG_FILES = workflow.overwrite_configfiles or workflow.configfiles
try:
    check_analyses(
        load_tables(**config["tables"]),
        config,
        config_path=" + ".join(os.path.relpath(f) for f in CONFIG_FILES) or "config",
    )
except DataError as e:
    stop(f"{e}\nThe tables and the config are described in config/README.md.")


# Analysis names become directory names; they are restricted by the schema and here
# pinned to the configured names, so a wildcard can never match anything else.
wildcard_constraints:
    analysis="|".join(ANALYSES),


# ---- helpers ---------------------------------------------------------------------------
METAPOOL_DIR = Path(metapool.__file__).parent


def metapool_code(*skip):
    """SHA-256 over the installed metapool package's files, minus the top-level modules
    or subpackages named in `skip` (without extension).

    Rules take it as a param because Snakemake does not track code that a script
    imports: a changed estimator then reruns the pooling jobs, a changed plot module
    the figures, and so on downstream ("Params have changed ...: code").
    """
    digest = hashlib.sha256()
    for path in sorted(METAPOOL_DIR.rglob("*")):
        relative = path.relative_to(METAPOOL_DIR)
        if (
            path.is_file()
            and "__pycache__" not in relative.parts
            and path.suffix in {".py", ".json", ".html", ".css", ".j2"}
            and Path(relative.parts[0]).stem not in skip
        ):
            for part in (relative.as_posix().encode(), b"\0", path.read_bytes()):
                digest.update(part)
    return digest.hexdigest()


def analysis_outputs():
    """Every per-analysis result file, in config order."""
    return expand(
        "results/{analysis}/{file}",
        analysis=ANALYSES,
        file=[
            "pooled.csv",
            "studies.csv",
            "excluded.csv",
            "analysis.json",
            "sensitivity.csv",
            "forest.svg",
            "forest.png",
        ],
    )


def analysis_labels(wildcards):
    """Labels of an analysis' files in Snakemake's own report."""
    spec = config["analyses"][wildcards.analysis]
    return {
        "analysis": wildcards.analysis,
        "table": spec["table"],
        "outcome": spec["outcome"],
    }
