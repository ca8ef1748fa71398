# The two commands: `make run` (the demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test chaos lint server worker clean golden mutation bench docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/orderops demo --console

# Every level but replay (unit, store, workflow, e2e), which leaves its order histories behind; then
# the replay step replays them and the golden histories on the current code (docs/testing.md).
test: $(STAMP)
	$(BIN)/python scripts/pytest_exit_guard.py --ignore=tests/replay
	ORDEROPS_REQUIRE_SESSION_HISTORIES=1 $(BIN)/python scripts/pytest_exit_guard.py tests/replay

# 60 orders driven to their end while the worker is killed with SIGKILL four times and the server
# once, on a server, worker and store of its own (tests/chaos, docs/testing.md); `make test` skips it.
chaos: $(STAMP)
	ORDEROPS_CHAOS=1 $(BIN)/python scripts/pytest_exit_guard.py -s tests/chaos

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/orderops lint process_defs/*.yaml

# Benchmarks (bench/, docs/performance.md): figures, not pass/fail. The baseline is the tree before
# the start-up work of issue 10; override with `make bench BENCH_BASELINE=<rev>`.
BENCH_BASELINE ?= d3a638f
bench: $(STAMP)
	$(BIN)/python bench/startup.py --baseline $(BENCH_BASELINE)
	$(BIN)/python bench/cel_cost.py
	$(BIN)/python bench/recovery.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/waiting.py
	$(BIN)/python bench/interpreter.py
	$(BIN)/python bench/standard.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/codec.py
	$(BIN)/python bench/inbox.py
	$(BIN)/python bench/store.py --baseline baf262c

# Pages generated from the code; a test fails when they are stale.
docs: $(STAMP)
	$(BIN)/python -m activities.catalogue > docs/activities.md

server: $(STAMP)
	$(BIN)/orderops server

worker: $(STAMP)
	$(BIN)/orderops worker

clean:
	rm -rf $(VENV) .orderops *.egg-info

# Re-record the golden histories replayed by `make test` (after an intended interpreter change).
golden: $(STAMP)
	rm -f tests/golden/test_*.json  # legacy-*.json stay: histories from before earlier changes
	ORDEROPS_RECORD_GOLDEN=tests/golden $(BIN)/pytest -q -m golden --ignore=tests/replay

# Mutation testing (mutmut) of the pure logic, killed by the fast tests that need no server
# (docs/testing.md#mutation-testing). The run's progress goes to .orderops/mutmut.log; the score
# line and the survivors to the terminal. Fails below 90% killed.
mutation: $(STAMP)
	@mkdir -p .orderops && rm -rf mutants
	@echo "mutmut run over [tool.mutmut] in pyproject.toml (progress: .orderops/mutmut.log)"
	@start=$$(date +%s); $(BIN)/mutmut run > .orderops/mutmut.log 2>&1; status=$$?; \
	  if [ $$status -ne 0 ]; then tr '\r' '\n' < .orderops/mutmut.log | tail -n 30; exit $$status; fi; \
	  $(BIN)/python scripts/mutation_score.py --seconds $$(( $$(date +%s) - start ))
