"""The warehouse store's database, SQLite or PostgreSQL, through SQLAlchemy Core.

The store's SQL is written once, with `?` placeholders, in the subset both databases speak
(`INSERT ... ON CONFLICT`, `RETURNING`, partial indexes). What differs between them is in
`BACKENDS`, one entry per database.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

# The lock every write transaction on PostgreSQL takes first (pg_advisory_xact_lock): the same
# one-writer-at-a-time guarantee as SQLite's BEGIN IMMEDIATE, so a check-then-write (is there stock
# left? then reserve it) is exact on both, with no retry loop in the activities.
WRITE_LOCK = 0x6F726465  # "orde"
MIGRATION_LOCK = 0x6F70736D  # "opsm"


class StoreUnavailable(Exception):
    """The store's URL is wrong, or its database cannot be reached."""


@dataclass(frozen=True)
class Backend:
    begin_write: str  # the statement that opens a write transaction holding the store's write lock
    # Values whose type the column cannot enforce: SQLite stores any type in any column.
    loose_types: bool


BACKENDS = {
    "sqlite": Backend("BEGIN IMMEDIATE", loose_types=True),
    "postgresql": Backend(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})", loose_types=False),
}


class Record:
    """A row read by column name (`row["sku"]`) or position (`row[0]`); `dict(row)` gives its columns."""

    __slots__ = ("_row",)

    def __init__(self, row: sa.Row):
        self._row = row

    def __getitem__(self, key: str | int) -> Any:
        return self._row._mapping[key] if isinstance(key, str) else self._row[key]

    def keys(self) -> list[str]:
        return list(self._row._mapping.keys())


class Cursor:
    """What a statement gave: its rows, and how many rows it changed."""

    def __init__(self, result: sa.CursorResult):
        self._result = result
        self.rowcount = result.rowcount

    def fetchone(self) -> Any:  # a Record, or None; typed as sqlite3's is, for `fetchone()[0]` after a query that always has a row
        row = self._result.fetchone()
        return None if row is None else Record(row)

    def fetchall(self) -> list[Record]:
        return [Record(row) for row in self._result.fetchall()]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.fetchall())


@lru_cache(maxsize=1024)
def _named(sql: str) -> sa.TextClause:
    """`?` placeholders as named ones (`:p0`, `:p1`, ...), which SQLAlchemy binds the same way on every driver."""
    count = iter(range(sql.count("?")))
    return sa.text(re.sub(r"\?", lambda _: f":p{next(count)}", sql))


class Db:
    """One connection to the store, in a transaction when the store's `transaction()` gave it."""

    def __init__(self, connection: sa.Connection):
        self.connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return Cursor(self.connection.execute(_named(sql), {f"p{i}": value for i, value in enumerate(params)}))


def engine_for(url: str) -> sa.Engine:
    """An engine for `postgresql://user@host:port/db` or `sqlite:///path`, set up the way the store needs."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is no number
        # The URL is not echoed: it may hold a password.
        raise StoreUnavailable("ORDEROPS_STORE_URL is not a URL like postgresql://user@host:5432/db (or sqlite:///path)") from None
    if parsed.get_backend_name() == "postgresql":
        # psycopg 3 is the driver; a plain postgresql:// URL, as libpq and the docs write it, means it.
        # READ COMMITTED whatever the server's default: a transaction waiting for the write lock must see
        # what the one before it committed. Pre-ping: a worker outlives a database restart. A host that
        # does not answer is an error in 10 s, not a hang. Room for the worker's 32 activity threads.
        return sa.create_engine(
            parsed.set(drivername="postgresql+psycopg"),
            isolation_level="READ COMMITTED",
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=30,
            connect_args={"connect_timeout": 10},
        )
    if parsed.get_backend_name() != "sqlite":
        raise StoreUnavailable(f"ORDEROPS_STORE_URL must be postgresql://... or sqlite:///..., not {parsed.drivername}://")
    if parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # Connections kept open in a pool: one opened and closed per transaction costs SQLite a checkpoint at
    # each close, and halved the store's throughput (bench/store.py). Any thread may take one.
    engine = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8, max_overflow=32)

    @event.listens_for(engine, "connect")
    def _setup(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # The store says when transactions begin (BEGIN IMMEDIATE), not the sqlite3 module.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    return engine


def backend_of(engine: sa.Engine) -> Backend:
    return BACKENDS[engine.dialect.name]


def shown(url: str | sa.URL) -> str:
    """The store's URL as it may be printed: without a password."""
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def connected(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection, or one line saying why there is none (the driver's own first line)."""
    try:
        connection = engine.connect()
    except sa.exc.DBAPIError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise StoreUnavailable(f"cannot open the store at {shown(engine.url)}: {reason}") from None
    with connection:
        yield connection


@contextmanager
def migration_lock(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One process at a time creates or upgrades the store; the others wait, then find it done."""
    with connected(engine) as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
                connection.commit()
        else:
            database = engine.url.database
            assert database, "an SQLite store is a file"
            with open(Path(database).with_suffix(".migrate-lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield connection
