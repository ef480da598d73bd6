"""A revision that fails to render or validate on any target touches no cluster.

Each case snapshots the test namespace (objects and resourceVersions) and the
app inventories on every cluster before and after the failed sync, checks the
exit code and that the message names the app, the cluster and the object (or
the file, line and field) a user has to fix.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from appflow.engine.clusters import add_cluster
from appflow.errors import ClusterUnreachableError
from appflow.model.records import ClusterRecord
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    deployment,
    live,
    one_line,
    register_local,
    snapshot,
    status_json,
    write_files,
)
from tests.integration.engine.test_sync import CHART
from tests.integration.git.gitservers import closed_port

pytestmark = pytest.mark.cluster


def _synced_once(fleet: Fleet, space: Space, folder: Path, app: str) -> None:
    """APP deployed from FOLDER as a first revision, so a bad second one has something to spare."""
    register_local(fleet, app, folder)
    first = cli("sync", app)
    assert first.exit_code == 0, first.output


def test_chart_whose_template_fails_touches_no_cluster(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    app = space.app("chart")
    appflow_yaml = f"namespace: {space.namespace}\nhelm:\n  chart: chart\n"
    folder = write_files(
        tmp_path / "chart",
        {"appflow.yaml": appflow_yaml, **{f"chart/{k}": v for k, v in CHART.items()}},
    )
    _synced_once(fleet, space, folder, app)
    before = snapshot(fleet.sandbox, space)

    write_files(
        folder,
        {
            "chart/values.yaml": "greeting: hello\nreplicas: 2\n",
            "chart/templates/guard.yaml": '{{ fail "greeting must not be hello on the edge" }}\n',
        },
    )
    result = cli("sync", app)
    assert result.exit_code != 0
    text = one_line(result.output)
    assert f"sync of {app} refused before any change" in text, result.output
    for name in fleet.cluster_names:
        assert f"app {app}, cluster {name}" in text, result.output
    assert "templates/guard.yaml" in text
    assert "greeting must not be hello on the edge" in text
    assert snapshot(fleet.sandbox, space) == before
    for index in range(len(fleet.cluster_names)):
        web = live(fleet.sandbox, index, "apps/v1", "Deployment", f"{app}", space.namespace)
        assert web["spec"]["replicas"] == 1


def test_one_invalid_object_among_fifty_touches_no_cluster(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("many")
    objects = [configmap(f"cm-{i:02d}", ns, {"i": str(i)}) for i in range(49)]
    bad = deployment("bad", ns)
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Sometimes"
    folder = write_files(tmp_path / "many", {"objects.yaml": objects})
    _synced_once(fleet, space, folder, app)
    before = snapshot(fleet.sandbox, space)

    # The next commit changes 49 objects, and adds one the API server rejects.
    changed = [configmap(f"cm-{i:02d}", ns, {"i": str(i), "v": "2"}) for i in range(49)]
    write_files(folder, {"objects.yaml": changed, "bad.yaml": [bad]})
    result = cli("sync", app)
    assert result.exit_code != 0
    text = one_line(result.output)
    assert f"sync of {app} refused before any change" in text, result.output
    for name in fleet.cluster_names:
        assert f"app {app}, cluster {name}, Deployment.apps/{ns}/bad:" in text, result.output
    assert 'Unsupported value: "Sometimes"' in text
    assert "imagePullPolicy" in text
    assert "cm-" not in text  # the valid objects are not blamed
    assert snapshot(fleet.sandbox, space) == before

    # The blocked attempt is recorded as such; the deployments keep revision 1.
    [entry] = [a for a in status_json()["apps"] if a["name"] == app]
    assert {d["revision"] for d in entry["deployments"].values()} == {1}


def test_object_invalid_on_one_cluster_touches_no_cluster(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("partly")
    prod = fleet.sandbox.by_env("prod").name
    appflow_yaml = (
        f"namespace: {ns}\n"
        "targetCustomizations:\n"
        "  - clusterSelector: {matchLabels: {env: prod}}\n"
        "    yaml: {overlays: [prod]}\n"
    )
    objects = [configmap(f"cm-{i:02d}", ns, {"i": str(i)}) for i in range(49)]
    folder = write_files(
        tmp_path / "partly",
        {
            "appflow.yaml": appflow_yaml,
            "objects.yaml": objects,
            "web.yaml": [deployment("web", ns)],
            "overlays/prod/web.yaml": [deployment("web", ns, replicas=2)],
        },
    )
    _synced_once(fleet, space, folder, app)
    before = snapshot(fleet.sandbox, space)

    # The next commit changes every ConfigMap everywhere; only prod's Deployment is invalid.
    bad = deployment("web", ns, replicas=2)
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Sometimes"
    changed = [configmap(f"cm-{i:02d}", ns, {"i": str(i), "v": "2"}) for i in range(49)]
    write_files(folder, {"objects.yaml": changed, "overlays/prod/web.yaml": [bad]})
    result = cli("sync", app)
    assert result.exit_code != 0
    text = one_line(result.output)
    assert f"sync of {app} refused before any change" in text, result.output
    assert f"app {app}, cluster {prod}, Deployment.apps/{ns}/web:" in text, result.output
    for name in set(fleet.cluster_names) - {prod}:
        assert f"cluster {name}" not in text, result.output
    # The clusters where the revision was valid were not touched either.
    assert snapshot(fleet.sandbox, space) == before


def test_kind_without_its_crd_touches_no_cluster(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("nocrd")
    widget = {
        "apiVersion": f"e{space.suffix}.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": ns},
        "spec": {"size": 1},
    }
    folder = write_files(
        tmp_path / "nocrd",
        {"config.yaml": [configmap("settings", ns, {"a": "1"})], "widget.yaml": [widget]},
    )
    register_local(fleet, app, folder)
    before = snapshot(fleet.sandbox, space)

    result = cli("sync", app)
    assert result.exit_code != 0
    text = one_line(result.output)
    for name in fleet.cluster_names:
        assert f"app {app}, cluster {name}, Widget.e{space.suffix}.example.com/{ns}/w1:" in text, (
            result.output
        )
    assert f"does not serve Widget in e{space.suffix}.example.com/v1" in text
    assert "CustomResourceDefinition" in text  # what to do about it
    assert "ConfigMap" not in text
    assert snapshot(fleet.sandbox, space) == before


def test_malformed_yaml_names_file_line_and_column(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("broken")
    folder = write_files(tmp_path / "broken", {"a.yaml": [configmap("a", ns, {"k": "v"})]})
    _synced_once(fleet, space, folder, app)
    before = snapshot(fleet.sandbox, space)

    write_files(
        folder,
        {
            "a.yaml": [configmap("a", ns, {"k": "changed"})],
            "b.yaml": (
                "apiVersion: v1\n"
                "kind: ConfigMap\n"
                "metadata:\n"
                "  name: b\n"
                "data:\n"
                "  key: [unclosed\n"
                "  other: value\n"
            ),
        },
    )
    result = cli("sync", app)
    assert result.exit_code != 0
    text = one_line(result.output)
    for name in fleet.cluster_names:
        # file:line:column of the parse error
        assert f"app {app}, cluster {name}, b.yaml:7:8: invalid YAML" in text, result.output
    assert snapshot(fleet.sandbox, space) == before


def test_schema_violation_in_appflow_yaml_names_the_field_path(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("schema")
    folder = write_files(
        tmp_path / "schema",
        {
            "appflow.yaml": f"namespace: {ns}\n",
            "a.yaml": [configmap("a", ns, {"k": "v"})],
        },
    )
    _synced_once(fleet, space, folder, app)
    before = snapshot(fleet.sandbox, space)

    bad = f"namespace: {ns}\nsyncPolicy:\n  prune: sometimes\n"
    write_files(folder, {"appflow.yaml": bad, "a.yaml": [configmap("a", ns, {"k": "w"})]})
    result = cli("sync", app)
    assert result.exit_code != 0
    text = one_line(result.output)
    assert f"app {app}, appflow.yaml:3:3, field syncPolicy.prune" in text, result.output
    assert "'sometimes' is not of type 'boolean'" in text
    assert snapshot(fleet.sandbox, space) == before

    # Registering a folder with such a file is refused up front, with the same words.
    other = write_files(tmp_path / "other", {"appflow.yaml": bad})
    added = cli("app", "add", space.app("other"), "--local", str(other))
    assert added.exit_code != 0
    assert "syncPolicy.prune" in one_line(added.output)


def _dead_kubeconfig(source: Path, target: Path) -> Path:
    """A copy of SOURCE whose server is a loopback port nothing listens on."""
    config = yaml.safe_load(source.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{closed_port()}"
    target.write_text(yaml.safe_dump(config))
    return target


def test_cluster_add_refuses_an_unreachable_cluster(fleet: Fleet, tmp_path: Path) -> None:
    dead = _dead_kubeconfig(fleet.sandbox.clusters[0].kubeconfig, tmp_path / "dead.kubeconfig")
    started = time.monotonic()
    with pytest.raises(ClusterUnreachableError) as caught:
        asyncio.run(
            add_cluster(fleet.store, name="gone-1", kind="imported", kubeconfig=dead, timeout=5)
        )
    assert time.monotonic() - started < 60, "add_cluster did not give up in bounded time"
    assert "cluster gone-1" in str(caught.value)
    assert "did not answer" in str(caught.value)
    assert "gone-1" not in [c.name for c in fleet.store.list_clusters()]

    result = cli("cluster", "add", "gone-2", "--kubeconfig", str(dead), "-l", "env=dev")
    assert result.exit_code != 0
    assert "cluster gone-2" in one_line(result.output)
    assert "gone-2" not in [c.name for c in fleet.store.list_clusters()]


def test_unreachable_cluster_is_reported_and_the_others_sync(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    live_one = fleet.store.get_cluster(fleet.cluster_names[0])
    dead_name = f"dead-{space.suffix}"
    dead = _dead_kubeconfig(Path(live_one.kubeconfig_path or ""), tmp_path / "dead.kubeconfig")
    record = ClusterRecord(
        name=dead_name,
        kind="imported",
        labels={"env": "dev"},
        kubeconfig_path=str(dead),
        state="Online",
    )
    fleet.store.put_cluster(record)
    app = space.app("fleetwide")
    folder = write_files(tmp_path / "fleetwide", {"a.yaml": [configmap("a", ns, {"k": "v"})]})
    register_local(fleet, app, folder)

    started = time.monotonic()
    result = cli("sync", app)
    assert time.monotonic() - started < 120, "the dead cluster held the sync up"
    assert result.exit_code != 0
    text = one_line(result.output)
    assert f"{dead_name}: app {app}, cluster {dead_name}" in text, result.output
    assert "did not answer" in text
    for index, name in enumerate(fleet.cluster_names):
        assert f"{app} revision 1 -> {name}: Ready (1 created" in text, result.output
        assert live(fleet.sandbox, index, "v1", "ConfigMap", "a", ns)["data"] == {"k": "v"}
    [entry] = [a for a in status_json()["apps"] if a["name"] == app]
    assert entry["deployments"][dead_name]["state"] == "Unknown"
    assert entry["counts"] == {"Ready": 3, "Unknown": 1}

    # Once the cluster is back (here: its real kubeconfig), the next sync reaches it.
    shutil.copy(live_one.kubeconfig_path or "", dead)
    fleet.store.put_cluster(replace(record, kubeconfig_path=str(dead)))
    again = cli("sync", app)
    assert again.exit_code == 0, again.output
