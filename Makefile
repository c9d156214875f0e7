# Two commands for everyone: `make lab` (learners) and `make test` (developers, CI).
# Each creates .venv when missing and installs the project into it; a re-run on an
# installed checkout skips the install (the stamp files are newer than pyproject.toml).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8888
LAB_ARGS ?=
PYTEST_ARGS ?=
# Tests run on every core; tests that share a server are kept together (xdist_group).
PYTEST_WORKERS ?= auto

# nbgrader finds grader/nbgrader_config.py through this path; nbgrader starts `alembic`
# by name, so the venv's bin must be on PATH.
export JUPYTER_CONFIG_PATH := $(CURDIR)/grader
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

ROOT_FLAG := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

.PHONY: lab test bench install install-test lint format release clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

# PyTorch is optional (benchmarks compare against it); without it the tables say "not installed".
$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e ".[bench]" || echo "PyTorch not installed: its columns will say so."
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

lab: install
	$(BIN)/python -m grader doctor --quiet
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --ServerApp.port=$(PORT) $(ROOT_FLAG) $(LAB_ARGS)

test: install-test
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

release: install
	$(BIN)/python -m grader release

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache artifacts
