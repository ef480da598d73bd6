"""Pure parts of hub mode's drift, catalog and rollback work: which kinds the drift watches
cover, which catalog repository an install follows, and the engine's warning about clusters a
revision targeted, read against a hub whose view of the engine holds push clusters only."""

from __future__ import annotations

from appflow.engine.catalog.live import from_repo
from appflow.engine.drift import inventory_kinds
from appflow.engine.report import AppSyncReport
from appflow.hub.rollback import GONE, only_unregistered
from appflow.model.inventory import InventoryEntry
from appflow.model.objects import ObjectRef
from appflow.model.records import AppRecord, CatalogInstall, DeploymentRecord, InstalledChart


def _install(entry: str, chart: InstalledChart) -> AppRecord:
    return AppRecord(
        name="web",
        source="catalog",
        path=entry,
        catalog=CatalogInstall(entry=entry, chart=chart, version="1.0.0"),
    )


def test_an_install_follows_the_repository_its_chart_came_from() -> None:
    by_entry = _install("charts/web", InstalledChart(kind="repo", digest="d", repo_name="charts"))
    by_url = _install("web", InstalledChart(kind="repo", digest="d", repo_name="mirror"))
    local = _install("redis", InstalledChart(kind="local", digest="d", folder="redis"))
    oci = _install("web", InstalledChart(kind="oci", digest="d", oci="oci://r/web"))
    assert [from_repo(a) for a in (by_entry, by_url, local, oci)] == [
        "charts",
        "mirror",
        None,
        None,
    ]
    assert from_repo(AppRecord(name="x", source="local", local_path="/x")) is None


def test_drift_watches_one_kind_per_cluster_whatever_the_number_of_apps() -> None:
    def deployment(app: str, cluster: str, *refs: tuple[str, ObjectRef]) -> DeploymentRecord:
        return DeploymentRecord(
            app=app,
            cluster=cluster,
            state="Ready",
            inventory=tuple(InventoryEntry(ref=r, api_version=v) for v, r in refs),
        )

    web = ObjectRef(group="apps", kind="Deployment", namespace="a", name="web")
    api = ObjectRef(group="apps", kind="Deployment", namespace="b", name="api")
    settings = ObjectRef(group="", kind="ConfigMap", namespace="a", name="settings")
    kinds = inventory_kinds(
        [
            deployment("a", "test-1", ("apps/v1", web), ("v1", settings)),
            deployment("b", "test-1", ("apps/v1", api)),
            deployment("b", "test-2", ("apps/v1", api)),
        ]
    )
    assert kinds == {
        ("test-1", "apps/v1", "Deployment"),
        ("test-1", "v1", "ConfigMap"),
        ("test-2", "apps/v1", "Deployment"),
    }


def test_a_rollback_warns_only_of_clusters_that_really_left() -> None:
    report = AppSyncReport(app="web", warnings=[f"revision 1 {GONE}edge-1, gone-1", "other"])
    only_unregistered(report, {"edge-1"})
    assert report.warnings == [f"revision 1 {GONE}gone-1", "other"]
    report = AppSyncReport(app="web", warnings=[f"revision 1 {GONE}edge-1"])
    only_unregistered(report, {"edge-1"})
    assert report.warnings == []
