"""Live updates: an install with upgrade policy `auto` follows edits under catalog/,
picked up by the file watch `appflow serve` runs; a `manual` one stays where it is."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from appflow.engine.catalog.live import watch_catalog
from tests.integration.catalog.conftest import CATALOG
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, live

pytestmark = pytest.mark.cluster


def _bump(chart: Path, version: str) -> None:
    meta = chart / "Chart.yaml"
    lines = [
        f"version: {version}" if line.startswith("version:") else line
        for line in meta.read_text().splitlines()
    ]
    meta.write_text("\n".join(lines) + "\n")


async def test_auto_install_follows_a_new_chart_version_in_the_catalog(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copytree(CATALOG / "redis", catalog / "redis")
    auto, manual = space.app("redis-auto"), space.app("redis-manual")
    dev = fleet.sandbox.by_env("dev").name
    for name, policy in ((auto, "auto"), (manual, "manual")):
        result = await asyncio.to_thread(
            cli,
            "catalog",
            "install",
            "redis",
            "--name",
            name,
            "-n",
            space.namespace,
            "--cluster",
            dev,
            "--policy",
            policy,
            "--catalog",
            str(catalog),
            "--wait",
            "--timeout",
            "120",
        )
        assert result.exit_code == 0, result.output

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_catalog(fleet.engine, catalog, stop=stop))
    try:
        await asyncio.sleep(1.0)  # let the watch start
        _bump(catalog / "redis" / "chart", "1.1.0")
        index = fleet.cluster_names.index(dev)
        deadline = time.monotonic() + 90
        while True:
            record = fleet.store.get_app(auto)
            if record.catalog is not None and record.catalog.version == "1.1.0":
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the auto install did not move to 1.1.0: {record.catalog}")
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(watcher, timeout=30)
    labels = live(fleet.sandbox, index, "apps/v1", "Deployment", auto, space.namespace)["metadata"][
        "labels"
    ]
    assert labels.get("helm.sh/chart", "").endswith("1.1.0"), labels
    kept = fleet.store.get_app(manual).catalog
    assert kept is not None
    assert kept.version == "1.0.0"
    installs = await asyncio.to_thread(
        cli, "catalog", "installs", "-o", "json", "--catalog", str(catalog)
    )
    assert installs.exit_code == 0, installs.output
    assert manual in installs.output
