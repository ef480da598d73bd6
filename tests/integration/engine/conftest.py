"""Fixtures for engine tests: a fresh appflow home with the sandbox clusters registered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appflow.engine.clusters import add_cluster
from appflow.engine.engine import Engine
from appflow.store import SqliteStore, open_store
from tests.helpers import Sandbox


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
    for info in sandbox.clusters:
        asyncio.run(
            add_cluster(
                store,
                name=info.name,
                kind="imported",
                kubeconfig=info.kubeconfig,
                labels=dict(info.labels),
            )
        )
    engine = Engine(store)
    try:
        yield Fleet(home=appflow_home, store=store, engine=engine, sandbox=sandbox)
    finally:
        engine.close()
        store.close()
