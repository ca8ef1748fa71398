"""The payload codec: AES-256-GCM under the newest key, every key decrypting, nothing plain left in a history."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import History

from orderops.codec import ENCODING, KEY_ID, KEYS_ENV, CodecError, EncryptionCodec, Keyring, decrypted, new_key

PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps({"customer_name": "Li Wei", "phone": "13800138001"}).encode())


async def test_a_payload_is_sealed_under_the_newest_key_and_opened_after_a_rotation(tmp_path, monkeypatch):
    monkeypatch.delenv(KEYS_ENV, raising=False)
    first = Keyring.load(tmp_path)  # made on first use
    [key_file] = list(tmp_path.glob("*.key"))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    old = await EncryptionCodec(first).encode([PLAIN])
    assert old[0].metadata["encoding"] == ENCODING and old[0].metadata[KEY_ID] == first.current.encode()
    assert b"Li Wei" not in old[0].SerializeToString() and b"13800138001" not in old[0].SerializeToString()

    rotated = new_key(tmp_path)
    os.utime(tmp_path / f"{rotated}.key", ns=(2**62, 2**62))  # newest, whatever the file system's clock resolution
    codec = EncryptionCodec(Keyring.load(tmp_path))
    assert codec.keyring.current == rotated
    new = await codec.encode([PLAIN])
    assert new[0].metadata[KEY_ID] == rotated.encode()
    assert await codec.decode([*old, *new, PLAIN]) == [PLAIN, PLAIN, PLAIN]  # an unencrypted one passes through


async def test_a_codec_reads_a_key_rotated_by_another_process(tmp_path, monkeypatch):
    monkeypatch.delenv(KEYS_ENV, raising=False)
    running = EncryptionCodec(Keyring.load(tmp_path))
    rotated = new_key(tmp_path)
    os.utime(tmp_path / f"{rotated}.key", ns=(2**62, 2**62))
    sealed = await EncryptionCodec(Keyring.load(tmp_path)).encode([PLAIN])
    assert await running.decode(sealed) == [PLAIN]


async def test_an_unknown_key_or_an_altered_payload_is_one_line_without_the_data(tmp_path):
    codec = EncryptionCodec(Keyring.parse("a=" + base64.b64encode(b"k" * 32).decode()))
    [sealed] = await codec.encode([PLAIN])
    other = EncryptionCodec(Keyring.parse("b=" + base64.b64encode(b"j" * 32).decode()))
    with pytest.raises(CodecError, match="encrypted with key 'a', which is not among this machine's keys \\(b\\)"):
        await other.decode([sealed])
    altered = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(CodecError, match="does not decrypt") as refused:
        await codec.decode([altered])
    assert "Li Wei" not in str(refused.value)


@pytest.mark.parametrize(
    "listed, message",
    [
        ("nothing", "expected id=base64key"),
        ("a=%%%", "not base64"),
        ("a=" + base64.b64encode(b"short").decode(), "32 bytes, this one 5"),
        (",", "names no key"),
    ],
)
def test_bad_keys_in_the_environment_are_refused_in_one_line(listed, message):
    with pytest.raises(CodecError, match=message):
        Keyring.parse(listed)


async def test_a_whole_history_is_decrypted_in_place_failure_messages_included(tmp_path):
    codec = EncryptionCodec(Keyring.parse("a=" + base64.b64encode(b"k" * 32).decode()))
    history = History()
    started = history.events.add().workflow_execution_started_event_attributes
    started.input.payloads.append((await codec.encode([PLAIN]))[0])
    started.memo.fields["waiting:review"].CopyFrom((await codec.encode([PLAIN]))[0])
    failure = history.events.add().activity_task_failed_event_attributes.failure
    failure.message = "Encoded failure"
    attributes = Payload(metadata={"encoding": b"json/plain"}, data=b'{"message": "phone 13800138001 refused", "stack_trace": ""}')
    failure.encoded_attributes.CopyFrom((await codec.encode([attributes]))[0])
    assert b"13800138001" not in history.SerializeToString()

    decrypted(history, codec)
    assert list(history.events[0].workflow_execution_started_event_attributes.input.payloads) == [PLAIN]
    assert history.events[0].workflow_execution_started_event_attributes.memo.fields["waiting:review"] == PLAIN
    restored: Failure = history.events[1].activity_task_failed_event_attributes.failure
    assert restored.message == "phone 13800138001 refused" and not restored.HasField("encoded_attributes")


def test_the_embedded_servers_web_ui_asks_the_consoles_codec_server_unless_told_otherwise(tmp_path):
    from orderops import server
    from orderops.config import CODEC_ENDPOINT

    default = server.command(db=tmp_path / "t.db")
    assert default[default.index("--ui-codec-endpoint") + 1] == CODEC_ENDPOINT == "http://127.0.0.1:8280/codec"
    assert "--ui-codec-endpoint" not in server.command(db=tmp_path / "t.db", codec_endpoint="")


async def test_a_keyring_handed_on_through_the_environment_encrypts_and_decrypts_the_same(tmp_path, monkeypatch):
    monkeypatch.delenv(KEYS_ENV, raising=False)
    Keyring.load(tmp_path)
    newer = new_key(tmp_path)
    os.utime(tmp_path / f"{newer}.key", ns=(2**62, 2**62))
    here = Keyring.load(tmp_path)
    there = Keyring.parse(here.as_env()[KEYS_ENV])
    assert there.keys == here.keys and there.current == here.current == newer
    assert await EncryptionCodec(there).decode(await EncryptionCodec(here).encode([PLAIN])) == [PLAIN]
