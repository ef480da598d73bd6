"""The `appflow` root command imports its subcommands only when they run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def _modules_after(args: list[str], *, env: dict[str, str] | None = None) -> list[str]:
    """The heavy modules and appflow modules a fresh process imported to run `appflow ARGS`."""
    code = (
        "import json, sys\n"
        "from appflow.cli.main import cli\n"
        f"cli.main({args!r}, standalone_mode=False)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
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


def test_status_and_a_handed_over_sync_load_no_engine(tmp_path: Path) -> None:
    # `appflow status --cached` reads the store, as does `appflow status` while there is
    # no Deployment to read from a cluster; `appflow sync` imports the engine only when no
    # running `appflow serve` takes the sync over, and then only when it syncs.
    env = {**os.environ, "APPFLOW_HOME": str(tmp_path / "home")}
    for args in (["status"], ["status", "--cached"], ["sync", "--help"]):
        modules = _modules_after(args, env=env)

        assert "appflow.cli.apps" in modules
        assert not [m for m in modules if m.startswith("appflow.engine")], args
        assert not [m for m in modules if m.split(".")[0] in HEAVY], args


def test_syncing_plain_yaml_here_needs_no_git_helm_or_catalog() -> None:
    # A sync in the CLI's own process loads the engine (and the catalog's resolver),
    # which import git, helm and the catalog's adapters only for apps that use them.
    code = (
        "import json, sys\n"
        "import appflow.engine.catalog, appflow.engine.engine\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(done.stdout.splitlines()[-1])
    assert not [
        m
        for m in modules
        if m.split(".")[0] in ("pygit2", "pyhelm3", "jsonschema", "httpx", "cryptography")
    ]


def test_status_cached_loads_no_engine_with_deployments_recorded(tmp_path: Path) -> None:
    # Without --cached, status reads each Deployment's health from its cluster (engine).
    from appflow.model.records import AppRecord, ClusterRecord, DeploymentRecord
    from appflow.store import open_store

    home = tmp_path / "home"
    env = {**os.environ, "APPFLOW_HOME": str(home)}
    home.mkdir()
    with open_store(home / "appflow.db") as store:
        store.put_cluster(ClusterRecord(name="edge-1", kind="imported", kubeconfig_path="/k"))
        store.put_app(AppRecord(name="web", source="local", local_path="/src", path=""))
        store.put_deployment(DeploymentRecord(app="web", cluster="edge-1", state="Ready"))

    modules = _modules_after(["status", "--cached"], env=env)

    assert "appflow.model.status" in modules  # the grid was made, from the record
    assert not [m for m in modules if m.startswith("appflow.engine")]
    assert not [m for m in modules if m.split(".")[0] in HEAVY]
