"""`POST /codec/decode` and `/codec/encode`: Temporal's remote codec protocol, for the Web UI and `temporal --codec-endpoint`.

The Web UI sends `{"payloads": [...]}` (payloads in protobuf's JSON form) from the reader's browser;
the answer is the same list decrypted (or encrypted) with the console's keys (orderops/codec.py).
Only a signed-in person whose role may read customer data gets an answer: the console's session
cookie (the UI's codec setting "Include cross-origin credentials") or `Authorization: Bearer
<token>` (the UI's "Pass access token", or the CLI). Everyone else gets 401 or 403, and the UI
shows the ciphertext. Cross-origin requests are allowed from the Web UI's origins only.
"""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from orderops.codec import CodecError, EncryptionCodec
from orderops.console.auth import signed_in
from orderops.people import People, Person

# Who may read a customer's name, phone and address: the people who talk to customers, and the auditors.
CUSTOMER_DATA_ROLES = frozenset({"support_agent", "support_supervisor", "auditor"})
MAX_BODY = 4 * 1024 * 1024
ALLOWED_HEADERS = "content-type, x-namespace, authorization"


def codec_router(people: People, codec: EncryptionCodec, ui_origins: frozenset[str]) -> APIRouter:
    router = APIRouter(prefix="/codec")

    def cors(request: Request, response: Response) -> Response:
        origin = request.headers.get("origin")
        if origin in ui_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Vary"] = "Origin"
        return response

    def reader(request: Request) -> Person:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        person = people.holder(token) if scheme.lower() == "bearer" and token else signed_in(request, people)
        if person is None:
            raise HTTPException(401, "sign in to the console (or send a token) to read customer data")
        if not set(person.roles) & CUSTOMER_DATA_ROLES:
            raise HTTPException(403, f"customer data is for the roles {', '.join(sorted(CUSTOMER_DATA_ROLES))}; {person.id} holds none")
        return person

    @router.options("/{operation}", include_in_schema=False)
    async def preflight(operation: Literal["decode", "encode"], request: Request) -> Response:
        response = cors(request, Response(status_code=204))
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    @router.post("/{operation}", include_in_schema=False)
    async def transform(operation: Literal["decode", "encode"], request: Request) -> Response:
        try:
            reader(request)
            body = await request.body()
            if len(body) > MAX_BODY:
                raise HTTPException(413, f"the body is over {MAX_BODY} bytes")
            try:
                sent = json_format.Parse(body or b"{}", Payloads(), ignore_unknown_fields=True)
            except json_format.ParseError as err:
                raise HTTPException(400, f"not a codec request ({{'payloads': [...]}}): {str(err).splitlines()[0][:200]}") from None
            try:
                done = await (codec.decode if operation == "decode" else codec.encode)(list(sent.payloads))
            except CodecError as err:
                raise HTTPException(400, str(err)) from None
            answer = json_format.MessageToJson(Payloads(payloads=done), indent=None)
            return cors(request, Response(answer, media_type="application/json"))
        except HTTPException as err:
            return cors(request, Response(f'{{"detail": {json.dumps(err.detail)}}}', err.status_code, media_type="application/json"))

    return router
