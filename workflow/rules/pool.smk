rule pool:
    # One analysis: select its rows, compute per-study effects, fit the random-effects
    # model (overall and per subgroup). The analysis' own settings and the defaults are
    # params (plain dicts): editing one analysis in the config reruns only that analysis.
    input:
        studies=config["tables"]["studies"],
        proportions=config["tables"]["proportions"],
        survival=config["tables"]["survival"],
    output:
        pooled=report(
            "results/{analysis}/pooled.csv",
            caption="../report/pooled.rst",
            category="Pooled estimates",
            labels=analysis_labels,
        ),
        studies="results/{analysis}/studies.csv",
        excluded="results/{analysis}/excluded.csv",
        document="results/{analysis}/analysis.json",
        sensitivity="results/{analysis}/sensitivity.csv",
    log:
        "logs/pool/{analysis}.log",
    conda:
        "../envs/metapool.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=lookup(dpath="analyses/{analysis}", within=config),
        defaults=config["defaults"],
        code=metapool_code("plots", "report"),
    script:
        "../scripts/pool.py"
