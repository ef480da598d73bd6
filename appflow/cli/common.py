"""What every command needs: the store, the engine, asyncio, label parsing.

The store and the engine are standalone's (SQLite, syncing in this process) or a hub's
(custom resources, actions asked of its controllers): see ``appflow.hub.backend``.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from appflow.errors import ConfigError

if TYPE_CHECKING:
    from appflow.engine.engine import Engine
    from appflow.hub.backend import HubTarget
    from appflow.store import Store

T = TypeVar("T")

hub_flag: str | None = None
"""The root command's --hub, for the commands that open the store or the engine."""


def chosen_hub() -> HubTarget | None:
    """The hub this command talks to (None: standalone SQLite)."""
    # Standalone commands must not pay for the hub's imports (the Kubernetes client).
    if not hub_asked(hub_flag):
        return None
    from appflow.hub.backend import chosen_hub as choose

    return choose(hub_flag)


def hub_asked(flag: str | None) -> bool:
    """Whether a hub may be chosen (FLAG is --hub): by the flag, APPFLOW_HUB or a saved
    hub context (`appflow hub use`). Cheap: it reads no kubeconfig."""
    import os

    from appflow.model.hub import ENV_HUB, HUB_CONTEXT_FILE
    from appflow.paths import data_dir

    return (
        flag is not None
        or bool(os.environ.get(ENV_HUB))
        or (data_dir() / HUB_CONTEXT_FILE).is_file()
    )


GC_THRESHOLDS = (20_000, 20, 20)
"""The collector's thresholds in a process that syncs (CPython's default: 700, 10, 10)."""


def collect_less() -> None:
    """Garbage collection for a process about to sync, once its modules are imported.

    A sync allocates tens of thousands of short-lived containers (each LIST's parsed JSON),
    so at the default thresholds the collector runs many times per sync, and its older
    generations rescan every module, class and schema the process imported, none of which
    is ever garbage. Frozen, those are left out of every collection; the higher thresholds
    collect the young generation once per 20,000 allocations instead of 700. Measured on an
    unchanged handed-over sync of 500 objects: about 110 ms of the daemon's CPU, 84 ms with
    this. Cycles are still collected, later; nothing else changes.
    """
    import gc

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


@contextmanager
def store_session() -> Iterator[Store]:
    hub = chosen_hub()
    if hub is not None:
        from appflow.hub.backend import open_hub_store

        store: Store = open_hub_store(hub)
    else:
        from appflow.store import open_store

        store = open_store()
    try:
        yield store
    finally:
        store.close()


@contextmanager
def engine_session(*, request_timeout: float | None = None) -> Iterator[Engine]:
    # The engine pulls in the Kubernetes client: only commands that sync pay for it.
    # Importing the catalog package registers its source resolver (cheaply: its
    # adapters load only when a catalog app syncs), so catalog installs sync too.
    import appflow.engine.catalog  # noqa: F401
    from appflow.engine.engine import Engine
    from appflow.engine.options import EngineOptions

    hub = chosen_hub()
    if hub is not None:
        from appflow.hub.backend import open_hub_engine

        hub_engine = open_hub_engine(hub)
        try:
            yield hub_engine
        finally:
            hub_engine.close()
        return
    options = (
        EngineOptions()
        if request_timeout is None
        else EngineOptions(request_timeout=request_timeout)
    )
    with store_session() as store:
        engine = Engine(store, options=options)
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


def log_progress() -> None:
    """A long-running service says what it does (INFO), unless --debug asked for more."""
    import logging

    appflow_log = logging.getLogger("appflow")
    if appflow_log.getEffectiveLevel() > logging.INFO:
        appflow_log.setLevel(logging.INFO)
