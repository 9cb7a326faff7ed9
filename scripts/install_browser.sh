#!/usr/bin/env bash
# Install the system packages the report needs, from the Debian archive (apt-get):
#
#   bash scripts/install_browser.sh --pdf   what `results/report.pdf` needs: the Pango
#                                           libraries WeasyPrint loads and a font
#   bash scripts/install_browser.sh         the above, plus what tests/test_browser.py
#                                           needs: Debian's chromium (headless) and
#                                           poppler-utils (pdftotext, pdftoppm)
#
# Idempotent and quick when everything is there: only missing packages are installed
# (with sudo when not root; `apt-get update` runs only then). Exits non-zero, saying
# what is missing, when it cannot install them: the browser test calls this script
# and fails loudly rather than skipping.
set -euo pipefail

usage() {
    echo "usage: bash scripts/install_browser.sh [--pdf]" >&2
    exit 2
}

mode=all
case "${1:-}" in
    "") ;;
    --pdf) mode=pdf ;;
    -h | --help) usage ;;
    *) usage ;;
esac

# WeasyPrint dlopen()s Pango (with GLib, HarfBuzz and fontconfig as its dependencies);
# harfbuzz-subset makes the embedded fonts small; DejaVu covers τ², I², ⊕ and the dashes.
pdf_packages=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core)
browser_packages=(chromium poppler-utils)

packages=("${pdf_packages[@]}")
if [ "$mode" = all ]; then
    packages+=("${browser_packages[@]}")
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for package in "${packages[@]}"; do
        installed "$package" || missing+=("$package")
    done
else
    missing=("${packages[@]}")
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install_browser.sh: no apt-get here; install these packages (or their" \
             "equivalents) yourself: ${missing[*]}" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "install_browser.sh: installing ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
fi

# Check that what was asked for works, whatever installed it.
for package in "${packages[@]}"; do
    if command -v dpkg-query >/dev/null 2>&1 && ! installed "$package"; then
        echo "install_browser.sh: $package is still not installed" >&2
        exit 1
    fi
done
if [ "$mode" = all ]; then
    for tool in chromium pdftotext pdftoppm; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "install_browser.sh: $tool not found after installing" >&2
            exit 1
        }
    done
    echo "install_browser.sh: $(chromium --version 2>/dev/null | head -n 1)"
fi
echo "install_browser.sh: ready (${packages[*]})"
