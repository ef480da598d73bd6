"""What the agent keeps on its own cluster, so that a restarted agent needs no hub to go on.

All in Secrets of the agent's namespace on the edge cluster (``appflow-system``):

- ``appflow-agent``: how to reach the hub. Before registration: the hub's URL, the pin of its
  CA and the registration token (written by ``appflow agent install``). After: the agent
  API's URL and CA and the agent's own credential (``registration.json``), and the token is
  gone. It also holds the agent's age identity (issue 15: created here, never sent anywhere;
  its public recipient is reported to the hub).
- ``appflow-agent-d-<deployment>``: per AppFlowDeployment, the last released desired state, what
  was applied and validated, the fingerprints of applied objects, the sync history and the
  last status: enough to keep correcting drift while the hub is away, and to report exactly
  once when it is back.
- ``appflow-agent-c-<hex>``: content (index and chunks) by digest, as fetched: a one-object
  change fetches one chunk, and a restarted agent fetches nothing it has.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from appflow.errors import ConfigError, ContentError, NotFoundError, Where
from appflow.kube.client import KubeCluster
from appflow.kube.content import ContentStore
from appflow.model import content as fmt
from appflow.model.agent import Desired, Validation
from appflow.model.hub import MANAGED_BY
from appflow.model.objects import INVENTORY_NAMESPACE, Manifest

AGENT_NAMESPACE = INVENTORY_NAMESPACE
CONFIG_SECRET = "appflow-agent"
LABEL_PART = "appflow.dev/agent-state"
_DEPLOYMENT_PREFIX = "appflow-agent-d-"
_CONTENT_PREFIX = "appflow-agent-c-"


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def _data(secret: Manifest | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in ((secret or {}).get("data") or {}).items() if v}


def _secret(name: str, data: Mapping[str, str | bytes], *, part: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": AGENT_NAMESPACE,
            "labels": {**MANAGED_BY, LABEL_PART: part},
        },
        "data": {k: _b64(v) for k, v in data.items()},
    }


async def _ensure_namespace(kube: KubeCluster) -> None:
    await kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": AGENT_NAMESPACE}}
    )


# -- the connection to the hub --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """How this agent reaches its hub, as kept in the Secret ``appflow-agent``."""

    hub_url: str
    ca_pin: str
    token: str | None = None
    """The registration token, until it is exchanged."""
    agent_api_ca: bytes = b""
    registration: Mapping[str, Any] = field(default_factory=dict)
    """The hub's answer to the registration (cluster, namespace, server, CA, credential)."""
    age_identity: str = ""

    @property
    def registered(self) -> bool:
        return bool(self.registration.get("token"))


async def read_config(kube: KubeCluster) -> AgentConfig | None:
    found = await kube.get("v1", "Secret", CONFIG_SECRET, AGENT_NAMESPACE)
    if found is None:
        return None
    data = _data(found)
    try:
        registration = json.loads(data["registration.json"]) if "registration.json" in data else {}
        return AgentConfig(
            hub_url=data["hubUrl"].decode(),
            ca_pin=data["caPin"].decode(),
            token=data["token"].decode() if data.get("token") else None,
            agent_api_ca=data.get("ca.crt", b""),
            registration=registration,
            age_identity=data.get("age.key", b"").decode(),
        )
    except (KeyError, ValueError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"the agent's Secret {AGENT_NAMESPACE}/{CONFIG_SECRET} is damaged: {err}",
            where=Where(cluster=kube.name, object=f"Secret/{AGENT_NAMESPACE}/{CONFIG_SECRET}"),
            hint="install the agent again: appflow agent install --token ... --hub-url ...",
        ) from err


async def write_config(kube: KubeCluster, config: AgentConfig) -> None:
    """Replace the agent's Secret with CONFIG (a registered config drops the token)."""
    data: dict[str, str | bytes] = {"hubUrl": config.hub_url, "caPin": config.ca_pin}
    if config.token and not config.registered:
        data["token"] = config.token
    if config.agent_api_ca:
        data["ca.crt"] = config.agent_api_ca
    if config.registration:
        data["registration.json"] = json.dumps(dict(config.registration), sort_keys=True)
    if config.age_identity:
        data["age.key"] = config.age_identity
    await _ensure_namespace(kube)
    manifest = _secret(CONFIG_SECRET, data, part="config")
    existing = await kube.get("v1", "Secret", CONFIG_SECRET, AGENT_NAMESPACE)
    if existing is None:
        await kube.create(manifest)
        return
    # A replacement in one write: the credential never sits beside the registration token
    # it was exchanged for (the keys CONFIG no longer has are removed by the same patch).
    stale = set(existing.get("data") or {}) - set(manifest["data"])
    await kube.patch(
        "v1",
        "Secret",
        CONFIG_SECRET,
        AGENT_NAMESPACE,
        {
            "metadata": {"labels": manifest["metadata"]["labels"]},
            "data": {**manifest["data"], **dict.fromkeys(stale)},
        },
    )


# -- per-Deployment state -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DeploymentState:
    """What the agent remembers of one AppFlowDeployment (its name on the hub)."""

    name: str
    app: str
    released: Desired | None = None
    applied: tuple[int, str] | None = None
    validated: Validation | None = None
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    history: tuple[Mapping[str, Any], ...] = ()
    status: Mapping[str, Any] = field(default_factory=dict)
    """The last status made for the hub (sent or not)."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "app": self.app,
                "released": self.released.to_data() if self.released else None,
                "applied": list(self.applied) if self.applied else None,
                "validated": (
                    {
                        "revision": self.validated.revision,
                        "index": self.validated.index,
                        "result": self.validated.result,
                        "message": self.validated.message,
                        "at": self.validated.at,
                    }
                    if self.validated
                    else None
                ),
                "fingerprints": dict(self.fingerprints),
                "history": list(self.history),
                "status": dict(self.status),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: bytes) -> DeploymentState:
        body = json.loads(text)
        validated = body.get("validated")
        applied = body.get("applied")
        return cls(
            name=str(body["name"]),
            app=str(body["app"]),
            released=Desired.of(body.get("released")),
            applied=(int(applied[0]), str(applied[1])) if applied else None,
            validated=Validation(**validated) if validated else None,
            fingerprints={str(k): str(v) for k, v in (body.get("fingerprints") or {}).items()},
            history=tuple(body.get("history") or ()),
            status=dict(body.get("status") or {}),
        )

    def with_(self, **changes: Any) -> DeploymentState:
        return replace(self, **changes)


def _deployment_secret(name: str) -> str:
    return f"{_DEPLOYMENT_PREFIX}{name}"[:253]


async def save_deployment(kube: KubeCluster, state: DeploymentState) -> None:
    await kube.apply(
        _secret(
            _deployment_secret(state.name),
            {"state.json": gzip.compress(state.to_json().encode(), mtime=0)},
            part="deployment",
        ),
        force=True,
    )


async def forget_deployment(kube: KubeCluster, name: str) -> None:
    await kube.delete("v1", "Secret", _deployment_secret(name), AGENT_NAMESPACE)


async def load_deployments(kube: KubeCluster) -> dict[str, DeploymentState]:
    found = await kube.list_objects(
        "v1", "Secret", namespace=AGENT_NAMESPACE, label_selector=f"{LABEL_PART}=deployment"
    )
    out: dict[str, DeploymentState] = {}
    for secret in found:
        raw = _data(secret).get("state.json")
        if not raw:
            continue
        try:
            state = DeploymentState.from_json(gzip.decompress(raw))
        except (ValueError, KeyError, TypeError, OSError) as err:
            raise ConfigError(
                f"the agent's state of {secret['metadata']['name']} is damaged: {err}",
                where=Where(
                    cluster=kube.name,
                    object=f"Secret/{AGENT_NAMESPACE}/{secret['metadata']['name']}",
                ),
                hint="delete that Secret: the agent fetches the desired state again from the hub",
            ) from err
        out[state.name] = state
    return out


# -- content --------------------------------------------------------------------------------


ContentSource = Any
"""Something with ``async content(digest) -> bytes`` (the hub's agent API)."""


class EdgeContent(ContentStore):
    """Content by digest: from memory, else from the edge cluster's Secrets, else from the hub
    (then kept on the edge). Index and render reading are ContentStore's own.

    Without KUBE it keeps content in memory only (bench/agents.py's simulated agents)."""

    def __init__(self, kube: KubeCluster | None) -> None:
        super().__init__(kube, AGENT_NAMESPACE)  # type: ignore[arg-type]
        self.edge = kube
        self.hub: ContentSource | None = None
        self._on_edge: set[str] | None = None if kube is not None else set()

    async def _keep(self, name: str, data: bytes) -> None:
        if self.edge is not None:
            await self.edge.apply(
                _secret(name, {"data": gzip.compress(data, mtime=0)}, part="content"), force=True
            )

    async def _edge_digests(self) -> set[str]:
        if self._on_edge is None:
            assert self.edge is not None
            found = await self.edge.list_objects(
                "v1", "Secret", namespace=AGENT_NAMESPACE, label_selector=f"{LABEL_PART}=content"
            )
            self._on_edge = {
                "sha256-" + str(s["metadata"]["name"]).removeprefix(_CONTENT_PREFIX) for s in found
            }
        return self._on_edge

    async def get(self, digest: str) -> bytes:
        cached = self._cache.get(digest)
        if cached is not None:
            self._cache.move_to_end(digest)
            return cached
        name = _CONTENT_PREFIX + digest.removeprefix("sha256-")
        if self.edge is not None and digest in await self._edge_digests():
            secret = await self.edge.get("v1", "Secret", name, AGENT_NAMESPACE)
            raw = _data(secret).get("data")
            if raw is not None:
                data = gzip.decompress(raw)
                if fmt.digest_of(data) == digest:
                    self._remember(digest, data)
                    return data
        if self.hub is None:
            raise ContentError(
                f"content {digest} is not on this cluster and the hub is not reachable",
                where=Where(cluster=self.edge.name if self.edge else None),
                hint="the agent fetches it once the hub answers again",
            )
        fetched: bytes = await self.hub.content(digest)
        await self._keep(name, fetched)
        (await self._edge_digests()).add(digest)
        self._remember(digest, fetched)
        return fetched

    async def collect(self, keep: set[str]) -> int:
        """Delete content no kept index needs (KEEP: index digests); how many pieces."""
        needed: set[str] = set()
        for index in keep:
            try:
                stored = await self.get_index(index)
            except (ContentError, NotFoundError):
                continue
            needed.add(index)
            needed |= {d for d, _ in stored.index.chunks}
            document = fmt.read_index(fmt.Blob(media="index", data=await self.get(index)))
            base = document.base
            while base:
                needed.add(base)
                base = fmt.read_index(fmt.Blob(media="index", data=await self.get(base))).base
        gone = 0
        for digest in sorted(await self._edge_digests() - needed):
            if self.edge is not None:
                await self.edge.delete(
                    "v1",
                    "Secret",
                    _CONTENT_PREFIX + digest.removeprefix("sha256-"),
                    AGENT_NAMESPACE,
                )
            (await self._edge_digests()).discard(digest)
            gone += 1
        return gone
