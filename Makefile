# Developer entry points. `make test` is what CI runs (through .ci/run).

VENV   := .venv
PY     := $(VENV)/bin/python
# What running needs (`make run`), and that plus the development tools (tests, lint, bench).
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed
DEPS   := pyproject.toml setup.py src/meldpunt/index/_mih.c
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=
PIP    := -m pip install --quiet --disable-pip-version-check

.PHONY: venv run port-free test bench lint clean

venv: $(DEV_STAMP)

# Reinstall only when the project's dependencies may have changed.
$(RUN_STAMP): $(DEPS)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) $(PIP) -e .
	@touch $(RUN_STAMP)

# The development install includes the runtime one: `make run` after `make test` installs nothing.
$(DEV_STAMP): $(DEPS)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) $(PIP) -e '.[dev]'
	@touch $(DEV_STAMP) $(RUN_STAMP)

# Said before anything is installed or loaded: the port is taken, and how to choose another.
port-free:
	@python3 src/meldpunt/cli/ports.py $(HOST) $(PORT) "make run PORT=$$(($(PORT) + 1))"

run: port-free $(RUN_STAMP)
	$(VENV)/bin/meldpunt demo --host $(HOST) --port $(PORT)

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
