# Entry point at the repository root, so that `snakemake` run here finds the workflow.
# The workflow itself is workflow/Snakefile (the Snakemake catalog layout); this file
# only includes it and names the default target: a plain include does not carry over
# `default_target` from an included file, and `snakemake` would say "Nothing to be done".


include: "workflow/Snakefile"


rule default:
    default_target: True
    input:
        rules.all.input,
