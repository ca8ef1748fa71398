"""PostgreSQL for the tests: the machine's server (ORDEROPS_TEST_POSTGRES, by default trust auth as
`postgres` at 127.0.0.1:5432), one database per test run, dropped at its end, and a schema of its
own for each store a test makes, so tests never see each other's rows."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("ORDEROPS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
_schemas = itertools.count(1)


@contextmanager
def run_database(options: str = "") -> Iterator[str]:
    """A database of this test run's own (`options` to CREATE DATABASE): its URL, dropped when the run ends."""
    name = f"orderops_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        raise RuntimeError(f"the store's tests need PostgreSQL at {ADMIN_URL} (ORDEROPS_TEST_POSTGRES): {str(e).splitlines()[0]}") from None
    with admin:
        admin.execute(f'CREATE DATABASE "{name}" {options}')
        try:
            yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def fresh_schema(database_url: str) -> str:
    """A store URL whose tables live in a new, empty schema of the run's database."""
    schema = f"store_{next(_schemas)}"
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
    return f"{database_url}?options={quote(f'-csearch_path={schema}')}"
