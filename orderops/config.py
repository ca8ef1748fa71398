"""Where things live and which cluster to talk to."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROCESS_DIR = PROJECT_ROOT / "process_defs"
SAMPLES_DIR = PROJECT_ROOT / "samples"
DEFAULT_PROCESS = PROCESS_DIR / "standard.yaml"
DEFAULT_ADDRESS = "localhost:7233"
UI_PORT = 8233
CONSOLE_PORT = 8280
# Where the Web UI asks the console to decrypt payloads (orderops/console/codec.py).
CODEC_ENDPOINT = f"http://127.0.0.1:{CONSOLE_PORT}/codec"


def home() -> Path:
    """State directory: the warehouse store, the dev server's database, waybill labels."""
    return Path(os.environ.get("ORDEROPS_HOME", ".orderops")).resolve()


def store_url() -> str:
    """The warehouse store: ORDEROPS_STORE_URL (postgresql://user@host:5432/db), else a SQLite file in the home."""
    return os.environ.get("ORDEROPS_STORE_URL") or f"sqlite:///{home() / 'warehouse.db'}"


def default_address() -> str:
    return os.environ.get("TEMPORAL_ADDRESS") or DEFAULT_ADDRESS


def default_namespace() -> str:
    return os.environ.get("TEMPORAL_NAMESPACE") or "default"
