"""Connecting to Temporal, with one clear line when nobody answers."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from orderops.codec import data_converter


class Unreachable(Exception):
    pass


async def connect(address: str, namespace: str, metrics: str | None = None) -> Client:
    """A client with the project's converter; with `metrics` (HOST:PORT), its runtime serves Prometheus there."""
    converter = data_converter()  # first: a bad key is its own one line, not taken for a bad address
    runtime = None
    if metrics:
        try:
            runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=metrics, counters_total_suffix=True)))
        except Exception as err:  # the SDK's core reports a taken port or a bad address as a plain Exception
            raise Unreachable(f"--metrics {metrics!r}: cannot serve Prometheus metrics there ({str(err).splitlines()[0][:200]})") from None
    try:
        return await Client.connect(address, namespace=namespace, data_converter=converter, runtime=runtime)
    except ValueError as err:  # the SDK's own check of the address, before any connection
        raise Unreachable(f"--address {address!r} is not HOST:PORT ({err})") from None
    except RuntimeError as err:
        raise Unreachable(
            f"cannot reach Temporal at {address} (namespace {namespace}): start one with `orderops server`, "
            f"or point --address / TEMPORAL_ADDRESS at a running cluster"
        ) from err
