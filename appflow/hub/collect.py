"""The content collector: AppFlowContent no record references any more is deleted (docs/hub.md §4).

Content is shared and immutable, so nobody deletes it when they stop using it; the owner of the
workspace's ``gc/<workspace>`` key (one replica) collects it now and then. A piece is kept when
something retained names it, directly or through an index: a Deployment's staged or released
desired state, its inventory and its history; an AppFlow's revisions (their per-cluster
listing and every render it names), its last request's report, its source snapshot and its
chart snapshot. Everything referenced through an index is kept with it: its chunks and the
indexes a delta index builds on. A piece younger than ``min_age`` is kept whatever refers to
it: content is written before the record that names it, and a crash between the two leaves
it unreferenced for a moment only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from appflow.errors import ContentError
from appflow.hub.store import HubStore, chart_snapshot
from appflow.kube.content import KIND as CONTENT_KIND
from appflow.model import content as fmt
from appflow.model import resources as res
from appflow.model.hub import API_VERSION
from appflow.model.records import utc_now

log = logging.getLogger("appflow.hub.collect")

MIN_AGE_SECONDS = 600.0


def _digests(values: Iterable[object]) -> set[str]:
    return {str(v) for v in values if isinstance(v, str) and fmt.is_digest(v)}


def deployment_roots(obj: Mapping[str, Any]) -> set[str]:
    """The content an AppFlowDeployment names."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    found = []
    for key in ("staged", "released"):
        desired = spec.get(key) or {}
        found += [desired.get("index"), desired.get("secrets")]
    found.append((status.get("inventory") or {}).get("index"))
    found += [e.get("index") for e in status.get("history") or []]
    return _digests(found)


def app_roots(obj: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """The content an AppFlow names, and which of it are revision listings."""
    status = obj.get("status") or {}
    listings = _digests(e.get("rendered") for e in status.get("revisions") or [])
    found: list[object] = [(status.get("syncRequest") or {}).get("report")]
    local = res.local_source(obj)
    if local is not None:
        found.append(local["snapshot"])
    found.append(chart_snapshot(dict(obj)))
    return _digests(found) | listings, listings


async def _reachable(store: HubStore, roots: set[str], listings: set[str]) -> set[str]:
    keep: set[str] = set()
    pending = list(roots)
    for listing in listings:
        try:
            lines = await asyncio.to_thread(store.get_objects, listing)
        except ContentError:
            continue  # gone already: nothing it names can be found through it either
        pending += [str(line["index"]) for line in lines if line.get("index")]
    while pending:
        digest = pending.pop()
        if digest in keep:
            continue
        keep.add(digest)
        try:
            index = await store.content.get_index(digest)
        except ContentError:
            continue  # not an index (or missing): itself only
        keep.update(d for d, _ in index.index.chunks)
        document = fmt.read_index(fmt.Blob(media="index", data=await store.content.get(digest)))
        if document.base:
            pending.append(document.base)
    return keep


async def collect(store: HubStore, *, min_age: float = MIN_AGE_SECONDS) -> list[str]:
    """Delete the workspace's content nothing retained references; the digests deleted."""
    deployments = await asyncio.to_thread(store.deployment_objects, with_unreported=True)
    apps = await asyncio.to_thread(store.app_objects)
    roots: set[str] = set()
    listings: set[str] = set()
    for d in deployments:
        roots |= deployment_roots(d)
    for a in apps:
        found, found_listings = app_roots(a)
        roots |= found
        listings |= found_listings
    keep = await _reachable(store, roots, listings)
    contents = await store.kube.list_objects(API_VERSION, CONTENT_KIND, namespace=store.workspace)
    cutoff = utc_now() - timedelta(seconds=min_age)
    deleted = []
    for obj in contents:
        name = res.name_of(obj)
        if name in keep or res.created_at(obj) > cutoff:
            continue
        await store.kube.delete(API_VERSION, CONTENT_KIND, name, store.workspace)
        deleted.append(name)
    if deleted:
        log.info("collected %d content object(s) of %s", len(deleted), store.workspace)
    return deleted
