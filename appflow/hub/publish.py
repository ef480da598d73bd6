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
from collections.abc import Collection, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from typing import Any

from appflow.engine.connections import Connections
from appflow.engine.desired import render_request_for, request_for
from appflow.engine.parts import EngineParts
from appflow.engine.recorder import Recorder
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
from appflow.model.appdef import AppDefinition, OfflinePolicy, RolloutSpec
from appflow.model.capabilities import Capabilities
from appflow.model.deps import held_by_dependencies
from appflow.model.hub import API_VERSION, cluster_namespace
from appflow.model.records import (
    AppRecord,
    ClusterRecord,
    RepoRecord,
    RevisionRecord,
    RolloutRecord,
    utc_now,
)
from appflow.model.rollout import (
    PullTarget,
    delivered,
    is_progressive,
    plan_rollout,
    previous_revision,
    pull_step,
)
from appflow.model.targeting import ClusterGroup, ClusterInfo
from appflow.render.cache import render_key
from appflow.render.types import RenderRequest

log = logging.getLogger("appflow.hub.publish")

WRITES_AT_ONCE = 16
DEPENDENCY_RECHECK = 10.0
"""Seconds after which a release held by dependsOn is decided again."""


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
    requests: dict[str, RenderRequest] = {}

    async def prepare(cluster: ClusterRecord) -> None:
        try:
            request = await request_for(
                definition, source, cluster, groups=fleet.groups, connections=parts.connections
            )
            if await parts.secrets.encrypted_inputs(definition, request):
                plan.desired[cluster.name] = await _agent_render(definition, request)
                return
            requests[cluster.name] = request
        except AppflowError as err:
            plan.blocked.append(err.located(app=app.name, cluster=cluster.name))

    async def render_for(cluster: ClusterRecord) -> DesiredState | None:
        try:
            _, state = await render_request_for(
                definition,
                requests[cluster.name],
                cluster,
                groups=fleet.groups,
                kube=lambda: parts.connections.kube(cluster),
                cache=parts.render_cache,
                secrets=parts.secrets,
            )
        except AppflowError as err:
            plan.blocked.append(err.located(app=app.name, cluster=cluster.name))
            return None
        plan.desired[cluster.name] = state
        return state

    async def render_group(members: list[ClusterRecord]) -> None:
        # The group's clusters have one render key: the first renders, the others get its
        # objects (one render and no per-cluster copy, where the render cache would decode
        # a copy for each of them). A render that saw secret values is not shared.
        first = await render_for(members[0])
        for cluster in members[1:]:
            if first is None or first.sensitive:
                await render_for(cluster)
            else:
                plan.desired[cluster.name] = replace(first, cluster=cluster.name)

    await asyncio.gather(*(prepare(c) for c in targets.values()))
    await asyncio.gather(
        *(render_group(m) for m in await share_renders(definition, requests, targets))
    )
    return plan


async def share_renders(
    definition: AppDefinition,
    requests: Mapping[str, RenderRequest],
    clusters: Mapping[str, ClusterRecord],
) -> list[list[ClusterRecord]]:
    """The clusters of REQUESTS grouped by what their render depends on (the render cache's
    key: 200 clusters in 3 environments are 3 groups). A chart that uses helm lookup reads
    each cluster: every cluster is a group of its own."""
    if definition.helm is not None and definition.helm.lookup:
        return [[clusters[name]] for name in sorted(requests)]

    def keys() -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for name in sorted(requests):
            grouped.setdefault(render_key(requests[name]), []).append(name)
        return grouped

    try:
        grouped = await asyncio.to_thread(keys)
    except AppflowError:
        # A values file that cannot be read: each cluster's render says so, in its words.
        return [[clusters[name]] for name in sorted(requests)]
    return [[clusters[n] for n in names] for names in grouped.values()]


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
    decision = verdicts(deployments, offline=offline, policy=policy)
    if decision.blocked:
        return [], dict(decision.rejected)
    return sorted(decision.release), {}


def verdicts(
    deployments: Sequence[Mapping[str, Any]],
    *,
    offline: Set[str],
    policy: OfflinePolicy,
    revision: int | None = None,
    targets: Collection[str] = (),
) -> rules.Release:
    """``model.agent.release_decision`` over the staged, not yet released DEPLOYMENTS: each
    agent's verdict counts only for the revision its Deployment has staged.

    With REVISION, only Deployments staged at it count, and each of TARGETS whose Deployment
    does not show it staged is pending: DEPLOYMENTS from a watch can lag behind the stage's
    own writes, and a target the view does not show yet (or shows with an older revision's
    verdict) must hold the release, not pass as validated or refuse the new revision.
    """
    results: dict[str, tuple[str | None, str]] = {}
    shown: set[str] = set()
    for d in deployments:
        spec, status = d.get("spec") or {}, d.get("status") or {}
        wanted = spec.get("staged")
        if revision is not None and (wanted or {}).get("revision") != revision:
            continue
        if wanted:
            shown.add(str(spec.get("cluster")))
        if not wanted or (spec.get("released") or {}) == wanted:
            continue
        result = status.get("staged") or {}
        verdict = result.get("result") if result.get("revision") == wanted.get("revision") else None
        results[str(spec.get("cluster"))] = (
            verdict if verdict in ("Validated", "Rejected") else None,
            str(result.get("message") or "rejected"),
        )
    for cluster in set(targets) - shown:
        results[cluster] = (None, "")
    online = set(results) - set(offline)
    return rules.release_decision(results, online=online, policy=policy)


@dataclass(frozen=True, kw_only=True)
class Released:
    """What one pass of the release rule did."""

    released: tuple[str, ...] = ()
    rejected: Mapping[str, str] = field(default_factory=dict)
    """Targets whose agent's dry run refused the staged revision, with its words."""
    rolled_back: Mapping[str, int] = field(default_factory=dict)
    waiting: Mapping[str, str] = field(default_factory=dict)
    """Validated targets held back by dependsOn: what each waits for."""
    recheck: float | None = None
    """Seconds after which the rule should run again though nothing changed (a health
    timeout of a rollout partition in progress)."""


def _history(d: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [e for e in (d.get("status") or {}).get("history") or () if isinstance(e, dict)]


def pull_targets(
    deployments: Sequence[Mapping[str, Any]], *, revision: int, offline: Set[str]
) -> dict[str, PullTarget]:
    """Per cluster staged at REVISION, what its Deployment shows (``model.rollout.pull_step``)."""
    out: dict[str, PullTarget] = {}
    for d in deployments:
        spec, status = d.get("spec") or {}, d.get("status") or {}
        if int((spec.get("staged") or {}).get("revision") or 0) != revision:
            continue
        history = _history(d)
        applied = status.get("appliedRevision")
        tried = history[-1].get("revision") if history else None
        out[str(spec.get("cluster"))] = PullTarget(
            released=(spec.get("released") or {}).get("revision"),
            applied=applied if isinstance(applied, int) else None,
            tried=tried if isinstance(tried, int) else None,
            state=str(status.get("state") or ""),
            message=str(status.get("message") or ""),
            online=str(spec.get("cluster")) not in offline,
            previous=previous_revision(history, revision=revision),
        )
    return out


def offline_clusters(clusters: Sequence[Mapping[str, Any]]) -> set[str]:
    """The pull clusters of CLUSTERS with no agent to wait for: Offline, or never connected;
    ``rollout.offlineTargets`` decides for them (``model.agent.unheard``)."""
    return {
        res.name_of(c)
        for c in clusters
        if res.cluster_mode(c) == "pull" and rules.unheard(c.get("status") or {})
    }


async def release(
    store: HubStore,
    kube: KubeCluster,
    *,
    app: str,
    deployments: Sequence[Mapping[str, Any]],
    clusters: Sequence[Mapping[str, Any]],
    groups: Mapping[str, ClusterGroup],
    rollout: RolloutSpec,
    recorded: RolloutRecord | None,
    dependencies: Mapping[str, frozenset[str]] | None = None,
    dependency_states: Mapping[str, Mapping[str, str | None]] | None = None,
) -> Released:
    """The release rule: release what is staged for APP (whose AppFlowDeployments are
    DEPLOYMENTS and the hub's Clusters CLUSTERS, as last seen) as far as it may go now.

    First the fleet-wide validation (``release_decision``: a rejection anywhere releases it
    nowhere; every online target validated; Offline clusters as ``rollout.offlineTargets``
    says), then the app's rollout (``model.rollout.pull_step``: partition by partition, gated
    on Ready, held by a pause, rolled back on failure), recorded in ``status.rollout`` as
    push mode records it. A target whose DEPENDENCIES (dependsOn: app -> accepted states)
    are not met on it, by DEPENDENCY_STATES (per cluster, each dependency's Deployment state
    there), waits, as push mode holds it. A rollback to an earlier revision is a release too:
    stage that revision, then call this.
    """
    offline = offline_clusters(clusters)
    names, rejected = release_decision(deployments, offline=offline, policy=rollout.offline_targets)
    if rejected:
        return Released(rejected=rejected)
    revision = max(
        (
            int(((d.get("spec") or {}).get("staged") or {}).get("revision") or 0)
            for d in deployments
        ),
        default=0,
    )
    if not revision:
        return Released()
    targets = pull_targets(deployments, revision=revision, offline=offline)
    modes = {res.name_of(c): res.cluster_mode(c) for c in clusters}
    if is_progressive(rollout) and any(
        modes.get(str((d.get("spec") or {}).get("cluster"))) == "push"
        and ((d.get("status") or {}).get("display") or {}).get("state") != "Removed"
        for d in deployments
    ):
        # Push targets too: the engine's rollout runs both kinds in one partition order and
        # keeps status.rollout (``hub.mixed``); here only what it delivered (a latecomer back
        # online, a paused rollout's earlier partitions) is released again.
        allowed = delivered(recorded, revision=revision) if recorded is not None else frozenset()
        names = [c for c in names if c in allowed]
        rollout, recorded = replace(rollout, partitions=(), max_unavailable="100%"), None
    waiting = held_by_dependencies(
        set(names) & set(targets), dependencies or {}, dependency_states or {}
    )
    labels = {res.name_of(c): dict((c.get("metadata") or {}).get("labels") or {}) for c in clusters}
    partitions = plan_rollout(
        rollout, [ClusterInfo(name=c, labels=labels.get(c, {})) for c in targets], groups
    )
    step = pull_step(
        rollout,
        partitions,
        app=app,
        revision=revision,
        targets=targets,
        releasable=(set(names) & set(targets)) - set(waiting),
        recorded=recorded,
        now=utc_now(),
    )
    by_cluster = {str((d.get("spec") or {}).get("cluster")): d for d in deployments}
    done = [c for c in step.release if await release_one(kube, app, by_cluster[c], None)]
    back = await release_earlier(store, kube, app=app, by_cluster=by_cluster, to=step.roll_back)
    if step.record is not None and _moved(recorded, step.record, released=bool(done)):
        await Recorder(store).rollout(step.record)
    # A dependency owned by another replica changes outside this one's watch: look again.
    recheck = (
        min(step.recheck or DEPENDENCY_RECHECK, DEPENDENCY_RECHECK) if waiting else step.recheck
    )
    return Released(released=tuple(done), rolled_back=back, waiting=waiting, recheck=recheck)


async def release_earlier(
    store: HubStore,
    kube: KubeCluster,
    *,
    app: str,
    by_cluster: Mapping[str, Mapping[str, Any]],
    to: Mapping[str, int],
) -> dict[str, int]:
    """autoRollback of pull clusters: release to each cluster of TO (whose Deployments are
    BY_CLUSTER) the earlier revision given, with its staged options; what was released."""
    back: dict[str, int] = {}
    listings = {
        n: await asyncio.to_thread(store.revision_listing, app, n) for n in set(to.values())
    }
    for cluster, number in sorted(to.items()):
        line = listings[number].get(cluster)
        if line is None:
            log.warning("%s on %s: revision %d is no longer kept", app, cluster, number)
            continue
        obj = by_cluster[cluster]
        # The staged options with the earlier render (its source is in the history).
        old = {k: v for k, v in obj["spec"]["staged"].items() if k != "sourceRef"}
        old.update(revision=number, renderDigest=line["renderDigest"], index=line["index"])
        if await release_one(kube, app, obj, old):
            back[cluster] = number
    return back


def _moved(before: RolloutRecord | None, after: RolloutRecord, *, released: bool) -> bool:
    """Whether AFTER is worth a write: it says something new, or a batch went out (the
    write restarts the partition's health clock)."""
    if before is None or released:
        return True
    return replace(before, updated_at=after.updated_at) != after


async def release_one(
    kube: KubeCluster, app: str, obj: Mapping[str, Any], desired: Mapping[str, Any] | None
) -> bool:
    """Release DESIRED (the staged revision when None) to one Deployment; False when it
    changed meanwhile (the next pass decides again)."""
    meta = obj.get("metadata") or {}
    try:
        await kube.patch(
            API_VERSION,
            "AppFlowDeployment",
            str(meta.get("name")),
            str(meta.get("namespace")),
            {
                "metadata": {"resourceVersion": meta.get("resourceVersion")},
                "spec": {"released": dict(desired or obj["spec"]["staged"])},
            },
        )
    except ConflictError:
        cluster = (obj.get("spec") or {}).get("cluster")
        log.info("%s on %s changed while releasing; the next pass releases it", app, cluster)
        return False
    return True
