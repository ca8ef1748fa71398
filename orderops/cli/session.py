"""orderops login and logout: a person's token for the deciding commands, kept in ORDEROPS_HOME/credentials.json."""

from __future__ import annotations

import getpass
import sys

from pydantic import ValidationError

from orderops.cli.common import CliError, field_errors
from orderops.client.errors import ClientError
from orderops.client.remote import ConsoleClient, Credentials, console_url, credentials_file, save_login, saved_login


def _password(args, person_id: str) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password on: pass --password-stdin and write it to stdin")
    return getpass.getpass(f"password for {person_id}: ")


async def login(args) -> int:
    url = console_url(args.console)
    try:
        credentials = Credentials(person_id=args.person_id, password=_password(args, args.person_id))
    except ValidationError as err:
        raise CliError(f"invalid sign-in: {field_errors(err)[0]}") from None
    token = await ConsoleClient(url).login(credentials)
    kept = save_login(url, token)
    print(
        f"signed in to {url} as {token.person.id} ({', '.join(token.person.roles)}) until {kept.expires_at:%Y-%m-%d %H:%M} UTC; "
        f"the token is in {credentials_file()}"
    )
    return 0


async def logout(args) -> int:
    kept = saved_login()
    if kept is None:
        print("not signed in; nothing to do")
        return 0
    credentials_file().unlink(missing_ok=True)
    try:
        await ConsoleClient(kept.console, kept.token).logout()
    except ClientError as err:  # forgotten here all the same; the token ends by itself
        print(f"signed out here; the console could not end the token ({err}); it expires {kept.expires_at:%Y-%m-%d}", file=sys.stderr)
        return 0
    print(f"signed out of {kept.console} ({kept.person_id})")
    return 0
