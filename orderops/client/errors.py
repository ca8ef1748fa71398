"""What the client API raises: one sentence each, for the CLI, the demo and the console to show as they are."""

from __future__ import annotations


class ClientError(Exception):
    """The request was understood and refused, or cannot be carried out now (CLI exit status 1)."""


class InvalidRequest(ClientError):
    """The request itself does not fit the order (CLI exit status 2, like an argument error)."""


class NoWorker(ClientError):
    """The server is up, but no worker answered for the order."""
