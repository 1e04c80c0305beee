# customer360 — `make demo`, `make dev`, `make test` do all set-up themselves (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export C360_HOME ?= $(CURDIR)/.c360
export DAGSTER_HOME ?= $(C360_HOME)/dagster
# Screenshots and the server log of the browser test (tests/ui) land here.
export C360_UI_ARTIFACTS ?= $(C360_HOME)/ui-artifacts

.PHONY: setup bytecode java chromium demo dev run test test-ui lint format bench clean

# Re-install only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check uv
	@$(BIN)/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]'
	@touch $(STAMP)

# Bytecode of the project's own modules, written ahead of time: where PYTHONDONTWRITEBYTECODE
# is set (as on many CI images) no process writes it, so every Dagster run and step process
# would compile its imports from source again (importing the code location: 5.5 s → 2.4 s).
# The installed packages are compiled by `uv --compile-bytecode` above. Stale files are safe:
# Python checks each one against its source.
bytecode: $(STAMP)
	@$(PY) -m compileall -q -j 0 customer360 assets resources sensors >/dev/null

setup: $(STAMP) java bytecode

# Spark 4 needs Java 17+. Install it with apt when missing and we are root; otherwise say how.
java:
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Java 17 (openjdk-17-jre-headless) for Spark…"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
	  else \
	    echo "Spark needs Java 17+. Install it, e.g.: sudo apt-get install openjdk-17-jre-headless" >&2; exit 1; \
	  fi; \
	fi

# The churn dashboard test and the UI test (Playwright, executable_path) drive this Chromium:
# Playwright's own browser download is never used.
chromium:
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Chromium for the dashboard test…"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "The dashboard test needs Chromium: sudo apt-get install chromium" >&2; exit 1; \
	  fi; \
	fi

demo: setup
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/customer360 demo

run: setup
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/customer360 run

dev: setup
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/customer360 dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup chromium lint
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/dg check defs
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

# The browser test of `customer360 dev` (marker `ui`) alone; `make test` runs it too, first, on
# one of its two workers (README "Tests of the UI").
test-ui: setup chromium
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/pytest -m ui tests/ui

bench: setup
	$(PY) bench/lake_io.py

clean:
	rm -rf $(VENV) .c360 .pytest_cache .ruff_cache
