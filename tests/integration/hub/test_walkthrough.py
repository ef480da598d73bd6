"""The README's fleet walkthrough, run as one test over both backends: standalone SQLite, and a
hub with a controller replica. The same CLI commands, the same outcomes a user sees."""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from appflow.model.resources import event_record
from tests.helpers import Sandbox, eventually, run_cli
from tests.integration.hub.conftest import Hub
from tests.integration.hub.controllers import hub_fleet

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[3]
CLUSTERS = ("test-1", "test-2", "test-3")


class Backend:
    """Runs `appflow ...` as a user would, against one backend."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        *,
        k8s_events: Callable[[str], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.name = name
        self.env = env
        self.k8s_events = k8s_events
        """On a hub: the Kubernetes Events regarding an AppFlow (kubectl's view of its history)."""

    def __call__(self, *args: str, code: int | None = 0) -> Result:
        result = run_cli(*args, env={**self.env, "COLUMNS": "200"})
        if code is not None:
            assert result.exit_code == code, (
                f"[{self.name}] appflow {' '.join(args)} exited {result.exit_code}:\n{result.output}"
            )
        return result


@pytest.fixture(params=["standalone", "hub"])
def backend(request: pytest.FixtureRequest, sandbox: Sandbox, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "standalone":
        env = {
            "APPFLOW_HOME": str(tmp_path / "home"),
            "APPFLOW_CACHE_DIR": str(tmp_path / "cache"),
            "APPFLOW_SANDBOX_DIR": str(sandbox.root),
            "APPFLOW_HUB": "",
        }
        yield Backend("standalone", env)
        return
    hub: Hub = request.getfixturevalue("hub_crds")
    with hub_fleet(hub, tmp_path, sandbox_root=sandbox.root) as fleet:
        fleet.start()

        def k8s_events(app: str) -> list[dict[str, Any]]:
            kube = fleet.kube()
            try:
                found = kube.list_sync("events.k8s.io/v1", "Event", namespace=fleet.workspace)
            finally:
                kube.close()
            return [e for e in found if (e.get("regarding") or {}).get("name") == app]

        try:
            yield Backend("hub", fleet.env, k8s_events=k8s_events)
        finally:
            print(fleet.logs())  # shown by pytest when the test failed


def _synced(result: Result) -> dict[str, dict[str, Any]]:
    """Per cluster, what `appflow sync -o json` said of it: state and counts."""
    (report,) = json.loads(result.output)
    return {c["cluster"]: c for c in report["clusters"]}


def _changes(cluster: dict[str, Any]) -> tuple[int, int, int, int]:
    counts = cluster["counts"]
    return tuple(counts.get(k, 0) for k in ("created", "configured", "unchanged", "pruned"))  # type: ignore[return-value]


def _live_page(sandbox: Sandbox, index: int, namespace: str) -> Any:
    kube = sandbox.kube(index)
    try:
        found = kube.get_sync("v1", "ConfigMap", "hello-page", namespace)
        return (found or {}).get("data", {}).get("index.html")
    finally:
        kube.close()


def test_the_readme_fleet_walkthrough(backend: Backend, sandbox: Sandbox, tmp_path: Path) -> None:
    examples = tmp_path / "repos-example"
    shutil.copytree(ROOT / "repos-example", examples)
    # The example's namespace is fixed; the sandbox is shared (other tests, the other backend's
    # run whose namespace may still be terminating): the objects go to a namespace of this run.
    namespace = f"hello-edge-{secrets.token_hex(3)}"
    for path in (examples / "plain").glob("*.yaml"):
        text = path.read_text().replace("namespace: hello-edge", f"namespace: {namespace}")
        if path.name == "namespace.yaml":  # the Namespace object itself
            text = text.replace("name: hello-edge", f"name: {namespace}")
        path.write_text(text)
    appflow = backend

    added = appflow("cluster", "add", "--from-sandbox")
    assert all(c in added.output for c in CLUSTERS)
    listed = appflow("cluster", "list", "-o", "json").output
    assert all(f'"{c}"' in listed for c in CLUSTERS)
    assert (
        "app hello-edge (plain)"
        in appflow("repo", "add", "examples", str(examples), "--path", "plain").output
    )
    try:
        synced = _synced(appflow("sync", "hello-edge", "--wait", "-o", "json"))
        assert sorted(synced) == list(CLUSTERS)
        assert all(c["state"] == "Ready" for c in synced.values()), synced
        status = appflow("status").output
        assert re.search(r"hello-edge\s+Ready r1\s+Ready r1\s+Ready r1", status), status
        # The example has no rollout strategy: both backends say so in the same words.
        none = appflow("rollout", "status", "hello-edge", code=1).output
        assert "app hello-edge: the app has no rollout" in none, none
        assert all(
            _live_page(sandbox, i, namespace).strip() == "<h1>Hello from the edge</h1>"
            for i in range(3)
        )

        web = examples / "plain" / "web.yaml"
        web.write_text(web.read_text().replace("Hello from the edge", "Hello from the walkthrough"))
        diff = appflow("app", "diff", "hello-edge", "--cluster", "test-1", code=1).output
        assert "-    <h1>Hello from the edge</h1>" in diff
        assert "+    <h1>Hello from the walkthrough</h1>" in diff
        assert "1 configured, 3 unchanged" in diff

        changed = _synced(appflow("sync", "hello-edge", "-o", "json"))
        assert sorted(changed) == list(CLUSTERS)
        assert all(_changes(c) == (0, 1, 3, 0) for c in changed.values()), changed
        history = appflow("app", "history", "hello-edge", "-o", "json").output
        assert '"revision": 2' in history
        assert '"revision": 1' in history
        # Who asked: the CLI, on either backend (a token's name when the API asks).
        asked = [e for e in json.loads(history) if e["trigger"] == "user"]
        assert asked, history
        assert all(e["actor"] == "cli" for e in asked), asked
        assert all(
            _live_page(sandbox, i, namespace).strip() == "<h1>Hello from the walkthrough</h1>"
            for i in range(3)
        )

        back = appflow("app", "rollback", "hello-edge", "--to", "1")
        assert "app hello-edge is pinned to revision 1" in back.output
        assert back.output.count("1 configured") == 3, back.output
        assert all(
            _live_page(sandbox, i, namespace).strip() == "<h1>Hello from the edge</h1>"
            for i in range(3)
        )
        if appflow.k8s_events is not None:
            # The syncs and the rollback are Kubernetes Events regarding the AppFlow too.
            records = [event_record(e) for e in appflow.k8s_events("hello-edge")]
            synced_on = {r.cluster for r in records if r is not None and r.kind == "sync"}
            rolled_back_on = {
                r.cluster for r in records if r is not None and r.trigger == "rollback"
            }
            assert synced_on == rolled_back_on == set(CLUSTERS), records
        eventually(
            lambda: bool(
                re.search(r"hello-edge\s+Ready r1\s+Ready r1\s+Ready r1", appflow("status").output)
            ),
            timeout=30,
            what=f"[{backend.name}] status back at revision 1",
        )
    finally:
        appflow("app", "delete", "hello-edge", code=None)
