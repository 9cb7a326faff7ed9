"""Write results/manifest.json: rule `manifest` (workflow/rules/provenance.smk)."""

import sys


def main(snakemake):
    sys.stderr = open(snakemake.log[0], "w")

    from metapool.provenance import build_manifest, write_manifest

    manifest = build_manifest(
        inputs=snakemake.input.tables,
        outputs=[*snakemake.input.results, snakemake.input.report],
        config=dict(snakemake.params.config),
        workflow_dir=snakemake.params.workflow_dir,
    )
    write_manifest(snakemake.output[0], manifest)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
