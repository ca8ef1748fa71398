"""orderops people: who may decide orders, with which roles (orderops/people.py keeps them)."""

from __future__ import annotations

import getpass
import json
import sys

from rich.markup import escape
from rich.table import Table

from orderops import config
from orderops.activity_names import ACTIVITY_NAMES
from orderops.cli.common import CliError, out
from orderops.people import STANDARD_ROLES, PeopleError, check_person_id, check_roles, open_people
from orderops.process.lint import load
from orderops.process.model import UserTask


def known_roles() -> list[str]:
    """The standard roles and every role a user task of the shipped definitions asks for."""
    declared = {
        node.role
        for path in sorted(config.PROCESS_DIR.glob("*.yaml"))
        for node in load(path, ACTIVITY_NAMES)[0].nodes
        if isinstance(node, UserTask)
    }
    return sorted(set(STANDARD_ROLES) | declared)


def _password(args, person_id: str) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password on: pass --password-stdin and write it to stdin")
    first = getpass.getpass(f"password for {person_id}: ")
    if getpass.getpass("again: ") != first:
        raise CliError("the two passwords differ; nothing changed")
    return first


def _people_errors(run):
    def guarded(args) -> int:
        try:
            return run(args)
        except PeopleError as err:
            raise CliError(str(err)) from None

    return guarded


@_people_errors
def add(args) -> int:
    person_id = check_person_id(args.person_id)
    roles = check_roles(args.roles, known_roles())
    person = open_people().add(person_id, args.name, roles, _password(args, person_id))
    print(f"added {person.id} ({escape(person.name)}) with roles {', '.join(person.roles)}")
    return 0


@_people_errors
def passwd(args) -> int:
    open_people().set_password(args.person_id, _password(args, args.person_id))
    print(f"password of {args.person_id} changed; their sessions and CLI tokens have ended")
    return 0


@_people_errors
def disable(args) -> int:
    open_people().set_disabled(args.person_id, True)
    print(f"{args.person_id} is disabled: they can no longer sign in, and their tokens have ended")
    return 0


@_people_errors
def enable(args) -> int:
    open_people().set_disabled(args.person_id, False)
    print(f"{args.person_id} may sign in again")
    return 0


@_people_errors
def token(args) -> int:
    people = open_people()
    person = people.get(args.person_id)
    if person is None or person.disabled:
        raise CliError(f"no active person {args.person_id!r} (orderops people list shows who there is)")
    print(people.issue_token(person.id, "service"))
    print(f"a token for {person.id} ({', '.join(person.roles)}), valid for a year: send it as Authorization: Bearer", file=sys.stderr)
    return 0


def list_people(args) -> int:
    people = open_people().all()
    if args.json:
        print(json.dumps([p.model_dump() for p in people], indent=2))
        return 0
    table = Table("id", "name", "roles", "state")
    for p in people:
        table.add_row(p.id, escape(p.name), ", ".join(p.roles), "disabled" if p.disabled else "active")
    out.print(table)
    return 0
