"""Catalog entries whose chart is `{oci: ..., version}` against a real OCI registry:
resolved from the registry's tags, pulled, shown, and installed and upgraded on a
sandbox cluster through the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from appflow.engine.catalog import entries as catalog_engine
from tests.integration.engine.conftest import Fleet, fleet, space  # noqa: F401
from tests.integration.engine.support import Space, cli, exists, live, one_line
from tests.integration.oci.conftest import Registry, needs_registry

pytestmark = [pytest.mark.tools, needs_registry]


def oci_catalog(root: Path, registry: Registry, *, constraint: str = "1.x") -> Path:
    """A catalog folder with entry 'greeter' whose chart is in REGISTRY."""
    entry = root / "catalog" / "greeter"
    entry.mkdir(parents=True)
    document = {
        "name": "greeter",
        "displayName": "Greeter",
        "description": "Says hello from a ConfigMap.",
        "category": "other",
        "chart": {"oci": f"{registry.charts}/greeter", "version": constraint},
        "version": "*",
    }
    (entry / "app.yaml").write_text(yaml.safe_dump(document))
    return entry.parent


def test_an_oci_entry_resolves_within_its_constraint_and_pulls_that_version(
    plain_http: Registry, tmp_path: Path
) -> None:
    entry = catalog_engine.find_entry(oci_catalog(tmp_path, plain_http), "greeter", repos=())

    latest = asyncio.run(catalog_engine.resolve(entry, version=None, repos=()))
    pinned = asyncio.run(catalog_engine.resolve(entry, version="~1.0", repos=()))
    assert (latest.kind, latest.version, latest.oci) == ("oci", "1.2.0", entry.chart.oci)
    assert pinned.version == "1.0.0"

    folder, digest = asyncio.run(catalog_engine.fetch_chart(latest, repos=()))
    assert yaml.safe_load((folder / "Chart.yaml").read_text())["version"] == "1.2.0"
    assert len(digest) == 64
    again, same = asyncio.run(catalog_engine.fetch_chart(latest, repos=()))
    assert (again, same) == (folder, digest), "a pulled version is reused from the cache"


@pytest.mark.usefixtures("appflow_home")
def test_catalog_show_of_an_oci_entry_and_of_an_oci_repository(
    plain_http: Registry, tmp_path: Path
) -> None:
    catalog = str(oci_catalog(tmp_path, plain_http))
    shown = cli("catalog", "show", "greeter", "--catalog", catalog, "-o", "json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["resolved"] == "1.2.0"

    values = cli("catalog", "show", "greeter", "--values", "--catalog", catalog)
    assert values.exit_code == 0, values.output
    assert values.output.strip() == "greeting: hello"

    beyond = cli("catalog", "show", "greeter", "--version", "2.x", "--catalog", catalog)
    assert beyond.exit_code == 1

    added = cli("catalog", "repo", "add", "lab", plain_http.charts)
    assert added.exit_code == 0, added.output
    shown = cli("catalog", "show", "lab/greeter", "--version", "2.x", "-o", "json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["resolved"] == "2.0.0"


def test_install_and_upgrade_an_oci_entry_on_a_cluster(
    fleet: Fleet,  # noqa: F811
    space: Space,  # noqa: F811
    plain_http: Registry,
    tmp_path: Path,
) -> None:
    catalog = str(oci_catalog(tmp_path, plain_http))
    name = space.app("greeter")
    first = fleet.cluster_names[0]
    result = cli(
        "catalog",
        "install",
        "greeter",
        "--catalog",
        catalog,
        "--name",
        name,
        "--version",
        "~1.0",
        "--cluster",
        first,
        "-n",
        space.namespace,
        "--set",
        "greeting=moin",
        "--wait",
        "--timeout",
        "120",
    )
    assert result.exit_code == 0, result.output
    assert f"installing greeter 1.0.0 as {name} on {first}" in one_line(result.output)
    assert exists(fleet.sandbox, 0, "v1", "ConfigMap", f"{name}-greeter", space.namespace)
    data = live(fleet.sandbox, 0, "v1", "ConfigMap", f"{name}-greeter", space.namespace)["data"]
    assert data == {"greeting": "moin", "chartVersion": "1.0.0"}

    result = cli("catalog", "upgrade", name, "--version", "1.x", "--catalog", catalog)
    assert result.exit_code == 0, result.output
    assert f"upgrading {name}: 1.0.0 -> 1.2.0" in result.output
    data = live(fleet.sandbox, 0, "v1", "ConfigMap", f"{name}-greeter", space.namespace)["data"]
    assert data == {"greeting": "moin", "chartVersion": "1.2.0"}

    result = cli("catalog", "uninstall", name)
    assert result.exit_code == 0, result.output
    assert not exists(fleet.sandbox, 0, "v1", "ConfigMap", f"{name}-greeter", space.namespace)
