"""What every command needs: the store, the engine, asyncio, label parsing."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from appflow.engine.engine import Engine
from appflow.errors import ConfigError
from appflow.store import SqliteStore, open_store

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@contextmanager
def store_session() -> Iterator[SqliteStore]:
    store = open_store()
    try:
        yield store
    finally:
        store.close()


@contextmanager
def engine_session() -> Iterator[Engine]:
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
