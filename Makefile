# Conveyor — developer entry points. `make demo` and `make test` work from a clean clone:
# both create .venv and install the project when it is missing or pyproject.toml changed.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit integration faults crds lint fmt bench sandbox clean help

help:
	@echo "make demo     the whole loop in the sandbox: train, serve, drift, alert, retrain, serve"
	@echo "make test     run every test (unit, sandbox, integration)"
	@echo "make faults   the faults survived (tests/faults/), each with its figure"
	@echo "make sandbox  run the sandbox in the foreground (Ctrl-C stops it)"
	@echo "make crds     regenerate crds/ from the API models"
	@echo "make lint     ruff, mypy and the import contracts"
	@echo "make bench    run the benchmarks in bench/ and print their figures"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,sandbox]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/conveyor demo

sandbox: $(STAMP)
	$(BIN)/conveyor sandbox up

test: $(STAMP)
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration tests/sandbox

# Not in `make test` (pyproject's testpaths): the faults take minutes of their own; CI runs both.
# -rfExX: the reasons of failures and of known product bugs (xfail) in the summary.
faults: $(STAMP)
	$(BIN)/pytest -rfExX tests/faults

crds: $(STAMP)
	$(BIN)/python -m conveyor.api.generate crds

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: $(STAMP)
	$(BIN)/ruff format operator tests bench
	$(BIN)/ruff check --fix .

# bench/serving_floor.py is a server bench/serving.py starts, not a benchmark of its own.
bench: $(STAMP)
	@for script in $(filter-out bench/serving_floor.py,$(wildcard bench/*.py)); do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf .sandbox .pytest_cache .ruff_cache .mypy_cache build *.egg-info
