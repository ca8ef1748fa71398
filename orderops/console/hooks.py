"""`POST /hooks/<source>`: events from the payment provider, the couriers, the scanners and the returns desk.

Each source has a secret of its own and signs every request as payment providers do: HMAC-SHA256 over
`<timestamp>.<body>`, sent in `X-Orderops-Timestamp` (Unix seconds) and `X-Orderops-Signature`
(`sha256=<hex>`). A request unsigned, badly signed or outside the replay window gets 401 and changes
nothing; an event id seen before is answered again without being sent twice. The console then signs
the event for the order as `hook:<source>` (orderops/proof.py), so the order itself knows where it came from.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orderops import config
from orderops.client import OrderClient
from orderops.client.errors import ClientError
from orderops.client.remote import SendEvent
from orderops.console.errors import first_error
from orderops.limits import ORDER_ID_PATTERN
from orderops.messages import ExternalEvent
from orderops.people import People
from orderops.proof import Actor

# What each source may report: a courier cannot claim a payment, a scanner a delivery.
SOURCES: dict[str, frozenset[str]] = {
    "payments": frozenset({"paid"}),
    "courier": frozenset(
        {"in_transit", "out_for_delivery", "delivery_failed", "delivered", "lost", "delivery_refused", "delivery_rescheduled"}
    ),
    "scanner": frozenset({"scanned"}),
    "returns": frozenset({"return_received"}),
}
REPLAY_WINDOW_S = 300
MAX_BODY = 64 * 1024


class HookEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
    order_id: Annotated[str, Field(pattern=ORDER_ID_PATTERN)]
    event: Annotated[str, Field(max_length=64)]
    data: dict[str, Any] = Field(default_factory=dict)


def secret_of(source: str) -> bytes:
    """The source's secret: `ORDEROPS_HOOK_SECRET_<SOURCE>`, else a file under ORDEROPS_HOME/hooks made on first use."""
    from_env = os.environ.get(f"ORDEROPS_HOOK_SECRET_{source.upper()}")
    if from_env:
        return from_env.encode()
    path = secret_file(source)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip().encode()


def secret_file(source: str) -> Path:
    return config.home() / "hooks" / f"{source}.secret"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


async def _bounded_body(request: Request) -> bytes:
    """The body, read no further than MAX_BODY: a sender cannot make the console hold more."""
    too_big = HTTPException(413, f"the body is over {MAX_BODY} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise too_big
    return bytes(body)


def hooks_router(orders: OrderClient, people: People) -> APIRouter:
    router = APIRouter()

    @router.post("/hooks/{source}")
    async def hook(source: str, request: Request) -> dict:
        if source not in SOURCES:
            raise HTTPException(404, f"no event source {source[:40]!r} (sources: {', '.join(sorted(SOURCES))})")
        body = await _bounded_body(request)
        timestamp, sent = request.headers.get("x-orderops-timestamp", ""), request.headers.get("x-orderops-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > REPLAY_WINDOW_S:
            raise HTTPException(401, f"X-Orderops-Timestamp missing or more than {REPLAY_WINDOW_S} s from now")
        if not hmac.compare_digest(sent, signature(secret_of(source), timestamp, body)):
            raise HTTPException(401, "X-Orderops-Signature missing or not this source's signature of the timestamp and body")
        try:
            hooked = HookEvent.model_validate_json(body)
            event = ExternalEvent(name=hooked.event, data=SendEvent(name=hooked.event, data=hooked.data).data)
        except ValidationError as err:
            raise HTTPException(400, first_error(err)) from None
        if hooked.event not in SOURCES[source]:
            raise HTTPException(403, f"source {source} does not report {hooked.event!r} (it reports: {', '.join(sorted(SOURCES[source]))})")
        if not people.first_delivery(source, hooked.id):
            return {"event": hooked.id, "delivery": "duplicate"}
        actor = Actor(id=f"hook:{source}", name=f"event source {source}", roles=[], via=f"hook:{source}")
        try:
            delivery = await orders.acting_as(actor).send_event(hooked.order_id, event)
        except ClientError as err:
            people.forget_delivery(source, hooked.id)  # not taken: the source may send it again
            raise HTTPException(409, str(err)) from None
        return {"event": hooked.id, "delivery": delivery.outcome}

    return router
