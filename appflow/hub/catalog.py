"""Catalog auto-upgrades on a hub (docs/hub.md §10).

Standalone ``appflow serve`` polls each catalog repository's index and upgrades the installs
whose upgrade policy is ``auto`` when a newer chart version within their constraints appears
(``appflow.engine.catalog.live``). On a hub that poll is singleton work per ``CatalogRepo``:
its key ``catalogrepo/<workspace>/<name>`` is assigned by the same rendezvous sharding over the
membership Leases as a GitRepo's, so two replicas never poll one catalog repository. The owner
upgrades an install exactly as ``appflow catalog upgrade`` does against a hub: the AppFlow's
chart version is written, and its sync is a request that the AppFlow's owner runs (history and
events as any sync), plus an event naming the versions. OCI registries have no index to poll,
and a catalog folder is the machine's that installed from it: neither is polled, as standalone.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

from appflow.engine.catalog.live import poll_repo_once
from appflow.errors import NotFoundError
from appflow.hub.actions import HubEngine


async def poll_catalog_repo(
    engine: HubEngine,
    name: str,
    *,
    catalog_dir: Path,
    stop: asyncio.Event,
    interval: float | None = None,
) -> None:
    """Read catalog repository NAME's index at its poll interval (INTERVAL overrides it) and
    upgrade its ``auto`` installs when it changed, until STOP or the repository is removed."""
    while not stop.is_set():
        try:
            repo = await asyncio.to_thread(engine.hub.get_catalog_repo, name)
        except NotFoundError:
            return
        if repo.is_oci:
            return
        every = interval or float(repo.poll_interval_seconds)
        await poll_repo_once(engine, repo, catalog_dir, max_age=every * 0.5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every * random.uniform(0.8, 1.2))
