"""An app from a real git repository served over HTTP: push, sync, only the change is applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    deployment,
    history_json,
    live,
    one_line,
    snapshot,
)
from tests.integration.git.gitservers import GitHttpServer, Origin, serve_http

pytestmark = pytest.mark.cluster


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    folder = tmp_path / "srv" / "org" / "fleet.git"
    folder.parent.mkdir(parents=True)
    return Origin(folder)


@pytest.fixture
def server(origin: Origin) -> Iterator[GitHttpServer]:
    with serve_http(GitHttpServer(origin.path.parent.parent)) as running:
        yield running


def _docs(*objects: dict[str, object]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def test_push_then_sync_configures_only_the_changed_object(
    fleet: Fleet, space: Space, origin: Origin, server: GitHttpServer
) -> None:
    ns = space.namespace
    app = space.app("x")
    first = origin.commit(
        {
            "README.md": "# fleet\n",
            "apps/x/appflow.yaml": f"name: {app}\nnamespace: {ns}\n",
            "apps/x/config.yaml": _docs(configmap("settings", ns, {"mode": "blue"})),
            "apps/x/web.yaml": _docs(deployment("web", ns)),
            "apps/other/config.yaml": _docs(configmap("elsewhere", ns, {"a": "b"})),
        },
        message="first",
    )
    repo = f"fleet-{space.suffix}"
    added = cli("repo", "add", repo, server.url("org/fleet.git"), "--path", "apps/x")
    assert added.exit_code == 0, added.output
    assert f"app {app} (apps/x)" in added.stdout
    assert "elsewhere" not in added.stdout

    synced = cli("sync", app, "--wait", "--timeout", "120")
    assert synced.exit_code == 0, synced.output
    for name in fleet.cluster_names:
        # The app's namespace is part of it (the test made it beforehand: configured).
        assert f"{app} revision 1 -> {name}: Ready (2 created, 1 configured" in one_line(
            synced.stdout
        ), synced.output
    before = snapshot(fleet.sandbox, space)

    second = origin.commit(
        {"apps/x/config.yaml": _docs(configmap("settings", ns, {"mode": "green"}))},
        message="green",
    )
    resynced = cli("sync", app)
    assert resynced.exit_code == 0, resynced.output
    out = one_line(resynced.stdout)
    for name in fleet.cluster_names:
        assert f"{app} revision 2 -> {name}: Ready (0 created, 1 configured, 2 unchanged" in out, (
            out
        )
    after = snapshot(fleet.sandbox, space)
    for index, name in enumerate(fleet.cluster_names):
        assert live(fleet.sandbox, index, "v1", "ConfigMap", "settings", ns)["data"] == {
            "mode": "green"
        }
        changed = {k for k in after[name] if before[name].get(k) != after[name][k]}
        assert changed == {"ConfigMap/settings"}, (name, changed)

    sources = {s["revision"]: s["source"] for s in history_json(app)}
    assert sources == {1: first[:12], 2: second[:12]}

    # A push that does not touch the app's folder makes no new revision and writes nothing.
    origin.commit({"README.md": "# fleet, renamed\n"}, message="docs")
    idle = cli("sync", app)
    assert idle.exit_code == 0, idle.output
    assert one_line(idle.stdout).count("(0 created, 0 configured, 3 unchanged") == 3
    assert snapshot(fleet.sandbox, space) == after
