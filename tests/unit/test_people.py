"""People and their proof: hashed passwords, the lockout, tokens kept as digests, disabling."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from orderops.people import LOCKOUT, MAX_FAILURES, People, PeopleError, SignInRefused, check_roles
from tests.helpers import run_cli

PASSWORD = "correct horse battery"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def people(tmp_path) -> People:
    people = People(tmp_path / "people.db")
    people.add("amy.chen", "Amy Chen", ["support_agent"], PASSWORD)
    return people


def test_a_password_is_kept_as_an_argon2_hash_and_proves_the_person(people: People, tmp_path):
    [stored] = sqlite3.connect(tmp_path / "people.db").execute("SELECT password_hash FROM people").fetchone()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert people.authenticate("amy.chen", PASSWORD, NOW).roles == ["support_agent"]
    assert (tmp_path / "people.db").stat().st_mode & 0o077 == 0  # only its owner reads it


def test_a_wrong_password_and_an_unknown_id_get_the_same_answer(people: People):
    with pytest.raises(SignInRefused) as wrong:
        people.authenticate("amy.chen", "not her password", NOW)
    with pytest.raises(SignInRefused) as unknown:
        people.authenticate("nobody", PASSWORD, NOW)
    assert str(wrong.value) == str(unknown.value) == "wrong person id or password"


def test_repeated_failures_lock_the_id_even_against_the_right_password_until_the_lockout_ends(people: People):
    for _ in range(MAX_FAILURES):
        with pytest.raises(SignInRefused, match="wrong person id or password"):
            people.authenticate("amy.chen", "guess", NOW)
    with pytest.raises(SignInRefused, match="locked until 09:15 UTC"):
        people.authenticate("amy.chen", PASSWORD, NOW + timedelta(minutes=1))
    assert people.authenticate("amy.chen", PASSWORD, NOW + LOCKOUT + timedelta(seconds=1)).id == "amy.chen"


def test_a_success_clears_the_count_of_failures(people: People):
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(SignInRefused):
            people.authenticate("amy.chen", "guess", NOW)
    people.authenticate("amy.chen", PASSWORD, NOW)
    with pytest.raises(SignInRefused, match="wrong person id"):  # a fresh count: one failure does not lock
        people.authenticate("amy.chen", "guess", NOW)
    assert people.authenticate("amy.chen", PASSWORD, NOW).id == "amy.chen"


def test_a_token_is_kept_as_its_digest_and_ends_when_it_expires_or_is_revoked(people: People, tmp_path):
    token = people.issue_token("amy.chen", "session", NOW)
    [digest] = sqlite3.connect(tmp_path / "people.db").execute("SELECT digest FROM tokens").fetchone()
    assert token not in digest
    holder = people.holder(token, NOW + timedelta(hours=1))
    assert holder is not None and holder.id == "amy.chen"
    assert people.holder(token, NOW + timedelta(hours=13)) is None  # sessions last 12 hours
    assert people.holder(token + "x", NOW) is None
    people.revoke(token)
    assert people.holder(token, NOW) is None


def test_disabling_ends_tokens_and_sign_in_and_a_new_password_ends_sessions(people: People):
    session, service = people.issue_token("amy.chen", "session", NOW), people.issue_token("amy.chen", "service", NOW)
    people.set_password("amy.chen", "another long password")
    assert people.holder(session, NOW) is None and people.holder(service, NOW) is not None
    with pytest.raises(SignInRefused):
        people.authenticate("amy.chen", PASSWORD, NOW)
    people.set_disabled("amy.chen", True)
    assert people.holder(service, NOW) is None
    with pytest.raises(SignInRefused, match=r"amy\.chen is disabled"):
        people.authenticate("amy.chen", "another long password", NOW)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.add("amy.chen", "Amy", ["ops"], PASSWORD), "already exists"),
        (lambda p: p.add("Bob", "Bob", ["ops"], PASSWORD), "is not a person id"),
        (lambda p: p.add("bob", "Bob\x1b[2J", ["ops"], PASSWORD), "control character U+001B"),
        (lambda p: p.add("bob", "Bob", ["ops"], "short"), "at least 12 characters"),
        (lambda p: p.set_password("zed", PASSWORD), "no person 'zed'"),
        (lambda p: p.set_disabled("zed", True), "no person 'zed'"),
    ],
)
def test_bad_requests_are_refused_in_one_line(people: People, call, message):
    with pytest.raises(PeopleError, match=re.escape(message)):
        call(people)


def test_roles_must_be_known():
    assert check_roles(["ops", "auditor", "ops"], ["ops", "auditor"]) == ["ops", "auditor"]
    with pytest.raises(PeopleError, match="unknown role 'boss'"):
        check_roles(["boss"], ["ops"])
    with pytest.raises(PeopleError, match="at least one role"):
        check_roles([], ["ops"])


def test_the_people_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("ORDEROPS_HOME", str(tmp_path))
    added = run_cli(
        "people", "add", "li.wei", "--name", "Li Wei", "--role", "warehouse_supervisor", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    assert People(tmp_path / "people.db").authenticate("li.wei", PASSWORD).roles == ["warehouse_supervisor"]
    unknown = run_cli("people", "add", "bo", "--name", "Bo", "--role", "boss", "--password-stdin", stdin=PASSWORD + "\n")
    assert unknown.returncode == 1 and unknown.stderr.startswith("orderops: unknown role 'boss' (roles: auditor,")
    assert len(unknown.stderr.splitlines()) == 1
    no_terminal = run_cli("people", "passwd", "li.wei")
    assert no_terminal.returncode == 1 and "--password-stdin" in no_terminal.stderr
    issued = run_cli("people", "token", "li.wei")
    assert issued.returncode == 0
    holder = People(tmp_path / "people.db").holder(issued.stdout.strip())
    assert holder is not None and holder.id == "li.wei"
    assert run_cli("people", "token", "nobody").returncode == 1
    assert run_cli("people", "disable", "li.wei").returncode == 0
    listed = run_cli("people", "list", "--json")
    assert listed.returncode == 0
    assert '"disabled": true' in listed.stdout and "password" not in listed.stdout
