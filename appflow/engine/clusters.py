"""The cluster registry: add, probe, label and remove sync targets, and cluster groups.

A cluster is registered only after appflow has reached it: a kubeconfig that
is unreadable, expired or for the wrong server fails at `cluster add`, not at
the first sync. Its credentials are copied into the data folder (0600) so the
registry does not depend on a file elsewhere that may move or change.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from appflow.engine.recorder import Recorder
from appflow.errors import AppflowError, ConfigError, NotFoundError, Where
from appflow.kube.client import Connection, KubeCluster
from appflow.model.objects import Manifest
from appflow.model.records import (
    ClusterGroupRecord,
    ClusterKind,
    ClusterRecord,
    ClusterState,
    utc_now,
)
from appflow.model.targeting import parse_selector, selector_matches
from appflow.paths import data_dir, write_private
from appflow.secrets.keys import KeyRing
from appflow.store import Store

LABEL_KIND = "appflow.dev/kind"
LABEL_VERSION = "appflow.dev/k8s-version"
LABEL_ARCH = "kubernetes.io/arch"
LABEL_NODES = "appflow.dev/nodes"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class Probe:
    """What a reachability check learned about a cluster."""

    version: str
    distribution: str
    mode: str
    node_count: int
    ready_nodes: int
    arch: str


def credentials_dir() -> Path:
    return data_dir() / "clusters"


def _label_value(text: str) -> str:
    # Label values allow [A-Za-z0-9_.-]; k3s versions carry a '+'.
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.")


def _roles(node: Manifest) -> set[str]:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return {k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")}


def _ready(node: Manifest) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def describe_nodes(version: str, nodes: list[Manifest]) -> Probe:
    """Distribution and EVE-k mode from the version string and the nodes' roles (pure)."""
    distribution = "k3s" if "+k3s" in version else "kubernetes"
    servers = [n for n in nodes if _roles(n) & {"control-plane", "master", "etcd"}]
    if len(nodes) == 1:
        mode = "single-node"
    elif len(servers) >= 3:
        mode = "ha-3"
    elif len(servers) == 2 and len(nodes) >= 3:
        # EVE-k's two-server HA keeps a third, agent-only node as tie-breaker.
        mode = "ha-2+tiebreaker"
    else:
        mode = f"{len(nodes)}-nodes"
    arches = Counter(
        ((n.get("metadata") or {}).get("labels") or {}).get(LABEL_ARCH, "unknown") for n in nodes
    )
    arch = arches.most_common(1)[0][0] if arches else "unknown"
    return Probe(
        version=version,
        distribution=distribution,
        mode=mode,
        node_count=len(nodes),
        ready_nodes=sum(1 for n in nodes if _ready(n)),
        arch=arch,
    )


async def probe(kube: KubeCluster) -> Probe:
    version = await kube.version()
    nodes = await kube.list_objects("v1", "Node")
    return describe_nodes(version, nodes)


def _store_kubeconfig(name: str, source: Path, context: str | None) -> Path:
    try:
        document = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(
            f"cannot read kubeconfig: {err}",
            where=Where(cluster=name, file=str(source)),
        ) from err
    if not isinstance(document, dict) or "clusters" not in document:
        raise ConfigError(
            "this is not a kubeconfig file", where=Where(cluster=name, file=str(source))
        )
    if context:
        known = [c.get("name") for c in document.get("contexts") or []]
        if context not in known:
            raise ConfigError(
                f"context {context!r} is not in the kubeconfig (it has: {', '.join(map(str, known)) or 'none'})",
                where=Where(cluster=name, file=str(source)),
            )
        document["current-context"] = context
    text = yaml.safe_dump(document, sort_keys=False)
    return write_private(credentials_dir() / f"{name}.kubeconfig", text.encode())


async def add_cluster(
    store: Store,
    *,
    name: str,
    kind: ClusterKind,
    kubeconfig: Path,
    context: str | None = None,
    labels: dict[str, str] | None = None,
    timeout: float = 10.0,
    refresh: bool = False,
) -> ClusterRecord:
    """Probe the cluster through KUBECONFIG, then register it; refuse duplicates.

    With REFRESH an existing registration is updated instead (new credentials,
    labels merged): sandbox clusters get new certificates each time they are
    re-created.
    """
    if not _NAME.match(name) or len(name) > 63:
        raise ConfigError(
            f"cluster name {name!r} must be a DNS label (lowercase letters, digits, '-')",
            where=Where(cluster=name),
        )
    try:
        existing = await asyncio.to_thread(store.get_cluster, name)
    except NotFoundError:
        existing = None
    if existing is not None and refresh:
        labels = {**existing.labels, **(labels or {})}
    elif existing is not None:
        raise ConfigError(
            "a cluster with this name is already registered",
            where=Where(cluster=name),
            hint="choose another name, or `appflow cluster remove` it first",
        )
    stored = _store_kubeconfig(name, kubeconfig, context)
    kube = KubeCluster(Connection(name=name, kubeconfig=stored, context=context, timeout=timeout))
    try:
        found = await probe(kube)
    except AppflowError as err:
        stored.unlink(missing_ok=True)
        raise err.located(cluster=name, file=str(kubeconfig)) from None
    finally:
        kube.close()
    auto = {
        LABEL_KIND: kind,
        LABEL_VERSION: _label_value(found.version),
        LABEL_ARCH: found.arch,
        LABEL_NODES: str(found.node_count),
    }
    record = ClusterRecord(
        name=name,
        kind=kind,
        labels={**(labels or {}), **auto},
        kubeconfig_path=str(stored),
        context=context,
        state="Online" if found.ready_nodes else "Suspect",
        state_reason="" if found.ready_nodes else "no node is Ready",
        k8s_version=found.version,
        distribution=found.distribution,
        mode=found.mode,
        node_count=found.node_count,
        last_seen=utc_now(),
    )
    return await Recorder(store).cluster(record)


async def check_cluster(
    store: Store, record: ClusterRecord, *, timeout: float = 10.0
) -> ClusterRecord:
    """Probe a registered cluster and record what was seen (EVE's run states)."""
    if not record.kubeconfig_path:
        return await Recorder(store).cluster(
            replace(record, state="Error", state_reason="no kubeconfig")
        )
    kube = KubeCluster(
        Connection(
            name=record.name,
            kubeconfig=Path(record.kubeconfig_path),
            context=record.context,
            timeout=timeout,
        )
    )
    try:
        found = await probe(kube)
    except AppflowError as err:
        down: ClusterState = "Offline" if err.retryable else "Error"
        return await Recorder(store).cluster(replace(record, state=down, state_reason=err.message))
    finally:
        kube.close()
    state: ClusterState = "Online" if found.ready_nodes == found.node_count else "Suspect"
    reason = (
        "" if state == "Online" else f"{found.ready_nodes} of {found.node_count} nodes are Ready"
    )
    labels = {
        **record.labels,
        LABEL_VERSION: _label_value(found.version),
        LABEL_NODES: str(found.node_count),
    }
    return await Recorder(store).cluster(
        replace(
            record,
            labels=labels,
            state=state,
            state_reason=reason,
            k8s_version=found.version,
            distribution=found.distribution,
            mode=found.mode,
            node_count=found.node_count,
            last_seen=utc_now(),
        )
    )


def remove_cluster(store: Store, name: str, *, force: bool = False) -> None:
    record = store.get_cluster(name)
    Recorder(store).cluster_removed(name, with_deployments=force)
    if record.kubeconfig_path and Path(record.kubeconfig_path).parent == credentials_dir():
        Path(record.kubeconfig_path).unlink(missing_ok=True)
    # Its age keys are credentials too: they go with it.
    KeyRing().remove_owner(scope="cluster", owner=name)


def label_cluster(
    store: Store,
    *,
    name: str,
    set_labels: Mapping[str, str] | None = None,
    remove: Sequence[str] = (),
) -> ClusterRecord:
    """Cluster NAME with SET_LABELS set and the labels named in REMOVE gone (`cluster label`)."""
    record = store.get_cluster(name)
    labels = {k: v for k, v in record.labels.items() if k not in set(remove)}
    labels.update(set_labels or {})
    return store.put_cluster(replace(record, labels=labels))


def members(store: Store, selector: str) -> list[str]:
    """The registered clusters SELECTOR matches, by name."""
    parsed = parse_selector(selector)
    return [c.name for c in store.list_clusters() if selector_matches(parsed, c.labels)]


def add_group(store: Store, *, name: str, selector: str) -> list[str]:
    """Define group NAME as the clusters SELECTOR matches (refused when it does not parse);
    the clusters it matches now."""
    parse_selector(selector)
    store.put_group(ClusterGroupRecord(name=name, selector=selector))
    return members(store, selector)


def list_groups(store: Store) -> list[tuple[ClusterGroupRecord, list[str]]]:
    """Every cluster group with the clusters it matches now."""
    clusters = store.list_clusters()
    found = []
    for g in store.list_groups():
        parsed = parse_selector(g.selector)
        found.append((g, [c.name for c in clusters if selector_matches(parsed, c.labels)]))
    return found


def remove_group(store: Store, *, name: str, keys: KeyRing | None = None) -> None:
    """Delete group NAME; its age keys (credentials of its members) go with it."""
    store.delete_group(name)
    (keys or KeyRing()).remove_owner(scope="group", owner=name)
