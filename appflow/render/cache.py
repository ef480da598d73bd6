"""The render cache: unchanged inputs are never rendered twice, even across processes.

A render is keyed by a digest of everything its output depends on (see
``render_key``) and kept twice: in an in-memory LRU for the running process and
as ``cache_dir()/render/<key>.json`` on disk (written atomically), so a restart
or a second process finds it too. Entries are immutable by construction: the
key names the inputs, so an entry is never updated, only added or evicted.

Renders of the same key that run at the same time share one render.

The folder is bounded: past ``render_cache_bytes`` (``APPFLOW_RENDER_CACHE_BYTES``)
the least recently used entries are deleted (a disk hit marks an entry used).
A cache is an optimisation, never a reason for a sync to fail: when the folder
cannot be written (a full disk, a read-only mount) the process warns once and
goes on with the memory cache only.

Not cached: server-side renders (``helm --dry-run=server``), because ``lookup``
reads live cluster state that no key can name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from appflow import settings
from appflow.errors import AppflowError, RenderError
from appflow.model.limits import human_size
from appflow.paths import cache_dir
from appflow.render.documents import check_file_size
from appflow.render.types import Rendered, RenderRequest, canonical_json, revision_of, sha256_hex

CACHE_FORMAT = 3
"""Bump when what a render produces changes for the same inputs (new defaults, parser fixes)."""

EVICT_TO = 0.8
"""Eviction frees down to this share of the limit, so that it does not run on every write."""
STALE_TEMP_SECONDS = 600
"""A temporary file this old was left by a writer that died; eviction removes it."""

log = logging.getLogger("appflow.render.cache")


def _file_digest(path: Path) -> str:
    check_file_size(path, shown=str(path))
    try:
        return sha256_hex(path.read_bytes())
    except OSError as err:
        raise RenderError(f"cannot read values file: {err.strerror or err}").located(
            file=str(path)
        ) from err


def render_key(request: RenderRequest) -> str:
    """The digest of every input the render of REQUEST depends on.

    Only inputs that can change the output of the request's kind are included:
    plain YAML and kustomize output depend neither on values nor on the cluster's
    capabilities, so one entry serves every cluster. Values files count by
    content, not by path. A repository chart's version must be exact here (the
    dispatcher resolves constraints first), or a newly published version would
    hide behind an old entry.
    """
    parts: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "kind": request.kind,
        "source": request.source_digest,
        "namespace": request.namespace,
        "force_namespace": request.force_namespace,
        "annotations": dict(request.object_annotations),
    }
    if request.kind == "helm":
        chart = request.helm
        parts["helm"] = {
            "release": request.effective_release_name,
            "chart": None
            if chart is None
            else {
                "path": str(chart.path) if chart.path is not None else None,
                "url": chart.url,
                "repo": chart.repo,
                "name": chart.name,
                "version": chart.version,
                "dependency_update": chart.dependency_update,
            },
            "values": request.values,
            "values_files": [_file_digest(p) for p in request.values_files],
            "capabilities": request.capabilities.digest(),
            "include_crds": request.include_crds,
            "skip_schema_validation": request.skip_schema_validation,
            "post_render": request.kustomize_dir,
        }
    elif request.kind == "kustomize":
        parts["kustomize_dir"] = request.kustomize_dir
    else:
        parts["overlays"] = list(request.yaml_overlays)
    return sha256_hex(canonical_json(parts))


def _encode(rendered: Rendered) -> str:
    return canonical_json(
        {
            "format": CACHE_FORMAT,
            "revision": rendered.revision,
            "notes": list(rendered.notes),
            "chart_version": rendered.chart_version,
            "objects": list(rendered.objects),
        }
    )


def _decode(text: str, *, verify: bool = True) -> Rendered | None:
    """Rendered from its cache text, or None when the entry is foreign, old or corrupt.

    VERIFY re-computes the revision from the objects: needed for text read
    from disk, not for text this process encoded itself.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return None
    objects = tuple(data.get("objects") or ())
    # A torn or edited file must not pass for the render it claims to be.
    if verify and revision_of(objects) != data.get("revision"):
        return None
    return Rendered(
        objects=objects,
        revision=str(data["revision"]),
        notes=tuple(data.get("notes") or ()),
        chart_version=data.get("chart_version"),
    )


class RenderCache:
    """Content-addressed store of renders: memory LRU in front of a folder of JSON files.

    ``hits`` and ``misses`` count lookups served from the cache and renders
    that had to run, for tests and metrics. ``max_bytes`` bounds the folder
    (least recently used entries go first); ``disk_error`` says why the folder
    was given up, when it was.
    """

    def __init__(
        self,
        *,
        directory: Path | None = None,
        max_entries: int = 512,
        persist: bool = True,
        max_bytes: int | None = None,
    ) -> None:
        self.directory = directory if directory is not None else cache_dir() / "render"
        self.max_entries = max_entries
        self.persist = persist
        self.max_bytes = (
            max_bytes if max_bytes is not None else settings.limits().render_cache_bytes
        )
        self.disk_error: str | None = None
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0
        # Values are the encoded JSON text: every get hands out fresh objects, so a
        # caller that edits what it received cannot corrupt the cache.
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._inflight: dict[str, asyncio.Future[Rendered]] = {}

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> Rendered | None:
        """The cached render for KEY (memory first, then disk), without counting."""
        with self._lock:
            text = self._memory.get(key)
            if text is not None:
                self._memory.move_to_end(key)
        if text is None and self.persist:
            try:
                text = self._path(key).read_text(encoding="utf-8")
            except OSError:
                return None
            rendered = _decode(text)
            if rendered is None:
                return None
            self._touch(key)
            self.disk_hits += 1
            self._remember(key, text)
            return rendered
        # Memory holds only what _encode wrote here: decoding hands out fresh
        # objects; re-hashing hundreds of them on every warm sync proves nothing.
        return _decode(text, verify=False) if text is not None else None

    def put(self, key: str, rendered: Rendered) -> None:
        text = _encode(rendered)
        self._remember(key, text)
        if not self.persist or self.disk_error is not None:
            return
        try:
            self._write(key, text)
            self._evict(keep=key)
        except OSError as err:
            # Once: a full disk would otherwise warn on every render.
            self.disk_error = err.strerror or str(err)
            log.warning(
                "render cache: cannot write %s (%s); this process keeps renders in memory only",
                self.directory,
                self.disk_error,
            )

    def _touch(self, key: str) -> None:
        # The file's mtime is its last use: eviction removes the oldest first.
        # Gone meanwhile (another process's eviction), or a read-only disk: no matter.
        with contextlib.suppress(OSError):
            os.utime(self._path(key))

    def _evict(self, *, keep: str) -> None:
        """Delete the least recently used entries while the folder is over ``max_bytes``."""
        entries: list[tuple[float, int, Path]] = []
        total = 0
        now = time.time()
        with os.scandir(self.directory) as found:
            for entry in found:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.name.startswith("."):
                    # A temporary file: in use by a writer, or left by one that died.
                    if now - info.st_mtime > STALE_TEMP_SECONDS:
                        Path(entry.path).unlink(missing_ok=True)
                    continue
                total += info.st_size
                if entry.name != f"{keep}.json":
                    entries.append((info.st_mtime, info.st_size, Path(entry.path)))
        if total <= self.max_bytes:
            return
        entries.sort()
        freed = 0
        for _, size, path in entries:
            if total - freed <= self.max_bytes * EVICT_TO:
                break
            path.unlink(missing_ok=True)
            freed += size
        log.debug(
            "render cache: evicted %s to stay under %s",
            human_size(freed),
            human_size(self.max_bytes),
        )

    def _remember(self, key: str, text: str) -> None:
        with self._lock:
            self._memory[key] = text
            self._memory.move_to_end(key)
            while len(self._memory) > self.max_entries:
                self._memory.popitem(last=False)

    def _write(self, key: str, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Write-then-rename: a reader sees the whole entry or none, even if we crash.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{key[:12]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self._path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get_or_render(self, key: str, render: Callable[[], Awaitable[Rendered]]) -> Rendered:
        """The cached render for KEY, or RENDER()'s result, stored; one render per key at a time."""
        cached = await asyncio.to_thread(self.get, key)
        if cached is not None:
            self.hits += 1
            return cached
        running = self._inflight.get(key)
        if running is not None:
            self.hits += 1
            try:
                rendered = await asyncio.shield(running)
            except AppflowError as err:
                # One failure, many waiters (the clusters sharing this render):
                # each gets its own copy, without the cluster of the caller that
                # rendered, so render() names the waiter's own cluster.
                raise err.placed(replace(err.where, cluster=None)) from None
            # Each waiter gets objects of its own, copied off the event loop.
            return await asyncio.to_thread(_copy, rendered)
        future: asyncio.Future[Rendered] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        self.misses += 1
        try:
            rendered = await render()
            await asyncio.to_thread(self.put, key, rendered)
        except BaseException as err:
            if not future.done():
                if isinstance(err, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(err)
                    # Nobody may be waiting; do not log "exception never retrieved".
                    future.exception()
            raise
        else:
            future.set_result(rendered)
            return rendered
        finally:
            self._inflight.pop(key, None)


def _copy(rendered: Rendered) -> Rendered:
    return _decode(_encode(rendered), verify=False) or rendered
