"""The agent's own cluster: where it keeps its state and what it applies with.

``Local`` is the seam between the agent's hub-facing logic (``appflow.agent.runner``) and its
cluster. ``KubeLocal`` is the real one: state in Secrets (``appflow.agent.edge``), and every
dry run, apply, prune and health check through the engine's own sync stages, the same code
as push mode (one implementation, not a copy). bench/agents.py puts a recorder in its place
to run a thousand agents in one process against a real hub.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from appflow.agent import edge
from appflow.agent.facts import gather_facts
from appflow.agent.secrets import Revealed
from appflow.engine.stages.execute import execute
from appflow.engine.stages.health import assess_health
from appflow.engine.stages.inventory import delete_inventory
from appflow.engine.stages.prepare import prepare
from appflow.engine.stages.types import DesiredState, SyncOptions, SyncResult
from appflow.errors import AppflowError
from appflow.kube.client import KubeCluster
from appflow.model.agent import Desired
from appflow.model.hooks import hook_record_among, hook_record_apart
from appflow.model.plan import Action
from appflow.model.registration import ClusterFacts


@dataclass(frozen=True, kw_only=True)
class LocalSync:
    """One sync on the agent's cluster, as the agent reports it."""

    state: str
    """The Deployment state (Ready, NotReady, ErrApplied, Modified, ...)."""
    message: str = ""
    changed: bool = False
    """Something was created, configured or pruned."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """Objects per action: created, configured, unchanged, pruned."""
    resource_counts: Mapping[str, int] = field(default_factory=dict)
    failing: Sequence[Mapping[str, str]] = ()
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    inventory: int = 0
    ok: bool = True


class Local(Protocol):
    """The agent's cluster, as the agent's logic uses it."""

    name: str
    content: edge.EdgeContent

    async def facts(self, *, recipients: tuple[str, ...]) -> ClusterFacts: ...
    async def read_config(self) -> edge.AgentConfig | None: ...
    async def write_config(self, config: edge.AgentConfig) -> None: ...
    async def load_deployments(self) -> dict[str, edge.DeploymentState]: ...
    async def save_deployment(self, state: edge.DeploymentState) -> None: ...
    async def forget_deployment(self, name: str) -> None: ...
    async def validate(self, app: str, desired: Desired, objects: Revealed) -> str | None:
        """None when every object passes the API server's dry run; else why not."""

    async def sync(
        self,
        app: str,
        desired: Desired,
        objects: Revealed,
        *,
        fingerprints: Mapping[str, str],
        heal: bool,
    ) -> LocalSync:
        """Apply OBJECTS (or, without HEAL, only report drift as Modified)."""

    async def uninstall(self, app: str) -> LocalSync: ...


def _report(result: SyncResult) -> LocalSync:
    plan = result.plan
    counts = {
        "created": len(plan.of(Action.CREATE)),
        "configured": len(plan.of(Action.CONFIGURE)),
        "unchanged": len(plan.of(Action.UNCHANGED)),
        "pruned": len(result.pruned),
    }
    message = "; ".join(str(e) for e in result.errors[:3]) or result.health.message
    return LocalSync(
        state=result.state,
        message=message,
        changed=bool(counts["created"] or counts["configured"] or counts["pruned"]),
        counts=counts,
        resource_counts=result.resource_counts.as_dict(),
        failing=[{"object": f.object, "message": f.message} for f in result.failing[:20]],
        fingerprints=hook_record_among(result.fingerprints, result.hook_record),
        inventory=len(result.inventory.entries),
        ok=result.ok,
    )


def _options(desired: Desired) -> SyncOptions:
    options = desired.options
    return SyncOptions(
        prune=bool(options.get("prune", True)),
        force_conflicts=bool(options.get("forceConflicts", False)),
    )


class KubeLocal:
    """The agent's cluster through a KubeCluster (in-cluster, or --kubeconfig)."""

    def __init__(self, kube: KubeCluster) -> None:
        self.kube = kube
        self.content = edge.EdgeContent(kube)

    @property
    def name(self) -> str:
        return self.kube.name

    @name.setter
    def name(self, value: str) -> None:
        self.kube.name = value

    async def facts(self, *, recipients: tuple[str, ...]) -> ClusterFacts:
        return await gather_facts(self.kube, recipients=recipients)

    async def read_config(self) -> edge.AgentConfig | None:
        return await edge.read_config(self.kube)

    async def write_config(self, config: edge.AgentConfig) -> None:
        await edge.write_config(self.kube, config)

    async def load_deployments(self) -> dict[str, edge.DeploymentState]:
        return await edge.load_deployments(self.kube)

    async def save_deployment(self, state: edge.DeploymentState) -> None:
        await edge.save_deployment(self.kube, state)

    async def forget_deployment(self, name: str) -> None:
        await edge.forget_deployment(self.kube, name)

    def _state(self, app: str, desired: Desired, objects: Revealed) -> DesiredState:
        return DesiredState(
            app=app,
            cluster=self.name,
            objects=objects.objects,
            revision=desired.render_digest or desired.index,
            redactor=objects.redactor,
        )

    async def validate(self, app: str, desired: Desired, objects: Revealed) -> str | None:
        try:
            await prepare(
                self.kube,
                self._state(app, desired, objects),
                previous_inventory=None,
                fingerprints={},
                options=_options(desired),
            )
        except AppflowError as err:
            return str(err)
        return None

    async def sync(
        self,
        app: str,
        desired: Desired,
        objects: Revealed,
        *,
        fingerprints: Mapping[str, str],
        heal: bool,
    ) -> LocalSync:
        options = _options(desired)
        # The edge state keeps the hook record among the fingerprints (its own format).
        applied, hook_record = hook_record_apart(fingerprints)
        try:
            prepared = await prepare(
                self.kube,
                self._state(app, desired, objects),
                previous_inventory=None,
                fingerprints=applied,
                hook_record=hook_record,
                options=options,
            )
        except AppflowError as err:
            return LocalSync(state="ErrApplied", message=str(err), ok=False)
        plan = prepared.plan
        drift = plan.of(Action.CONFIGURE) + plan.of(Action.CREATE)
        if not heal and drift:
            # Reported, not corrected (the app does not ask for selfHeal): Fleet's Modified.
            _, failing, counts = await assess_health(self.kube, app, prepared.objects)
            return LocalSync(
                state="Modified",
                message="changed on the cluster: " + ", ".join(str(c.ref) for c in drift[:5]),
                resource_counts=replace(counts, modified=len(drift)).as_dict(),
                failing=[{"object": f.object, "message": f.message} for f in failing[:20]],
                fingerprints=fingerprints,
            )
        return _report(await execute(self.kube, prepared, options=options))

    async def uninstall(self, app: str) -> LocalSync:
        empty = DesiredState(app=app, cluster=self.name, objects=(), revision="")
        options = SyncOptions(prune=True)
        try:
            prepared = await prepare(
                self.kube, empty, previous_inventory=None, fingerprints={}, options=options
            )
        except AppflowError as err:
            return LocalSync(state="ErrApplied", message=str(err), ok=False)
        result = _report(await execute(self.kube, prepared, options=options))
        if result.ok and not result.inventory:
            await delete_inventory(self.kube, app)
        return result
