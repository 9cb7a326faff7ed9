# The report: one self-contained HTML page with every analysis (and the same page as a
# PDF), preceded by the living-review record of this run.
#
# Figures drawn by other rules (funnel, leave-one-out, cumulative and sensitivity plots
# per analysis, the PRISMA flow diagram) are embedded when a rule of the workflow can
# make them or the file is there; otherwise the report leaves them out.

# Per-analysis figures beside the forest plot, as results/<analysis>/<kind>.svg.
EXTRA_FIGURES = ("funnel", "leave_one_out", "cumulative", "sensitivity")


# Whether a file exists, or a rule of this workflow can make it: a rule that produces it
# and whose own fixed inputs (no wildcards) are available in turn. A missing optional
# figure is then left out of the report instead of stopping the run. (A lambda, not a
# def: `snakemake --lint` wants a rule file's functions in common.smk.)
report_available = lambda path, depth=0: os.path.exists(path) or (
    depth < 4
    and any(
        rule_.is_producer(path)
        and all(
            report_available(str(f), depth + 1)
            for f in rule_.input
            if isinstance(f, str) and "{" not in str(f)
        )
        for rule_ in workflow.rules
    )
)


rule history:
    # Living review. Records this run's pooled results in results/history/<run-id>.json
    # (run id = hash of the input files and the analysis settings, so an unchanged
    # rerun adds no record) and writes what changed since the previous recorded run.
    # results/history/ is a side store, NOT a declared output: Snakemake deletes a
    # job's declared outputs before the job runs, and the store must outlive every run.
    input:
        documents=expand("results/{analysis}/analysis.json", analysis=ANALYSES),
        tables=list(config["tables"].values()),
    output:
        changes=report(
            "results/changes.json",
            caption="../report/changes.rst",
            category="Report",
            labels={"file": "changes.json"},
        ),
    log:
        "logs/history.log",
    localrule: True
    conda:
        "../envs/metapool.yaml"
    params:
        store="results/history",
        table_names=list(config["tables"]),
        # directories of digitised Kaplan-Meier curves the analyses may read
        km_dirs=sorted(
            {
                spec.get("km_dir") or "data/raw/km"
                for spec in config["analyses"].values()
            }
        ),
        settings={
            "analyses": config["analyses"],
            "defaults": config.get("defaults", {}),
        },
        null_values={
            name: spec.get("null_value", config.get("defaults", {}).get("null_value"))
            for name, spec in config["analyses"].items()
        },
        code=metapool_code("plots", "report"),
    script:
        "../scripts/history.py"


rule report:
    # One self-contained HTML page with every analysis, in config order.
    input:
        documents=expand("results/{analysis}/analysis.json", analysis=ANALYSES),
        figures=expand("results/{analysis}/forest.svg", analysis=ANALYSES),
        # funnel, leave-one-out, cumulative and sensitivity plots: when drawn
        extra_figures=lambda wildcards: [
            path
            for path in expand(
                "results/{analysis}/{kind}.svg", analysis=ANALYSES, kind=EXTRA_FIGURES
            )
            if report_available(path)
        ],
        # the PRISMA 2020 flow diagram: when drawn
        prisma=lambda wildcards: [
            path for path in ["results/prisma.svg"] if report_available(path)
        ],
        changes="results/changes.json",
        tables=list(config["tables"].values()),
    output:
        report(
            "results/report.html",
            caption="../report/report.rst",
            category="Report",
            labels={"file": "report.html"},
        ),
    log:
        "logs/report.log",
    localrule: True
    conda:
        "../envs/metapool.yaml"
    params:
        analyses=ANALYSES,
        extra_kinds=EXTRA_FIGURES,
        title=config["report"]["title"],
        # GRADE judgements per analysis (report.grade in the config; absent: the
        # summary of findings says "not assessed").
        grade=config.get("report", {}).get("grade", {}),
        table_names=list(config["tables"]),
        code=metapool_code(),
    script:
        "../scripts/report.py"


rule report_pdf:
    # The same page as a PDF (WeasyPrint; nothing is fetched, the figures are inline).
    input:
        "results/report.html",
    output:
        report(
            "results/report.pdf",
            caption="../report/report_pdf.rst",
            category="Report",
            labels={"file": "report.pdf"},
        ),
    log:
        "logs/report_pdf.log",
    localrule: True
    conda:
        "../envs/metapool.yaml"
    params:
        code=metapool_code(),
    script:
        "../scripts/report.py"
