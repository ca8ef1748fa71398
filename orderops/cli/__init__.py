"""The `orderops` command line (layer 4): one module per command group over the client API.

Every failure a user can cause (bad files, unknown orders, wrong state, no server) ends as
one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import types
from collections.abc import Sequence

from orderops.cli.parser import build_parser


def _command(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _dispatch(command, args) -> int:
    result = command(args)
    if isinstance(result, types.CoroutineType):
        # Only the commands that talk to Temporal are coroutines; the others start without asyncio.
        import asyncio

        return asyncio.run(result)
    return result


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imported only where needed, so `--help` and `lint` start fast: commands that log, failures.
    if args.logs:
        from orderops import logs

        logs.configure(args.log_format, args.log_level)
    try:
        command = _command(args.run)
        return _dispatch(command, args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader stopped reading (`| head`): stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:
        from orderops.cli.errors import report

        known = report(err)
        if known is not None:
            return known
        # The last line of defence: still one line, with the details in the log on request.
        logging.getLogger("orderops").debug("unexpected error", exc_info=True)
        print(f"orderops: unexpected error: {type(err).__name__}: {err} (--log-level debug shows where)", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> None:
    code = run(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # sdk-python#300: the SDK's Rust core can abort during interpreter teardown.
    # All output is flushed and the exit status decided, so skip the teardown.
    os._exit(code)
