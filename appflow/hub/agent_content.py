"""Content for agents: who is asking, and whether their Deployments reference it (docs/hub.md §4).

An agent's Kubernetes credential has no right to content at all: content is shared by every
cluster with the same render, and RBAC cannot say "what my namespace references". The agent
API asks the hub's API server who a bearer token belongs to (TokenReview, cached for a
minute), and serves a digest only when an ``AppFlowDeployment`` in that ServiceAccount's
namespace names it, directly (an index, a source) or through an index (its chunks, the
indexes a delta index is based on). Bytes go out as stored (gzip), so the agent verifies
them against their digest and the transfer is what etcd holds, not more.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from appflow.errors import AuthError, ContentError, ForbiddenError, NotFoundError, Where
from appflow.kube.auth import review_token
from appflow.kube.client import KubeCluster
from appflow.kube.content import KIND as CONTENT_KIND
from appflow.kube.content import ContentStore
from appflow.model import content as fmt
from appflow.model.hub import API_VERSION
from appflow.model.registration import AGENT_NAME

REVIEW_SECONDS = 10.0
"""How long a TokenReview's answer is trusted: a revoked credential is refused within this."""
REFERENCES_SECONDS = 1.0
"""The Deployments' references are listed again at most this often, on a miss."""
CACHE_BYTES = 128 * 1024 * 1024


REFERENCE_KEYS = frozenset({"index", "secrets"})
"""The fields of a desired state that name content (renderDigest names no stored object)."""


def referenced_digests(value: Any) -> set[str]:
    """Every content digest an AppFlowDeployment's spec names (its desired states' ``index``
    and ``secrets``), however nested."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in REFERENCE_KEYS and isinstance(item, str) and fmt.is_digest(item):
                found.add(item)
            else:
                found |= referenced_digests(item)
    elif isinstance(value, list):
        for item in value:
            found |= referenced_digests(item)
    return found


@dataclass
class _References:
    roots: set[str] = field(default_factory=set)
    reachable: set[str] = field(default_factory=set)


class AgentContent:
    """Serves content of WORKSPACE to agents, each only what its Deployments reference."""

    def __init__(self, kube: KubeCluster, *, workspace: str) -> None:
        self.kube = kube
        self.workspace = workspace
        self._content = ContentStore(kube, workspace)
        self._reviews: dict[str, tuple[str, float]] = {}
        self._references: dict[str, _References] = {}
        self._expanded: dict[str, frozenset[str]] = {}
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._blob_bytes = 0
        self._listing = asyncio.Lock()
        self._listed_at = -REFERENCES_SECONDS

    async def namespace_of(self, token: str) -> str:
        """The hub namespace of the agent TOKEN belongs to; AuthError otherwise."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        known = self._reviews.get(key)
        if known and known[1] > now:
            return known[0]
        review = await review_token(self.kube, token)
        if not review.authenticated:
            raise AuthError(
                "the hub does not accept this agent credential"
                + (f": {review.error}" if review.error else ""),
                hint="the cluster was removed or its credential revoked; register it again",
            )
        parts = review.username.split(":")
        if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"] or parts[3] != AGENT_NAME:
            raise ForbiddenError(
                f"{review.username} is not an appflow agent",
                hint="content is served to agents' ServiceAccounts only",
            )
        if len(self._reviews) > 50_000:
            self._reviews.clear()
        self._reviews[key] = (parts[2], now + REVIEW_SECONDS)
        return parts[2]

    async def fetch(self, namespace: str, digest: str) -> bytes:
        """The stored (gzip) bytes of DIGEST, if NAMESPACE's Deployments reference it."""
        if not fmt.is_digest(digest):
            raise NotFoundError(f"{digest!r} is not a content digest")
        if not await self._allowed(namespace, digest):
            raise ForbiddenError(
                f"content {digest} is not referenced by any AppFlowDeployment of this cluster",
                where=Where(object=f"{CONTENT_KIND}/{self.workspace}/{digest}"),
            )
        return await self._blob(digest)

    async def _allowed(self, namespace: str, digest: str) -> bool:
        refs = self._references.get(namespace)
        if refs is not None and digest in refs.reachable:
            return True
        asked = time.monotonic()
        async with self._listing:
            refs = self._references.get(namespace)
            if refs is not None and digest in refs.reachable:
                return True
            if self._listed_at < asked:
                # The answer must come from a list made after the question: a Deployment
                # written a moment ago is not refused. Lists are at most REFERENCES_SECONDS
                # apart, and one serves every agent that asked meanwhile.
                wait = self._listed_at + REFERENCES_SECONDS - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._list_references()
            refs = self._references.get(namespace)
            return refs is not None and digest in refs.reachable

    async def _list_references(self) -> None:
        # One list of every Deployment on the hub, not one per agent: after a commit a
        # thousand agents ask within seconds, and all of them find their answer here.
        self._listed_at = time.monotonic()
        deployments = await self.kube.list_objects(API_VERSION, "AppFlowDeployment")
        roots: dict[str, set[str]] = {}
        for d in deployments:
            if (d.get("spec") or {}).get("appNamespace", self.workspace) != self.workspace:
                continue  # another workspace's: its content is not served here
            ns = str((d.get("metadata") or {}).get("namespace", ""))
            roots.setdefault(ns, set()).update(referenced_digests(d.get("spec")))
        references = {}
        for ns, found in roots.items():
            reachable: set[str] = set()
            for root in found:
                reachable |= await self._expand(root)
            references[ns] = _References(roots=found, reachable=reachable)
        self._references = references

    async def _expand(self, root: str) -> frozenset[str]:
        """ROOT and, when it is an index, its bases and chunks (cached: content is immutable)."""
        known = self._expanded.get(root)
        if known is not None:
            return known
        if len(self._expanded) > 100_000:
            self._expanded.clear()
        out = {root}
        try:
            data = await self._content.get(root)
        except ContentError:
            return frozenset()  # not (yet, or any more) on the hub: nothing to serve from it
        try:
            document = fmt.read_index(fmt.Blob(media="index", data=data))
        except ContentError:
            document = None  # not an index: a chunk or a source, referenced directly
        if document is not None:
            stored = await self._content.get_index(root)
            out |= {d for d, _ in stored.index.chunks}
            base = document.base
            while base:
                out.add(base)
                base = fmt.read_index(
                    fmt.Blob(media="index", data=await self._content.get(base))
                ).base
        self._expanded[root] = frozenset(out)
        return self._expanded[root]

    async def _blob(self, digest: str) -> bytes:
        cached = self._blobs.get(digest)
        if cached is not None:
            self._blobs.move_to_end(digest)
            return cached
        obj = await self.kube.get(API_VERSION, CONTENT_KIND, digest, self.workspace)
        if obj is None:
            raise NotFoundError(
                f"content {digest} is missing on the hub",
                hint="it was collected; the hub writes it again with the next revision",
            )
        encoded = str((obj.get("spec") or {}).get("data", ""))
        fmt.decompress(encoded, digest=digest)  # verified once, here
        blob = base64.b64decode(encoded)
        self._blobs[digest] = blob
        self._blob_bytes += len(blob)
        while self._blob_bytes > CACHE_BYTES and len(self._blobs) > 1:
            _, dropped = self._blobs.popitem(last=False)
            self._blob_bytes -= len(dropped)
        return blob
