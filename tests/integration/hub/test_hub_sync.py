"""A controller replica at work on a hub: a render over 5 MB end to end, pull clusters staged and
released, and bad input marked on the resource it concerns while the rest goes on."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from appflow.hub.store import HubStore
from appflow.kube.content import ContentStore
from appflow.model import resources as res
from appflow.model.hub import API_VERSION
from appflow.model.records import ClusterRecord
from tests.helpers import Sandbox, eventually
from tests.integration.hub.controllers import HubFleet

pytestmark = pytest.mark.cluster

MIB = 1024 * 1024


def _store(fleet: HubFleet) -> HubStore:
    return HubStore(fleet.kube(), workspace=fleet.workspace)


def _add_pull_cluster(fleet: HubFleet, name: str, labels: dict[str, str]) -> None:
    """A pull-mode Cluster as `cluster add --mode pull` leaves it: Init, no kubeconfig (its
    agent pulls), no agent connected yet."""
    store = _store(fleet)
    try:
        store.put_cluster(ClusterRecord(name=name, kind="eve-k", labels=labels, state="Init"))
    finally:
        store.close()


def _state(fleet: HubFleet, app: str) -> dict[str, tuple[Any, Any]]:
    return {
        d["spec"]["cluster"]: (
            (d.get("status") or {}).get("state"),
            ((d.get("spec") or {}).get("staged") or {}).get("revision"),
        )
        for d in fleet.deployments(app)
    }


def test_a_render_over_5_mb_goes_through_the_hub_to_push_and_pull_clusters(
    fleet: HubFleet, sandbox: Sandbox, tmp_path: Path
) -> None:
    app = tmp_path / "big"
    app.mkdir()
    namespace = f"big-{secrets.token_hex(3)}"  # the sandbox is shared
    (app / "appflow.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "big",
                "namespace": namespace,
                # edge-9's agent never connects: the push cluster goes on without its verdict.
                "rollout": {"offlineTargets": "skip"},
                "targets": [
                    {"name": "one", "clusterName": "test-1"},
                    {"name": "edge", "clusterName": "edge-9"},
                ],
            }
        )
    )
    # 12 ConfigMaps of 480 KB of random text: 5.8 MB that does not compress much.
    for i in range(12):
        (app / f"blob-{i}.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"blob-{i}", "namespace": namespace},
                    "data": {"payload": base64.b64encode(os.urandom(360 * 1024)).decode()},
                }
            )
        )
    fleet.start()
    assert fleet.cli("cluster", "add", "--from-sandbox").exit_code == 0
    _add_pull_cluster(fleet, "edge-9", {"site": "edge"})
    added = fleet.cli("app", "add", "big", "--local", str(app))
    assert added.exit_code == 0, added.output
    try:
        synced = fleet.cli("sync", "big", "--wait", "-o", "json")
        assert synced.exit_code == 0, synced.output
        (report,) = json.loads(synced.output)
        assert [c["state"] for c in report["clusters"]] == ["Ready"]
        eventually(
            lambda: _state(fleet, "big").get("edge-9", (None, None))[1] == 1,
            timeout=60,
            what="r1 staged on edge-9",
        )

        kube = fleet.kube()
        try:
            contents = kube.list_sync(API_VERSION, "AppFlowContent", namespace=fleet.workspace)
            largest = max(len(json.dumps(c)) for c in contents)
            print(f"{len(contents)} content objects, the largest {largest} bytes")
            assert largest < MIB
            for kind in ("AppFlow", "AppFlowDeployment"):
                for obj in kube.list_sync(API_VERSION, kind):
                    assert len(json.dumps(obj)) < 32 * 1024, obj["metadata"]["name"]
            (pull,) = [d for d in fleet.deployments("big") if d["spec"]["cluster"] == "edge-9"]
            staged = pull["spec"]["staged"]
            # Staged, never released to a cluster whose agent gave no verdict, never Ready.
            assert not pull["spec"].get("released"), pull["spec"]
            assert (pull.get("status") or {}).get("state") != "Ready", pull.get("status")

            async def read(index: str) -> list[dict[str, Any]]:
                return await ContentStore(kube, fleet.workspace).get_render(index)

            objects = asyncio.run(read(staged["index"]))
        finally:
            kube.close()
        size = sum(len(json.dumps(o)) for o in objects)
        assert size > 5 * 1000 * 1000
        names = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap")
        assert names == sorted(f"blob-{i}" for i in range(12))
        live = sandbox.kube(0)
        try:
            for o in objects:
                if o["kind"] != "ConfigMap":
                    continue
                found = live.get_sync("v1", "ConfigMap", o["metadata"]["name"], namespace)
                assert found is not None
                assert found["data"] == o["data"]
        finally:
            live.close()
    finally:
        fleet.cli("app", "delete", "big")


def test_a_staged_revision_is_released_once_every_agent_validated_it(
    fleet: HubFleet, tmp_path: Path
) -> None:
    app = tmp_path / "edge-app"
    app.mkdir()
    (app / "appflow.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "edge-app",
                "namespace": "edge-app",
                "targets": [{"name": "edge", "clusterSelector": {"matchLabels": {"site": "edge"}}}],
            }
        )
    )
    (app / "cm.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "edge-app"},
                "data": {"k": "v"},
            }
        )
    )
    for name in ("edge-1", "edge-2"):
        _add_pull_cluster(fleet, name, {"site": "edge"})
    fleet.start()
    assert fleet.cli("app", "add", "edge-app", "--local", str(app)).exit_code == 0
    eventually(
        lambda: (
            {s for _, s in _state(fleet, "edge-app").values()} == {1}
            and len(_state(fleet, "edge-app")) == 2
        ),
        timeout=60,
        what="revision 1 staged on both pull clusters",
    )
    kube = fleet.kube()
    try:

        def validate(cluster: str, result: str) -> None:
            (d,) = [d for d in fleet.deployments("edge-app") if d["spec"]["cluster"] == cluster]
            kube.patch_sync(
                API_VERSION,
                "AppFlowDeployment",
                d["metadata"]["name"],
                d["metadata"]["namespace"],
                {"status": {"staged": {"revision": 1, "result": result, "message": "dry run"}}},
                subresource="status",
            )

        def released() -> dict[str, Any]:
            return {
                d["spec"]["cluster"]: (d["spec"].get("released") or {}).get("revision")
                for d in fleet.deployments("edge-app")
            }

        validate("edge-1", "Validated")
        # One agent validated, the other not yet: nothing may be released anywhere, for as
        # long as we look (the owner reacts to a Deployment's status within a second or two).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert released() == {"edge-1": None, "edge-2": None}
            time.sleep(0.5)
        validate("edge-2", "Validated")
        eventually(
            lambda: released() == {"edge-1": 1, "edge-2": 1}, timeout=30, what="released on both"
        )
        summary = fleet.app("edge-app")["status"]["summary"]
        assert summary["waitApplied"] == 2
        assert summary["ready"] == 0
    finally:
        kube.close()
        fleet.cli("app", "delete", "edge-app")


def test_bad_input_is_marked_on_its_resource_and_the_rest_goes_on(
    fleet: HubFleet, sandbox: Sandbox, tmp_path: Path
) -> None:
    app = tmp_path / "ok-app"
    app.mkdir()
    namespace = f"ok-app-{secrets.token_hex(3)}"  # the sandbox is shared
    (app / "appflow.yaml").write_text(yaml.safe_dump({"name": "ok-app", "namespace": namespace}))
    (app / "cm.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": namespace},
                "data": {"k": "v"},
            }
        )
    )
    assert fleet.cli("cluster", "add", "--from-sandbox").exit_code == 0
    kube = fleet.kube()
    try:
        # test-2's kubeconfig Secret disappears; test-3's credentials stop being accepted.
        kube.delete_sync("v1", "Secret", res.cluster_secret_name("test-2"), fleet.workspace)
        secret = kube.get_sync("v1", "Secret", res.cluster_secret_name("test-3"), fleet.workspace)
        assert secret is not None
        config = yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"]))
        for user in config["users"]:
            user["user"] = {"token": "expired-or-revoked"}
        kube.apply_sync(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": res.cluster_secret_name("test-3"),
                    "namespace": fleet.workspace,
                },
                "data": {"kubeconfig": base64.b64encode(yaml.safe_dump(config).encode()).decode()},
            },
            force=True,
            field_manager="appflow",
        )
        # An AppFlow a newer appflow wrote.
        newer = {
            "apiVersion": API_VERSION,
            "kind": "AppFlow",
            "metadata": {
                "name": "from-the-future",
                "namespace": fleet.workspace,
                "annotations": {res.ANNOTATION_RECORD: json.dumps({"recordVersion": 99})},
            },
            "spec": {"repo": "x", "path": "y"},
        }
        kube.create_sync(newer)
        fleet.start()
        assert fleet.cli("app", "add", "ok-app", "--local", str(app)).exit_code == 0

        def condition(kind: str, name: str, reason: str) -> bool:
            obj = kube.get_sync(API_VERSION, kind, name, fleet.workspace) or {}
            return any(
                c.get("reason") == reason for c in (obj.get("status") or {}).get("conditions") or []
            )

        eventually(
            lambda: condition("AppFlow", "from-the-future", "Refused"),
            timeout=60,
            what="the newer AppFlow stalled",
        )
        eventually(
            lambda: condition("Cluster", "test-2", "CredentialsMissing"),
            timeout=90,
            what="test-2 marked",
        )
        eventually(
            lambda: condition("Cluster", "test-3", "CredentialsRejected"),
            timeout=90,
            what="test-3 marked",
        )
        future = kube.get_sync(API_VERSION, "AppFlow", "from-the-future", fleet.workspace) or {}
        stalled = next(c for c in future["status"]["conditions"] if c["type"] == "Stalled")
        assert "upgrade the controllers" in stalled["message"]
        test2 = kube.get_sync(API_VERSION, "Cluster", "test-2", fleet.workspace) or {}
        assert "appflow-kubeconfig-test-2" in test2["status"]["reason"]
        # The others went on: ok-app is Ready where it can be.
        eventually(
            lambda: _state(fleet, "ok-app").get("test-1", (None,))[0] == "Ready",
            timeout=90,
            what="ok-app Ready on test-1",
        )
    finally:
        kube.close()
        fleet.cli("app", "delete", "ok-app")


def test_the_collector_deletes_only_content_nothing_references(fleet: HubFleet) -> None:
    from appflow.hub.collect import collect
    from appflow.model.hub import cluster_namespace

    store = _store(fleet)
    try:
        _add_pull_cluster(fleet, "edge-1", {})

        def render(tag: str) -> list[dict[str, Any]]:
            return [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"{tag}-{i}"},
                    "data": {"v": tag * 400},
                }
                for i in range(8)
            ]

        kept = store.put_objects(render("kept"))
        delta = store.put_objects(render("kept")[:7] + render("newer")[7:], base=kept)
        dropped = store.put_objects(render("dropped"))
        manifest = res.deployment_resource(
            "web",
            "edge-1",
            workspace=fleet.workspace,
            namespace=cluster_namespace(fleet.workspace, "edge-1"),
        )
        manifest["spec"]["staged"] = {
            "revision": 2,
            "renderDigest": "sha256-" + "0" * 64,
            "index": delta,
        }
        kube = fleet.kube()
        try:
            kube.create_sync(manifest)
            before = {
                o["metadata"]["name"]
                for o in kube.list_sync(API_VERSION, "AppFlowContent", namespace=fleet.workspace)
            }
            young = asyncio.run(collect(store))
            assert young == []  # younger than ten minutes: kept whatever refers to it
            deleted = set(asyncio.run(collect(store, min_age=0)))
            after = {
                o["metadata"]["name"]
                for o in kube.list_sync(API_VERSION, "AppFlowContent", namespace=fleet.workspace)
            }
        finally:
            kube.close()
        assert dropped in deleted
        assert {delta, kept} <= after  # the delta index and the index it builds on
        assert after == before - deleted
        # What is kept still reads back whole, from the hub (a fresh store has no cache).
        fresh = _store(fleet)
        try:
            assert [o["metadata"]["name"] for o in fresh.get_objects(delta)][-1] == "newer-7"
        finally:
            fresh.close()
    finally:
        store.close()


def test_catalog_install_works_unchanged_against_a_hub(fleet: HubFleet, sandbox: Sandbox) -> None:
    fleet.start()
    assert fleet.cli("cluster", "add", "--from-sandbox").exit_code == 0
    # Not the default namespace "redis": the sandbox is shared with other tests' installs.
    namespace = f"redis-{secrets.token_hex(3)}"
    try:
        refused = fleet.cli(
            "catalog", "install", "redis", "--cluster", "test-1", "--set", "replicas=many"
        )
        assert refused.exit_code != 0
        assert "replicas" in refused.output  # checked before any cluster is touched
        assert not fleet.deployments("redis")
        installed = fleet.cli(
            "catalog", "install", "redis", "--cluster", "test-1", "-n", namespace, "--wait"
        )
        assert installed.exit_code == 0, installed.output
        assert "redis revision 1 -> test-1: Ready" in installed.output.replace("\n", " ")
        listed = fleet.cli("catalog", "installs", "-o", "json")
        (row,) = json.loads(listed.output)
        assert (row["name"], row["clusters"]) == ("redis", {"test-1": "Ready"})
        kube = sandbox.kube(0)
        try:
            assert kube.list_sync("apps/v1", "Deployment", namespace=namespace)
        finally:
            kube.close()
        removed = fleet.cli("catalog", "uninstall", "redis")
        assert removed.exit_code == 0, removed.output
        assert fleet.cli("app", "show", "redis").exit_code != 0
    finally:
        fleet.cli("app", "delete", "redis")


def _request(fleet: HubFleet, app: str, request_id: str) -> None:
    kube = fleet.kube()
    try:
        kube.patch_sync(
            API_VERSION,
            "AppFlow",
            app,
            fleet.workspace,
            {"spec": {"syncRequest": {"id": request_id, "trigger": "user"}}},
        )
    finally:
        kube.close()


def _request_status(fleet: HubFleet, app: str) -> dict[str, Any]:
    return dict((fleet.app(app).get("status") or {}).get("syncRequest") or {})


def test_a_request_behind_a_sync_waiting_for_a_verdict_is_acknowledged_at_once(
    fleet: HubFleet, tmp_path: Path
) -> None:
    """A sync of a push and a pull cluster waits for the pull cluster's verdict (its agent
    never connected; rollout.offlineTargets 'wait'); a second request arriving meanwhile is
    answered at once, Pending, and runs once the first ends."""
    app = tmp_path / "held"
    app.mkdir()
    namespace = f"held-{secrets.token_hex(3)}"  # the sandbox is shared
    (app / "appflow.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "held",
                "namespace": namespace,
                "syncPolicy": {"auto": False},
                "rollout": {"offlineTargets": "wait", "healthTimeoutSeconds": 60},
                "targets": [
                    {"name": "one", "clusterName": "test-1"},
                    {"name": "edge", "clusterName": "edge-7"},
                ],
            }
        )
    )
    (app / "cm.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": namespace},
                "data": {"k": "v"},
            }
        )
    )
    fleet.start()
    assert fleet.cli("cluster", "add", "--from-sandbox").exit_code == 0
    _add_pull_cluster(fleet, "edge-7", {"site": "edge"})
    added = fleet.cli("app", "add", "held", "--local", str(app))
    assert added.exit_code == 0, added.output
    try:
        _request(fleet, "held", "first")
        eventually(
            lambda: (
                _request_status(fleet, "held").get("phase") == "Running"
                and _state(fleet, "held").get("edge-7", (None, None))[1] == 1
            ),
            timeout=90,
            what="the first request running, r1 staged on edge-7",
        )
        _request(fleet, "held", "second")
        eventually(
            lambda: _request_status(fleet, "held").get("id") == "second",
            timeout=30,
            what="the second request acknowledged",
        )
        answered = _request_status(fleet, "held")
        assert answered["phase"] == "Pending", answered
        assert "queued behind the sync in progress" in answered["message"], answered
        # The first one gives up on edge-7's verdict after the health timeout; then the
        # second runs, and ends the same way.
        eventually(
            lambda: (
                _request_status(fleet, "held").get("phase") == "Failed"
                and _request_status(fleet, "held").get("id") == "second"
            ),
            timeout=300,
            what="the second request run to its end",
        )
        assert "edge-7" in _request_status(fleet, "held")["message"]
    finally:
        fleet.cli("app", "delete", "held")
