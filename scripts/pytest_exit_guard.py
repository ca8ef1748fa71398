"""Run pytest; forgive only the SDK's known crash at interpreter exit (sdk-python#300).

The Temporal SDK's Rust core can abort (SIGABRT/SIGSEGV, exit 134/139) while
Python tears down, after every test has run and the report is written. A run
that crashed that way still counts as passed, but only if pytest's own JUnit
report says tests ran and none failed; any other exit status passes through.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPORT = Path(".orderops") / "test-results.xml"
EXIT_CRASHES = {134, 139, -6, -11}


def passed_per_report() -> int | None:
    """Number of tests run if the report shows no failure or error, else None."""
    if not REPORT.exists():
        return None
    root = ET.parse(REPORT).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = sum(int(s.get("tests", 0)) for s in suites)
    bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    return tests if tests and not bad else None


def main() -> int:
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.unlink(missing_ok=True)
    code = subprocess.call([sys.executable, "-m", "pytest", f"--junitxml={REPORT}", *sys.argv[1:]])
    if code in EXIT_CRASHES:
        tests = passed_per_report()
        if tests is not None:
            print(f"pytest exited {code} after {tests} tests passed: the SDK's known crash at exit (sdk-python#300); counted as passed")
            return 0
        print(f"pytest crashed with exit status {code} and its report does not show a clean pass", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
