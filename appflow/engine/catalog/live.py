"""Live catalog updates: installs whose upgrade policy is ``auto`` follow new charts.

Two tasks the daemon runs: a watch of the catalog folder (an edited or added chart) and
a poll of each catalog repository's index at its interval (a new version published).
Either way, every ``auto`` install for which a newer chart is known is upgraded, checked
on every target first like any upgrade, and the upgrade recorded as an event; one that is
refused is recorded, not retried. On a hub each repository's poll is the work of the one
controller replica that owns it (``appflow.hub.catalog``), with ``poll_repo_once``.
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
from appflow.model.records import AppRecord, CatalogRepoRecord
from appflow.sources import catalog as source
from appflow.sources.changes import file_changes

log = logging.getLogger("appflow.catalog")


def from_repo(app: AppRecord) -> str | None:
    """The catalog repository install APP's chart comes from (None: the catalog folder, OCI)."""
    if app.catalog is None:
        return None
    repo, slash, _ = app.catalog.entry.partition("/")
    if slash:
        return repo
    return app.catalog.chart.repo_name if app.catalog.chart.kind == "repo" else None


async def apply_auto_upgrades(
    engine: Engine, catalog_dir: Path, *, progress: Progress = quiet, repo: str | None = None
) -> list[AppSyncReport]:
    """Upgrade every install whose policy is ``auto`` and for which a newer chart is known
    (only those of catalog repository REPO, when given)."""
    reports = []
    repos = await asyncio.to_thread(engine.store.list_catalog_repos)
    for app in await asyncio.to_thread(engine.store.list_apps):
        if app.catalog is None or app.paused:
            continue
        if app.catalog.upgrade_policy != "auto":
            continue
        if repo is not None and from_repo(app) != repo:
            continue
        # Reads the catalog folder and cached indexes: off the event loop.
        if await asyncio.to_thread(available_version, app, catalog_dir, repos=repos) is None:
            continue
        try:
            planned, report = await upgrade(
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
        await engine.recorder.event(
            kind="catalog",
            app=app.name,
            trigger="poll",
            outcome="upgraded" if report.ok else "upgrade-failed",
            message=f"automatic catalog upgrade of {app.catalog.entry}: "
            f"{app.catalog.version} -> {planned.resolution.version}",
        )
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
            await poll_repo_once(engine, repo, catalog_dir)
        wait = interval or min([float(r.poll_interval_seconds) for r in repos] or [300.0])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)


async def poll_repo_once(
    engine: Engine,
    repo: CatalogRepoRecord,
    catalog_dir: Path,
    *,
    max_age: float | None = None,
) -> list[AppSyncReport]:
    """Read REPO's index again when older than MAX_AGE (default: its poll interval); when a new
    one was downloaded, upgrade the ``auto`` installs of its charts."""
    try:
        fetched = await asyncio.to_thread(
            source.fetch_index,
            repo,
            max_age=float(repo.poll_interval_seconds) if max_age is None else max_age,
        )
    except AppflowError as err:
        log.warning("catalog repository %s: %s", repo.name, err)
        return []
    if fetched.status != "downloaded":
        return []
    return await apply_auto_upgrades(engine, catalog_dir, repo=repo.name)
