"""What every command needs: the store, the engine, asyncio, label parsing."""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from appflow.errors import ConfigError

if TYPE_CHECKING:
    from appflow.engine.engine import Engine
    from appflow.store import SqliteStore

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


@contextmanager
def store_session() -> Iterator[SqliteStore]:
    from appflow.store import open_store

    store = open_store()
    try:
        yield store
    finally:
        store.close()


@contextmanager
def engine_session() -> Iterator[Engine]:
    # The engine pulls in the Kubernetes client: only commands that sync pay for it.
    # Importing the catalog package registers its source resolver (cheaply: its
    # adapters load only when a catalog app syncs), so catalog installs sync too.
    import appflow.engine.catalog  # noqa: F401
    from appflow.engine.engine import Engine

    with store_session() as store:
        engine = Engine(store)
        try:
            yield engine
        finally:
            engine.close()


def parse_labels(values: tuple[str, ...], *, option: str = "-l") -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {item!r}: expected key=value, for example -l env=prod")
        labels[key.strip()] = value.strip()
    return labels
