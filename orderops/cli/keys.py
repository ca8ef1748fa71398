"""orderops keys: the AES-256 keys of the payload codec (orderops/codec.py), kept outside the repository and history."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from orderops.cli.common import CliError
from orderops.codec import KEYS_ENV, Keyring, key_dir, new_key


def _files_only() -> None:
    if os.environ.get(KEYS_ENV):
        raise CliError(f"the keys come from {KEYS_ENV}: change them there (the first entry encrypts, every entry decrypts)")


def new(args) -> int:
    _files_only()
    existing = sorted(key_dir().glob("*.key")) if key_dir().exists() else []
    if existing:
        raise CliError(f"{key_dir()} already holds {len(existing)} key(s); `orderops keys rotate` adds one")
    print(f"key {new_key()} made in {key_dir()}; it encrypts from now on")
    return 0


def rotate(args) -> int:
    _files_only()
    before = Keyring.load()
    added = new_key()
    print(f"key {added} encrypts from now on; {', '.join(before.keys)} still decrypt (restart workers to encrypt with it at once)")
    return 0


def list_keys(args) -> int:
    ring = Keyring.load()
    if ring.folder is None:
        print(f"{len(ring.keys)} key(s) from {KEYS_ENV}: {', '.join(ring.keys)}; {ring.current} encrypts")
        return 0
    for path in sorted(ring.folder.glob("*.key"), key=lambda p: p.stat().st_mtime_ns):
        made = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        role = "encrypts and decrypts" if path.stem == ring.current else "decrypts"
        print(f"{path.stem}  made {made:%Y-%m-%d %H:%M} UTC  {role}")
    return 0
