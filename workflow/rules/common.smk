# Configuration, input checks and small helpers shared by the rule files.
#
# Everything here runs when the workflow is parsed, before any job: a bad config or a bad
# table stops `snakemake` (and `snakemake -n`, `--lint`, `--report`) with one message
# listing the problems, and no results file is touched.

import hashlib
import os
import sys
from pathlib import Path

import yaml

import metapool
from metapool.analysis import check_analyses
from metapool.io import (
    DataError,
    check_config,
    check_config_file,
    format_issues,
    load_tables,
)


def stop(message):
    """End the run with `message` on stderr and exit status 1, without a traceback."""
    sys.exit(
        f"metapool: {message}\n"
        "The tables and the config are described in config/README.md.\n"
        "Nothing was run."
    )


# ---- config ----------------------------------------------------------------------------
# Config files given with --configfile override config/config.yaml: name those.
CONFIG_FILES = workflow.overwrite_configfiles or workflow.configfiles
CONFIG_PATH = " + ".join(os.path.relpath(f) for f in CONFIG_FILES) or "config"

# Every problem of the config at once, each with its key path; then the schema fills in
# the defaults of absent keys. The files themselves must be plain YAML data (no keys
# given twice, no templates).
with open(
    workflow.current_basedir.join("../schemas/config.schema.yaml").get_path_or_uri(
        secret_free=False
    ),
    encoding="utf-8",
) as schema_file:
    CONFIG_SCHEMA = yaml.safe_load(schema_file)
READ_FILES = [*workflow.configfiles, *(workflow.overwrite_configfiles or [])]
problems = [
    p
    for f in dict.fromkeys(os.path.relpath(f) for f in READ_FILES)
    for p in check_config_file(f)
]
problems += check_config(config, CONFIG_SCHEMA, CONFIG_PATH)
if problems:
    stop(format_issues(problems, "the config"))
validate(config, schema="../schemas/config.schema.yaml")

ANALYSES = list(config["analyses"])

# ---- tables ----------------------------------------------------------------------------
# Load and check the tables now, so that a bad row stops the run before any job runs.
# The pool jobs read the same files again (they are the jobs' inputs).
try:
    TABLES = load_tables(**config["tables"])
except DataError as e:
    stop(e)
try:
    check_analyses(TABLES, config, config_path=CONFIG_PATH)
except DataError as e:
    stop(format_issues(e.issues, "the config"))
if TABLES.warnings:
    print(
        f"metapool: {len(TABLES.warnings)} warning(s) in the input tables "
        "(the run goes on):",
        *(f"  - warning: {w}" for w in TABLES.warnings),
        sep="\n",
        file=sys.stderr,
    )


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
            "forest.pdf",
            *[
                f"{figure}.{ext}"
                for figure in ("funnel", "leave_one_out", "cumulative", "sensitivity")
                for ext in ("svg", "png", "pdf")
            ],
        ],
    )


def prisma_outputs():
    """The PRISMA diagram files, when there are counts to draw them from."""
    if os.path.exists(config.get("prisma", "config/prisma.yaml")):
        return expand("results/prisma.{ext}", ext=["svg", "png", "pdf"])
    return []


def analysis_labels(wildcards):
    """Labels of an analysis' files in Snakemake's own report."""
    spec = config["analyses"][wildcards.analysis]
    return {
        "analysis": wildcards.analysis,
        "table": spec["table"],
        "outcome": spec["outcome"],
    }
