"""Proof of who sent a message to an order: an Ed25519 signature by a key the order trusts.

Whoever authenticates people (the console, `orderops` with a login token, the demo as its own
service) signs each decision, event, cancellation and address change with the private key kept
under ORDEROPS_HOME/keys. An order is started with the public keys it trusts in its input, so the
workflow checks a message against nothing but its own history: replay reaches the same verdict, and
a key added or retired later does not change an old order's. A signature covers the order, the kind
of message, its whole payload, who sent it (id, name, roles, through what) and when; an order takes
each signature once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from orderops import config
from orderops.payloads import Refused

PROOF_VERSION = 1
# A Rust extension cannot be loaded twice in one process, and `cryptography` imports parts of itself
# lazily (its exceptions, when a signature fails): every workflow sandbox must pass it through.
SANDBOX_PASSTHROUGH = ("cryptography",)
# A signature is taken for a day after it was made: a signal queued while no worker runs still counts,
# a captured one does not work for ever. Five minutes ahead allow for the signer's clock.
PROOF_LIFETIME = timedelta(days=1)
CLOCK_SKEW = timedelta(minutes=5)
MAX_TRUSTED_KEYS = 8

KeyId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]


class Unproven(Refused):
    """A message without a proof the order accepts; its reason is one line."""


class Actor(BaseModel):
    """Who sent a message, as the signer authenticated them."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=64)
    name: str = Field(max_length=100)
    roles: list[Annotated[str, Field(max_length=64)]] = Field(max_length=16)
    via: str = Field(max_length=32, description="How they were authenticated: console, api, cli, service, hook:<source>")


class Proof(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_id: KeyId
    actor: Actor
    issued_at: datetime
    signature: str = Field(max_length=100)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def signed_bytes(workflow_id: str, message: str, payload: BaseModel, actor: Actor, issued_at: datetime) -> bytes:
    """The bytes a signature covers: the payload as JSON without its proof, with where it goes, who sent it and when."""
    document = {
        "v": PROOF_VERSION,
        "workflow_id": workflow_id,
        "message": message,
        "payload": payload.model_dump(mode="json", exclude={"proof"}),
        "actor": actor.model_dump(mode="json"),
        "issued_at": issued_at.isoformat(),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Signer:
    def __init__(self, private: Ed25519PrivateKey):
        self.private = private
        self.key_id = key_id(private.public_key())

    def sign(self, workflow_id: str, message: str, payload: BaseModel, actor: Actor, now: datetime) -> Proof:
        signature = self.private.sign(signed_bytes(workflow_id, message, payload, actor, now))
        return Proof(key_id=self.key_id, actor=actor, issued_at=now, signature=base64.b64encode(signature).decode())


def verify(proof: Proof | None, workflow_id: str, message: str, payload: BaseModel, trusted: dict[str, str], now: datetime) -> Actor:
    """Who sent `payload`, when `proof` shows it; Unproven otherwise. Pure: the workflow calls it on replay too."""
    if proof is None:
        raise Unproven(f"{message} carries no proof of who sent it; send it through the console or a signed-in orderops")
    public = trusted.get(proof.key_id)
    if public is None:
        raise Unproven(f"{message} is signed by key {proof.key_id}, which this order does not trust")
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public))
        key.verify(
            base64.b64decode(proof.signature, validate=True), signed_bytes(workflow_id, message, payload, proof.actor, proof.issued_at)
        )
    except (InvalidSignature, ValueError):
        raise Unproven(f"{message}'s signature does not match what it says (altered, or signed for another order)") from None
    if proof.issued_at.tzinfo is None or not now - PROOF_LIFETIME <= proof.issued_at <= now + CLOCK_SKEW:
        raise Unproven(f"{message} was signed at {proof.issued_at.isoformat()}, outside the day before its arrival")
    return proof.actor


def signature_digest(proof: Proof) -> str:
    """What an order keeps of each signature it took, to take none twice."""
    return hashlib.sha256(proof.signature.encode()).hexdigest()[:24]


# -- the keys, kept under ORDEROPS_HOME/keys ---------------------------------------------------------


def key_dir() -> Path:
    return config.home() / "keys"


def new_key(folder: Path | None = None) -> Signer:
    """A new signing key, written beside the others; the newest signs from now on, all of them stay trusted."""
    folder = folder or key_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = Ed25519PrivateKey.generate()
    signer = Signer(private)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    descriptor = os.open(folder / f"decisions-{signer.key_id}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    (folder / f"decisions-{signer.key_id}.pub").write_text(base64.b64encode(_raw(private.public_key())).decode() + "\n")
    return signer


def signer(folder: Path | None = None) -> Signer:
    """The newest signing key, made on first use (the embedded default needs nothing more)."""
    folder = folder or key_dir()
    keys = sorted(folder.glob("decisions-*.key"), key=lambda p: p.stat().st_mtime_ns) if folder.exists() else []
    if not keys:
        return new_key(folder)
    private = serialization.load_pem_private_key(keys[-1].read_bytes(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError(f"{keys[-1]} is not an Ed25519 private key")
    return Signer(private)


def trusted_keys(folder: Path | None = None) -> dict[str, str]:
    """The public keys a new order trusts: every key under the folder (the newest MAX_TRUSTED_KEYS), by id."""
    folder = folder or key_dir()
    if not folder.exists() or not any(folder.glob("decisions-*.pub")):
        signer(folder)
    found = sorted(folder.glob("decisions-*.pub"), key=lambda p: p.stat().st_mtime_ns)[-MAX_TRUSTED_KEYS:]
    return {p.stem.removeprefix("decisions-"): p.read_text().strip() for p in found}
