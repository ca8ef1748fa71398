# The two commands: `make run` (the demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint server worker clean golden

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/orderops demo

test: $(STAMP)
	$(BIN)/python scripts/pytest_exit_guard.py

lint: $(STAMP)
	$(BIN)/orderops lint process_defs/*.yaml

server: $(STAMP)
	$(BIN)/orderops server

worker: $(STAMP)
	$(BIN)/orderops worker

clean:
	rm -rf $(VENV) .orderops *.egg-info

# Re-record the golden histories replayed by `make test` (after an intended interpreter change).
golden: $(STAMP)
	rm -f tests/golden/test_*.json  # legacy-*.json stay: histories from before earlier changes
	ORDEROPS_RECORD_GOLDEN=tests/golden $(BIN)/pytest -q tests/test_standard_process.py tests/test_constructs.py tests/test_history.py tests/test_deadlines.py tests/test_fulfilment_timers.py tests/test_returns.py
