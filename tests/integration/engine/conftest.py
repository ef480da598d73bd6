"""Fixtures for engine tests: a fresh appflow home with the sandbox clusters registered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from appflow.engine.engine import Engine
from appflow.kube.client import KubeCluster
from appflow.model.objects import INVENTORY_NAMESPACE
from appflow.store import SqliteStore, open_store
from tests.helpers import Sandbox, eventually, register_clusters
from tests.integration.engine.support import KUBERNETES_CREATED, Space, new_suffix


@dataclass
class Fleet:
    """An appflow home (store + engine) whose clusters are the sandbox's."""

    home: Path
    store: SqliteStore
    engine: Engine
    sandbox: Sandbox

    @property
    def cluster_names(self) -> list[str]:
        return [c.name for c in self.sandbox.clusters]


@pytest.fixture
def fleet(sandbox: Sandbox, appflow_home: Path) -> Iterator[Fleet]:
    store = open_store()
    register_clusters(store, sandbox.clusters)
    engine = Engine(store)
    try:
        yield Fleet(home=appflow_home, store=store, engine=engine, sandbox=sandbox)
    finally:
        engine.close()
        store.close()


def _kubernetes_made(kube: KubeCluster, namespace: str) -> bool:
    return all(
        kube.get_sync("v1", kind, name, namespace) is not None for kind, name in KUBERNETES_CREATED
    )


@pytest.fixture
def space(sandbox: Sandbox) -> Iterator[Space]:
    """A namespace with a random suffix on every sandbox cluster; it and the apps' inventories
    (app names carry the same suffix) are deleted afterwards.

    It is handed over once the controller manager has made its own objects in it (the
    root CA ConfigMap, the default ServiceAccount): a test that counts or snapshots the
    namespace must not race them on a loaded machine.
    """
    suffix = new_suffix()
    created = Space(namespace=f"e-{suffix}", suffix=suffix)
    kubes = [sandbox.kube(index) for index in range(len(sandbox.clusters))]
    try:
        for kube in kubes:
            kube.apply_sync(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": created.namespace}}
            )
        for kube in kubes:  # made on every cluster meanwhile
            eventually(
                partial(_kubernetes_made, kube, created.namespace),
                what=f"the controller manager's objects in namespace {created.namespace}",
            )
    finally:
        for kube in kubes:
            kube.close()
    try:
        yield created
    finally:
        for index in range(len(sandbox.clusters)):
            kube = sandbox.kube(index)
            try:
                kube.delete_sync("v1", "Namespace", created.namespace)
                for cm in kube.list_sync("v1", "ConfigMap", namespace=INVENTORY_NAMESPACE):
                    if cm["metadata"]["name"].endswith(suffix):
                        kube.delete_sync(
                            "v1", "ConfigMap", cm["metadata"]["name"], INVENTORY_NAMESPACE
                        )
            finally:
                kube.close()
