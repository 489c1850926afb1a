# The README's two commands: `make run` (the main job) and `make test`.
# PYTHON selects the interpreter (an active virtual environment's python3 by default).
PYTHON ?= python3
export PYTHON

.PHONY: setup run test test-all

setup:
	bash scripts/setup.sh

# The main job: simulate a polymer trajectory and score the physical baselines and the
# equivariance audit on it (later the quick benchmark suite).
run: setup
	$(PYTHON) -m irrepnet demo --out runs/demo

test: setup
	$(PYTHON) -m pytest -q

# Including the slow tests (full-size nbody generation).
test-all: setup
	$(PYTHON) -m pytest -q -m "slow or not slow"
