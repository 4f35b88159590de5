# Everything a fresh Debian machine needs is installed by these targets (run as root, or with sudo rights).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint chaos bench soak deps system-deps test-deps clean

run: deps
	$(PY) -m deploy.stack

test: deps test-deps lint
	$(PY) -m pytest tests -m "not slow"

# Lint and import order (configured in pyproject.toml).
lint: deps
	$(PY) -m ruff check .

chaos: deps
	$(PY) -m pytest tests/chaos

bench: deps
	$(PY) -m deploy.bench
	$(PY) -m deploy.bench_latency
	$(PY) -m deploy.bench_batch
	$(PY) -m deploy.bench_gateway
	$(PY) -m deploy.bench_dispatcher
	$(PY) -m deploy.bench_sink
	$(PY) -m deploy.bench_queries
	$(PY) -m deploy.bench_ledger
	$(PY) -m deploy.bench_broker

# A steady load for SOAK_MINUTES in one-minute rounds: the first and the last round's latency.
SOAK_MINUTES ?= 30
soak: deps
	$(PY) -m deploy.bench_latency --soak $(SOAK_MINUTES)

deps: system-deps $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	# The `mercury` command: the working tree itself, installed in place (no dependencies, no download).
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

system-deps:
	@bash deploy/install-system-deps.sh

# What only the tests need beyond the stack: Chromium for the dashboard test.
test-deps:
	@bash deploy/install-system-deps.sh --test

clean:
	rm -rf $(VENV) .state
