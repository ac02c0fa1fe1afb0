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

# The main job: real corpus → joint BPE → quickstart Transformer for DEMO_MINUTES of training →
# average the last 5 checkpoints → translate the test set → sacreBLEU / chrF.
demo: $(VENV)/.installed
	$(BIN)/nmt data fetch de-en --dir $(DATA)
	$(BIN)/nmt train configs/quickstart.yaml --data.dir=$(DATA) --training.run_dir=$(RUN) \
		--training.max_minutes=$(DEMO_MINUTES)
	$(BIN)/nmt average $(RUN) --last 10 -o $(RUN)/averaged
	$(BIN)/nmt translate $(RUN)/averaged -i $(DATA)/test.en -o $(RUN)/test.hyp.de
	@echo; echo "Test sentences, their reference and nmt's translation (beam 4, alpha 0.6):"
	@paste $(DATA)/test.en $(DATA)/test.de $(RUN)/test.hyp.de | head -n 8 | \
		awk -F'\t' '{ print "  EN:  " $$1 "\n  REF: " $$2 "\n  NMT: " $$3 "\n" }'
	$(BIN)/nmt evaluate --hyp $(RUN)/test.hyp.de --ref $(DATA)/test.de
	@echo; echo "The model is in $(RUN)/averaged; try: echo 'Good morning!' | .venv/bin/nmt translate $(RUN)/averaged"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
