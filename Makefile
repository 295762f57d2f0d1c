# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DURATION ?= 30
DEMO_DIR ?= demo-run
PYTEST_ARGS ?=

.PHONY: demo test lint unit venv clean soak

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstalled whenever pyproject.toml changes.
$(VENV)/.runtime: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.runtime

venv: $(VENV)/.dev

## Run the whole simulated checkpoint for DEMO_DURATION seconds (0 = until Ctrl-C), then verify it.
demo: $(VENV)/.runtime
	$(VENV)/bin/checkpoint demo --dir $(DEMO_DIR) $(if $(filter 0,$(DEMO_DURATION)),,--duration $(DEMO_DURATION))

## Lint, type-check and run the whole suite.
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

## Power-loss soak: SIGKILL the edge SOAK_KILLS times under load, then check the record and the hub.
SOAK_KILLS ?= 500
soak: $(VENV)/.dev
	CHECKPOINT_CRASH_KILLS=$(SOAK_KILLS) $(PY) -m pytest -s -o timeout=0 tests/crash/test_crash_kill.py

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
