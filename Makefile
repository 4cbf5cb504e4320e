# Two commands do all the set-up on a fresh machine:
#   make run    - create .venv, install rlplug + the A3C plugin, train A3C on Pendulum-v1
#   make test   - the same install, then the whole test suite (what CI runs: .ci/run)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# A CPU build of torch first: a bare `pip install torch` would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: install run test bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml plugins/a3c/pyproject.toml plugins/arm/pyproject.toml plugins/ray/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[wandb,video,sweep,test]" -e plugins/a3c -e plugins/arm \
		-e "plugins/ray[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m rlplug algo=a3c env=pendulum executor=process $(ARGS)

# Two pytest-xdist workers (CI has 2 cores; many tests mostly wait on sleeps, paced envs and
# watchdogs). --dist loadfile: each test file runs in one worker, so a module-scoped fixture
# (a trained run, an installed copy, a Ray cluster) is built once. Tests marked `alone`
# (asynchronous learning) run with no other test beside them (conftest.py).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check rlplug plugins tests benchmarks

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
