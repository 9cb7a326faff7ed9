#!/usr/bin/env bash
# Install R and the packages needed to regenerate the metafor golden values
# (tests/golden/make_goldens.R). Idempotent: does nothing if metafor, metadat
# and jsonlite already load.
#
# Packages come from the Debian archive (no CRAN downloads), so the versions are
# those of the distribution; the versions that produced the committed goldens
# are recorded in tests/golden/metafor_goldens.json ("meta").
set -euo pipefail

if command -v Rscript >/dev/null 2>&1 &&
   Rscript -e 'suppressMessages({library(metafor); library(metadat); library(jsonlite)})' >/dev/null 2>&1; then
    echo "install_r.sh: R with metafor, metadat and jsonlite already available; nothing to do"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

$SUDO apt-get update && \
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        r-base-core r-cran-metafor r-cran-metadat r-cran-lme4 r-cran-jsonlite

Rscript -e 'suppressMessages({library(metafor); library(metadat); library(jsonlite)}); cat("metafor", as.character(packageVersion("metafor")), "\n")'
