# The report: one self-contained HTML page with every analysis (and the same page as a
# PDF), preceded by the living-review record of this run.
#
# The per-analysis figures of config report.figures are always embedded; the PRISMA
# flow diagram when its counts file exists, the risk-of-bias plots when a risk-of-bias
# table is configured.


rule history:
    # Living review. Records this run's pooled results in results/history/<run-id>.json
    # (run id = hash of the input files and the analysis settings, so an unchanged
    # rerun adds no record) and writes what changed since the previous recorded run.
    # results/history/ is a side store, NOT a declared output: Snakemake deletes a
    # job's declared outputs before the job runs, and the store must outlive every run.
    input:
        documents=expand("results/{analysis}/analysis.json", analysis=ANALYSES),
        tables=list(TABLE_FILES.values()),
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
        table_names=list(TABLE_FILES),
        # the directory of digitised Kaplan-Meier curves the analyses may read
        km_dirs=[KM_DIR],
        settings={
            "analyses": config["analyses"],
            "defaults": config.get("defaults", {}),
        },
        null_values={
            name: spec.get("null_value", config.get("defaults", {}).get("null_value"))
            for name, spec in config["analyses"].items()
        },
        code=POOL_CODE,
    script:
        "../scripts/history.py"


rule report:
    # One self-contained HTML page with every analysis, in config order.
    input:
        documents=expand("results/{analysis}/analysis.json", analysis=ANALYSES),
        figures=expand("results/{analysis}/forest.svg", analysis=ANALYSES),
        # the figures of config report.figures (funnel, leave-one-out, cumulative,
        # sensitivity plots), which `publish` always provides
        extra_figures=expand(
            "results/{analysis}/{kind}.svg", analysis=ANALYSES, kind=FIGURE_KINDS
        ),
        # the PRISMA 2020 flow diagram: when drawn
        prisma=[path for path in prisma_outputs() if path.endswith(".svg")],
        # the risk-of-bias plots: when a risk-of-bias table is configured
        risk_of_bias=lambda wildcards: [
            path
            for path in expand("results/risk_of_bias/{figure}.svg", figure=ROB_FIGURES)
            if rob_table()
        ],
        changes="results/changes.json",
        # excluded and ongoing studies per analysis
        left_out="results/left_out.json",
        tables=list(TABLE_FILES.values()),
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
        extra_kinds=FIGURE_KINDS,
        title=config["report"]["title"],
        # GRADE judgements per analysis (report.grade in the config; absent: the
        # summary of findings says "not assessed").
        grade=config.get("report", {}).get("grade", {}),
        table_names=list(TABLE_FILES),
        km_dir=KM_DIR,
        code=REPORT_CODE,
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
        code=REPORT_CODE,
    script:
        "../scripts/report.py"
