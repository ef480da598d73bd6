"""fleet.yaml `keepResources: true` with Fleet's meaning (issue 9 item 8), through the CLI.

Fleet documents keepResources (BundleDeploymentOptions) as keeping "the deployed
resources when removing the bundle". An object removed from the bundle is
removed as usual. Reports say what happened: kept, not pruned.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from appflow.model.hooks import ANNOTATION_HOOK
from appflow.model.objects import INVENTORY_NAMESPACE, LABEL_APP
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.hook_support import job_state
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    deployment,
    exists,
    live,
    one_line,
    write_files,
)

pytestmark = pytest.mark.cluster


def test_keep_resources_keeps_objects_on_delete_and_still_prunes_removed_ones(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("edge-cache")
    clusters = range(len(fleet.cluster_names))
    folder = write_files(
        tmp_path / "edge-cache",
        {
            "fleet.yaml": f"""\
# A Fleet bundle of raw manifests (ref-fleet-yaml.md).
defaultNamespace: {ns}
# Keep the deployed resources when the bundle is removed.
keepResources: true
""",
            "cache.yaml": [deployment("cache", ns)],
            "settings.yaml": [configmap("settings", ns, {"size": "1Gi"})],
            "legacy.yaml": [configmap("legacy", ns, {"old": "yes"})],
            # A delete hook: with keepResources nothing is deleted, so it never runs.
            "drain.yaml": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {
                        "name": "drain",
                        "namespace": ns,
                        "annotations": {ANNOTATION_HOOK: "PreDelete"},
                    },
                    "spec": {
                        "backoffLimit": 0,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "drain", "image": "busybox:1.36"}],
                            }
                        },
                    },
                }
            ],
        },
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    first = cli("sync", app)
    assert first.exit_code == 0, first.output

    # A manifest removed from the bundle is removed from the clusters, as usual.
    write_files(folder, {"legacy.yaml": None})
    second = cli("sync", app)
    assert second.exit_code == 0, second.output
    text = one_line(second.stdout)
    assert text.count("1 pruned") == len(fleet.cluster_names), text
    for index in clusters:
        assert not exists(fleet.sandbox, index, "v1", "ConfigMap", "legacy", ns)

    # Deleting the app keeps what it deployed, and says so.
    deleted = cli("app", "delete", app)
    assert deleted.exit_code == 0, deleted.output
    out = one_line(deleted.output)
    assert "pruned" not in out.replace("0 pruned", ""), out
    for cluster in fleet.cluster_names:
        assert f"{cluster}: kept 2 objects (keepResources)" in out, out
    assert f"deleted app {app}" in out
    for index in clusters:
        assert live(fleet.sandbox, index, "v1", "ConfigMap", "settings", ns)["data"] == {
            "size": "1Gi"
        }
        cache = live(fleet.sandbox, index, "apps/v1", "Deployment", "cache", ns)
        # Still marked as the app's: adding it again adopts them without a conflict.
        assert cache["metadata"]["labels"][LABEL_APP] == app
        assert not exists(
            fleet.sandbox, index, "v1", "ConfigMap", f"appflow-inventory-{app}", INVENTORY_NAMESPACE
        )
        assert job_state(fleet.sandbox, index, "drain", ns) is None
    listed = cli("app", "list", "-o", "json")
    assert app not in listed.stdout

    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    again = cli("sync", app)
    assert again.exit_code == 0, again.output
    assert one_line(again.stdout).count("0 created") == len(fleet.cluster_names), again.output
