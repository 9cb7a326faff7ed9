rule report:
    # One self-contained HTML page with every analysis, in config order.
    input:
        documents=expand("results/{analysis}/analysis.json", analysis=ANALYSES),
        figures=expand("results/{analysis}/forest.svg", analysis=ANALYSES),
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
        title=config["report"]["title"],
        code=metapool_code(),
    script:
        "../scripts/report.py"
