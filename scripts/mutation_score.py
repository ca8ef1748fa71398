"""`make mutation`'s verdict: one summary line from mutmut's results, the survivors, and the 90% bar.

Reads `mutmut results --all true` (one `name: status` line per mutant) after a
`mutmut run`. A mutant counts as killed when a test failed on it, or hung on it
until mutmut's timeout; every other status (survived, no tests, suspicious, ...)
is a survivor and is listed. Exits 1 below the bar, or when there are no results.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

BAR = 90.0
KILLED = frozenset({"killed", "timeout"})


def read_results(mutmut: str) -> dict[str, str]:
    """mutant name -> status, as `mutmut results --all true` lists them."""
    out = subprocess.run([mutmut, "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    results = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            results[name] = status
    return results


def summary(results: dict[str, str], seconds: float | None) -> tuple[str, float]:
    statuses = Counter(results.values())
    killed = sum(statuses[s] for s in KILLED)
    total = len(results)
    percent = 100 * killed / total if total else 0.0
    survivors = total - killed
    others = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()) if s not in ("killed", "survived"))
    line = f"mutation: {killed}/{total} mutants killed ({percent:.1f}%), {survivors} survivors"
    line += f" ({others})" if others else ""
    line += f", {seconds:.0f} s" if seconds is not None else ""
    return line, percent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="wall time of the mutmut run, for the summary line")
    parser.add_argument("--mutmut", default=str(Path(sys.executable).parent / "mutmut"))
    args = parser.parse_args(argv)
    results = read_results(args.mutmut)
    if not results:
        print("mutation: no results; run `mutmut run` first", file=sys.stderr)
        return 1
    line, percent = summary(results, args.seconds)
    print(line)
    for name, status in sorted(results.items()):
        if status not in KILLED:
            print(f"  {name}: {status}")
    if percent < BAR:
        print(f"mutation: below the {BAR:.0f}% bar", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
