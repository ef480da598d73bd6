"""Helm hooks in template mode, through the CLI, on sandbox clusters (issue 9, item 10).

The chart (testdata/hooks/shop) has the hooks Helm's documentation describes: pre-install
and pre-upgrade objects ordered by hook-weight, a post-install Job, pre-delete and
post-delete Jobs, a test Pod, and the three delete policies. Its values choose, through the
sandbox's pod annotation, whether each hook succeeds or fails. What is checked is what a
user would see: the objects on the cluster (which exist, which never did, which were
replaced), the inventory, the CLI's report and exit code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from appflow.model.objects import INVENTORY_NAMESPACE
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.hook_support import inventory_names, job_state, lines_with, uid
from tests.integration.engine.support import Space, cli, exists, live, one_line

pytestmark = pytest.mark.cluster

SHOP = Path(__file__).parent / "testdata" / "hooks" / "shop"
RELEASE = "shop"


def shop_app(
    folder: Path,
    app: str,
    namespace: str,
    *,
    values: dict[str, Any] | None = None,
    fleet_yaml: bool = False,
    mode: str | None = None,
    customizations: list[dict[str, Any]] | None = None,
) -> Path:
    """An app folder holding the shop chart, described by appflow.yaml or by fleet.yaml."""
    if (folder / "shop").exists():
        shutil.rmtree(folder / "shop")
    shutil.copytree(SHOP, folder / "shop")
    helm: dict[str, Any] = {"chart": "shop", "releaseName": RELEASE, "values": values or {}}
    if mode:
        helm["mode"] = mode
    if fleet_yaml:
        doc: dict[str, Any] = {"defaultNamespace": namespace, "helm": helm}
        (folder / "fleet.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        return folder
    doc = {"name": app, "namespace": namespace, "helm": helm}
    if customizations:
        doc["targetCustomizations"] = customizations
    (folder / "appflow.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def add_shop(tmp_path: Path, space: Space, **options: Any) -> tuple[str, str, Path]:
    """Register the shop chart as an app of SPACE (see shop_app); its namespace, name, folder."""
    ns, app = space.namespace, space.app("shop")
    folder = shop_app(tmp_path / "app", app, ns, **options)
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    return ns, app, folder


def sync(app: str, *args: str) -> str:
    result = cli("sync", app, *args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("definition", ["appflow.yaml", "fleet.yaml"])
def test_install_runs_pre_install_hooks_by_weight_before_the_chart_and_post_install_after(
    fleet: Fleet, space: Space, tmp_path: Path, definition: str
) -> None:
    ns, app, _folder = add_shop(tmp_path, space, fleet_yaml=definition == "fleet.yaml")
    dev = fleet.cluster_names[0]

    out = sync(app, "--cluster", dev)
    # Weight -5, 0, 5, then the chart, then post-install once it is healthy.
    config, migrate, seed, notify = lines_with(
        out,
        f"pre-install hook ConfigMap/{ns}/shop-migrate-config: succeeded",
        f"pre-install hook Job.batch/{ns}/shop-migrate: succeeded",
        f"pre-install hook Job.batch/{ns}/shop-seed: succeeded",
        f"post-install hook Job.batch/{ns}/shop-notify: succeeded",
    )
    assert config < migrate < seed < notify
    assert f"{dev}: Ready" in one_line(out), out

    sandbox = fleet.sandbox
    assert exists(sandbox, 0, "apps/v1", "Deployment", "shop-web", ns)
    assert exists(sandbox, 0, "v1", "ConfigMap", "shop-migrate-config", ns)
    assert job_state(sandbox, 0, "shop-migrate", ns) == "Complete"
    assert job_state(sandbox, 0, "shop-notify", ns) == "Complete"
    # hook-succeeded: the seed Job is gone once its phase succeeded.
    assert job_state(sandbox, 0, "shop-seed", ns) is None
    # A test is never applied by a sync; delete hooks do not run on install.
    assert not exists(sandbox, 0, "v1", "Pod", "shop-test-connection", ns)
    assert job_state(sandbox, 0, "shop-drain", ns) is None
    assert job_state(sandbox, 0, "shop-cleanup", ns) is None
    # Hooks are not owned objects: not in the inventory, not counted by health.
    # (The namespace appflow created for the app is shared: in no app's inventory.)
    assert inventory_names(sandbox, 0, app) == sorted(["shop-settings", "shop-web", "shop-web"])
    shown = json.loads(cli("app", "show", app, "-o", "json").stdout)
    [deployment] = shown["deployments"]
    assert deployment["state"] == "Ready"
    assert deployment["resources"]["desiredReady"] == 3, deployment


def test_a_failing_pre_install_hook_stops_the_install_and_the_retry_installs(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, folder = add_shop(tmp_path, space, values={"exitCode": {"migrate": 1}})
    dev = fleet.cluster_names[0]

    failed = cli("sync", app, "--cluster", dev)
    assert failed.exit_code == 1, failed.output
    text = one_line(failed.output)
    assert f"pre-install hook Job.batch/{ns}/shop-migrate failed" in text, failed.output
    assert "backoff limit" in text, failed.output
    sandbox = fleet.sandbox
    # Weight -5 ran, weight 0 failed, weight 5 never ran, and nothing of the chart was applied.
    assert exists(sandbox, 0, "v1", "ConfigMap", "shop-migrate-config", ns)
    assert job_state(sandbox, 0, "shop-migrate", ns) == "Failed"
    assert job_state(sandbox, 0, "shop-seed", ns) is None
    assert "shop-seed" not in failed.output
    for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service")):
        assert not exists(sandbox, 0, api_version, kind, "shop-web", ns)
    assert not exists(sandbox, 0, "v1", "ConfigMap", "shop-settings", ns)
    assert job_state(sandbox, 0, "shop-notify", ns) is None
    [deployment] = json.loads(cli("app", "show", app, "-o", "json").stdout)["deployments"]
    assert deployment["state"] == "ErrApplied"
    failed_uid = uid(sandbox, 0, "batch/v1", "Job", "shop-migrate", ns)

    # Fixed: the next sync is an install again (the pre-install-only seed runs), and
    # before-hook-creation replaced the failed Job.
    shop_app(folder, app, ns)
    out = sync(app, "--cluster", dev)
    lines_with(
        out,
        f"pre-install hook Job.batch/{ns}/shop-migrate: succeeded",
        f"pre-install hook Job.batch/{ns}/shop-seed: succeeded",
    )
    assert uid(sandbox, 0, "batch/v1", "Job", "shop-migrate", ns) != failed_uid
    assert job_state(sandbox, 0, "shop-migrate", ns) == "Complete"
    assert exists(sandbox, 0, "apps/v1", "Deployment", "shop-web", ns)


def test_hook_failed_policy_deletes_the_hook_that_failed(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, _folder = add_shop(tmp_path, space, values={"exitCode": {"seed": 1}})

    failed = cli("sync", app, "--cluster", fleet.cluster_names[0])
    assert failed.exit_code == 1, failed.output
    text = one_line(failed.output)
    assert f"pre-install hook Job.batch/{ns}/shop-seed failed" in text, failed.output
    assert "deleted by its delete policy" in text, failed.output
    sandbox = fleet.sandbox
    # The failed seed Job went (hook-failed); the migration before it stays (no such policy).
    assert job_state(sandbox, 0, "shop-seed", ns) is None
    assert job_state(sandbox, 0, "shop-migrate", ns) == "Complete"
    assert not exists(sandbox, 0, "apps/v1", "Deployment", "shop-web", ns)


def test_upgrade_runs_upgrade_hooks_and_a_resync_of_the_same_revision_runs_none(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, folder = add_shop(tmp_path, space)
    dev = fleet.cluster_names[0]
    sync(app, "--cluster", dev)
    sandbox = fleet.sandbox
    installed = {
        name: uid(sandbox, 0, v, k, name, ns)
        for v, k, name in (
            ("batch/v1", "Job", "shop-migrate"),
            ("v1", "ConfigMap", "shop-migrate-config"),
            ("batch/v1", "Job", "shop-notify"),
        )
    }

    again = sync(app, "--cluster", dev)
    assert "hook" not in again, again
    for name, before in installed.items():
        kind = "ConfigMap" if name.endswith("config") else "Job"
        version = "v1" if kind == "ConfigMap" else "batch/v1"
        assert uid(sandbox, 0, version, kind, name, ns) == before

    shop_app(folder, app, ns, values={"release": "2"})
    upgraded = sync(app, "--cluster", dev)
    lines_with(
        upgraded,
        f"pre-upgrade hook ConfigMap/{ns}/shop-migrate-config: succeeded",
        f"pre-upgrade hook Job.batch/{ns}/shop-migrate: succeeded",
        f"post-upgrade hook Job.batch/{ns}/shop-notify: succeeded",
    )
    assert "shop-seed" not in upgraded, "pre-install only: not run on an upgrade"
    for name, before in installed.items():
        kind = "ConfigMap" if name.endswith("config") else "Job"
        version = "v1" if kind == "ConfigMap" else "batch/v1"
        assert uid(sandbox, 0, version, kind, name, ns) != before, f"{name} was not run again"
    config = live(sandbox, 0, "v1", "ConfigMap", "shop-migrate-config", ns)
    assert config["data"] == {"release": "2"}
    assert live(sandbox, 0, "v1", "ConfigMap", "shop-settings", ns)["data"] == {"release": "2"}


def test_hooks_an_earlier_appflow_inventoried_leave_the_inventory_unpruned(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    """An appflow that did not know hooks applied them as objects and listed them in the
    inventory; once they are hooks they must not be pruned (the run just made them)."""
    ns, app, folder = add_shop(tmp_path, space)
    dev = fleet.cluster_names[0]
    sync(app, "--cluster", dev)
    kube = fleet.sandbox.kube(0)
    try:
        name = f"appflow-inventory-{app}"
        cm = kube.get_sync("v1", "ConfigMap", name, INVENTORY_NAMESPACE)
        assert cm is not None
        entries = json.loads(cm["data"]["entries"])
        entries.append({"id": f"{ns}_shop-migrate_batch_Job", "v": "batch/v1"})
        cm["data"]["entries"] = json.dumps(sorted(entries, key=lambda e: e["id"]))
        kube.apply_sync(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": INVENTORY_NAMESPACE},
                "data": cm["data"],
            },
            force=True,
        )
    finally:
        kube.close()
    assert "shop-migrate" in inventory_names(fleet.sandbox, 0, app)

    shop_app(folder, app, ns, values={"release": "2"})
    out = sync(app, "--cluster", dev)
    lines_with(out, f"pre-upgrade hook Job.batch/{ns}/shop-migrate: succeeded")
    assert "pruned" not in out.replace("0 pruned", ""), out
    assert job_state(fleet.sandbox, 0, "shop-migrate", ns) == "Complete"
    assert "shop-migrate" not in inventory_names(fleet.sandbox, 0, app)


def test_rollback_runs_rollback_hooks_not_upgrade_hooks(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, folder = add_shop(tmp_path, space)
    dev = fleet.cluster_names[0]
    sync(app, "--cluster", dev)
    shop_app(folder, app, ns, values={"release": "2"})
    sync(app, "--cluster", dev)
    sandbox = fleet.sandbox
    migrated = uid(sandbox, 0, "batch/v1", "Job", "shop-migrate", ns)
    assert job_state(sandbox, 0, "shop-restore", ns) is None

    rolled = cli("app", "rollback", app, "--to", "1")
    assert rolled.exit_code == 0, rolled.output
    lines_with(rolled.output, f"pre-rollback hook Job.batch/{ns}/shop-restore: succeeded")
    assert "pre-upgrade" not in rolled.output, rolled.output
    assert job_state(sandbox, 0, "shop-restore", ns) == "Complete"
    # The migration (pre-install, pre-upgrade) did not run again.
    assert uid(sandbox, 0, "batch/v1", "Job", "shop-migrate", ns) == migrated
    assert live(sandbox, 0, "v1", "ConfigMap", "shop-settings", ns)["data"] == {"release": "1"}


def test_post_install_hooks_wait_for_the_chart_to_be_healthy(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, _folder = add_shop(tmp_path, space, values={"web": {"schedulable": False}})

    result = cli("sync", app, "--cluster", fleet.cluster_names[0], "--timeout", "5")
    assert result.exit_code == 1, result.output
    text = one_line(result.output)
    assert "post-install hooks were not run" in text, result.output
    assert "Deployment.apps" in text, result.output
    sandbox = fleet.sandbox
    assert job_state(sandbox, 0, "shop-migrate", ns) == "Complete"
    assert exists(sandbox, 0, "apps/v1", "Deployment", "shop-web", ns)
    assert job_state(sandbox, 0, "shop-notify", ns) is None


def test_app_delete_runs_pre_delete_and_post_delete_hooks_around_the_deletion(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, _folder = add_shop(tmp_path, space)
    sync(app, "--cluster", fleet.cluster_names[0])

    deleted = cli("app", "delete", app)
    assert deleted.exit_code == 0, deleted.output
    pre, post = lines_with(
        deleted.output,
        f"pre-delete hook Job.batch/{ns}/shop-drain: succeeded",
        f"post-delete hook Job.batch/{ns}/shop-cleanup: succeeded",
    )
    assert pre < post
    sandbox = fleet.sandbox
    assert job_state(sandbox, 0, "shop-drain", ns) == "Complete"
    assert job_state(sandbox, 0, "shop-cleanup", ns) == "Complete"
    assert not exists(sandbox, 0, "apps/v1", "Deployment", "shop-web", ns)
    assert not exists(sandbox, 0, "v1", "ConfigMap", "shop-settings", ns)
    # What the app's syncs ran is gone with the app.
    assert job_state(sandbox, 0, "shop-migrate", ns) is None
    assert job_state(sandbox, 0, "shop-notify", ns) is None
    assert not exists(sandbox, 0, "v1", "ConfigMap", "shop-migrate-config", ns)


def test_a_failing_pre_delete_hook_keeps_the_app(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, _folder = add_shop(tmp_path, space, values={"exitCode": {"drain": 1}})
    sync(app, "--cluster", fleet.cluster_names[0])

    deleted = cli("app", "delete", app)
    assert deleted.exit_code == 1, deleted.output
    assert f"pre-delete hook Job.batch/{ns}/shop-drain failed" in one_line(deleted.output)
    sandbox = fleet.sandbox
    assert exists(sandbox, 0, "apps/v1", "Deployment", "shop-web", ns)
    assert job_state(sandbox, 0, "shop-cleanup", ns) is None
    assert app in cli("app", "list").output


def test_tests_are_never_synced_and_app_test_runs_them_on_each_cluster(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app = space.namespace, space.app("shop")
    # The test fails on the env=test cluster only.
    folder = shop_app(
        tmp_path / "app",
        app,
        ns,
        customizations=[
            {
                "name": "failing-test",
                "clusterSelector": {"matchLabels": {"env": "test"}},
                "helm": {"values": {"exitCode": {"test": 1}}},
            }
        ],
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    sync(app)
    sandbox = fleet.sandbox
    names = fleet.cluster_names
    failing = names.index(sandbox.by_env("test").name)
    for index in range(len(names)):
        assert not exists(sandbox, index, "v1", "Pod", "shop-test-connection", ns)

    tested = cli("app", "test", app)
    assert tested.exit_code == 1, tested.output
    text = one_line(tested.output)
    for index, name in enumerate(names):
        verdict = "failed" if index == failing else "passed"
        assert f"{app} -> {name}: {verdict}" in text, tested.output
    assert f"test hook Pod/{ns}/shop-test-connection failed" in text, tested.output
    assert "exited with code 1" in text, tested.output
    passed = [i for i in range(len(names)) if i != failing]
    before = {i: uid(sandbox, i, "v1", "Pod", "shop-test-connection", ns) for i in passed}

    one = cli("app", "test", app, "--cluster", names[passed[0]])
    assert one.exit_code == 0, one.output
    assert f"{app} -> {names[passed[0]]}: passed" in one_line(one.output)
    assert names[failing] not in one.output
    # Run again there (before-hook-creation made a new Pod), and only there.
    assert uid(sandbox, passed[0], "v1", "Pod", "shop-test-connection", ns) != before[passed[0]]
    assert uid(sandbox, passed[1], "v1", "Pod", "shop-test-connection", ns) == before[passed[1]]


def test_release_mode_app_with_hooks_becomes_ready_and_runs_helm_test(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app, folder = add_shop(tmp_path, space, mode="release")
    dev = fleet.cluster_names[0]
    # Helm runs a release's hooks with appflow's credentials: only an operator allows it.
    allowed = cli("policy", "set", "cluster", dev, "--helm-release", "allow")
    assert allowed.exit_code == 0, allowed.output

    result = cli("sync", app, "--cluster", dev, "--wait", "--timeout", "120")
    assert result.exit_code == 0, result.output
    assert f"{dev}: Ready" in one_line(result.output), result.output
    [deployment] = json.loads(cli("app", "show", app, "-o", "json").stdout)["deployments"]
    assert deployment["state"] == "Ready", deployment
    assert deployment["resources"]["missing"] == 0, deployment
    # Helm ran the hooks: the migration completed, the seed deleted itself.
    assert job_state(fleet.sandbox, 0, "shop-migrate", ns) == "Complete"
    assert job_state(fleet.sandbox, 0, "shop-seed", ns) is None

    tested = cli("app", "test", app)
    assert tested.exit_code == 0, tested.output
    assert f"{app} -> {dev}: passed" in one_line(tested.output), tested.output
    pod = live(fleet.sandbox, 0, "v1", "Pod", "shop-test-connection", ns)
    assert pod["status"]["phase"] == "Succeeded"

    shop_app(folder, app, ns, mode="release", values={"exitCode": {"test": 1}})
    sync(app, "--cluster", dev)
    failing = cli("app", "test", app)
    assert failing.exit_code == 1, failing.output
    text = one_line(failing.output)
    assert f"{app} -> {dev}: failed" in text, failing.output
    assert "shop-test-connection" in text, failing.output
    assert "phase Failed" in text, failing.output
