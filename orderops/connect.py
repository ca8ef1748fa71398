"""Connecting to Temporal, with one clear line when nobody answers."""

from __future__ import annotations

from temporalio.client import Client

from orderops.codec import data_converter


class Unreachable(Exception):
    pass


async def connect(address: str, namespace: str) -> Client:
    converter = data_converter()  # first: a bad key is its own one line, not taken for a bad address
    try:
        return await Client.connect(address, namespace=namespace, data_converter=converter)
    except ValueError as err:  # the SDK's own check of the address, before any connection
        raise Unreachable(f"--address {address!r} is not HOST:PORT ({err})") from None
    except RuntimeError as err:
        raise Unreachable(
            f"cannot reach Temporal at {address} (namespace {namespace}): start one with `orderops server`, "
            f"or point --address / TEMPORAL_ADDRESS at a running cluster"
        ) from err
