"""`appflow repo add`, `repo list` and the tables around them, as a user meets them.

Real git repositories served over HTTP by git's own http-backend, the real CLI, and for the
sync the sandbox clusters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, configmap, new_suffix, one_line
from tests.integration.git.gitservers import GitHttpServer, Origin, closed_port, serve_http


@pytest.fixture
def origins(tmp_path: Path) -> Path:
    root = tmp_path / "srv"
    (root / "org").mkdir(parents=True)
    return root


@pytest.fixture
def server(origins: Path) -> Iterator[GitHttpServer]:
    with serve_http(GitHttpServer(origins)) as running:
        yield running


def _listed(*args: str) -> list[dict[str, Any]]:
    result = cli(*args, "-o", "json")
    assert result.exit_code == 0, result.output
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def _app_files(name: str, namespace: str) -> dict[str, str | bytes | None]:
    return {
        f"apps/{name}/appflow.yaml": f"name: {name}\nnamespace: {namespace}\n",
        f"apps/{name}/config.yaml": yaml.safe_dump(configmap("settings", namespace, {"a": "b"})),
    }


def test_failed_repo_add_leaves_nothing_registered(
    appflow_home: Path, origins: Path, server: GitHttpServer
) -> None:
    unreachable = cli("repo", "add", "gone", f"http://127.0.0.1:{closed_port()}/org/gone.git")
    assert unreachable.exit_code != 0, unreachable.output

    # Reachable, but its only app definition is broken: nothing of it may be kept either.
    broken = Origin(origins / "org" / "broken.git")
    broken.commit({"apps/web/appflow.yaml": "name: web\nnamespace: [not, a, name]\n"})
    refused = cli("repo", "add", "broken", server.url("org/broken.git"), "--path", "apps/web")
    assert refused.exit_code != 0, refused.output
    assert "appflow.yaml" in refused.output

    assert _listed("repo", "list") == []
    assert _listed("app", "list") == []


def test_repo_add_refuses_an_app_name_another_repository_has(
    appflow_home: Path, origins: Path, server: GitHttpServer
) -> None:
    app = f"web-{new_suffix()}"
    for repo in ("first", "second"):
        Origin(origins / "org" / f"{repo}.git").commit(_app_files(app, f"ns-{repo}"))
    added = cli("repo", "add", "first", server.url("org/first.git"), "--path", f"apps/{app}")
    assert added.exit_code == 0, added.output

    taken = cli("repo", "add", "second", server.url("org/second.git"), "--path", f"apps/{app}")
    assert taken.exit_code != 0, taken.output
    message = one_line(taken.output)
    assert f"app {app}" in message
    assert f"already comes from repository first (folder apps/{app})" in message
    assert f"appflow app delete {app}" in message

    assert [(a["name"], a["source"]) for a in _listed("app", "list")] == [(app, "first")]
    assert [r["name"] for r in _listed("repo", "list")] == ["first"]
    # Adding the same repository again is an update, not a take-over.
    again = cli("repo", "add", "first", server.url("org/first.git"), "--path", f"apps/{app}")
    assert again.exit_code == 0, again.output


def test_app_add_refuses_a_name_another_source_has(appflow_home: Path, tmp_path: Path) -> None:
    app = f"web-{new_suffix()}"
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / "appflow.yaml").write_text(f"name: {app}\nnamespace: {folder.name}\n")
    assert cli("app", "add", app, "--local", str(first)).exit_code == 0

    taken = cli("app", "add", app, "--local", str(second))
    assert taken.exit_code != 0, taken.output
    message = one_line(taken.output)
    assert f"already comes from the local folder {first.resolve()}" in message
    assert f"appflow app delete {app}" in message
    listed = _listed("app", "list")
    assert [(a["name"], a["source"]) for a in listed] == [(app, str(first.resolve()))]
    # Adding it again from where it comes from is an update, not a take-over.
    again = cli("app", "add", app, "--local", str(first))
    assert again.exit_code == 0, again.output


def _first_column(table: str) -> str:
    """The text of a table's first column, folded lines joined, header left out."""
    lines = table.splitlines()
    second = lines[0].index("SOURCE")
    return "".join(line[:second].strip() for line in lines[1:])


def test_narrow_tables_keep_names_apart(appflow_home: Path, tmp_path: Path) -> None:
    # Two names that differ only at the end, as sites of one app often do.
    names = ["retail-checkout-frontend-eu-west", "retail-checkout-frontend-us-east"]
    folder = tmp_path / "repo"
    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "appflow.yaml").write_text(f"name: {name}\nnamespace: shop\n")
        (folder / name / "cm.yaml").write_text(yaml.safe_dump(configmap("c", "shop", {})))
    assert cli("repo", "add", "sites", str(folder)).exit_code == 0

    # A process of its own: rich fixes the width when the CLI's console is first made.
    narrow = subprocess.run(
        [sys.executable, "-m", "appflow", "app", "list"],
        env={**os.environ, "COLUMNS": "40"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert narrow.returncode == 0, narrow.stderr
    assert "…" not in narrow.stdout, narrow.stdout
    assert _first_column(narrow.stdout) == "".join(names), narrow.stdout


@pytest.mark.cluster
def test_repo_commit_column_follows_cli_syncs(
    fleet: Fleet, space: Space, origins: Path, server: GitHttpServer
) -> None:
    app = space.app("web")
    origin = Origin(origins / "org" / "fleet.git")
    first = origin.commit(_app_files(app, space.namespace), message="first")
    repo = f"fleet-{space.suffix}"
    added = cli("repo", "add", repo, server.url("org/fleet.git"), "--path", f"apps/{app}")
    assert added.exit_code == 0, added.output
    assert [r["commit"] for r in _listed("repo", "list")] == [first]

    second = origin.commit(
        {f"apps/{app}/config.yaml": yaml.safe_dump(configmap("settings", space.namespace, {}))},
        message="second",
    )
    synced = cli("sync", app)
    assert synced.exit_code == 0, synced.output
    assert [r["commit"] for r in _listed("repo", "list")] == [second]
    table = cli("repo", "list")
    assert second[:12] in table.stdout, table.stdout
