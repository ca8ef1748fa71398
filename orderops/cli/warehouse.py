"""orderops restock, carrier-outage: what the warehouse tells the system (written to the worker's store)."""

from __future__ import annotations

import sys

from activities.store import open_store
from orderops import config
from orderops.activity_names import ACTIVITY_NAMES
from orderops.cli.common import CliError, UsageError, order_client
from orderops.process.lint import load


async def restock(args) -> int:
    client = await order_client(args)
    result = await client.restock(open_store(), args.sku, args.warehouse, args.quantity, args.bin)
    print(f"{args.quantity} x {args.sku} received at {args.warehouse}")
    for order_id, problem in result.told:
        if problem is None:
            print(f"order {order_id}: restocked event sent")
        else:
            print(f"order {order_id}: not told ({problem}); send it with `orderops event {order_id} restocked`", file=sys.stderr)
    for line in result.still_open:
        print(f"{line}; its order waits for the rest")
    return 1 if any(problem for _, problem in result.told) else 0


def carrier_outage(args) -> int:
    if not args.clear and not args.reason.strip():
        raise UsageError("--reason must say why bookings are refused")
    known = [c["name"] for c in load(config.DEFAULT_PROCESS, ACTIVITY_NAMES)[0].variables.get("carriers") or []]
    if args.carrier not in known:
        raise CliError(f"no carrier {args.carrier!r} in {config.DEFAULT_PROCESS.name} (carriers: {', '.join(known)})")
    open_store().set_carrier_outage(args.carrier, None if args.clear else args.reason)
    print(f"carrier {args.carrier}: {'bookings accepted again' if args.clear else 'bookings refused: ' + args.reason}")
    return 0
