"""Start-up time of the command line: `orderops --help`, one lint, and 100 definitions in one lint run.

Each figure is the wall time of a fresh process, min and median over interleaved rounds, with the
machine's load average before and after. Run: `.venv/bin/python bench/startup.py [--rounds N]`.
A benchmark, not a test: it asserts nothing about speed (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDEROPS = str(Path(sys.executable).parent / "orderops")
STANDARD = ROOT / "process_defs" / "standard.yaml"


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        # Beside a copy of process_defs/, so the policies the definition names are found.
        defs = Path(shutil.copytree(STANDARD.parent, Path(folder) / "process_defs"))
        copies = []
        for index in range(100):
            copy = defs / f"def-{index:03d}.yaml"
            shutil.copy(STANDARD, copy)
            copies.append(str(copy))
        cases = {
            "orderops --help": [ORDEROPS, "--help"],
            "orderops lint standard.yaml": [ORDEROPS, "lint", str(STANDARD)],
            "orderops lint (100 definitions)": [ORDEROPS, "lint", *copies],
            "python -c pass (the interpreter alone)": [sys.executable, "-c", "pass"],
            # What orderops.process.expressions avoids by standing in for cel's REPL module.
            "python -c 'import cel' (cel as it loads itself)": [sys.executable, "-c", "import cel"],
        }
        load_before = os.getloadavg()[0]
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, argv in cases.items():
                times[name].append(timed(argv))
        load_after = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load_before:.2f} before, {load_after:.2f} after; {args.rounds} rounds")
    for name, values in times.items():
        print(f"{name:42s} min {min(values):.3f} s   median {statistics.median(values):.3f} s")


if __name__ == "__main__":
    main()
