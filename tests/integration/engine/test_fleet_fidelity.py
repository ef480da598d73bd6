"""Fleet repositories give the results Fleet documents, on the three sandbox clusters.

Issue 9 items 2-7, 12, 13 and 15, and issue 10 item 8, each as a user meets it:
fixtures written in Fleet's documented fleet.yaml forms (tests/fixtures/fleet),
the CLI as a user types it, and the objects each cluster holds afterwards,
checked object by object. Chart archives and repositories come from a real
Helm HTTP repository on 127.0.0.1 (tests/integration/catalog's `chart_repo`),
OCI charts from a real registry (tests/integration/oci's `registry`).

Clusters: env=dev, env=test, env=prod (see tests/conftest.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.catalog.conftest import ChartRepo, chart_repo, helm_env  # noqa: F401
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    added,
    cli,
    configmap,
    deployment,
    fleet_folder,
    one_line,
    snapshot,
    status_json,
    write_files,
)
from tests.integration.oci.conftest import Registry, needs_registry, registry  # noqa: F401

pytestmark = pytest.mark.cluster

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fleet"
FIXTURE_NAMESPACE = "fleet-mc-example"
UNREACHABLE_REPO = "https://charts.does-not-exist.invalid/stable"
ENVS = ("dev", "test", "prod")


def fixture_copy(name: str, into: Path, space: Space, **substitutes: str) -> Path:
    """A copy of fixture NAME with the test's namespace (and SUBSTITUTES) put in."""
    target = into / Path(name).name
    shutil.copytree(FIXTURES / name, target)
    for path in target.rglob("*.yaml"):
        text = path.read_text().replace(FIXTURE_NAMESPACE, space.namespace)
        for old, new in substitutes.items():
            text = text.replace(old, new)
        path.write_text(text)
    return target


def shop_chart(**dependency: str) -> str:
    """Chart.yaml of chart 'shop' 1.0.0 with one DEPENDENCY (name, version, repository)."""
    meta = {"apiVersion": "v2", "name": "shop", "version": "1.0.0", "dependencies": [dependency]}
    return yaml.safe_dump(meta)


def synced(*args: str) -> str:
    result = cli("sync", *args)
    assert result.exit_code == 0, result.output
    return result.output


def failed(*args: str) -> str:
    result = cli(*args)
    assert result.exit_code != 0, result.output
    return one_line(result.output)


def env_index(fleet: Fleet, env: str) -> int:
    return fleet.cluster_names.index(fleet.sandbox.by_env(env).name)


def objects_of(fleet: Fleet, env: str, app: str, ns: str) -> dict[str, dict[str, Any]]:
    """'Kind/name' -> live object, for every object app APP owns in NS on the ENV cluster."""
    kube = fleet.sandbox.kube(env_index(fleet, env))
    found: dict[str, dict[str, Any]] = {}
    try:
        for api_version, kind in (
            ("v1", "ConfigMap"),
            ("v1", "Service"),
            ("v1", "ServiceAccount"),
            ("v1", "Secret"),
            ("apps/v1", "Deployment"),
        ):
            for item in kube.list_sync(
                api_version, kind, namespace=ns, label_selector=f"appflow.dev/app={app}"
            ):
                found[f"{kind}/{item['metadata']['name']}"] = item
    finally:
        kube.close()
    return found


def unplaced_configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    """A ConfigMap that names no namespace."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def live_object(fleet: Fleet, env: str, api_version: str, kind: str, name: str, ns: str) -> Any:
    kube = fleet.sandbox.kube(env_index(fleet, env))
    try:
        return kube.get_sync(api_version, kind, name, ns)
    finally:
        kube.close()


def states_of(fleet: Fleet, app: str) -> dict[str, str]:
    """env -> Deployment state of APP, as `appflow status -o json` shows it."""
    [entry] = [a for a in status_json()["apps"] if a["name"] == app]
    by_cluster = {c: d["state"] for c, d in entry["deployments"].items()}
    return {
        env: by_cluster[fleet.sandbox.by_env(env).name]
        for env in ENVS
        if fleet.sandbox.by_env(env).name in by_cluster
    }


@pytest.fixture
def in_default_namespace(fleet: Fleet) -> Iterator[list[str]]:
    """Apps whose objects land outside the test namespace: deleted afterwards."""
    apps: list[str] = []
    yield apps
    for app in apps:
        cli("app", "delete", app)


# -- the must-show: Fleet's four multi-cluster forms, object by object --------------------------


def test_three_clusters_get_exactly_what_fleet_documents(
    fleet: Fleet,
    space: Space,
    tmp_path: Path,
    chart_repo: ChartRepo,  # noqa: F811
) -> None:
    ns = space.namespace
    apps = {form: space.app(f"mc-{form}") for form in ("helm", "manifests", "kustomize", "hk")}
    added(apps["helm"], fixture_copy("multi-cluster/helm", tmp_path, space))
    added(apps["manifests"], fixture_copy("multi-cluster/manifests", tmp_path, space))
    added(apps["kustomize"], fixture_copy("multi-cluster/kustomize", tmp_path, space))
    hk = fixture_copy(
        "multi-cluster/helm-kustomize", tmp_path, space, CHART_URL=f"{chart_repo.url}/web-1.0.0.tgz"
    )
    added(apps["hk"], hk)
    output = synced(*apps.values(), "--wait", "--timeout", "180")
    for app in apps.values():
        assert set(states_of(fleet, app).values()) == {"Ready"}, output

    # helm: targetCustomizations values over the app's; prod's valuesFiles over its inline values.
    helm_expected = {
        "dev": (1, {"environment": "dev", "tier": "small", "greeting": "hello"}),
        "test": (2, {"environment": "test", "tier": "standard", "greeting": "hello"}),
        "prod": (3, {"environment": "prod", "tier": "large", "greeting": "hello from prod"}),
    }
    for env, (replicas, data) in helm_expected.items():
        got = objects_of(fleet, env, apps["helm"], ns)
        assert set(got) == {"ConfigMap/mc-helm-settings", "Deployment/mc-helm-web"}, env
        assert got["Deployment/mc-helm-web"]["spec"]["replicas"] == replicas, env
        assert got["ConfigMap/mc-helm-settings"]["data"] == data, env

    # manifests: test's patch scales; prod applies test's then its own: a replaced
    # Service, patched settings, an added file. dev gets the folder as it is.
    for env, (replicas, service_type, mode, banner) in {
        "dev": (1, "ClusterIP", "standard", False),
        "test": (3, "ClusterIP", "standard", False),
        "prod": (3, "NodePort", "production", True),
    }.items():
        got = objects_of(fleet, env, apps["manifests"], ns)
        expected = {
            "Deployment/mc-frontend",
            "Service/mc-frontend",
            "ConfigMap/mc-frontend-settings",
        }
        assert set(got) == expected | ({"ConfigMap/mc-frontend-banner"} if banner else set()), env
        assert got["Deployment/mc-frontend"]["spec"]["replicas"] == replicas, env
        assert got["Service/mc-frontend"]["spec"]["type"] == service_type, env
        assert got["ConfigMap/mc-frontend-settings"]["data"]["mode"] == mode, env

    # kustomize: each cluster builds its own overlay of ../../base.
    for env, (replicas, extra) in {
        "dev": (1, {"ConfigMap/mc-kust-env"}),
        "test": (2, set()),
        "prod": (3, {"ConfigMap/mc-kust-prod-limits"}),
    }.items():
        got = objects_of(fleet, env, apps["kustomize"], ns)
        assert set(got) == {"Deployment/mc-kust-api", "Service/mc-kust-api"} | extra, env
        assert got["Deployment/mc-kust-api"]["spec"]["replicas"] == replicas, env
    assert objects_of(fleet, "dev", apps["kustomize"], ns)["ConfigMap/mc-kust-env"]["data"] == {
        "env": "dev"
    }

    # helm + kustomize: the chart downloaded by URL, post-rendered per cluster.
    for env, (replicas, service) in {
        "dev": (1, None),
        "test": (3, "ClusterIP"),
        "prod": (3, "NodePort"),
    }.items():
        got = objects_of(fleet, env, apps["hk"], ns)
        expected = {"Deployment/mc-hk", "ServiceAccount/mc-hk"}
        assert set(got) == expected | ({"Service/mc-hk"} if service else set()), env
        assert got["Deployment/mc-hk"]["spec"]["replicas"] == replicas, env
        if service:
            assert got["Service/mc-hk"]["spec"]["type"] == service, env
    # Fleet's `namespace:` put everything there, though the chart names none.
    assert {
        o["metadata"]["namespace"] for o in objects_of(fleet, "prod", apps["hk"], ns).values()
    } == {ns}


# -- item 2: kustomize dirs, and a folder that is not there ---------------------------------------


def test_a_customization_naming_a_missing_folder_is_named_with_file_line_and_folder(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    folder = fixture_copy("multi-cluster/kustomize", tmp_path, space)
    text = (folder / "fleet.yaml").read_text().replace("overlays/prod", "overlays/production")
    (folder / "fleet.yaml").write_text(text)
    line = text.splitlines().index("    dir: overlays/production") + 1
    before = snapshot(fleet.sandbox, space)
    result = cli("app", "add", space.app("mc-missing"), "--local", str(folder))
    assert result.exit_code != 0, result.output
    message = one_line(result.output)
    assert f"fleet.yaml:{line}" in message, message
    assert "targetCustomizations[2].kustomize.dir" in message
    assert "kustomize folder overlays/production does not exist" in message
    assert snapshot(fleet.sandbox, space) == before


# -- item 3: a chart repository that cannot be reached is not an unreachable cluster ---------------


def test_an_unreachable_chart_repository_fails_the_app_not_the_clusters(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    app = space.app("norepo")
    folder = fleet_folder(
        tmp_path / "norepo",
        {
            "defaultNamespace": space.namespace,
            "helm": {"repo": UNREACHABLE_REPO, "chart": "web", "version": "1.0.0"},
        },
    )
    added(app, folder)
    message = failed("sync", app)
    assert UNREACHABLE_REPO in message, message
    assert "repository" in message
    clusters = json.loads(cli("cluster", "list", "-o", "json").stdout)
    assert {c["name"]: c["state"] for c in clusters} == dict.fromkeys(fleet.cluster_names, "Online")
    shown = json.loads(cli("app", "show", app, "-o", "json").stdout)
    assert shown["lastSync"]["outcome"] == "blocked", shown
    assert UNREACHABLE_REPO in shown["lastSync"]["message"], shown


# -- item 4: a chart given by the URL of its archive ----------------------------------------------


def test_a_chart_archive_url_is_downloaded_and_kept_by_digest(
    fleet: Fleet,
    space: Space,
    tmp_path: Path,
    chart_repo: ChartRepo,  # noqa: F811
) -> None:
    app = space.app("byurl")
    url = f"{chart_repo.url}/web-1.0.0.tgz"
    folder = fleet_folder(
        tmp_path / "byurl",
        {
            "defaultNamespace": space.namespace,
            "helm": {"chart": url, "values": {"fullnameOverride": "by-url"}},
        },
    )
    added(app, folder)
    synced(app, "--wait", "--timeout", "180")
    assert set(states_of(fleet, app).values()) == {"Ready"}
    for env in ENVS:
        assert set(objects_of(fleet, env, app, space.namespace)) == {
            "Deployment/by-url",
            "Service/by-url",
            "ServiceAccount/by-url",
        }
    digest = hashlib.sha256(chart_repo.archive("web", "1.0.0").read_bytes()).hexdigest()
    kept = fleet.home.parent / "appflow-cache" / "helm" / "archives" / f"{digest}.tgz"
    assert kept.is_file(), "the archive is kept under its sha256"

    # A later sync asks the server whether the archive changed, and renders nothing new.
    chart_repo.requests.clear()
    synced(app)
    asked = [h for path, h in chart_repo.requests if path == "/web-1.0.0.tgz"]
    assert asked, chart_repo.requests
    assert all("If-Modified-Since" in h for h in asked), asked

    # A go-getter checksum that does not match refuses the archive.
    bad = space.app("badsum")
    folder = fleet_folder(
        tmp_path / "badsum",
        {
            "defaultNamespace": space.namespace,
            "helm": {
                "chart": f"{chart_repo.url}/web-1.1.0.tgz?checksum=sha256:{'0' * 64}",
                "values": {"fullnameOverride": "bad-sum"},
            },
        },
    )
    added(bad, folder)
    message = failed("sync", bad)
    assert "but its checksum says" in message, message
    assert not any(objects_of(fleet, env, bad, space.namespace) for env in ENVS)


# -- item 5: helm.repo oci://host/path/chart, and an app that renders nothing ---------------------


@needs_registry
def test_an_oci_repo_naming_the_chart_deploys_it(
    fleet: Fleet,
    space: Space,
    tmp_path: Path,
    registry: Registry,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPFLOW_HELM_PLAIN_HTTP", registry.host)
    app = space.app("ocirepo")
    folder = fleet_folder(
        tmp_path / "ocirepo",
        {
            "defaultNamespace": space.namespace,
            "helm": {"repo": f"{registry.charts}/greeter", "version": "1.2.0"},
        },
    )
    added(app, folder)
    synced(app, "--wait", "--timeout", "180")
    for env in ENVS:
        got = objects_of(fleet, env, app, space.namespace)
        assert got, f"nothing deployed on {env}"
    assert set(states_of(fleet, app).values()) == {"Ready"}


def test_an_app_that_renders_no_objects_is_an_error_never_ready(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    app = space.app("empty")
    folder = fleet_folder(
        tmp_path / "empty",
        {"defaultNamespace": space.namespace, "helm": {"chart": "./chart"}},
        {
            "chart/Chart.yaml": "apiVersion: v2\nname: empty\nversion: 1.0.0\n",
            "chart/values.yaml": "enabled: false\n",
            "chart/templates/cm.yaml": "{{- if .Values.enabled }}\napiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: maybe}\n{{- end }}\n",
        },
    )
    added(app, folder)
    message = failed("sync", app, "--wait", "--timeout", "30")
    assert "rendered no objects" in message, message
    assert "chart" in message
    apps = {a["name"]: a for a in status_json()["apps"]}
    assert all(d["state"] != "Ready" for d in apps[app]["deployments"].values())


# -- item 6: helm.timeoutSeconds <= 0 means do not wait ---------------------------------------------


def _unschedulable(name: str, ns: str) -> dict[str, Any]:
    obj = deployment(name, ns)
    obj["spec"]["template"]["spec"]["nodeSelector"] = {"appflow.dev/no-such-node": "true"}
    return obj


@pytest.mark.parametrize(("seconds", "waits"), [(0, False), (-1, False), (2, True)])
def test_timeout_seconds_says_how_long_a_sync_waits(
    fleet: Fleet, space: Space, tmp_path: Path, seconds: int, waits: bool
) -> None:
    app = space.app(f"timeout{seconds + 1}")
    folder = fleet_folder(
        tmp_path / "timeout",
        {"defaultNamespace": space.namespace, "helm": {"timeoutSeconds": seconds}},
        {"stuck.yaml": [_unschedulable(f"stuck{seconds + 1}", space.namespace)]},
    )
    added(app, folder)
    result = cli("sync", app, "--wait", "--timeout", "120", "-o", "json")
    assert result.exit_code == 1, result.output  # it is not Ready, and says so
    [report] = json.loads(result.stdout)
    healths = {c["state"]: c["health"] for c in report["clusters"]}
    assert set(healths) == {"NotReady"}, report
    # Without waiting the health is what was seen; waiting ends at the app's deadline.
    assert all(("not healthy after 2s" in h) is waits for h in healths.values()), healths


# -- item 7: disableDependencyUpdate ------------------------------------------------------------------


def test_disable_dependency_update_fetches_nothing_and_uses_what_is_vendored(
    fleet: Fleet,
    space: Space,
    tmp_path: Path,
    chart_repo: ChartRepo,  # noqa: F811
) -> None:
    app = space.app("vendored")
    chart_yaml = shop_chart(name="web", version="1.0.0", repository=chart_repo.url)
    folder = fleet_folder(
        tmp_path / "vendored",
        {
            "defaultNamespace": space.namespace,
            "helm": {
                "chart": "./shop",
                "disableDependencyUpdate": True,
                "values": {"web": {"fullnameOverride": "vendored-web"}},
            },
        },
        {
            "shop/Chart.yaml": chart_yaml,
            "shop/templates/cm.yaml": [configmap("shop", space.namespace, {"a": "b"})],
        },
    )
    added(app, folder)
    chart_repo.requests.clear()
    message = failed("sync", app)
    assert "missing in charts/ directory" in message, message
    assert chart_repo.requests == [], "a dependency was fetched"
    assert not any(objects_of(fleet, env, app, space.namespace) for env in ENVS)

    # Vendored in charts/, the subchart is used as it is; still nothing is fetched.
    (folder / "shop" / "charts").mkdir()
    shutil.copy(chart_repo.archive("web", "1.0.0"), folder / "shop" / "charts")
    synced(app, "--wait", "--timeout", "180")
    assert chart_repo.requests == [], "a dependency was fetched"
    for env in ENVS:
        assert "Deployment/vendored-web" in objects_of(fleet, env, app, space.namespace)


# -- item 12: helm's own cause, the chart and the repository; the command line only with --debug -----


def test_helm_errors_show_the_cause_not_the_command_line(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    app = space.app("deperr")
    chart_yaml = shop_chart(name="redis", version="1.x", repository=UNREACHABLE_REPO)
    folder = fleet_folder(
        tmp_path / "deperr",
        {"defaultNamespace": space.namespace, "helm": {"chart": "./shop"}},
        {
            "shop/Chart.yaml": chart_yaml,
            "shop/templates/cm.yaml": [configmap("shop", space.namespace, {"a": "b"})],
        },
    )
    added(app, folder)
    message = failed("sync", app)
    assert f'Unable to get an update from the "{UNREACHABLE_REPO}" chart repository' in message
    assert f"(repository {UNREACHABLE_REPO}" in message
    assert "shop" in message
    assert "--repository-cache" not in message, "the helm command line is for --debug only"
    debug = cli("--debug", "sync", app)
    assert debug.exit_code != 0
    assert "--repository-cache" in debug.output, debug.output


# -- item 13: the fields real fleet.yaml files use ---------------------------------------------------


VALUES_CHART = {
    "chart/Chart.yaml": "apiVersion: v2\nname: site\nversion: 1.0.0\n",
    "chart/values.yaml": "site: none\ngreeting: chart\nreplicas: 1\n",
    "chart/templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site-info\n"
        "data:\n  site: {{ .Values.site | quote }}\n  greeting: {{ .Values.greeting | quote }}\n"
    ),
}


def test_values_from_reads_config_maps_and_secrets_on_each_cluster(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("valfrom")
    for index, name in enumerate(fleet.cluster_names):
        kube = fleet.sandbox.kube(index)
        try:
            kube.apply_sync(configmap("site-values", ns, {"values.yaml": f"site: {name}\n"}))
            kube.apply_sync(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "site-secret", "namespace": ns},
                    "data": {"extra.yaml": base64.b64encode(b"greeting: from-secret\n").decode()},
                }
            )
        finally:
            kube.close()
    folder = fleet_folder(
        tmp_path / "valfrom",
        {
            "defaultNamespace": ns,
            "helm": {
                "chart": "./chart",
                "values": {"greeting": "from-git", "site": "from-git"},
                "valuesFrom": [
                    {"configMapKeyRef": {"name": "site-values"}},
                    {"secretKeyRef": {"name": "site-secret", "key": "extra.yaml"}},
                ],
            },
        },
        {**VALUES_CHART},
    )
    added(app, folder)
    synced(app, "--wait", "--timeout", "120")
    for env in ENVS:
        cluster = fleet.sandbox.by_env(env).name
        data = live_object(fleet, env, "v1", "ConfigMap", "site-info", ns)["data"]
        assert data == {"site": cluster, "greeting": "from-secret"}, env

    # A Secret missing on one cluster stops the sync on every cluster.
    kube = fleet.sandbox.kube(env_index(fleet, "prod"))
    try:
        kube.delete_sync("v1", "Secret", "site-secret", ns)
    finally:
        kube.close()
    (folder / "chart" / "values.yaml").write_text("site: none\ngreeting: changed\nreplicas: 1\n")
    before = snapshot(fleet.sandbox, space)
    message = failed("sync", app)
    assert f"Secret {ns}/site-secret does not exist on the cluster" in message, message
    assert fleet.sandbox.by_env("prod").name in message
    assert snapshot(fleet.sandbox, space) == before


def test_namespace_labels_do_not_deploy_and_accepted_states(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    base, web = space.app("base"), space.app("web")
    added(
        base,
        fleet_folder(
            tmp_path / "base",
            {"defaultNamespace": ns},
            {"stuck.yaml": [_unschedulable("base-db", ns)]},
        ),
    )
    added(
        web,
        fleet_folder(
            tmp_path / "web",
            {
                "defaultNamespace": ns,
                "namespaceLabels": {"team": "shop"},
                "namespaceAnnotations": {"owner": "shop-team@example.com"},
                # base never becomes Ready; Fleet's acceptedStates lets web go on.
                "dependsOn": [{"name": base, "acceptedStates": ["Ready", "NotReady"]}],
                "targetCustomizations": [
                    {
                        "name": "not-prod",
                        "clusterSelector": {"matchLabels": {"env": "prod"}},
                        "doNotDeploy": True,
                    }
                ],
            },
            {"cm.yaml": [configmap("web-settings", ns, {"a": "b"})]},
        ),
    )
    result = cli("sync", base)
    assert result.exit_code == 0, result.output
    synced(web, "--wait", "--timeout", "120")
    assert states_of(fleet, web) == {"dev": "Ready", "test": "Ready"}
    for env in ("dev", "test"):
        namespace = live_object(fleet, env, "v1", "Namespace", ns, "")
        assert namespace["metadata"]["labels"]["team"] == "shop", env
        assert namespace["metadata"]["annotations"]["owner"] == "shop-team@example.com", env
        assert "ConfigMap/web-settings" in objects_of(fleet, env, web, ns)
    assert objects_of(fleet, "prod", web, ns) == {}
    prod_ns = live_object(fleet, "prod", "v1", "Namespace", ns, "")
    assert "team" not in (prod_ns["metadata"].get("labels") or {})


def test_skip_schema_validation_force_and_take_ownership(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"replicas": {"type": "integer", "minimum": 1}},
    }
    files = {**VALUES_CHART, "chart/values.schema.json": json.dumps(schema)}
    strict = space.app("strict")
    added(
        strict,
        fleet_folder(
            tmp_path / "strict",
            {
                "defaultNamespace": ns,
                "helm": {"chart": "./chart", "values": {"replicas": 0}},
            },
            {**files},
        ),
    )
    assert "minimum" in failed("sync", strict)  # the schema is real
    lax = space.app("lax")
    added(
        lax,
        fleet_folder(
            tmp_path / "lax",
            {
                "defaultNamespace": ns,
                "helm": {
                    "chart": "./chart",
                    "values": {"replicas": 0},
                    "skipSchemaValidation": True,
                },
            },
            {
                **files,
                "chart/templates/cm.yaml": files["chart/templates/cm.yaml"].replace(
                    "site-info", "lax-info"
                ),
            },
        ),
    )
    synced(lax)
    assert all("ConfigMap/lax-info" in objects_of(fleet, env, lax, ns) for env in ENVS)

    # helm.force (on a manifest app, as Fleet applies it to every bundle): an immutable
    # field that changes replaces the object instead of failing the sync.
    forced = space.app("forced")
    web = deployment("forced-web", ns)
    folder = fleet_folder(
        tmp_path / "forced",
        {"defaultNamespace": ns, "helm": {"force": True, "takeOwnership": True}},
        {"web.yaml": [web]},
    )
    added(forced, folder)
    synced(forced)
    first = live_object(fleet, "dev", "apps/v1", "Deployment", "forced-web", ns)
    annotations = first["metadata"]["annotations"]
    assert annotations["appflow.dev/replace-on-immutable"] == "true"
    assert annotations["appflow.dev/take-ownership"] == "true"
    web["spec"]["selector"] = {"matchLabels": {"app": "forced-web-v2"}}
    web["spec"]["template"]["metadata"]["labels"] = {"app": "forced-web-v2"}
    write_files(folder, {"web.yaml": [web]})
    synced(forced)
    second = live_object(fleet, "dev", "apps/v1", "Deployment", "forced-web", ns)
    assert second["spec"]["selector"] == {"matchLabels": {"app": "forced-web-v2"}}
    assert second["metadata"]["uid"] != first["metadata"]["uid"]


def test_max_unavailable_partitions_lets_the_rollout_go_on(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("parts")
    partitions = [{"name": env, "clusterSelector": {"matchLabels": {"env": env}}} for env in ENVS]
    stuck = _unschedulable("parts-web", ns)
    folder = fleet_folder(
        tmp_path / "parts",
        {
            "defaultNamespace": ns,
            "rolloutStrategy": {"partitions": partitions, "maxUnavailablePartitions": 1},
            "targetCustomizations": [
                {
                    "name": "dev",
                    "clusterSelector": {"matchLabels": {"env": "dev"}},
                    "yaml": {"overlays": ["stuck"]},
                }
            ],
        },
        {"web.yaml": [deployment("parts-web", ns)], "overlays/stuck/web.yaml": [stuck]},
    )
    added(app, folder)
    result = cli("sync", app, "--timeout", "10")
    text = one_line(result.output)
    assert "partition 'dev' did not become Ready" in text, text
    assert "the rollout goes on (maxUnavailablePartitions allows 1)" in text
    assert states_of(fleet, app) == {"dev": "NotReady", "test": "Ready", "prod": "Ready"}
    rollout = json.loads(cli("rollout", "status", app, "-o", "json").stdout)
    assert rollout["state"] == "Complete", rollout


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"downstreamResources": [{"kind": "Secret", "name": "s"}]}, "downstreamResources"),
        (
            {"targetCustomizations": [{"clusterGroupSelector": {"matchLabels": {"region": "eu"}}}]},
            "targetCustomizations[0].clusterGroupSelector",
        ),
    ],
)
def test_known_but_unsupported_fields_are_named_not_taken_for_typos(
    fleet: Fleet, space: Space, tmp_path: Path, extra: dict[str, Any], field: str
) -> None:
    folder = fleet_folder(
        tmp_path / "unsupported",
        {"defaultNamespace": space.namespace, **extra},
        {"cm.yaml": [configmap("c", space.namespace, {"a": "b"})]},
    )
    message = failed("app", "add", space.app("unsup"), "--local", str(folder))
    assert f"fleet.yaml field {field} is not supported by appflow" in message, message
    assert "check the spelling" not in message


# -- item 15: fleet.yaml `namespace` forces, appflow.yaml's namespace is a default ----------------


def test_fleet_namespace_forces_every_object_and_refuses_cluster_scoped_ones(
    fleet: Fleet, space: Space, tmp_path: Path, in_default_namespace: list[str]
) -> None:
    ns = space.namespace
    app = space.app("forcedns")
    in_default_namespace.append(app)  # where its objects would land without the forcing
    forced = f"forced-{space.suffix}"
    folder = fleet_folder(
        tmp_path / "forcedns",
        {"namespace": ns},
        {
            "cm.yaml": [
                configmap(forced, "default", {"v": "1"}),
                unplaced_configmap("plain-cm", {"v": "1"}),
            ]
        },
    )
    added(app, folder)
    synced(app)
    for env in ENVS:
        assert set(objects_of(fleet, env, app, ns)) == {f"ConfigMap/{forced}", "ConfigMap/plain-cm"}
        assert live_object(fleet, env, "v1", "ConfigMap", forced, "default") is None

    # A cluster-scoped object cannot be forced into a namespace: nothing is applied anywhere.
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"reader-{space.suffix}"},
        "rules": [],
    }
    write_files(
        folder,
        {"cm.yaml": [configmap(forced, "default", {"v": "2"})], "role.yaml": [role]},
    )
    before = snapshot(fleet.sandbox, space)
    message = failed("sync", app)
    assert f"ClusterRole reader-{space.suffix} is cluster-scoped" in message, message
    assert "use defaultNamespace" in message
    assert snapshot(fleet.sandbox, space) == before

    # appflow.yaml keeps its meaning: the namespace of objects that set none.
    own = space.app("ownns")
    in_default_namespace.append(own)
    added(
        own,
        write_files(
            tmp_path / "ownns",
            {
                "appflow.yaml": yaml.safe_dump({"namespace": ns}),
                "cm.yaml": [
                    configmap(f"kept-{space.suffix}", "default", {"v": "1"}),
                    unplaced_configmap("defaulted-cm", {"v": "1"}),
                ],
            },
        ),
    )
    synced(own)
    for env in ENVS:
        assert live_object(fleet, env, "v1", "ConfigMap", f"kept-{space.suffix}", "default")
        assert live_object(fleet, env, "v1", "ConfigMap", "defaulted-cm", ns)


# -- issue 10 item 8: no path of a definition leaves the source ---------------------------------------


def _host_folder(tmp_path: Path, space: Space) -> Path:
    """A kustomization outside any repository: the host's, which no app may read."""
    return write_files(
        tmp_path / "host-folder",
        {
            "kustomization.yaml": "resources: [secret.yaml]\n",
            "secret.yaml": [configmap("host-secret", space.namespace, {"password": "hunter2"})],
        },
    )


@pytest.mark.parametrize("definition", ["fleet.yaml", "appflow.yaml"])
def test_a_kustomize_dir_outside_the_source_is_refused(
    fleet: Fleet, space: Space, tmp_path: Path, definition: str
) -> None:
    host = _host_folder(tmp_path, space)
    for n, written in enumerate((str(host), "../host-folder")):
        folder = write_files(
            tmp_path / f"repo{n}",
            {definition: yaml.safe_dump({"kustomize": {"dir": written}})},
        )
        message = failed("app", "add", space.app(f"escape{n}"), "--local", str(folder))
        assert "points outside the repository" in message, message
        assert f"{definition}:" in message
        assert "kustomize.dir" in message
    assert not any(
        live_object(fleet, env, "v1", "ConfigMap", "host-secret", space.namespace) for env in ENVS
    )


def test_a_kustomization_or_chart_dependency_reaching_out_is_refused(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    host = _host_folder(tmp_path, space)
    # Relative, as an overlay names its base: kustomize itself would build it.
    repo = fleet_folder(
        tmp_path / "repo",
        {"kustomize": {"dir": "overlay"}},
        {"overlay/kustomization.yaml": f"resources:\n  - ../../{host.name}\n"},
    )
    app = space.app("kreach")
    added(app, repo)
    message = failed("sync", app)
    assert "points outside the source" in message, message
    assert "overlay/kustomization.yaml:2" in message

    outside_chart = write_files(
        tmp_path / "outside-chart",
        {
            "Chart.yaml": "apiVersion: v2\nname: outside\nversion: 1.0.0\n",
            "templates/cm.yaml": [configmap("host-secret", space.namespace, {"p": "x"})],
        },
    )
    charted = fleet_folder(
        tmp_path / "charted",
        {"defaultNamespace": space.namespace, "helm": {"chart": "./shop"}},
        {
            "shop/Chart.yaml": shop_chart(
                name="outside", version="1.0.0", repository=f"file://{outside_chart}"
            )
        },
    )
    app = space.app("dreach")
    added(app, charted)
    message = failed("sync", app)
    assert "outside the source" in message, message
    assert "Chart.yaml" in message
    assert not any(
        live_object(fleet, env, "v1", "ConfigMap", "host-secret", space.namespace) for env in ENVS
    )
