rule forest:
    # Forest plot of one analysis, drawn from its analysis.json alone.
    input:
        document="results/{analysis}/analysis.json",
    output:
        svg=report(
            "results/{analysis}/forest.svg",
            caption="../report/forest.rst",
            category="Forest plots",
            labels=analysis_labels,
        ),
        png="results/{analysis}/forest.png",
    log:
        "logs/forest/{analysis}.log",
    conda:
        "../envs/metapool.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=metapool_code("report"),
    script:
        "../scripts/forest.py"
