"""Pull-mode clusters on the hub: registration tokens, the token-for-credential exchange,
credential rotation and removal (docs/hub.md §11).

Tokens live as Secrets ``appflow-registration-<id>`` in the workspace holding the SHA-256 of
their secret, never the secret. The exchange checks everything it can before it writes
anything: a token that is unknown, wrong, revoked, expired or used up, a per-cluster token
whose Cluster was removed, a name another cluster holds: each an AuthError or ConfigError,
and nothing is created. Then it claims one use of the token (optimistic concurrency on the
token's Secret, so N concurrent agents cannot exceed --max-uses), and creates, in reference
order and idempotently: the Cluster, its namespace, the agent's ServiceAccount, a credential
anchor Secret, the Role and RoleBinding (``model.registration.agent_rules``), the heartbeat
Lease; then mints a ServiceAccount token bound to the anchor. Deleting the anchor (rotation)
or the namespace (``cluster remove``) revokes every token bound to it at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from appflow.errors import (
    AppflowError,
    AuthError,
    ConfigError,
    ConflictError,
    NotFoundError,
    Where,
)
from appflow.kube.auth import request_token
from appflow.kube.client import KubeCluster
from appflow.model import registration as reg
from appflow.model.hub import (
    API_VERSION,
    LABEL_CLUSTER,
    LABEL_WORKSPACE,
    MANAGED_BY,
    cluster_namespace,
)
from appflow.model.objects import Manifest

log = logging.getLogger("appflow.hub.registration")

LEASE_API = "coordination.k8s.io/v1"
RBAC_API = "rbac.authorization.k8s.io/v1"
DEFAULT_CREDENTIAL_TTL = timedelta(days=90)
"""How long an agent's token lasts; the agent renews it at half its life, so only an agent
silent for this long must register again."""
DEFAULT_HEARTBEAT_SECONDS = 60


def _now() -> datetime:
    return datetime.now(UTC)


def _labels(**extra: str) -> dict[str, str]:
    return {**MANAGED_BY, **extra}


# -- tokens ---------------------------------------------------------------------------------


async def create_token(
    kube: KubeCluster,
    *,
    workspace: str,
    ttl: timedelta,
    max_uses: int | None,
    labels: dict[str, str],
    kind: str = "eve-k",
    cluster: str | None = None,
    name_prefix: str = "edge",
    description: str = "",
) -> tuple[str, reg.RegistrationToken]:
    """A new registration token (the text, shown once) and what the hub keeps of it."""
    reg.check_labels(labels, what="token")
    if max_uses is not None and max_uses < 1:
        raise ConfigError("--max-uses must be at least 1", where=Where(field="max-uses"))
    if kind not in ("eve-k", "imported"):
        raise ConfigError(f"--kind {kind!r}: expected eve-k or imported")
    reg.check_cluster_name(f"{name_prefix}-000000000000")
    text, token_id = reg.new_token()
    _, secret = reg.parse_token(text)
    now = _now()
    token = reg.RegistrationToken(
        id=token_id,
        secret_hash=reg.hash_secret(secret),
        expires=now + ttl,
        max_uses=max_uses,
        labels=dict(labels),
        kind=kind,  # type: ignore[arg-type]
        cluster=cluster,
        name_prefix=name_prefix,
        created=now,
        description=description,
    )
    extra = {reg.LABEL_TOKEN: "true"}
    if cluster:
        extra[LABEL_CLUSTER] = cluster
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "appflow.dev/registration-token",
            "metadata": {
                "name": reg.token_secret_name(token_id),
                "namespace": workspace,
                "labels": _labels(**extra),
            },
            "stringData": reg.token_to_data(token),
        }
    )
    return text, token


def _token_of(secret: Manifest) -> reg.RegistrationToken:
    data = {k: base64.b64decode(v).decode() for k, v in ((secret.get("data") or {}).items()) if v}
    return reg.token_from_data(data)


async def list_tokens(kube: KubeCluster, *, workspace: str) -> list[reg.RegistrationToken]:
    found = await kube.list_objects(
        "v1", "Secret", namespace=workspace, label_selector=f"{reg.LABEL_TOKEN}=true"
    )
    return sorted((_token_of(s) for s in found), key=lambda t: (t.created or t.expires, t.id))


async def revoke_token(
    kube: KubeCluster, *, workspace: str, token_id: str
) -> reg.RegistrationToken:
    """Mark a token revoked (kept until it expires, so an agent using it hears why)."""
    token_id = token_id.removeprefix(reg.TOKEN_PREFIX).split(".", 1)[0]
    name = reg.token_secret_name(token_id)
    secret = await kube.get("v1", "Secret", name, workspace)
    if secret is None:
        raise NotFoundError(
            f"no registration token {token_id} in workspace {workspace}",
            hint="appflow cluster token list shows the tokens",
        )
    token = replace(_token_of(secret), revoked=True)
    await _write_token(kube, workspace, token, resource_version=None)
    return token


async def _write_token(
    kube: KubeCluster,
    workspace: str,
    token: reg.RegistrationToken,
    *,
    resource_version: str | None,
    claim: str = "",
) -> None:
    patch: dict[str, Any] = {
        "stringData": {**reg.token_to_data(token), **({"lastClaim": claim} if claim else {})}
    }
    if resource_version:
        patch["metadata"] = {"resourceVersion": resource_version}
    await kube.patch("v1", "Secret", reg.token_secret_name(token.id), workspace, patch)


async def collect_tokens(
    kube: KubeCluster, *, workspace: str, keep: timedelta = timedelta(days=7)
) -> int:
    """Delete tokens that expired more than KEEP ago; how many."""
    now = _now()
    gone = 0
    for token in await list_tokens(kube, workspace=workspace):
        if token.expires + keep < now:
            await kube.delete("v1", "Secret", reg.token_secret_name(token.id), workspace)
            gone += 1
    return gone


# -- clusters -------------------------------------------------------------------------------


def cluster_manifest(
    *,
    name: str,
    workspace: str,
    kind: str,
    labels: dict[str, str],
    identity: str | None,
    token: str | None = None,
) -> Manifest:
    annotations = _registered(identity, token) if identity else {}
    return {
        "apiVersion": API_VERSION,
        "kind": "Cluster",
        "metadata": {
            "name": name,
            "namespace": workspace,
            "labels": dict(labels),
            "annotations": annotations,
        },
        "spec": {"kind": kind, "mode": "pull"},
    }


def _registered(identity: str, token: str | None) -> dict[str, str]:
    """A registered Cluster's annotations: who registered it, and with which token (so that
    a retry after a lost answer is known: ``model.registration.answer_lost``)."""
    return {
        reg.ANNOTATION_IDENTITY: identity,
        **({reg.ANNOTATION_REGISTERED_WITH: token} if token else {}),
    }


async def add_pull_cluster(
    kube: KubeCluster,
    *,
    workspace: str,
    name: str,
    kind: str,
    labels: dict[str, str],
    ttl: timedelta = reg.ONE_TIME_TTL,
) -> tuple[str, reg.RegistrationToken]:
    """Create pull-mode Cluster NAME (state Init until its agent registers) and its one-time
    registration token."""
    reg.check_cluster_name(name)
    reg.check_labels(labels, what=f"cluster {name}")
    if await kube.get(API_VERSION, "Cluster", name, workspace) is not None:
        raise ConfigError(
            f"cluster {name} exists already in workspace {workspace}",
            where=Where(cluster=name),
            hint="pick another name, or `appflow cluster token create` for a new agent token",
        )
    created = await kube.create(
        cluster_manifest(name=name, workspace=workspace, kind=kind, labels=labels, identity=None)
    )
    if created is None:
        raise ConfigError(f"cluster {name} exists already", where=Where(cluster=name))
    await _patch_cluster_status(
        kube,
        workspace,
        name,
        {
            "state": "Init",
            "reason": "waiting for its agent to register",
            "namespace": cluster_namespace(workspace, name),
        },
    )
    return await create_token(
        kube, workspace=workspace, ttl=ttl, max_uses=1, labels={}, kind=kind, cluster=name
    )


async def _patch_cluster_status(
    kube: KubeCluster, workspace: str, name: str, status: dict[str, Any]
) -> None:
    await kube.patch(
        API_VERSION, "Cluster", name, workspace, {"status": status}, subresource="status"
    )


@dataclass(frozen=True, kw_only=True)
class RegistrationOptions:
    workspace: str
    server: str
    """The hub API server's URL as agents reach it."""
    server_ca: bytes
    """Its CA (PEM), pinned by the agent from the registration's answer on."""
    credential_ttl: timedelta = DEFAULT_CREDENTIAL_TTL
    heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS


@dataclass(frozen=True, kw_only=True)
class Registration:
    """What an agent gets for its token: everything it needs to reach the hub on its own."""

    cluster: str
    workspace: str
    namespace: str
    server: str
    server_ca: str
    token: str
    expires: datetime
    generation: int
    heartbeat_seconds: int

    def to_data(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "workspace": self.workspace,
            "namespace": self.namespace,
            "server": self.server,
            "serverCA": self.server_ca,
            "token": self.token,
            "expires": self.expires.isoformat(),
            "generation": self.generation,
            "heartbeatSeconds": self.heartbeat_seconds,
        }


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """What a registration will do, decided before anything is written."""

    token: reg.RegistrationToken
    resource_version: str
    name: str
    existing: Manifest | None
    labels: dict[str, str]
    again: bool = False
    """It repeats a registration whose answer was lost: no other use of the token is counted."""


async def _load_token(
    kube: KubeCluster, workspace: str, text: str
) -> tuple[reg.RegistrationToken, str, str]:
    token_id, secret = reg.parse_token(text)
    found = await kube.get("v1", "Secret", reg.token_secret_name(token_id), workspace)
    if found is None:
        raise AuthError(
            f"registration token {token_id} is not known to this hub",
            hint="it was removed after it expired, or it belongs to another hub; ask the"
            " hub's operator for a new one",
        )
    rv = str((found.get("metadata") or {}).get("resourceVersion", ""))
    return _token_of(found), secret, rv


async def _plan(
    kube: KubeCluster, options: RegistrationOptions, text: str, facts: reg.ClusterFacts
) -> _Plan:
    token, secret, rv = await _load_token(kube, options.workspace, text)
    if not token.matches(secret):
        token.check(secret, now=_now())  # says why, before anything else is read
    name = token.cluster or reg.cluster_name_for(facts.identity, prefix=token.name_prefix)
    existing = await kube.get(API_VERSION, "Cluster", name, options.workspace)
    lease = (
        await kube.get(
            LEASE_API, "Lease", reg.AGENT_NAME, cluster_namespace(options.workspace, name)
        )
        if existing is not None
        else None
    )
    again = reg.answer_lost(existing, lease, token=token.id, identity=facts.identity)
    token.check(secret, now=_now(), again=again)
    if token.cluster and existing is None:
        raise AuthError(
            f"the cluster this token was made for, {name}, was removed from the hub",
            where=Where(cluster=name),
            hint="add it again (appflow cluster add) for a new token",
        )
    labels = dict(token.labels)
    if existing is not None:
        spec = existing.get("spec") or {}
        meta = existing.get("metadata") or {}
        held_by = (meta.get("annotations") or {}).get(reg.ANNOTATION_IDENTITY)
        if spec.get("mode") != "pull":
            raise ConfigError(
                f"cluster {name} is a push-mode cluster: it has no agent",
                where=Where(cluster=name),
            )
        if held_by and held_by != facts.identity:
            raise AuthError(
                f"cluster {name} is registered already, by another cluster (kube-system UID"
                f" {held_by}, not {facts.identity})",
                where=Where(cluster=name),
                hint="remove the old registration first (appflow cluster remove), or register"
                " this cluster under another name",
            )
        labels = {**labels, **(meta.get("labels") or {})}
    return _Plan(
        token=token, resource_version=rv, name=name, existing=existing, labels=labels, again=again
    )


async def check_registration(
    kube: KubeCluster, options: RegistrationOptions, *, token: str, facts: reg.ClusterFacts
) -> str:
    """Everything register() checks, writing nothing (``appflow agent install`` asks this
    before it changes the edge cluster); the name the cluster would get."""
    return (await _plan(kube, options, token, facts)).name


@dataclass
class _Claims:
    """Uses of one token asked for at once in this process, claimed in one write.

    A batch of devices registering together all count uses of the same token Secret: each
    claiming on its own, all but one of N concurrent writes conflict and read and write
    again (O(N) requests per registration). Here the waiting claims are granted together:
    one read and one conditional write for the lot (other processes' writes still conflict
    and are retried: the count stays exact across agent API replicas)."""

    waiting: list[tuple[str, asyncio.Future[reg.RegistrationToken]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


_CLAIMS: dict[tuple[str, str], _Claims] = {}


async def _claim(kube: KubeCluster, options: RegistrationOptions, plan: _Plan, text: str) -> None:
    """Count one use of the token (with the other uses asked for meanwhile: ``_Claims``)."""
    key = (options.workspace, plan.token.id)
    claims = _CLAIMS.setdefault(key, _Claims())
    done: asyncio.Future[reg.RegistrationToken] = asyncio.get_running_loop().create_future()
    claims.waiting.append((text, done))
    if claims.task is None or claims.task.done():
        claims.task = asyncio.create_task(_grant(kube, options.workspace, key, claims))
    await done


async def _grant(kube: KubeCluster, workspace: str, key: tuple[str, str], claims: _Claims) -> None:
    try:
        while claims.waiting:
            batch, claims.waiting = claims.waiting, []
            try:
                await _grant_batch(kube, workspace, batch)
            except AppflowError as err:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(err)
    finally:
        if not claims.waiting:
            _CLAIMS.pop(key, None)


async def _grant_batch(
    kube: KubeCluster,
    workspace: str,
    batch: list[tuple[str, asyncio.Future[reg.RegistrationToken]]],
) -> None:
    """Grant as many of BATCH as the token has uses left, in one conditional write; the rest
    hear that it is used up."""
    text = batch[0][0]
    for attempt in range(100):
        token, secret, rv = await _load_token(kube, workspace, text)
        token.check(secret, now=_now())
        room = len(batch) if token.max_uses is None else token.max_uses - token.uses
        granted, refused = batch[:room], batch[room:]
        used = replace(token, uses=token.uses + len(granted))
        claim = secrets.token_hex(8)
        try:
            await _write_token(kube, workspace, used, resource_version=rv, claim=claim)
        except ConflictError:
            # Another agent API replica claimed meanwhile: spread the retries out.
            await asyncio.sleep(random.uniform(0, min(0.5, 0.02 * (attempt + 1))))
            continue
        except AppflowError:
            # The write's answer was lost (a timeout, a dropped connection): it counts if it
            # landed, which the claim's mark on the token says; else it is retried.
            if not await _claim_landed(kube, workspace, token.id, claim):
                await asyncio.sleep(random.uniform(0, min(0.5, 0.02 * (attempt + 1))))
                continue
        for _, done in granted:
            done.set_result(used)
        for _, done in refused:
            try:
                used.check(secret, now=_now())
            except AuthError as err:
                done.set_exception(err)
        return
    token_id = reg.parse_token(text)[0]
    raise AuthError(f"registration token {token_id} is busy; try again", hint="retry in a moment")


async def _claim_landed(kube: KubeCluster, workspace: str, token_id: str, claim: str) -> bool:
    try:
        found = await kube.get("v1", "Secret", reg.token_secret_name(token_id), workspace)
    except AppflowError:
        return False
    mark = ((found or {}).get("data") or {}).get("lastClaim")
    return bool(mark) and base64.b64decode(str(mark)).decode() == claim


async def _unclaim(kube: KubeCluster, workspace: str, text: str) -> None:
    """Give back a use whose registration failed before its Cluster existed (its retry would
    not be known as one and would count again). Best effort: a failure is logged."""
    for _ in range(20):
        try:
            token, _, rv = await _load_token(kube, workspace, text)
            await _write_token(
                kube, workspace, replace(token, uses=max(0, token.uses - 1)), resource_version=rv
            )
            return
        except ConflictError:
            await asyncio.sleep(random.uniform(0, 0.2))
        except AppflowError as err:
            log.warning("giving back a use of a registration token failed: %s", err)
            return


async def register(
    kube: KubeCluster,
    options: RegistrationOptions,
    *,
    token: str,
    facts: reg.ClusterFacts,
) -> Registration:
    """Exchange TOKEN for the credential of the cluster FACTS describe (see the module doc)."""
    plan = await _plan(kube, options, token, facts)
    if plan.again:
        log.info(
            "cluster %s registers again with token %s (its answer was lost)",
            plan.name,
            plan.token.id,
        )
    else:
        await _claim(kube, options, plan, token)
    name, workspace = plan.name, options.workspace
    namespace = cluster_namespace(workspace, name)
    try:
        await _cluster_for(kube, plan, facts, workspace=workspace, text=token)
        await _ensure_agent_objects(
            kube, workspace=workspace, cluster=name, namespace=namespace, facts=facts
        )
        anchors = await _anchors(kube, namespace)
        generation, anchor_uid = await _new_anchor(kube, namespace, known=anchors)
        issued = await request_token(
            kube,
            namespace=namespace,
            service_account=reg.AGENT_NAME,
            seconds=int(options.credential_ttl.total_seconds()),
            bound_secret=(f"{reg.ANCHOR_PREFIX}{generation}", anchor_uid),
        )
        if anchors:  # a new namespace has none: nothing to list and retire
            await _retire_anchors(kube, namespace, keep=generation)
        await _patch_cluster_status(
            kube,
            workspace,
            name,
            {
                **facts.cluster_status(),
                "state": "Init",
                "reason": "registered; waiting for the agent's first heartbeat",
                "namespace": namespace,
                "lastSeen": _now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                "agent": {
                    "version": facts.agent_version,
                    "heartbeatSeconds": options.heartbeat_seconds,
                },
            },
        )
    except AppflowError as err:
        raise err.located(cluster=name) from None
    log.info("cluster %s registered (token %s, identity %s)", name, plan.token.id, facts.identity)
    return Registration(
        cluster=name,
        workspace=workspace,
        namespace=namespace,
        server=options.server,
        server_ca=options.server_ca.decode(),
        token=issued.token,
        expires=issued.expires,
        generation=generation,
        heartbeat_seconds=options.heartbeat_seconds,
    )


async def _cluster_for(
    kube: KubeCluster, plan: _Plan, facts: reg.ClusterFacts, *, workspace: str, text: str
) -> None:
    """The registering cluster's Cluster, created (batch tokens) or marked as registered by
    FACTS' identity with this token. A failure before it exists gives the claimed use back:
    without a Cluster, the agent's retry would not be known as one."""
    if plan.existing is not None:
        await kube.patch(
            API_VERSION,
            "Cluster",
            plan.name,
            workspace,
            {"metadata": {"annotations": _registered(facts.identity, plan.token.id)}},
        )
        return
    try:
        await kube.create(
            cluster_manifest(
                name=plan.name,
                workspace=workspace,
                kind=plan.token.kind,
                labels=plan.labels,
                identity=facts.identity,
                token=plan.token.id,
            )
        )
    except AppflowError:
        if not plan.again:
            await _unclaim(kube, workspace, text)
        raise


async def _ensure_agent_objects(
    kube: KubeCluster, *, workspace: str, cluster: str, namespace: str, facts: reg.ClusterFacts
) -> None:
    """The cluster's namespace, its agent's ServiceAccount, Role, RoleBinding and heartbeat
    Lease (holding the reported FACTS): created, or brought back to what they must be."""
    labels = _labels(**{LABEL_CLUSTER: cluster, LABEL_WORKSPACE: workspace})
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": labels},
        },
        force=True,
    )
    meta = {"name": reg.AGENT_NAME, "namespace": namespace, "labels": labels}
    # Independent of one another once the namespace exists: sent together.
    await asyncio.gather(
        kube.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}, force=True),
        kube.apply(
            {"apiVersion": RBAC_API, "kind": "Role", "metadata": meta, "rules": reg.agent_rules()},
            force=True,
        ),
        _bind(kube, meta, namespace),
        _heartbeat_lease(kube, meta, labels, facts),
    )


async def _bind(kube: KubeCluster, meta: Manifest, namespace: str) -> None:
    await kube.apply(
        {
            "apiVersion": RBAC_API,
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": reg.AGENT_NAME,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": reg.AGENT_NAME, "namespace": namespace}
            ],
        },
        force=True,
    )


async def _heartbeat_lease(
    kube: KubeCluster, meta: Manifest, labels: dict[str, str], facts: reg.ClusterFacts
) -> None:
    """Created here, so that the agent needs no right to create Leases (create cannot be
    limited to one name); it only renews this one. The facts go in with the create (one
    write), or onto the Lease a registration before made."""
    annotations = {reg.ANNOTATION_FACTS: json.dumps(facts.to_data())}
    created = await kube.create(
        {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "metadata": {
                **meta,
                "labels": {**labels, reg.LABEL_AGENT: "heartbeat"},
                "annotations": annotations,
            },
            "spec": {"leaseDurationSeconds": DEFAULT_HEARTBEAT_SECONDS},
        }
    )
    if created is None:
        await kube.patch(
            LEASE_API,
            "Lease",
            str(meta["name"]),
            str(meta["namespace"]),
            {"metadata": {"annotations": annotations}},
        )


async def _anchors(kube: KubeCluster, namespace: str) -> dict[int, Manifest]:
    found = await kube.list_objects(
        "v1", "Secret", namespace=namespace, label_selector=f"{reg.LABEL_AGENT}=credential"
    )
    out: dict[int, Manifest] = {}
    for secret in found:
        suffix = str(secret["metadata"]["name"]).removeprefix(reg.ANCHOR_PREFIX)
        if suffix.isdigit():
            out[int(suffix)] = secret
    return out


async def _new_anchor(
    kube: KubeCluster, namespace: str, *, known: Mapping[int, Manifest] | None = None
) -> tuple[int, str]:
    """A new credential generation: its anchor Secret's number and uid (after the KNOWN
    anchors, listed when not given)."""
    generation = (
        max((known if known is not None else await _anchors(kube, namespace)) or {0: {}}) + 1
    )
    created = await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "appflow.dev/credential-anchor",
            "metadata": {
                "name": f"{reg.ANCHOR_PREFIX}{generation}",
                "namespace": namespace,
                "labels": _labels(**{reg.LABEL_AGENT: "credential"}),
            },
        }
    )
    if created is None:  # a concurrent registration took this number: take the next
        return await _new_anchor(kube, namespace)
    return generation, str(created["metadata"]["uid"])


async def _retire_anchors(kube: KubeCluster, namespace: str, *, keep: int) -> list[int]:
    """Delete every anchor older than KEEP: their tokens stop working at once."""
    gone = []
    for generation in sorted(await _anchors(kube, namespace)):
        if generation < keep:
            await kube.delete("v1", "Secret", f"{reg.ANCHOR_PREFIX}{generation}", namespace)
            gone.append(generation)
    return gone


# -- rotation and removal -------------------------------------------------------------------


async def _pull_cluster(kube: KubeCluster, workspace: str, name: str) -> Manifest:
    found = await kube.get(API_VERSION, "Cluster", name, workspace)
    if found is None:
        raise NotFoundError(
            f"no cluster {name} in workspace {workspace}", where=Where(cluster=name)
        )
    if (found.get("spec") or {}).get("mode") != "pull":
        raise ConfigError(
            f"cluster {name} is a push-mode cluster: it has no agent credential",
            where=Where(cluster=name),
        )
    return found


async def request_rotation(kube: KubeCluster, *, workspace: str, name: str) -> int:
    """Start rotating NAME's credential: a new anchor, and the request on its heartbeat Lease.

    The agent mints a token bound to the new anchor at its next heartbeat, switches to it, and
    says so on the Lease; then the old anchors are deleted (``finish_rotation``)."""
    await _pull_cluster(kube, workspace, name)
    namespace = cluster_namespace(workspace, name)
    generation, _ = await _new_anchor(kube, namespace)
    await kube.patch(
        LEASE_API,
        "Lease",
        reg.AGENT_NAME,
        namespace,
        {"metadata": {"annotations": {reg.ANNOTATION_CREDENTIAL_REQUEST: str(generation)}}},
    )
    return generation


async def finish_rotation(kube: KubeCluster, *, namespace: str, generation: int) -> list[int]:
    """The agent of NAMESPACE uses GENERATION now (it asked with a token of it): revoke the
    older ones. Nothing when GENERATION does not exist (an old token cannot revoke a newer)."""
    anchors = await _anchors(kube, namespace)
    if generation not in anchors:
        raise NotFoundError(f"credential generation {generation} does not exist in {namespace}")
    return await _retire_anchors(kube, namespace, keep=generation)


async def rotate_credentials(
    kube: KubeCluster, *, workspace: str, name: str, timeout: float, revoke_now: bool = False
) -> tuple[int, bool]:
    """Rotate NAME's credential without downtime: (the new generation, whether the old ones
    are revoked already). With REVOKE_NOW the old tokens die at once, switched or not (the
    agent must then register again)."""
    generation = await request_rotation(kube, workspace=workspace, name=name)
    namespace = cluster_namespace(workspace, name)
    if revoke_now:
        await _retire_anchors(kube, namespace, keep=generation)
        return generation, True
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        lease = await kube.get(LEASE_API, "Lease", reg.AGENT_NAME, namespace)
        annotations = ((lease or {}).get("metadata") or {}).get("annotations") or {}
        if str(annotations.get(reg.ANNOTATION_CREDENTIAL, "")) == str(generation):
            await finish_rotation(kube, namespace=namespace, generation=generation)
            return generation, True
        await asyncio.sleep(0.5)
    return generation, False


async def remove_cluster(kube: KubeCluster, *, workspace: str, name: str) -> None:
    """Remove pull-mode cluster NAME: its namespace (ServiceAccount, anchors, Deployments:
    its credential stops working at once), its tokens, then the Cluster."""
    await _pull_cluster(kube, workspace, name)
    namespace = cluster_namespace(workspace, name)
    # The anchors first: deleting a namespace takes a while, revoking must not.
    for generation in sorted(await _anchors(kube, namespace)):
        await kube.delete("v1", "Secret", f"{reg.ANCHOR_PREFIX}{generation}", namespace)
    await kube.delete("v1", "ServiceAccount", reg.AGENT_NAME, namespace)
    await kube.delete("v1", "Namespace", namespace)
    for secret in await kube.list_objects(
        "v1",
        "Secret",
        namespace=workspace,
        label_selector=f"{reg.LABEL_TOKEN}=true,{LABEL_CLUSTER}={name}",
    ):
        await kube.delete("v1", "Secret", str(secret["metadata"]["name"]), workspace)
    await kube.delete(API_VERSION, "Cluster", name, workspace)
