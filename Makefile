# mlcrew developer tasks. Run `make` (or `make help`) for the list.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
# What is installed: mlcrew alone (enough for the demo), or with the dev extra (tests, lint).
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
ARGS ?=
PYTEST_ARGS ?=

# Root runs apt-get directly; otherwise use sudo when it exists.
SUDO := $(shell if [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo; fi)
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600

.PHONY: help venv demo lint system-deps test constraints bench clean

help: ## Show this help
	@echo "Targets:"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'
	@echo "Variables: ARGS (for demo), PYTEST_ARGS (for test)"

venv: $(STAMP_DEV) ## Create .venv and install the package with the dev extra

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when pyproject.toml is newer than the stamp. The dev install holds the
# demo's packages too, so it stamps both.
$(STAMP_RUN): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -e .
	touch $@

# The dev tools are installed at the versions of constraints-dev.txt (a `pip freeze` of a
# working dev environment): left free, pip's resolver backtracks for many minutes between
# MLflow's, moto's and s3fs's AWS pins. Refresh it with `make constraints` after a change.
$(STAMP_DEV): pyproject.toml constraints-dev.txt | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -e '.[dev]' -c constraints-dev.txt
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN) ## Install mlcrew (no dev tools) and run the demo in a temporary project (options: ARGS="--dir DIR" keeps it)
	$(VENV)/bin/mlcrew demo $(ARGS)

lint: venv ## Run ruff and mypy
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

system-deps: ## Install PostgreSQL and Chromium from Debian if missing
	@set -e; missing=""; \
	if ! command -v /usr/bin/chromium >/dev/null 2>&1; then missing="$$missing chromium"; fi; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing="$$missing postgresql"; fi; \
	if [ -z "$$missing" ]; then \
		echo "system-deps: postgresql and chromium already installed"; exit 0; \
	fi; \
	echo "system-deps: installing$$missing"; \
	log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	apt_retry() { \
		for _ in $$(seq 1 90); do \
			$(APT_GET) "$$@" 2>&1 | tee "$$log"; \
			if [ "$${PIPESTATUS[0]}" -eq 0 ]; then return 0; fi; \
			grep -q 'Could not get lock' "$$log" || return 1; \
			echo "system-deps: apt is busy (another apt/dpkg holds a lock), waiting..."; sleep 10; \
		done; return 1; \
	}; \
	apt_retry update; \
	apt_retry install -y $$missing

# Tests run on up to 4 worker processes, a module to a worker (module fixtures are built once).
XDIST ?= --numprocesses=auto --maxprocesses=4 --dist loadscope

test: venv system-deps ## Lint, then run pytest against a throwaway PostgreSQL
	$(MAKE) lint
	@# The Ray tests run in a process of their own (see scripts/ray-tests.sh); with
	@# PYTEST_ARGS, only what they select runs.
	bash scripts/with-postgres.sh $(VENV)/bin/python -m pytest --durations=15 $(XDIST) $(if $(PYTEST_ARGS),$(PYTEST_ARGS),--ignore=tests/pipeline/test_ray.py)
	$(if $(PYTEST_ARGS),,bash scripts/ray-tests.sh $(VENV)/bin/python)

constraints: venv ## Write constraints-dev.txt from the dev environment as installed
	$(VENV)/bin/python -m pip freeze --exclude-editable | grep -v -i '^mlcrew' > constraints-dev.txt

bench: ## Run the benchmarks (bench/run.sh)
	bash bench/run.sh

clean: ## Remove the venv, caches and build output
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
	find . -name '__pycache__' -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
