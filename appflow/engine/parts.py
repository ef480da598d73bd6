"""What every part of the engine works with, held together (the Engine facade builds it)."""

from __future__ import annotations

from dataclasses import dataclass

from appflow.engine.connections import Connections
from appflow.engine.locks import SyncLocks
from appflow.engine.options import EngineOptions
from appflow.engine.recorder import Recorder
from appflow.engine.secrets import SecretsStage
from appflow.engine.sources import Resolvers
from appflow.render.cache import RenderCache
from appflow.store import Store


@dataclass(frozen=True, kw_only=True)
class EngineParts:
    """The store (read from worker threads), its recorder, the clusters, the render cache,
    the source resolvers, the secrets stage (which decrypts SOPS inputs per cluster) and the
    sync locks."""

    store: Store
    recorder: Recorder
    connections: Connections
    render_cache: RenderCache
    resolvers: Resolvers
    secrets: SecretsStage
    options: EngineOptions
    locks: SyncLocks
    """This process's holds on (app, cluster): one writer at a time."""
