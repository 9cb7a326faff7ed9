# Configuration, input checks and small helpers shared by the rule files.
#
# Everything here runs when the workflow is parsed, before any job: a bad config or a bad
# table stops `snakemake` (and `snakemake -n`, `--lint`, `--report`) with one message
# listing the problems, and no results file is touched.

import hashlib
import os
import re
import sys
from pathlib import Path

import yaml

import metapool
from metapool.selection import check_analyses, input_digest, km_files
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
# (config/config.yaml itself was checked in workflow/Snakefile, before Snakemake read it)
READ_FILES = [*workflow.configfiles, *(workflow.overwrite_configfiles or [])]
problems = [
    p
    for f in dict.fromkeys(os.path.relpath(f) for f in READ_FILES)
    if f != "config/config.yaml"
    for p in check_config_file(f)
]
problems += check_config(config, CONFIG_SCHEMA, CONFIG_PATH)
if problems:
    stop(format_issues(problems, "the config"))
validate(config, schema="../schemas/config.schema.yaml")

ANALYSES = list(config["analyses"])
# The input tables by name; tables.km_dir is the directory of digitised Kaplan-Meier
# curves (the files the selected rows name are inputs of the pool jobs: km_files), not
# a table.
TABLE_FILES = {k: v for k, v in config["tables"].items() if k != "km_dir"}
KM_DIR = config["tables"]["km_dir"]


def names_regex(names):
    """A regular expression matching exactly `names`, as a prefix tree of alternatives
    (the work of a match grows with the length of a name, not with their number)."""
    tree = {}
    for name in names:
        node = tree
        for char in name:
            node = node.setdefault(char, {})
        node[""] = {}

    def pattern(node):
        alternatives = [
            f"{re.escape(c)}{pattern(child)}" for c, child in sorted(node.items()) if c
        ]
        if not alternatives:
            return ""
        if len(alternatives) == 1 and "" not in node:
            return alternatives[0]
        group = f"(?:{'|'.join(alternatives)})"
        return f"{group}?" if "" in node else group

    return pattern(tree)


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
# pinned to the configured names, so a wildcard can never match anything else. The
# names are written as a prefix tree (see names_regex): matching a path against a plain
# alternation of hundreds of names would dominate the start-up.
wildcard_constraints:
    analysis=names_regex(ANALYSES),


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
            *[
                f"{figure}.{ext}"
                for figure in ("forest", *FIGURE_KINDS)
                for ext in FIGURE_FORMATS
            ],
        ],
    )


def prisma_outputs():
    """The PRISMA diagram files, when there are counts to draw them from."""
    if os.path.exists(config.get("prisma", "config/prisma.yaml")):
        return expand("results/prisma.{ext}", ext=["svg", "png", "pdf"])
    return []


# The risk-of-bias figures drawn from the optional table tables.risk_of_bias.
ROB_FIGURES = ("traffic_light", "summary")


def rob_table():
    """The risk-of-bias table as a list of zero or one paths (tables.risk_of_bias is
    optional: without it nothing reads or draws risk of bias)."""
    path = config["tables"].get("risk_of_bias")
    return [path] if path else []


def rob_outputs():
    """The risk-of-bias figures, when the config names a risk-of-bias table."""
    if rob_table():
        return expand(
            "results/risk_of_bias/{figure}.{ext}",
            figure=ROB_FIGURES,
            ext=["svg", "png", "pdf"],
        )
    return []


def all_km_inputs():
    """The Kaplan-Meier files of every analysis (for the manifest)."""
    return sorted(
        {
            path
            for name, spec in config["analyses"].items()
            for path in km_files(TABLES, spec, config["defaults"], KM_DIR)
        }
    )


def analysis_labels(wildcards):
    """Labels of an analysis' files in Snakemake's own report."""
    spec = config["analyses"][wildcards.analysis]
    return {
        "analysis": wildcards.analysis,
        "table": spec["table"],
        "outcome": spec["outcome"],
    }


# ---- result cache ----------------------------------------------------------------------
# Each analysis' results are computed once per content: the pooling jobs write them to
# results/.cache/pool/<key>/, the plotting jobs to results/.cache/plots/<key>/, and the
# per-analysis rules `pool`, `forest` and `figures` copy them to results/<analysis>/.
# The key is a SHA-256 over everything the result depends on (the analysis' settings,
# the rows it selects, and the code), so a cache entry never goes stale: an edited
# analysis or a study added to the tables gets a new key for the analyses that select
# it, and only those are computed again. Entries still missing are computed in batches
# (execution.batch_size analyses per job), so that one Python start-up serves many
# analyses; Snakemake's own bookkeeping stays per analysis, on the copies.
POOL_FILES = ("pooled.csv", "studies.csv", "analysis.json", "sensitivity.csv", "log")
FIGURE_KINDS = list(config["report"]["figures"])
FIGURE_FORMATS = [
    f for f in ("svg", "png", "pdf") if f in config["report"]["figure_formats"]
]
PLOT_FILES = (
    *(f"forest.{ext}" for ext in FIGURE_FORMATS),
    *(f"{kind}.{ext}" for kind in FIGURE_KINDS for ext in FIGURE_FORMATS),
    "log",
)
# Checksums of the code each kind of job uses (see metapool_code), computed once.
POOL_CODE = metapool_code("plots", "report")
PLOT_CODE = metapool_code("report")
REPORT_CODE = metapool_code()


def sha256_text(*parts):
    """SHA-256 of the parts, each as text, separated by NUL."""
    return hashlib.sha256("\0".join(map(str, parts)).encode("utf-8")).hexdigest()


# The analysis' name is part of the key: the results carry it.
POOL_KEYS = {
    name: sha256_text(POOL_CODE, name, input_digest(TABLES, spec, config["defaults"]))
    for name, spec in config["analyses"].items()
}
PLOT_KEYS = {
    name: sha256_text(
        POOL_KEYS[name],
        PLOT_CODE,
        config["report"]["forest_layout"],
        FIGURE_FORMATS,
        FIGURE_KINDS,
    )
    for name in ANALYSES
}


def pool_entry(name, file):
    """A file of analysis `name`'s pooling result in the cache."""
    return f"results/.cache/pool/{POOL_KEYS[name]}/{file}"


def plot_entry(name, file):
    """A file of analysis `name`'s figures in the cache."""
    return f"results/.cache/plots/{PLOT_KEYS[name]}/{file}"


# Every analysis belongs to one batch for good: the analyses in config order, dealt
# round-robin into at least 4 batches (fewer only with fewer analyses) of at most
# execution.batch_size. A job on a cluster parses the workflow again, so a batch's name
# and members must not depend on the machine or on what other jobs finished meanwhile.
BATCH_COUNT = max(
    -(-len(ANALYSES) // config["execution"]["batch_size"]), min(len(ANALYSES), 4)
)


def batches(complete):
    """(index, members) of every batch with an analysis whose cache entry is not
    complete (``complete(name)`` is False); members are those analyses only."""
    out = []
    for index in range(BATCH_COUNT):
        members = [a for a in ANALYSES[index::BATCH_COUNT] if not complete(a)]
        if members:
            out.append((index, members))
    return out


# Analyses whose cache entry is incomplete (or absent), to be computed by this run.
POOL_BATCHES = batches(
    lambda a: all(os.path.exists(pool_entry(a, f)) for f in POOL_FILES)
)
PLOT_BATCHES = batches(
    lambda a: all(os.path.exists(plot_entry(a, f)) for f in PLOT_FILES)
)


# Snakemake's report categories of the figures of config report.figures.
FIGURE_CATEGORIES = {
    "funnel": "Funnel plots",
    "leave_one_out": "Leave-one-out plots",
    "cumulative": "Cumulative plots",
    "sensitivity": "Sensitivity plots",
}

# Shell command of the rules that copy cache entries to results/<analysis>/: its
# params.copies lists source and destination paths in turn.
COPY_SHELL = (
    "set -- {params.copies:q}; "
    'while [ "$#" -gt 1 ]; do cp -- "$1" "$2" || exit 1; shift 2; done'
)


def copy_pairs(sources, destinations):
    """[source, destination, ...] for COPY_SHELL, from two lists of equal length."""
    sources, destinations = list(map(str, sources)), list(map(str, destinations))
    if len(sources) != len(destinations):
        raise ValueError(f"copy {len(sources)} files to {len(destinations)} places")
    return [path for pair in zip(sources, destinations) for path in pair]
