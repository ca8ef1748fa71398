"""The settings a process definition gives its warehouse steps under `variables:`: domain models.

Stock policy, picking, packing, carriers, delivery attempts, returns and the review
rules. They sit in the lowest layer because two sides read them: the activities
(activities/) validate what a step is handed, and the language's lint
(orderops/process/lint.py) checks a definition's `variables:` against the same
models before it ships. Nothing here imports activities/ or workflows/.
docs/warehouse.md and docs/review-rules.md describe each setting.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from orderops.durations import Duration

# -- fulfilment policies -------------------------------------------------------------------------


class Policy(BaseModel):
    """A block of settings: an unknown key is a typo, and an error."""

    model_config = ConfigDict(extra="forbid")


class StockPolicy(Policy):
    """`variables.stock_policy`."""

    when_no_single_warehouse: Literal["split", "backorder"] = Field(
        "split", description="split: one shipment per warehouse; backorder: wait for stock at the nearest warehouse"
    )


class PickingPolicy(Policy):
    """`variables.picking`."""

    # Required, not defaulted: the definition's conditions read them as written.
    mode: Literal["order", "wave"]
    wave_window: Duration = Field(description="How long a wave collects orders of one warehouse before its pick walk")
    max_scan_mismatches: int = Field(ge=1, description="Mismatched scans before a person takes over")


GoodsClass = Literal["general", "fragile", "liquid", "bulky", "hazardous"]


class PackingRule(Policy):
    """How one goods class is packed."""

    material: str = Field(min_length=1)
    labels: list[str] = []


class PackingRules(Policy):
    """`variables.packing`."""

    box_weight_kg: float = Field(0.2, ge=0)
    classes: dict[GoodsClass, PackingRule] = {
        "general": PackingRule(material="carton"),
        "fragile": PackingRule(material="carton with foam and bubble wrap", labels=["FRAGILE"]),
        "liquid": PackingRule(material="sealed bag in carton", labels=["THIS SIDE UP", "LIQUID"]),
        "bulky": PackingRule(material="reinforced carton", labels=["HEAVY"]),
        "hazardous": PackingRule(material="UN-certified packaging", labels=["HAZARDOUS GOODS"]),
    }


class Carrier(Policy):
    """One entry of `variables.carriers`."""

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


class DeliveryPolicy(Policy):
    """`variables.delivery`."""

    max_attempts: int = Field(ge=1, description="Failed deliveries before a person decides")


class ReturnPolicy(Policy):
    """`variables.return_policy`."""

    auto_approve_up_to: float = Field(ge=0, description="Returns worth up to this are approved without a person")


# -- review rules (docs/review-rules.md) ---------------------------------------------------------


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"not a valid regular expression: {err}") from None
    return value


Tier = Annotated[str, Field(pattern=r"^[a-z][a-z_]*$")]
OrderType = Annotated[str, Field(pattern=r"^[a-z][a-z_]*$")]
Pattern = Annotated[str, Field(min_length=1), AfterValidator(_regex)]


class Rule(BaseModel):
    """One check. `enabled: false` (or the rule set to `null`/`false`) switches it off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True


class UnknownSkuRule(Rule):
    """unknown_sku: every item must be in the catalogue (`products`)."""


class ZeroPriceRule(Rule):
    """item_price_zero: an item priced 0 is a data error, except in the exempt order types (gifts)."""

    exempt_order_types: list[OrderType] = Field(default_factory=lambda: ["promotion"])


class AddressRule(Rule):
    """address_incomplete: the street must be long enough to deliver to; optionally a district."""

    min_street_length: int = Field(4, ge=1, le=500)
    require_district: bool = False


class PostcodeRule(Rule):
    """postcode_invalid: a postcode, when given (or always, if required), must match the pattern."""

    pattern: Pattern = r"\d{6}"
    expected: str = Field("6 digits", description="What a valid postcode is, for the reason text")
    required: bool = False


class PhoneRule(Rule):
    """phone_invalid: the phone must match the pattern."""

    pattern: Pattern = Field(r"^1[3-9]\d{9}$", description="Mainland mobile numbers by default")
    expected: str = "a valid mobile number"


class DuplicateRule(Rule):
    """duplicate_order: same customer, address and items as an order reviewed shortly before."""

    window: Duration = timedelta(hours=24)


class VelocityRule(Rule):
    """velocity_exceeded: more than `max_orders` orders from one customer within `window`."""

    max_orders: int = Field(5, ge=1)
    window: Duration = timedelta(hours=24)


class BlacklistEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Annotated[str, Field(min_length=1)]
    reason: Annotated[str, Field(min_length=1)] = "listed in the review rules"

    @model_validator(mode="before")
    @classmethod
    def _plain_value(cls, data: Any) -> Any:
        return {"value": data} if isinstance(data, str) else data


class BlacklistRule(Rule):
    """blacklisted_customer / blacklisted_phone / blacklisted_address: the store's table and these lists."""

    use_store: bool = True
    customers: list[BlacklistEntry] = Field(default_factory=list)
    phones: list[BlacklistEntry] = Field(default_factory=list)
    addresses: list[BlacklistEntry] = Field(default_factory=list)


class AmountRule(Rule):
    """amount_over_limit: the order's amount above the limit for the customer's tier."""

    limit: Decimal = Field(Decimal(20000), gt=0)
    tier_limits: dict[Tier, Annotated[Decimal, Field(gt=0)] | None] = Field(
        default_factory=dict, description="Limit per customer tier; null = no limit for that tier"
    )


class PaymentRule(Rule):
    """payment_not_confirmed: the payment provider has not confirmed payment."""


# The flat keys of the first rule format; definitions (and orders in flight) that use them still work.
_LEGACY = {
    "amount_limit": ("amount", "limit"),
    "duplicate_window_hours": ("duplicate", "window"),
    "phone_pattern": ("phone", "pattern"),
    "require_payment": ("payment", "enabled"),
}


class ReviewRules(BaseModel):
    """`variables.review_rules`: one key per rule; omitted rules run with their defaults."""

    model_config = ConfigDict(extra="forbid")

    unknown_sku: UnknownSkuRule = UnknownSkuRule()
    zero_price: ZeroPriceRule = ZeroPriceRule(enabled=False)
    address: AddressRule = AddressRule()
    postcode: PostcodeRule = PostcodeRule()
    phone: PhoneRule = PhoneRule()
    duplicate: DuplicateRule = DuplicateRule()
    velocity: VelocityRule = VelocityRule()
    blacklist: BlacklistRule = BlacklistRule()
    amount: AmountRule = AmountRule()
    payment: PaymentRule = PaymentRule()

    # The validators' logic lives in plain functions, which mutation testing (mutmut) can mutate.
    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        return _upgrade_legacy(data)

    @field_validator("*", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        return _switched(value)


def _upgrade_legacy(data: Any) -> Any:
    """The flat keys of the first rule format, rewritten as the rules they set."""
    if not isinstance(data, dict) or not any(key in data for key in _LEGACY):
        return data
    data = dict(data)
    for old, (rule, param) in _LEGACY.items():
        if old not in data:
            continue
        if rule in data:
            raise ValueError(f"{old} and {rule} both given; write {rule}.{param} only")
        value = data.pop(old)
        if old == "duplicate_window_hours":
            # Hours, as numbers; a zero window found nothing but same-second twins: it meant "off".
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    data[rule] = {"enabled": False} if value == 0 else {param: timedelta(hours=value)}
                except OverflowError:
                    raise ValueError(f"{old} {value} is too long") from None
            else:
                data[rule] = {param: value}
        else:
            data[rule] = {param: value}
    return data


def _switched(value: Any) -> Any:
    """`null` or `false` switches a rule off; `true` (or `{}`) runs it with its defaults."""
    if value is None or value is False:
        return {"enabled": False}
    if value is True:
        return {}
    return value
