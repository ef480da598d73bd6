"""The `appflow` root command imports its subcommands only when they run."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from appflow.cli.main import LAZY_COMMANDS, cli, load_command

HEAVY = ("kubernetes", "pygit2", "pyhelm3", "jsonschema", "httpx", "cryptography", "fastapi")


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_the_table_says_what_the_command_says(name: str) -> None:
    command = load_command(name)
    listed = click.Command(name, help=LAZY_COMMANDS[name][2])

    assert command.name == name
    assert listed.get_short_help_str(200) == command.get_short_help_str(200)


def _modules_after(args: list[str]) -> list[str]:
    """The heavy modules and appflow modules a fresh process imported to run `appflow ARGS`."""
    code = (
        "import json, sys\n"
        "from appflow.cli.main import cli\n"
        f"cli.main({args!r}, standalone_mode=False)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_help_imports_no_command_module() -> None:
    modules = _modules_after(["--help"])

    assert not [m for m in modules if m.split(".")[0] in HEAVY]
    assert not [m for m in modules if m.startswith(("appflow.engine", "appflow.cli.apps"))]


def test_a_command_imports_what_it_needs_only() -> None:
    # `appflow sandbox list` needs the sandbox, not git, helm or the catalog.
    modules = _modules_after(["sandbox", "--help"])

    assert "appflow.cli.sandbox" in modules
    assert not [m for m in modules if m.split(".")[0] in ("pygit2", "pyhelm3", "kubernetes")]


def test_help_lists_every_command_once() -> None:
    result = CliRunner().invoke(cli, ["--help"])

    assert result.exit_code == 0
    lines = result.output.split("Commands:")[1].strip().splitlines()
    assert [line.split()[0] for line in lines] == sorted(LAZY_COMMANDS)


def test_repo_keeps_the_webhook_secret_command() -> None:
    result = CliRunner().invoke(cli, ["repo", "--help"])

    assert result.exit_code == 0
    assert "set-webhook-secret" in result.output


def test_syncing_plain_yaml_needs_no_git_helm_or_catalog() -> None:
    # `appflow sync` loads the engine, which imports git, helm and the catalog
    # only for apps that use them.
    modules = _modules_after(["sync", "--help"])

    assert "appflow.engine.engine" in modules
    assert not [
        m
        for m in modules
        if m.split(".")[0] in ("pygit2", "pyhelm3", "jsonschema", "httpx", "cryptography")
    ]
