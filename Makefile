# One-command setup: every target creates .venv in the checkout when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-repeat demo check bench bench-streaming quality quality-budget quality-finetune lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	./.ci/install-browser.sh
	CI=1 $(PY) -m pytest -q -n 2 --dist loadscope --no-loadscope-reorder

# the sweep-level tests 3 times in a row: fails if a run fails or any result differs
test-repeat: $(STAMP)
	CI=1 $(PY) tests/repeat.py

demo: $(STAMP)
	$(VENV)/bin/morphsweep run sweep/examples/sweep_digits.yaml

check: $(STAMP)
	$(PY) -m ruff check trainers sweep dashboards tests
	$(PY) -m mypy
	$(PY) -m pytest -q -m "not slow"

# side-by-side ratios (train step, term, sweep efficiency, the demo): morphsweep_runs/bench/bench.csv
bench: $(STAMP)
	$(PY) tests/benchmarks/bench.py

# a trial's peak memory over an image folder and one 10x larger (streaming; about 3 min)
bench-streaming: $(STAMP)
	$(PY) tests/benchmarks/streaming.py

# the quality study, retrain final then budget per benchmark (hours on 2 cores: README; not part of
# make test), then the budget search
quality: $(STAMP)
	$(PY) tests/benchmarks/quality_study.py
	$(PY) tests/benchmarks/budget_search.py
	$(PY) tests/benchmarks/digits_acceptance.py

# structure learning from a trained seed against from scratch, digits and mnist1d (about 25 min)
quality-finetune: $(STAMP)
	$(PY) tests/benchmarks/finetune_study.py

# trials the adaptive search needs to land 25% of the seed's FLOPs, 3 seeds (about 15 min)
quality-budget: $(STAMP)
	$(PY) tests/benchmarks/budget_search.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
