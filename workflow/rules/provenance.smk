rule manifest:
    # The reproducibility record: input and output hashes, the config, package versions,
    # the workflow's git commit and the time of the run (the only output with a time).
    input:
        tables=[*TABLE_FILES.values(), *all_km_inputs()],
        results=analysis_outputs(),
        report="results/report.html",
    output:
        "results/manifest.json",
    log:
        "logs/manifest.log",
    localrule: True
    conda:
        "../envs/metapool.yaml"
    params:
        config=config,
        workflow_dir=workflow.basedir,
    script:
        "../scripts/manifest.py"
