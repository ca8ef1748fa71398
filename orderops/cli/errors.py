"""The failures a user can cause, each printed as one line with its exit status."""

from __future__ import annotations

import sys

from orderops.cli.common import UsageError
from orderops.client import ClientError, InvalidRequest
from orderops.connect import Unreachable
from orderops.process.lint import InvalidDefinition


def report(err: Exception) -> int | None:
    """Print a known failure and return its exit status; None for anything unexpected."""
    if isinstance(err, (UsageError, InvalidRequest)):
        print(f"orderops: {err}", file=sys.stderr)
        return 2
    if isinstance(err, InvalidDefinition):
        print("\n".join(err.messages), file=sys.stderr)
        return 1
    # Imported here: a lint run never reaches Temporal or the store, and should not load them.
    from activities.database import StoreUnavailable
    from activities.store import StaleStore
    from orderops.codec import CodecError
    from orderops.history.timeline import HistoryError

    if isinstance(err, (ClientError, Unreachable, HistoryError, StaleStore, StoreUnavailable, CodecError)):
        print(f"orderops: {err}", file=sys.stderr)
        return 1
    from temporalio.service import RPCError

    if isinstance(err, RPCError):
        print(f"orderops: Temporal refused the request: {err.message}", file=sys.stderr)
        return 1
    return None
