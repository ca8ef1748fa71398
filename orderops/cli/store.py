"""orderops store: the warehouse store's layout, and its upgrade (activities/migrations/)."""

from __future__ import annotations

from activities import store
from activities.database import connected, engine_for, shown
from orderops import config


def status(args) -> int:
    url = config.store_url()
    engine = engine_for(url)
    try:
        with connected(engine) as connection:
            layout = store.layout_of(connection)
    finally:
        engine.dispose()
    if layout == store.LAYOUT:
        print(f"{shown(url)}: store layout {layout}, the one this orderops reads")
        return 0
    print(f"{store.stale_reason(shown(url), layout)}")
    return 1


def upgrade(args) -> int:
    url = config.store_url()
    before, after = store.upgrade(url)
    if before is None:
        print(f"{shown(url)}: store created at layout {after}")
    elif before == after:
        print(f"{shown(url)}: already at store layout {after}; nothing to do")
    else:
        print(f"{shown(url)}: upgraded from store layout {before} to {after}, its data kept")
    return 0
