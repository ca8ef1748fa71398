"""Connecting to a secured cluster: mutual TLS and API keys, named as the `temporal` CLI names them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orderops.connect import Security, Unreachable
from tests.helpers import run_cli


def certificate(tmp_path, name: str) -> tuple[str, str]:
    """A self-signed certificate and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_a_client_certificate_its_key_and_the_servers_ca_make_the_sdks_tls_config(tmp_path):
    cert, key = certificate(tmp_path, "worker")
    ca, _ = certificate(tmp_path, "ca")
    config = Security(cert_path=cert, key_path=key, ca_path=ca, server_name="temporal.internal").tls_config()
    assert config is not None and not isinstance(config, bool)
    assert config.client_cert == Path(cert).read_bytes() and config.client_private_key == Path(key).read_bytes()
    assert config.server_root_ca_cert == Path(ca).read_bytes() and config.domain == "temporal.internal"
    assert Security(tls=True).tls_config() is True and Security().tls_config() is None  # None: an API key turns TLS on
    with pytest.raises(Unreachable, match="needs both --tls-cert-path and --tls-key-path"):
        Security(cert_path=cert).tls_config()


def test_the_options_and_the_environment_variables_are_the_temporal_clis(tmp_path, monkeypatch):
    cert, key = certificate(tmp_path, "worker")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", cert)
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", key)
    monkeypatch.setenv("TEMPORAL_API_KEY", "a-key")
    assert Security.from_env() == Security(cert_path=cert, key_path=key, api_key="a-key")
    missing = run_cli("--tls-cert-path", str(tmp_path / "none.pem"), "--tls-key-path", key, "list")
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        f"orderops: --tls-cert-path {tmp_path / 'none.pem'}: cannot read: No such file or directory",
    )


def test_tls_or_an_api_key_against_a_plain_server_is_one_line(address, worker):
    for flags in (["--tls"], ["--api-key", "not-for-this-server"]):
        refused = run_cli(*flags, "list", "--limit", "1", address=address)
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert refused.stderr.startswith(f"orderops: cannot reach Temporal at {address} (namespace default, with TLS)")
    plain = run_cli("list", "--limit", "1", address=address)
    assert plain.returncode == 0, plain.stderr
