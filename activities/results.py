"""What each activity returns: the JSON the workflow stores and the definition's conditions (CEL) read.

The data converter serialises these models to exactly the JSON the activities returned as
dicts before (same keys, same values); `docs/activities.md` lists them. Strict, so a value of
the wrong JSON type (a float for an int) fails loudly instead of changing the wire. A key that
is sometimes absent, rather than null, is excluded when unset (`absent()`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def absent(description: str) -> Any:
    """A field left out of the JSON, not written as null, when it has no value."""
    return Field(None, description=description, exclude_if=lambda value: value is None)


# -- review ---------------------------------------------------------------------------------------


class Finding(Result):
    code: str = Field(description="The rule's reason code")
    reason: str = Field(description="The sentence for the support agent")


class ReviewResult(Result):
    anomalies: list[str] = Field(description="Reason codes of the rules that fired, in rule order")
    reasons: list[str] = Field(description="Their sentences, parallel to `anomalies`")
    findings: list[Finding] = Field(description="Code and sentence paired")


# -- stock ----------------------------------------------------------------------------------------


class BinLine(Result):
    sku: str
    bin: str
    quantity: int


class Shipment(Result):
    warehouse: str
    lines: list[BinLine]


class Reserved(Result):
    status: Literal["reserved"]
    round: int = Field(description="The fulfilment round the reservation belongs to")
    shipments: list[Shipment] = Field(description="One per warehouse the order ships from")
    split: bool = Field(description="More than one warehouse")
    repeated: bool = Field(description="The reservation was already held (a redelivery or a re-reservation)")


class Shortfall(Result):
    sku: str
    warehouse: str
    missing: int


class Short(Result):
    status: Literal["short"]
    short: list[Shortfall] = Field(description="What the nearest warehouse lacks; a purchase requisition was raised for each")
    summary: str


class ReleasedLine(Result):
    sku: str
    warehouse: str
    bin: str
    quantity: int


class Released(Result):
    released: list[ReleasedLine] = Field(description="The lines released by this call; empty on a repeat")


class RoundOpened(Result):
    round: int = Field(description="The new fulfilment round")
    lost: list[str] = Field(description="Tracking numbers of the parcels marked lost")


class Cancelled(Result):
    cancelled: int = Field(description="How many rows this call cancelled; 0 on a repeat")


# -- picking --------------------------------------------------------------------------------------


class PickList(Result):
    warehouse: str
    wave_id: int | None = Field(description="The wave it belongs to; null when picked by order")
    lines: list[BinLine] = Field(description="In bin order")


class PickLists(Result):
    mode: Literal["order"]
    lists: list[PickList]


class WaveJoined(Result):
    mode: Literal["wave"]
    waves: list[int] = Field(description="One wave per warehouse the order ships from")
    release_at: str = Field(description="When the last of them closes (ISO 8601)")


class WalkStop(Result):
    bin: str
    sku: str
    quantity: int
    orders: list[str]


class Wave(Result):
    id: int
    warehouse: str
    orders: list[str]
    walk: list[WalkStop] = Field(description="The wave's one pick walk, in bin order")


class WaveReleased(Result):
    mode: Literal["wave"]
    waves: list[Wave]
    lists: list[PickList] = Field(description="The order's own pick lists")


class ScanVerified(Result):
    matched: bool
    differences: list[str] = Field(description="`SKU: expected N, scanned M` per SKU that differs")
    scans: int = Field(description="Scans of this round so far")
    mismatches: int = Field(description="Mismatched scans of this round so far")


# -- packing and carriers -------------------------------------------------------------------------


class Parcel(Result):
    warehouse: str
    tracking_no: str
    weight_kg: float
    hazardous: bool
    material: str
    labels: list[str]
    label_path: str = Field(description="The ZPL label file")


class Packed(Result):
    parcels: list[Parcel] = Field(description="One per warehouse")


class Voided(Result):
    voided: int = Field(description="Waybills voided by this call")


class Booking(Result):
    """A carrier_bookings row, as the store has it."""

    order_id: str
    round: int
    warehouse: str
    carrier: str
    service: str
    tracking_no: str
    day: str = Field(description="The pickup day its carrier's daily capacity counts against")
    cost: float
    state: str
    courier: str | None
    handed_over_at: str | None
    booked_at: str
    # Kept with the booking (store layout 5), so a redelivery answers as the first delivery did.
    meets_promise: bool | None = absent("The carrier delivers by the promise; absent for a booking made before store layout 5")
    refused: list[str] | None = absent("Carriers passed over, each with why; absent for a booking made before store layout 5")


class Booked(Result):
    bookings: list[Booking] = Field(description="One per parcel")


class Handover(Result):
    warehouse: str
    carrier: str
    tracking_no: str
    courier: str
    handed_over_at: str
    cost: float


class HandedOver(Result):
    parcels: list[Handover]
    carrier: str = Field(description="The first parcel's carrier")
    tracking_no: str = Field(description="The first parcel's tracking number")


class Intercepted(Result):
    intercepted: list[str] = Field(description="Tracking numbers an intercept was asked for by this call")


class Lost(Result):
    lost: list[str] = Field(description="Tracking numbers of the round's parcels, now lost")


class TrackingRecorded(Result):
    status: str = Field(description="The tracking event: in_transit, out_for_delivery, delivery_failed, delivered or lost")
    failed_attempts: int = Field(description="Failed deliveries in this round so far")
    parcels_out: int = Field(description="Parcels of this round still with the carrier")


# -- customer, promise, returns -------------------------------------------------------------------


class CustomerNotified(Result):
    kind: str
    message: str


class DeliveryRecorded(Result):
    signed_by: str
    delivered_at: str = Field(description="The first recorded sign-off time (ISO 8601)")


class Refunded(Result):
    amount: str = Field(description="Two decimals, as text")
    reason: str


class OpsNotified(Result):
    kind: str


class NotGranted(Result):
    granted: Literal[False]
    reason: str


class Granted(Result):
    granted: Literal[True]
    amount: str = Field(description="The coupon's amount, as text")
    currency: str


class Assessed(Result):
    value: float = Field(description="The return's value")
    kind: str = Field(description="refund or exchange")
    our_mistake: bool = Field(description="The reason counts against the order error rate")


class ReturnLabel(Result):
    label_path: str = Field(description="The ZPL return label file")


class ReturnClosed(Result):
    state: str | None = Field(description="The return's state now; null if it was never assessed")


class InspectedReturnLine(Result):
    sku: str
    quantity: int
    outcome: Literal["restock", "scrap"]
    warehouse: str


class Inspected(Result):
    lines: list[InspectedReturnLine]
    restocked: int = Field(description="Units put back into stock")
