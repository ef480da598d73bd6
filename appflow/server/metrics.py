"""appflow's Prometheus metrics, served at ``/metrics``.

The daemon feeds them through the plain-valued methods of ``Metrics`` (names, seconds,
counts), so this module knows nothing of the engine's types and the engine nothing of
Prometheus. Each ``Metrics`` owns its own CollectorRegistry (not the process-global
one), so several servers in one process (tests) do not collide.

Label values are app and cluster names, action names and error class names: bounded
by the fleet's size, never by request input (webhook deliveries are labelled by the
provider of the route and a fixed set of results).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

RECONCILE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
"""Seconds: a no-op re-sync takes tens of milliseconds, a Helm rollout over a thin
link minutes."""

WEBHOOK_RESULTS = (
    "queued",
    "ignored",
    "pong",
    "unsigned",
    "forged",
    "stale",
    "replayed",
    "no-secret",
    "too_large",
    "invalid",
)
"""The ``result`` label of ``appflow_webhook_deliveries_total``."""


class PlanLike(Protocol):
    def counts(self) -> Mapping[Any, int]: ...


class SyncResultLike(Protocol):
    """What observe_report reads of one cluster's sync result."""

    @property
    def cluster(self) -> str: ...
    @property
    def seconds(self) -> float: ...
    @property
    def plan(self) -> PlanLike: ...
    @property
    def errors(self) -> Sequence[BaseException]: ...


class SyncReportLike(Protocol):
    """What observe_report reads of an app's sync report (the engine's AppSyncReport)."""

    @property
    def app(self) -> str: ...
    @property
    def results(self) -> Sequence[SyncResultLike]: ...
    @property
    def unreachable(self) -> Mapping[str, BaseException]: ...
    @property
    def failed(self) -> Mapping[str, BaseException]: ...
    @property
    def blocked(self) -> Sequence[BaseException]: ...


def _action_name(action: Any) -> str:
    # The engine's actions are an Enum whose values are the names (created, configured...).
    value = getattr(action, "value", action)
    return str(value)


class Metrics:
    """The metrics of one appflow process and the hooks that update them."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        queue_depth: Callable[[], int] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.reconcile_duration = Histogram(
            "appflow_reconcile_duration_seconds",
            "Seconds one sync of an app to a cluster took, from render to health.",
            ("app", "cluster"),
            buckets=RECONCILE_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "appflow_queue_depth",
            "Work items (repo fetches, app syncs) waiting or running.",
            registry=self.registry,
        )
        self.queue_depth_bound = False
        if queue_depth is not None:
            self.watch_queue(queue_depth)
        self.applies = Counter(
            "appflow_applies_total",
            "Objects handled by syncs, by action (created, configured, unchanged, pruned).",
            ("action",),
            registry=self.registry,
        )
        self.errors = Counter(
            "appflow_errors_total",
            "Errors met by syncs and fetches, by error class (e.g. ClusterUnreachableError).",
            ("class",),
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "appflow_webhook_deliveries_total",
            "Webhook deliveries received, by provider and result.",
            ("provider", "result"),
            registry=self.registry,
        )
        self.cluster_reachable = Gauge(
            "appflow_cluster_reachable",
            "1 when the cluster's API server answered its last check, else 0.",
            ("cluster",),
            registry=self.registry,
        )

    # -- hooks for the daemon ---------------------------------------------------------------

    def watch_queue(self, queue_depth: Callable[[], int]) -> None:
        """Read ``appflow_queue_depth`` from QUEUE_DEPTH on each scrape (never stale)."""
        self.queue_depth.set_function(lambda: float(queue_depth()))
        self.queue_depth_bound = True

    def observe_sync(
        self,
        *,
        app: str,
        cluster: str,
        seconds: float,
        counts: Mapping[str, int] | None = None,
        error_class: str | None = None,
    ) -> None:
        """Record one finished sync of APP to CLUSTER.

        COUNTS is objects per action (``{"created": 2, "unchanged": 5}``); ERROR_CLASS the
        class name of the error that failed the sync, if one did.
        """
        self.reconcile_duration.labels(app=app, cluster=cluster).observe(max(seconds, 0.0))
        for action, n in (counts or {}).items():
            if n > 0:
                self.applies.labels(action=action).inc(n)
        if error_class:
            self.count_error(error_class)

    def observe_report(self, report: SyncReportLike, seconds: float) -> None:
        """Record an app's sync across its clusters (the daemon's ``on_sync`` hook).

        REPORT is read by shape (SyncReportLike), not by the engine's type: per cluster
        result its duration, action counts and first error; per unreachable cluster an
        error and reachability 0; per cluster that failed for good an error; a sync
        refused before any change counts its errors.
        SECONDS, the whole sync's time, is not needed: each result has its own.
        """
        for result in report.results:
            error = result.errors[0] if result.errors else None
            self.observe_sync(
                app=report.app,
                cluster=result.cluster,
                seconds=result.seconds,
                counts={_action_name(a): n for a, n in result.plan.counts().items()},
                error_class=type(error).__name__ if error is not None else None,
            )
            self.set_cluster_reachable(result.cluster, True)
        for cluster, err in report.unreachable.items():
            self.set_cluster_reachable(cluster, False)
            self.count_error(type(err).__name__)
        for err in report.failed.values():
            self.count_error(type(err).__name__)
        for err in report.blocked:
            self.count_error(type(err).__name__)

    def count_error(self, error_class: str) -> None:
        """Record one error of class ERROR_CLASS (e.g. ``type(err).__name__``)."""
        self.errors.labels(**{"class": error_class}).inc()

    def set_cluster_reachable(self, cluster: str, reachable: bool) -> None:
        """Record whether CLUSTER answered its last check."""
        self.cluster_reachable.labels(cluster=cluster).set(1 if reachable else 0)

    def forget_cluster(self, cluster: str) -> None:
        """Drop the series of a removed cluster (its reachability; durations stay)."""
        with contextlib.suppress(KeyError):
            self.cluster_reachable.remove(cluster)

    def webhook_delivery(self, provider: str, result: str) -> None:
        """Record one webhook delivery; RESULT is one of WEBHOOK_RESULTS."""
        self.webhook_deliveries.labels(provider=provider, result=result).inc()

    # -- exposition -------------------------------------------------------------------------

    content_type = CONTENT_TYPE_LATEST

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return bytes(generate_latest(self.registry))
