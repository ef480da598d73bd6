"""The pull agent's decisions, and the hub's view of a silent agent (docs/hub.md §11). Pure.

- what an agent does with one ``AppFlowDeployment``: validate a staged revision, apply a
  released one, or keep what it applied (two-phase publish: nothing staged is ever applied
  before it is released);
- its sync history (bounded, ids in sequence, no entry twice however often it is sent);
- the status it queues while the hub is away: latest wins per Deployment;
- its reconnect backoff: exponential, jittered, capped;
- on the hub: whether a cluster is Online, Suspect or Offline from when its heartbeat was last
  *seen* (on the observer's own clock), and how its Deployments show while it is silent.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from appflow.model.appdef import OfflinePolicy
from appflow.model.hub import API_VERSION
from appflow.model.objects import Manifest

HISTORY_LIMIT = 10
MISSED_FOR_OFFLINE = 3
"""A pull cluster is Offline after this many heartbeat intervals without one."""
GRACE = 0.1
"""Of an interval: a heartbeat this late is not yet missed (network, scheduling)."""

Liveness = Literal["Online", "Suspect", "Offline"]


def liveness(*, seen_ago: float, interval: float) -> Liveness:
    """Online until a heartbeat is missed, Suspect after one, Offline after three."""
    if seen_ago > MISSED_FOR_OFFLINE * interval * (1 + GRACE):
        return "Offline"
    if seen_ago > interval * (1 + GRACE) + 1:
        return "Suspect"
    return "Online"


def unheard(status: Mapping[str, Any]) -> bool:
    """Whether a pull cluster with STATUS has no agent to wait for: Offline, or Init and never
    seen (``cluster add --mode pull`` made it; no agent registered). Such a cluster is not
    waited on as online: it follows ``rollout.offlineTargets``, so a cluster that never
    connected holds a fleet up only under ``wait``. An agent that registered a moment ago
    (Init, ``lastSeen`` set, first heartbeat on its way) is online: it gives its verdicts,
    and a rollout's gate waits for it."""
    state = status.get("state")
    if state == "Offline":
        return True
    return state in (None, "", "Init") and not status.get("lastSeen")


def offline_display(state: str | None, revision: int | None) -> str:
    """How a Deployment of an Offline cluster shows: never as Ready, always as last known."""
    if not state or state == "Unknown":
        return "Offline"
    if state.startswith("Offline"):
        return state
    return f"Offline (last known: {state}{f' r{revision}' if revision else ''})"


def offline_status(status: Mapping[str, Any], *, cluster: str, since: str) -> dict[str, Any]:
    """The status patch marking a Deployment of a silent cluster: state Unknown (counted as
    unknown, never Ready), the last known state kept in what it shows."""
    display = (status.get("display") or {}).get("state")
    known = display if isinstance(display, str) and display.startswith("Offline") else None
    return {
        "state": "Unknown",
        "message": f"cluster {cluster} is offline: no heartbeat since {since}",
        "display": {
            "state": known
            or offline_display(str(status.get("state") or ""), status.get("appliedRevision"))
        },
    }


# -- backoff --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BackoffPolicy:
    """Reconnect delays: BASE doubling up to CAP seconds, each drawn in [half, whole]."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempt: int, *, draw: Callable[[], float] = random.random) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 32)))
        # Equal jitter: never less than half the step (the hub is spared an immediate retry),
        # spread over the other half (a thousand agents cut off together return apart).
        return float(ceiling / 2 + draw() * ceiling / 2)


# -- two-phase publish ----------------------------------------------------------------------

Action = Literal["validate", "apply", "keep"]

RenderOn = Literal["hub", "agent"]
RENDER_INPUTS_KIND = "RenderInputs"
"""The object that stands, in a render's place, for an app its pull cluster renders itself."""


def rendered_on(objects: Sequence[Manifest]) -> RenderOn:
    """Where a stored render is rendered: "agent" when it holds the app's render inputs."""
    inputs = any(
        o.get("apiVersion") == API_VERSION and o.get("kind") == RENDER_INPUTS_KIND for o in objects
    )
    return "agent" if inputs else "hub"


@dataclass(frozen=True, kw_only=True)
class Desired:
    """One desired state of a Deployment as the hub wrote it (``spec.staged`` or ``released``)."""

    revision: int
    index: str
    render_digest: str = ""
    source_ref: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    secrets: str | None = None
    """The content holding the SOPS files whose values the render carries encrypted."""
    render_on: RenderOn = "hub"
    """agent: INDEX holds the app's render inputs (its encrypted inputs are decrypted, and
    the app rendered, on the cluster); hub: the rendered objects."""

    @classmethod
    def of(cls, data: Any) -> Desired | None:
        if not isinstance(data, dict) or not data.get("index"):
            return None
        return cls(
            revision=int(data.get("revision") or 0),
            index=str(data["index"]),
            render_digest=str(data.get("renderDigest") or ""),
            source_ref=str(data.get("sourceRef") or ""),
            options=dict(data.get("options") or {}),
            secrets=str(data["secrets"]) if data.get("secrets") else None,
            render_on="agent" if data.get("renderOn") == "agent" else "hub",
        )

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "revision": self.revision,
            "index": self.index,
            "renderDigest": self.render_digest,
            "options": dict(self.options),
        }
        if self.source_ref:
            out["sourceRef"] = self.source_ref
        if self.secrets:
            out["secrets"] = self.secrets
        if self.render_on == "agent":
            out["renderOn"] = self.render_on
        return out

    @property
    def key(self) -> tuple[int, str]:
        return (self.revision, self.index)


@dataclass(frozen=True, kw_only=True)
class Validation:
    revision: int
    index: str
    result: Literal["Validated", "Rejected"]
    message: str = ""
    at: str = ""

    def to_status(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "result": self.result,
            "message": self.message,
            "at": self.at,
        }


def next_actions(
    *,
    staged: Desired | None,
    released: Desired | None,
    paused: bool,
    validated: Validation | None,
    applied: tuple[int, str] | None,
) -> list[Action]:
    """What the agent does for one Deployment now, in order.

    A staged revision is validated (dry-run) once; a released one is applied when it is not
    what was applied last; a paused Deployment gets nothing new. Nothing that is only staged
    is ever applied: that is the hub's promise that a revision failing on one cluster
    touches none.
    """
    actions: list[Action] = []
    if (
        staged is not None
        and (released is None or staged.key != released.key)
        and (validated is None or (validated.revision, validated.index) != staged.key)
    ):
        actions.append("validate")
    if released is not None and not paused and applied != released.key:
        actions.append("apply")
    return actions or ["keep"]


# -- history --------------------------------------------------------------------------------


def append_history(
    history: Sequence[Mapping[str, Any]], entry: Mapping[str, Any], *, limit: int = HISTORY_LIMIT
) -> list[dict[str, Any]]:
    """HISTORY with ENTRY added as the next id, oldest dropped beyond LIMIT."""
    last = max((int(e.get("id", 0)) for e in history), default=0)
    out = [dict(e) for e in history] + [{**entry, "id": last + 1}]
    return out[-limit:]


# -- status queue ---------------------------------------------------------------------------


class StatusQueue:
    """Status waiting to reach the hub, one per Deployment: a newer one replaces an older one
    not yet sent, so an agent that was offline for a day sends one write per Deployment."""

    def __init__(self) -> None:
        self._pending: dict[str, dict[str, Any]] = {}
        self._versions: dict[str, int] = {}

    def put(self, name: str, status: Mapping[str, Any]) -> None:
        self._pending[name] = dict(status)
        self._versions[name] = self._versions.get(name, 0) + 1

    def drop(self, name: str) -> None:
        self._pending.pop(name, None)

    def pending(self) -> list[tuple[str, dict[str, Any], int]]:
        """(name, status, version) of each waiting status."""
        return [(n, s, self._versions[n]) for n, s in sorted(self._pending.items())]

    def sent(self, name: str, version: int) -> None:
        """STATUS of version VERSION reached the hub: forget it unless a newer one came."""
        if self._versions.get(name) == version:
            self._pending.pop(name, None)

    def __len__(self) -> int:
        return len(self._pending)


# -- release (the hub's half of two-phase publish) ------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Release:
    """Which targets of a partition get a staged revision released, and why the others not."""

    release: frozenset[str]
    waiting: frozenset[str]
    """Online targets that have not validated yet (or offline ones, under ``wait``)."""
    rejected: Mapping[str, str]
    """Targets whose dry run refused the revision, with the API server's words."""

    @property
    def blocked(self) -> bool:
        return bool(self.rejected) or bool(self.waiting)


def release_decision(
    results: Mapping[str, tuple[str | None, str]],
    *,
    online: frozenset[str] | set[str],
    policy: OfflinePolicy = "wait",
) -> Release:
    """Whether a staged revision may be released to a partition's targets.

    RESULTS maps each target to (Validated | Rejected | None while pending, message). A
    rejection anywhere stops the release everywhere (nothing that fails on one target touches
    any). Otherwise every online target must have validated; offline ones follow POLICY:
    ``wait`` for them, ``skip`` them (they get it after they validate), or ``release`` to them
    unvalidated (their agent still dry-runs before it applies).
    """
    rejected = {c: m for c, (r, m) in results.items() if r == "Rejected"}
    validated = {c for c, (r, _) in results.items() if r == "Validated"}
    pending = set(results) - validated - set(rejected)
    waiting = {c for c in pending if c in online or policy == "wait"}
    if rejected or waiting:
        return Release(release=frozenset(), waiting=frozenset(waiting), rejected=rejected)
    chosen = validated | (pending if policy == "release" else set())
    return Release(release=frozenset(chosen), waiting=frozenset(), rejected={})
