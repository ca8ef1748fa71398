"""pytest plugin for `make mutation` (`-p tests.mutation_plugin` in [tool.mutmut]): no server, fastest first.

mutmut runs the selected tests once per mutant, in forked processes, and stops at the first
failure (`-x`). This plugin

- stops the run at collection if a selected test asks for the Temporal dev server (a fixture of
  tests/conftest.py) or runs the installed CLI in a subprocess (which imports the unmutated code);
- orders the tests by the durations mutmut recorded in its stats run (mutants/mutmut-stats.json,
  read from the working directory mutmut runs the tests in), fastest first, so a mutant dies at its
  cheapest failing test rather than after a slow property test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# The fixtures of tests/conftest.py that start (or need) a Temporal dev server and its worker.
SERVER_FIXTURES = frozenset({"env", "client", "worker", "address", "start", "ts_env", "ts_worker", "ts_start", "ts_store"})
# The helpers of tests/conftest.py that run `orderops` in a subprocess.
CLI_HELPERS = frozenset({"run_cli", "cli"})
STATS = Path("mutmut-stats.json")


def needs_server(item: pytest.Item) -> str | None:
    """Why this test cannot run without a server, or None."""
    fixtures = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
    if fixtures:
        return f"uses fixture {', '.join(sorted(fixtures))}"
    function = getattr(item, "function", None)
    helpers = CLI_HELPERS & set(getattr(getattr(function, "__code__", None), "co_names", ()))
    if helpers:
        return f"calls {', '.join(sorted(helpers))} (the CLI in a subprocess)"
    return None


def recorded_durations() -> dict[str, float]:
    """Test id -> seconds, from mutmut's stats run; empty before it (or outside mutmut)."""
    try:
        return json.loads(STATS.read_text(encoding="utf-8"))["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    offenders = [f"{item.nodeid}: {why}" for item in items if (why := needs_server(item))]
    if offenders:
        raise pytest.UsageError("tests selected for mutation testing need a server:\n  " + "\n  ".join(offenders))
    durations = recorded_durations()
    if durations:
        # Stable: tests of equal (or unknown) duration keep their order, so module fixtures are not rebuilt needlessly.
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
