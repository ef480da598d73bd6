"""latest_revision without its rendered objects: what a re-sync reads to see nothing is new."""

from __future__ import annotations

from pathlib import Path

from appflow.model.objects import Manifest
from appflow.model.records import AppRecord, GitCommit
from appflow.store import open_store

CONFIG_MAP: Manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}}


def test_latest_revision_without_rendered_is_the_same_revision(tmp_path: Path) -> None:
    with open_store(tmp_path / "appflow.db") as store:
        store.put_app(AppRecord(name="web", source="local", local_path=str(tmp_path)))
        store.add_revision(
            "web", digest="sha256:aaa", source_ref=GitCommit(commit="c1"), rendered={}
        )
        newest = store.add_revision(
            "web",
            digest="sha256:bbb",
            source_ref=GitCommit(commit="c2"),
            rendered={"berlin-1": [CONFIG_MAP]},
        )

        light = store.latest_revision("web", with_rendered=False)

        assert light is not None
        assert (light.number, light.digest, light.source_ref) == (
            2,
            "sha256:bbb",
            GitCommit(commit="c2"),
        )
        assert light.rendered == {}
        assert store.latest_revision("web") == newest
        assert store.latest_revision("nothing", with_rendered=False) is None
