# Pooling runs in batches: each pool_batch_<i> job computes the analyses whose result
# is not yet in the cache (see "result cache" in common.smk) and writes one cache entry
# per analysis; `publish` (results.smk) copies it to results/<analysis>/.
for index, members in POOL_BATCHES:

    rule:
        # Several analyses in one process: select their rows, compute per-study
        # effects, fit the random-effects models, leave-one-out, cumulative,
        # influence, bias and sensitivity panels. Imports no plotting code.
        name:
            f"pool_batch_{index}"
        input:
            tables=list(TABLE_FILES.values()),
            # digitised Kaplan-Meier curves of the selected rows (km_file column)
            km=sorted(
                {
                    path
                    for name in members
                    for path in km_files(
                        TABLES, config["analyses"][name], config["defaults"], KM_DIR
                    )
                }
            ),
        output:
            [pool_entry(name, file) for name in members for file in POOL_FILES],
        log:
            f"logs/pool_batch/{index}.log",
        conda:
            "../envs/metapool.yaml"
        resources:
            mem_mb=lambda wildcards, attempt: 1000 * attempt,
            runtime=lambda wildcards, attempt, n=len(members): (5 + n) * attempt,
        params:
            analyses={name: config["analyses"][name] for name in members},
            entries={name: f"results/.cache/pool/{POOL_KEYS[name]}" for name in members},
            defaults=config["defaults"],
            tables=TABLE_FILES,
            km_dir=KM_DIR,
        script:
            "../scripts/pool.py"


rule excluded:
    # What each analysis leaves out: the studies and rows it does not use, each with
    # the reason (results/<analysis>/excluded.csv), and the ongoing studies, for all
    # analyses at once (results/left_out.json). Unlike the pooled results this depends
    # on every row of the tables, so it is one short job; it reads only the tables
    # (Snakemake checksums every input once per output file).
    input:
        tables=list(TABLE_FILES.values()),
        km=all_km_inputs(),
    output:
        excluded=expand("results/{analysis}/excluded.csv", analysis=ANALYSES),
        listing="results/left_out.json",
    log:
        "logs/excluded.log",
    localrule: True
    conda:
        "../envs/metapool.yaml"
    params:
        analyses=config["analyses"],
        defaults=config["defaults"],
        tables=TABLE_FILES,
        km_dir=KM_DIR,
        code=POOL_CODE,
    script:
        "../scripts/excluded.py"
