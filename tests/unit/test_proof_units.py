"""The proof's rules that need no server: its time window, and keys made, rotated and trusted."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from orderops.messages import ExternalEvent
from orderops.proof import Actor, Unproven, new_key, signer, trusted_keys, verify

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
PAY = Actor(id="svc-pay", name="payments", roles=[], via="hook:payments")
PAID = ExternalEvent(name="paid", data={"provider": "alipay"})


@pytest.mark.parametrize(
    ("signed_at", "taken"),
    [
        (NOW - timedelta(hours=23), True),
        (NOW + timedelta(minutes=4), True),
        (NOW - timedelta(days=2), False),
        (NOW + timedelta(minutes=6), False),
    ],
)
def test_a_signature_counts_for_a_day_and_allows_five_minutes_of_clock_skew(tmp_path, signed_at, taken):
    key = new_key(tmp_path)
    proof = key.sign("order-a", "event", PAID, PAY, signed_at)
    if taken:
        assert verify(proof, "order-a", "event", PAID, trusted_keys(tmp_path), NOW) == PAY
    else:
        with pytest.raises(Unproven, match="outside the day before its arrival"):
            verify(proof, "order-a", "event", PAID, trusted_keys(tmp_path), NOW)


def test_a_proof_binds_the_order_and_the_kind_of_message(tmp_path):
    key = new_key(tmp_path)
    proof = key.sign("order-a", "event", PAID, PAY, NOW)
    for workflow_id, message in (("order-b", "event"), ("order-a", "review")):
        with pytest.raises(Unproven, match="signature does not match"):
            verify(proof, workflow_id, message, PAID, trusted_keys(tmp_path), NOW)


def test_a_rotated_key_signs_from_then_on_and_the_old_one_stays_trusted(tmp_path):
    first = signer(tmp_path)  # made on first use
    assert (tmp_path / f"decisions-{first.key_id}.key").stat().st_mode & 0o077 == 0
    second = new_key(tmp_path)
    os.utime(tmp_path / f"decisions-{second.key_id}.key", ns=(2**62, 2**62))  # newer, whatever the clock's resolution
    assert signer(tmp_path).key_id == second.key_id
    assert set(trusted_keys(tmp_path)) == {first.key_id, second.key_id}
    old = first.sign("order-a", "event", PAID, PAY, NOW)
    assert verify(old, "order-a", "event", PAID, trusted_keys(tmp_path), NOW) == PAY
