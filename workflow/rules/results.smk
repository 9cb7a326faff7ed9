rule publish:
    # One analysis' results, copied from the cache to results/<analysis>/: the tables
    # and analysis.json of its pooling entry and the figures of its plotting entry;
    # the two entries' logs go to logs/pool/<analysis>.log and logs/plots/<analysis>.log.
    # One short job per analysis, so Snakemake keeps per-analysis provenance while the
    # computing is batched.
    input:
        pool=lambda wildcards: [pool_entry(wildcards.analysis, f) for f in POOL_FILES],
        plots=lambda wildcards: [plot_entry(wildcards.analysis, f) for f in PLOT_FILES],
    output:
        pooled=report(
            "results/{analysis}/pooled.csv",
            caption="../report/pooled.rst",
            category="Pooled estimates",
            labels=analysis_labels,
        ),
        studies="results/{analysis}/studies.csv",
        document="results/{analysis}/analysis.json",
        sensitivity="results/{analysis}/sensitivity.csv",
        forest=report(
            "results/{analysis}/forest.svg",
            caption="../report/forest.rst",
            category="Forest plots",
            labels=analysis_labels,
        ),
        forest_other=[
            f"results/{{analysis}}/forest.{ext}" for ext in FIGURE_FORMATS[1:]
        ],
        figures=[
            (
                report(
                    f"results/{{analysis}}/{kind}.svg",
                    caption=f"../report/{kind}.rst",
                    category=FIGURE_CATEGORIES[kind],
                    labels=analysis_labels,
                )
                if ext == "svg"
                else f"results/{{analysis}}/{kind}.{ext}"
            )
            for kind in FIGURE_KINDS
            for ext in FIGURE_FORMATS
        ],
    log:
        pool="logs/pool/{analysis}.log",
        plots="logs/plots/{analysis}.log",
    localrule: True
    conda:
        "../envs/metapool.yaml"
    params:
        # source, destination, source, destination, ... (cache entries list their
        # files in the order of the outputs, the log last)
        copies=lambda wildcards, input, output: copy_pairs(
            [*input.pool, *input.plots],
            [
                *output[:4],
                f"logs/pool/{wildcards.analysis}.log",
                *output[4:],
                f"logs/plots/{wildcards.analysis}.log",
            ],
        ),
    shell:
        COPY_SHELL
