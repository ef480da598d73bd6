"""Live catalog updates: installs whose upgrade policy is ``auto`` follow new charts.

Two tasks the daemon runs: a watch of the catalog folder (an edited or added chart) and
a poll of each catalog repository's index at its interval (a new version published).
Either way, every ``auto`` install for which a newer chart is known is upgraded, checked
on every target first like any upgrade; one that is refused is recorded, not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from appflow.engine.catalog.installs import UpgradeRequest, available_version, upgrade
from appflow.engine.engine import Engine
from appflow.engine.report import AppSyncReport
from appflow.engine.stages.types import Progress, quiet
from appflow.errors import AppflowError
from appflow.sources import catalog as source
from appflow.sources.changes import file_changes

log = logging.getLogger("appflow.catalog")


async def apply_auto_upgrades(
    engine: Engine, catalog_dir: Path, *, progress: Progress = quiet
) -> list[AppSyncReport]:
    """Upgrade every install whose policy is ``auto`` and for which a newer chart is known."""
    reports = []
    repos = await asyncio.to_thread(engine.store.list_catalog_repos)
    for app in await asyncio.to_thread(engine.store.list_apps):
        if app.catalog is None or app.paused:
            continue
        if app.catalog.upgrade_policy != "auto":
            continue
        # Reads the catalog folder and cached indexes: off the event loop.
        if await asyncio.to_thread(available_version, app, catalog_dir, repos=repos) is None:
            continue
        try:
            _, report = await upgrade(
                engine, UpgradeRequest(name=app.name, catalog_dir=catalog_dir), progress=progress
            )
        except AppflowError as err:
            await engine.recorder.event(
                kind="failure",
                app=app.name,
                trigger="poll",
                outcome="upgrade-refused",
                message=f"automatic catalog upgrade refused: {err}",
            )
            continue
        reports.append(report)
    return reports


async def watch_catalog(engine: Engine, catalog_dir: Path, *, stop: asyncio.Event) -> None:
    """Upgrade ``auto`` installs when files under CATALOG_DIR change."""
    if not catalog_dir.is_dir():
        return
    async for _changes in file_changes(catalog_dir, debounce_ms=800, stop=stop):
        await apply_auto_upgrades(engine, catalog_dir)


async def poll_catalog_repos(
    engine: Engine, catalog_dir: Path, *, stop: asyncio.Event, interval: float | None = None
) -> None:
    """Re-read each catalog repository's index at its poll interval; upgrade ``auto`` installs."""
    while not stop.is_set():
        repos = [
            r for r in await asyncio.to_thread(engine.store.list_catalog_repos) if not r.is_oci
        ]
        for repo in repos:
            try:
                fetched = await asyncio.to_thread(
                    source.fetch_index, repo, max_age=float(repo.poll_interval_seconds)
                )
            except AppflowError as err:
                log.warning("catalog repository %s: %s", repo.name, err)
                continue
            if fetched.status == "downloaded":
                await apply_auto_upgrades(engine, catalog_dir)
        wait = interval or min([float(r.poll_interval_seconds) for r in repos] or [300.0])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
