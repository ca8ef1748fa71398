"""Connecting to Temporal, with one clear line when nobody answers; TLS and API keys for secured clusters."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from orderops.codec import data_converter


class Unreachable(Exception):
    pass


# Each option of Security, and the environment variable the `temporal` CLI reads it from.
SECURITY_ENV = {
    "tls": "TEMPORAL_TLS",
    "cert_path": "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "key_path": "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "ca_path": "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "server_name": "TEMPORAL_TLS_SERVER_NAME",
    "api_key": "TEMPORAL_API_KEY",
}


@dataclass(frozen=True)
class Security:
    """How a client proves itself to a secured cluster: mutual TLS (a client certificate), an API key
    (Temporal Cloud), or plain TLS; none of it for the embedded server."""

    tls: bool = False
    cert_path: str | None = None
    key_path: str | None = None
    ca_path: str | None = None
    server_name: str | None = None
    api_key: str | None = None

    @classmethod
    def from_env(cls) -> Security:
        def env(field: str) -> str | None:
            return os.environ.get(SECURITY_ENV[field]) or None

        return cls(
            tls=(env("tls") or "").lower() in ("1", "true", "yes"),
            cert_path=env("cert_path"),
            key_path=env("key_path"),
            ca_path=env("ca_path"),
            server_name=env("server_name"),
            api_key=env("api_key"),
        )

    def tls_config(self) -> TLSConfig | bool | None:
        """The SDK's TLS setting: a config with the files, True for plain TLS, None to let an API key turn it on."""
        if (self.cert_path is None) != (self.key_path is None):
            raise Unreachable("a client certificate needs both --tls-cert-path and --tls-key-path")
        if not (self.cert_path or self.ca_path or self.server_name):
            return True if self.tls else None
        return TLSConfig(
            client_cert=_read(self.cert_path, "--tls-cert-path"),
            client_private_key=_read(self.key_path, "--tls-key-path"),
            server_root_ca_cert=_read(self.ca_path, "--tls-ca-path"),
            domain=self.server_name,
        )


def _read(path: str | None, option: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise Unreachable(f"{option} {path}: cannot read: {err.strerror or err}") from None


async def connect(address: str, namespace: str, metrics: str | None = None, security: Security | None = None) -> Client:
    """A client with the project's converter; with `metrics` (HOST:PORT), its runtime serves Prometheus there;
    `security` for a secured cluster (by default from the `temporal` CLI's environment variables)."""
    converter = data_converter()  # first: a bad key is its own one line, not taken for a bad address
    security = security or Security.from_env()
    tls = security.tls_config()
    runtime = None
    if metrics:
        try:
            runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=metrics, counters_total_suffix=True)))
        except Exception as err:  # the SDK's core reports a taken port or a bad address as a plain Exception
            raise Unreachable(f"--metrics {metrics!r}: cannot serve Prometheus metrics there ({str(err).splitlines()[0][:200]})") from None
    try:
        # tls None: the SDK turns TLS on when an API key is given, as the `temporal` CLI does.
        return await Client.connect(
            address, namespace=namespace, data_converter=converter, runtime=runtime, tls=tls, api_key=security.api_key
        )
    except ValueError as err:  # the SDK's own check of the address, before any connection
        raise Unreachable(f"--address {address!r} is not HOST:PORT ({err})") from None
    except RuntimeError as err:
        raise Unreachable(
            f"cannot reach Temporal at {address} (namespace {namespace}{', with TLS' if tls or security.api_key else ''}): "
            f"start one with `orderops server`, or point --address / TEMPORAL_ADDRESS at a running cluster"
        ) from err
