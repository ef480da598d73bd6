"""Argo CD's hooks and waves, through the CLI, on sandbox clusters (issue 9, item 11).

The app (testdata/hooks/argocd-app) is a folder of manifests written for Argo CD: a PreSync
migration and a PostSync test named by the API server (generateName), a Sync hook in wave 1
between the web tier (wave 0) and the worker (wave 2), a SyncFail notification, a Skip, and
a ConfigMap in wave -1. A repository written for Argo CD must deploy in Argo CD's order.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from appflow.model.objects import Manifest
from tests.helpers import Sandbox
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.hook_support import inventory_names, job_state, lines_with
from tests.integration.engine.support import Space, cli, exists, one_line, snapshot

pytestmark = pytest.mark.cluster

ARGO_APP = Path(__file__).parent / "testdata" / "hooks" / "argocd-app"


def argo_app(folder: Path, app: str, namespace: str, *, failing: str | None = None) -> Path:
    """The Argo CD app in FOLDER, its destination namespace given by appflow.yaml; the hook
    in file FAILING (if any) made to fail on the sandbox."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(ARGO_APP, folder)
    (folder / "appflow.yaml").write_text(
        yaml.safe_dump({"name": app, "namespace": namespace}, sort_keys=False)
    )
    if failing:
        path = folder / failing
        path.write_text(
            path.read_text().replace(
                'sandbox.appflow.dev/exit-code: "0"', 'sandbox.appflow.dev/exit-code: "1"'
            )
        )
    return folder


def add_argo(tmp_path: Path, space: Space, *, failing: str | None = None) -> tuple[str, str, Path]:
    """Register the Argo CD app as an app of SPACE (see argo_app); its namespace, name, folder."""
    ns, app = space.namespace, space.app("argo")
    folder = argo_app(tmp_path / "app", app, ns, failing=failing)
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    return ns, app, folder


def failed_sync(fleet: Fleet, space: Space, tmp_path: Path, failing: str) -> str:
    """Add the app with the hook in file FAILING made to fail, sync it to the first
    cluster; the sync's output (it must fail)."""
    _, app, _ = add_argo(tmp_path, space, failing=failing)
    failed = cli("sync", app, "--cluster", fleet.cluster_names[0])
    assert failed.exit_code == 1, failed.output
    return failed.output


def jobs(sandbox: Sandbox, namespace: str, prefix: str) -> list[Manifest]:
    """The Jobs whose names start with PREFIX (the runs of a generateName hook)."""
    kube = sandbox.kube(0)
    try:
        found = kube.list_sync("batch/v1", "Job", namespace=namespace)
    finally:
        kube.close()
    return [j for j in found if j["metadata"]["name"].startswith(prefix)]


def complete(job: Manifest) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)


def test_argo_app_deploys_in_argo_order_with_its_hooks(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, _folder = add_argo(tmp_path, space)
    dev = fleet.cluster_names[0]

    synced = cli("sync", app, "--cluster", dev)
    assert synced.exit_code == 0, synced.output
    pre, sync_hook, post = lines_with(
        synced.output,
        f"PreSync hook Job.batch/{ns}/schema-migrate-",
        f"Sync hook Job.batch/{ns}/warm-cache: succeeded",
        f"PostSync hook Job.batch/{ns}/integration-test-",
    )
    assert pre < sync_hook < post
    sandbox = fleet.sandbox
    # generateName: created (not applied), with a name the API server chose.
    [migrate] = jobs(sandbox, ns, "schema-migrate-")
    assert migrate["metadata"]["name"] != "schema-migrate-"
    assert complete(migrate)
    assert f"created as {migrate['metadata']['name']}" in one_line(synced.output), synced.output
    [tested] = jobs(sandbox, ns, "integration-test-")
    assert complete(tested)
    assert job_state(sandbox, 0, "warm-cache", ns) == "Complete"
    assert jobs(sandbox, ns, "app-slack-notification-fail-") == [], "the sync did not fail"
    for name in ("web", "worker"):
        assert exists(sandbox, 0, "apps/v1", "Deployment", name, ns)
    assert exists(sandbox, 0, "v1", "ConfigMap", "settings", ns)
    # Skip: kept in the repository, never applied.
    assert not exists(sandbox, 0, "v1", "ConfigMap", "local-notes", ns)
    # (The namespace appflow created for the app is shared: in no app's inventory.)
    assert inventory_names(sandbox, 0, app) == sorted(["settings", "web", "web", "worker"])


def test_generate_name_hooks_are_created_again_by_each_new_revision(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, folder = add_argo(tmp_path, space)
    dev = fleet.cluster_names[0]
    assert cli("sync", app, "--cluster", dev).exit_code == 0
    assert len(jobs(fleet.sandbox, ns, "schema-migrate-")) == 1

    # The same revision again: its hooks already ran here.
    assert cli("sync", app, "--cluster", dev).exit_code == 0
    assert len(jobs(fleet.sandbox, ns, "schema-migrate-")) == 1

    settings = folder / "settings.yaml"
    settings.write_text(settings.read_text().replace("mode: edge", "mode: store"))
    again = cli("sync", app, "--cluster", dev)
    assert again.exit_code == 0, again.output
    runs = jobs(fleet.sandbox, ns, "schema-migrate-")
    assert len(runs) == 2, [j["metadata"]["name"] for j in runs]
    assert all(complete(j) for j in runs)
    assert len(jobs(fleet.sandbox, ns, "integration-test-")) == 2


def test_a_failing_presync_hook_applies_nothing_and_runs_syncfail(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    output = failed_sync(fleet, space, tmp_path, "presync-migrate.yaml")
    assert f"PreSync hook Job.batch/{ns}/schema-migrate- (created as " in output, output
    assert "failed: Job failed" in one_line(output), output
    sandbox = fleet.sandbox
    for name in ("web", "worker"):
        assert not exists(sandbox, 0, "apps/v1", "Deployment", name, ns)
    assert not exists(sandbox, 0, "v1", "ConfigMap", "settings", ns)
    assert jobs(sandbox, ns, "integration-test-") == []
    [notified] = jobs(sandbox, ns, "app-slack-notification-fail-")
    assert complete(notified)


def test_a_failing_sync_hook_stops_the_waves_after_it(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    output = failed_sync(fleet, space, tmp_path, "warm-cache.yaml")
    assert f"Sync hook Job.batch/{ns}/warm-cache failed" in one_line(output), output
    sandbox = fleet.sandbox
    # Waves -1 and 0 were applied before the wave-1 hook; wave 2 never was.
    assert exists(sandbox, 0, "v1", "ConfigMap", "settings", ns)
    assert exists(sandbox, 0, "apps/v1", "Deployment", "web", ns)
    assert not exists(sandbox, 0, "apps/v1", "Deployment", "worker", ns)
    assert jobs(sandbox, ns, "integration-test-") == []
    assert len(jobs(sandbox, ns, "app-slack-notification-fail-")) == 1


def test_a_hook_the_api_server_refuses_blocks_the_sync_before_any_write(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, folder = add_argo(tmp_path, space)
    migrate = folder / "presync-migrate.yaml"
    # A Job whose pod runs no container: the API server refuses it.
    migrate.write_text(migrate.read_text().split("      containers:")[0])
    before = snapshot(fleet.sandbox, space, kinds=[("batch/v1", "Job")])

    refused = cli("sync", app, "--cluster", fleet.cluster_names[0])
    assert refused.exit_code == 1, refused.output
    text = one_line(refused.output)
    assert "refused before any change" in text, refused.output
    assert f"Job.batch/{ns}/schema-migrate-" in text, refused.output
    assert "containers" in text, refused.output
    assert snapshot(fleet.sandbox, space, kinds=[("batch/v1", "Job")]) == before


def test_a_named_hook_never_touches_an_object_the_app_does_not_own(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, _ = add_argo(tmp_path, space)
    theirs: Manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "warm-cache", "namespace": ns, "labels": {"team": "data"}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "theirs", "image": "registry.example/theirs:1"}],
                }
            },
        },
    }
    kube = fleet.sandbox.kube(0)
    try:
        kube.apply_sync(theirs, field_manager="kubectl")
    finally:
        kube.close()
    before = snapshot(fleet.sandbox, space, kinds=[("batch/v1", "Job")])

    refused = cli("sync", app, "--cluster", fleet.cluster_names[0])
    assert refused.exit_code == 1, refused.output
    text = one_line(refused.output)
    assert f"Job.batch/{ns}/warm-cache exists and is not a hook of app {app}" in text, text
    assert snapshot(fleet.sandbox, space, kinds=[("batch/v1", "Job")]) == before
