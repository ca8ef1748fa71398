"""The activities a process definition may call, by name.

The language's contract with activities/: lint checks every task against this set without
importing the activities (and Temporal) themselves, so `orderops lint` starts fast.
activities/__init__.py refuses to import when its registry and this set differ.
"""

ACTIVITY_NAMES = frozenset(
    {
        "assess_return",
        "book_carrier",
        "cancel_booking",
        "cancel_pick_list",
        "cancel_requisitions",
        "close_return",
        "compute_promise",
        "declare_lost",
        "grant_delay_compensation",
        "handoff_to_courier",
        "inspect_return",
        "intercept_shipment",
        "issue_return_label",
        "join_wave",
        "notify_customer",
        "notify_ops",
        "open_round",
        "pack_order",
        "pick_items",
        "record_delivery",
        "record_feedback",
        "record_tracking",
        "refund_order",
        "release_stock",
        "release_wave",
        "reserve_stock",
        "review_order",
        "verify_scan",
        "void_waybill",
    }
)
