# Two entry points: `make demo` (the main job) and `make test` (lint, types, tests).
# Each creates .venv on first use and installs torch (the pinned CPU build) before the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data/de-en
RUN ?= runs/quickstart
# Minutes of training that `make demo` allows itself on a 2-core CPU.
DEMO_MINUTES ?= 18

.PHONY: demo test test-slow gpu-check lint venv clean course

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

# The server's browser test drives Debian's Chromium (Playwright's own browser download cannot
# work offline); install it when missing (root here and in CI: apt-get works as it is).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# msgfmt -c checks the PO catalogues that `nmt translate` writes (Debian's gettext).
MSGFMT := /usr/bin/msgfmt
$(MSGFMT):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext

# The course's site typesets its formulas with Debian's KaTeX, served with the site (no CDN).
KATEX := /usr/share/javascript/katex/katex.min.js
$(KATEX):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjs-katex

# The course's six chapters run in a fast mode here (tests/course: ~90 s) and their site is
# opened page by page in Chromium.
test: lint | $(CHROMIUM) $(MSGFMT) $(KATEX)
	$(BIN)/pytest -q

# Tests that need the fetched corpus or minutes of CPU.
test-slow: $(VENV)/.installed
	$(BIN)/pytest -q -m slow

# On a machine with CUDA (under 5 minutes): the quickstart under torchrun on 1 GPU (and 2 when
# there are two) in bfloat16 and float16, SIGKILLed and resumed once, test-set BLEU and tokens/s.
# Its CPU dry run is part of `make test` (tests/test_gpu_check.py).
gpu-check: $(VENV)/.installed
	test -f $(DATA)/train.en || $(BIN)/nmt data fetch de-en --dir $(DATA)
	$(BIN)/python scripts/gpu_check.py --data $(DATA)

# The main job: real corpus → joint BPE → quickstart Transformer for DEMO_MINUTES of training →
# average the last 10 checkpoints (all there are, where a slow machine wrote fewer) → translate the
# test set → sacreBLEU / chrF. tests/test_demo_pipeline.py runs these commands with a tiny budget.
demo: $(VENV)/.installed
	$(BIN)/nmt data fetch de-en --dir $(DATA)
	$(BIN)/nmt train configs/quickstart.yaml --data.dir=$(DATA) --training.run_dir=$(RUN) \
		--training.max_minutes=$(DEMO_MINUTES)
	$(BIN)/nmt average $(RUN) --last 10 -o $(RUN)/averaged
	$(BIN)/nmt translate $(RUN)/averaged -i $(DATA)/test.en -o $(RUN)/test.hyp.de --format lines
	@echo; echo "Test sentences, their reference and nmt's translation (beam 4, alpha 0.6):"
	@paste $(DATA)/test.en $(DATA)/test.de $(RUN)/test.hyp.de | head -n 8 | \
		awk -F'\t' '{ print "  EN:  " $$1 "\n  REF: " $$2 "\n  NMT: " $$3 "\n" }'
	$(BIN)/nmt evaluate --hyp $(RUN)/test.hyp.de --ref $(DATA)/test.de
	@echo; echo "The model is in $(RUN)/averaged; try: echo 'Good morning!' | .venv/bin/nmt translate $(RUN)/averaged"

# The course (course/): execute the six chapters and render them into an offline static site,
# build/course-site/index.html. Full mode trains on the real corpus (fetched first), sized for 3
# minutes a chapter on 2 quiet cores (measured so far only on a loaded machine: 13 s to 8 minutes);
# `make course COURSE_FAST=1` runs them in seconds on a toy corpus.
COURSE_FAST ?=
course: $(VENV)/.installed | $(KATEX)
	test -n "$(COURSE_FAST)" || test -f $(DATA)/train.en || $(BIN)/nmt data fetch de-en --dir $(DATA)
	$(BIN)/python -m course.site $(if $(COURSE_FAST),--fast) --out build/course-site

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
