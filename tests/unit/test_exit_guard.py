"""The guard forgives an exit-time crash only when pytest's report shows a clean pass."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.helpers import ROOT

spec = importlib.util.spec_from_file_location("pytest_exit_guard", ROOT / "scripts" / "pytest_exit_guard.py")
guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(guard)


@pytest.fixture
def report(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "report.xml"
    monkeypatch.setattr(guard, "REPORT", path)
    return path


def suite(tests: int, failures: int = 0, errors: int = 0) -> str:
    return f'<testsuites><testsuite name="pytest" tests="{tests}" failures="{failures}" errors="{errors}"/></testsuites>'


def test_clean_report_counts_the_tests(report: Path):
    report.write_text(suite(12))
    assert guard.passed_per_report() == 12


@pytest.mark.parametrize("content", [suite(12, failures=1), suite(12, errors=1), suite(0)])
def test_failed_errored_or_empty_run_is_not_forgiven(report: Path, content: str):
    report.write_text(content)
    assert guard.passed_per_report() is None


def test_missing_report_is_not_forgiven(report: Path):
    assert guard.passed_per_report() is None
