"""The operator's policies applied to a sync: which ones hold, what they refuse, and lookup.

The rules are pure (``appflow.model.policy``); this module finds the policies of
an app on a cluster in the store and asks the cluster's discovery which kinds
are namespaced. Guard rails run in the prepare phase, on every target, before
any dry run or write: a revision a policy refuses on one target touches no
cluster. A chart asking for helm's ``lookup`` renders against a read-only view
of the cluster confined to what the policies grant, or not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace

from appflow.engine.stages.live import served_kinds
from appflow.engine.stages.types import DesiredState, SyncBlocked
from appflow.errors import NotFoundError, PolicyError, Where
from appflow.kube.client import KubeCluster
from appflow.model.appdef import AppDefinition, ValuesFrom
from appflow.model.objects import Manifest
from appflow.model.policy import (
    ANY_NAMESPACE,
    Policy,
    applicable_policies,
    guard_rail_violations,
    lookup_grant,
    namespace_allowed,
    readable_namespaces,
    release_permission,
)
from appflow.model.records import ClusterRecord
from appflow.model.targeting import ClusterGroup, parse_selector
from appflow.render.types import RenderRequest
from appflow.store import Store


def read_policies(
    store: Store, *, app: str, clusters: Iterable[ClusterRecord]
) -> dict[str, list[Policy]]:
    """Per cluster, the policies that hold for APP there: the cluster's, its groups', the
    app's repository's. Reads the store: async callers use ``load_policies``."""
    policies = store.list_policies()
    if not policies:
        return {c.name: [] for c in clusters}
    try:
        repo = store.get_app(app).repo
    except NotFoundError:
        repo = None
    groups = {
        g.name: ClusterGroup(name=g.name, selector=parse_selector(g.selector))
        for g in store.list_groups()
    }
    return {
        c.name: applicable_policies(
            policies, cluster=c.name, cluster_labels=c.labels, groups=groups, repo=repo
        )
        for c in clusters
    }


async def load_policies(
    store: Store, *, app: str, clusters: Iterable[ClusterRecord]
) -> dict[str, list[Policy]]:
    """read_policies, in a worker thread."""
    return await asyncio.to_thread(read_policies, store, app=app, clusters=list(clusters))


async def enforce_guard_rails(
    kube: KubeCluster, desired: DesiredState, policies: Sequence[Policy]
) -> None:
    """Raise SyncBlocked listing every object of DESIRED that POLICIES do not allow."""
    if not any(p.namespaces is not None or not p.cluster_scoped for p in policies):
        return
    kinds = {(str(m.get("apiVersion")), str(m.get("kind"))) for m in desired.objects}
    namespaced = await served_kinds(kube, kinds)

    def is_namespaced(m: Manifest) -> bool:
        served = namespaced.get((str(m.get("apiVersion")), str(m.get("kind"))))
        if served is not None:
            return served
        # A kind whose CRD comes with this sync: the render gave it a namespace
        # unless the CRD declares it cluster-scoped.
        return bool((m.get("metadata") or {}).get("namespace"))

    violations = guard_rail_violations(desired.objects, policies, is_namespaced=is_namespaced)
    if violations:
        errors = [
            PolicyError(
                f"{v.message}, by rule {v.rule!r} of the {v.policy}",
                where=Where(app=desired.app, cluster=kube.name, object=v.object),
                hint="the operator sets policies with `appflow policy set`",
            )
            for v in violations
        ]
        raise SyncBlocked(errors, app=desired.app, cluster=kube.name)


@asynccontextmanager
async def lookup_render(
    kube: Callable[[], KubeCluster],
    definition: AppDefinition,
    request: RenderRequest,
    policies: Sequence[Policy],
) -> AsyncIterator[RenderRequest]:
    """REQUEST, rendering against a confined view of the cluster (KUBE gives its client) when
    the chart asks for lookup.

    A chart may ask (``helm.lookup: true`` in its repository); only the operator's
    policies may allow it. Refused: PolicyError naming why and how to allow it.
    """
    if definition.helm is None or not definition.helm.lookup:
        yield request
        return
    grant = lookup_grant(policies, app_namespace=request.namespace or "default")
    if not grant.allowed:
        raise PolicyError(
            f"the chart asks for helm lookup, which is not allowed here: {grant.reason}",
            where=Where(app=request.app, cluster=request.cluster, field="helm.lookup"),
            hint="an operator allows it with `appflow policy set cluster|group|repo NAME "
            "--helm-lookup allow`; or remove helm.lookup from the app",
        )
    async with kube().lookup_view(namespaces=grant.namespaces) as kubeconfig:
        yield replace(request, server_render_kubeconfig=kubeconfig)


def check_release_allowed(policies: Sequence[Policy], *, app: str, cluster: str) -> None:
    """PolicyError unless POLICIES allow installing APP on CLUSTER as a Helm release."""
    allowed, reason = release_permission(policies)
    if not allowed:
        raise PolicyError(
            "helm.mode release runs helm against the cluster with appflow's credentials "
            f"(hooks, lookups that read anything), which is not allowed here: {reason}",
            where=Where(app=app, cluster=cluster, field="helm.mode"),
            hint="an operator allows it with `appflow policy set cluster|group|repo NAME "
            "--helm-release allow`; or render the chart as a template (the default mode)",
        )


def check_values_from(
    refs: Sequence[ValuesFrom],
    *,
    namespace: str,
    policies: Sequence[Policy],
    app: str,
    cluster: str,
) -> None:
    """PolicyError for a valuesFrom entry that reads outside what POLICIES let the app read.

    valuesFrom reads a ConfigMap or Secret with appflow's credentials and renders it
    into the app's objects: from another namespace that would copy what the app's
    authors may not see into what they deploy.
    """
    readable = readable_namespaces(policies, app_namespace=namespace)
    for ref in refs:
        ns = ref.namespace or namespace
        if ANY_NAMESPACE not in readable and not namespace_allowed(ns, readable):
            raise PolicyError(
                f"helm.valuesFrom reads {ref.kind} {ns}/{ref.name}, outside the namespaces this "
                f"app may read ({', '.join(sorted(readable))})",
                where=Where(app=app, cluster=cluster, field="helm.valuesFrom"),
                hint=f"an operator allows it with `appflow policy set cluster|group|repo NAME "
                f"--read-namespace {ns}`",
            )
