"""Content on the hub: renders as content-addressed, compressed chunks and an index."""

from __future__ import annotations

import hashlib
import os

import pytest

from appflow.errors import ContentError
from appflow.model import content as c


def _config_map(i: int, data: str = "value") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"cm-{i}", "namespace": "edge"},
        "data": {"key": data * 20, "index": str(i)},
    }


def _stored(split: c.SplitRender) -> dict[str, bytes]:
    return {b.digest: b.data for b in split.chunks}


def test_a_render_round_trips_in_order() -> None:
    objects = [_config_map(i) for i in range(50)]
    split = c.split_render(objects)
    assert c.join_render(split.index, _stored(split)) == objects
    assert split.index.render_digest == c.render_digest(objects)
    assert c.read_index(split.index_blob).resolve(None) == split.index


def test_splitting_is_deterministic() -> None:
    objects = [_config_map(i) for i in range(30)]
    first, second = c.split_render(objects), c.split_render(objects)
    assert [b.digest for b in first.blobs()] == [b.digest for b in second.blobs()]
    blob = first.chunks[0]
    assert c.compress(blob.data) == c.compress(blob.data)


def _realistic(i: int, *, image: str = "1.0") -> list[dict[str, object]]:
    """A Deployment, a Service and a ConfigMap, with per-object values, as a chart renders."""
    name = f"svc-{i}"
    token = hashlib.sha256(name.encode()).hexdigest()
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "edge", "labels": {"app": name}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}, "annotations": {"checksum": token}},
                    "spec": {
                        "containers": [
                            {
                                "name": "main",
                                "image": f"registry.example.com/edge/{name}:{image}",
                                "ports": [{"containerPort": 8000 + i}],
                                "env": [{"name": "ID", "value": token[:16]}],
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "edge"},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8000 + i}]},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-config", "namespace": "edge"},
            "data": {"config.yaml": f"id: {token}\nport: {8000 + i}\n"},
        },
    ]


def _compressed(blobs: list[c.Blob]) -> int:
    return sum(len(c.compress(b.data)) for b in blobs)


def test_a_one_object_change_to_a_200_object_app_costs_a_reader_under_5_percent() -> None:
    objects = [o for i in range(67) for o in _realistic(i)][:200]
    first = c.split_render(objects)
    changed = [o for i in range(67) for o in _realistic(i, image="2.0" if i == 40 else "1.0")]
    second = c.split_render(changed[:200], base=first.stored())
    assert second.depth == 1
    have = {b.digest for b in first.blobs()}
    fetched = [b for b in second.blobs() if b.digest not in have]
    assert 2 <= len(fetched) <= 3  # the delta index and one or two chunks
    full = _compressed(list(second.blobs()))
    ratio = _compressed(fetched) / full
    assert ratio <= 0.05, f"{_compressed(fetched)} of {full} bytes"


def test_a_delta_index_resolves_to_the_complete_index() -> None:
    objects = [_config_map(i) for i in range(80)]
    first = c.split_render(objects)
    changed = [*objects[:10], _config_map(999), *objects[30:]]
    second = c.split_render(changed, base=first.stored())
    document = c.read_index(second.index_blob)
    assert document.base == first.index_blob.digest
    assert document.resolve(first.index) == c.split_render(changed).index
    with pytest.raises(ContentError, match="needs"):
        document.resolve(None)


def test_delta_chains_are_cut() -> None:
    objects = [_config_map(i) for i in range(40)]
    stored = c.split_render(objects).stored()
    depths = []
    for n in range(c.MAX_DELTA_DEPTH + 1):
        objects = [*objects[:-1], _config_map(1000 + n)]
        stored = c.split_render(objects, base=stored).stored()
        depths.append(stored.depth)
    assert depths == [*range(1, c.MAX_DELTA_DEPTH + 1), 0]


def test_an_object_larger_than_a_chunk_is_split_and_no_piece_exceeds_the_limits() -> None:
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}}
    big["binaryData"] = {"blob": os.urandom(3 * c.CHUNK_MAX).hex()}
    objects = [_config_map(0), big, _config_map(1)]
    split = c.split_render(objects)
    assert len(split.chunks) >= 6
    for blob in split.blobs():
        assert len(blob.data) <= c.CHUNK_MAX
        # Incompressible bytes are the worst case: still within the CRD's maxLength.
        assert len(c.compress(blob.data)) <= 720_000
    assert c.join_render(split.index, _stored(split)) == objects


def test_a_corrupt_or_missing_chunk_is_an_error_not_a_render() -> None:
    split = c.split_render([_config_map(i) for i in range(20)])
    stored = _stored(split)
    first = split.index.chunks[0][0]
    with pytest.raises(ContentError, match="corrupt"):
        c.join_render(split.index, {**stored, first: stored[first].replace(b"cm-", b"cx-")})
    with pytest.raises(ContentError, match="missing"):
        c.join_render(split.index, {k: v for k, v in stored.items() if k != first})


def test_stored_bytes_are_checked_against_their_name() -> None:
    blob = c.Blob(media="objects", data=b'{"a":1}\n')
    encoded = c.compress(blob.data)
    assert c.decompress(encoded, digest=blob.digest) == blob.data
    with pytest.raises(ContentError, match="corrupt"):
        c.decompress(encoded, digest=c.digest_of(b"other"))
    with pytest.raises(ContentError, match="cannot be decoded"):
        c.decompress("not base64!", digest=blob.digest)


def test_digests_look_like_content_names() -> None:
    assert c.is_digest(c.digest_of(b"x"))
    assert not c.is_digest("sha256-XYZ")


def test_a_revision_listing_of_a_fleet_takes_a_few_chunks_not_one_per_three_clusters() -> None:
    # A line per cluster (where its render is); three renders for 1,000 clusters, as three
    # environments give. At CHUNK_MIN this was about 330 content objects per revision.
    renders = [(c.PREFIX + f"{i:064x}", c.PREFIX + f"{i + 7:064x}") for i in range(3)]
    lines = [
        {"cluster": f"edge-{n:05d}", "index": renders[n % 3][0], "renderDigest": renders[n % 3][1]}
        for n in range(1000)
    ]
    small = c.split_render(lines)
    listing = c.split_render(lines, chunk_min=c.LISTING_CHUNK_MIN)
    assert len(small.chunks) > 100
    assert len(listing.chunks) <= 2
    assert listing.index.render_digest == small.index.render_digest
    joined = c.join_render(listing.index, {b.digest: b.data for b in listing.chunks})
    assert joined == lines
