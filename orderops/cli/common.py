"""What every command shares: one-line errors, reading files, the client connection, output."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from orderops import payloads
from orderops.client import ClientError, OrderClient
from orderops.connect import Security
from orderops.limits import read_bounded

# Piped output (CI logs, less) gets a wide table instead of rich's 80-column default.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


class CliError(ClientError):
    """A user-facing failure of the command line itself (a file, an option): one line, exit status 1."""


class UsageError(Exception):
    """Arguments that do not fit together: exit status 2, like argparse's own errors."""


async def order_client(args, metrics: str | None = None) -> OrderClient:
    """Connect only after the command's own input is checked, so input errors never wait on a server."""
    return await OrderClient.connect(args.address, args.namespace, metrics=metrics, security=security_of(args))


def security_of(args) -> Security:
    from_env = Security.from_env()
    return Security(
        tls=args.tls or from_env.tls,
        cert_path=args.tls_cert_path,
        key_path=args.tls_key_path,
        ca_path=args.tls_ca_path,
        server_name=args.tls_server_name,
        api_key=args.api_key,
    )


def read_text(path: str) -> str:
    """An order file ('-' for stdin) as UTF-8 text, of at most MAX_ORDER_FILE_BYTES."""
    try:
        if path == "-":
            return read_bounded(sys.stdin.buffer, "<stdin>").decode("utf-8")
        with open(path, "rb") as source:
            return read_bounded(source, path).decode("utf-8")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise CliError(f"{path}: cannot read: {err}") from None
    except ValueError as err:
        raise CliError(str(err)) from None
    except OSError as err:
        raise CliError(f"{path}: cannot read: {err.strerror or err}") from None


def report(problems: list[str], outcome: str) -> str:
    """One problem and what came of it on one line; several, one line each, then the outcome."""
    return f"{problems[0]}; {outcome}" if len(problems) == 1 else "\n".join([*problems, outcome])


def field_errors(err: ValidationError) -> list[str]:
    """The command line reads orders: an error of the whole input is the order's."""
    return payloads.field_errors(err, whole="order")


def json_option(name: str, text: str | None) -> dict:
    if text is None:
        return {}
    try:
        value = payloads.parse(text)
    except payloads.Refused as err:
        raise CliError(f"{name}: {err}") from None
    except json.JSONDecodeError as err:
        raise CliError(f"{name}: malformed JSON: {err.msg} at column {err.colno}") from None
    except RecursionError:
        raise CliError(f"{name}: the JSON is nested too deeply") from None
    if not isinstance(value, dict):
        raise CliError(f"{name}: expected a JSON object, got {type(value).__name__}")
    return value


def write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as err:
        raise CliError(f"cannot write {path}: {err.strerror or err}") from None


def time_option(flag: str, value: str, naive_is_utc: bool = True) -> datetime:
    """An ISO-8601 time from the command line, as UTC."""
    try:
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            if not naive_is_utc:
                raise UsageError(f"{flag} {value!r}: give a UTC offset (e.g. +08:00 or Z)")
            when = when.replace(tzinfo=UTC)
        return when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise UsageError(f"{flag} {value!r}: not a usable ISO-8601 date or time (e.g. 2026-11-01 or 2026-11-01T00:00:00+08:00)") from None


def when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def clock(value) -> str:
    return value.strftime("%H:%M:%S") if value else ""
