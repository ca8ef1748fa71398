"""A fuzz of the console's JSON API from its own OpenAPI schema (schemathesis): no input gets a 5xx.

Cases are drawn for every operation, valid by the schema and deliberately invalid, and sent with a
valid token against the real server, so they reach the client API and the orders behind it.
"""

from __future__ import annotations

import warnings

import httpx
import schemathesis
from hypothesis.errors import NonInteractiveExampleWarning, Unsatisfiable
from schemathesis import GenerationMode

from orderops.client import OrderClient
from orderops.console.app import create_app
from orderops.console.inbox import catalog
from orderops.people import People
from orderops.proof import new_key
from tests.helpers import ROOT

CASES = 20  # per operation and mode: about 280 requests in all
SENT = ("method", "url", "params", "headers", "json", "content", "data")  # the API reads no cookies


async def test_no_request_to_the_api_gets_a_server_error(client, worker, tmp_path):
    people = People(tmp_path / "people.db")
    people.add("amy.chen", "Amy Chen", ["support_agent"], "correct horse battery")
    token = people.issue_token("amy.chen", "cli")
    app = create_app(OrderClient(client, signer=new_key(tmp_path / "keys")), people, catalog(ROOT / "process_defs"), secure_cookies=False)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    failures, sent = [], 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in GenerationMode:
                strategy = operation.as_strategy(generation_mode=mode)
                for _ in range(CASES):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", NonInteractiveExampleWarning)  # drawn one by one, to await each
                        try:
                            case = strategy.example()
                        except Unsatisfiable:
                            break  # nothing of this operation can be made invalid (GET /api/inbox takes no input)
                    request = {k: v for k, v in case.as_transport_kwargs(base_url="http://console").items() if k in SENT}
                    request["headers"] = {**(request.get("headers") or {}), "Authorization": f"Bearer {token}"}
                    try:
                        answer = await http.request(**request)
                        sent += 1
                    except (httpx.InvalidURL, UnicodeEncodeError):
                        continue  # no HTTP client can send it: it never reaches a server
                    if answer.status_code >= 500:
                        failures.append(f"{operation.method.upper()} {request['url']}: {answer.status_code} {answer.text[:200]}")
    assert sent > 150 and failures == []
