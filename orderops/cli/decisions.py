"""orderops review, event, cancel, change-address, merge, return: people and event sources acting on orders."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from activities.inputs import ReturnRequest
from orderops.activity_names import ACTIVITY_NAMES
from orderops.cli.common import CliError, UsageError, field_errors, json_option, order_client
from orderops.client import InvalidRequest
from orderops.client.remote import Cancel, ConsoleClient, Decide, Merge, MoveDelivery, SendEvent
from orderops.limits import whole_number
from orderops.order import Address, OrderEdit
from orderops.process.lint import load_definition
from orderops.proof import trusted_keys

DELIVERY = {
    "waiting": "it was waiting for it",
    "kept": "kept until a step waits for it",
}


def _console(args) -> ConsoleClient:
    """The signed-in caller's console; checked before anything is sent, like the command's own input."""
    return ConsoleClient.signed_in(args.console)


async def review(args) -> int:
    changes = json_option("--changes", args.changes)
    if args.decision == "edit" and not changes:
        raise UsageError("--decision edit needs --changes: the corrected fields as JSON")
    if changes and args.decision != "edit":
        raise UsageError("--changes goes only with the 'edit' decision")
    try:
        decide = Decide(
            decision=args.decision, reason=args.reason, node=args.node, changes=OrderEdit.model_validate(changes) if changes else None
        )
    except ValidationError as err:
        raise CliError(f"invalid review: {field_errors(err)[0]}") from None
    receipt = await _console(args).review(args.order_id, decide)
    print(f"order {receipt.order_id}: {receipt.decision} by {receipt.agent} recorded at {receipt.node}; next: {receipt.next}")
    return 0


async def event(args) -> int:
    try:
        sent = SendEvent(name=args.name, data=json_option("--data", args.data))
    except ValidationError as err:
        raise CliError(f"invalid {args.name!r} event: {field_errors(err)[0]}") from None
    delivery = await _console(args).send_event(args.order_id, sent)
    if delivery.outcome == "queued":
        print(f"event {sent.name!r} sent to order {args.order_id}; no worker is running to check it, one applies it when it starts")
    else:
        print(f"event {sent.name!r} delivered to order {args.order_id} ({DELIVERY[delivery.outcome]})")
    return 0


async def cancel(args) -> int:
    try:
        request = Cancel(reason=args.reason)
    except ValidationError as err:
        raise CliError(f"invalid cancellation: {field_errors(err)[0]}") from None
    receipt = await _console(args).cancel(args.order_id, request)
    at = ", ".join(receipt.cancelled_at_nodes) or "between steps"
    print(f"order {receipt.order_id}: cancellation accepted at {at}; completed steps are being undone")
    return 0


async def change_address(args) -> int:
    try:
        move = MoveDelivery(
            address=Address(province=args.province, city=args.city, district=args.district, street=args.street, postcode=args.postcode),
            reason=args.reason,
        )
    except ValidationError as err:
        raise CliError(f"invalid address: {field_errors(err)[0]}") from None
    receipt = await _console(args).change_address(args.order_id, move)
    print(f"order {receipt.order_id}: delivery address is now {receipt.address.one_line()}")
    return 0


async def merge(args) -> int:
    if args.order_id == args.into:
        raise UsageError("an order cannot be merged into itself")
    try:
        request = Merge(into=args.into, reason=args.reason)
    except ValidationError as err:
        raise CliError(f"invalid merge: {field_errors(err)[0]}") from None
    items = await _console(args).merge(args.order_id, request)
    print(
        f"order {args.order_id} merged into {args.into}: {', '.join(f'{i.sku} x{i.quantity}' for i in items)}; {args.into} is reviewed again"
    )
    return 0


def item_specs(specs: list[str] | None) -> dict[str, int] | None:
    """`--item SKU[:QTY]`, repeated: SKU -> quantity (a SKU given twice adds up)."""
    if not specs:
        return None
    wanted: dict[str, int] = {}
    for spec in specs:
        sku, _, quantity = spec.partition(":")
        count = whole_number(quantity or "1")
        if count is None:
            raise UsageError(f"--item {spec}: quantity {quantity!r} is not a whole number")
        if count < 1:
            raise UsageError(f"--item {spec}: quantity must be at least 1")
        wanted[sku] = wanted.get(sku, 0) + count
    return wanted


async def start_return(args) -> int:
    snapshot = load_definition(Path(args.process), ACTIVITY_NAMES)
    try:
        request = ReturnRequest(original_order_id=args.order_id, kind=args.kind, reason=args.reason, note=args.note)
    except ValidationError as err:
        raise CliError(f"invalid return: {field_errors(err)[0]}") from None
    wanted = item_specs(args.item)
    try:
        order, handle = await (await order_client(args)).start_return(args.order_id, request, wanted, snapshot, trusted_keys=trusted_keys())
    except InvalidRequest as err:  # an item the order does not have, or more than it had: name the option
        raise UsageError(f"--item {err}") from None
    print(
        f"return {order.order_id} started ({handle.id}): {request.kind}, {request.reason}, "
        f"{', '.join(f'{i.sku} x{i.quantity}' for i in order.items)}"
    )
    return 0
