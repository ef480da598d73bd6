"""Content on the hub: renders split into content-addressed, compressed chunks (docs/hub.md §4).

A render (the objects of one app for one cluster) is written as JSON lines, one object per
line in render order, each compact with sorted keys; its digest is the SHA-256 of those bytes.
The stream is cut into chunks at object boundaries chosen by the objects themselves: after an
object whose digest's first byte is a multiple of ``CUT_EVERY`` (once the chunk holds at least
``CHUNK_MIN`` bytes), and always before ``CHUNK_MAX`` bytes (an object larger than that is
split). A boundary depends only on the object before it, so a one-object change rewrites one
chunk (two when it moves a boundary) and renders that differ in one object share the rest.

The chunk digests, in order, with the render's digest and size, form the render's *index*,
itself a piece of content. An index may be written as a *delta* of an earlier one (its
``base``: which stretches of the base's chunk list it replaces), so that after a one-object
change a reader that has the base fetches a few hundred bytes of index and one small chunk,
not a list of every chunk; chains are cut at ``MAX_DELTA_DEPTH``. Every piece is named
``sha256-<hex>`` after its uncompressed bytes and stored gzip-compressed; reading verifies
every digest, so a corrupt or substituted piece is an error, never a wrong apply.

Pure: ``appflow.kube.content`` stores and fetches the pieces.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from appflow.errors import ContentError
from appflow.model.objects import Manifest

MediaType = Literal["objects", "index", "inventory", "source"]

CHUNK_MAX = 512 * 1024
"""Uncompressed bytes per chunk at most: base64 of its gzip stays near 700 KB, so no stored
object comes near etcd's 1.5 MiB request limit (nor 1 MiB)."""
CHUNK_MIN = 512
LISTING_CHUNK_MIN = 128 * 1024
"""The smallest chunk of a revision's listing (a line per cluster: where its render is). Its
lines change together (a commit moves every cluster's render), and at CHUNK_MIN a listing of
N clusters took about N/3 content objects: a write per 3 Deployments of every revision."""
CUT_EVERY = 2
"""On average, a content-defined boundary every this many objects: small chunks keep what a
one-object change re-sends small; delta indexes keep their number from costing readers."""
MAX_DELTA_DEPTH = 16
PREFIX = "sha256-"


def digest_of(data: bytes) -> str:
    """The name of DATA as content: ``sha256-`` and the hex SHA-256."""
    return PREFIX + hashlib.sha256(data).hexdigest()


def is_digest(text: str) -> bool:
    hexpart = text[len(PREFIX) :]
    return (
        text.startswith(PREFIX)
        and len(hexpart) == 64
        and all(c in "0123456789abcdef" for c in hexpart)
    )


@dataclass(frozen=True, kw_only=True)
class Blob:
    """One piece of content: its uncompressed bytes and what they are."""

    media: MediaType
    data: bytes

    @property
    def digest(self) -> str:
        return digest_of(self.data)


@dataclass(frozen=True, kw_only=True)
class RenderIndex:
    """Where a render's bytes are: its chunks in order."""

    render_digest: str
    size: int
    objects: int
    chunks: tuple[tuple[str, int], ...]
    """(digest, uncompressed size) of each chunk, in order."""


@dataclass(frozen=True, kw_only=True)
class StoredIndex:
    """An index as stored: its content digest and how many deltas deep it is."""

    digest: str
    index: RenderIndex
    depth: int = 0


@dataclass(frozen=True, kw_only=True)
class IndexDocument:
    """A stored index as read: complete (``base`` None) or a delta of ``base``."""

    render_digest: str
    size: int
    objects: int
    depth: int
    base: str | None
    chunks: tuple[tuple[str, int], ...] = ()
    edits: tuple[tuple[int, int, tuple[tuple[str, int], ...]], ...] = ()
    """(start, end, chunks): base.chunks[start:end] becomes chunks; ascending, disjoint."""

    def resolve(self, base: RenderIndex | None) -> RenderIndex:
        """The complete index (BASE: the resolved index of ``self.base``)."""
        if self.base is None:
            chunks = self.chunks
        else:
            if base is None:
                raise ContentError(f"delta index of {self.render_digest} needs {self.base}")
            out: list[tuple[str, int]] = []
            at = 0
            for start, end, replacement in self.edits:
                if start < at or end < start or end > len(base.chunks):
                    raise ContentError(f"delta index of {self.render_digest} is malformed")
                out.extend(base.chunks[at:start])
                out.extend(replacement)
                at = end
            out.extend(base.chunks[at:])
            chunks = tuple(out)
        return RenderIndex(
            render_digest=self.render_digest, size=self.size, objects=self.objects, chunks=chunks
        )


def _pairs(items: Sequence[tuple[str, int]]) -> list[list[object]]:
    return [[d, n] for d, n in items]


def index_blob(index: RenderIndex, *, base: StoredIndex | None = None) -> tuple[Blob, int]:
    """INDEX as stored content, a delta of BASE when that is smaller; and its delta depth."""
    head = {
        "version": 1,
        "renderDigest": index.render_digest,
        "size": index.size,
        "objects": index.objects,
    }
    body: dict[str, object] = {**head, "chunks": _pairs(index.chunks)}
    depth = 0
    if base is not None and base.depth < MAX_DELTA_DEPTH:
        old = [d for d, _ in base.index.chunks]
        new = [d for d, _ in index.chunks]
        matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
        edits = [
            (i1, i2, index.chunks[j1:j2])
            for tag, i1, i2, j1, j2 in matcher.get_opcodes()
            if tag != "equal"
        ]
        if sum(len(repl) for _, _, repl in edits) < len(index.chunks) // 2:
            body = {
                **head,
                "base": base.digest,
                "depth": base.depth + 1,
                "edits": [[i, j, _pairs(repl)] for i, j, repl in edits],
            }
            depth = base.depth + 1
    data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    if len(data) > CHUNK_MAX:
        raise ContentError(
            f"the render has {len(index.chunks)} chunks ({index.size} bytes): too large to store",
            hint="split the app into several apps",
        )
    return Blob(media="index", data=data), depth


def read_index(blob: Blob) -> IndexDocument:
    """A stored index, complete or delta (resolve it with its base's index)."""
    try:
        body = json.loads(blob.data)
        base = body.get("base")
        return IndexDocument(
            render_digest=str(body["renderDigest"]),
            size=int(body["size"]),
            objects=int(body["objects"]),
            depth=int(body.get("depth", 0)),
            base=str(base) if base else None,
            chunks=tuple((str(d), int(n)) for d, n in body.get("chunks", [])),
            edits=tuple(
                (int(i), int(j), tuple((str(d), int(n)) for d, n in repl))
                for i, j, repl in body.get("edits", [])
            ),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ContentError(f"content {blob.digest} is not a render index: {err}") from err


@dataclass(frozen=True, kw_only=True)
class SplitRender:
    """A render ready to store: its chunks, then its index (complete or delta)."""

    index: RenderIndex
    chunks: tuple[Blob, ...]
    index_blob: Blob
    depth: int

    def blobs(self) -> list[Blob]:
        """Every piece in the order to write them: what is referenced before what refers."""
        return [*self.chunks, self.index_blob]

    def stored(self) -> StoredIndex:
        return StoredIndex(digest=self.index_blob.digest, index=self.index, depth=self.depth)


def object_line(obj: Manifest) -> bytes:
    return (
        json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode() + b"\n"
    )


def _cuts_after(line: bytes) -> bool:
    return hashlib.sha256(line).digest()[0] % CUT_EVERY == 0


def _chunk_bytes(lines: Iterable[bytes], *, chunk_min: int = CHUNK_MIN) -> Iterator[bytes]:
    current = bytearray()
    for line in lines:
        if current and len(current) + len(line) > CHUNK_MAX:
            yield bytes(current)
            current = bytearray()
        while len(line) > CHUNK_MAX:  # one object larger than a chunk: split its bytes
            yield line[:CHUNK_MAX]
            line = line[CHUNK_MAX:]
        current += line
        if len(current) >= chunk_min and _cuts_after(line):
            yield bytes(current)
            current = bytearray()
    if current:
        yield bytes(current)


def split_render(
    objects: Sequence[Manifest], *, base: StoredIndex | None = None, chunk_min: int = CHUNK_MIN
) -> SplitRender:
    """OBJECTS as chunks (of at least CHUNK_MIN bytes but the last) and an index, a delta of
    BASE where that is smaller (see above)."""
    lines = [object_line(o) for o in objects]
    stream = hashlib.sha256()
    for line in lines:
        stream.update(line)
    chunks = tuple(Blob(media="objects", data=c) for c in _chunk_bytes(lines, chunk_min=chunk_min))
    index = RenderIndex(
        render_digest=PREFIX + stream.hexdigest(),
        size=sum(len(line) for line in lines),
        objects=len(lines),
        chunks=tuple((c.digest, len(c.data)) for c in chunks),
    )
    blob, depth = index_blob(index, base=base)
    return SplitRender(index=index, chunks=chunks, index_blob=blob, depth=depth)


def render_digest(objects: Sequence[Manifest]) -> str:
    """The digest of a render, as its index records it."""
    stream = hashlib.sha256()
    for o in objects:
        stream.update(object_line(o))
    return PREFIX + stream.hexdigest()


def join_render(index: RenderIndex, chunks: Mapping[str, bytes]) -> list[Manifest]:
    """The objects of a render from its INDEX and its CHUNKS (digest -> uncompressed bytes).

    Every chunk's bytes must match its digest and the whole its render digest.
    """
    stream = bytearray()
    for digest, size in index.chunks:
        data = chunks.get(digest)
        if data is None:
            raise ContentError(f"chunk {digest} of render {index.render_digest} is missing")
        if digest_of(data) != digest or len(data) != size:
            raise ContentError(f"chunk {digest} of render {index.render_digest} is corrupt")
        stream += data
    if digest_of(bytes(stream)) != index.render_digest:
        raise ContentError(f"render {index.render_digest} does not match its chunks")
    objects = [json.loads(line) for line in bytes(stream).splitlines() if line]
    if len(objects) != index.objects:
        raise ContentError(
            f"render {index.render_digest} has {len(objects)} objects, not {index.objects}"
        )
    return objects


def compress(data: bytes) -> str:
    """DATA gzip-compressed (no timestamp: the same bytes give the same output), in base64."""
    return base64.b64encode(gzip.compress(data, compresslevel=6, mtime=0)).decode("ascii")


def decompress(encoded: str, *, digest: str) -> bytes:
    """The bytes stored as ENCODED, checked against DIGEST."""
    try:
        data = gzip.decompress(base64.b64decode(encoded, validate=True))
    except (binascii.Error, OSError, EOFError, zlib.error) as err:
        raise ContentError(f"content {digest} cannot be decoded: {err}") from err
    if digest_of(data) != digest:
        raise ContentError(f"content {digest} is corrupt: its bytes have another digest")
    return data


def secrets_bundle(files: Sequence[tuple[str, bytes]]) -> Blob:
    """SOPS files as content (media ``source``): what a pull cluster's agent decrypts with its
    own key to reveal the encrypted values its render carries (the hub holds ciphertext only).
    FILES: (path in the app folder, the file's bytes as committed)."""
    body = {
        "version": 1,
        "files": [
            {"name": name, "data": base64.b64encode(data).decode("ascii")}
            for name, data in sorted(files)
        ],
    }
    return Blob(media="source", data=json.dumps(body, sort_keys=True).encode())


def read_secrets_bundle(data: bytes) -> list[tuple[str, bytes]]:
    """The (path, bytes) of each SOPS file in a bundle made by ``secrets_bundle``."""
    try:
        body = json.loads(data)
        return [(str(f["name"]), base64.b64decode(f["data"], validate=True)) for f in body["files"]]
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise ContentError(
            f"content {digest_of(data)} is not a bundle of SOPS files: {err}"
        ) from err
