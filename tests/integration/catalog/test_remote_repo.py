"""A remote Helm HTTP repository (charts packaged by real helm, served over HTTP): listed,
cached with If-Modified-Since, installed and upgraded on a sandbox cluster; corrupt or
tampered archives and broken indexes refused."""

from __future__ import annotations

import hashlib
import json

import pytest

from appflow.errors import SourceError
from appflow.model.records import CatalogRepoRecord
from appflow.sources import catalog as source
from appflow.store import open_store
from tests.integration.catalog.conftest import CATALOG, ChartRepo
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, exists, one_line, snapshot


def _add(repo: ChartRepo) -> None:
    result = cli("catalog", "repo", "add", "charts", repo.url)
    assert result.exit_code == 0, result.output
    assert "added repository charts: 1 chart(s)" in result.output


def _registered(name: str) -> CatalogRepoRecord:
    store = open_store()
    try:
        return store.get_catalog_repo(name)
    finally:
        store.close()


@pytest.mark.usefixtures("appflow_home")
def test_repo_charts_are_listed_and_the_index_cached(chart_repo: ChartRepo) -> None:
    _add(chart_repo)
    listed = cli("catalog", "list", "--search", "web", "-o", "json", "--catalog", str(CATALOG))
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert rows["charts/web"]["version"] == "1.1.0"
    assert rows["charts/web"]["source"] == "charts"

    repo = _registered("charts")
    assert source.fetch_index(repo).status == "cached"  # young enough: no request at all
    asked = len(chart_repo.requests)
    again = source.fetch_index(repo, max_age=0.0)
    assert again.status == "not-modified"
    path, headers = chart_repo.requests[asked]
    assert path == "/index.yaml"
    assert "If-Modified-Since" in headers
    assert [v.version for v in again.index["web"]] == ["1.1.0", "1.0.0"]


@pytest.mark.usefixtures("appflow_home")
def test_a_constraint_that_matches_nothing_names_the_published_versions(
    chart_repo: ChartRepo,
) -> None:
    _add(chart_repo)
    result = cli("catalog", "show", "charts/web", "--version", "3.x")
    assert result.exit_code == 1
    assert "versions that exist: 1.1.0, 1.0.0" in one_line(result.output)


def test_install_and_upgrade_from_the_remote_repository(
    fleet: Fleet, space: Space, chart_repo: ChartRepo
) -> None:
    _add(chart_repo)
    name = space.app("web")
    first = fleet.cluster_names[0]
    result = cli(
        "catalog",
        "install",
        "charts/web",
        "--name",
        name,
        "--version",
        "~1.0",
        "--cluster",
        first,
        "-n",
        space.namespace,
        "--wait",
        "--timeout",
        "120",
    )
    assert result.exit_code == 0, result.output
    assert f"installing charts/web 1.0.0 as {name} on {first}" in one_line(result.output)
    assert f"{name} revision 1 -> {first}: Ready" in result.output
    assert exists(fleet.sandbox, 0, "apps/v1", "Deployment", name, space.namespace)

    result = cli("catalog", "upgrade", name, "--version", "1.x", "--wait", "--timeout", "120")
    assert result.exit_code == 0, result.output
    assert f"upgrading {name}: 1.0.0 -> 1.1.0" in result.output
    assert f"{name} revision 2 -> {first}: Ready" in result.output

    # The chart's own values.schema.json (draft 7) guards values when the entry has none.
    result = cli("catalog", "upgrade", name, "--set", "replicaCount=0")
    assert result.exit_code == 1
    assert "replicaCount: 0 is less than the minimum of 1 (from --set)" in one_line(result.output)

    result = cli("catalog", "uninstall", name)
    assert result.exit_code == 0, result.output
    assert not exists(fleet.sandbox, 0, "apps/v1", "Deployment", name, space.namespace)


def test_a_tampered_archive_is_refused_and_nothing_installed(
    fleet: Fleet, space: Space, chart_repo: ChartRepo
) -> None:
    _add(chart_repo)
    archive = chart_repo.archive("web", "1.1.0")
    archive.write_bytes(archive.read_bytes() + b"\0")  # index digest no longer matches
    before = snapshot(fleet.sandbox, space)
    name = space.app("web")
    result = cli("catalog", "install", "charts/web", "--name", name, "--all", "-n", space.namespace)
    assert result.exit_code == 1
    text = one_line(result.output)
    assert "but the index says" in text
    assert "refused, nothing installed" in text
    assert snapshot(fleet.sandbox, space) == before
    assert name not in {a.name for a in fleet.store.list_apps()}


def test_a_corrupt_archive_is_refused(fleet: Fleet, space: Space, chart_repo: ChartRepo) -> None:
    garbage = b"this is not a gzip archive" * 10
    chart_repo.archive("web", "1.1.0").write_bytes(garbage)
    chart_repo.set_digest("web", "1.1.0", hashlib.sha256(garbage).hexdigest())
    _add(chart_repo)
    name = space.app("web")
    result = cli("catalog", "install", "charts/web", "--name", name, "--all", "-n", space.namespace)
    assert result.exit_code == 1
    assert "the archive is not a valid chart archive" in one_line(result.output)
    assert name not in {a.name for a in fleet.store.list_apps()}


@pytest.mark.usefixtures("appflow_home")
def test_an_index_that_is_not_yaml_is_refused(chart_repo: ChartRepo) -> None:
    (chart_repo.folder / "index.yaml").write_text("entries: [unclosed\n  - : :\n")
    result = cli("catalog", "repo", "add", "broken", chart_repo.url)
    assert result.exit_code == 1
    assert "index.yaml of repository broken is not valid YAML at line" in one_line(result.output)
    store = open_store()
    try:
        assert store.list_catalog_repos() == []
    finally:
        store.close()


@pytest.mark.usefixtures("appflow_home")
def test_a_huge_index_is_refused_within_the_bound(chart_repo: ChartRepo) -> None:
    index = chart_repo.folder / "index.yaml"
    index.write_text(index.read_text() + "# padding\n" * 20_000)
    repo = CatalogRepoRecord(name="big", url=chart_repo.url)
    with pytest.raises(
        SourceError,
        match=r"index.yaml of repository big is (larger than the 64 KiB|[0-9.]+ [KM]iB, more than the 64 KiB) appflow accepts",
    ):
        source.fetch_index(repo, max_age=0.0, max_bytes=64 * 1024)
