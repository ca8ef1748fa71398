"""orderops server, worker, demo: the processes that run everything else."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from activities.store import open_store
from orderops import config, demo, server
from orderops.cli.common import CliError, order_client
from orderops.cli.parser import web_origin
from orderops.client import OrderClient
from orderops.process.lint import InvalidDefinition
from orderops.worker import check_definitions, limits_from_env, serve


def run_server(args) -> int:
    command = server.command(port=args.port, ui_port=args.ui_port, namespace=args.namespace, codec_endpoint=args.codec_endpoint)
    codec = f", payloads decrypted by {args.codec_endpoint} for a signed-in person" if args.codec_endpoint else ""
    print(f"Temporal dev server on 127.0.0.1:{args.port}, Web UI http://127.0.0.1:{args.ui_port}{codec}, data in {config.home()}")
    sys.stdout.flush()
    os.execv(command[0], command)


async def run_worker(args) -> int:
    process_dir = Path(args.process_dir)
    if not process_dir.is_dir() or not any(process_dir.glob("*.yaml")):
        raise CliError(f"--process-dir {process_dir}: no process definitions (*.yaml) there")
    # Definitions first: a broken one is reported even when no server is up yet.
    _, problems = check_definitions(process_dir)
    if problems:
        raise InvalidDefinition(problems)
    try:
        # Worker limits (orderops/worker.py, LIMIT_ENV): bench/recovery.py varies them; nobody else needs to.
        limits = limits_from_env(os.environ)
    except ValueError as err:
        raise CliError(str(err)) from None
    store = open_store()  # a store that needs `orderops store upgrade` is refused before anything polls
    client = await order_client(args, metrics=args.metrics)
    await serve(client.temporal, store, process_dir, limits=limits, gauges=bool(args.metrics))
    return 0


async def run_demo(args) -> int:
    return await demo.run(args.address, args.namespace, args.orders, args.console_port if args.console else None)


async def run_console(args) -> int:
    import uvicorn

    from orderops import proof
    from orderops.console.app import UI_ORIGINS, create_app
    from orderops.console.inbox import catalog
    from orderops.people import open_people

    served, origins = catalog(Path(args.process_dir)), UI_ORIGINS | ui_origins(args)
    orders = OrderClient((await order_client(args)).temporal, signer=proof.signer())
    # Plain HTTP on the loopback address; anywhere else HTTPS is in front, and the cookies say Secure.
    app = create_app(orders, open_people(), served, secure_cookies=args.host not in ("127.0.0.1", "localhost"), ui_origins=origins)
    print(f"orderops console on http://{args.host}:{args.port} (people: orderops people list)")
    sys.stdout.flush()
    await uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")).serve()
    return 0


def ui_origins(args) -> set[str]:
    """The Web UI's origins from --ui-origin and ORDEROPS_UI_ORIGINS (comma-separated)."""
    named = [o.strip() for o in os.environ.get("ORDEROPS_UI_ORIGINS", "").split(",") if o.strip()]
    try:
        return set(args.ui_origin) | {web_origin(o) for o in named}
    except argparse.ArgumentTypeError as err:
        raise CliError(f"ORDEROPS_UI_ORIGINS: {err}") from None
