"""Every example under repos-example/ synced to the sandbox fleet, as the README tells a newcomer.

Each test registers an example with `appflow repo add`, syncs it with
`--wait`, and then checks what a user would check: `appflow status -o json`,
the live objects on each cluster, and that `appflow app diff` has nothing left
to change. The helm, kustomize and Fleet examples also land differently per
cluster; those differences are asserted value by value.

The examples use fixed app names and namespaces (they are meant to be copied),
so each test deletes its apps at the end and waits until their namespaces are
gone: the three sandbox clusters are shared by every test.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from appflow.model.objects import Manifest
from tests.helpers import Sandbox, eventually, run_cli
from tests.integration.engine.conftest import Fleet

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[3] / "repos-example"

# Sandbox clusters in order: test-1 env=dev/eu-west, test-2 env=test/us-east,
# test-3 env=prod/ap-south (appflow.sandbox.default_labels).
DEV, TEST, PROD = 0, 1, 2
ALL = (DEV, TEST, PROD)


def cli(*args: str) -> Result:
    """The appflow CLI as a user types it; wide columns so rich does not wrap lines."""
    return run_cli(*args, env={"COLUMNS": "1000"})


@dataclass
class Examples:
    """Registers examples in the test's appflow home; deletes their apps afterwards."""

    fleet: Fleet
    apps: list[str] = field(default_factory=list)
    namespaces: set[str] = field(default_factory=set)

    @property
    def sandbox(self) -> Sandbox:
        return self.fleet.sandbox

    def name(self, index: int) -> str:
        return self.sandbox.clusters[index].name

    def label(self, index: int, key: str) -> str:
        return self.sandbox.clusters[index].labels[key]

    def add(self, root: Path, *paths: str, namespaces: tuple[str, ...]) -> list[str]:
        """`appflow repo add` ROOT with --path PATHS; return the app names it registered."""
        self.namespaces.update(namespaces)
        args = ["repo", "add", "examples", str(root)]
        for path in paths:
            args += ["--path", path]
        added = cli(*args)
        assert added.exit_code == 0, added.output
        listed = cli("app", "list", "-o", "json")
        assert listed.exit_code == 0, listed.output
        names = [str(a["name"]) for a in json.loads(listed.stdout)]
        self.apps.extend(n for n in names if n not in self.apps)
        return names

    def sync(self, *apps: str) -> list[dict[str, Any]]:
        """`appflow sync APPS --wait -o json`; the sync must succeed and become Ready."""
        synced = cli("sync", *apps, "--wait", "--timeout", "180", "-o", "json")
        assert synced.exit_code == 0, synced.output
        reports: list[dict[str, Any]] = json.loads(synced.stdout)
        assert [r["app"] for r in reports] == list(apps)
        return reports

    def live(self, index: int, api_version: str, kind: str, name: str, ns: str = "") -> Manifest:
        found = self.get(index, api_version, kind, name, ns)
        assert found is not None, f"{kind} {ns}/{name} is not on {self.name(index)}"
        return found

    def get(
        self, index: int, api_version: str, kind: str, name: str, ns: str = ""
    ) -> Manifest | None:
        kube = self.sandbox.kube(index)
        try:
            return kube.get_sync(api_version, kind, name, ns)
        finally:
            kube.close()

    def deployments(self, index: int, ns: str) -> list[Manifest]:
        kube = self.sandbox.kube(index)
        try:
            return kube.list_sync("apps/v1", "Deployment", namespace=ns)
        finally:
            kube.close()

    def cleanup(self) -> None:
        problems = []
        for app in self.apps:
            deleted = cli("app", "delete", app)
            if deleted.exit_code != 0:
                problems.append(f"appflow app delete {app}: {deleted.output}")
        assert not problems, problems

        def namespaces_gone() -> bool:
            return all(
                self.get(i, "v1", "Namespace", ns) is None
                for i in range(len(self.sandbox.clusters))
                for ns in self.namespaces
            )

        eventually(
            namespaces_gone, timeout=120, what=f"namespaces {sorted(self.namespaces)} to be deleted"
        )


@pytest.fixture
def examples(fleet: Fleet) -> Iterator[Examples]:
    ex = Examples(fleet=fleet)
    try:
        yield ex
    finally:
        ex.cleanup()


# -- what a user checks -------------------------------------------------------------


def assert_status_ready(ex: Examples, app: str, on: tuple[int, ...]) -> None:
    """`appflow status -o json` shows APP Ready on exactly the clusters ON, and nowhere else."""
    shown = cli("status", "-o", "json")
    assert shown.exit_code == 0, shown.output
    apps = {a["name"]: a for a in json.loads(shown.stdout)["apps"]}
    assert app in apps, f"{app} is not in `appflow status`: {sorted(apps)}"
    deployments = apps[app]["deployments"]
    assert sorted(deployments) == sorted(ex.name(i) for i in on)
    for cluster, d in deployments.items():
        assert d["state"] == "Ready", f"{app} on {cluster}: {d}"
        assert d["failing"] == [], f"{app} on {cluster}: {d}"
    assert apps[app]["counts"] == {"Ready": len(on)}


def assert_deployment_ready(ex: Examples, index: int, ns: str, name: str, replicas: int) -> None:
    """The live Deployment has REPLICAS desired, and all of them updated and available."""
    live = ex.live(index, "apps/v1", "Deployment", name, ns)
    where = f"Deployment {ns}/{name} on {ex.name(index)}"
    assert live["spec"]["replicas"] == replicas, where
    status = live.get("status") or {}
    assert status.get("observedGeneration") == live["metadata"]["generation"], where
    assert status.get("updatedReplicas") == replicas, f"{where}: {status}"
    assert status.get("availableReplicas") == replicas, f"{where}: {status}"
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    assert conditions.get("Available") == "True", f"{where}: {conditions}"


def assert_all_deployments_ready(ex: Examples, index: int, ns: str) -> None:
    found = ex.deployments(index, ns)
    assert found, f"no Deployment in {ns} on {ex.name(index)}"
    for d in found:
        assert_deployment_ready(ex, index, ns, d["metadata"]["name"], d["spec"]["replicas"])


def assert_no_diff(ex: Examples, app: str, on: tuple[int, ...]) -> None:
    """`appflow app diff APP` right after the sync: exit 0, every target listed, nothing to change."""
    diffed = cli("app", "diff", app)
    assert diffed.exit_code == 0, diffed.output
    summaries = {
        line.split(" on ", 1)[1].split(":", 1)[0]: line.split(": ", 1)[1]
        for line in diffed.stdout.splitlines()
        if line.startswith(f"# {app} on ")
    }
    assert sorted(summaries) == sorted(ex.name(i) for i in on), diffed.stdout
    for cluster, summary in summaries.items():
        assert re.fullmatch(r"\d+ unchanged", summary), f"{app} on {cluster}: {summary}"


def assert_synced_clusters(report: dict[str, Any], ex: Examples, on: tuple[int, ...]) -> None:
    assert report["blocked"] == [], report
    assert report["unreachable"] == {}, report
    assert sorted(c["cluster"] for c in report["clusters"]) == sorted(ex.name(i) for i in on)
    assert {c["state"] for c in report["clusters"]} == {"Ready"}, report


def container(deployment: Manifest) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


# -- the examples ----------------------------------------------------------------------


def test_every_example_folder_has_a_test() -> None:
    covered = {"plain", "helm-web", "kustomize-telemetry", "fleet-mqtt", "edge-site", "secure-mqtt"}
    folders = {p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert folders == covered
    readme = (EXAMPLES / "README.md").read_text()
    for folder in folders:
        assert f"--path {folder}" in readme, f"README.md shows no command that syncs {folder}"


def test_plain_manifests_land_on_every_cluster(examples: Examples) -> None:
    assert examples.add(EXAMPLES, "plain", namespaces=("hello-edge",)) == ["hello-edge"]
    (report,) = examples.sync("hello-edge")
    assert_synced_clusters(report, examples, ALL)
    assert_status_ready(examples, "hello-edge", ALL)
    for i in ALL:
        assert_deployment_ready(examples, i, "hello-edge", "hello", replicas=2)
        page = examples.live(i, "v1", "ConfigMap", "hello-page", "hello-edge")
        assert "Hello from the edge" in page["data"]["index.html"]
        examples.live(i, "v1", "Service", "hello", "hello-edge")
    assert_no_diff(examples, "hello-edge", ALL)


def test_helm_chart_gets_values_per_environment_and_cluster_labels(examples: Examples) -> None:
    assert examples.add(EXAMPLES, "helm-web", namespaces=("edge-web",)) == ["edge-web"]
    (report,) = examples.sync("edge-web")
    assert_synced_clusters(report, examples, ALL)
    assert_status_ready(examples, "edge-web", ALL)

    # values.yaml < values-<env>.yaml (chosen by clusterSelector env=...) < helm.values
    # with ${ .ClusterLabels.region } and ${ .ClusterName } filled in per cluster.
    # env=test matches no customization: the chart defaults.
    expected: dict[int, dict[str, Any]] = {
        DEV: {"replicas": 1, "SITE_ENVIRONMENT": "dev", "LOG_LEVEL": "debug", "memory": "64Mi"},
        TEST: {"replicas": 2, "SITE_ENVIRONMENT": "staging", "LOG_LEVEL": "info", "memory": "64Mi"},
        PROD: {"replicas": 3, "SITE_ENVIRONMENT": "prod", "LOG_LEVEL": "warn", "memory": "128Mi"},
    }
    for i, want in expected.items():
        assert_deployment_ready(examples, i, "edge-web", "edge-web", replicas=want["replicas"])
        web = container(examples.live(i, "apps/v1", "Deployment", "edge-web", "edge-web"))
        assert web["image"] == "nginx:1.27-alpine"
        assert web["resources"]["limits"]["memory"] == want["memory"]
        config = examples.live(i, "v1", "ConfigMap", "edge-web", "edge-web")["data"]
        assert config["SITE_ENVIRONMENT"] == want["SITE_ENVIRONMENT"]
        assert config["LOG_LEVEL"] == want["LOG_LEVEL"]
        assert config["SITE_REGION"] == examples.label(i, "region")
        assert config["SITE_CLUSTER"] == examples.name(i)
        examples.live(i, "v1", "Service", "edge-web", "edge-web")
    # The three regions differ, so the label really came from each cluster.
    regions = {
        examples.live(i, "v1", "ConfigMap", "edge-web", "edge-web")["data"]["SITE_REGION"]
        for i in ALL
    }
    assert regions == {"eu-west", "us-east", "ap-south"}
    assert_no_diff(examples, "edge-web", ALL)


def test_kustomize_overlay_per_environment_on_targeted_clusters_only(examples: Examples) -> None:
    assert examples.add(EXAMPLES, "kustomize-telemetry", namespaces=("telemetry",)) == ["telemetry"]
    (report,) = examples.sync("telemetry")
    targeted = (DEV, PROD)
    assert_synced_clusters(report, examples, targeted)
    assert_status_ready(examples, "telemetry", targeted)

    expected: dict[int, dict[str, Any]] = {
        DEV: {"replicas": 1, "LOG_LEVEL": "debug", "EXPORT_INTERVAL": "10s", "memory": "96Mi"},
        PROD: {"replicas": 2, "LOG_LEVEL": "warn", "EXPORT_INTERVAL": "300s", "memory": "192Mi"},
    }
    config_names = set()
    for i, want in expected.items():
        assert_deployment_ready(examples, i, "telemetry", "collector", replicas=want["replicas"])
        collector = examples.live(i, "apps/v1", "Deployment", "collector", "telemetry")
        assert container(collector)["resources"]["limits"]["memory"] == want["memory"]
        # configMapGenerator names the ConfigMap by its content hash; the Deployment refers to it.
        (volume,) = collector["spec"]["template"]["spec"]["volumes"]
        config_name = volume["configMap"]["name"]
        assert config_name.startswith("collector-config-")
        config_names.add(config_name)
        data = examples.live(i, "v1", "ConfigMap", config_name, "telemetry")["data"]
        assert data["LOG_LEVEL"] == want["LOG_LEVEL"]
        assert data["EXPORT_INTERVAL"] == want["EXPORT_INTERVAL"]
        assert "otlphttp" in data["config.yaml"]
        ns = examples.live(i, "v1", "Namespace", "telemetry")
        assert ns["metadata"]["labels"]["app.kubernetes.io/part-of"] == "edge-telemetry"
    assert len(config_names) == 2, "dev and prod must get different generated configs"
    # env=test is not among the targets: nothing of the app is there.
    assert examples.get(TEST, "v1", "Namespace", "telemetry") is None
    assert_no_diff(examples, "telemetry", targeted)


def _mosquitto_conf(ex: Examples, index: int) -> list[str]:
    config = ex.live(index, "v1", "ConfigMap", "mosquitto-config", "mqtt")
    return [line.strip() for line in config["data"]["mosquitto.conf"].splitlines()]


def test_fleet_yaml_lands_as_its_target_customizations_say(examples: Examples) -> None:
    assert examples.add(EXAMPLES, "fleet-mqtt", namespaces=("mqtt",)) == ["fleet-mqtt"]
    (report,) = examples.sync("fleet-mqtt")
    assert_synced_clusters(report, examples, ALL)
    assert report["warnings"] == []
    assert_status_ready(examples, "fleet-mqtt", ALL)

    for i in ALL:
        # defaultNamespace: mqtt; releaseName: mosquitto.
        assert_deployment_ready(examples, i, "mqtt", "mosquitto", replicas=1)
        examples.live(i, "v1", "Service", "mosquitto", "mqtt")
        config = examples.live(i, "v1", "ConfigMap", "mosquitto-config", "mqtt")
        labels = config["metadata"]["labels"]
        assert labels["edge.example.com/site"] == examples.name(i)
        assert labels["edge.example.com/region"] == examples.label(i, "region")
        conf = _mosquitto_conf(examples, i)
        assert conf[0] == f"# {examples.name(i)} ({examples.label(i, 'region')})"

    # env=prod: the "production" customization, values-prod.yaml.
    prod = _mosquitto_conf(examples, PROD)
    assert "max_connections 10000" in prod
    assert "allow_anonymous false" in prod
    assert "persistence true" in prod
    assert [x for x in prod if x.startswith("log_type")] == [
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    broker = container(examples.live(PROD, "apps/v1", "Deployment", "mosquitto", "mqtt"))
    assert broker["resources"]["limits"]["memory"] == "256Mi"

    # env=dev and env=test: the "development" customization (matchExpressions In).
    for i in (DEV, TEST):
        conf = _mosquitto_conf(examples, i)
        assert "max_connections 1000" in conf
        assert "allow_anonymous true" in conf
        assert "persistence false" in conf
        assert [x for x in conf if x.startswith("log_type")] == ["log_type all"]
        broker = container(examples.live(i, "apps/v1", "Deployment", "mosquitto", "mqtt"))
        assert broker["resources"]["limits"]["memory"] == "64Mi"
    assert_no_diff(examples, "fleet-mqtt", ALL)


def test_fleet_yaml_cluster_name_customization_wins_over_later_selectors(
    examples: Examples, tmp_path: Path
) -> None:
    # The example names a site (berlin-1) that the sandbox lacks; the README
    # tells users to put one of their cluster names there. Do just that.
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "fleet-mqtt", repo / "fleet-mqtt")
    fleet_yaml = repo / "fleet-mqtt" / "fleet.yaml"
    text = fleet_yaml.read_text()
    assert "clusterName: berlin-1" in text
    fleet_yaml.write_text(
        text.replace("clusterName: berlin-1", f"clusterName: {examples.name(TEST)}")
    )

    assert examples.add(repo, "fleet-mqtt", namespaces=("mqtt",)) == ["fleet-mqtt"]
    (report,) = examples.sync("fleet-mqtt")
    assert_synced_clusters(report, examples, ALL)
    assert_status_ready(examples, "fleet-mqtt", ALL)

    # The named cluster (env=test) takes the satellite-site entry, listed before
    # "development" which also matches it: first match wins, the rest is not merged.
    named = _mosquitto_conf(examples, TEST)
    assert "max_connections 50" in named
    assert [x for x in named if x.startswith("log_type")] == ["log_type error"]
    assert "allow_anonymous false" in named
    # The other clusters are as before.
    assert "max_connections 1000" in _mosquitto_conf(examples, DEV)
    assert "log_type all" in _mosquitto_conf(examples, DEV)
    assert "max_connections 10000" in _mosquitto_conf(examples, PROD)
    for i in ALL:
        assert_deployment_ready(examples, i, "mqtt", "mosquitto", replicas=1)
    assert_no_diff(examples, "fleet-mqtt", ALL)


def test_edge_site_syncs_its_apps_in_dependency_order(examples: Examples) -> None:
    apps = ("site-broker", "site-collector", "site-dashboard")
    assert examples.add(EXAMPLES, "edge-site", namespaces=apps) == sorted(apps)
    # dependsOn: the collector and the dashboard need the broker; sync in that order.
    reports = examples.sync(*apps)
    for report in reports:
        assert_synced_clusters(report, examples, ALL)
    deployments = {
        "site-broker": "mosquitto",
        "site-collector": "collector",
        "site-dashboard": "dashboard",
    }
    for app in apps:
        assert_status_ready(examples, app, ALL)
        for i in ALL:
            # Each app in its own namespace, holding only its own Deployment.
            assert [d["metadata"]["name"] for d in examples.deployments(i, app)] == [
                deployments[app]
            ]
            assert_all_deployments_ready(examples, i, app)
        assert_no_diff(examples, app, ALL)
    for i in ALL:
        # The collector and dashboard reach the broker by the Service the broker app owns.
        service = examples.live(i, "v1", "Service", "mqtt", "site-broker")
        assert service["spec"]["ports"][0]["port"] == 1883
        url = "mqtt://mqtt.site-broker.svc.cluster.local:1883"
        collector = examples.live(i, "v1", "ConfigMap", "collector-config", "site-collector")
        assert collector["data"]["MQTT_URL"] == url
        dashboard = examples.live(i, "v1", "ConfigMap", "dashboard-settings", "site-dashboard")
        assert dashboard["data"]["MQTT_URL"] == url


def test_secure_mqtt_decrypts_its_password_file_and_values_with_the_test_key(
    examples: Examples,
) -> None:
    folder = EXAMPLES / "secure-mqtt"
    assert cli("group", "add", "sites", "-l", "appflow.dev/sandbox=true").exit_code == 0
    added = cli(
        "secret", "key", "add", "test-only", "--group", "sites",
        "--age-key-file", str(folder / "TEST-ONLY-age-key.txt"),
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    apps = ("secure-broker", "secure-bridge")
    names = examples.add(EXAMPLES, "secure-mqtt", namespaces=("secure-mqtt", "secure-mqtt-bridge"))
    assert names == sorted(apps)
    for report in examples.sync(*apps):
        assert_synced_clusters(report, examples, ALL)
    for app in apps:
        assert_status_ready(examples, app, ALL)
        assert_no_diff(examples, app, ALL)
    for i in ALL:
        passwords = examples.live(i, "v1", "Secret", "mosquitto-passwords", "secure-mqtt")
        text = base64.b64decode(passwords["data"]["passwords"]).decode()
        assert text.startswith("sensor-01:$7$101$TESTONLYsalt0001$")
        bridge = examples.live(i, "v1", "Secret", "secure-bridge-config", "secure-mqtt-bridge")
        conf = base64.b64decode(bridge["data"]["mosquitto.conf"]).decode()
        assert "remote_password bridge-pw-TESTONLY-5b1c9e" in conf
        assert_all_deployments_ready(examples, i, "secure-mqtt")
    # What the user sees of them holds digests, never the values.
    for app in apps:
        shown = cli("app", "show", app, "-o", "json")
        assert "TESTONLY" not in shown.output
        assert "<redacted digest:" in shown.output
