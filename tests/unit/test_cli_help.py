"""The command line explains itself: a version, a description per command, help for every option."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version

import pytest

from orderops.cli.parser import build_parser
from tests.helpers import ROOT


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version_is_the_installed_package(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"orderops {version('orderops')}\n"


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_command_has_a_description_and_every_option_a_help(name):
    parser = subcommands()[name]
    assert parser.description and parser.description.endswith("."), name
    undocumented = [a.dest for a in parser._actions if not a.help and a.help != argparse.SUPPRESS]
    assert undocumented == [], f"{name}: options without help: {undocumented}"


@pytest.mark.parametrize("name", ["lint", "schema", "activities"])
def test_offline_commands_offer_no_server_address(name):
    options = {o for a in subcommands()[name]._actions for o in a.option_strings}
    assert "--address" not in options and "--namespace" not in options


def test_defaults_are_shown_in_help():
    assert "(default: 7233)" in subcommands()["server"].format_help()


def test_help_loads_neither_temporal_nor_pydantic():
    # What keeps `orderops --help` fast (docs/performance.md#start-up): the grammar is plain argparse.
    probe = "import sys, starter\ntry:\n    starter.main(['--help'])\nexcept SystemExit:\n    pass\nprint(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'temporalio', 'cel'}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
