"""Desired state for pull-mode clusters: rendered on the hub, staged, released (docs/hub.md §7).

A pull cluster's agent applies what its ``AppFlowDeployment`` names; the AppFlow's owner writes
that. For each pull target it renders the app (the engine's ``render_request_for``, with the render
cache shared by content digest: 200 clusters in 3 environments are 3 renders), the revision
stores each render once as content, and the owner *stages* it in every target's Deployment
(``spec.staged``: revision, render digest, content index, apply options). Each agent dry-runs
a staged revision and reports ``Validated`` or ``Rejected``; once every online target
validated, the owner *releases* it (``spec.released``; Offline clusters as the app's
``rollout.offlineTargets`` says), and only a released revision is applied. A rejection anywhere
releases it nowhere.

An app with SOPS-encrypted inputs (values files, files of its folder, a catalog install's
values) is not rendered here: the hub holds no pull cluster's key. For such a cluster the
revision holds the app's *render inputs* instead (``engine.render_inputs``: the request and
the files, ciphertext as committed) and the desired state says ``renderOn: agent``; the agent
decrypts, renders, validates and applies (``appflow.agent.render``).

A pull cluster's capabilities (what Helm renders against) are what its agent reported in the
Cluster's status; before it reported, the render assumes the hub's own Kubernetes version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from appflow.engine.connections import Connections
from appflow.engine.desired import render_request_for, request_for
from appflow.engine.parts import EngineParts
from appflow.engine.render_inputs import inputs_objects
from appflow.engine.sources import Source
from appflow.engine.stages.types import DesiredState
from appflow.engine.state import FleetState
from appflow.errors import AppflowError, ConfigError, ConflictError, Where
from appflow.hub.store import HubStore
from appflow.kube.client import KubeCluster
from appflow.model import agent as rules
from appflow.model import content as fmt
from appflow.model import resources as res
from appflow.model.appdef import AppDefinition, OfflinePolicy
from appflow.model.capabilities import Capabilities
from appflow.model.hub import API_VERSION, cluster_namespace
from appflow.model.records import AppRecord, ClusterRecord, RepoRecord, RevisionRecord
from appflow.render.types import RenderRequest

log = logging.getLogger("appflow.hub.publish")

WRITES_AT_ONCE = 16


class HubConnections(Connections):
    """Connections whose pull-mode clusters are known by what their agents reported."""

    def __init__(self, *args: Any, store: HubStore, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store = store
        self.reported: dict[str, Capabilities] = {}
        """Per pull cluster, the capabilities its Cluster's status holds."""
        self.default: Capabilities | None = None

    async def capabilities(self, cluster: ClusterRecord) -> Capabilities:
        if cluster.kubeconfig_path:
            return await super().capabilities(cluster)
        found = self.reported.get(cluster.name)
        if found is not None:
            return found
        if self.default is None:
            self.default = Capabilities(kube_version=await self.store.kube.version())
        return self.default


def capabilities_of(obj: Mapping[str, Any]) -> Capabilities | None:
    """What a pull Cluster's agent reported it serves (None: nothing yet)."""
    status = obj.get("status") or {}
    versions = (status.get("capabilities") or {}).get("apiVersions") or []
    version = status.get("kubernetesVersion")
    if not version:
        return None
    return Capabilities(kube_version=str(version), api_versions=tuple(sorted(map(str, versions))))


@dataclass(kw_only=True)
class PullPlan:
    """An app rendered for its pull-mode targets."""

    source: Source
    definition: AppDefinition
    clusters: dict[str, ClusterRecord]
    desired: dict[str, DesiredState] = field(default_factory=dict)
    """Per cluster, the render (or, rendered on the agent, the render inputs)."""
    blocked: list[AppflowError] = field(default_factory=list)


async def render_pull(
    parts: EngineParts,
    app: AppRecord,
    repo: RepoRecord | None,
    *,
    fleet: FleetState,
    commit: str | None,
) -> PullPlan | None:
    """APP rendered for each pull cluster it targets (None: it targets none)."""
    resolver = parts.resolvers.of(app)
    source = await resolver.fetch(app, repo, commit=commit, store=parts.store)
    definition = await resolver.definition(app, source)
    targets = {c.name: c for c in fleet.targets(definition)}
    if not targets:
        return None
    plan = PullPlan(source=source, definition=definition, clusters=targets)

    async def one(cluster: ClusterRecord) -> None:
        try:
            request = await request_for(
                definition, source, cluster, groups=fleet.groups, connections=parts.connections
            )
            if await parts.secrets.encrypted_inputs(definition, request):
                plan.desired[cluster.name] = await _agent_render(definition, request)
                return
            _, plan.desired[cluster.name] = await render_request_for(
                definition,
                request,
                cluster,
                groups=fleet.groups,
                kube=lambda: parts.connections.kube(cluster),
                cache=parts.render_cache,
                secrets=parts.secrets,
            )
        except AppflowError as err:
            plan.blocked.append(err.located(app=app.name, cluster=cluster.name))

    await asyncio.gather(*(one(c) for c in targets.values()))
    return plan


async def _agent_render(definition: AppDefinition, request: RenderRequest) -> DesiredState:
    """What a pull cluster renders itself: the app's render inputs, in a render's place.

    The hub holds no pull cluster's age key (each agent made its own), so an app with
    encrypted inputs cannot be rendered here without plaintext reaching the hub; its agent
    decrypts and renders them (``appflow.agent.render``), validates and applies.
    """
    if definition.helm is not None and definition.helm.lookup:
        raise ConfigError(
            "the chart asks for helm lookup and its values are encrypted: a pull cluster renders "
            "such an app itself, where lookup is not available",
            where=Where(app=definition.name, cluster=request.cluster, field="helm.lookup"),
            hint="remove helm.lookup, or keep the encrypted values out of this chart",
        )
    objects = tuple(await asyncio.to_thread(inputs_objects, request, definition))
    return DesiredState(
        app=definition.name,
        cluster=request.cluster,
        objects=objects,
        revision=fmt.render_digest(objects),
    )


def apply_options(definition: AppDefinition) -> dict[str, Any]:
    """How an agent applies DEFINITION's renders (``spec.staged.options``)."""
    policy = definition.sync_policy
    return {
        "namespace": definition.namespace,
        "prune": policy.prune,
        "selfHeal": policy.self_heal,
        "forceConflicts": policy.force_conflicts,
    }


def _desired_state(
    revision: RevisionRecord, line: Mapping[str, Any], options: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "revision": revision.number,
        "renderDigest": str(line["renderDigest"]),
        "index": str(line["index"]),
        "sourceRef": res.source_ref_text(revision.source_ref),
        "renderOn": str(line.get("renderOn") or "hub"),
        "options": dict(options),
    }


async def stage(
    store: HubStore,
    kube: KubeCluster,
    *,
    app: str,
    revision: RevisionRecord,
    plan: PullPlan,
    deployments: Sequence[Mapping[str, Any]],
) -> int:
    """Stage REVISION in every pull target's AppFlowDeployment; how many were written."""
    options = apply_options(plan.definition)
    return await stage_revision(
        store,
        kube,
        app=app,
        revision=revision,
        options={c: options for c in plan.desired},
        deployments=deployments,
    )


async def stage_revision(
    store: HubStore,
    kube: KubeCluster,
    *,
    app: str,
    revision: RevisionRecord,
    options: Mapping[str, Mapping[str, Any]],
    deployments: Sequence[Mapping[str, Any]],
) -> int:
    """Stage REVISION's render for each cluster of OPTIONS (with its apply options) in that
    cluster's AppFlowDeployment; how many were written.

    DEPLOYMENTS are the app's AppFlowDeployments as last seen. One write per Deployment: a
    create with the whole spec, or a patch of ``spec.staged`` when the Deployment exists (a
    Deployment already staged at this revision is left alone).
    """
    listing = await asyncio.to_thread(store.revision_listing, app, revision.number)
    existing = {str((o.get("spec") or {}).get("cluster")): o for o in deployments}
    limit = asyncio.Semaphore(WRITES_AT_ONCE)
    written = 0

    async def one(cluster: str) -> None:
        nonlocal written
        line = listing.get(cluster)
        if line is None:
            return
        staged = _desired_state(revision, line, options[cluster])
        current = existing.get(cluster)
        if current is not None and ((current.get("spec") or {}).get("staged") or {}) == staged:
            return
        namespace = cluster_namespace(store.workspace, cluster)
        async with limit:
            if current is None:
                manifest = res.deployment_resource(
                    app, cluster, workspace=store.workspace, namespace=namespace
                )
                manifest["spec"]["staged"] = staged
                if await kube.create(manifest) is not None:
                    written += 1
                    return
                # It exists (the watch had not shown it yet): written only if it differs.
                found = await kube.get(
                    API_VERSION, "AppFlowDeployment", res.deployment_name(app), namespace
                )
                if ((found or {}).get("spec") or {}).get("staged") == staged:
                    return
            await kube.patch(
                API_VERSION,
                "AppFlowDeployment",
                res.deployment_name(app),
                namespace,
                {"spec": {"staged": staged}},
            )
            written += 1

    await asyncio.gather(*(one(c) for c in options))
    return written


def release_decision(
    deployments: Sequence[Mapping[str, Any]],
    *,
    offline: Set[str] = frozenset(),
    policy: OfflinePolicy = "wait",
) -> tuple[list[str], dict[str, str]]:
    """Which staged Deployments may be released now, and the rejections (by cluster).

    The rule is ``model.agent.release_decision``: a rejection anywhere releases the revision
    nowhere (the promise of a fleet-wide dry run); every other target must have validated it,
    except those on OFFLINE clusters, which follow the app's ``rollout.offlineTargets``
    (POLICY). A validation counts only for the revision it names.
    """
    results: dict[str, tuple[str | None, str]] = {}
    for d in deployments:
        spec, status = d.get("spec") or {}, d.get("status") or {}
        wanted = spec.get("staged")
        if not wanted or (spec.get("released") or {}) == wanted:
            continue
        result = status.get("staged") or {}
        verdict = result.get("result") if result.get("revision") == wanted.get("revision") else None
        results[str(spec.get("cluster"))] = (
            verdict if verdict in ("Validated", "Rejected") else None,
            str(result.get("message") or "rejected"),
        )
    online = set(results) - set(offline)
    decision = rules.release_decision(results, online=online, policy=policy)
    if decision.blocked:
        return [], dict(decision.rejected)
    return sorted(decision.release), {}


async def release(
    kube: KubeCluster,
    *,
    app: str,
    deployments: Sequence[Mapping[str, Any]],
    offline: Set[str] = frozenset(),
    policy: OfflinePolicy = "wait",
) -> dict[str, str]:
    """Release what is staged for APP (whose AppFlowDeployments are DEPLOYMENTS, as last
    seen) where ``release_decision`` allows it; the rejections."""
    names, rejected = release_decision(deployments, offline=offline, policy=policy)
    by_cluster = {str((d.get("spec") or {}).get("cluster")): d for d in deployments}
    for cluster in names:
        obj = by_cluster[cluster]
        meta = obj.get("metadata") or {}
        try:
            await kube.patch(
                API_VERSION,
                "AppFlowDeployment",
                str(meta.get("name")),
                str(meta.get("namespace")),
                {
                    "metadata": {"resourceVersion": meta.get("resourceVersion")},
                    "spec": {"released": obj["spec"]["staged"]},
                },
            )
        except ConflictError:
            log.info("%s on %s changed while releasing; the next pass releases it", app, cluster)
    return rejected
