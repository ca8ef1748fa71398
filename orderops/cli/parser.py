"""The command line's grammar: every command, its options and their help, and where it is implemented.

Nothing here imports Temporal, pydantic or the commands themselves: each command names its
function as "module:function", imported only when that command runs, so `orderops --help`
and `orderops lint` start fast (docs/performance.md#start-up).
"""

from __future__ import annotations

import argparse
import os
import re
import urllib.parse

from orderops import config
from orderops.limits import MAX_STOCK, ORDER_ID_PATTERN, whole_number

RENDER_FORMATS = ("mermaid", "dot", "svg", "png")  # orderops/process/render.py draws these


class HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default when it has a real one (not None, not a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if "%(default)" not in help_text and action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            help_text += " (default: %(default)s)"
        return help_text


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _shown(text: str) -> str:
    """An argument as an error message repeats it: quoted, and cut short."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _positive(text: str) -> int:
    value = whole_number(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a whole number (ASCII digits, at most 18)")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _units(text: str) -> int:
    value = _positive(text)
    if value > MAX_STOCK:
        raise argparse.ArgumentTypeError(f"{value} is more than a bin holds ({MAX_STOCK:,})")
    return value


def _order_id(text: str) -> str:
    if not re.fullmatch(ORDER_ID_PATTERN, text):
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not an order id (a letter or digit, then letters, digits, - or _; at most 64)")
    return text


def web_origin(text: str) -> str:
    """A web origin, scheme://host[:port], as browsers send it in the Origin header."""
    parts = urllib.parse.urlsplit(text.strip())
    try:
        parts.port  # noqa: B018 - a port that is no number raises here
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a web origin like https://temporal.example.com[:port]")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def _connection(parser: argparse.ArgumentParser, defaults: bool) -> None:
    def default(value):
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--address", default=default(config.default_address()), help="Temporal frontend HOST:PORT (env TEMPORAL_ADDRESS)")
    parser.add_argument("--namespace", default=default(config.default_namespace()), help="Temporal namespace (env TEMPORAL_NAMESPACE)")
    # A secured cluster (mTLS, Temporal Cloud): the `temporal` CLI's options and environment variables.
    secured = [
        ("--tls-cert-path", "TEMPORAL_TLS_CLIENT_CERT_PATH", "the client certificate (PEM) for mutual TLS"),
        ("--tls-key-path", "TEMPORAL_TLS_CLIENT_KEY_PATH", "its private key (PEM)"),
        ("--tls-ca-path", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "the CA that signed the server's certificate, if not a public one"),
        ("--tls-server-name", "TEMPORAL_TLS_SERVER_NAME", "the name the server's certificate holds, if not the address's host"),
        ("--api-key", "TEMPORAL_API_KEY", "an API key (Temporal Cloud); turns TLS on"),
    ]
    for option, env, summary in secured:
        parser.add_argument(option, default=default(os.environ.get(env)), help=f"{summary} (env {env})")
    parser.add_argument("--tls", action="store_true", default=default(False), help="TLS without a client certificate (env TEMPORAL_TLS)")


def _logging(parser: argparse.ArgumentParser, defaults: bool) -> None:
    def default(value):
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--log-format", choices=["console", "json"], default=default("console"), help="log lines for people or for a collector"
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default=default("info"), help="least severe log lines shown"
    )


class _Commands:
    """Subcommands, each with the shared options it uses (accepted before or after the command)."""

    def __init__(self, subparsers):
        self.subparsers = subparsers
        self.connected, self.offline = Parser(add_help=False), Parser(add_help=False)
        _connection(self.connected, defaults=False)
        _logging(self.connected, defaults=False)
        _logging(self.offline, defaults=False)

    def add(self, name: str, run: str | None, summary: str, description: str | None = None, connects: bool = True, logs: bool = True):
        parents = [self.connected] if connects else [self.offline] if logs else []
        parser = self.subparsers.add_parser(
            name, parents=parents, help=summary, description=description or summary[0].upper() + summary[1:] + "."
        )
        parser.set_defaults(run=run, logs=logs)
        return parser


class _Version(argparse.Action):
    """`--version`, read from the installed package only when asked (importlib.metadata costs 20 ms)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help="show the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import version

        print(f"{parser.prog} {version('orderops')}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="orderops", description="Durable order fulfilment on Temporal, driven by YAML process definitions.")
    parser.add_argument("--version", action=_Version)
    _connection(parser, defaults=True)
    _logging(parser, defaults=True)
    commands = _Commands(parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND"))
    _runtime(commands)
    _orders(commands)
    _decisions(commands)
    _warehouse(commands)
    _definitions(commands)
    _history(commands)
    _people(commands)
    _keys(commands)
    _store(commands)
    return parser


def _runtime(commands: _Commands) -> None:
    p = commands.add("server", "orderops.cli.runtime:run_server", f"run the embedded Temporal dev server (data in {config.home()})")
    p.add_argument("--port", type=_port, default=7233, help="the frontend's port (gRPC), where workers and this CLI connect")
    p.add_argument("--ui-port", type=_port, default=config.UI_PORT, help="the Web UI's port")
    p.add_argument(
        "--codec-endpoint",
        default=config.CODEC_ENDPOINT,
        help="where the Web UI decrypts payloads for a signed-in person (the console's /codec); '' for none",
    )

    p = commands.add("worker", "orderops.cli.runtime:run_worker", "run a worker for order workflows and activities")
    p.add_argument("--process-dir", default=str(config.PROCESS_DIR), help="the definitions checked before serving")
    p.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        default=os.environ.get("ORDEROPS_METRICS"),
        help="serve Prometheus metrics at http://HOST:PORT/metrics (env ORDEROPS_METRICS; e.g. 0.0.0.0:9464)",
    )

    p = commands.add("console", "orderops.cli.runtime:run_console", "the web console where people sign in and decide waiting orders")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on; another than 127.0.0.1 needs HTTPS in front")
    p.add_argument("--port", type=_port, default=config.CONSOLE_PORT, help="the console's port")
    p.add_argument("--process-dir", default=str(config.PROCESS_DIR), help="the definitions whose user tasks fill the inbox")
    p.add_argument(
        "--ui-origin",
        action="append",
        type=web_origin,
        default=[],
        metavar="URL",
        help="where the Temporal Web UI is served (e.g. https://temporal.example.com), allowed to ask /codec to decrypt "
        f"beside http://localhost:{config.UI_PORT}; repeat for more (env ORDEROPS_UI_ORIGINS, comma-separated)",
    )

    p = commands.add("demo", "orderops.cli.runtime:run_demo", "server + worker + sample orders, decided and delivered, then a summary")
    p.add_argument("--orders", type=_positive, help="how many orders (default: each sample scenario once)")
    p.add_argument("--console", action="store_true", help="then serve the console, with orders waiting for a person, until Ctrl-C")
    p.add_argument("--console-port", type=_port, default=config.CONSOLE_PORT, help="the console's port, with --console")


def _orders(commands: _Commands) -> None:
    p = commands.add(
        "start",
        "orderops.cli.orders:start",
        "start orders from JSON (object, list or JSON Lines) or a CSV of order lines ('-' for stdin)",
        "Start orders. A custom process runs with --process FILE; JSON files start all or nothing, CSV rows order by order.",
    )
    p.add_argument("orders", help="the orders file, or - for stdin")
    p.add_argument("--process", default=str(config.DEFAULT_PROCESS), help="the process definition the orders run under")
    p.add_argument("--format", choices=["json", "csv"], help="input format (default: csv for a *.csv file, else json)")

    p = commands.add("status", "orderops.cli.orders:status", "an order's current step, its steps so far and its pending decision")
    p.add_argument("order_id", type=_order_id, help="the order's id (without the order- prefix)")
    p.add_argument("--json", action="store_true", help="the whole status as JSON")

    p = commands.add("list", "orderops.cli.orders:list_orders", "orders by status, from Temporal visibility")
    p.add_argument("--status", help="e.g. awaiting_review, in_transit, completed, rejected, cancelled, failed")
    p.add_argument("--at-risk", action="store_true", help="orders marked at risk of missing a deadline")
    p.add_argument("--breached", action="store_true", help="orders that missed a deadline")
    p.add_argument("--region", help="region tier of the promise, e.g. tier1, remote")
    p.add_argument("--service", help="service level, e.g. standard, express, same_day")
    p.add_argument("--process", metavar="ID", help="orders of this process definition, e.g. standard, returns")
    p.add_argument("--promise-before", metavar="TIME", help="delivery promised before this ISO-8601 time")
    p.add_argument("--limit", type=_positive, default=100, help="at most this many orders")
    p.add_argument("--json", action="store_true", help="rows as JSON")


def _console_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--console", metavar="URL", help="the console that signs for you (default: env ORDEROPS_CONSOLE, then the one you logged in to)"
    )


def _decisions(commands: _Commands) -> None:
    p = commands.add(
        "login", "orderops.cli.session:login", "sign in to the console: the deciding commands act as you for 7 days", connects=False
    )
    p.add_argument("person_id", help="your person id, e.g. amy.chen")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin (for scripts)")
    _console_option(p)
    commands.add("logout", "orderops.cli.session:logout", "end the sign-in `orderops login` keeps", connects=False)

    # The deciding commands go through the console, which signs them for the signed-in person.
    p = commands.add(
        "review", "orderops.cli.decisions:review", "decide an order waiting at a user task (e.g. manual review)", connects=False
    )
    p.add_argument("order_id", type=_order_id, help="the order's id")
    p.add_argument("--decision", required=True, help="an outcome of the pending user task, e.g. approve, edit, reject")
    p.add_argument("--reason", default="", help="why, for the audit trail")
    p.add_argument("--node", help="the user task, when several are open")
    p.add_argument("--changes", help='with --decision edit: JSON of corrected fields, e.g. \'{"phone": "13800138000"}\'')
    _console_option(p)

    p = commands.add(
        "event", "orderops.cli.decisions:event", "report an external event by hand (ops): a scan, a delivery, feedback", connects=False
    )
    p.add_argument("order_id", type=_order_id, help="the order's id")
    p.add_argument("name", help="event name, e.g. delivered, feedback")
    p.add_argument("--data", help="JSON object payload")
    _console_option(p)

    p = commands.add("cancel", "orderops.cli.decisions:cancel", "cancel an order; completed steps are undone in reverse", connects=False)
    p.add_argument("order_id", type=_order_id, help="the order's id")
    p.add_argument("--reason", required=True, help="why, for the audit trail and the customer")
    _console_option(p)

    p = commands.add(
        "change-address",
        "orderops.cli.decisions:change_address",
        "change the delivery address; accepted until the courier handoff",
        connects=False,
    )
    p.add_argument("order_id", type=_order_id, help="the order's id")
    p.add_argument("--province", required=True, help="province of the new address")
    p.add_argument("--city", required=True, help="city")
    p.add_argument("--district", default="", help="district")
    p.add_argument("--street", required=True, help="street and number")
    p.add_argument("--postcode", default="", help="six-digit postcode")
    p.add_argument("--reason", default="", help="why, for the audit trail")
    _console_option(p)

    p = commands.add(
        "merge",
        "orderops.cli.decisions:merge",
        "at manual review: move an order's items into another order of the same customer",
        connects=False,
    )
    p.add_argument("order_id", type=_order_id, help="the order that ends, merged")
    p.add_argument("--into", required=True, type=_order_id, help="the order that takes its items and is reviewed again")
    p.add_argument("--reason", default="", help="why, for the audit trail")
    _console_option(p)

    p = commands.add(
        "return", "orderops.cli.decisions:start_return", "start a return or exchange of a delivered order (process_defs/returns.yaml)"
    )
    p.add_argument("order_id", type=_order_id, help="the delivered order's id")
    p.add_argument("--kind", required=True, choices=["refund", "exchange"], help="money back, or the same goods again")
    p.add_argument(
        "--reason",
        required=True,
        choices=["damaged", "wrong_item", "not_as_described", "quality", "changed_mind"],
        help="why it comes back",
    )
    p.add_argument("--item", action="append", metavar="SKU[:QTY]", help="what comes back (repeatable; default: everything)")
    p.add_argument("--note", default="", help="free text for the warehouse")
    p.add_argument("--process", default=str(config.PROCESS_DIR / "returns.yaml"), help="the returns process definition")


def _warehouse(commands: _Commands) -> None:
    p = commands.add(
        "restock", "orderops.cli.warehouse:restock", "goods received: add stock, close requisitions, wake the orders waiting for it"
    )
    p.add_argument("sku", help="the SKU received")
    p.add_argument("warehouse", help="the warehouse that received it, e.g. SH")
    p.add_argument("quantity", type=_units, help="how many units arrived")
    p.add_argument("--bin", help="default: the SKU's first bin in that warehouse")

    p = commands.add(
        "carrier-outage",
        "orderops.cli.warehouse:carrier_outage",
        "mark a carrier's booking system down (bookings fall back), or --clear it",
        connects=False,
    )
    p.add_argument("carrier", help="a carrier of the standard process, e.g. SF")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--reason", help="why its bookings are refused")
    group.add_argument("--clear", action="store_true", help="accept its bookings again")


def _definitions(commands: _Commands) -> None:
    p = commands.add(
        "lint", "orderops.cli.lint:lint", "check process definitions; file:line:col: message on error", connects=False, logs=False
    )
    p.add_argument("files", nargs="+", help="definition files")

    p = commands.add(
        "schema", "orderops.cli.definitions:schema", "JSON Schema of the process-definition language", connects=False, logs=False
    )
    p.add_argument("--out", help="write here instead of stdout")
    p.add_argument("--promise-policy", action="store_true", help="the schema of promise policy files instead")

    p = commands.add(
        "activities",
        "orderops.cli.definitions:activities",
        "the activities a definition may call, with their input and result fields",
        connects=False,
        logs=False,
    )
    p.add_argument("--markdown", action="store_true", help="as Markdown (docs/activities.md is this)")

    p = commands.add(
        "diff",
        "orderops.cli.definitions:diff",
        "what changes between two definitions, and which orders wait where it changes (--address to check them)",
    )
    p.add_argument("old", help="the definition orders run under now")
    p.add_argument("new", help="the definition that replaces it")

    p = commands.add(
        "render",
        "orderops.cli.definitions:render",
        "draw a definition (mermaid, dot, svg, png); --order colours an order's path (needs --address)",
    )
    p.add_argument("file", nargs="?", help="the definition file")
    p.add_argument("--format", choices=RENDER_FORMATS, default="mermaid", help="the drawing's format")
    p.add_argument("--out", help="write here instead of stdout")
    p.add_argument("--order", help="colour the nodes this order went through (from its history)")


def _history(commands: _Commands) -> None:
    p = commands.add("audit", "orderops.cli.history:audit", "an order's timeline from its event history (live, or from an exported file)")
    p.add_argument("order_id", nargs="?", type=_order_id, help="the order's id (or --file)")
    p.add_argument("--file", help="a history JSON file from `orderops export` or `temporal workflow show --output json`")
    p.add_argument("--json", action="store_true", help="the timeline as JSON")

    p = commands.add("export", "orderops.cli.history:export", "write order histories as JSON files (one per order)")
    p.add_argument("order_ids", nargs="*", metavar="ORDER_ID", type=_order_id, help="the orders to export")
    p.add_argument("--query", help="visibility query, e.g. \"ProcessVersion = 1 AND OrderStatus = 'completed'\"")
    p.add_argument("--out", required=True, help="directory to write into")
    p.add_argument(
        "--encrypted",
        action="store_true",
        help="keep the payloads as Temporal holds them, encrypted (audit --file and replay read them with the keys); "
        "by default they are decrypted, customer data included",
    )

    p = commands.add("replay", "orderops.cli.history:replay", "replay histories with the current worker code; non-zero if any diverged")
    p.add_argument("paths", nargs="*", metavar="FILE_OR_DIR", help="history files, or directories of them")
    p.add_argument("--query", help="replay the orders this visibility query finds on the cluster")
    p.add_argument(
        "--fast",
        action="store_true",
        help="without the workflow sandbox: the same comparison of commands, 2.5x as fast, but a clock or I/O call the worker would "
        "refuse goes unseen (for auditing many histories, not for checking a deploy)",
    )

    p = commands.add(
        "report", "orderops.cli.report:report", "KPIs over finished orders: promise kept, on time, order-to-ship, reviews, errors, feedback"
    )
    p.add_argument("--since", help="ISO date or time (default: 30 days before --until)")
    p.add_argument("--until", help="ISO date or time (default: now)")
    p.add_argument("--json", action="store_true", help="the figures as JSON")
    p.add_argument("--html", metavar="FILE", help="write a self-contained page with charts")
    p.add_argument("--query", help='narrow with a visibility query, e.g. "ProcessVersion = 3"')


def _people(commands: _Commands) -> None:
    group = commands.add(
        "people",
        None,  # each action names its own function
        "the people who decide orders: add, passwd, disable, enable, list",
        f"The people who decide orders and their roles, kept in {config.home() / 'people.db'}.",
        connects=False,
    )
    people = group.add_subparsers(dest="people_command", required=True, parser_class=Parser, metavar="ACTION", help="what to do")
    secret = "read the password from the first line of stdin instead of asking (for scripts)"

    p = people.add_parser("add", help="add a person with a name, roles and a password")
    p.set_defaults(run="orderops.cli.people:add")
    p.add_argument("person_id", help="the id they sign in with, e.g. amy.chen")
    p.add_argument("--name", required=True, help="the name shown beside their decisions")
    p.add_argument("--role", action="append", required=True, dest="roles", help="a role they hold (repeat for more), e.g. support_agent")
    p.add_argument("--password-stdin", action="store_true", help=secret)

    p = people.add_parser("passwd", help="set a person's password (signs them out everywhere)")
    p.set_defaults(run="orderops.cli.people:passwd")
    p.add_argument("person_id", help="whose password")
    p.add_argument("--password-stdin", action="store_true", help=secret)

    for action, summary in (
        ("disable", "stop a person signing in or deciding (their tokens end)"),
        ("enable", "let a person sign in again"),
    ):
        p = people.add_parser(action, help=summary)
        p.set_defaults(run=f"orderops.cli.people:{action}")
        p.add_argument("person_id", help="who")

    p = people.add_parser("token", help="a new token for a service account's calls to the console's /api (printed once, valid a year)")
    p.set_defaults(run="orderops.cli.people:token")
    p.add_argument("person_id", help="the service account (a person with the roles it acts in)")

    p = people.add_parser("list", help="everyone, with their roles")
    p.set_defaults(run="orderops.cli.people:list_people")
    p.add_argument("--json", action="store_true", help="as JSON")


def _keys(commands: _Commands) -> None:
    group = commands.add(
        "keys",
        None,
        "the keys that encrypt customer data in Temporal: new, rotate, list",
        f"AES-256 keys under {config.home() / 'codec-keys'} (or env ORDEROPS_CODEC_KEYS); the newest encrypts, every one decrypts.",
        connects=False,
    )
    keys = group.add_subparsers(dest="keys_command", required=True, parser_class=Parser, metavar="ACTION", help="what to do")
    keys.add_parser("new", help="make the first key (the worker and the console also make it on first start)").set_defaults(
        run="orderops.cli.keys:new"
    )
    keys.add_parser("rotate", help="add a key that encrypts from now on; the older ones still decrypt").set_defaults(
        run="orderops.cli.keys:rotate"
    )
    keys.add_parser("list", help="the keys, newest (the one that encrypts) last").set_defaults(run="orderops.cli.keys:list_keys")


def _store(commands: _Commands) -> None:
    group = commands.add(
        "store",
        None,
        "the warehouse store's layout: status, upgrade",
        f"The store at env ORDEROPS_STORE_URL (postgresql://user@host:5432/db), else the SQLite file {config.home() / 'warehouse.db'}.",
        connects=False,
    )
    store = group.add_subparsers(dest="store_command", required=True, parser_class=Parser, metavar="ACTION", help="what to do")
    store.add_parser("status", help="where the store is and its layout").set_defaults(run="orderops.cli.store:status")
    store.add_parser("upgrade", help="bring the store, with its data, to this version's layout (stop the workers first)").set_defaults(
        run="orderops.cli.store:upgrade"
    )
