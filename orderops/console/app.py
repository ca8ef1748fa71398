"""The console's pages: sign in, the inbox of what waits for you, an order's task page, a decision.

Pages are rendered on the server (Jinja2, autoescaped); forms post back and the answer is the page
again with the result or the one-line reason it was refused. Decisions go through the client API,
signed for the signed-in person (orderops/proof.py): the order, not the page, checks who may decide.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, Form, HTTPException, Query, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import StringConstraints, ValidationError
from rich.console import Console

from orderops import config
from orderops.client import OrderClient, OrderQuery
from orderops.client.api import OrderSummary
from orderops.client.errors import ClientError
from orderops.codec import CodecError, EncryptionCodec, default_codec
from orderops.console.api import api_router
from orderops.console.auth import SESSION_COOKIE, SIGNIN_COOKIE, check_csrf, csrf_token, session_token, signed_in, signin_seed
from orderops.console.codec import codec_router
from orderops.console.errors import first_error
from orderops.console.hooks import hooks_router
from orderops.console.inbox import Catalog, Filters, inbox
from orderops.history.diagram import order_diagram
from orderops.history.show import print_timeline
from orderops.history.timeline import HistoryError, Timeline, build_timeline
from orderops.limits import ORDER_ID_PATTERN, whole_number
from orderops.messages import ReviewDecision
from orderops.order import OrderEdit, mask_name, mask_phone
from orderops.people import People, Person, SignInRefused
from orderops.process.render import RenderError, render
from orderops.report import build, to_html

# Who may read the KPI report: the roles that answer for the figures, and the auditors who check them.
REPORT_ROLES = frozenset({"ops", "auditor", "support_supervisor", "supervisor"})
AT_RISK_SHOWN = 200  # of each kind, breached first
# The Temporal Web UI of `orderops server`, whose pages ask /codec to decode.
UI_ORIGINS = frozenset({f"http://localhost:{config.UI_PORT}", f"http://127.0.0.1:{config.UI_PORT}"})
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
Text = Annotated[str, Form(max_length=2000)]
MAX_ITEM_ROWS = 100
Rows = Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Form(max_length=MAX_ITEM_ROWS)]


def _item_rows(skus: list[str], quantities: list[str], prices: list[str]) -> list[dict]:
    """The edit form's item lines as OrderItem data: a blank SKU is no line, quantity 0 removes one."""
    if not len(skus) == len(quantities) == len(prices):
        raise ValueError("the item lines came incomplete; reload the page and try again")
    lines = []
    for number, (sku, quantity, price) in enumerate(zip(skus, quantities, prices, strict=True), start=1):
        if not sku.strip():
            continue
        count = whole_number(quantity.strip())
        if count is None:
            raise ValueError(f"item line {number}: quantity {quantity[:20]!r} is not a whole number")
        if count:
            lines.append({"sku": sku.strip(), "quantity": count, "unit_price": price.strip()})
    return lines


async def _svg(draw: Callable[[], bytes]) -> Response:
    """Graphviz runs as a process of its own: off the event loop, and a 503 in one line where it is missing."""
    try:
        return Response(await asyncio.to_thread(draw), media_type="image/svg+xml")
    except RenderError as err:
        return Response(str(err).replace("--format svg", "the diagram"), status_code=503, media_type="text/plain")


def create_app(
    orders: OrderClient, people: People, served: Catalog, secure_cookies: bool = True, ui_origins: frozenset[str] = UI_ORIGINS
) -> FastAPI:
    app = FastAPI(title="orderops console", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.include_router(hooks_router(orders, people))
    app.include_router(api_router(orders, people, served.tasks))
    codec = orders.temporal.data_converter.payload_codec
    app.include_router(codec_router(people, codec if isinstance(codec, EncryptionCodec) else default_codec(), ui_origins))
    TEMPLATES.env.filters.update(mask_phone=mask_phone, mask_name=mask_name)

    @app.exception_handler(RequestValidationError)
    async def refused_request(request: Request, err: RequestValidationError) -> Response:
        """The API answers with FastAPI's 422 detail; a page or a form with the first field's one line."""
        if request.url.path.startswith(("/api/", "/hooks/")):
            return await request_validation_exception_handler(request, err)
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "request"
        return PlainTextResponse(f"{where}: {first['msg']} (go back and try again)", status_code=400)

    def page(request: Request, template: str, person: Person | None, status_code: int = 200, **context) -> HTMLResponse:
        csrf = csrf_token(session_token(request) or "") if person else None
        return TEMPLATES.TemplateResponse(request, template, {"person": person, "csrf": csrf, **context}, status_code=status_code)

    def require(request: Request) -> Person:
        person = signed_in(request, people)
        if person is None:
            raise HTTPException(303, headers={"Location": "/signin"})
        return person

    def require_reader(request: Request, what: str) -> Person:
        """The signed-in person, when they hold a role that reads the figures and the audit."""
        person = require(request)
        if not set(person.roles) & REPORT_ROLES:
            raise HTTPException(403, f"{what} for the roles {', '.join(sorted(REPORT_ROLES))}")
        return person

    def cookie(response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure_cookies)

    @app.get("/signin", response_class=HTMLResponse, include_in_schema=False)
    async def signin_form(request: Request) -> HTMLResponse:
        seed = signin_seed(request)
        response = page(request, "signin.html", None, signin_csrf=csrf_token(seed))
        cookie(response, SIGNIN_COOKIE, seed, 3600)
        return response

    @app.post("/signin", include_in_schema=False)
    async def signin(
        request: Request, person_id: Annotated[str, Form(max_length=64)], password: Text, csrf: Annotated[str, Form(max_length=64)]
    ) -> Response:
        seed = request.cookies.get(SIGNIN_COOKIE)
        check_csrf(csrf, seed)
        try:
            person = people.authenticate(person_id, password)
        except SignInRefused as err:
            return page(request, "signin.html", None, 401, signin_csrf=csrf_token(seed or ""), error=str(err), person_id=person_id)
        response = RedirectResponse("/", status_code=303)
        cookie(response, SESSION_COOKIE, people.issue_token(person.id, "session"), 12 * 3600)
        response.delete_cookie(SIGNIN_COOKIE)
        return response

    @app.post("/signout", include_in_schema=False)
    async def signout(request: Request, csrf: Annotated[str, Form(max_length=64)]) -> Response:
        token = session_token(request)
        check_csrf(csrf, token)
        if token:
            people.revoke(token)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def inbox_page(request: Request, filters: Annotated[Filters, Query()]) -> HTMLResponse:
        person = require(request)
        tasks = sorted({(t.process, t.node) for t in served.tasks.values() if person.holds(t.role)})
        try:
            waiting, following = await inbox(orders, served.tasks, person, filters)
        except ClientError as err:
            return page(request, "inbox.html", person, 400, waiting=[], filters=filters, tasks=tasks, error=str(err))
        return page(request, "inbox.html", person, waiting=waiting, filters=filters, tasks=tasks, next_page=filters.next(following))

    async def order_page(request: Request, person: Person, order_id: str, status_code: int = 200, **context) -> HTMLResponse:
        if not re.fullmatch(ORDER_ID_PATTERN, order_id):
            raise HTTPException(404, "no such order")
        try:
            view = await orders.status(order_id)
        except ClientError as err:
            raise HTTPException(404, str(err)) from None
        mine = [t for t in view.pending_user_tasks if person.holds(t.role)]
        return page(request, "order.html", person, status_code, view=view, mine=mine, **context)

    @app.get("/report", response_class=HTMLResponse, include_in_schema=False)
    async def report(request: Request) -> HTMLResponse:
        """The KPI report of the last 30 days (`orderops report --html`), for ops, supervisors and auditors."""
        require_reader(request, "the KPI report is")
        until = datetime.now(UTC)
        since = until - timedelta(days=30)
        query = OrderQuery().running(False).where("CloseTime", since, ">=").where("CloseTime", until, "<")
        return HTMLResponse(to_html(build(await orders.facts(query), since, until)))

    @app.get("/at-risk", response_class=HTMLResponse, include_in_schema=False)
    async def at_risk(request: Request) -> HTMLResponse:
        """Running orders at risk of a deadline or past one, for the same roles as the report."""
        person = require_reader(request, "orders at risk are")
        found: dict[str, OrderSummary] = {}
        for flag in ("Breached", "AtRisk"):
            async for summary in orders.listing(OrderQuery().running().where(flag, True), limit=AT_RISK_SHOWN):
                found.setdefault(summary.order_id, summary)
        return page(request, "at_risk.html", person, orders_at_risk=list(found.values()))

    async def timeline_of(order_id: str) -> Timeline:
        if not re.fullmatch(ORDER_ID_PATTERN, order_id):
            raise HTTPException(404, "no such order")
        try:
            return build_timeline(await orders.history(order_id))
        except (ClientError, HistoryError, CodecError) as err:
            raise HTTPException(404, str(err)) from None

    @app.get("/orders/{order_id}/audit", response_class=HTMLResponse, include_in_schema=False)
    async def audit(request: Request, order_id: str) -> HTMLResponse:
        """The order's timeline from its history, as `orderops audit` prints it: read-only, for auditors and ops."""
        person = require_reader(request, "audit timelines are")
        timeline = await timeline_of(order_id)
        recorder = Console(record=True, width=160, file=io.StringIO(), color_system="truecolor")
        print_timeline(recorder, timeline)
        # rich escapes the text it exports; the page embeds its <pre> as it is.
        shown = recorder.export_html(inline_styles=True, code_format='<pre class="audit">{code}</pre>')
        return page(request, "audit.html", person, order_id=order_id, timeline_html=Markup(shown))

    @app.get("/orders/{order_id}/diagram.svg", include_in_schema=False)
    async def order_diagram_svg(request: Request, order_id: str) -> Response:
        """The definition the order ran under, its visited steps green and where it stands yellow."""
        require(request)
        timeline = await timeline_of(order_id)
        return await _svg(lambda: order_diagram(timeline, "svg"))

    @app.get("/definitions", response_class=HTMLResponse, include_in_schema=False)
    async def definitions_page(request: Request) -> HTMLResponse:
        person = require(request)
        return page(request, "definitions.html", person, definitions=list(served.definitions.values()))

    @app.get("/definitions/{process_id}.svg", include_in_schema=False)
    async def definition_svg(request: Request, process_id: str) -> Response:
        require(request)
        definition = served.definitions.get(process_id)
        if definition is None:
            raise HTTPException(404, f"no definition {process_id[:40]!r} (definitions: {', '.join(served.definitions)})")
        return await _svg(lambda: render(definition, "svg"))

    @app.get("/orders/{order_id}", response_class=HTMLResponse, include_in_schema=False)
    async def order(request: Request, order_id: str) -> HTMLResponse:
        return await order_page(request, require(request), order_id)

    @app.post("/orders/{order_id}/decide", response_class=HTMLResponse, include_in_schema=False)
    async def decide(
        request: Request,
        order_id: str,
        node: Annotated[str, Form(max_length=200)],
        decision: Annotated[str, Form(max_length=200)],
        csrf: Annotated[str, Form(max_length=64)],
        reason: Text = "",
    ) -> HTMLResponse:
        person = require(request)
        check_csrf(csrf, session_token(request))
        return await _decide(request, person, order_id, node, decision, reason, None)

    async def _decide(
        request: Request, person: Person, order_id: str, node: str, decision: str, reason: str, changes: OrderEdit | None
    ) -> HTMLResponse:
        actor = person.actor("console")
        try:
            task = next(t for t in (await orders.status(order_id)).pending_user_tasks if t.node == node)
            choice = ReviewDecision(decision=decision, agent=person.id, role=task.role, reason=reason, node=node, changes=changes)
            receipt = await orders.acting_as(actor).decide(order_id, choice)
        except StopIteration:
            return await order_page(request, person, order_id, 409, error=f"order {order_id} no longer waits at {node}")
        except ValidationError as err:
            return await order_page(request, person, order_id, 400, error=first_error(err))
        except ClientError as err:
            return await order_page(request, person, order_id, 409, error=str(err))
        done = f"{receipt.decision} taken at {receipt.node}: the order goes on to {receipt.next}"
        return await order_page(request, person, order_id, done=done)

    @app.post("/orders/{order_id}/edit", response_class=HTMLResponse, include_in_schema=False)
    async def edit(
        request: Request,
        order_id: str,
        node: Annotated[str, Form(max_length=200)],
        csrf: Annotated[str, Form(max_length=64)],
        reason: Text = "",
        phone: Text = "",
        province: Text = "",
        city: Text = "",
        district: Text = "",
        street: Text = "",
        postcode: Text = "",
        sku: Rows = [],  # noqa: B006 (FastAPI reads the default, never mutates it)
        quantity: Rows = [],  # noqa: B006
        unit_price: Rows = [],  # noqa: B006
    ) -> HTMLResponse:
        """The edit outcome: the fields filled in replace the order's, checked by the same models as `orderops review --changes`."""
        person = require(request)
        check_csrf(csrf, session_token(request))
        address = {"province": province, "city": city, "district": district, "street": street, "postcode": postcode}
        changes: dict[str, object] = {"phone": phone} if phone else {}
        if any(address.values()):
            changes["address"] = address
        try:
            items = _item_rows(sku, quantity, unit_price)
            current = (await orders.status(order_id)).order
        except ValueError as err:
            return await order_page(request, person, order_id, 400, error=str(err))
        except ClientError as err:
            raise HTTPException(404, str(err)) from None
        if sku and current is not None and items != [i.model_dump(mode="json") for i in current.items]:
            changes["items"] = items
        if not changes:
            return await order_page(request, person, order_id, 400, error="change the phone, the address or an item line")
        try:
            edited = OrderEdit.model_validate(changes)
        except ValidationError as err:
            return await order_page(request, person, order_id, 400, error=first_error(err))
        return await _decide(request, person, order_id, node, "edit", reason, edited)

    @app.post("/orders/{order_id}/claim", response_class=HTMLResponse, include_in_schema=False)
    async def claim(
        request: Request,
        order_id: str,
        node: Annotated[str, Form(max_length=200)],
        action: Annotated[Literal["claim", "release"], Form()],
        csrf: Annotated[str, Form(max_length=64)],
    ) -> HTMLResponse:
        person = require(request)
        check_csrf(csrf, session_token(request))
        actor = person.actor("console")
        try:
            task = next(t for t in (await orders.status(order_id)).pending_user_tasks if t.node == node)
            acting = orders.acting_as(actor)
            receipt = await (acting.claim if action == "claim" else acting.release)(order_id, node, task.role)
        except StopIteration:
            return await order_page(request, person, order_id, 409, error=f"order {order_id} no longer waits at {node}")
        except ClientError as err:
            return await order_page(request, person, order_id, 409, error=str(err))
        done = f"you hold {node} until {receipt.until:%H:%M UTC}" if receipt.until else f"{node} released"
        return await order_page(request, person, order_id, done=done)

    return app
