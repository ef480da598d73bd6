"""Content objects on the hub: storing and fetching renders as ``AppFlowContent`` (docs/hub.md §4).

The pure format (chunks, index, digests, compression) is ``appflow.model.content``; this module
writes each piece as an ``AppFlowContent`` named after its digest, in the order that keeps a
crash harmless (chunks, then the index that names them: a reader never finds an index whose
chunks are missing), and reads them back, verifying every digest.

Content is immutable and content-addressed: creating a piece that exists is success, and a
piece read once never changes, so reads are cached in memory by digest.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from appflow.errors import ContentError, Where
from appflow.kube.client import KubeCluster
from appflow.model import content as fmt
from appflow.model.hub import API_VERSION, LABEL_CONTENT_MEDIA, MANAGED_BY
from appflow.model.objects import Manifest

KIND = "AppFlowContent"
CACHE_BYTES = 64 * 1024 * 1024


def content_manifest(blob: fmt.Blob, *, namespace: str) -> Manifest:
    """BLOB as the AppFlowContent that stores it."""
    digest = blob.digest
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": digest,
            "namespace": namespace,
            "labels": {**MANAGED_BY, LABEL_CONTENT_MEDIA: blob.media},
        },
        "spec": {
            "mediaType": blob.media,
            "encoding": "gzip",
            "size": len(blob.data),
            "digest": digest,
            "data": fmt.compress(blob.data),
        },
    }


class ContentStore:
    """The content of one namespace of the hub."""

    def __init__(self, kube: KubeCluster, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._known: set[str] = set()
        """Digests known to exist on the hub: not written again."""
        self._indexes: dict[str, fmt.StoredIndex] = {}

    # -- writing ----------------------------------------------------------------------------

    async def put(self, blob: fmt.Blob) -> str:
        """Store BLOB (nothing to do when it exists); its digest."""
        digest = blob.digest
        if digest not in self._known:
            await self.kube.create(content_manifest(blob, namespace=self.namespace))
            self._known.add(digest)
        return digest

    async def put_render(
        self,
        objects: Sequence[Manifest],
        *,
        base: str | None = None,
        chunk_min: int = fmt.CHUNK_MIN,
    ) -> fmt.StoredIndex:
        """Store a render: its chunks (in parallel), then its index, a delta of the index
        BASE (the render it replaces, by index digest) where that is smaller. The returned
        index's digest names the render's content. CHUNK_MIN: see ``fmt.split_render``."""
        stored_base = await self.get_index(base) if base else None
        split = fmt.split_render(objects, base=stored_base, chunk_min=chunk_min)
        await asyncio.gather(*(self.put(chunk) for chunk in split.chunks))
        await self.put(split.index_blob)
        stored = split.stored()
        self._indexes[stored.digest] = stored
        return stored

    # -- reading ----------------------------------------------------------------------------

    async def get(self, digest: str) -> bytes:
        """The bytes of content DIGEST, verified."""
        cached = self._cache.get(digest)
        if cached is not None:
            self._cache.move_to_end(digest)
            return cached
        obj = await self.kube.get(API_VERSION, KIND, digest, self.namespace)
        if obj is None:
            raise ContentError(
                f"content {digest} is missing",
                where=Where(cluster=self.kube.name, object=f"{KIND}/{self.namespace}/{digest}"),
                hint="it was collected or never written; a new sync writes it again",
            )
        data = fmt.decompress(_spec(obj).get("data", ""), digest=digest)
        self._remember(digest, data)
        self._known.add(digest)
        return data

    async def get_index(self, digest: str) -> fmt.StoredIndex:
        """The complete index stored as DIGEST (a delta is resolved through its bases)."""
        known = self._indexes.get(digest)
        if known is not None:
            return known
        document = fmt.read_index(fmt.Blob(media="index", data=await self.get(digest)))
        base = await self.get_index(document.base) if document.base else None
        if base is not None and base.depth + 1 != document.depth:
            raise ContentError(f"index {digest} does not follow its base {document.base}")
        stored = fmt.StoredIndex(
            digest=digest,
            index=document.resolve(base.index if base else None),
            depth=document.depth,
        )
        self._indexes[digest] = stored
        return stored

    async def get_render(self, index_digest: str) -> list[Manifest]:
        """The objects of the render whose index is INDEX_DIGEST."""
        index = (await self.get_index(index_digest)).index
        digests = list(dict.fromkeys(d for d, _ in index.chunks))
        chunks = await asyncio.gather(*(self.get(d) for d in digests))
        return fmt.join_render(index, dict(zip(digests, chunks, strict=True)))

    def _remember(self, digest: str, data: bytes) -> None:
        self._cache[digest] = data
        self._cached_bytes += len(data)
        while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= len(dropped)


def _spec(obj: Manifest) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}
