"""The production cluster (docker-compose.yml, Dockerfile, deploy/), checked statically: no Docker engine,
no network, in a second or two.

No container is started here, so what these tests cannot see (an image tag that does not exist on the
registry, a server that refuses its configuration) is not checked; docs/deployment.md says what was run.
What they do check, each against the code or the file that decides it rather than a copy:

- the Compose file follows the Compose specification's JSON Schema, vendored as compose-spec.json
  (from github.com/compose-spec/compose-spec, schema/compose-spec.json, Apache License 2.0; its
  commit and the licence are in README.md and compose-spec.LICENSE beside this file), once filled in
  from deploy/orderops.env.example the way `docker compose --env-file` does, which needs no real env file;
- every image is pinned to an exact version;
- the worker's and the console's commands parse with orderops's own parser, in their service's
  environment, and what they then do (address, namespace, ports, metrics) fits the other services;
- every environment variable the code reads is set for the worker and the console, or listed below
  as deliberately unset, with the reason;
- the files the services mount or build from exist and are where those services read them;
- Temporal's dynamic config, search attributes and databases are the ones orderops needs;
- Prometheus scrapes every worker, and the Grafana dashboard's metrics are ones the workers serve.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from orderops import config, search_attributes, server
from orderops.cli.parser import build_parser
from orderops.codec import Keyring

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "orderops.env.example"
DOCKERFILE = ROOT / "Dockerfile"
# The services that run orderops, each named after its subcommand.
ORDEROPS_SERVICES = ("worker", "console")
# Where the code that runs in those services reads its environment.
SOURCES = [ROOT / "orderops", ROOT / "activities", ROOT / "workflows", ROOT / "worker.py", ROOT / "starter.py"]

# Variables the code reads that a service deliberately goes without: name -> (those services, why).
DELIBERATELY_UNSET: dict[str, tuple[frozenset[str], str]] = {
    **{
        name: (
            frozenset(ORDEROPS_SERVICES),
            "the bundled Temporal server speaks plain gRPC on the project's own network; mutual TLS or "
            "Temporal Cloud set these (docs/deployment.md, 'Temporal Cloud')",
        )
        for name in (
            "TEMPORAL_TLS",
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
            "TEMPORAL_TLS_CLIENT_KEY_PATH",
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            "TEMPORAL_TLS_SERVER_NAME",
            "TEMPORAL_API_KEY",
        )
    },
    **{
        name: (
            frozenset(ORDEROPS_SERVICES),
            "the worker's measured defaults hold (docs/operations.md#worker); only the benchmarks vary them",
        )
        for name in (
            "ORDEROPS_MAX_CONCURRENT_WORKFLOW_TASKS",
            "ORDEROPS_MAX_CACHED_WORKFLOWS",
            "ORDEROPS_MAX_CONCURRENT_WORKFLOW_TASK_POLLS",
        )
    },
    **{
        name: (
            frozenset(ORDEROPS_SERVICES),
            "read by an operator's deciding commands (orderops review, event, cancel, ...) to reach the console; "
            "neither the worker nor the console is such a client",
        )
        for name in ("ORDEROPS_CONSOLE", "ORDEROPS_TOKEN")
    },
    "ORDEROPS_METRICS": (frozenset({"console"}), "only `orderops worker --metrics` serves metrics"),
    "ORDEROPS_UI_ORIGINS": (frozenset({"worker"}), "only the console serves the Web UI's codec endpoint"),
    **{
        f"ORDEROPS_HOOK_SECRET_{source}": (frozenset({"worker"}), "only the console answers the event sources' webhooks")
        for source in ("PAYMENTS", "COURIER", "SCANNER", "RETURNS")
    },
}
# The variable name prefixes the code completes at run time (f"ORDEROPS_HOOK_SECRET_{source.upper()}").
PREFIX_COMPLETIONS = {"ORDEROPS_HOOK_SECRET_": "orderops.console.hooks:SOURCES"}
# Images whose projects number a release MAJOR.MINOR: PostgreSQL since 10.
TWO_PART_VERSIONS = {"postgres"}
# Metric names not served by orderops or the SDK: Prometheus's own, per scrape target.
PROMETHEUS_SYNTHETIC = {"up"}
# Labels every metric has from the SDK and Prometheus (docs/operations.md#metrics), beside orderops's own.
COMMON_LABELS = {"namespace", "task_queue", "workflow_type", "activity_type", "service_name", "job", "instance", "le"}
# The gauges a worker serves from outside the workflow, where they are defined (a dict keyed by name).
WORKER_GAUGES = "orderops.open_orders:GAUGES"


# -- reading the files -------------------------------------------------------------------------------


def env_example() -> dict[str, str]:
    """deploy/orderops.env.example as Compose reads an env file: KEY=VALUE lines, # comments."""
    values = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"{ENV_EXAMPLE.name}:{number}: not KEY=VALUE: {line!r}"
        values[key] = value
    return values


INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: str, env: dict[str, str], seen: dict[str, str]) -> str:
    """One string as Compose fills it in (${VAR}, ${VAR:-default}, ${VAR:?error}, ${VAR:+other}, $$);
    `seen` collects each variable with its operator ('' for none)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op") or "", match.group("arg") or ""
        seen[name] = op
        present = env.get(name)
        empty = present is None or (op.startswith(":") and present == "")
        if op.endswith("-"):
            return arg if empty else str(present)
        if op.endswith("?"):
            if empty:
                raise AssertionError(f"${{{name}}} is required ({arg}) and the env file leaves it unset")
            return str(present)
        if op.endswith("+"):
            return "" if empty else arg
        return present or ""

    return INTERPOLATION.sub(one, value)


def filled_in(node: Any, env: dict[str, str], seen: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, seen)
    if isinstance(node, list):
        return [filled_in(item, env, seen) for item in node]
    if isinstance(node, dict):
        return {key: filled_in(value, env, seen) for key, value in node.items()}
    return node


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def operator_env() -> dict[str, str]:
    """The example env file as an operator fills it in: each empty placeholder given a value."""
    return {key: value or f"placeholder-for-{key}" for key, value in env_example().items()}


def compose() -> dict[str, Any]:
    """docker-compose.yml as `docker compose --env-file <a filled-in copy of the example>` sees it."""
    return filled_in(raw_compose(), operator_env(), {})


def referenced_variables() -> dict[str, str]:
    seen: dict[str, str] = {}
    filled_in(raw_compose(), operator_env(), seen)
    return seen


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def bind_mounts(svc: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source relative to the project, target, read-only) of each bind mount; named volumes left out."""
    mounts = []
    for volume in svc.get("volumes") or []:
        if isinstance(volume, str):
            source, target, *rest = volume.split(":")
            if source.startswith((".", "/")):
                mounts.append((source, target, "ro" in (rest[0].split(",") if rest else [])))
        elif volume.get("type") == "bind":
            mounts.append((volume["source"], volume["target"], bool(volume.get("read_only"))))
    return mounts


def mount_target(svc: dict[str, Any], source: str) -> str:
    for mounted, target, _ in bind_mounts(svc):
        if Path(mounted) == Path(source):
            return target
    raise AssertionError(f"{source} is not mounted into the service")


def published(svc: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """container port -> (host address, host port) of each published port."""
    ports = {}
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            ports[int(entry["target"])] = (entry.get("host_ip", ""), int(entry["published"]))
            continue
        parts = str(entry).split(":")
        host_ip, host_port, container_port = ([""] * (3 - len(parts)) + parts)[-3:]
        ports[int(container_port)] = (host_ip, int(host_port or container_port))
    return ports


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and not line.startswith("#")]


def pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# -- the orderops command line, as a service runs it ---------------------------------------------------


def parse_orderops(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """orderops's own parser, built and run in `env` (its defaults read the environment) instead of this process's."""
    for name in list(os.environ):
        if name.startswith(("ORDEROPS_", "TEMPORAL_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert argv and argv[0] == "orderops", f"not an orderops command: {argv}"
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit as exit:
        raise AssertionError(f"orderops refuses {shlex.join(argv)} (exit status {exit.code})") from None


def runs(service_name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    svc = service(service_name)
    return parse_orderops(command(svc), environment(svc), monkeypatch)


# -- the environment the code reads --------------------------------------------------------------------

ENV_NAME = re.compile(r"(?:ORDEROPS|TEMPORAL)_[A-Z0-9_]*[A-Z0-9]")
ENV_PREFIX = re.compile(r"(?:ORDEROPS|TEMPORAL)_[A-Z0-9_]*_")


def python_files() -> Iterator[Path]:
    for source in SOURCES:
        yield from sorted(source.rglob("*.py")) if source.is_dir() else [source]


def variables_the_code_reads() -> tuple[set[str], set[str]]:
    """Every string constant of the code that is exactly a variable's name, and every f-string that
    starts with a prefix of one: (names, prefixes)."""
    names, prefixes = set(), set()
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value):
                names.add(node.value)
            elif isinstance(node, ast.JoinedStr) and len(node.values) > 1:
                head = node.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str) and ENV_PREFIX.fullmatch(head.value):
                    prefixes.add(head.value)
    return names, prefixes


def completed(prefix: str) -> set[str]:
    module, _, attribute = PREFIX_COMPLETIONS[prefix].partition(":")
    return {prefix + key.upper() for key in getattr(importlib.import_module(module), attribute)}


# -- tests: the file as a whole ----------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    return json.loads((HERE / "compose-spec.json").read_text())


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(compose_schema())
    return [f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}" for error in validator.iter_errors(document)]


def test_the_compose_file_follows_the_compose_specification():
    assert schema_errors(compose()) == []


def test_the_schema_refuses_what_compose_would():
    # The vendored schema is strict: a misspelt key, or a wrong type, is an error.
    misspelt = compose()
    misspelt["services"]["worker"]["deploy"]["replcas"] = 3
    assert any("replcas" in error for error in schema_errors(misspelt))
    wrong = compose()
    wrong["services"]["worker"]["command"] = {"orderops": "worker"}
    assert any(error.startswith("services/worker/command") for error in schema_errors(wrong))


def test_every_variable_compose_fills_in_is_in_the_env_example_and_every_example_variable_is_used():
    example = env_example()
    used = referenced_variables()
    assert sorted(set(used) - set(example)) == [], "variables docker-compose.yml uses that deploy/orderops.env.example does not list"
    assert sorted(set(example) - set(used)) == [], "variables of deploy/orderops.env.example that docker-compose.yml does not use"


def test_secrets_are_required_and_the_env_example_holds_none():
    example, used = env_example(), referenced_variables()
    secrets = {name for name in example if re.search(r"PASSWORD|SECRET|_KEYS$", name)}
    assert {"POSTGRES_PASSWORD", "ORDEROPS_DB_PASSWORD", "ORDEROPS_CODEC_KEYS", "GRAFANA_ADMIN_PASSWORD"} <= secrets
    assert {name: example[name] for name in secrets if example[name]} == {}, "the example must leave secrets empty (placeholders)"
    # An empty secret must stop Compose rather than start a service with an empty password or no codec key;
    # only the webhook secrets may be empty (the console then makes its own).
    optional = {name for name in secrets if name.startswith("ORDEROPS_HOOK_SECRET_")}
    assert {name: used[name] for name in secrets - optional if used[name] != ":?"} == {}


def test_the_env_example_says_how_to_make_codec_keys_and_its_recipe_makes_a_working_key(tmp_path):
    recipes = [
        line[len("# $ ") :] for line in ENV_EXAMPLE.read_text().splitlines() if line.startswith("# $ ") and "orderops keys new" in line
    ]
    assert len(recipes) == 1, "deploy/orderops.env.example should give one `# $ ...orderops keys new...` recipe"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("ORDEROPS_", "TEMPORAL_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the project's orderops
    env["TMPDIR"] = str(tmp_path)
    made = subprocess.run(["sh", "-c", recipes[0]], capture_output=True, text=True, env=env, timeout=60)
    assert made.returncode == 0, made.stderr
    name, _, value = made.stdout.strip().partition("=")
    assert name == "ORDEROPS_CODEC_KEYS"
    ring = Keyring.parse(value)
    assert len(ring.keys) == 1 and all(len(key) == 32 for key in ring.keys.values())
    assert list(tmp_path.iterdir()) == [], "the recipe leaves its throwaway ORDEROPS_HOME behind"


# -- images -----------------------------------------------------------------------------------------


def pinned(image: str) -> bool:
    """An exact release: repo:TAG with TAG the full version number (v1.2.3, 1.2.3-suffix), or a digest."""
    if "@sha256:" in image:
        return True
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return False  # no tag, or host:port/repo without one
    parts = 2 if repository.split("/")[-1] in TWO_PART_VERSIONS else 3
    return re.fullmatch(rf"v?\d+(\.\d+){{{parts - 1}}}(-[A-Za-z0-9][A-Za-z0-9.-]*)?", tag) is not None


def test_the_pin_rule_refuses_floating_tags():
    for floating in (
        "postgres",
        "postgres:latest",
        "postgres:16",
        "python:3.11-slim",
        "grafana/grafana:13",
        "prom/prometheus:v3.15",
        "registry:5000/x",
    ):
        assert not pinned(floating), floating
    for exact in ("postgres:16.15", "python:3.11.17-slim-bookworm", "prom/prometheus:v3.15.0", "temporalio/server:1.32.0", "x@sha256:ab"):
        assert pinned(exact), exact


def test_every_image_is_pinned_to_an_exact_version():
    for name, svc in compose()["services"].items():
        image = svc.get("image")
        assert image, f"{name}: no image"
        if "build" in svc:
            # Built here: tagged with the project's own version, so two builds are told apart.
            assert image.rpartition(":")[2] == pyproject_version(), f"{name}: {image} is not tagged {pyproject_version()}"
        else:
            assert pinned(image), f"{name}: {image} is not an exact version"
    bases = [
        next(word for word in arguments.split() if not word.startswith("--"))
        for kind, arguments in dockerfile_instructions()
        if kind == "FROM"
    ]
    assert bases and all(pinned(base) for base in bases), bases


# -- the orderops services ------------------------------------------------------------------------------


def test_an_unknown_orderops_command_is_refused(monkeypatch):
    with pytest.raises(AssertionError, match="refuses orderops wroker"):
        parse_orderops(["orderops", "wroker"], {}, monkeypatch)


def test_every_orderops_service_runs_a_real_orderops_command(monkeypatch):
    services = compose()["services"]
    running = {name for name, svc in services.items() if command(svc)[:1] == ["orderops"]}
    assert set(ORDEROPS_SERVICES) <= running
    for name in running:
        args = runs(name, monkeypatch)
        if name in ORDEROPS_SERVICES:
            assert args.command == name, f"the {name} service runs `orderops {args.command}`"
        module, _, function = args.run.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), args.run


def test_the_worker_and_the_console_reach_temporal_in_the_namespace_made_for_them(monkeypatch):
    temporal = service("temporal")
    frontend = int(environment(temporal).get("FRONTEND_GRPC_PORT", "7233"))  # the server's own default
    namespace = environment(service("temporal-namespace"))["TEMPORAL_NAMESPACE"]
    assert environment(service("temporal-namespace"))["TEMPORAL_ADDRESS"] == f"temporal:{frontend}"
    assert environment(service("temporal-ui"))["TEMPORAL_ADDRESS"] == f"temporal:{frontend}"
    assert environment(service("temporal-ui"))["TEMPORAL_DEFAULT_NAMESPACE"] == namespace
    for name in ORDEROPS_SERVICES:
        args = runs(name, monkeypatch)
        assert (args.address, args.namespace) == (f"temporal:{frontend}", namespace), name
        depends = service(name)["depends_on"]
        assert depends["temporal-namespace"]["condition"] == "service_completed_successfully", name
        assert depends["postgresql"]["condition"] == "service_healthy", name


def test_the_orderops_services_read_the_definitions_the_image_holds(monkeypatch):
    workdir = [arguments for kind, arguments in dockerfile_instructions() if kind == "WORKDIR"][-1]
    copied = {arguments.split()[-1].rstrip("/") for kind, arguments in dockerfile_instructions() if kind == "COPY"}
    assert "./process_defs" in copied and "./samples" in copied, "the image needs process_defs/ and samples/ beside the package"
    for name in ORDEROPS_SERVICES:
        assert runs(name, monkeypatch).process_dir == f"{workdir}/process_defs", name


def test_the_worker_scales_and_serves_metrics_where_prometheus_scrapes_every_replica(monkeypatch):
    worker = service("worker")
    assert isinstance(worker["deploy"]["replicas"], int) and worker["deploy"]["replicas"] >= 2
    # A fixed container name or host port would stop a second replica from starting.
    assert "container_name" not in worker and not worker.get("ports")
    host, port = host_port(runs("worker", monkeypatch).metrics)
    assert not ipaddress.ip_address(host).is_loopback, "Prometheus, in another container, cannot reach a loopback address"
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    workers = [sd for job in jobs.values() for sd in job.get("dns_sd_configs", []) if "worker" in sd["names"]]
    assert len(workers) == 1 and workers[0]["port"] == port and workers[0].get("type", "SRV") == "A", workers
    temporal_metrics = host_port(environment(service("temporal"))["PROMETHEUS_ENDPOINT"])[1]
    assert f"temporal:{temporal_metrics}" in [target for config in jobs["temporal"]["static_configs"] for target in config["targets"]]


def test_the_console_is_published_where_the_web_ui_asks_it_to_decrypt(monkeypatch):
    from orderops.console.app import UI_ORIGINS  # what the console's codec server lets in (CORS)

    console, ui = service("console"), service("temporal-ui")
    args = runs("console", monkeypatch)
    assert not ipaddress.ip_address(args.host).is_loopback, "a console on loopback is unreachable through its published port"
    assert args.port in published(console)
    _, console_on_host = published(console)[args.port]
    ui_env = environment(ui)
    endpoint = urlparse(ui_env["TEMPORAL_CODEC_ENDPOINT"])
    # The browser calls it, so it names the host's published port, with the path of orderops's own default.
    assert endpoint.hostname in ("localhost", "127.0.0.1") and endpoint.port == console_on_host
    assert endpoint.path == urlparse(config.CODEC_ENDPOINT).path
    assert ui_env["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"  # the console's session cookie goes with it
    _, ui_on_host = published(ui)[8080]  # the UI image's own port (TEMPORAL_UI_PORT unset)
    assert "TEMPORAL_UI_PORT" not in ui_env
    origins = {f"http://localhost:{ui_on_host}", f"http://127.0.0.1:{ui_on_host}"}
    assert origins <= UI_ORIGINS, f"the console's codec server allows {sorted(UI_ORIGINS)} only"
    assert origins <= set(ui_env["TEMPORAL_CORS_ORIGINS"].split(","))


def test_the_console_healthcheck_asks_a_page_the_console_serves(monkeypatch):
    port = runs("console", monkeypatch).port
    check = " ".join(service("console")["healthcheck"]["test"])
    url = urlparse(re.search(r"https?://[^'\" ]+", check).group(0))  # type: ignore[union-attr]
    assert url.port == port
    routes = re.findall(r'@app\.get\("([^"]+)"', (ROOT / "orderops" / "console" / "app.py").read_text())
    assert url.path in routes


def test_every_published_port_is_bound_to_loopback():
    for name, svc in compose()["services"].items():
        for container_port, (host_ip, _) in published(svc).items():
            assert host_ip == "127.0.0.1", f"{name}: port {container_port} is published on every interface"


# -- the environment the code reads ---------------------------------------------------------------------


def test_the_source_scan_finds_the_variables_it_should():
    names, prefixes = variables_the_code_reads()
    assert {
        "ORDEROPS_HOME",
        "ORDEROPS_CODEC_KEYS",
        "ORDEROPS_METRICS",
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_API_KEY",
    } <= names
    assert "ORDEROPS_HOOK_SECRET_" in prefixes
    assert set(prefixes) <= set(PREFIX_COMPLETIONS), (
        f"complete these prefixes in PREFIX_COMPLETIONS: {sorted(set(prefixes) - set(PREFIX_COMPLETIONS))}"
    )


def test_every_variable_the_code_reads_is_set_for_the_worker_and_the_console_or_deliberately_unset():
    names, prefixes = variables_the_code_reads()
    read = names | {name for prefix in prefixes for name in completed(prefix)}
    missing = []
    for name in ORDEROPS_SERVICES:
        env = environment(service(name))
        for variable in sorted(read):
            unset_in, _ = DELIBERATELY_UNSET.get(variable, (frozenset(), ""))
            if variable in env and name in unset_in:
                missing.append(f"{name}: {variable} is set, yet DELIBERATELY_UNSET says it is not")
            elif variable not in env and name not in unset_in:
                missing.append(f"{name}: {variable} is read by the code but neither set nor in DELIBERATELY_UNSET")
    assert missing == []
    stale = sorted(set(DELIBERATELY_UNSET) - read)
    assert stale == [], f"DELIBERATELY_UNSET names variables the code no longer reads: {stale}"


def test_the_orderops_services_use_the_postgresql_store_made_for_them():
    postgresql = service("postgresql")
    init = (ROOT / "deploy" / "postgres" / "init-databases.sh").read_text()
    for name in ORDEROPS_SERVICES:
        store = urlparse(environment(service(name))["ORDEROPS_STORE_URL"])
        assert (store.scheme, store.hostname, store.port) == ("postgresql", "postgresql", 5432), name
        assert store.password is None, f"{name}: the password goes in PGPASSWORD, not in the URL that logs may show"
        database = store.path.lstrip("/")
        assert re.search(rf"CREATE ROLE {store.username} LOGIN PASSWORD :'(\w+)';", init)
        assert f"CREATE DATABASE {database} OWNER {store.username};" in init
    # The same secret on both sides of each login: the orderops role, and Temporal's superuser.
    raw_env = {name: environment(svc) for name, svc in raw_compose()["services"].items()}  # ${...} as written
    assert raw_env["worker"]["PGPASSWORD"] == raw_env["console"]["PGPASSWORD"] == raw_env["postgresql"]["ORDEROPS_DB_PASSWORD"]
    assert raw_env["postgresql"]["POSTGRES_PASSWORD"] == raw_env["temporal"]["POSTGRES_PWD"] == raw_env["temporal-schema"]["SQL_PASSWORD"]
    user = environment(postgresql)["POSTGRES_USER"]
    assert environment(service("temporal"))["POSTGRES_USER"] == environment(service("temporal-schema"))["POSTGRES_USER"] == user
    # Temporal's two databases: the image makes POSTGRES_DB, the init script the visibility one.
    temporal_env = environment(service("temporal"))
    assert temporal_env["DBNAME"] == environment(postgresql)["POSTGRES_DB"]
    assert f"CREATE DATABASE {temporal_env['VISIBILITY_DBNAME']};" in init
    for key in ("DBNAME", "VISIBILITY_DBNAME", "POSTGRES_SEEDS", "DB_PORT"):
        assert environment(service("temporal-schema"))[key] == temporal_env[key], key


# -- files ------------------------------------------------------------------------------------------


def dockerignore_keeps(path: str) -> bool:
    """Whether the build context holds `path`, by .dockerignore's rules: the last rule that matches the
    path or a folder above it wins (Docker's matching, near enough for these patterns)."""
    kept = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        exception = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        parts = Path(path).parts
        if any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts))) or fnmatch.fnmatch(path, pattern):
            kept = exception
    return kept


def test_the_files_compose_mounts_and_builds_from_exist():
    for name, svc in compose()["services"].items():
        if "build" in svc:
            context = ROOT / svc["build"]["context"]
            assert (context / svc["build"].get("dockerfile", "Dockerfile")).is_file(), name
        for source, target, read_only in bind_mounts(svc):
            assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            assert read_only, f"{name}: {source} is mounted writable at {target}"
    for kind, arguments in dockerfile_instructions():
        if kind == "COPY":
            for source in arguments.split()[:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
                assert dockerignore_keeps(source), f".dockerignore leaves {source} out of the build context"
    # The deployment's secrets and a developer's home never reach the image.
    for secret in ("deploy/orderops.env", ".orderops/codec-keys/k1.key", ".venv/bin/python", "tests/conftest.py"):
        assert not dockerignore_keeps(secret), secret


def test_the_image_runs_as_a_user_of_its_own():
    instructions = dockerfile_instructions()
    users = [arguments for kind, arguments in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert any(kind == "RUN" and "graphviz" in arguments for kind, arguments in instructions), (
        "the console draws diagrams with Graphviz's dot"
    )


def test_each_service_reads_the_file_mounted_for_it():
    temporal = service("temporal")
    assert environment(temporal)["DYNAMIC_CONFIG_FILE_PATH"] == mount_target(temporal, "./deploy/temporal/dynamicconfig.yaml")
    for job, script in (("temporal-schema", "setup-schema.sh"), ("temporal-namespace", "create-namespace.sh")):
        assert command(service(job)) == [mount_target(service(job), f"./deploy/temporal/{script}")], job
    initdb = mount_target(service("postgresql"), "./deploy/postgres/init-databases.sh")
    assert initdb.startswith("/docker-entrypoint-initdb.d/") and initdb.endswith(".sh")
    prometheus = service("prometheus")
    assert f"--config.file={mount_target(prometheus, './deploy/prometheus/prometheus.yml')}" in command(prometheus)
    grafana = service("grafana")
    assert mount_target(grafana, "./deploy/grafana/provisioning") == environment(grafana).get(
        "GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"
    )
    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/orderops.yaml").read_text())["providers"]
    dashboards = mount_target(grafana, "./deploy/grafana/dashboards")
    assert [provider["options"]["path"] for provider in providers] == [dashboards]
    home = Path(environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.parent == Path(dashboards) and (ROOT / "deploy/grafana/dashboards" / home.name).is_file()


# -- Temporal ---------------------------------------------------------------------------------------


def test_the_dynamic_config_holds_the_values_orderops_server_passes():
    flags = server.PRIORITY_CONFIG
    given = {}
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        assert flag == "--dynamic-config-value"
        key, _, text = value.partition("=")
        given[key] = yaml.safe_load(text)  # as the dev server reads KEY=VALUE: a YAML/JSON value
    assert given, "orderops/server.py passes no dynamic config"
    file = yaml.safe_load((ROOT / "deploy/temporal/dynamicconfig.yaml").read_text())
    unconstrained = {key: [entry["value"] for entry in entries if not entry.get("constraints")] for key, entries in file.items()}
    assert {key: unconstrained.get(key) for key in given} == {key: [value] for key, value in given.items()}


def test_the_namespace_job_creates_the_search_attributes_orderops_registers():
    flags = search_attributes.dev_server_flags()
    registered = {tuple(value.split("=")) for flag, value in zip(flags[::2], flags[1::2], strict=True) if flag == "--search-attribute"}
    script = (ROOT / "deploy/temporal/create-namespace.sh").read_text()
    created = set(re.findall(r"^search_attribute_created (\w+) (\w+)$", script, re.MULTILINE))
    assert registered and created == registered


# -- Grafana ----------------------------------------------------------------------------------------


def text_of(node: ast.AST | None) -> str | None:
    """A string literal's text; None for anything else."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def dict_keys(node: ast.AST) -> set[str]:
    """The string keys of a dict literal."""
    return {key for key in map(text_of, node.keys) if key is not None} if isinstance(node, ast.Dict) else set()


def metric_families() -> dict[str, tuple[str, set[str]]]:
    """orderops/metrics.py's metrics: name -> (kind, labels), read from its create_* and add/record calls."""
    tree = ast.parse((ROOT / "orderops" / "metrics.py").read_text())
    families: dict[str, tuple[str, set[str]]] = {}
    attributes: dict[str, str] = {}  # self._x -> its metric's name
    common: set[str] = set()  # meter.with_additional_attributes({...})
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = text_of(node.args[0]) if node.args else None
            if node.func.attr.startswith("create_") and name:
                families[name] = (node.func.attr.removeprefix("create_").split("_")[0], set())
            if node.func.attr == "with_additional_attributes" and node.args:
                common |= dict_keys(node.args[0])
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute) and isinstance(node.value, ast.Call):
            call = node.value
            name = text_of(call.args[0]) if call.args else None
            if isinstance(call.func, ast.Attribute) and call.func.attr.startswith("create_") and name:
                attributes[node.targets[0].attr] = name
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("add", "record"):
            owner = node.func.value
            if isinstance(owner, ast.Attribute) and owner.attr in attributes:
                for arg in node.args:
                    families[attributes[owner.attr]][1].update(dict_keys(arg))
    for _, labels in families.values():
        labels |= common
    return families


def counters_have_total_suffix() -> bool:
    """connect.py's PrometheusConfig(counters_total_suffix=...): whether the exporter appends _total to counters."""
    for node in ast.walk(ast.parse((ROOT / "orderops" / "connect.py").read_text())):
        if isinstance(node, ast.keyword) and node.arg == "counters_total_suffix" and isinstance(node.value, ast.Constant):
            return bool(node.value.value)
    return False


def worker_gauges() -> set[str]:
    """The gauges the worker itself serves (orderops/open_orders.py), none while that module does not exist."""
    module, _, attribute = WORKER_GAUGES.partition(":")
    if importlib.util.find_spec(module) is None:
        return set()
    return set(getattr(importlib.import_module(module), attribute))


def orderops_metric_names() -> dict[str, str]:
    """Each series name the workers serve for orderops's metrics -> its family."""
    names = {name: name for name in worker_gauges()}
    for family, (kind, _) in metric_families().items():
        if kind == "counter":
            names[family + ("_total" if counters_have_total_suffix() else "")] = family
        elif kind == "histogram":
            names.update({family + suffix: family for suffix in ("_bucket", "_sum", "_count")})
        else:
            names[family] = family
    return names


def sdk_metric_names() -> set[str]:
    """The SDK's metrics tests/e2e/test_metrics.py scrapes from a real worker: samples(text, "temporal_...")."""
    names = set()
    for node in ast.walk(ast.parse((ROOT / "tests" / "e2e" / "test_metrics.py").read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "samples" and len(node.args) == 2:
            name = text_of(node.args[1])
            if name and name.startswith("temporal_"):
                names.add(name)
    return names


def panel_queries(file: str, panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for panel in panels:
        targets = panel.get("targets", [])
        assert panel.get("type") == "row" or targets, f"{file}: panel {panel.get('title')!r} has no query"
        yield from ((f"{file}: {panel.get('title')}", target["expr"]) for target in targets)
        yield from panel_queries(file, panel.get("panels", []))  # a row's panels


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable of the dashboards."""
    found: list[tuple[str, str]] = []
    for path in sorted((ROOT / "deploy/grafana/dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        found += panel_queries(path.name, dashboard["panels"])
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            found.append((f"{path.name}: ${variable['name']}", query["query"] if isinstance(query, dict) else query))
    return found


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression reads (orderops_*, temporal_*, Prometheus's own)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    bare = re.sub(r"\{[^}]*\}", "", bare)  # label matchers
    bare = re.sub(r"\b(?:by|without)\s*\([^)]*\)", "", bare)  # grouping labels
    bare = re.sub(r"\$\w+", "", bare)  # Grafana variables
    bare = re.sub(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)", r"\1", bare)
    tokens = set(re.findall(r"[A-Za-z_:][\w:]*", bare))
    return {token for token in tokens if token.startswith(("orderops_", "temporal_")) or token in PROMETHEUS_SYNTHETIC}


def promql_labels(expr: str) -> set[str]:
    labels = set()
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels |= {label.strip() for label in grouping.split(",") if label.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    labels |= set(re.findall(r"label_values\([^,]+,\s*(\w+)\s*\)", expr))
    return labels


def test_the_metric_name_reader_reads_names_and_only_names():
    expr = 'histogram_quantile(0.95, sum by (le, node) (rate(orderops_step_duration_bucket{process=~"$process", x="temporal_y"}[$__rate_interval])))'
    assert promql_metrics(expr) == {"orderops_step_duration_bucket"}
    assert promql_labels(expr) == {"le", "node", "process", "x"}
    assert orderops_metric_names()["orderops_orders_ended_total"] == "orderops_orders_ended"
    assert {"orderops_step_duration_bucket", "orderops_step_duration_count"} <= set(orderops_metric_names())
    assert "temporal_activity_execution_failed_total" in sdk_metric_names()


def test_every_dashboard_query_reads_metrics_and_labels_the_workers_serve():
    known = set(orderops_metric_names()) | sdk_metric_names() | PROMETHEUS_SYNTHETIC
    labels = COMMON_LABELS | {label for _, family_labels in metric_families().values() for label in family_labels}
    jobs = {job["job_name"] for job in yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"]}
    problems = []
    for where, expr in dashboard_queries():
        used = promql_metrics(expr)
        if not used:
            problems.append(f"{where}: reads no metric orderops, the SDK or Prometheus has: {expr}")
        problems += [f"{where}: no metric {name}" for name in sorted(used - known)]
        problems += [f"{where}: no label {label}" for label in sorted(promql_labels(expr) - labels)]
        problems += [f"{where}: no scrape job {job}" for job in re.findall(r'job="([^"]+)"', expr) if job not in jobs]
        if "histogram_quantile" in expr and not re.search(r"\bby\s*\([^)]*\ble\b", expr):
            problems.append(f"{where}: histogram_quantile needs the buckets grouped by le: {expr}")
    assert problems == []


def test_the_dashboard_shows_every_orderops_metric_and_the_sdks_activity_failures():
    read = {name for _, expr in dashboard_queries() for name in promql_metrics(expr)}
    families = {family for name, family in orderops_metric_names().items() if name in read}
    served = set(metric_families()) | worker_gauges()
    assert families == served, f"no panel for {sorted(served - families)}"
    assert "temporal_activity_execution_failed_total" in read


def test_the_dashboard_reads_the_provisioned_prometheus():
    sources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"]
    uids = {source["uid"] for source in sources if source["type"] == "prometheus"}
    url = urlparse(sources[0]["url"])
    assert url.hostname in compose()["services"] and url.port == 9090  # Prometheus's own port
    for path in (ROOT / "deploy/grafana/dashboards").glob("*.json"):
        text = json.loads(path.read_text())
        used = set(re.findall(r'"uid": "([^"]+)"', json.dumps(text.get("panels", [])) + json.dumps(text.get("templating", {}))))
        assert used and used <= uids, (path.name, used, uids)


# -- docs/deployment.md -----------------------------------------------------------------------------


# `docker compose exec` and `run` options that take a value: skipped to find the service's name.
COMPOSE_OPTIONS_WITH_VALUE = {
    "-e",
    "--env",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--index",
    "--name",
    "--entrypoint",
    "-v",
    "--volume",
    "-p",
    "--publish",
    "-l",
    "--label",
}
SHELL_OPERATORS = {"|", "<", ">", ">>", "&&", "||", ";", "2>&1"}


def documented_commands() -> list[tuple[str, list[str]]]:
    """(service, orderops argv) of each `docker compose exec|run [options] SERVICE orderops ...` in the doc's code blocks."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    found = []
    for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            for i in range(len(words) - 2):
                if words[i : i + 2] != ["docker", "compose"] or words[i + 2] not in ("exec", "run"):
                    continue
                rest = iter(words[i + 3 :])
                for word in rest:
                    if word in COMPOSE_OPTIONS_WITH_VALUE:
                        next(rest, None)
                    elif not word.startswith("-"):
                        argv = []
                        for part in rest:
                            if part in SHELL_OPERATORS:
                                break
                            argv.append(part)
                        if argv[:1] == ["orderops"]:
                            found.append((word, argv))
                        break
    return found


def test_the_orderops_commands_in_docs_deployment_parse(monkeypatch):
    commands = documented_commands()
    assert len(commands) >= 5, "docs/deployment.md should show the orderops commands it describes"
    for name, argv in commands:
        parse_orderops(argv, environment(service(name)), monkeypatch)
