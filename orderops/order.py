"""The order as it enters the system: validated once, here, for every entry point."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from orderops.limits import MAX_QUANTITY, ORDER_ID_PATTERN, plain_line, plain_text

Text = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(plain_line)]
OptionalText = Annotated[str, Field(max_length=500), AfterValidator(plain_line)]
Postcode = Annotated[str, Field(max_length=16), AfterValidator(plain_line)]
# Marketplaces export a street over several lines, as the customer typed it.
Sku = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(plain_line)]
Street = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(plain_text)]


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    province: Text
    city: Text
    district: OptionalText = ""
    street: Street
    postcode: Postcode = ""

    def one_line(self) -> str:
        return " ".join(part for part in (self.province, self.city, self.district, self.street, self.postcode) if part)


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: int = Field(gt=0, le=MAX_QUANTITY, strict=True)
    unit_price: Decimal = Field(ge=0, max_digits=12, decimal_places=2)


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: Annotated[str, Field(pattern=ORDER_ID_PATTERN)]
    customer_id: Text
    customer_name: Text
    phone: Text
    address: Address
    items: list[OrderItem] = Field(min_length=1)
    channel: Literal["web", "app", "mini_program", "phone", "fax", "store", "taobao", "jd"] = "web"
    order_type: Literal["normal", "promotion", "urgent"] = "normal"
    service_level: Annotated[str, Field(pattern=r"^[a-z][a-z_]*$")] = Field("standard", description="e.g. standard, express, same_day")
    customer_tier: Annotated[str, Field(pattern=r"^[a-z][a-z_]*$")] = Field("regular", description="e.g. regular, vip")
    # Strict: "yes" or 1 must not pass for a confirmed payment.
    paid: bool = Field(strict=True, description="Payment confirmed by the payment provider")

    @property
    def amount(self) -> Decimal:
        """Derived, never trusted from input."""
        return sum((item.unit_price * item.quantity for item in self.items), Decimal("0"))

    def as_variable(self) -> dict:
        """The order as CEL sees it: plain JSON types (amounts as floats)."""
        data = self.model_dump(mode="json")
        data["amount"] = float(self.amount)
        for item in data["items"]:
            item["unit_price"] = float(item["unit_price"])
        return data


class OrderEdit(BaseModel):
    """What a support agent may change with the `edit` outcome."""

    model_config = ConfigDict(extra="forbid")

    customer_name: Text | None = None
    phone: Text | None = None
    address: Address | None = None
    items: list[OrderItem] | None = Field(None, min_length=1)
    paid: bool | None = None

    def apply(self, order: Order) -> Order:
        changes = self.model_dump(exclude_none=True)
        return Order.model_validate({**order.model_dump(), **changes})


def tally(lines: Iterable[Any]) -> dict[str, int]:
    """SKU -> total quantity over lines, each with a `sku` and a `quantity`, as attributes (an order's items,
    scanned lines) or as keys (store rows, dicts); SKUs in the order first seen."""
    totals: dict[str, int] = {}
    for line in lines:
        sku, quantity = (line.sku, line.quantity) if hasattr(line, "sku") else (line["sku"], line["quantity"])
        totals[sku] = totals.get(sku, 0) + quantity
    return totals


def mask_phone(phone: str) -> str:
    """Enough to recognise a number on the phone, not to dial it: 138****5678."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def mask_name(name: str) -> str:
    return " ".join(part[:1] + "*" * (len(part) - 1) for part in name.split())


def workflow_id(order_id: str) -> str:
    return f"order-{order_id}"
