"""Customer data encrypted before it reaches Temporal: a payload codec (AES-256-GCM) and its keys.

Every payload an orderops client, worker or replayer sends is encrypted: order inputs, activity
inputs and results, signals, updates, queries, memos, and (with the failure converter's encoded
attributes) failure messages. All of them, not only those holding customer data, because nearly all
do (the order travels in every activity's input and in the status query) and a payload left out by
mistake would leak; docs/security.md gives the cost. Search attributes cannot be encrypted and hold
none (orderops/search_attributes.py).

A payload keeps its key's id in its metadata, so a rotated key still decrypts what it encrypted:
the newest key encrypts, every key decrypts. Keys live outside the repository and outside
history: `ORDEROPS_CODEC_KEYS` (`id=base64,...`, the first encrypts) or the files
`ORDEROPS_HOME/codec-keys/<id>.key` (mode 0600; the newest encrypts), the first made on first use.
A payload without the encrypted encoding (an order from before the codec) passes through as it is.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from orderops import config

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
KEYS_ENV = "ORDEROPS_CODEC_KEYS"
NONCE_BYTES = 12


class CodecError(ValueError):
    """A key missing or malformed, or a payload that does not decrypt: one line, no payload in it."""


def key_dir() -> Path:
    return config.home() / "codec-keys"


@dataclasses.dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]  # id -> 32 bytes
    current: str  # the id that encrypts
    folder: Path | None = None  # where the keys were read, to read again after a rotation elsewhere

    @classmethod
    def load(cls, folder: Path | None = None) -> Keyring:
        """ORDEROPS_CODEC_KEYS when set, else the key files, the first made now when there is none."""
        listed = os.environ.get(KEYS_ENV)
        if listed:
            return cls.parse(listed)
        folder = folder or key_dir()
        files = sorted(folder.glob("*.key"), key=lambda p: p.stat().st_mtime_ns) if folder.exists() else []
        if not files:
            new_key(folder)
            files = sorted(folder.glob("*.key"))
        keys = {path.stem: _key(path.read_text().strip(), str(path)) for path in files}
        return cls(keys, files[-1].stem, folder)

    def as_env(self) -> dict[str, str]:
        """These keys as ORDEROPS_CODEC_KEYS (the one that encrypts first): how another process, a worker
        on another host or a container, is given the same keys."""
        ordered = [self.current, *(k for k in self.keys if k != self.current)]
        return {KEYS_ENV: ",".join(f"{k}={base64.b64encode(self.keys[k]).decode()}" for k in ordered)}

    @classmethod
    def parse(cls, listed: str) -> Keyring:
        keys: dict[str, bytes] = {}
        for entry in filter(None, (e.strip() for e in listed.split(","))):
            key_id, _, encoded = entry.partition("=")
            if not key_id or not encoded:
                raise CodecError(f"{KEYS_ENV}: expected id=base64key entries separated by commas")
            keys[key_id] = _key(encoded, f"{KEYS_ENV} key {key_id!r}")
        if not keys:
            raise CodecError(f"{KEYS_ENV} is set but names no key")
        return cls(keys, next(iter(keys)))


def _key(encoded: str, where: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise CodecError(f"{where}: not base64") from None
    if len(key) != 32:
        raise CodecError(f"{where}: an AES-256 key is 32 bytes, this one {len(key)}")
    return key


def new_key(folder: Path | None = None) -> str:
    """A new key file, which encrypts from now on (the older ones still decrypt); its id."""
    folder = folder or key_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = sorted(folder.glob("*.key"))
    key_id = f"k{len(existing) + 1}-{secrets.token_hex(4)}"
    descriptor = os.open(folder / f"{key_id}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(base64.b64encode(AESGCM.generate_key(bit_length=256)).decode() + "\n")
    return key_id


class EncryptionCodec(PayloadCodec):
    def __init__(self, keyring: Keyring):
        self._use(keyring)

    def _use(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.keyring.current].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self.keyring.current.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before the codec: plain, and read as it is
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        if key_id not in self._ciphers and self.keyring.folder is not None:
            # Rotated by another process since this one read the keys (a long-running worker or console).
            self._use(Keyring.load(self.keyring.folder))
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecError(
                f"a payload is encrypted with key {key_id!r}, which is not among this machine's keys ({', '.join(self._ciphers)})"
            )
        try:
            return Payload.FromString(cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], None))
        except InvalidTag:
            raise CodecError(f"a payload under key {key_id!r} does not decrypt: altered, or another key of that id") from None


def data_converter(keyring: Keyring | None = None) -> DataConverter:
    """The project's converter: pydantic's JSON, encrypted, failure messages included."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring or Keyring.load()),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def decrypted(message: Message, codec: EncryptionCodec) -> None:
    """Decrypt, in place, every payload in a protobuf message (a history, fetched or exported), and put
    back each failure's message and stack trace, which the failure converter moved into the payload."""
    for field, value in message.ListFields():
        kind = field.message_type
        if field.type != FieldDescriptor.TYPE_MESSAGE or kind is None:
            continue
        if kind.GetOptions().map_entry:
            items = list(value.values()) if kind.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE else []
        else:
            items = list(value) if field.is_repeated else [value]
        for item in items:
            if item.DESCRIPTOR.full_name == Payload.DESCRIPTOR.full_name:
                item.CopyFrom(codec.decrypt(item))
            else:
                decrypted(item, codec)
    if isinstance(message, Failure) and message.HasField("encoded_attributes"):
        attributes = json.loads(message.encoded_attributes.data or b"{}")
        message.message = str(attributes.get("message", message.message))
        message.stack_trace = str(attributes.get("stack_trace", ""))
        message.ClearField("encoded_attributes")


def plain(history: WorkflowHistory) -> WorkflowHistory:
    """The history with its payloads decrypted, in place, with this machine's keys (an export, a golden file)."""
    codec = default_codec()
    for event in history.events:
        decrypted(event, codec)
    return history


def default_codec() -> EncryptionCodec:
    return EncryptionCodec(Keyring.load())
