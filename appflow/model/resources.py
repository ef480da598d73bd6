"""appflow's records as the hub's custom resources, and back (docs/hub.md §3).

One mapping, pure, for everything that reads or writes the hub: ``appflow.hub.store`` (the
``Store`` protocol over the resources) writes what these functions make and reads records
back through them. What a resource has no field for (an app's sync policy and catalog install
data as last read, a repository's credential references) travels in one annotation, encoded by
``appflow.model.codec``, so a record survives the trip unchanged; a resource made with kubectl
or Terraform has no such annotation and its spec decides.

Large or per-object data is never in the resources themselves: a Deployment's inventory and
fingerprints, a revision's renders are content (``appflow.model.content``) and the resources
name them by digest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from appflow.errors import StoreError, Where
from appflow.model.appdef import LabelRequirement, LabelSelector, Operator
from appflow.model.codec import JsonObject, JsonValue, from_json, to_json
from appflow.model.hooks import HOOKS_KEY
from appflow.model.hub import API_VERSION, LABEL_CLUSTER, LABEL_WORKSPACE, MANAGED_BY
from appflow.model.inventory import InventoryEntry
from appflow.model.objects import Manifest
from appflow.model.records import (
    AppRecord,
    CatalogChart,
    CatalogRepoRecord,
    ClusterGroupRecord,
    ClusterRecord,
    ClusterState,
    DeploymentRecord,
    DeploymentState,
    DeploymentSummary,
    EventRecord,
    FailingObject,
    GitCommit,
    HelmReleaseRef,
    HookRecord,
    LocalContent,
    RepoCredentials,
    RepoRecord,
    ResourceCounts,
    RevisionRecord,
    RolloutPartitionRecord,
    RolloutRecord,
    SourceRef,
    SyncRecord,
    utc_now,
)
from appflow.model.targeting import format_selector, parse_selector

LABEL_APP = "appflow.dev/app"
ANNOTATION_RECORD = "appflow.dev/record"
"""The codec's JSON of what a record holds beyond the resource's own fields."""
RECORD_VERSION = 1
"""The version of that JSON this appflow writes; a newer one it refuses to read (a newer
appflow wrote fields this one would silently drop on its next write)."""
SECRET_KEY_KUBECONFIG = "kubeconfig"
SECRET_KEY_WEBHOOK = "secret"
FAILING_LIMIT = 20
"""Failing objects kept in a Deployment's status (the CRD allows no more)."""
EVENT_NOTE_LIMIT = 1024
"""events.k8s.io/v1 refuses a longer note."""


class UnsupportedVersionError(StoreError):
    """A resource was written by a newer appflow, in a form this one cannot read whole."""


def stamp(moment: datetime | None) -> str | None:
    """A record time as the resources write it: RFC 3339 in UTC."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _part(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name", ""))


def created_at(obj: Mapping[str, Any]) -> datetime:
    return parse_time(_meta(obj).get("creationTimestamp")) or utc_now()


def _annotation_record(obj: Mapping[str, Any]) -> JsonObject:
    text = (_meta(obj).get("annotations") or {}).get(ANNOTATION_RECORD)
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as err:
        raise StoreError(
            f"annotation {ANNOTATION_RECORD} is not JSON: {err}",
            where=Where(object=f"{obj.get('kind')}/{name_of(obj)}"),
            hint="it is appflow's own: remove it, and the resource's spec decides",
        ) from err
    if not isinstance(data, dict):
        return {}
    version = data.pop("recordVersion", RECORD_VERSION)
    if not isinstance(version, int) or version > RECORD_VERSION:
        raise UnsupportedVersionError(
            f"annotation {ANNOTATION_RECORD} has version {version!r}; this appflow reads "
            f"versions up to {RECORD_VERSION}",
            where=Where(object=f"{obj.get('kind')}/{name_of(obj)}"),
            hint="a newer appflow wrote it: upgrade the controllers and the CLI",
        )
    return cast(JsonObject, data)


def _compact(data: Mapping[str, Any]) -> dict[str, Any]:
    """DATA without None values and empty strings (optional fields the CRDs type strictly)."""
    return {k: v for k, v in data.items() if v is not None and v != ""}


def resource(
    kind: str, name: str, namespace: str, *, labels: Mapping[str, str] | None = None
) -> Manifest:
    """The head of a resource of the hub: apiVersion, kind and metadata."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels if labels is not None else MANAGED_BY),
        },
    }


# -- clusters ------------------------------------------------------------------------------


def cluster_secret_name(cluster: str) -> str:
    return f"appflow-kubeconfig-{cluster}"


def cluster_resource(
    record: ClusterRecord, *, workspace: str, secret: str | None, pull: bool = False
) -> Manifest:
    """The Cluster of RECORD (spec and labels; the status is written separately).

    SECRET names the Secret with its kubeconfig: a push-mode cluster; none, a pull-mode one.
    """
    obj = resource("Cluster", record.name, workspace, labels=record.labels)
    spec: dict[str, Any] = {"kind": record.kind, "mode": "pull" if pull or not secret else "push"}
    if secret:
        spec["kubeconfigSecretRef"] = {"name": secret, "key": SECRET_KEY_KUBECONFIG}
    if record.context:
        spec["context"] = record.context
    obj["spec"] = spec
    return obj


def cluster_status(record: ClusterRecord, *, namespace: str) -> dict[str, Any]:
    """A merge patch of the Cluster's status: None removes what is no longer known."""
    return {
        "state": record.state,
        "reason": record.state_reason,
        "lastSeen": stamp(record.last_seen),
        "kubernetesVersion": record.k8s_version,
        "distribution": record.distribution,
        "topology": record.mode,
        "nodeCount": record.node_count,
        "namespace": namespace,
    }


def cluster_mode(obj: Mapping[str, Any]) -> str:
    """push or pull."""
    return str(_part(obj, "spec").get("mode") or "push")


def cluster_record(obj: Mapping[str, Any], *, kubeconfig_path: str | None = None) -> ClusterRecord:
    spec, status = _part(obj, "spec"), _part(obj, "status")
    state = cast(ClusterState, status.get("state") or "Init")
    return ClusterRecord(
        name=name_of(obj),
        kind=spec.get("kind") or "imported",
        labels=dict(_meta(obj).get("labels") or {}),
        kubeconfig_path=kubeconfig_path,
        context=spec.get("context"),
        state=state,
        state_reason=str(status.get("reason") or ""),
        k8s_version=status.get("kubernetesVersion"),
        distribution=status.get("distribution"),
        mode=status.get("topology"),
        node_count=status.get("nodeCount"),
        last_seen=parse_time(status.get("lastSeen")),
        created_at=created_at(obj),
    )


def secret_ref(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(Secret name, key) of a push-mode Cluster's kubeconfig."""
    ref = _part(_part(obj, "spec"), "kubeconfigSecretRef")
    if not ref.get("name"):
        return None
    return str(ref["name"]), str(ref.get("key") or SECRET_KEY_KUBECONFIG)


# -- cluster groups --------------------------------------------------------------------------


def selector_resource(selector: LabelSelector) -> dict[str, Any]:
    """A label selector as Kubernetes spells it."""
    out: dict[str, Any] = {}
    if selector.match_labels:
        out["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        out["matchExpressions"] = [
            {
                "key": r.key,
                "operator": r.operator,
                **({"values": list(r.values)} if r.values else {}),
            }
            for r in selector.match_expressions
        ]
    return out


def selector_of(data: Mapping[str, Any]) -> LabelSelector:
    return LabelSelector(
        match_labels=dict(data.get("matchLabels") or {}),
        match_expressions=tuple(
            LabelRequirement(
                key=str(r.get("key")),
                operator=cast(Operator, r.get("operator")),
                values=tuple(str(v) for v in r.get("values") or ()),
            )
            for r in data.get("matchExpressions") or ()
        ),
    )


def group_resource(record: ClusterGroupRecord, *, workspace: str) -> Manifest:
    obj = resource("ClusterGroup", record.name, workspace)
    obj["spec"] = {"selector": selector_resource(parse_selector(record.selector))}
    return obj


def group_record(obj: Mapping[str, Any]) -> ClusterGroupRecord:
    selector = selector_of(_part(_part(obj, "spec"), "selector"))
    return ClusterGroupRecord(name=name_of(obj), selector=format_selector(selector))


# -- repositories ------------------------------------------------------------------------------


def webhook_secret_name(repo: str) -> str:
    return f"appflow-webhook-{repo}"


def repo_resource(record: RepoRecord, *, workspace: str, webhook_secret: str | None) -> Manifest:
    """The GitRepo of RECORD (a RepoRecord): spec and the annotation with its credential refs."""
    obj = resource("GitRepo", record.name, workspace)
    spec: dict[str, Any] = {"url": record.url, "pollIntervalSeconds": record.poll_interval_seconds}
    if record.ref:
        spec["ref"] = record.ref
    if record.paths:
        spec["paths"] = list(record.paths)
    if webhook_secret:
        spec["webhookSecretRef"] = {"name": webhook_secret, "key": SECRET_KEY_WEBHOOK}
    obj["spec"] = spec
    if record.auth.kind != "none":
        obj["metadata"]["annotations"] = {
            ANNOTATION_RECORD: json.dumps(
                {"recordVersion": RECORD_VERSION, "auth": to_json(record.auth)}, sort_keys=True
            )
        }
    return obj


def catalog_repo_resource(record: CatalogRepoRecord, *, workspace: str) -> Manifest:
    """A CatalogRepo; where its password and CA are kept (files of the machine that added it)
    travel in the record annotation, as a GitRepo's credentials do."""
    obj = resource("CatalogRepo", record.name, workspace)
    obj["spec"] = {"url": record.url}
    extra = to_json(record)
    obj["metadata"]["annotations"] = {
        ANNOTATION_RECORD: json.dumps(
            {"recordVersion": RECORD_VERSION, "catalogRepo": extra}, sort_keys=True
        )
    }
    return obj


def catalog_repo_record(obj: Mapping[str, Any]) -> CatalogRepoRecord:
    extra = _annotation_record(obj).get("catalogRepo")
    spec = _part(obj, "spec")
    if isinstance(extra, dict):
        record = from_json(CatalogRepoRecord, extra, what="catalogRepo")
        return replace(record, url=str(spec.get("url") or record.url), created_at=created_at(obj))
    # Written with kubectl: its spec decides.
    return CatalogRepoRecord(
        name=name_of(obj), url=str(spec.get("url", "")), created_at=created_at(obj)
    )


def repo_status(commit: str | None, fetched: datetime | None) -> dict[str, Any]:
    return _compact(
        {
            "commit": commit,
            "fetchedAt": stamp(fetched),
            "display": {"commit": commit[:12]} if commit else None,
        }
    )


def repo_record(obj: Mapping[str, Any]) -> RepoRecord:
    spec, status = _part(obj, "spec"), _part(obj, "status")
    extra = _annotation_record(obj)
    webhook = _part(spec, "webhookSecretRef")
    return RepoRecord(
        name=name_of(obj),
        url=str(spec.get("url", "")),
        ref=str(spec.get("ref") or ""),
        paths=tuple(spec.get("paths") or ()),
        auth=(
            from_json(RepoCredentials, extra["auth"], what="auth")
            if extra.get("auth")
            else RepoCredentials()
        ),
        poll_interval_seconds=int(spec.get("pollIntervalSeconds", 60)),
        webhook_secret_ref=(
            f"secret:{webhook['name']}/{webhook.get('key') or SECRET_KEY_WEBHOOK}"
            if webhook.get("name")
            else None
        ),
        last_commit=status.get("commit"),
        last_fetched=parse_time(status.get("fetchedAt")),
        created_at=created_at(obj),
    )


# -- apps ----------------------------------------------------------------------------------------

_APP_RESOURCE_FIELDS = ("name", "repo", "path", "paused", "createdAt")
"""AppRecord fields the AppFlow has resource fields for (the annotation keeps the rest)."""


def app_resource(
    record: AppRecord, *, workspace: str, local: Mapping[str, str] | None = None
) -> Manifest:
    """The AppFlow of RECORD: spec, labels, and the annotation with what the spec cannot say.

    LOCAL: for an app of a local folder, ``{"folder", "snapshot"}`` (the uploaded files).
    """
    obj = resource("AppFlow", record.name, workspace)
    spec: dict[str, Any] = {"paused": record.paused}
    if record.repo and record.source == "git":
        spec["repo"] = record.repo
        if record.path:
            spec["path"] = record.path
    if local is not None:
        spec["local"] = dict(local)
    if record.catalog is not None:
        data = record.catalog
        spec["catalog"] = _compact(
            {"entry": data.entry, "version": data.version, "repo": data.repo}
        )
    obj["spec"] = spec
    extra = cast(dict[str, JsonValue], to_json(record))
    for key in _APP_RESOURCE_FIELDS:
        extra.pop(key, None)
    if record.source == "local":
        extra.pop("localPath", None)
        extra["repoName"] = record.repo
        extra["appPath"] = record.path
    extra["recordVersion"] = RECORD_VERSION
    obj["metadata"]["annotations"] = {ANNOTATION_RECORD: json.dumps(extra, sort_keys=True)}
    return obj


def local_source(obj: Mapping[str, Any]) -> dict[str, str] | None:
    """``{"folder", "snapshot"}`` of an AppFlow of a local folder, else None."""
    local = _part(_part(obj, "spec"), "local")
    if not local.get("snapshot"):
        return None
    return {"folder": str(local.get("folder", "")), "snapshot": str(local["snapshot"])}


def app_record(obj: Mapping[str, Any], *, local_path: str | None = None) -> AppRecord:
    """The AppRecord of an AppFlow. LOCAL_PATH: where an app of a local folder is read from
    (the registering machine's folder, or the controller's copy of the snapshot)."""
    spec = _part(obj, "spec")
    extra = dict(_annotation_record(obj))
    name = name_of(obj)
    local = local_source(obj)
    if local is not None:
        source = "local"
        repo = cast(str | None, extra.pop("repoName", None))
        path = str(extra.pop("appPath", None) or "")
    elif spec.get("catalog"):
        source, repo, path = "catalog", None, str(extra.get("path") or spec["catalog"]["entry"])
    else:
        source, repo, path = "git", spec.get("repo"), str(spec.get("path") or "")
    extra.pop("repoName", None)
    extra.pop("appPath", None)
    data: JsonObject = {
        **extra,
        "name": name,
        "source": source,
        "repo": repo,
        "path": path,
        "localPath": local_path if local is not None else None,
        "paused": bool(spec.get("paused", False)),
        "createdAt": stamp(created_at(obj)),
    }
    data.setdefault("updatedAt", data["createdAt"])
    try:
        return from_json(AppRecord, data, what=f"AppFlow {name}")
    except StoreError as err:
        raise err.located(app=name) from None


def sync_request(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The AppFlow's spec.syncRequest ({} when none)."""
    return _part(_part(obj, "spec"), "syncRequest")


def sync_request_status(obj: Mapping[str, Any]) -> dict[str, Any]:
    return _part(_part(obj, "status"), "syncRequest")


def pending_request(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The AppFlow's syncRequest when its owner has not finished it yet."""
    asked = sync_request(obj)
    if not asked.get("id"):
        return None
    done = sync_request_status(obj)
    if done.get("id") == asked["id"] and done.get("phase") in ("Succeeded", "Failed"):
        return None
    return asked


# -- revisions -----------------------------------------------------------------------------------


def source_ref_text(ref: SourceRef) -> str:
    return str(ref)


def source_ref_of(text: str) -> SourceRef:
    """What ``str(SourceRef)`` wrote, read back."""
    if text.startswith("local:"):
        return LocalContent(digest=text.removeprefix("local:"))
    if text.startswith("catalog:"):
        entry, _, version = text.removeprefix("catalog:").rpartition("@")
        return CatalogChart(entry=entry, version=version)
    return GitCommit(commit=text)


def revision_entry(record: RevisionRecord, *, rendered: str | None) -> dict[str, Any]:
    return _compact(
        {
            "number": record.number,
            "digest": record.digest,
            "sourceRef": source_ref_text(record.source_ref),
            "message": record.message,
            "createdAt": stamp(record.created_at),
            "rendered": rendered,
        }
    )


def revision_record(
    app: str, entry: Mapping[str, Any], *, rendered: dict[str, list[JsonObject]] | None = None
) -> RevisionRecord:
    return RevisionRecord(
        app=app,
        number=int(entry["number"]),
        digest=str(entry.get("digest", "")),
        source_ref=source_ref_of(str(entry.get("sourceRef", ""))),
        rendered=rendered or {},
        message=str(entry.get("message") or ""),
        created_at=parse_time(entry.get("createdAt")) or utc_now(),
    )


def revisions_of(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [e for e in _part(obj, "status").get("revisions") or [] if isinstance(e, dict)]


# -- rollouts -------------------------------------------------------------------------------------


def rollout_status(record: RolloutRecord) -> dict[str, Any]:
    """A merge patch of the AppFlow's status.rollout (every field, so none is left over)."""
    return {
        "revision": record.revision,
        "state": record.state,
        "current": record.current,
        "message": record.message,
        "updatedAt": stamp(record.updated_at),
        "partitions": [
            _compact(
                {
                    "name": p.name,
                    "clusterCount": len(p.clusters),
                    "clusters": list(p.clusters),
                    "maxUnavailable": p.max_unavailable,
                    "state": p.state,
                    "message": p.message,
                }
            )
            for p in record.partitions
        ],
    }


def rollout_record(app: str, data: Mapping[str, Any]) -> RolloutRecord:
    return RolloutRecord(
        app=app,
        revision=data.get("revision"),
        state=data.get("state") or "Progressing",
        current=int(data.get("current") or 0),
        message=str(data.get("message") or ""),
        updated_at=parse_time(data.get("updatedAt")) or utc_now(),
        partitions=tuple(
            RolloutPartitionRecord(
                name=str(p.get("name", "")),
                clusters=tuple(p.get("clusters") or ()),
                max_unavailable=int(p.get("maxUnavailable") or 0),
                state=p.get("state") or "Pending",
                message=str(p.get("message") or ""),
            )
            for p in data.get("partitions") or ()
        ),
    )


# -- deployments ---------------------------------------------------------------------------------


def deployment_name(app: str) -> str:
    """An AppFlowDeployment is named after its app (its namespace is its cluster's)."""
    return app


def deployment_labels(app: str, cluster: str, workspace: str) -> dict[str, str]:
    return {**MANAGED_BY, LABEL_APP: app, LABEL_CLUSTER: cluster, LABEL_WORKSPACE: workspace}


def deployment_resource(app: str, cluster: str, *, workspace: str, namespace: str) -> Manifest:
    obj = resource(
        "AppFlowDeployment",
        deployment_name(app),
        namespace,
        labels=deployment_labels(app, cluster, workspace),
    )
    obj["spec"] = {"app": app, "appNamespace": workspace, "cluster": cluster}
    return obj


def deployment_status(record: DeploymentRecord, *, inventory: str | None) -> dict[str, Any]:
    """What a DeploymentRecord puts in its AppFlowDeployment's status; INVENTORY is the
    content holding its inventory, fingerprints and Helm release."""
    status: dict[str, Any] = {
        "state": record.state,
        "message": record.message,
        "appliedRevision": record.applied_revision,
        "desiredRevision": record.desired_revision,
        "resourceCounts": record.resource_counts.as_dict(),
        "failing": [
            {"object": f.object, "message": f.message} for f in record.failing[:FAILING_LIMIT]
        ],
        "inventory": _compact({"count": len(record.inventory), "index": inventory}),
        "display": {"state": record.state},
        "updatedAt": stamp(record.updated_at),
    }
    # A merge patch: None removes what a former state had set.
    return status


def inventory_objects(record: DeploymentRecord) -> list[JsonObject]:
    """A Deployment's inventory, fingerprints, Helm release and hook record as content
    objects (one per line, so that a long inventory is chunked like any render)."""
    lines: list[JsonObject] = []
    applied = dict(record.applied)
    for entry in record.inventory:
        key = entry.ref.encode()
        line: JsonObject = {"entry": entry.to_line()}
        if key in applied:
            line["fingerprint"] = applied.pop(key)
        lines.append(line)
    lines.extend({"object": k, "fingerprint": v} for k, v in sorted(applied.items()))
    if record.release is not None:
        lines.append({"release": to_json(record.release)})
    if record.hooks is not None:
        lines.append({"hooks": to_json(record.hooks)})
    return lines


def has_inventory_data(record: DeploymentRecord) -> bool:
    return bool(record.inventory or record.applied or record.release or record.hooks)


def deployment_record(
    obj: Mapping[str, Any], *, inventory: Sequence[Mapping[str, Any]] = ()
) -> DeploymentRecord:
    """The DeploymentRecord of an AppFlowDeployment, with INVENTORY as read from its content."""
    spec, status = _part(obj, "spec"), _part(obj, "status")
    entries: list[InventoryEntry] = []
    applied: dict[str, str] = {}
    release: HelmReleaseRef | None = None
    hooks: HookRecord | None = None
    for line in inventory:
        if "entry" in line:
            entry = InventoryEntry.from_line(str(line["entry"]))
            entries.append(entry)
            if "fingerprint" in line:
                applied[entry.ref.encode()] = str(line["fingerprint"])
        elif line.get("object") == HOOKS_KEY:
            # Written before hook state had a line of its own: read, and written back
            # in the new shape by the next sync.
            hooks = HookRecord.decode(str(line.get("fingerprint", "")))
        elif "object" in line:
            applied[str(line["object"])] = str(line.get("fingerprint", ""))
        elif "release" in line:
            release = from_json(HelmReleaseRef, line["release"], what="release")
        elif "hooks" in line:
            hooks = from_json(HookRecord, line["hooks"], what="hooks")
    return DeploymentRecord(
        app=str(spec.get("app") or name_of(obj)),
        cluster=str(spec.get("cluster", "")),
        desired_revision=status.get("desiredRevision"),
        applied_revision=status.get("appliedRevision"),
        state=cast(DeploymentState, status.get("state") or "Unknown"),
        message=str(status.get("message") or ""),
        inventory=tuple(entries),
        applied=applied,
        release=release,
        hooks=hooks,
        resource_counts=counts_of(status.get("resourceCounts")),
        failing=tuple(
            FailingObject(object=str(f.get("object", "")), message=str(f.get("message", "")))
            for f in status.get("failing") or ()
        ),
        updated_at=parse_time(status.get("updatedAt")) or created_at(obj),
    )


def deployment_summary(obj: Mapping[str, Any]) -> DeploymentSummary:
    return DeploymentSummary.of(deployment_record(obj))


def counts_of(data: object) -> ResourceCounts:
    if not isinstance(data, dict):
        return ResourceCounts()
    return from_json(ResourceCounts, cast(JsonObject, data), what="resourceCounts")


def inventory_digest(obj: Mapping[str, Any]) -> str | None:
    found = _part(_part(obj, "status"), "inventory").get("index")
    return str(found) if found else None


# -- sync history ----------------------------------------------------------------------------------


def history_of(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [e for e in _part(obj, "status").get("history") or [] if isinstance(e, dict)]


def history_entry(sync: SyncRecord, *, writer: str) -> dict[str, Any]:
    return _compact(
        {
            "id": sync.id,
            "revision": sync.revision,
            "trigger": sync.trigger,
            "actor": sync.actor or None,
            "startedAt": stamp(sync.started_at),
            "finishedAt": stamp(sync.finished_at),
            "outcome": sync.outcome,
            "counts": dict(sync.counts) or None,
            "message": sync.message,
            "writer": writer,
        }
    )


def sync_record(app: str, cluster: str, entry: Mapping[str, Any], *, sync_id: int) -> SyncRecord:
    return SyncRecord(
        id=sync_id,
        app=app,
        cluster=cluster,
        revision=entry.get("revision"),
        trigger=entry.get("trigger") or "user",
        actor=str(entry.get("actor") or ""),
        started_at=parse_time(entry.get("startedAt")) or utc_now(),
        finished_at=parse_time(entry.get("finishedAt")),
        outcome=entry.get("outcome") or "running",
        counts={str(k): int(v) for k, v in (entry.get("counts") or {}).items()},
        message=str(entry.get("message") or ""),
    )


def bounded_history(
    history: Sequence[Mapping[str, Any]], entry: Mapping[str, Any], *, limit: int
) -> list[dict[str, Any]]:
    """HISTORY with ENTRY in place of the entry with its id (or appended), oldest dropped
    beyond LIMIT; an entry still running is never dropped before a finished one."""
    out = [dict(e) for e in history if e.get("id") != entry.get("id")]
    out.append(dict(entry))
    out.sort(key=lambda e: int(e.get("id", 0)))
    while len(out) > limit:
        finished = next((e for e in out if e.get("outcome") != "running"), out[0])
        out.remove(finished)
    return out


# -- events ------------------------------------------------------------------------------------------


def event_manifest(
    *,
    event_id: int,
    workspace: str,
    kind: str,
    message: str,
    app: str | None,
    cluster: str | None,
    trigger: str | None,
    commit: str | None,
    outcome: str | None,
    time: datetime,
    reporter: str,
) -> Manifest:
    """An events.k8s.io/v1 Event regarding the app (or the cluster, or the workspace)."""
    if app:
        regarding = {"apiVersion": API_VERSION, "kind": "AppFlow", "name": app}
    elif cluster:
        regarding = {"apiVersion": API_VERSION, "kind": "Cluster", "name": cluster}
    else:
        regarding = {"apiVersion": "v1", "kind": "Namespace", "name": workspace}
    # Even for the (cluster-scoped) Namespace: the API server refuses an Event outside default
    # and kube-system whose regarding namespace differs from its own.
    regarding["namespace"] = workspace
    labels = {**MANAGED_BY}
    if app:
        labels[LABEL_APP] = app
    if cluster:
        labels[LABEL_CLUSTER] = cluster
    warning = kind in ("failure", "drift", "backoff") or outcome in ("failed", "blocked")
    reason = "".join(w[:1].upper() + w[1:] for w in (outcome or kind).replace("-", " ").split())
    note = message if len(message) <= EVENT_NOTE_LIMIT else message[: EVENT_NOTE_LIMIT - 3] + "..."
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {
            "name": f"appflow.{event_id:x}",
            "namespace": workspace,
            "labels": labels,
            "annotations": {
                "appflow.dev/event": json.dumps(
                    _compact(
                        {
                            "id": event_id,
                            "kind": kind,
                            "trigger": trigger,
                            "commit": commit,
                            "outcome": outcome,
                            "message": message if len(message) > EVENT_NOTE_LIMIT else None,
                        }
                    ),
                    sort_keys=True,
                )
            },
        },
        "eventTime": stamp(time),
        "reportingController": "appflow.dev/controller",
        "reportingInstance": reporter[:128],
        "action": (kind or "event")[:128],
        "reason": (reason or "Event")[:128],
        "type": "Warning" if warning else "Normal",
        "note": note,
        "regarding": regarding,
    }


def event_record(obj: Mapping[str, Any]) -> EventRecord | None:
    """The EventRecord of an Event appflow wrote (None for anybody else's)."""
    meta = _meta(obj)
    try:
        extra = json.loads((meta.get("annotations") or {}).get("appflow.dev/event") or "null")
    except ValueError:
        return None
    if not isinstance(extra, dict) or "id" not in extra:
        return None
    labels = meta.get("labels") or {}
    return EventRecord(
        id=int(extra["id"]),
        time=parse_time(obj.get("eventTime")) or created_at(obj),
        kind=str(extra.get("kind") or obj.get("action") or ""),
        message=str(extra.get("message") or obj.get("note") or ""),
        app=labels.get(LABEL_APP),
        cluster=labels.get(LABEL_CLUSTER),
        trigger=extra.get("trigger"),
        commit=extra.get("commit"),
        outcome=extra.get("outcome"),
    )
