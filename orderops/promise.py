"""Delivery promises: the policy ops write in YAML, and the deterministic computation.

The figures come from the source documents (docs/domain.md): 1-2 days in
tier-1 cities, 3-5 days in remote areas, pick-pack-ship within 24 hours of
acceptance; premium customers and special categories get other promises.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orderops.durations import Duration

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Days = Annotated[int, Field(ge=0, le=60)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegionRule(Strict):
    """Destinations that belong to a tier; the first rule that matches wins."""

    province: str | None = None
    city: str | None = None
    postcode_prefix: str | None = None
    tier: str

    @model_validator(mode="after")
    def _matches_something(self) -> RegionRule:
        if not (self.province or self.city or self.postcode_prefix):
            raise ValueError("a region rule needs province, city or postcode_prefix")
        return self

    def matches(self, province: str, city: str, postcode: str) -> bool:
        return (
            (self.province is None or self.province.casefold() == province.casefold())
            and (self.city is None or self.city.casefold() == city.casefold())
            and (self.postcode_prefix is None or postcode.startswith(self.postcode_prefix))
        )


class ServiceLevel(Strict):
    days: Days | None = Field(None, description="A fixed number of delivery days (0 = same day)")
    faster_by_days: Days = Field(0, description="Days fewer than the tier's standard promise")
    tiers: list[str] | None = Field(None, description="Region tiers where the service is offered; all if omitted")


class Coupon(Strict):
    amount: Decimal = Field(gt=0)
    currency: str = "CNY"


class PromisePolicy(Strict):
    timezone: str = "Asia/Shanghai"
    cutoff: time = Field(time(16, 0), description="Orders accepted after this local time count from the next working day")
    working_days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:6]), min_length=1)
    ship_within: Duration = timedelta(hours=24)
    at_risk_fraction: float = Field(0.8, gt=0, lt=1, description="Share of a deadline's window after which the order is at risk")
    tiers: dict[str, Days] = Field(min_length=1, description="Region tier -> delivery days (the promise's upper bound)")
    regions: list[RegionRule] = Field(default_factory=list)
    default_tier: str
    services: dict[str, ServiceLevel] = Field(default_factory=lambda: {"standard": ServiceLevel()})
    customer_tiers: dict[str, Days] = Field(default_factory=dict, description="Customer tier -> days fewer")
    categories: dict[str, Days] = Field(default_factory=dict, description="Product category -> extra days")
    compensation: dict[str, Coupon] = Field(default_factory=dict, description="Service level -> coupon for a missed promise")

    @field_validator("cutoff")
    @classmethod
    def _local_cutoff(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("cutoff is a local time in the policy's timezone: write it without an offset")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from None
        return value

    @model_validator(mode="after")
    def _tiers_exist(self) -> PromisePolicy:
        named = [("default_tier", self.default_tier)] + [(f"regions.{i}.tier", r.tier) for i, r in enumerate(self.regions)]
        for name, level in self.services.items():
            named += [(f"services.{name}.tiers", t) for t in level.tiers or []]
        for where, tier in named:
            if tier not in self.tiers:
                raise ValueError(f"{where}: unknown tier {tier!r} (tiers: {', '.join(self.tiers)})")
        if "standard" not in self.services:
            raise ValueError("services must include 'standard', the fallback")
        unknown = sorted(set(self.compensation) - set(self.services))
        if unknown:
            raise ValueError(f"compensation for unknown service levels: {', '.join(unknown)}")
        return self


class Promise(BaseModel):
    """What the customer was promised, fixed at acceptance."""

    accepted_at: datetime
    counts_from: datetime
    tier: str
    service_level: str
    customer_tier: str
    delivery_days: int
    ship_by: datetime
    deliver_by: datetime
    at_risk_fraction: float
    timezone: str
    notes: list[str] = []


def tier_for(policy: PromisePolicy, province: str, city: str, postcode: str) -> str:
    return next((r.tier for r in policy.regions if r.matches(province, city, postcode)), policy.default_tier)


def _is_working_day(policy: PromisePolicy, day: date) -> bool:
    return WEEKDAYS[day.weekday()] in policy.working_days


def counts_from(policy: PromisePolicy, accepted_at: datetime) -> datetime:
    """Acceptance in local time, moved to the next working day's start if after cut-off or on a day off."""
    zone = ZoneInfo(policy.timezone)
    local = accepted_at.astimezone(zone)
    if _is_working_day(policy, local.date()) and local.time() < policy.cutoff:
        return local
    day = local.date() + timedelta(days=1)
    while not _is_working_day(policy, day):
        day += timedelta(days=1)
    return datetime.combine(day, time(0, 0), tzinfo=zone)


def ship_by_for(policy: PromisePolicy, start: datetime) -> datetime:
    """`ship_within` of elapsed time (added in UTC, so daylight saving cannot stretch it), moved
    past days off: the warehouse cannot be late on a day it is closed."""
    zone = ZoneInfo(policy.timezone)
    ship_by = (start.astimezone(UTC) + policy.ship_within).astimezone(zone)
    while not _is_working_day(policy, ship_by.date()):
        ship_by += timedelta(days=1)
    return ship_by


def compute(
    policy: PromisePolicy,
    *,
    province: str,
    city: str,
    postcode: str,
    service_level: str,
    customer_tier: str,
    categories: set[str],
    accepted_at: datetime,
) -> Promise:
    if accepted_at.tzinfo is None:
        raise ValueError("accepted_at must carry a time zone")
    notes = []
    tier = tier_for(policy, province, city, postcode)
    service = policy.services.get(service_level)
    if service is None or (service.tiers is not None and tier not in service.tiers):
        notes.append(f"service {service_level!r} is not offered in {tier}; promised as standard")
        service_level, service = "standard", policy.services["standard"]
    days = service.days if service.days is not None else max(policy.tiers[tier] - service.faster_by_days, 1)
    floor = 0 if days == 0 else 1
    days = max(days - policy.customer_tiers.get(customer_tier, 0), floor)
    extra = max((policy.categories.get(c, 0) for c in categories), default=0)
    days += extra
    start = counts_from(policy, accepted_at)
    local_deadline = datetime.combine(start.date() + timedelta(days=days), time(23, 59, 59), tzinfo=start.tzinfo)
    ship_by = ship_by_for(policy, start)
    deliver_by = local_deadline.astimezone(UTC)
    return Promise(
        accepted_at=accepted_at.astimezone(UTC),
        counts_from=start.astimezone(UTC),
        tier=tier,
        service_level=service_level,
        customer_tier=customer_tier,
        delivery_days=days,
        # Compared as instants: two times of one zone compare by wall clock, which the repeated hour when DST ends misorders.
        ship_by=min(ship_by.astimezone(UTC), deliver_by),
        deliver_by=deliver_by,
        at_risk_fraction=policy.at_risk_fraction,
        timezone=policy.timezone,
        notes=notes,
    )
