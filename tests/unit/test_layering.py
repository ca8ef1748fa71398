"""The layers, lowest first; a module imports only from its own layer or below (docs/architecture.md).

Every import counts, including those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

# (layer, what belongs to it); the first prefix that matches a module's dotted name wins.
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (5, ("starter", "worker")),
    (4, ("orderops.cli", "orderops.demo", "orderops.console")),
    (3, ("orderops.client", "orderops.history", "orderops.worker", "orderops.connect", "orderops.server")),
    (2, ("activities", "workflows")),
    # the language, the domain models and settings, configuration, logging, the KPIs over results
    (1, ("orderops",)),
]
NAMES = ("Language and domain", "Activities and workflows", "Client API", "CLI and demo", "Entry points")


def layer_of(module: str) -> int | None:
    for layer, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    return None  # the standard library or a dependency


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> list[Path]:
    files = [ROOT / "starter.py", ROOT / "worker.py"]
    for package in ("orderops", "activities", "workflows"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_every_project_module_has_a_layer():
    assert [module_name(p) for p in sources() if layer_of(module_name(p)) is None] == []


def test_nothing_imports_from_a_layer_above_its_own():
    upward = []
    for path in sources():
        me = module_name(path)
        mine = layer_of(me)
        assert mine is not None
        for imported in sorted(imports(path)):
            theirs = layer_of(imported)
            if theirs is not None and theirs > mine:
                upward.append(f"{me} ({NAMES[mine - 1]}) imports {imported} ({NAMES[theirs - 1]})")
    assert upward == [], "imports must only go down; move the shared code down instead:\n" + "\n".join(upward)


@pytest.mark.parametrize(
    "module, layer",
    [
        ("orderops.process.lint", 1),
        ("orderops.settings", 1),
        ("workflows.order", 2),
        ("orderops.client.api", 3),
        ("orderops.cli.orders", 4),
        ("starter", 5),
    ],
)
def test_the_layer_map_places_the_main_modules(module, layer):
    assert layer_of(module) == layer


def test_the_check_sees_an_upward_import(tmp_path):
    # The same check on a made-up module: the language importing the client must be caught.
    fake = tmp_path / "bad.py"
    fake.write_text("def f():\n    from orderops.client import OrderClient\n", encoding="utf-8")
    assert "orderops.client" in imports(fake) and layer_of("orderops.client") > layer_of("orderops.process.lint")


def test_the_settings_lint_checks_are_the_activities_own():
    from activities import inputs
    from orderops import settings

    assert inputs.ReserveArgs.model_fields["policy"].annotation is settings.StockPolicy
    assert inputs.BookArgs.model_fields["carriers"].annotation == list[settings.Carrier]
    assert inputs.ReviewArgs.model_fields["rules"].annotation is settings.ReviewRules


def test_the_activity_names_lint_knows_are_the_registered_ones():
    from activities import ACTIVITY_NAMES as registered
    from orderops.activity_names import ACTIVITY_NAMES

    assert registered == ACTIVITY_NAMES
