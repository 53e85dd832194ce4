# Tidemark: `make up` runs the platform on this machine, `make test` checks it.
# Downloads are cached outside the checkout (pip/uv, Maven, Go), so a second run is fast.

PYTHON ?= python3
# The browser tests drive Debian's Chromium (Playwright with the system browser: no download).
CHROMIUM := /usr/bin/chromium
SUDO     := $(if $(filter 0,$(shell id -u)),,sudo)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PACKAGES := tidemark infra flows serving streaming monitoring demo benchmarks
export UV_CACHE_DIR ?= $(HOME)/.cache/uv
export PIP_CACHE_DIR ?= $(HOME)/.cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR ?= false
# The uv that installs the lock: a new uv may resolve or install differently.
UV_VERSION := 0.13.9
# Every test run names its slowest tests, so that a slower suite shows where the time went.
PYTEST_ARGS ?= --durations=25

.DEFAULT_GOAL := help
.PHONY: help install browser up down status logs demo test test-unit screenshots lint format typecheck docker-up docker-down lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-12s %s\n", $$1, $$2}'

# uv, unlike pip, writes no bytecode: without it every process compiles mlflow, Evidently,
# pandas… from source at each start (the monitor's imports took 18 s instead of 7). Some wheels
# ship files for newer Pythons only, which cannot compile here: not an error.
$(STAMP): pyproject.toml requirements.lock Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --python $(BIN)/python -c requirements.lock -e '.[dev]'
	@$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	@$(BIN)/python -m compileall -q -j 0 $(PACKAGES) > /dev/null
	@touch $@

install: $(STAMP) ## Create .venv with Tidemark and its pinned dependencies

browser: ## Install Debian's chromium for the browser tests, unless it is there
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

up: install ## Start Kafka, FerretDB, MLflow, Prefect and the services; print the UI URLs
	$(BIN)/tidemark stack up
	$(BIN)/tidemark train --if-no-production

demo: install ## On the running stack: play salmon → walleye → salmon and watch the loop react
	$(BIN)/tidemark demo

down: ## Stop everything `make up` started
	@if [ -x $(BIN)/tidemark ]; then $(BIN)/tidemark stack down; else echo "nothing to stop"; fi

status: install ## Show each component, its health and URL
	$(BIN)/tidemark stack status

logs: install ## Follow the logs of every component
	$(BIN)/tidemark stack logs

lint: install ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## Format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install ## mypy, strict
	$(BIN)/mypy $(PACKAGES)

# The unit tests are CPU-bound and independent: on UNIT_WORKERS workers (pytest-xdist) they take
# about 60 s on two cores instead of 90-130 s on one.
UNIT_WORKERS ?= 2
test-unit: install ## Unit and model tests only (no services)
	$(BIN)/pytest -m "not integration" -n $(UNIT_WORKERS) $(PYTEST_ARGS)

# mypy (one core, a minute or two from a cold cache) runs beside the unit tests, not before
# them; either failing fails the target, and mypy's report is printed after the tests'. The
# integration tests come last, alone: on INTEGRATION_WORKERS workers (pytest-xdist), each with a
# private stack of its own. Both cores are busy throughout (sampled: 90-100 %), so a third
# worker would only stretch every event-time wait. A worker takes a whole module at a time (its
# fixtures are often one story several tests read), the longest first
# (tests/integration/conftest.py orders them; xdist must not reorder).
INTEGRATION_WORKERS ?= 2
test: lint browser ## Lint, type-check and run every test, starting a private stack for the integration tests
	@log=$$(mktemp); \
	$(BIN)/mypy $(PACKAGES) > $$log 2>&1 & typing=$$!; \
	$(BIN)/pytest -m "not integration" -n $(UNIT_WORKERS) $(PYTEST_ARGS); unit=$$?; \
	wait $$typing; typed=$$?; echo "mypy $(PACKAGES)"; cat $$log; rm -f $$log; \
	test $$unit -eq 0 -a $$typed -eq 0
	$(BIN)/pytest -m integration -n $(INTEGRATION_WORKERS) --dist loadfile --no-loadscope-reorder \
		$(PYTEST_ARGS)

# The browser tests save what each page shows; `make test` keeps those pictures out of the
# checkout (build/screenshots, git-ignored), this target writes the README's on purpose.
screenshots: install browser ## Refresh docs/screenshots/ from the browser tests on a private stack
	$(BIN)/pytest tests/integration/browser --screenshots docs/screenshots

docker-up: ## The same topology with Docker Compose (needs a Docker engine)
	docker compose -f infra/docker/compose.yaml up -d --build --wait

docker-down: ## Stop the Compose stack
	docker compose -f infra/docker/compose.yaml down

# The Prefect server runs from its own environment (infra/local/provision.py): the Prefect release
# of requirements.lock with the pins that release declares. --no-config keeps pyproject's
# [tool.uv] override (FastAPI over Prefect's cap, for Tidemark's own environment) out of it.
PREFECT_SERVER_LOCK := infra/local/prefect-server.lock

lock: install ## Re-pin every dependency into requirements.lock (and the Prefect server's lock)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -q -o requirements.lock
	grep '^prefect==' requirements.lock | $(BIN)/uv pip compile - --no-config --python-version 3.11 \
		-q --custom-compile-command 'make lock' -o $(PREFECT_SERVER_LOCK)

clean: down ## Stop the stack and remove its state and the venv
	rm -rf .tidemark $(VENV)
