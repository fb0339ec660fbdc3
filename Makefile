# ar-pipeline: two commands for a new user.
#   make demo  — set up, generate demo data, run the whole pipeline, print the AR summary
#   make test  — set up with dev extras and run the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export AR_DUCKDB_PATH ?= $(CURDIR)/data/ar.duckdb
export AR_LANDING_DIR ?= $(CURDIR)/data/landing
# dbt and dagster run from the venv whatever the caller's PATH holds.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test test-spark ui install install-dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

demo: install
	$(BIN)/ar-pipeline generate
	$(BIN)/ar-pipeline run

test: install-dev
	$(BIN)/python -m pytest

# Only the Spark parity test (dbt on a local Spark vs DuckDB; needs Java 17+).
test-spark: install-dev
	$(BIN)/python -m pytest -m spark

ui: install-dev
	mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev --host 127.0.0.1 --port 3000

lint: install-dev
	$(BIN)/ruff check ar_pipeline tests bench
	cd dbt_project && ../$(BIN)/dbt parse --no-partial-parse --show-all-deprecations --profiles-dir .

bench: install-dev
	$(BIN)/python bench/run_bench.py --invoices 1000000

clean:
	rm -rf data .dagster_home dbt_project/target dbt_project/logs
