"""A promise policy like the shipped one, and a promise computed under it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from orderops.promise import PromisePolicy, compute

SHANGHAI = timezone(timedelta(hours=8))


POLICY = PromisePolicy.model_validate(
    {
        "timezone": "Asia/Shanghai",
        "cutoff": "16:00",
        "working_days": ["mon", "tue", "wed", "thu", "fri", "sat"],
        "ship_within": "24h",
        "tiers": {"tier1": 2, "tier2": 3, "remote": 5},
        "regions": [
            {"province": "Shanghai", "tier": "tier1"},
            {"city": "Shenzhen", "tier": "tier1"},
            {"postcode_prefix": "85", "tier": "remote"},
        ],
        "default_tier": "tier2",
        "services": {"standard": {}, "express": {"faster_by_days": 1}, "same_day": {"days": 0, "tiers": ["tier1"]}},
        "customer_tiers": {"vip": 1},
        "categories": {"made_to_order": 3, "hazardous": 1},
    }
)


WEDNESDAY_10 = datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)


def promise(
    accepted=WEDNESDAY_10,
    province="Shanghai",
    city="Shanghai",
    postcode="200120",
    service="standard",
    customer="regular",
    categories=(),
    policy=POLICY,
):
    return compute(
        policy,
        province=province,
        city=city,
        postcode=postcode,
        service_level=service,
        customer_tier=customer,
        categories=set(categories),
        accepted_at=accepted,
    )
