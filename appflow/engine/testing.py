"""Test: run an app's tests on the clusters it is deployed to (`appflow app test`).

Tests are the revision's Test hooks (Helm's ``helm.sh/hook: test``, or
``appflow.dev/hook: Test``): never applied by a sync, run here on demand, one cluster
after another's result independent. A release-mode app is tested by ``helm test``.
Each cluster's result is also an event (kind ``test``) in the feed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from appflow.engine.parts import EngineParts
from appflow.engine.stages import release
from appflow.engine.stages.hooks import ClusterTests, run_tests
from appflow.engine.stages.types import Progress, quiet
from appflow.engine.state import AppState, deployed_objects, read_app_state
from appflow.errors import AppflowError, ConfigError, NotFoundError, Where
from appflow.model.records import DeploymentRecord


@dataclass(kw_only=True)
class AppTestReport:
    """What `appflow app test` found on each cluster."""

    app: str
    results: list[ClusterTests] = field(default_factory=list)
    """One per cluster the tests ran on, by cluster name."""
    failed: dict[str, AppflowError] = field(default_factory=dict)
    """Clusters where the tests could not run at all (unreachable, nothing deployed)."""

    @property
    def ok(self) -> bool:
        return not self.failed and all(r.passed for r in self.results)


async def run_app_tests(
    parts: EngineParts,
    name: str,
    *,
    clusters: Sequence[str] = (),
    timeout: float = 300.0,
    progress: Progress = quiet,
) -> AppTestReport:
    """Run app NAME's tests on the clusters it is deployed to (those among CLUSTERS)."""
    state = await asyncio.to_thread(read_app_state, parts.store, name)
    chosen = _deployments(state, clusters)
    report = AppTestReport(app=name)
    limit = asyncio.Semaphore(parts.options.cluster_concurrency)

    async def one(cluster: str, deployment: DeploymentRecord) -> None:
        kube = parts.connections.kube(state.fleet.clusters[cluster])
        async with limit:
            try:
                if deployment.release is not None:
                    result = await release.test(
                        kube, app=name, release=deployment.release, timeout=timeout
                    )
                else:
                    objects = await asyncio.to_thread(deployed_objects, parts.store, deployment)
                    result = await run_tests(
                        kube, name, objects, timeout=timeout, progress=progress
                    )
            except AppflowError as err:
                report.failed[cluster] = err.located(app=name, cluster=cluster)
                return
        report.results.append(result)
        await parts.recorder.event(
            kind="test",
            app=name,
            cluster=cluster,
            outcome="passed" if result.passed else "failed",
            message="; ".join(str(r) for r in result.runs) or "no tests",
        )

    await asyncio.gather(*(one(c, d) for c, d in chosen.items()))
    report.results.sort(key=lambda r: r.cluster)
    return report


def _deployments(state: AppState, clusters: Sequence[str]) -> dict[str, DeploymentRecord]:
    for cluster in clusters:
        if cluster not in state.fleet.clusters:
            raise NotFoundError(f"no cluster named {cluster!r}", hint="see `appflow cluster list`")
        if cluster not in state.deployments:
            raise ConfigError(
                "the app is not deployed on this cluster",
                where=Where(app=state.app.name, cluster=cluster),
                hint=f"appflow sync {state.app.name} --cluster {cluster}",
            )
    chosen = {
        c: d
        for c, d in state.deployments.items()
        if c in state.fleet.clusters and (not clusters or c in clusters)
    }
    if not chosen:
        raise ConfigError(
            "the app is deployed nowhere: nothing to test",
            where=Where(app=state.app.name),
            hint=f"appflow sync {state.app.name}",
        )
    return chosen
