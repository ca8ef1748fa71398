"""The people who decide orders, how they prove who they are, and what they may do.

Kept in a SQLite file of their own (`people.db` under ORDEROPS_HOME), apart from the warehouse
store: who may decide is not warehouse data, and the file can be guarded apart (mode 0600).
Passwords are kept as argon2id hashes; a token (a console session, `orderops login`, a service
account) is kept as its SHA-256 only, so a copy of the file lets nobody sign in. The file also
remembers which event ids each webhook source has delivered (orderops/console/hooks.py).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel

from orderops import config
from orderops.limits import plain_line
from orderops.proof import Actor

# The roles the source documents name; a definition may declare more (a user task's `role`).
STANDARD_ROLES = ("support_agent", "support_supervisor", "warehouse_supervisor", "supervisor", "ops", "auditor")
PERSON_ID = re.compile(r"[a-z][a-z0-9._-]{1,39}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 hashes any length; this keeps a sign-in request from costing more
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
TokenKind = Literal["session", "cli", "service"]
TOKEN_LIFETIME: dict[str, timedelta] = {"session": timedelta(hours=12), "cli": timedelta(days=7), "service": timedelta(days=365)}

_HASHER = PasswordHasher()
# Verified when the id is unknown, so a wrong id costs as long as a wrong password and tells nothing.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hook_deliveries (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES people(id),
    kind TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
"""


class PeopleError(ValueError):
    """A request about people that cannot be done, in one line."""


class SignInRefused(PeopleError):
    pass


class Person(BaseModel):
    id: str
    name: str
    roles: list[str]
    disabled: bool = False

    def holds(self, role: str) -> bool:
        return role in self.roles

    def actor(self, via: str) -> Actor:
        """This person as the signer vouches for them (orderops/proof.py), authenticated through `via`."""
        return Actor(id=self.id, name=self.name, roles=self.roles, via=via)


def check_person_id(person_id: str) -> str:
    if not PERSON_ID.fullmatch(person_id):
        raise PeopleError(f"{person_id[:40]!r} is not a person id (a lowercase letter, then 1-39 of a-z, 0-9, '.', '_' or '-')")
    return person_id


def check_roles(roles: Iterable[str], known: Iterable[str]) -> list[str]:
    wanted, allowed = list(dict.fromkeys(roles)), set(known)
    if not wanted:
        raise PeopleError("a person needs at least one role")
    unknown = [r for r in wanted if r not in allowed]
    if unknown:
        raise PeopleError(f"unknown role {unknown[0]!r} (roles: {', '.join(sorted(allowed))})")
    return wanted


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise PeopleError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise PeopleError(f"a password has at most {MAX_PASSWORD} characters")
    return password


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class People:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        with self._db() as db:
            db.executescript(_SCHEMA)
        if fresh:
            path.chmod(0o600)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @staticmethod
    def _person(row: sqlite3.Row) -> Person:
        return Person(id=row["id"], name=row["name"], roles=row["roles"].split(","), disabled=bool(row["disabled"]))

    def add(self, person_id: str, name: str, roles: list[str], password: str) -> Person:
        check_person_id(person_id)
        try:
            plain_line(name)
        except ValueError as err:
            raise PeopleError(f"the name {err}") from None
        if not name.strip() or len(name) > 100:
            raise PeopleError("a name has 1-100 characters")
        check_password(password)
        with self._db() as db:
            try:
                db.execute(
                    "INSERT INTO people (id, name, roles, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                    (person_id, name, ",".join(roles), _HASHER.hash(password), datetime.now(UTC).isoformat()),
                )
            except sqlite3.IntegrityError:
                raise PeopleError(f"person {person_id!r} already exists (orderops people passwd changes a password)") from None
        return Person(id=person_id, name=name, roles=roles)

    def get(self, person_id: str) -> Person | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM people WHERE id = ?", (person_id,)).fetchone()
        return self._person(row) if row else None

    def all(self) -> list[Person]:
        with self._db() as db:
            return [self._person(r) for r in db.execute("SELECT * FROM people ORDER BY id")]

    def set_password(self, person_id: str, password: str) -> None:
        check_password(password)
        with self._db() as db:
            changed = db.execute(
                "UPDATE people SET password_hash = ?, failures = 0, locked_until = NULL WHERE id = ?", (_HASHER.hash(password), person_id)
            ).rowcount
            db.execute("DELETE FROM tokens WHERE person_id = ? AND kind != 'service'", (person_id,))
        if not changed:
            raise PeopleError(f"no person {person_id!r} (orderops people list shows who there is)")

    def set_disabled(self, person_id: str, disabled: bool) -> None:
        with self._db() as db:
            changed = db.execute("UPDATE people SET disabled = ? WHERE id = ?", (int(disabled), person_id)).rowcount
            if disabled:
                db.execute("DELETE FROM tokens WHERE person_id = ?", (person_id,))
        if not changed:
            raise PeopleError(f"no person {person_id!r} (orderops people list shows who there is)")

    def authenticate(self, person_id: str, password: str, now: datetime | None = None) -> Person:
        """The person, when the password is theirs; after MAX_FAILURES wrong ones in a row, nobody for LOCKOUT."""
        now = now or datetime.now(UTC)
        refused = SignInRefused("wrong person id or password")
        if len(password) > MAX_PASSWORD:
            raise refused
        with self._db() as db:
            row = db.execute("SELECT * FROM people WHERE id = ?", (person_id,)).fetchone()
            if row is None:
                _verify(_DUMMY_HASH, password)
                raise refused
            if row["locked_until"] and datetime.fromisoformat(row["locked_until"]) > now:
                until = datetime.fromisoformat(row["locked_until"]).strftime("%H:%M UTC")
                raise SignInRefused(f"too many failed sign-ins: signing in as {person_id} is locked until {until}")
            if not _verify(row["password_hash"], password):
                failures = row["failures"] + 1
                locked = (now + LOCKOUT).isoformat() if failures >= MAX_FAILURES else None
                db.execute("UPDATE people SET failures = ?, locked_until = ? WHERE id = ?", (0 if locked else failures, locked, person_id))
                raise refused
            if row["disabled"]:
                raise SignInRefused(f"{person_id} is disabled")
            db.execute("UPDATE people SET failures = 0, locked_until = NULL WHERE id = ?", (person_id,))
        return self._person(row)

    def issue_token(self, person_id: str, kind: TokenKind, now: datetime | None = None) -> str:
        token = secrets.token_urlsafe(32)
        expires = (now or datetime.now(UTC)) + TOKEN_LIFETIME[kind]
        with self._db() as db:
            db.execute("DELETE FROM tokens WHERE expires_at < ?", ((now or datetime.now(UTC)).isoformat(),))
            db.execute(
                "INSERT INTO tokens (digest, person_id, kind, expires_at) VALUES (?, ?, ?, ?)",
                (_digest(token), person_id, kind, expires.isoformat()),
            )
        return token

    def holder(self, token: str, now: datetime | None = None) -> Person | None:
        """Whose token this is, while it is valid and its holder is not disabled."""
        with self._db() as db:
            row = db.execute(
                "SELECT people.* FROM tokens JOIN people ON people.id = tokens.person_id WHERE digest = ? AND expires_at > ?",
                (_digest(token), (now or datetime.now(UTC)).isoformat()),
            ).fetchone()
        return self._person(row) if row and not row["disabled"] else None

    def revoke(self, token: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM tokens WHERE digest = ?", (_digest(token),))

    def first_delivery(self, source: str, event_id: str) -> bool:
        """Whether an event source's event id is new (and from now on, seen): webhooks are idempotent on it."""
        with self._db() as db:
            try:
                db.execute(
                    "INSERT INTO hook_deliveries (source, id, received_at) VALUES (?, ?, ?)",
                    (source, event_id, datetime.now(UTC).isoformat()),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def forget_delivery(self, source: str, event_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM hook_deliveries WHERE source = ? AND id = ?", (source, event_id))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def open_people() -> People:
    return People(config.home() / "people.db")
