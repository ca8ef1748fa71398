"""Start-up time of the command line: `orderops --help`, one lint, and 100 definitions in one lint run.

Each figure is the wall time of a fresh process, min and median over interleaved rounds, with the
machine's load average before and after. With `--baseline REV` the same commands of that revision
(exported from git into a temporary folder, run with this virtualenv) are timed in the same rounds.
Run: `.venv/bin/python bench/startup.py [--rounds N] [--baseline REV]`.
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


def timed(argv: list[str], cwd: Path = ROOT) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, cwd=cwd)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def export(revision: str, folder: Path) -> Path:
    folder.mkdir()
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        sys.exit(f"git archive {revision}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def commands(tree: Path, orderops: list[str], scratch: Path, suffix: str) -> dict[str, tuple[list[str], Path]]:
    """The orderops cases for one source tree, each on that tree's own standard.yaml."""
    standard = tree / "process_defs" / "standard.yaml"
    # Beside a copy of process_defs/, so the policies the definition names are found.
    defs = Path(shutil.copytree(standard.parent, scratch / "process_defs"))
    copies = []
    for index in range(100):
        copy = defs / f"def-{index:03d}.yaml"
        shutil.copy(standard, copy)
        copies.append(str(copy))
    return {
        f"orderops --help{suffix}": ([*orderops, "--help"], tree),
        f"orderops lint standard.yaml{suffix}": ([*orderops, "lint", str(standard)], tree),
        f"orderops lint (100 definitions){suffix}": ([*orderops, "lint", *copies], tree),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per case")
    parser.add_argument("--baseline", metavar="REV", help="a git revision whose commands are timed beside these")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cases = {
            **commands(ROOT, [ORDEROPS], Path(folder) / "current", ""),
            "python -c pass (the interpreter alone)": ([sys.executable, "-c", "pass"], ROOT),
            # What orderops.process.expressions avoids by standing in for cel's REPL module.
            "python -c 'import cel' (cel as it loads itself)": ([sys.executable, "-c", "import cel"], ROOT),
        }
        if args.baseline:
            old = export(args.baseline, Path(folder) / "baseline")
            # The old tree comes first on sys.path (the current folder, for -c), ahead of the editable install.
            run_old = [sys.executable, "-c", "import sys, starter; sys.argv[0] = 'orderops'; starter.main()"]
            cases |= commands(old, run_old, Path(folder) / "old", f" at {args.baseline}")
        load_before = os.getloadavg()[0]
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, (argv, cwd) in cases.items():
                times[name].append(timed(argv, cwd))
        load_after = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load_before:.2f} before, {load_after:.2f} after; {args.rounds} rounds")
    for name, values in times.items():
        line = f"{name:56s} min {min(values):.3f} s   median {statistics.median(values):.3f} s"
        if args.baseline and name.endswith(f" at {args.baseline}"):
            now = statistics.median(times[name.removesuffix(f" at {args.baseline}")])
            line += f"   ({statistics.median(values) / now:.1f}x the current median)"
        print(line)


if __name__ == "__main__":
    main()
