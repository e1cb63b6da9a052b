# freshrank: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-unit test-integration up down status bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "freshrank: $(PYTHON) not found (Python 3.11 is required)"; exit 2; }
	@command -v javac >/dev/null || { echo "freshrank: javac not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)"; exit 2; }
	@command -v mvn >/dev/null || { echo "freshrank: Maven not found: install it (apt-get install maven)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python -m pip check
	touch $(STAMP)

setup: $(STAMP)

## make demo: Kafka + Flink + the online-training job + generated events + serving, then a ranking.
demo: setup
	$(BIN)/freshrank demo

## make test: unit tests and the integration tests through a real Kafka broker and a real PyFlink job.
test: setup
	$(BIN)/python -m pytest -q tests

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

test-integration: setup
	$(BIN)/python -m pytest -q -m integration tests/integration

up: setup
	$(BIN)/freshrank up

down:
	@if [ -x $(BIN)/freshrank ]; then $(BIN)/freshrank down; else echo "nothing to stop (no venv)"; fi

status: setup
	$(BIN)/freshrank status

bench: setup
	for b in validation trainer drift features checkpoint; do $(BIN)/python -m bench.$$b --quick || exit 1; done

clean: down
	rm -rf .stack .stack-test
