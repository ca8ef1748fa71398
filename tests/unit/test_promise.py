"""The promise computation: per tier, service, customer tier, category, cut-off and time zone."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from orderops.promise import WEEKDAYS, PromisePolicy
from tests.promise_helpers import POLICY, SHANGHAI, promise


def local(p) -> tuple[str, str]:
    return p.ship_by.astimezone(SHANGHAI).strftime("%a %d %H:%M"), p.deliver_by.astimezone(SHANGHAI).strftime("%a %d %H:%M")


@pytest.mark.parametrize(
    "where, tier, days, deliver_by",
    [
        (dict(province="Shanghai"), "tier1", 2, "Fri 20 23:59"),
        (dict(province="Guangdong", city="Shenzhen", postcode="518057"), "tier1", 2, "Fri 20 23:59"),
        (dict(province="Sichuan", city="Chengdu", postcode="610041"), "tier2", 3, "Sat 21 23:59"),
        (dict(province="Tibet", city="Lhasa", postcode="850000"), "remote", 5, "Mon 23 23:59"),
    ],
)
def test_promise_per_region_tier(where, tier, days, deliver_by):
    p = promise(**where)
    assert (p.tier, p.delivery_days) == (tier, days)
    assert local(p) == ("Thu 19 10:00", deliver_by)  # ship within 24 hours of acceptance


@pytest.mark.parametrize(
    "service, days, ship_by, deliver_by",
    [
        ("standard", 2, "Thu 19 10:00", "Fri 20 23:59"),
        ("express", 1, "Thu 19 10:00", "Thu 19 23:59"),
        ("same_day", 0, "Wed 18 23:59", "Wed 18 23:59"),  # shipping cannot be due after delivery
    ],
)
def test_promise_per_service_level(service, days, ship_by, deliver_by):
    p = promise(service=service)
    assert (p.service_level, p.delivery_days, p.notes) == (service, days, [])
    assert local(p) == (ship_by, deliver_by)


def test_service_not_offered_in_the_region_falls_back_to_standard():
    p = promise(province="Tibet", city="Lhasa", postcode="850000", service="same_day")
    assert (p.service_level, p.delivery_days) == ("standard", 5)
    assert p.notes == ["service 'same_day' is not offered in remote; promised as standard"]


def test_vip_customers_get_a_shorter_promise_but_never_less_than_a_day():
    assert promise(province="Sichuan", customer="vip").delivery_days == 2
    assert promise(service="express", customer="vip").delivery_days == 1
    assert promise(service="same_day", customer="vip").delivery_days == 0


def test_categories_add_their_longest_lead_time():
    assert promise(categories=["hazardous"]).delivery_days == 3
    assert promise(categories=["hazardous", "made_to_order", "general"]).delivery_days == 5


@pytest.mark.parametrize(
    "accepted, counts_from",
    [
        (datetime(2026, 11, 18, 15, 59, tzinfo=SHANGHAI), "Wed 18 15:59"),  # before cut-off
        (datetime(2026, 11, 18, 16, 0, tzinfo=SHANGHAI), "Thu 19 00:00"),  # at cut-off: next working day
        (datetime(2026, 11, 21, 17, 0, tzinfo=SHANGHAI), "Mon 23 00:00"),  # Saturday evening; Sunday is off
        (datetime(2026, 11, 22, 9, 0, tzinfo=SHANGHAI), "Mon 23 00:00"),  # on Sunday
    ],
)
def test_cut_off_and_days_off_move_the_start(accepted, counts_from):
    p = promise(accepted=accepted)
    assert p.counts_from.astimezone(SHANGHAI).strftime("%a %d %H:%M") == counts_from
    assert p.ship_by == p.counts_from + timedelta(hours=24)
    start_day = p.counts_from.astimezone(SHANGHAI).date()
    assert p.deliver_by.astimezone(SHANGHAI).date() == start_day + timedelta(days=2)


def test_time_zone_decides_which_side_of_the_cut_off_an_order_falls():
    accepted = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)  # 17:00 in Shanghai, 09:00 in London
    assert promise(accepted=accepted).counts_from.astimezone(SHANGHAI).strftime("%a %d %H:%M") == "Thu 19 00:00"
    london = POLICY.model_copy(update={"timezone": "Europe/London"})
    p = promise(accepted=accepted, policy=london)
    assert p.counts_from == accepted
    assert p.deliver_by == datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC)


def test_naive_acceptance_time_is_refused():
    with pytest.raises(ValueError, match="time zone"):
        promise(accepted=datetime(2026, 11, 18, 10, 0))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"default_tier": "moon"}, "default_tier: unknown tier 'moon'"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"regions": [{"tier": "tier1"}]}, "needs province, city or postcode_prefix"),
        ({"services": {"express": {}}}, "services must include 'standard'"),
        ({"at_risk_fraction": 1.5}, "less than 1"),
    ],
)
def test_policy_mistakes_are_reported(change, message):
    data = POLICY.model_dump(mode="json") | change
    with pytest.raises(ValidationError, match=message):
        PromisePolicy.model_validate(data)


def test_the_worked_example_in_the_docs():
    """docs/promises.md, with the shipped policy file."""
    from orderops.process.lint import load_policy
    from tests.helpers import ROOT

    policy = load_policy(ROOT / "process_defs" / "policies" / "promise.yaml")
    p = promise(
        accepted=datetime(2026, 11, 18, 17, 30, tzinfo=SHANGHAI),
        service="express",
        customer="vip",
        categories=["made_to_order", "fragile"],
        policy=policy,
    )
    assert p.counts_from.astimezone(SHANGHAI).strftime("%a %d %H:%M") == "Thu 19 00:00"
    assert p.delivery_days == 4
    assert local(p) == ("Fri 20 00:00", "Mon 23 23:59")


def test_ship_by_never_falls_on_a_day_off():
    saturday = datetime(2026, 11, 21, 10, 0, tzinfo=SHANGHAI)  # Sunday is off
    p = promise(accepted=saturday)
    assert local(p)[0] == "Mon 23 10:00"


def test_ship_within_is_elapsed_time_across_daylight_saving():
    london = POLICY.model_copy(update={"timezone": "Europe/London", "working_days": list(WEEKDAYS)})
    before_change = datetime(2026, 3, 28, 10, 0, tzinfo=UTC)  # clocks go forward on the 29th
    p = promise(accepted=before_change, policy=london)
    assert p.ship_by - p.counts_from == timedelta(hours=24)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"cutoff": "16:00+08:00"}, "write it without an offset"),
        ({"compensation": {"overnight": {"amount": 5}}}, "compensation for unknown service levels: overnight"),
    ],
)
def test_more_policy_mistakes(change, message):
    with pytest.raises(ValidationError, match=message):
        PromisePolicy.model_validate(POLICY.model_dump(mode="json") | change)


def test_a_naive_acceptance_time_is_refused_saying_why():
    with pytest.raises(ValueError) as raised:
        promise(accepted=datetime(2026, 11, 18, 10, 0))
    assert str(raised.value) == "accepted_at must carry a time zone"


@pytest.fixture
def machine_in_tokyo():
    """The worker's own time zone, which must not show in a promise."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_every_time_of_a_promise_is_in_utc_whatever_the_machine_s_time_zone(machine_in_tokyo):
    p = promise()
    assert datetime.now().astimezone().utcoffset() == timedelta(hours=9)  # the machine is in Tokyo
    assert {name: getattr(p, name).utcoffset() for name in ("accepted_at", "counts_from", "ship_by", "deliver_by")} == dict.fromkeys(
        ("accepted_at", "counts_from", "ship_by", "deliver_by"), timedelta(0)
    )
    assert local(p) == ("Thu 19 10:00", "Fri 20 23:59")
