"""What encrypting every payload costs: the codec's encode and decode against pydantic's own conversion.

Times, in one run, the payloads an order sends most: its workflow input (the order and its whole
definition), an activity's input (the order), and a small signal, each converted to a payload by
pydantic's converter (the baseline: what every payload costs without the codec) and then through
the AES-256-GCM codec both ways.

    .venv/bin/python bench/codec.py
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter

from orderops.activity_names import ACTIVITY_NAMES
from orderops.codec import EncryptionCodec, Keyring
from orderops.messages import ExternalEvent, OrderInput
from orderops.order import Order
from orderops.process.lint import load_definition

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 2000


def order() -> Order:
    return Order.model_validate(
        {
            "order_id": "bench-1",
            "customer_id": "c-1",
            "customer_name": "Li Wei",
            "phone": "13800138001",
            "address": {
                "province": "Shanghai",
                "city": "Shanghai",
                "district": "Pudong",
                "street": "88 Century Avenue",
                "postcode": "200120",
            },
            "items": [{"sku": "TEA-001", "quantity": 2, "unit_price": "68.00"}, {"sku": "MUG-002", "quantity": 1, "unit_price": "45.50"}],
            "paid": True,
        }
    )


def per_call_us(work, rounds: int = ROUNDS) -> float:
    samples = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(rounds):
            work()
        samples.append((time.perf_counter() - began) / rounds * 1e6)
    return statistics.median(samples)


async def main() -> None:
    codec = EncryptionCodec(Keyring.parse("bench=" + base64.b64encode(b"k" * 32).decode()))
    converter = pydantic_data_converter.payload_converter
    snapshot = load_definition(ROOT / "process_defs" / "standard.yaml", ACTIVITY_NAMES)
    values = {
        "workflow input": OrderInput(order=order(), definition=snapshot),
        "activity input (the order)": {"order": order().model_dump(mode="json")},
        "signal (an event)": ExternalEvent(name="delivered", data={"signer": "Li Wei"}),
    }
    print(f"per payload, median of 5 x {ROUNDS:,} calls")
    print(f"{'payload':28} {'bytes':>7} {'to payload':>11} {'+ encrypt':>10} {'+ decrypt':>10} {'codec / conversion':>19}")
    for name, value in values.items():
        [payload] = converter.to_payloads([value])
        sealed = codec.encrypt(payload)
        convert = per_call_us(lambda v=value: converter.to_payloads([v]))
        encrypt = per_call_us(lambda p=payload: codec.encrypt(p))
        decrypt = per_call_us(lambda s=sealed: codec.decrypt(s))
        share = (encrypt + decrypt) / convert
        print(f"{name:28} {payload.ByteSize():7,} {convert:9.1f}us {encrypt:8.1f}us {decrypt:8.1f}us {share:18.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
