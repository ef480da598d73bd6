"""Registering pull-mode clusters with a hub: tokens, names, facts, the agent's rights.

Pure: what a registration token looks like and when it may be used, how a self-registering
cluster is named, what an agent reports about its cluster, and the RBAC rules of an agent's
credential (docs/hub.md §11). ``appflow.hub.registration`` keeps tokens and creates clusters;
``appflow.agent`` registers.

A token is ``aft_<id>.<secret>``: the id (10 lowercase hex) names the Secret that keeps it,
so the hub finds it without scanning; the secret (32 URL-safe random characters, 192 bits)
is kept only as its SHA-256. A plain hash is enough because the secret is random, not a
password (as for API tokens, ``appflow.model.tokens``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appflow.errors import AuthError, ConfigError, Where

TOKEN_PREFIX = "aft_"
_TOKEN = re.compile(r"^aft_([0-9a-f]{10})\.([A-Za-z0-9_-]{32})$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_LABEL_KEY = re.compile(
    r"^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

ONE_TIME_TTL = timedelta(hours=1)
"""A per-cluster token (``appflow cluster add --mode pull``) lasts this long by default."""
RESERVED_LABEL_PREFIX = "appflow.dev/"
"""Labels under this prefix are appflow's: a token may not set them."""

AGENT_NAME = "appflow-agent"
"""The ServiceAccount, Role, RoleBinding and heartbeat Lease of an agent in its namespace."""
ANCHOR_PREFIX = "appflow-agent-credential-"
"""Secrets a credential's tokens are bound to, one per generation: deleting one revokes them."""

LABEL_TOKEN = "appflow.dev/registration-token"
LABEL_AGENT = "appflow.dev/agent"
AGENT_KEEPALIVE_SECONDS = 30.0
"""How long an agent keeps an idle connection to the hub's agent API (the server keeps it
longer: an agent never reuses a connection the server is closing)."""
ANNOTATION_IDENTITY = "appflow.dev/cluster-identity"
ANNOTATION_REGISTERED_WITH = "appflow.dev/registered-with"
"""On a Cluster: the id of the token its agent registered with (a lost answer's retry)."""
ANNOTATION_FACTS = "appflow.dev/agent-facts"
ANNOTATION_CREDENTIAL = "appflow.dev/credential"
"""On the heartbeat Lease: the credential generation the agent uses now."""
ANNOTATION_CREDENTIAL_REQUEST = "appflow.dev/credential-request"
"""On the heartbeat Lease: the generation the hub asks the agent to switch to."""

TokenState = Literal["valid", "expired", "revoked", "used"]


def new_token() -> tuple[str, str]:
    """A fresh token and its id."""
    token_id = secrets.token_hex(5)
    return f"{TOKEN_PREFIX}{token_id}.{secrets.token_urlsafe(24)}", token_id


def parse_token(token: str) -> tuple[str, str]:
    """(id, secret) of TOKEN; AuthError when it is not shaped like one."""
    match = _TOKEN.match(token.strip())
    if not match:
        raise AuthError(
            "this is not an appflow registration token (expected aft_<id>.<secret>)",
            hint="copy the whole token that `appflow cluster add` or `appflow cluster token"
            " create` printed",
        )
    return match.group(1), match.group(2)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_duration(text: str, *, option: str = "--ttl") -> timedelta:
    """'24h', '30m', '7d', '1h30m', '90s' as a timedelta (at least one second)."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match:
        raise ConfigError(
            f"{option} {text!r}: expected a duration such as 30m, 24h or 7d",
            where=Where(field=option),
        )
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value.total_seconds() < 1:
        raise ConfigError(f"{option} {text!r} must be at least 1s", where=Where(field=option))
    return value


def check_labels(labels: dict[str, str], *, what: str) -> None:
    """Label keys and values valid for Kubernetes, none under appflow.dev/."""
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or len(key) > 317:
            raise ConfigError(f"{what}: label key {key!r} is not a valid Kubernetes label key")
        if not _LABEL_VALUE.match(value):
            raise ConfigError(
                f"{what}: label {key}={value!r}: values are up to 63 letters, digits, '-', '_', '.'"
            )
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise ConfigError(
                f"{what}: label {key} is reserved for appflow",
                hint="pick a key outside appflow.dev/",
            )


@dataclass(frozen=True, kw_only=True)
class RegistrationToken:
    """What the hub keeps of a token (never the secret itself)."""

    id: str
    secret_hash: str
    expires: datetime
    max_uses: int | None
    """None: any number of clusters may register with it until it expires."""
    uses: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    kind: Literal["eve-k", "imported"] = "eve-k"
    cluster: str | None = None
    """The Cluster a per-cluster token registers (None: a batch token, names from identity)."""
    name_prefix: str = "edge"
    revoked: bool = False
    created: datetime | None = None
    description: str = ""

    def state(self, now: datetime) -> TokenState:
        if self.revoked:
            return "revoked"
        if now >= self.expires:
            return "expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used"
        return "valid"

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, hash_secret(secret))

    def check(self, secret: str, *, now: datetime, again: bool = False) -> None:
        """Raise AuthError saying exactly why this token cannot register a cluster now.
        AGAIN: the registration repeats one whose answer was lost (``answer_lost``): the use
        it counted is its own, so a used-up token still serves it."""
        if not self.matches(secret):
            raise AuthError(
                f"registration token {self.id} is not valid",
                hint="the token was mistyped or replaced; ask the hub's operator for a new one",
            )
        state = self.state(now)
        if state == "revoked":
            raise AuthError(
                f"registration token {self.id} was revoked",
                hint="ask the hub's operator for a new token (appflow cluster token create)",
            )
        if state == "expired":
            raise AuthError(
                f"registration token {self.id} expired at {self.expires.isoformat()}",
                hint="ask the hub's operator for a new token (appflow cluster token create)",
            )
        if state == "used" and not again:
            used = "was already used" if self.max_uses == 1 else f"was used {self.uses} times"
            raise AuthError(
                f"registration token {self.id} {used}, its limit",
                hint="a token registers at most --max-uses clusters; ask for a new one",
            )


def token_to_data(token: RegistrationToken) -> dict[str, str]:
    """The string fields of the Secret that keeps TOKEN."""
    data = {
        "id": token.id,
        "secretHash": token.secret_hash,
        "expires": token.expires.isoformat(),
        "uses": str(token.uses),
        "labels": json.dumps(token.labels, sort_keys=True),
        "kind": token.kind,
        "namePrefix": token.name_prefix,
        "revoked": "true" if token.revoked else "false",
        "description": token.description,
    }
    if token.max_uses is not None:
        data["maxUses"] = str(token.max_uses)
    if token.cluster:
        data["cluster"] = token.cluster
    if token.created:
        data["created"] = token.created.isoformat()
    return data


def token_from_data(data: dict[str, str]) -> RegistrationToken:
    """The token kept in a Secret's string fields; ConfigError when they are damaged."""
    try:
        kind = data.get("kind", "eve-k")
        if kind not in ("eve-k", "imported"):
            raise ValueError(f"kind {kind!r}")
        return RegistrationToken(
            id=data["id"],
            secret_hash=data["secretHash"],
            expires=datetime.fromisoformat(data["expires"]),
            max_uses=int(data["maxUses"]) if data.get("maxUses") else None,
            uses=int(data.get("uses", "0")),
            labels={str(k): str(v) for k, v in json.loads(data.get("labels") or "{}").items()},
            kind=kind,  # type: ignore[arg-type]
            cluster=data.get("cluster") or None,
            name_prefix=data.get("namePrefix") or "edge",
            revoked=data.get("revoked") == "true",
            created=datetime.fromisoformat(data["created"]) if data.get("created") else None,
            description=data.get("description", ""),
        )
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise ConfigError(f"registration token record is damaged: {err}") from err


def token_secret_name(token_id: str) -> str:
    return f"appflow-registration-{token_id}"


def cluster_name_for(identity: str, *, prefix: str = "edge") -> str:
    """The name of a self-registering cluster: PREFIX and 12 hex of its identity.

    The identity is the UID of the cluster's kube-system namespace: stable for the cluster's
    life, unique across clusters, and the same after the agent is reinstalled, so the same
    cluster registering again gets the same name.
    """
    hexits = re.sub(r"[^0-9a-f]", "", identity.lower())
    if len(hexits) < 12:
        raise ConfigError(f"cluster identity {identity!r} is too short to name a cluster")
    return f"{prefix}-{hexits[:12]}"


def check_cluster_name(name: str) -> None:
    if not DNS_LABEL.match(name):
        raise ConfigError(
            f"cluster name {name!r} must be a DNS label (lowercase letters, digits, '-',"
            " at most 63 characters)",
            where=Where(cluster=name),
        )


@dataclass(frozen=True, kw_only=True)
class ClusterFacts:
    """What an agent reports about its own cluster (pure data; ``appflow.agent.facts`` reads
    it from the cluster)."""

    identity: str
    """The UID of the kube-system namespace."""
    kubernetes_version: str
    distribution: str
    """k3s or kubernetes, from the version string as ``appflow cluster add`` detects it."""
    topology: str
    """single-node, ha-3, ha-2+tiebreaker, N-nodes."""
    node_count: int
    architecture: str
    """The nodes' architectures, comma-separated."""
    gpus: int
    api_versions: tuple[str, ...] = ()
    agent_version: str = ""
    age_recipients: tuple[str, ...] = ()
    """The agent's public age recipients: files encrypted for them decrypt on this cluster."""

    def to_data(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "kubernetesVersion": self.kubernetes_version,
            "distribution": self.distribution,
            "topology": self.topology,
            "nodeCount": self.node_count,
            "architecture": self.architecture,
            "gpus": self.gpus,
            "apiVersions": list(self.api_versions),
            "agentVersion": self.agent_version,
            "ageRecipients": list(self.age_recipients),
        }

    @classmethod
    def from_data(cls, data: Any) -> ClusterFacts:
        if not isinstance(data, dict):
            raise ConfigError("the agent's facts must be an object")
        try:
            return cls(
                identity=str(data["identity"]),
                kubernetes_version=str(data.get("kubernetesVersion", "")),
                distribution=str(data.get("distribution", "")),
                topology=str(data.get("topology", "")),
                node_count=int(data.get("nodeCount", 0)),
                architecture=str(data.get("architecture", "")),
                gpus=int(data.get("gpus", 0)),
                api_versions=tuple(str(v) for v in data.get("apiVersions") or ()),
                agent_version=str(data.get("agentVersion", "")),
                age_recipients=tuple(str(v) for v in data.get("ageRecipients") or ()),
            )
        except (KeyError, ValueError, TypeError) as err:
            raise ConfigError(f"the agent's facts are malformed: {err}") from err

    def cluster_status(self) -> dict[str, Any]:
        """These facts as fields of ``Cluster.status``."""
        status: dict[str, Any] = {
            "kubernetesVersion": self.kubernetes_version,
            "distribution": self.distribution,
            "topology": self.topology,
            "nodeCount": self.node_count,
            "architecture": self.architecture,
            "gpus": self.gpus,
            "agent": {"version": self.agent_version},
        }
        if self.api_versions:
            status["capabilities"] = {"apiVersions": list(self.api_versions)}
        if self.age_recipients:
            status["ageRecipients"] = list(self.age_recipients)
        return status


def gpu_capacity(nodes: list[dict[str, Any]]) -> int:
    """GPUs the nodes advertise as allocatable, summed over vendors' extended resources."""
    total = 0
    for node in nodes:
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        for resource, quantity in allocatable.items():
            if str(resource).endswith("/gpu"):
                try:
                    total += int(str(quantity))
                except ValueError:
                    continue
    return total


def agent_rules() -> list[dict[str, Any]]:
    """What an agent may do in its own namespace on the hub, and nothing else.

    Read its AppFlowDeployments (list+watch), write only their status, renew its heartbeat
    Lease, and mint tokens for its own ServiceAccount (to renew its credential before it
    expires). No Secrets, no content (it fetches content through the hub's agent API, which
    serves only what its Deployments reference), no other namespace, no AppFlow, no Cluster.
    """
    return [
        {
            "apiGroups": ["appflow.dev"],
            "resources": ["appflowdeployments"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["appflow.dev"],
            "resources": ["appflowdeployments/status"],
            "verbs": ["get", "patch", "update"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [AGENT_NAME],
            "verbs": ["get", "patch", "update"],
        },
        {
            "apiGroups": [""],
            "resources": ["serviceaccounts/token"],
            "resourceNames": [AGENT_NAME],
            "verbs": ["create"],
        },
    ]


PIN_PREFIX = "sha256:"


def ca_pin(pem: bytes) -> str:
    """The pin of a CA certificate: ``sha256:`` and the hex SHA-256 of its public key
    (DER SubjectPublicKeyInfo), as kubeadm's --discovery-token-ca-cert-hash. It survives the
    CA's renewal with the same key, and fits on the command line the hub prints."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as err:
        raise ConfigError(f"not a PEM certificate: {err}") from err
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PIN_PREFIX + hashlib.sha256(spki).hexdigest()


def check_pin(pin: str) -> str:
    """PIN normalised (lowercase), or ConfigError when it is not ``sha256:<64 hex>``."""
    value = pin.strip().lower()
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise ConfigError(
            f"--hub-ca-pin {pin!r}: expected sha256: and 64 hex digits",
            hint="copy it from the install command `appflow cluster add` printed",
        )
    return value


def answer_lost(
    cluster: Mapping[str, Any] | None,
    lease: Mapping[str, Any] | None,
    *,
    token: str,
    identity: str,
) -> bool:
    """Whether registering the cluster IDENTITY with TOKEN (its id) repeats a registration
    whose answer the agent never got (the connection dropped after the hub created the Cluster
    and minted the credential): the Cluster CLUSTER was registered by the same cluster identity
    with the same token, and its agent never renewed its heartbeat LEASE (an agent that got its
    credential renews it at once). Such a retry gets a credential again without counting
    another use of the token; anything else is a new registration."""
    if cluster is None or not identity:
        return False
    annotations = (cluster.get("metadata") or {}).get("annotations") or {}
    return (
        annotations.get(ANNOTATION_IDENTITY) == identity
        and annotations.get(ANNOTATION_REGISTERED_WITH) == token
        and not ((lease or {}).get("spec") or {}).get("renewTime")
    )
