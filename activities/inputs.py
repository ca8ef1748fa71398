"""Activity arguments, validated with pydantic like every other boundary.

The settings they carry (stock policy, picking, packing, carriers, review rules) are
domain models of orderops/settings.py, which lint checks definitions against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from temporalio.exceptions import ApplicationError

from orderops.limits import MAX_STOCK, plain_line, plain_text
from orderops.order import Order, Sku
from orderops.settings import Carrier, PackingRules, PickingPolicy, ReviewRules, StockPolicy

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], payload: dict) -> M:
    """Bad arguments come from the definition, not from a passing fault: never retry them."""
    try:
        return model.model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApplicationError(f"invalid activity input at {where}: {first['msg']}", type="InvalidInput", non_retryable=True) from None


class OrderArgs(BaseModel):
    """Most steps need only the order; extra mapped values (like `result`) are ignored."""

    model_config = ConfigDict(extra="ignore")

    order: Order = Field(description="The order as the definition's conditions see it (`amount` included, and ignored)")

    @field_validator("order", mode="before")
    @classmethod
    def _drop_derived(cls, value):
        # The workflow hands activities the order as CEL sees it, amount included.
        return {k: v for k, v in value.items() if k != "amount"} if isinstance(value, dict) else value


class ReviewArgs(OrderArgs):
    rules: ReviewRules = Field(default_factory=ReviewRules, description="`variables.review_rules`; null runs every rule with its defaults")

    @field_validator("rules", mode="before")
    @classmethod
    def _no_rules(cls, value: Any) -> Any:
        return {} if value is None else value


class NotifyArgs(OrderArgs):
    kind: str = Field(min_length=1, description="Which message: accepted, shipped, rejected, ... (a template name)")
    channel: str = "sms"
    templates: dict[str, str] = Field(default_factory=dict, description="Per kind, overriding the built-in texts")


class DeliveryArgs(OrderArgs):
    delivery: dict[str, Any] = Field(default_factory=dict, description="The sign-off event's data; `signer` names who signed")
    delivered_at: datetime = Field(description="When the sign-off event reached the order (workflow time)")


# Who scanned or inspected, and what a customer wrote: text from outside, shown to people.
Person = Annotated[str, Field(max_length=200), AfterValidator(plain_line)]
Comment = Annotated[str, Field(max_length=2000), AfterValidator(plain_text)]


class Feedback(BaseModel):
    rating: int = Field(ge=1, le=5, strict=True)
    comment: Comment = ""


class FeedbackArgs(OrderArgs):
    feedback: Feedback = Field(description="The `feedback` event's data")


class PromiseArgs(OrderArgs):
    policy: dict[str, Any] = Field(description="The promise policy (process_defs/policies/), checked by the activity")
    accepted_at: datetime = Field(description="When the order was accepted (workflow time)")


class OpsNoticeArgs(OrderArgs):
    kind: str = Field(min_length=1, description="The notice's kind; one notice per order and kind")
    message: str = Field(min_length=1)


class DelayArgs(OrderArgs):
    promise: dict[str, Any] = Field(description="The promise compute_promise made")
    policy: dict[str, Any] = Field(description="The promise policy, whose `compensation` sets the coupon per service level")
    delivered_at: datetime


class ReserveArgs(OrderArgs):
    policy: StockPolicy = Field(StockPolicy(), description="`variables.stock_policy`")


class WaveArgs(OrderArgs):
    picking: PickingPolicy = Field(description="`variables.picking`; the wave window is read")


class ScannedLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: int = Field(gt=0, le=MAX_STOCK, strict=True)


class ScanReport(BaseModel):
    """The `scanned` event's payload: what the picker's scanner read."""

    model_config = ConfigDict(extra="forbid")

    items: list[ScannedLine] = Field(min_length=1)
    picker: Person = ""


class Scan(ScanReport):
    """The scan as the receive step stored it; `received_at` and `seq` (added by the workflow) key it."""

    model_config = ConfigDict(extra="ignore")

    received_at: str
    seq: int | None = None


class ScanArgs(OrderArgs):
    scan: Scan = Field(description="The `scanned` event as the receive step stored it")


class PackArgs(OrderArgs):
    packing: PackingRules = Field(PackingRules(), description="`variables.packing`")


class BookArgs(OrderArgs):
    carriers: list[Carrier] = Field(min_length=1, description="`variables.carriers`")
    promise: dict[str, Any] = Field(description="The order's promise: service_level, tier, deliver_by")


class TrackingArgs(OrderArgs):
    event: dict[str, Any] = Field(description="The tracking event as the receive step stored it: event, received_at, data")
    templates: dict[str, str] = Field({}, description="`variables.notifications`")


class RefundArgs(OrderArgs):
    reason: str = Field(min_length=1, description="Why; one refund per order and reason")


class ReturnRequest(BaseModel):
    """A customer's return, as support enters it (`orderops return`)."""

    model_config = ConfigDict(extra="forbid")

    original_order_id: str = Field(min_length=1)
    kind: Literal["refund", "exchange"]
    reason: Literal["damaged", "wrong_item", "not_as_described", "quality", "changed_mind"]
    note: str = ""

    @property
    def our_mistake(self) -> bool:
        """Counts against the order error rate (docs/domain.md: returns caused by mistakes)."""
        return self.reason in ("damaged", "wrong_item", "not_as_described")


class ReturnArgs(OrderArgs):
    request: ReturnRequest = Field(description="The return as support entered it")


class InspectedLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    outcome: Literal["restock", "scrap"]


class Inspection(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[InspectedLine] = []
    inspector: Person = ""


class InspectArgs(ReturnArgs):
    inspection: Inspection = Field(
        Inspection(), description="The `parcel_received` event: each SKU restocked or scrapped (restocked if not named)"
    )


class CloseReturnArgs(OrderArgs):
    # Without an outcome it runs as the compensation of the assessment: the return was cancelled.
    outcome: Literal["rejected", "expired", "cancelled"] = Field(
        "cancelled", description="rejected or expired; cancelled (the default) when it runs as the assessment's compensation"
    )


class HandoffArgs(OrderArgs):
    """Carriers and promise let the handoff re-book a parcel whose address changed after booking."""

    carriers: list[Carrier] = Field([], description="`variables.carriers`, to re-book")
    promise: dict[str, Any] | None = Field(None, description="The order's promise, to re-book")
