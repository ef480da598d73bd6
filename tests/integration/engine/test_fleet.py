"""Fleet orchestration as a user sees it: targets, customizations, rollouts, dependsOn, outages.

Every case drives the CLI against the three sandbox clusters (test-1 env=dev,
test-2 env=test, test-3 env=prod) and checks what a user would look at: the
command's output and exit code, `appflow status -o json`, `appflow rollout
status NAME -o json`, `appflow cluster list -o json` and the live objects.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from appflow import sandbox as sb
from appflow.engine.clusters import credentials_dir
from tests.helpers import eventually
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    deployment,
    exists,
    live,
    one_line,
    status_json,
    write_files,
)
from tests.integration.git.gitservers import closed_port

pytestmark = pytest.mark.cluster


def appflow_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def env_in(*values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": "env", "operator": "In", "values": list(values)}]}


def index_of(fleet: Fleet, name: str) -> int:
    return fleet.cluster_names.index(name)


def env_cluster(fleet: Fleet, env: str) -> str:
    return fleet.sandbox.by_env(env).name


def holding(fleet: Fleet, kind: str, name: str, ns: str, api_version: str = "v1") -> set[str]:
    """The clusters on which the object exists."""
    return {
        c
        for i, c in enumerate(fleet.cluster_names)
        if exists(fleet.sandbox, i, api_version, kind, name, ns)
    }


def deployments_of(app: str) -> dict[str, dict[str, Any]]:
    [entry] = [a for a in status_json()["apps"] if a["name"] == app]
    found: dict[str, dict[str, Any]] = entry["deployments"]
    return found


def synced(*args: str) -> Result:
    result = cli("sync", *args)
    assert result.exit_code == 0, result.output
    return result


# -- 1. targeting ---------------------------------------------------------------------


def test_cluster_selector_follows_labels_and_prunes_where_the_app_leaves(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("targeted")
    dev, test, prod = (env_cluster(fleet, e) for e in ("dev", "test", "prod"))
    folder = write_files(
        tmp_path / "targeted",
        {
            "appflow.yaml": appflow_yaml(
                {
                    "namespace": ns,
                    "targets": [
                        {"name": "test-and-prod", "clusterSelector": env_in("test", "prod")},
                        {"name": "mars", "clusterSelector": {"matchLabels": {"env": "mars"}}},
                    ],
                }
            ),
            "config.yaml": [configmap("settings", ns, {"mode": "edge"})],
        },
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0

    first = synced(app)
    # A target that matches nothing is said, not silently ignored.
    assert f"warning: app {app}: target 'mars' matches no registered cluster" in one_line(
        first.output
    )
    assert holding(fleet, "ConfigMap", "settings", ns) == {test, prod}
    assert set(deployments_of(app)) == {test, prod}
    assert f"-> {dev}:" not in first.output

    # Relabelling the dev cluster as prod brings it into the target at the next sync.
    labelled = cli("cluster", "label", dev, "env=prod")
    assert labelled.exit_code == 0, labelled.output
    second = synced(app)
    assert f"-> {dev}: Ready" in second.stdout, second.output
    assert holding(fleet, "ConfigMap", "settings", ns) == {dev, test, prod}
    assert {c: d["state"] for c, d in deployments_of(app).items()} == {
        dev: "Ready",
        test: "Ready",
        prod: "Ready",
    }

    # Removing its env label takes the test cluster out: the app is pruned there.
    unlabelled = cli("cluster", "label", test, "env-")
    assert unlabelled.exit_code == 0, unlabelled.output
    third = synced(app)
    assert f"-> {test}: Ready (0 created, 0 configured, 0 unchanged, 1 pruned)" in third.stdout, (
        third.output
    )
    eventually(
        lambda: holding(fleet, "ConfigMap", "settings", ns) == {dev, prod},
        timeout=30,
        what=f"the ConfigMap to be pruned from {test}",
    )
    assert set(deployments_of(app)) == {dev, prod}, (third.output, deployments_of(app))


def test_a_selector_matching_no_cluster_warns_and_deploys_nothing(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("nowhere")
    folder = write_files(
        tmp_path / "nowhere",
        {
            "appflow.yaml": appflow_yaml(
                {
                    "namespace": ns,
                    "targets": [
                        {"name": "staging", "clusterSelector": {"matchLabels": {"env": "staging"}}}
                    ],
                }
            ),
            "config.yaml": [configmap("settings", ns, {"mode": "edge"})],
        },
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    result = cli("sync", app)
    text = one_line(result.output)
    assert f"warning: app {app}: target 'staging' matches no registered cluster" in text, (
        result.output
    )
    assert f"app {app}: its targets match no registered cluster; nothing to sync" in text
    assert holding(fleet, "ConfigMap", "settings", ns) == set()
    assert deployments_of(app) == {}


def test_cluster_group_as_target(fleet: Fleet, space: Space, tmp_path: Path) -> None:
    ns = space.namespace
    app = space.app("grouped")
    group = f"lower-{space.suffix}"
    dev, test, prod = (env_cluster(fleet, e) for e in ("dev", "test", "prod"))
    added = cli("group", "add", group, "-l", "env in (dev,test)")
    assert added.exit_code == 0, added.output
    assert f"group {group}: {dev}, {test}" in added.stdout

    folder = write_files(
        tmp_path / "grouped",
        {
            "appflow.yaml": appflow_yaml(
                {"namespace": ns, "targets": [{"name": "lower", "clusterGroup": group}]}
            ),
            "config.yaml": [configmap("settings", ns, {"mode": "edge"})],
        },
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    synced(app)
    assert holding(fleet, "ConfigMap", "settings", ns) == {dev, test}
    assert set(deployments_of(app)) == {dev, test}

    # The group is a selector, not a list: a prod cluster relabelled dev joins it.
    assert cli("cluster", "label", prod, "env=dev").exit_code == 0
    synced(app)
    assert holding(fleet, "ConfigMap", "settings", ns) == {dev, test, prod}


# -- 2. target customizations ---------------------------------------------------------


CHART = {
    "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "values.yaml": 'version: "1"\ngreeting: hello\nnodeSelector: {}\n',
    "templates/config.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  version: {{ .Values.version | quote }}
  greeting: {{ .Values.greeting | quote }}
""",
    "templates/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
      annotations: {version: {{ .Values.version | quote }}}
    spec:
      {{- with .Values.nodeSelector }}
      nodeSelector: {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: main
          image: registry.example/web:{{ .Values.version }}
""",
}


def chart_app(folder: Path, doc: dict[str, Any]) -> Path:
    doc = {"helm": {"chart": "chart", "releaseName": "web", **doc.pop("helm", {})}, **doc}
    return write_files(
        folder, {"appflow.yaml": appflow_yaml(doc), **{f"chart/{k}": v for k, v in CHART.items()}}
    )


def test_first_matching_target_customization_wins(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("custom")
    folder = chart_app(
        tmp_path / "custom",
        {
            "namespace": ns,
            "targetCustomizations": [
                # Both match the prod cluster; only the first applies there.
                {
                    "name": "prod",
                    "clusterSelector": {"matchLabels": {"env": "prod"}},
                    "helm": {"values": {"greeting": "from-prod"}},
                },
                {
                    "name": "everyone",
                    "clusterSelector": {},
                    "helm": {"values": {"greeting": "from-everyone"}},
                },
            ],
        },
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    synced(app)
    for env, expected in (
        ("dev", "from-everyone"),
        ("test", "from-everyone"),
        ("prod", "from-prod"),
    ):
        index = index_of(fleet, env_cluster(fleet, env))
        config = live(fleet.sandbox, index, "v1", "ConfigMap", "web-config", ns)
        assert config["data"]["greeting"] == expected, env


# -- 3. progressive rollout -----------------------------------------------------------


def _rollout_status(app: str) -> dict[str, Any]:
    result = cli("rollout", "status", app, "-o", "json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _deployed_version(fleet: Fleet, cluster: str, ns: str) -> tuple[str, str]:
    """(ConfigMap version, Deployment template version) live on CLUSTER."""
    index = index_of(fleet, cluster)
    config = live(fleet.sandbox, index, "v1", "ConfigMap", "web-config", ns)
    web = live(fleet.sandbox, index, "apps/v1", "Deployment", "web", ns)
    return config["data"]["version"], web["spec"]["template"]["metadata"]["annotations"]["version"]


def _unhealthy_on_dev_rollout(
    fleet: Fleet, space: Space, tmp_path: Path, *, name: str, auto_rollback: bool
) -> tuple[str, Path, Result]:
    """Revision 1 Ready everywhere, then a revision 2 that cannot schedule on the dev cluster."""
    ns = space.namespace
    app = space.app(name)
    rollout = {"maxUnavailable": 1, "healthTimeoutSeconds": 8, "autoRollback": auto_rollback}
    folder = chart_app(tmp_path / name, {"namespace": ns, "rollout": rollout})
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    synced(app, "--wait", "--timeout", "120")
    assert _rollout_status(app)["state"] == "Complete"
    for cluster in fleet.cluster_names:
        assert _deployed_version(fleet, cluster, ns) == ("1", "1")

    # Revision 2: on env=dev its pods select a node label no node has, so they stay Pending.
    chart_app(
        folder,
        {
            "namespace": ns,
            "rollout": rollout,
            "helm": {"values": {"version": "2"}},
            "targetCustomizations": [
                {
                    "name": "dev",
                    "clusterSelector": {"matchLabels": {"env": "dev"}},
                    "helm": {"values": {"nodeSelector": {"appflow.dev/no-such-node": "yes"}}},
                }
            ],
        },
    )
    return app, folder, cli("sync", app)


def test_rollout_stops_at_the_first_unhealthy_partition(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    dev, test, prod = (env_cluster(fleet, e) for e in ("dev", "test", "prod"))
    assert fleet.cluster_names == sorted(fleet.cluster_names)
    assert fleet.cluster_names[0] == dev
    app, _, result = _unhealthy_on_dev_rollout(
        fleet, space, tmp_path, name="wave", auto_rollback=False
    )
    assert result.exit_code != 0, result.output
    text = one_line(result.output)
    assert f"rollout of {app} failed: partition 'partition-1' did not become Ready: {dev}:" in text

    status = _rollout_status(app)
    assert status["state"] == "Failed"
    assert [(p["clusters"], p["state"]) for p in status["partitions"]] == [
        ([dev], "Failed"),
        ([test], "Pending"),
        ([prod], "Pending"),
    ]
    assert status["partitions"][0]["message"].startswith(f"{dev}: ")
    # The failed cluster has revision 2, not Ready; the others were never touched.
    assert _deployed_version(fleet, dev, ns) == ("2", "2")
    for cluster in (test, prod):
        assert _deployed_version(fleet, cluster, ns) == ("1", "1")
    states = {c: (d["state"], d["revision"]) for c, d in deployments_of(app).items()}
    assert states[test] == ("Ready", 1)
    assert states[prod] == ("Ready", 1)
    assert states[dev][0] == "NotReady"


def test_rollout_with_auto_rollback_returns_the_failed_cluster_to_its_revision(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    dev, test, prod = (env_cluster(fleet, e) for e in ("dev", "test", "prod"))
    app, _, result = _unhealthy_on_dev_rollout(
        fleet, space, tmp_path, name="undo", auto_rollback=True
    )
    assert result.exit_code != 0, result.output
    assert f"{dev}: rolled back" in one_line(result.output), result.output

    status = _rollout_status(app)
    assert status["state"] == "RolledBack"
    assert [p["state"] for p in status["partitions"]] == ["Failed", "Pending", "Pending"]
    for cluster in (dev, test, prod):
        assert _deployed_version(fleet, cluster, ns) == ("1", "1"), cluster
    index = index_of(fleet, dev)
    web = live(fleet.sandbox, index, "apps/v1", "Deployment", "web", ns)
    assert "nodeSelector" not in web["spec"]["template"]["spec"]

    def dev_ready_on_revision_1() -> bool:
        deployed = deployments_of(app)[dev]
        return bool(deployed["state"] == "Ready" and deployed["revision"] == 1)

    eventually(dev_ready_on_revision_1, timeout=30, what=f"{dev} to be Ready on revision 1")


# -- 4. dependsOn ---------------------------------------------------------------------


def _stack(space: Space, tmp_path: Path) -> tuple[str, str]:
    """App "db" and app "api" that depends on it (api sorts first by name)."""
    ns = space.namespace
    db, api = space.app("db"), space.app("api")
    write_files(
        tmp_path / "db",
        {
            "appflow.yaml": appflow_yaml({"namespace": ns}),
            "db.yaml": [deployment("db", ns), configmap("db-config", ns, {"port": "5432"})],
        },
    )
    write_files(
        tmp_path / "api",
        {
            "appflow.yaml": appflow_yaml({"namespace": ns, "dependsOn": [{"name": db}]}),
            "api.yaml": [configmap("api-config", ns, {"db": "db:5432"})],
        },
    )
    for name, folder in ((db, "db"), (api, "api")):
        added = cli("app", "add", name, "--local", str(tmp_path / folder))
        assert added.exit_code == 0, added.output
    return db, api


def test_depends_on_waits_for_the_dependency_then_sync_all_orders_the_stack(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    db, api = _stack(space, tmp_path)

    early = cli("sync", api)
    text = one_line(early.output)
    for cluster in fleet.cluster_names:
        assert (
            f"{cluster}: WaitApplied: waiting for {db} (not deployed on {cluster}) "
            f"to be Ready on {cluster}"
        ) in text, early.output
    deployed = deployments_of(api)
    assert {c: d["state"] for c, d in deployed.items()} == dict.fromkeys(
        fleet.cluster_names, "WaitApplied"
    )
    assert all(db in d["message"] for d in deployed.values())
    assert holding(fleet, "ConfigMap", "api-config", ns) == set()

    # One `sync --all --wait`: db first (api sorts before it by name), then api.
    everything = cli("sync", "--all", "--wait", "--timeout", "120")
    assert everything.exit_code == 0, everything.output
    assert everything.stdout.index(f"{db} revision 1 ->") < everything.stdout.index(
        f"{api} revision 1 ->"
    )
    assert "WaitApplied" not in everything.output
    assert holding(fleet, "ConfigMap", "api-config", ns) == set(fleet.cluster_names)
    for app in (db, api):
        assert {d["state"] for d in deployments_of(app).values()} == {"Ready"}, app

    # db turns unhealthy (its new pods cannot be scheduled): a change to api waits,
    # and what api already runs stays where it is.
    broken = deployment("db", ns)
    broken["spec"]["template"]["spec"]["nodeSelector"] = {"appflow.dev/no-such-node": "yes"}
    write_files(
        tmp_path / "db", {"db.yaml": [broken, configmap("db-config", ns, {"port": "5432"})]}
    )
    cli("sync", db)
    assert {d["state"] for d in deployments_of(db).values()} == {"NotReady"}
    write_files(tmp_path / "api", {"api.yaml": [configmap("api-config", ns, {"db": "db:6432"})]})
    held = cli("sync", api)
    assert f"waiting for {db} (NotReady)" in one_line(held.output), held.output
    assert {d["state"] for d in deployments_of(api).values()} == {"WaitApplied"}
    for index in range(len(fleet.cluster_names)):
        config = live(fleet.sandbox, index, "v1", "ConfigMap", "api-config", ns)
        assert config["data"] == {"db": "db:5432"}


def test_a_depends_on_cycle_is_refused_naming_the_cycle(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    db, api = _stack(space, tmp_path)
    # db now also depends on api: db -> api -> db.
    write_files(
        tmp_path / "db",
        {"appflow.yaml": appflow_yaml({"namespace": ns, "dependsOn": [{"name": api}]})},
    )
    cycle = f"dependsOn forms a cycle: {api} -> {db} -> {api}"
    # Other apps' dependencies are read from their records (what their definitions
    # said when last read), not fetched from their sources: the cycle shows once
    # db's new definition has been read, which `sync --all` does first.
    for args in (("--all",), (api,)):
        result = cli("sync", *args)
        assert result.exit_code != 0, result.output
        assert cycle in one_line(result.output), result.output
    assert holding(fleet, "ConfigMap", "api-config", ns) == set()
    assert holding(fleet, "ConfigMap", "db-config", ns) == set()


# -- 5. a cluster goes down ----------------------------------------------------------------


@pytest.fixture
def stopped_prod(fleet: Fleet) -> Iterator[str]:
    """The prod sandbox cluster, stopped for the test and started again afterwards."""
    name = env_cluster(fleet, "prod")
    root = fleet.sandbox.root
    sb.stop([name], root=root)
    try:
        yield name
    finally:
        sb.start([name], root=root, timeout=240)


def test_a_stopped_cluster_is_offline_the_others_complete_and_it_converges_when_back(
    fleet: Fleet, space: Space, tmp_path: Path, stopped_prod: str
) -> None:
    ns = space.namespace
    app = space.app("outage")
    prod = stopped_prod
    others = [c for c in fleet.cluster_names if c != prod]
    folder = write_files(
        tmp_path / "outage",
        {"app.yaml": [configmap("settings", ns, {"mode": "edge"}), deployment("web", ns)]},
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0

    started = time.monotonic()
    result = cli("sync", app, "--wait", "--timeout", "120")
    assert time.monotonic() - started < 120, "the stopped cluster held the others up"
    assert result.exit_code != 0, result.output
    text = one_line(result.output)
    assert f"{prod}: app {app}, cluster {prod}" in text, result.output
    for cluster in others:
        assert f"{app} revision 1 -> {cluster}: Ready" in text, result.output
    for cluster in others:
        assert exists(fleet.sandbox, index_of(fleet, cluster), "v1", "ConfigMap", "settings", ns)

    listed = cli("cluster", "list", "-o", "json")
    assert listed.exit_code == 0, listed.output
    clusters = {c["name"]: c for c in json.loads(listed.stdout)}
    assert clusters[prod]["state"] == "Offline"
    assert clusters[prod]["state_reason"], "Offline without a reason"
    assert {clusters[c]["state"] for c in others} == {"Online"}
    status = status_json()
    assert {c["name"]: c["state"] for c in status["clusters"]}[prod] == "Offline"
    assert deployments_of(app)[prod]["state"] == "Unknown"

    # Back up: the next sync, and nothing else, brings it in line.
    sb.start([prod], root=fleet.sandbox.root, timeout=240)
    again = cli("sync", app, "--wait", "--timeout", "120")
    assert again.exit_code == 0, again.output
    assert f"{app} revision 1 -> {prod}: Ready" in again.stdout, again.output
    assert holding(fleet, "ConfigMap", "settings", ns) == set(fleet.cluster_names)
    assert {c["name"]: c["state"] for c in status_json()["clusters"]}[prod] == "Online"
    assert {d["state"] for d in deployments_of(app).values()} == {"Ready"}


# -- 6. the cluster registry refuses bad input ---------------------------------------------


def _registered() -> set[str]:
    listed = cli("cluster", "list", "-o", "json")
    assert listed.exit_code == 0, listed.output
    return {c["name"] for c in json.loads(listed.stdout)}


def test_cluster_add_refuses_bad_kubeconfigs_duplicates_and_unknown_contexts(
    fleet: Fleet, tmp_path: Path
) -> None:
    real = fleet.sandbox.clusters[0].kubeconfig
    before = _registered()

    # A kubeconfig whose server is a closed port: refused at add time.
    dead = tmp_path / "dead.kubeconfig"
    config = yaml.safe_load(real.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{closed_port()}"
    dead.write_text(yaml.safe_dump(config))
    result = cli("cluster", "add", "closed-1", "--kubeconfig", str(dead))
    assert result.exit_code != 0
    text = one_line(result.output)
    assert f"error: cluster closed-1, {dead}:" in text, result.output
    assert "did not answer" in text

    # Not YAML at all, and YAML that is not a kubeconfig.
    garbage = tmp_path / "garbage.kubeconfig"
    garbage.write_text("clusters: [unclosed\n\tkey: : :\n")
    result = cli("cluster", "add", "garbage-1", "--kubeconfig", str(garbage))
    assert result.exit_code != 0
    text = one_line(result.output)
    assert f"error: cluster garbage-1, {garbage}: cannot read kubeconfig" in text, result.output
    other = tmp_path / "values.yaml"
    other.write_text("replicas: 3\n")
    result = cli("cluster", "add", "values-1", "--kubeconfig", str(other))
    assert result.exit_code != 0
    assert f"cluster values-1, {other}: this is not a kubeconfig file" in one_line(result.output)

    # A name already registered: refused, and the registered cluster is left as it was.
    taken = fleet.cluster_names[0]
    labels = fleet.store.get_cluster(taken).labels
    result = cli("cluster", "add", taken, "--kubeconfig", str(real), "-l", "env=other")
    assert result.exit_code != 0
    assert f"cluster {taken}: a cluster with this name is already registered" in one_line(
        result.output
    )
    assert fleet.store.get_cluster(taken).labels == labels

    # A context the file does not have: the error lists the ones it has.
    result = cli("cluster", "add", "ctx-1", "--kubeconfig", str(real), "--context", "nope")
    assert result.exit_code != 0
    text = one_line(result.output)
    assert "context 'nope' is not in the kubeconfig" in text, result.output
    contexts = [c["name"] for c in config["contexts"]]
    assert f"(it has: {', '.join(contexts)})" in text

    assert _registered() == before
    stored = {p.name for p in credentials_dir().iterdir()}
    assert stored == {f"{n}.kubeconfig" for n in before}, "a refused cluster left credentials"


def test_credentials_are_stored_0600_and_never_printed(fleet: Fleet) -> None:
    name = fleet.cluster_names[0]
    source = yaml.safe_load(fleet.sandbox.clusters[0].kubeconfig.read_text())
    secrets = [
        value
        for user in source["users"]
        for key, value in user["user"].items()
        if key in ("client-key-data", "client-certificate-data", "token", "password")
    ]
    assert secrets, "the sandbox kubeconfig carries no credentials to look for"
    stored = Path(fleet.store.get_cluster(name).kubeconfig_path or "")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700

    shown = cli("cluster", "show", name, "-o", "json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["name"] == name
    listed = cli("cluster", "list", "-o", "json")
    for output in (shown.stdout, listed.stdout, cli("cluster", "show", name).stdout):
        assert "kubeconfig" not in output
        assert str(stored.parent) not in output
        for secret in secrets:
            assert secret[:40] not in output
