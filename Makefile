# Two entry points: `make demo` (the main job) and `make test` (lint, types, tests).
# Each creates .venv on first use and installs torch (the pinned CPU build) before the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data/de-en
RUN ?= runs/quickstart
# Minutes of training that `make demo` allows itself on a 2-core CPU.
DEMO_MINUTES ?= 18

.PHONY: demo test test-slow lint venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

# Tests that need the fetched corpus or minutes of CPU.
test-slow: $(VENV)/.installed
	$(BIN)/pytest -q -m slow

demo: $(VENV)/.installed
	$(BIN)/nmt data fetch de-en --dir $(DATA)
	$(BIN)/nmt demo --data $(DATA) --run $(RUN) --minutes $(DEMO_MINUTES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
