#!/usr/bin/env bash
# Runs once after Snakemake has created the conda environment of metapool.yaml
# (`--sdm conda`), inside that environment, from the working directory.
#
# Installs the metapool package itself (its dependencies come from metapool.yaml).
# Snakemake copies the env file elsewhere before creating it, so the checkout cannot be
# found relative to this script: it is the working directory (run from the repository
# root), or the path in $METAPOOL_SOURCE when you run with --directory elsewhere.
set -euo pipefail
src="${METAPOOL_SOURCE:-.}"
if ! grep -qs '^name = "metapool"' "$src/pyproject.toml"; then
    echo "metapool.post-deploy.sh: no metapool checkout at '$src';" \
        "run from the repository root or set METAPOOL_SOURCE=/path/to/metapool" >&2
    exit 1
fi
python -m pip install --no-deps --editable "$src"
