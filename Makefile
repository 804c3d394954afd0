# modops: `make demo` runs the whole lifecycle on the embedded default; `make test` runs the tests.
# Both create the project's virtualenv from uv.lock on first use, unattended.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
UV := .tools/bin/uv
DEMO_SIZE ?= default
DEMO_SEED ?= 0
# 3 % violations: a seed-enriched cold-start pool (the generator's default is 1 %).
DEMO_POSITIVE_RATE ?= 0.03
# 30,000 uploads of which two thirds came labelled (the labelled budget) and the rest are an
# unlabelled backlog, plus 10 seed images per category for the cold start.
DEMO_IMAGES ?= $(if $(filter small,$(DEMO_SIZE)),1500,30000)
DEMO_LABELLED ?= 0.667
DEMO_SEEDS ?= 10

# Runtime state lives under one folder; point these at PostgreSQL/S3/an MLflow server in production.
export MODOPS_STATE_DIR ?= $(CURDIR)/.modops
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help venv browser demo demo-drift demo-serve test test-fast lint clean-state

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -m venv .tools
	@.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	@echo "creating .venv from uv.lock (first run only, a few minutes)"
	@$(UV) sync --frozen --python $(PYTHON) --quiet
	@touch $@

venv: $(VENV)/.synced  ## create/refresh .venv from uv.lock

# The dashboard's browser test drives Debian's Chromium through Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium
browser:  ## install Debian's chromium for the browser tests (apt; needs root or sudo)
	@test -x $(CHROMIUM) || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		export DEBIAN_FRONTEND=noninteractive; \
		$$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null; }; }
	@test -x $(CHROMIUM) || { echo "chromium is missing at $(CHROMIUM): apt-get install chromium" >&2; exit 1; }

demo: venv  ## the whole lifecycle: demo data -> Airflow training DAG -> champion in the MLflow registry
	modops demo-data --out data/raw --size $(DEMO_SIZE) --n-images $(DEMO_IMAGES) --seed $(DEMO_SEED) \
		--positive-rate $(DEMO_POSITIVE_RATE) --labelled-fraction $(DEMO_LABELLED) --seeds-per-category $(DEMO_SEEDS)
	modops run-dag modops_training
	modops champion

demo-drift: venv  ## after `make demo`: new spam style -> drift alert -> relabel round (asset-triggered) -> retrain -> gate
	modops demo-drift

demo-serve: venv  ## after `make demo`: the moderation service, a day of uploads through its API, the review queue
	modops demo-serve

test: venv browser  ## all tests, including the end-to-end DAG smoke run on the small pool
	pytest -q

test-fast: venv  ## unit tests only (no end-to-end run)
	pytest -q -m "not slow and not e2e"

lint: venv  ## ruff
	ruff check src tests dags pipelines benchmarks

clean-state:  ## delete runtime state and pipeline outputs (keeps data/raw)
	rm -rf .modops data/ingested data/store data/labels data/cold_start data/split data/holdout.parquet models eval reports
