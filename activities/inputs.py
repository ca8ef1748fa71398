"""Activity arguments, validated with pydantic like every other boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from temporalio.exceptions import ApplicationError

from orderops.durations import Duration
from orderops.order import Order

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

    order: Order

    @field_validator("order", mode="before")
    @classmethod
    def _drop_derived(cls, value):
        # The workflow hands activities the order as CEL sees it, amount included.
        return {k: v for k, v in value.items() if k != "amount"} if isinstance(value, dict) else value


class NotifyArgs(OrderArgs):
    kind: str = Field(min_length=1)
    channel: str = "sms"
    templates: dict[str, str] = Field(default_factory=dict, description="Per kind, overriding the built-in texts")


class DeliveryArgs(OrderArgs):
    delivery: dict[str, Any] = Field(default_factory=dict)
    delivered_at: datetime = Field(description="When the sign-off event reached the order (workflow time)")


class Feedback(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: str = ""


class FeedbackArgs(OrderArgs):
    feedback: Feedback


class PromiseArgs(OrderArgs):
    policy: dict[str, Any]
    accepted_at: datetime


class OpsNoticeArgs(OrderArgs):
    kind: str = Field(min_length=1)
    message: str = Field(min_length=1)


class DelayArgs(OrderArgs):
    promise: dict[str, Any]
    policy: dict[str, Any]
    delivered_at: datetime


# -- fulfilment policies: `variables:` of a process definition, validated where they are used --


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StockPolicy(Policy):
    when_no_single_warehouse: Literal["split", "backorder"] = Field(
        "split", description="split: one shipment per warehouse; backorder: wait for stock at the nearest warehouse"
    )


class ReserveArgs(OrderArgs):
    policy: StockPolicy = StockPolicy()


class PickingPolicy(Policy):
    # Required, not defaulted: the definition's conditions read them as written.
    mode: Literal["order", "wave"]
    wave_window: Duration = Field(description="How long a wave collects orders of one warehouse before its pick walk")
    max_scan_mismatches: int = Field(ge=1, description="Mismatched scans before a person takes over")


class WaveArgs(OrderArgs):
    picking: PickingPolicy


class ScannedLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0, strict=True)


class ScanReport(BaseModel):
    """The `scanned` event's payload: what the picker's scanner read."""

    model_config = ConfigDict(extra="forbid")

    items: list[ScannedLine] = Field(min_length=1)
    picker: str = ""


class Scan(ScanReport):
    """The scan as the receive step stored it; `received_at` and `seq` (added by the workflow) key it."""

    model_config = ConfigDict(extra="ignore")

    received_at: str
    seq: int | None = None


class ScanArgs(OrderArgs):
    scan: Scan


class PackingRule(Policy):
    material: str = Field(min_length=1)
    labels: list[str] = []


class PackingRules(Policy):
    box_weight_kg: float = Field(0.2, ge=0)
    classes: dict[Literal["general", "fragile", "liquid", "bulky", "hazardous"], PackingRule] = {
        "general": PackingRule(material="carton"),
        "fragile": PackingRule(material="carton with foam and bubble wrap", labels=["FRAGILE"]),
        "liquid": PackingRule(material="sealed bag in carton", labels=["THIS SIDE UP", "LIQUID"]),
        "bulky": PackingRule(material="reinforced carton", labels=["HEAVY"]),
        "hazardous": PackingRule(material="UN-certified packaging", labels=["HAZARDOUS GOODS"]),
    }


class PackArgs(OrderArgs):
    packing: PackingRules = PackingRules()


class Carrier(Policy):
    name: str = Field(min_length=1)
    regions: list[str] = Field(min_length=1, description="Destination provinces served; '*' for all")
    services: dict[str, dict[str, Annotated[int, Field(ge=0)]]] = Field(
        min_length=1, description="Per service offered (standard, express...), days in transit per promise tier; '*' for the rest"
    )
    base_cost: float = Field(ge=0)
    cost_per_kg: float = Field(ge=0)
    max_weight_kg: float = Field(gt=0)
    hazardous: bool = False
    daily_capacity: int = Field(gt=0, description="Parcels the carrier collects per day")


class BookArgs(OrderArgs):
    carriers: list[Carrier] = Field(min_length=1)
    promise: dict[str, Any]


class TrackingArgs(OrderArgs):
    event: dict[str, Any] = Field(description="The tracking event as the receive step stored it: event, received_at, data")
    templates: dict[str, str] = {}


class RefundArgs(OrderArgs):
    reason: str = Field(min_length=1)


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
    request: ReturnRequest


class InspectedLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1)
    outcome: Literal["restock", "scrap"]


class Inspection(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[InspectedLine] = []
    inspector: str = ""


class InspectArgs(ReturnArgs):
    inspection: Inspection = Inspection()


class CloseReturnArgs(OrderArgs):
    # Without an outcome it runs as the compensation of the assessment: the return was cancelled.
    outcome: Literal["rejected", "expired", "cancelled"] = "cancelled"


class HandoffArgs(OrderArgs):
    """Carriers and promise let the handoff re-book a parcel whose address changed after booking."""

    carriers: list[Carrier] = []
    promise: dict[str, Any] | None = None


class DeliveryPolicy(Policy):
    max_attempts: int = Field(ge=1, description="Failed deliveries before a person decides")


class ReturnPolicy(Policy):
    auto_approve_up_to: float = Field(ge=0, description="Returns worth up to this are approved without a person")
