"""orderops lint: every check a definition must pass, file:line:col: message for each problem.

Kept apart from the other definition commands: it runs in editors and pre-commit hooks, so it
imports the language and the activity names only (docs/performance.md#start-up).
"""

from __future__ import annotations

from pathlib import Path

from orderops.activity_names import ACTIVITY_NAMES
from orderops.process.lint import InvalidDefinition, load


def lint(args) -> int:
    failed = False
    for name in args.files:
        try:
            definition, snapshot = load(Path(name), ACTIVITY_NAMES)
        except InvalidDefinition as err:
            failed = True
            for message in err.messages:
                print(message)
            continue
        print(f"{name}: ok ({snapshot.id} v{snapshot.version}, {len(definition.nodes)} nodes)")
    return 1 if failed else 0
