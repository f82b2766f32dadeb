# Developer entry points. `make test` is what CI runs (through .ci/run).

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv run test bench lint clean

venv: $(STAMP)

# Reinstall only when the project's dependencies may have changed.
$(STAMP): pyproject.toml setup.py src/meldpunt/index/_mih.c
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: venv
	$(VENV)/bin/meldpunt demo

test: venv
	$(PY) -m pytest -q -n auto $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run_all.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy src

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
