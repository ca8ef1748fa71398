"""The console's JSON API from the caller's side: the bodies it takes, and the client the CLI decides through.

The command line holds no signing key. `orderops login` trades a person's password for a token,
kept in ORDEROPS_HOME/credentials.json (mode 0600); the deciding commands send their request with
it to the console, which signs it for that person (orderops/proof.py), so the order checks the
person's roles and claims itself. A service account sets ORDEROPS_TOKEN (and ORDEROPS_CONSOLE)
instead. The bodies here are the API's own (orderops/console/api.py): one model on both sides.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator

from activities.inputs import Feedback, Inspection, ScanReport
from orderops import config
from orderops.client.errors import ClientError
from orderops.limits import ORDER_ID_PATTERN
from orderops.messages import AddressChangeReceipt, CancelReceipt, DeliverableAddress, Label, Name, Reason, ReviewReceipt
from orderops.order import OrderEdit, OrderItem
from orderops.people import MAX_PASSWORD, Person

DEFAULT_CONSOLE = f"http://127.0.0.1:{config.CONSOLE_PORT}"
OrderId = Annotated[str, Field(pattern=ORDER_ID_PATTERN)]
R = TypeVar("R")

# Payloads the standard processes read, checked at the door: a bad one would be dropped by its step.
EVENT_PAYLOADS: dict[str, type[BaseModel]] = {"feedback": Feedback, "scanned": ScanReport, "return_received": Inspection}


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: str = Field(max_length=64)
    password: str = Field(max_length=MAX_PASSWORD)


class Token(BaseModel):
    token: str
    person: Person
    expires_in_s: int


class Decide(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: Label | None = Field(None, description="The user task; needed only when several of the caller's are open")
    decision: Name
    reason: Reason = ""
    changes: OrderEdit | None = Field(None, description="With the edit outcome: the corrected order fields")


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: Label


class SendEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    data: dict = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _documented_payload(cls, data: dict, info: ValidationInfo) -> dict:
        model = EVENT_PAYLOADS.get(info.data.get("name", ""))
        if model is not None:
            try:
                model.model_validate(data)
            except ValidationError as err:
                first = err.errors()[0]
                raise ValueError(f"{'.'.join(map(str, first['loc'])) or 'the data'}: {first['msg']}") from None
        return data


class Delivered(BaseModel):
    event: str
    outcome: Literal["waiting", "kept", "queued"]


class Cancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Name


class MoveDelivery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: DeliverableAddress
    reason: Reason = ""


class Merge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: OrderId
    reason: Reason = ""


class Login(BaseModel):
    """What `orderops login` keeps: which console, whose token, until when."""

    console: str
    token: str
    person_id: str
    expires_at: datetime


def credentials_file() -> Path:
    return config.home() / "credentials.json"


def saved_login() -> Login | None:
    try:
        return Login.model_validate_json(credentials_file().read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None


def console_url(option: str | None) -> str:
    """The console to talk to: the option, ORDEROPS_CONSOLE, the one `orderops login` signed in to, or the local default."""
    login = saved_login()
    return (option or os.environ.get("ORDEROPS_CONSOLE") or (login.console if login else DEFAULT_CONSOLE)).rstrip("/")


class ConsoleClient:
    """The console's API for one caller: `orderops login`'s token, or a service account's ORDEROPS_TOKEN."""

    def __init__(self, url: str, token: str | None = None):
        self.url, self.token = url, token

    @classmethod
    def signed_in(cls, url_option: str | None) -> ConsoleClient:
        url = console_url(url_option)
        token = os.environ.get("ORDEROPS_TOKEN")
        if not token:
            login = saved_login()
            if login is None or login.console.rstrip("/") != url:
                raise ClientError(f"not signed in to the console at {url}: run `orderops login` (or set ORDEROPS_TOKEN)")
            if login.expires_at <= datetime.now(UTC):
                raise ClientError(f"your sign-in to {url} as {login.person_id} has expired: run `orderops login` again")
            token = login.token
        return cls(url, token)

    async def _call(self, method: str, path: str, body: BaseModel | None, answer: type[R]) -> R:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        content = body.model_dump_json(exclude_none=True) if body is not None else None
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
                response = await http.request(
                    method, path, content=content, headers={**headers, "Content-Type": "application/json"} if content else headers
                )
        except httpx.HTTPError as err:
            raise ClientError(f"cannot reach the console at {self.url} ({type(err).__name__}): is `orderops console` running?") from None
        if response.status_code == 401 and self.token:
            raise ClientError(f"the console at {self.url} refused the token ({_detail(response)}): run `orderops login` again")
        if response.status_code >= 400:
            raise ClientError(_detail(response))
        if answer is type(None):
            return None  # type: ignore[return-value]
        return TypeAdapter(answer).validate_json(response.content)

    async def login(self, credentials: Credentials) -> Token:
        return await self._call("POST", "/api/tokens", credentials, Token)

    async def logout(self) -> None:
        await self._call("DELETE", "/api/tokens", None, type(None))

    async def review(self, order_id: str, decide: Decide) -> ReviewReceipt:
        return await self._call("POST", f"/api/orders/{order_id}/review", decide, ReviewReceipt)

    async def send_event(self, order_id: str, event: SendEvent) -> Delivered:
        return await self._call("POST", f"/api/orders/{order_id}/events", event, Delivered)

    async def cancel(self, order_id: str, cancel: Cancel) -> CancelReceipt:
        return await self._call("POST", f"/api/orders/{order_id}/cancel", cancel, CancelReceipt)

    async def change_address(self, order_id: str, move: MoveDelivery) -> AddressChangeReceipt:
        return await self._call("POST", f"/api/orders/{order_id}/address", move, AddressChangeReceipt)

    async def merge(self, order_id: str, merge: Merge) -> list[OrderItem]:
        return await self._call("POST", f"/api/orders/{order_id}/merge", merge, list[OrderItem])


def _detail(response: httpx.Response) -> str:
    """The API's one-line reason (FastAPI's `detail`), whatever shape it came in."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # a body the API's schema refused
        first = detail[0]
        detail = f"{'.'.join(str(p) for p in first.get('loc', [])[1:]) or 'body'}: {first.get('msg')}"
    return str(detail) if detail else f"the console answered {response.status_code} {response.reason_phrase}"


def save_login(url: str, token: Token) -> Login:
    login = Login(
        console=url, token=token.token, person_id=token.person.id, expires_at=datetime.now(UTC) + timedelta(seconds=token.expires_in_s)
    )
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # made anew, so it is 0600 from its first byte
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(json.dumps(login.model_dump(mode="json"), indent=2) + "\n")
    return login
