"""How the engine reaches clusters: fan-out and timeouts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    cluster_concurrency: int = 8
    """Clusters worked on at once, per app."""
    app_concurrency: int = 32
    """Apps a batch (`appflow sync --all`) syncs at once."""
    request_timeout: float = 10.0
    """Seconds one API request may take before its cluster counts as unreachable."""
    requests_per_cluster: int = 16
    """Parallel API requests to one cluster."""
