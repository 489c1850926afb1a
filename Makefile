# The README's two commands: `make run` (the main job) and `make test`.
# PYTHON selects the interpreter (an active virtual environment's python3 by default).
PYTHON ?= python3
export PYTHON

.PHONY: setup run test test-all lint docs

setup:
	bash scripts/setup.sh

# The main job: the quick benchmark suite (every registered model on the twelve-body task
# of the shipped reference trajectory, trained briefly, with baselines, rollouts, the equivariance
# audit and timings) into a new runs/bench-quick* folder: report.md, results.json/csv, plots.
run: setup
	$(PYTHON) -m irrepnet bench --suite quick

test: setup
	$(PYTHON) -m pytest -q -m "not slow"

# Including the slow tests (full-size nbody generation, float64 and training-step compile checks);
# CI's second pass runs them.
test-all: setup
	$(PYTHON) -m pytest -q -m "slow or not slow"

# The documentation site (docs/) into docs/_build/html; warnings are errors, as in CI.
docs: setup
	$(PYTHON) -m pip install --disable-pip-version-check --quiet -e ".[docs]"
	$(PYTHON) -m sphinx -W --keep-going -b html docs docs/_build/html

# Lint, format and types, as CI runs them (ruff and mypy pinned in the `lint` extra, so that
# a new release's rules do not turn CI red overnight). `ruff format .` applies the format.
lint:
	IRREPNET_EXTRAS=lint bash scripts/setup.sh
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy
