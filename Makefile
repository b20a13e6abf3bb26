# One-command setup: every target creates .venv in the checkout when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo check bench quality lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	./.ci/install-browser.sh
	CI=1 $(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/morphsweep run sweep/examples/sweep_digits.yaml

check: $(STAMP)
	$(PY) -m ruff check trainers sweep dashboards tests
	$(PY) -m mypy
	$(PY) -m pytest -q -m "not slow"

# side-by-side ratios (train step, term, sweep efficiency, the demo): morphsweep_runs/bench/bench.csv
bench: $(STAMP)
	$(PY) tests/benchmarks/bench.py

# the quality study (about an hour on 2 cores; not part of make test)
quality: $(STAMP)
	$(PY) tests/benchmarks/quality_study.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
