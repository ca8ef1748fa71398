"""Carrier booking with fallback, handoff to the courier, intercepts, and tracking updates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import structlog
from temporalio.exceptions import ApplicationError

from activities.customer import render
from activities.defn import activity_defn
from activities.inputs import BookArgs, HandoffArgs, OrderArgs, TrackingArgs
from activities.packing import PackingActivities, address_key, zpl_label
from activities.results import Booked, Cancelled, HandedOver, Intercepted, Lost, TrackingRecorded
from activities.store import StoreActivities, current_round, event_key, now_iso, outbox
from orderops.settings import Carrier

log = structlog.get_logger()

# Statuses a tracking event moves the parcel to, and the customer hears of.
TRACKING_EVENTS = ("in_transit", "out_for_delivery", "delivery_failed", "delivered", "lost")


def _cannot_carry(carrier: Carrier, parcel: dict, province: str, service: str) -> str | None:
    """Why this carrier cannot take this parcel at all, or None."""
    if province not in carrier.regions and "*" not in carrier.regions:
        return f"does not serve {province}"
    if service not in carrier.services:
        return f"offers no {service} service"
    if parcel["weight_kg"] > carrier.max_weight_kg:
        return f"takes at most {carrier.max_weight_kg:g} kg, parcel is {parcel['weight_kg']:g} kg"
    if parcel["hazardous"] and not carrier.hazardous:
        return "carries no hazardous goods"
    return None


def _too_slow(carrier: Carrier, promise: dict, now: datetime) -> str | None:
    """Why this carrier would deliver after the promise, or None."""
    transit = carrier.services[promise["service_level"]]
    days = transit.get(promise["tier"], transit.get("*"))
    if days is None:
        return f"gives no transit time to {promise['tier']}"
    if now + timedelta(days=days) > datetime.fromisoformat(promise["deliver_by"]):
        return f"needs {days} days, later than the promise {promise['deliver_by']}"
    return None


def _answer(row) -> dict:
    """A booking as book_carrier answers it, first time or redelivered: whether it keeps the promise, and
    the carriers passed over (None for a booking made before store layout 5, which kept neither)."""
    booking = dict(row)
    if booking["meets_promise"] is not None:
        booking["meets_promise"] = bool(booking["meets_promise"])
    if booking["refused"] is not None:
        booking["refused"] = json.loads(booking["refused"])
    return booking


class CarrierActivities(StoreActivities):
    @activity_defn("book_carrier")
    def book_carrier(self, args: BookArgs) -> Booked:
        """Each parcel goes to the cheapest carrier that can meet the promise; full or failing carriers fall back to the next."""
        order = args.order
        now = datetime.now(UTC)
        day = now.date().isoformat()
        with self.store.transaction() as db:
            round_no = current_round(db, order.order_id)
            parcels = [
                PackingActivities.parcel(r)
                for r in db.execute(
                    "SELECT * FROM waybills WHERE order_id = ? AND round = ? AND state = 'active' ORDER BY warehouse",
                    (order.order_id, round_no),
                )
            ]
            if not parcels:
                raise ApplicationError(f"order {order.order_id} has no waybill; pack it first", type="NotPacked", non_retryable=True)
            bookings = []
            for parcel in parcels:
                held = db.execute(
                    "SELECT * FROM carrier_bookings WHERE order_id = ? AND round = ? AND warehouse = ? AND state != 'cancelled'",
                    (order.order_id, round_no, parcel["warehouse"]),
                ).fetchone()
                bookings.append(_answer(held) if held else self._book(db, order.order_id, round_no, parcel, args, now, day))
        log.info("carriers booked", bookings=[(b["tracking_no"], b["carrier"]) for b in bookings])
        return Booked.model_validate({"bookings": bookings})

    def _book(self, db, order_id: str, round_no: int, parcel: dict, args: BookArgs, now: datetime, day: str) -> dict:
        province, service = args.order.address.province, args.promise["service_level"]
        refused: list[str] = []
        usable = []
        for carrier in sorted(args.carriers, key=lambda c: (c.base_cost + c.cost_per_kg * parcel["weight_kg"], c.name)):
            outage = db.execute("SELECT reason FROM carrier_outages WHERE carrier = ?", (carrier.name,)).fetchone()
            used = db.execute(
                "SELECT COUNT(*) FROM carrier_bookings WHERE carrier = ? AND day = ? AND state != 'cancelled'", (carrier.name, day)
            ).fetchone()[0]
            reason = _cannot_carry(carrier, parcel, province, service) or (
                f"booking refused: {outage['reason']}"
                if outage
                else f"daily capacity {carrier.daily_capacity} used up"
                if used >= carrier.daily_capacity
                else None
            )
            if reason:
                refused.append(f"{carrier.name} {reason}")
            else:
                usable.append(carrier)
        # The cheapest carrier that keeps the promise; if none can, the fastest, and the order runs late.
        in_time = [c for c in usable if _too_slow(c, args.promise, now) is None]
        refused += [f"{c.name} {_too_slow(c, args.promise, now)}" for c in usable if c not in in_time]
        if not usable:
            # Raised inside the transaction: bookings made for the order's other parcels roll back with it.
            raise ApplicationError(
                f"no carrier can take parcel {parcel['tracking_no']}: " + "; ".join(refused), type="NoCarrier", non_retryable=True
            )
        carrier = (
            in_time[0]
            if in_time
            else min(usable, key=lambda c: c.services[service].get(args.promise["tier"], c.services[service].get("*", 99)))
        )
        cost = round(carrier.base_cost + carrier.cost_per_kg * parcel["weight_kg"], 2)
        db.execute(
            "INSERT INTO carrier_bookings"
            " (order_id, round, warehouse, carrier, service, tracking_no, day, cost, state, booked_at, meets_promise, refused)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'booked', ?, ?, ?) ON CONFLICT (order_id, round, warehouse) DO UPDATE SET"
            " carrier = excluded.carrier, service = excluded.service, tracking_no = excluded.tracking_no, day = excluded.day,"
            " cost = excluded.cost, state = 'booked', booked_at = excluded.booked_at, meets_promise = excluded.meets_promise,"
            " refused = excluded.refused",
            (
                order_id,
                round_no,
                parcel["warehouse"],
                carrier.name,
                service,
                parcel["tracking_no"],
                day,
                cost,
                now_iso(),
                int(bool(in_time)),
                json.dumps(refused),
            ),
        )
        return _answer(
            db.execute(
                "SELECT * FROM carrier_bookings WHERE order_id = ? AND round = ? AND warehouse = ?",
                (order_id, round_no, parcel["warehouse"]),
            ).fetchone()
        )

    @activity_defn("cancel_booking")
    def cancel_booking(self, args: OrderArgs) -> Cancelled:
        """Compensation for booking: frees the carrier's capacity. A parcel already handed over is intercepted instead."""
        order = args.order
        with self.store.transaction() as db:
            changed = db.execute(
                "UPDATE carrier_bookings SET state = 'cancelled' WHERE order_id = ? AND state = 'booked'", (order.order_id,)
            ).rowcount
        return Cancelled(cancelled=changed)

    @activity_defn("handoff_to_courier")
    def handoff_to_courier(self, args: HandoffArgs) -> HandedOver:
        """The courier collects the booked parcels: the goods leave the warehouse, courier and time are recorded."""
        order = args.order
        with self.store.transaction() as db:
            round_no = current_round(db, order.order_id)
            booked = db.execute(
                "SELECT b.*, w.address_key, w.weight_kg, w.packaging, w.label_path FROM carrier_bookings b"
                " JOIN waybills w USING (tracking_no) WHERE b.order_id = ? AND b.round = ? AND b.state = 'booked'",
                (order.order_id, round_no),
            ).fetchall()
            if (
                not booked
                and not db.execute(
                    "SELECT 1 FROM carrier_bookings WHERE order_id = ? AND round = ? AND state = 'handed_over'", (order.order_id, round_no)
                ).fetchone()
            ):
                raise ApplicationError(f"order {order.order_id} has no carrier booking", type="NotBooked", non_retryable=True)
            for booking in booked:
                if booking["address_key"] != address_key(order):
                    booking = self._readdress(db, order, round_no, booking, args)
                for line in db.execute(
                    "SELECT sku, bin, quantity FROM reservations WHERE order_id = ? AND round = ? AND warehouse = ? AND state = 'active'",
                    (order.order_id, round_no, booking["warehouse"]),
                ).fetchall():
                    db.execute(
                        "UPDATE stock SET on_hand = on_hand - ?, reserved = reserved - ? WHERE sku = ? AND warehouse = ? AND bin = ?",
                        (line["quantity"], line["quantity"], line["sku"], booking["warehouse"], line["bin"]),
                    )
                db.execute(
                    "UPDATE reservations SET state = 'shipped', updated_at = ? WHERE order_id = ? AND round = ? AND warehouse = ? AND state = 'active'",
                    (now_iso(), order.order_id, round_no, booking["warehouse"]),
                )
                db.execute(
                    "UPDATE carrier_bookings SET state = 'handed_over', courier = ?, handed_over_at = ? WHERE order_id = ? AND round = ? AND warehouse = ?",
                    (f"{booking['carrier']} courier", now_iso(), order.order_id, round_no, booking["warehouse"]),
                )
            parcels = [
                dict(r)
                for r in db.execute(
                    "SELECT warehouse, carrier, tracking_no, courier, handed_over_at, cost FROM carrier_bookings"
                    " WHERE order_id = ? AND round = ? AND state = 'handed_over' ORDER BY warehouse",
                    (order.order_id, round_no),
                )
            ]
        log.info("handed to courier", parcels=[(p["tracking_no"], p["carrier"]) for p in parcels])
        return HandedOver.model_validate({"parcels": parcels, "carrier": parcels[0]["carrier"], "tracking_no": parcels[0]["tracking_no"]})

    def _readdress(self, db, order, round_no: int, booking, args: HandoffArgs):
        """The customer changed the address after packing: reprint the label, and re-book if the carrier cannot go there."""
        labels = json.loads(booking["packaging"])["labels"]
        with open(booking["label_path"], "w", encoding="utf-8") as label:
            label.write(zpl_label(order, booking["tracking_no"], booking["weight_kg"], labels, booking["warehouse"]))
        db.execute("UPDATE waybills SET address_key = ? WHERE tracking_no = ?", (address_key(order), booking["tracking_no"]))
        carrier = next((c for c in args.carriers if c.name == booking["carrier"]), None)
        parcel = PackingActivities.parcel(db.execute("SELECT * FROM waybills WHERE tracking_no = ?", (booking["tracking_no"],)).fetchone())
        if carrier is None or args.promise is None or _cannot_carry(carrier, parcel, order.address.province, booking["service"]) is None:
            return booking
        now = datetime.now(UTC)
        db.execute(
            "UPDATE carrier_bookings SET state = 'cancelled' WHERE order_id = ? AND round = ? AND warehouse = ?",
            (order.order_id, round_no, booking["warehouse"]),
        )
        rebooked = self._book(
            db,
            order.order_id,
            round_no,
            parcel,
            BookArgs(order=order, carriers=args.carriers, promise=args.promise),
            now,
            now.date().isoformat(),
        )
        log.info("re-booked for the new address", carrier=rebooked["carrier"], was=booking["carrier"])
        return {**dict(booking), **rebooked}

    @activity_defn("intercept_shipment")
    def intercept_shipment(self, args: OrderArgs) -> Intercepted:
        """Compensation for the handoff: the parcel is on its way, so ask the carrier to intercept it."""
        order = args.order
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT carrier, tracking_no FROM carrier_bookings WHERE order_id = ? AND state = 'handed_over'", (order.order_id,)
            ).fetchall()
            for row in rows:
                db.execute("UPDATE carrier_bookings SET state = 'intercept_requested' WHERE tracking_no = ?", (row["tracking_no"],))
                outbox(
                    db,
                    order.order_id,
                    "intercept_request",
                    "carrier",
                    row["carrier"],
                    f"Please intercept parcel {row['tracking_no']} (order {order.order_id}) and return it to sender.",
                    key=f"intercept:{row['tracking_no']}",
                )
        log.info("intercept requested", parcels=[r["tracking_no"] for r in rows])
        return Intercepted(intercepted=[r["tracking_no"] for r in rows])

    @activity_defn("declare_lost")
    def declare_lost(self, args: OrderArgs) -> Lost:
        """The parcels of the current round are lost: no intercept can be asked for them any more."""
        order = args.order
        with self.store.transaction() as db:
            round_no = current_round(db, order.order_id)
            lost = [
                r["tracking_no"]
                for r in db.execute(
                    "SELECT tracking_no FROM carrier_bookings WHERE order_id = ? AND round = ? AND state IN ('handed_over', 'lost')",
                    (order.order_id, round_no),
                )
            ]
            db.execute(
                "UPDATE carrier_bookings SET state = 'lost' WHERE order_id = ? AND round = ? AND state = 'handed_over'",
                (order.order_id, round_no),
            )
        return Lost(lost=lost)

    @activity_defn("record_tracking")
    def record_tracking(self, args: TrackingArgs) -> TrackingRecorded:
        """A courier scan: the parcel's status moves on, and the customer hears of it through the outbox."""
        order, event = args.order, args.event
        status = event.get("event")
        if status not in TRACKING_EVENTS:
            raise ApplicationError(
                f"not a tracking event: {status!r} (known: {', '.join(TRACKING_EVENTS)})", type="InvalidInput", non_retryable=True
            )
        key = f"{status}:{event_key(event)}"
        detail = {k: v for k, v in event.items() if k not in ("event", "received_at", "seq")}
        if status == "delivered":
            detail.setdefault("signer", order.customer_name)
        with self.store.transaction() as db:
            round_no = current_round(db, order.order_id)
            db.execute(
                "INSERT INTO tracking_events VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (order.order_id, key, round_no, status, json.dumps(detail, sort_keys=True), now_iso()),
            )
            outbox(db, order.order_id, status, "sms", order.phone, render(status, order, args.templates, detail), key=f"tracking:{key}")
            if status == "delivered":
                # Signed for: nothing left to intercept. A scan naming its parcel signs for that one (a split order
                # has several); one naming none signs for all of them.
                # Tracking numbers are text: one sent as a number names the same parcel, on every backend.
                parcel = None if detail.get("tracking_no") is None else str(detail["tracking_no"])
                if (
                    parcel is not None
                    and not db.execute(
                        "SELECT 1 FROM carrier_bookings WHERE order_id = ? AND round = ? AND tracking_no = ?",
                        (order.order_id, round_no, parcel),
                    ).fetchone()
                ):
                    raise ApplicationError(
                        f"parcel {parcel!r} is not one of order {order.order_id}'s", type="InvalidInput", non_retryable=True
                    )
                db.execute(
                    "UPDATE carrier_bookings SET state = 'delivered' WHERE order_id = ? AND round = ? AND state = 'handed_over'"
                    " AND (CAST(? AS TEXT) IS NULL OR tracking_no = ?)",
                    (order.order_id, round_no, parcel, parcel),
                )
            failed = db.execute(
                "SELECT COUNT(*) FROM tracking_events WHERE order_id = ? AND round = ? AND status = 'delivery_failed'",
                (order.order_id, round_no),
            ).fetchone()[0]
            parcels_out = db.execute(
                "SELECT COUNT(*) FROM carrier_bookings WHERE order_id = ? AND round = ? AND state = 'handed_over'",
                (order.order_id, round_no),
            ).fetchone()[0]
        log.info("tracking event recorded", status=status, failed_attempts=failed, parcels_out=parcels_out)
        return TrackingRecorded(status=status, failed_attempts=failed, parcels_out=parcels_out)
