# metapool developer commands. `make run` and `make test` create the environment they
# need on first use (a .venv from python3 and the pinned versions in constraints.txt);
# nothing else has to be installed beforehand besides Python >= 3.11.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Marks a completed install; redone when the dependency pins change.
STAMP := $(VENV)/.metapool-installed

.PHONY: help install run test lint report goldens clean distclean

help:
	@echo "make run        set up .venv if needed, then run the workflow on data/raw/ -> results/"
	@echo "make test       set up .venv if needed, then run the test suite (pytest)"
	@echo "make lint       snakemake --lint and snakefmt --check"
	@echo "make report     Snakemake's own report of the last run: results/snakemake_report.html"
	@echo "make goldens    regenerate the R metafor reference values in tests/golden/"
	@echo "make clean      delete results/, logs/ and Snakemake's state (.snakemake/)"
	@echo "make distclean  make clean, and delete .venv"

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install_browser.sh
	bash scripts/install_browser.sh --pdf
	@if [ ! -x $(BIN)/python ]; then \
		echo "Creating $(VENV) with $$($(PYTHON) --version 2>&1)"; \
		$(PYTHON) -m venv $(VENV) || { \
			echo "Could not create $(VENV). On Debian/Ubuntu: sudo apt-get install python3-venv"; \
			rm -rf $(VENV); exit 1; }; \
	fi
	$(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/snakemake --workflow-profile profiles/default

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/

report: run
	$(BIN)/snakemake --workflow-profile profiles/default --report results/snakemake_report.html

goldens:
	bash scripts/install_r.sh
	for script in tests/golden/make_goldens*.R; do Rscript "$$script" || exit 1; done

clean:
	if [ -d results ]; then find results -mindepth 1 ! -name .gitkeep ! -path results/history ! -path 'results/history/*' -delete; fi
	rm -rf logs .snakemake

distclean: clean
	rm -rf $(VENV)
