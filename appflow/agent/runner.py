"""``appflow agent run``: the pull agent's life on its cluster (docs/hub.md §11).

Supervised tasks on one event loop:

- **hub**: list this cluster's AppFlowDeployments, then watch from the list's resourceVersion
  (bookmarks keep it fresh; a watch that ends is resumed from where it was; 410 Gone lists
  again). While the hub is unreachable it retries with jittered, capped exponential backoff.
- **work**: per Deployment, serialized: validate a staged revision (dry run, report Validated
  or Rejected), apply a released one (content fetched only where the cluster lacks it), and
  uninstall a Deployment the hub deleted.
- **drift**: every ``drift_seconds`` each applied Deployment is checked with the engine's own
  prepare stage (fingerprints make it cheap) and, with ``selfHeal``, corrected. From the
  desired state kept on the cluster: this goes on while the hub is away, and after a restart.
- **heartbeat**: renews the Lease in its hub namespace every ``heartbeat_seconds`` (with the
  cluster's facts when they change); takes up a credential rotation the hub asks for there,
  and renews its token at half its life.
- **report**: status waits in a queue (latest wins per Deployment) until the hub answers.

A credential the hub refuses (the cluster was removed, or its credential revoked) stops the
agent with that error; nothing on its cluster is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from appflow.agent import edge
from appflow.agent.hubclient import AgentApi, Credential, HubSession, WatchExpired
from appflow.agent.local import Local, LocalSync
from appflow.agent.render import EdgeSecrets, render_on_edge
from appflow.agent.secrets import Revealed, reveal_on_edge
from appflow.errors import (
    AppflowError,
    AuthError,
    ConfigError,
    DecryptionError,
    NotFoundError,
    PolicyError,
    RenderError,
    Where,
)
from appflow.model import agent as rules
from appflow.model.registration import (
    ANNOTATION_CREDENTIAL,
    ANNOTATION_CREDENTIAL_REQUEST,
    ANNOTATION_FACTS,
    ClusterFacts,
)
from appflow.secrets import age

log = logging.getLogger("appflow.agent")

CREDENTIAL_SECONDS = int(timedelta(days=90).total_seconds())
REFUSALS = (DecryptionError, RenderError, ConfigError, PolicyError)
"""Errors of a desired state itself, not of getting it: the cluster refuses the revision
(another attempt would fail the same way)."""


@dataclass(frozen=True, kw_only=True)
class AgentOptions:
    heartbeat_seconds: float = 60.0
    drift_seconds: float = 30.0
    backoff: rules.BackoffPolicy = field(default_factory=rules.BackoffPolicy)
    watch_seconds: int = 300
    """A watch is re-opened (from its last resourceVersion) after this long."""
    concurrency: int = 4
    """Deployments worked on at once."""
    identity: str = ""
    """The holder identity on the heartbeat Lease (default: host name and a random suffix)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime | None = None) -> str:
    return (moment or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AgentStopped(AppflowError):
    """The agent cannot go on: its credential was refused, or it is not installed."""


async def register(
    local: Local, config: edge.AgentConfig, *, dry_run: bool = False
) -> edge.AgentConfig:
    """Exchange the registration token in CONFIG for this cluster's credential (or, with
    DRY_RUN, only ask whether the hub would accept it); the config to keep."""
    from appflow.agent.hubclient import fetch_pinned_ca

    if not config.token:
        raise ConfigError(
            "no registration token to register with", hint="appflow agent install --token ..."
        )
    ca = await fetch_pinned_ca(config.hub_url, config.ca_pin)
    identity = config.age_identity or age.generate().secret
    facts = await local.facts(recipients=(age.parse_identity(identity).recipient,))
    api = AgentApi(config.hub_url, ca)
    try:
        answer = await api.register(token=config.token, facts=facts.to_data(), dry_run=dry_run)
    finally:
        await api.close()
    if dry_run:
        return replace(config, agent_api_ca=ca, registration={"cluster": answer.get("cluster", "")})
    log.info("registered with the hub as cluster %s", answer.get("cluster"))
    return replace(config, token=None, agent_api_ca=ca, registration=answer, age_identity=identity)


def _credential(config: edge.AgentConfig) -> Credential:
    reg = config.registration
    try:
        return Credential(
            server=str(reg["server"]),
            ca=str(reg["serverCA"]).encode(),
            token=str(reg["token"]),
            namespace=str(reg["namespace"]),
            cluster=str(reg["cluster"]),
            generation=int(reg.get("generation", 1)),
        )
    except (KeyError, ValueError) as err:
        raise ConfigError(f"the agent's registration is incomplete: {err}") from err


class Agent:
    """One pull agent (see the module's docstring)."""

    def __init__(self, local: Local, options: AgentOptions) -> None:
        self.local = local
        self.options = options
        self.identity = options.identity or f"{socket.gethostname()[:40]}-{secrets.token_hex(3)}"
        self.config: edge.AgentConfig | None = None
        self.session: HubSession | None = None
        self.api: AgentApi | None = None
        self.remote: dict[str, dict[str, Any]] = {}
        """The AppFlowDeployments as last seen on the hub."""
        self.states: dict[str, edge.DeploymentState] = {}
        self.queue = rules.StatusQueue()
        self.connected = asyncio.Event()
        self.fatal: AppflowError | None = None
        self._stop = asyncio.Event()
        self._wake_reporter = asyncio.Event()
        self._beat_now = asyncio.Event()
        self._marked_offline: set[str] = set()
        """Deployments the hub marked Offline while this agent was alive: their status goes
        again right after the next heartbeat (the one that makes the cluster Online)."""
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._deleted: set[str] = set()
        self._slots = asyncio.Semaphore(options.concurrency)
        self._facts_sent: dict[str, Any] | None = None
        self._retry_at: dict[str, float] = {}
        self._settling: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._secrets: EdgeSecrets | None = None
        self._renders: OrderedDict[tuple[str, str, str], Revealed] = OrderedDict()
        """What each (app, content index, SOPS files) rendered and revealed to, most recent
        last."""

    # -- the hub connection -------------------------------------------------------------------

    @property
    def cluster(self) -> str:
        return self.session.credential.cluster if self.session else self.local.name

    def _connect(self, config: edge.AgentConfig) -> None:
        self.config = config
        credential = _credential(config)
        # Errors about this cluster name it as the hub knows it.
        self.local.name = credential.cluster
        self.session = HubSession(
            credential, keepalive=max(300.0, 2.5 * self.options.heartbeat_seconds)
        )
        self.api = AgentApi(config.hub_url, config.agent_api_ca)
        self.local.content.hub = _HubContent(self.api, credential.token)

    async def start(self) -> None:
        """Load (or make, with the registration token) this agent's credential and state."""
        config = await self.local.read_config()
        if config is None:
            raise AgentStopped(
                "the agent is not installed on this cluster",
                where=Where(cluster=self.local.name),
                hint="appflow agent install --token TOKEN --hub-url URL --hub-ca-pin PIN",
            )
        if not config.registered:
            attempt = 0
            while True:
                try:
                    config = await register(self.local, config)
                    break
                except AuthError:
                    raise
                except AppflowError as err:
                    if not err.retryable:
                        raise
                    delay = self.options.backoff.delay(attempt)
                    attempt += 1
                    log.warning("registration: %s; retrying in %.0fs", err, delay)
                    await asyncio.sleep(delay)
            await self.local.write_config(config)
        self._connect(config)
        self.states = await self.local.load_deployments()
        for name in self.states:
            self.schedule(name)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until STOP (or a fatal error, raised)."""
        stop = stop or asyncio.Event()
        await self.start()
        tasks = [
            asyncio.create_task(self._hub_loop(), name="agent-hub"),
            asyncio.create_task(self._heartbeat_loop(), name="agent-heartbeat"),
            asyncio.create_task(self._report_loop(), name="agent-report"),
            asyncio.create_task(self._drift_loop(), name="agent-drift"),
        ]
        stopper = asyncio.create_task(stop.wait())
        internal = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({stopper, internal}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stop.set()
            for task in [*tasks, stopper, internal, *self._running.values()]:
                task.cancel()
            await asyncio.gather(*tasks, *self._running.values(), return_exceptions=True)
            await self.close()
        if self.fatal is not None:
            raise self.fatal

    async def close(self) -> None:
        if self.session:
            await self.session.close()
        if self.api:
            await self.api.close()

    def _die(self, err: AppflowError) -> None:
        if self.fatal is None:
            log.error("%s", err)
            self.fatal = (
                err
                if isinstance(err, AgentStopped)
                else AgentStopped(err.message, where=err.where, hint=err.hint)
            )
        self._stop.set()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, or return True early when the agent stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def _hub_loop(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            assert self.session is not None
            try:
                items, version = await self.session.list_deployments()
                self._listed(items)
                self._went_online()
                attempt = 0
                while not self._stop.is_set():
                    async for kind, obj in self.session.watch_deployments(
                        version, timeout=self.options.watch_seconds
                    ):
                        version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                        if kind != "BOOKMARK":
                            self._event(kind, obj)
            except WatchExpired:
                log.info("the watch expired; listing again")
            except AuthError as err:
                self._die(err)
                return
            except AppflowError as err:
                self._went_offline(err)
                delay = self.options.backoff.delay(attempt)
                attempt += 1
                log.info("hub: %s; again in %.1fs", err, delay)
                if await self._sleep(delay):
                    return

    def _went_online(self) -> None:
        if not self.connected.is_set():
            log.info("connected to the hub as cluster %s", self.cluster)
            self.connected.set()
            self._wake_reporter.set()
            for name, state in self.states.items():
                # Whatever the hub shows now (Offline while we were away, or an older
                # status), it gets our latest once.
                if state.status:
                    self.queue.put(name, self._status_of(state))

    def _went_offline(self, err: AppflowError) -> None:
        if self.connected.is_set():
            log.warning("lost the hub: %s", err)
        self.connected.clear()

    def _listed(self, items: list[dict[str, Any]]) -> None:
        seen = {str(i["metadata"]["name"]): i for i in items}
        for name in set(self.remote) | set(self.states):
            if name not in seen:
                self._deleted.add(name)
                self.remote.pop(name, None)
                self.schedule(name)
        for name, obj in seen.items():
            self._deleted.discard(name)
            self._update(name, obj)

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name", ""))
        if not name:
            return
        if kind == "DELETED":
            self._deleted.add(name)
            self.remote.pop(name, None)
            self.schedule(name)
        elif kind in ("ADDED", "MODIFIED"):
            self._deleted.discard(name)
            self._update(name, obj)

    def _update(self, name: str, obj: dict[str, Any]) -> None:
        before = self.remote.get(name)
        self.remote[name] = obj
        shown = str(((obj.get("status") or {}).get("display") or {}).get("state") or "")
        if shown.startswith("Offline") and name in self.states:
            # The hub judged this cluster silent (its heartbeats did not reach it, or it
            # looked while cut off itself): beat at once, then say how things really are.
            self._marked_offline.add(name)
            self._beat_now.set()
        if before is None or before.get("spec") != obj.get("spec"):
            self.schedule(name)

    # -- work ---------------------------------------------------------------------------------

    def schedule(self, name: str) -> None:
        """Work on NAME soon (once more if it is being worked on)."""
        if self._stop.is_set():
            return
        if name in self._running and not self._running[name].done():
            self._again.add(name)
            return
        self._running[name] = asyncio.create_task(self._work(name), name=f"agent-{name}")

    def _follow_up(self, name: str) -> None:
        """Look again soon at a Deployment still settling (NotReady after its apply): back off
        from 1 s to the drift interval, so a rollout reports Ready when it is, not at the next
        drift check."""
        state = self.states.get(name)
        if state is None or state.status.get("state") not in ("NotReady", "WaitApplied"):
            self._settling.pop(name, None)
            return
        attempt = self._settling.get(name, 0)
        self._settling[name] = attempt + 1
        delay = min(self.options.drift_seconds, 2.0**attempt)
        asyncio.get_running_loop().call_later(delay, self.schedule, name)

    async def _work(self, name: str) -> None:
        try:
            while True:
                self._again.discard(name)
                async with self._slots:
                    try:
                        await self._reconcile(name)
                        self._failures.pop(name, None)
                        self._follow_up(name)
                    except AuthError as err:
                        self._die(err)
                        return
                    except AppflowError as err:
                        self._retry(name, err)
                if name not in self._again:
                    return
        finally:
            self._running.pop(name, None)

    def _retry(self, name: str, err: AppflowError) -> None:
        """NAME failed (content not reachable, the cluster's API server busy...): again after
        a backoff (capped by the drift interval), however far it got."""
        attempt = self._failures.get(name, 0)
        self._failures[name] = attempt + 1
        delay = min(self.options.drift_seconds, self.options.backoff.delay(attempt))
        log.warning("%s on %s: %s (again in %.0fs)", name, self.cluster, err, delay)
        self._retry_at[name] = time.monotonic() + delay
        asyncio.get_running_loop().call_later(delay, self.schedule, name)

    async def _reconcile(self, name: str) -> None:
        if name in self._deleted:
            await self._uninstall(name)
            return
        obj = self.remote.get(name)
        state = self.states.get(name)
        spec = (obj or {}).get("spec") or {}
        if obj is None and state is None:
            return
        if state is None:
            # New here, or this cluster's agent was installed again: the hub's history goes
            # on from where it is, so no id is used twice.
            history = ((obj or {}).get("status") or {}).get("history") or ()
            state = edge.DeploymentState(
                name=name, app=str(spec.get("app") or name), history=tuple(history)
            )
        staged = rules.Desired.of(spec.get("staged")) if obj else None
        released = rules.Desired.of(spec.get("released")) if obj else state.released
        paused = bool(spec.get("paused"))
        for action in rules.next_actions(
            staged=staged,
            released=released,
            paused=paused,
            validated=state.validated,
            applied=state.applied,
        ):
            if action == "validate" and staged is not None:
                state = await self._validate(state, staged)
            elif action == "apply" and released is not None:
                state = await self._apply(state, released, trigger="watch")
            elif action == "keep" and released is not None and state.applied == released.key:
                state = await self._check(state, released)

    async def _objects(self, app: str, desired: rules.Desired) -> Revealed:
        """The objects of DESIRED, from the content on this cluster (fetching what it lacks),
        with their encrypted values decrypted by this cluster's own key (and, for
        ``renderOn: agent``, rendered here from the app's inputs)."""
        key = (app, desired.index, desired.secrets or "")
        known = self._renders.get(key)
        if known is not None:
            # Drift checks every few seconds must not run helm and sops each time.
            self._renders.move_to_end(key)
            return known
        before = self.api.downloaded if self.api else 0
        objects = await self.local.content.get_render(desired.index)
        bundle = await self.local.content.get(desired.secrets) if desired.secrets else None
        fetched = (self.api.downloaded if self.api else 0) - before
        if fetched:
            log.info(
                "fetched %d bytes of content for r%d (%s)",
                fetched,
                desired.revision,
                desired.index[:19],
            )
        identity = self.config.age_identity if self.config else ""
        if desired.render_on == "agent":
            if self._secrets is None:
                self._secrets = EdgeSecrets(age.parse_identity(identity) if identity else None)
            revealed = await render_on_edge(
                objects, secrets=self._secrets, cluster=self.cluster, app=app
            )
        else:
            revealed = await reveal_on_edge(
                objects,
                bundle=bundle,
                identity=age.parse_identity(identity) if identity else None,
                cluster=self.cluster,
                app=app,
            )
        self._renders[key] = revealed
        while len(self._renders) > 2 * max(1, len(self.states)):
            self._renders.popitem(last=False)
        return revealed

    async def _validate(
        self, state: edge.DeploymentState, staged: rules.Desired
    ) -> edge.DeploymentState:
        try:
            objects = await self._objects(state.app, staged)
        except REFUSALS as err:
            # No key here for a file, a file tampered with, or (rendered here) a chart that
            # does not render: this cluster refuses the revision, which keeps it from every
            # cluster.
            problem: str | None = str(err)
        else:
            problem = await self.local.validate(state.app, staged, objects)
        validation = rules.Validation(
            revision=staged.revision,
            index=staged.index,
            result="Rejected" if problem else "Validated",
            message=problem or "",
            at=_stamp(),
        )
        log.info(
            "%s: r%d %s%s",
            state.name,
            staged.revision,
            validation.result.lower(),
            f": {problem}" if problem else "",
        )
        return await self._save(state.with_(validated=validation))

    async def _apply(
        self, state: edge.DeploymentState, released: rules.Desired, *, trigger: str
    ) -> edge.DeploymentState:
        started = _stamp()
        try:
            objects: Revealed | None = await self._objects(state.app, released)
        except REFUSALS as err:
            objects, refusal = None, LocalSync(state="ErrApplied", message=str(err), ok=False)
        if state.released != released:
            # Kept before it is applied: a restarted agent has it without the hub.
            state = state.with_(released=released)
            await self.local.save_deployment(state)
        if objects is None:
            result = refusal
        else:
            result = await self.local.sync(
                state.app, released, objects, fingerprints=state.fingerprints, heal=True
            )
        entry = {
            "revision": released.revision,
            "index": released.index,
            "trigger": trigger,
            "startedAt": started,
            "finishedAt": _stamp(),
            "outcome": "succeeded" if result.ok else "failed",
            "counts": dict(result.counts),
            "message": result.message if not result.ok else _summary(result),
            "writer": f"agent/{self.cluster}",
        }
        state = state.with_(
            history=tuple(rules.append_history(state.history, entry)),
            fingerprints=result.fingerprints if result.ok else state.fingerprints,
            applied=released.key if result.ok else state.applied,
        )
        if not result.ok:
            self._retry_at[state.name] = time.monotonic() + self.options.drift_seconds
        log.info(
            "%s: r%d %s: %s", state.name, released.revision, entry["outcome"], entry["message"]
        )
        state = await self._save(state, result=result, revision=released.revision)
        await self.local.content.collect(self._kept_indexes())
        return state

    async def _check(
        self, state: edge.DeploymentState, released: rules.Desired
    ) -> edge.DeploymentState:
        """Drift and health of what is applied; self-heal when the app asks for it."""
        objects = await self._objects(state.app, released)
        heal = bool(released.options.get("selfHeal", False))
        result = await self.local.sync(
            state.app, released, objects, fingerprints=state.fingerprints, heal=heal
        )
        if result.changed:
            entry = {
                "revision": released.revision,
                "index": released.index,
                "trigger": "selfHeal",
                "startedAt": _stamp(),
                "finishedAt": _stamp(),
                "outcome": "succeeded" if result.ok else "failed",
                "counts": dict(result.counts),
                "message": "drift corrected: " + _summary(result),
                "writer": f"agent/{self.cluster}",
            }
            log.info("%s: %s", state.name, entry["message"])
            state = state.with_(
                history=tuple(rules.append_history(state.history, entry)),
                fingerprints=result.fingerprints,
            )
        elif result.ok and result.fingerprints:
            state = state.with_(fingerprints=result.fingerprints)
        previous = dict(state.status)
        state = self._with_status(state, result, released.revision)
        if result.changed or _differs(previous, dict(state.status)):
            state = await self._save(state)
        return state

    async def _uninstall(self, name: str) -> None:
        state = self.states.get(name)
        if state is not None and state.applied is not None:
            result = await self.local.uninstall(state.app)
            log.info("%s: removed from the cluster (%s)", name, _summary(result))
            if not result.ok:
                raise AppflowError(f"{name}: uninstall failed: {result.message}")
        await self.local.forget_deployment(name)
        self.states.pop(name, None)
        self.queue.drop(name)
        self._deleted.discard(name)
        await self.local.content.collect(self._kept_indexes())

    def _kept_indexes(self) -> set[str]:
        keep: set[str] = set()
        for state in self.states.values():
            if state.released:
                keep.add(state.released.index)
        for obj in self.remote.values():
            spec = obj.get("spec") or {}
            for key in ("staged", "released"):
                desired = rules.Desired.of(spec.get(key))
                if desired:
                    keep.add(desired.index)
        return keep

    # -- status -------------------------------------------------------------------------------

    def _with_status(
        self, state: edge.DeploymentState, result: LocalSync | None, revision: int | None
    ) -> edge.DeploymentState:
        status = dict(state.status)
        if result is not None:
            message = result.message
            if state.released is not None and state.released.render_on == "agent":
                # Where it was rendered, for `app show` and `status`: its inputs are encrypted,
                # so the hub shipped them and this cluster decrypted and rendered them.
                message = f"rendered on the cluster (encrypted inputs): {message}"
            status.update(
                {
                    "state": result.state,
                    "message": message,
                    "resourceCounts": dict(result.resource_counts),
                    "failing": list(result.failing),
                    "inventory": {"count": result.inventory},
                    "display": {"state": result.state},
                }
            )
            if state.applied:
                status["appliedRevision"] = state.applied[0]
        elif revision is None and "state" not in status:
            status.update({"state": "WaitApplied", "display": {"state": "WaitApplied"}})
        return state.with_(status=status)

    def _status_of(self, state: edge.DeploymentState) -> dict[str, Any]:
        status = dict(state.status)
        status["history"] = list(state.history)
        if state.validated is not None:
            status["staged"] = state.validated.to_status()
        obj = self.remote.get(state.name)
        if obj is not None:
            status["observedGeneration"] = int((obj.get("metadata") or {}).get("generation") or 0)
        status["updatedAt"] = _stamp()
        return status

    async def _save(
        self,
        state: edge.DeploymentState,
        *,
        result: LocalSync | None = None,
        revision: int | None = None,
    ) -> edge.DeploymentState:
        if result is not None:
            state = self._with_status(state, result, revision)
        await self.local.save_deployment(state)
        self.states[state.name] = state
        self.queue.put(state.name, self._status_of(state))
        self._wake_reporter.set()
        return state

    async def _report_loop(self) -> None:
        while not self._stop.is_set():
            await self._wake_reporter.wait()
            self._wake_reporter.clear()
            if not self.connected.is_set() or self.session is None:
                continue
            for name, status, version in self.queue.pending():
                if name not in self.remote:
                    continue  # the hub has no such Deployment (yet): sent after the next list
                try:
                    await self.session.patch_status(name, status)
                    self.queue.sent(name, version)
                except NotFoundError:
                    self.queue.sent(name, version)
                except AuthError as err:
                    self._die(err)
                    return
                except AppflowError as err:
                    log.info("status of %s waits: %s", name, err)
                    break

    async def _drift_loop(self) -> None:
        while not await self._sleep(self.options.drift_seconds * (0.9 + 0.2 * random.random())):
            now = time.monotonic()
            for name, state in list(self.states.items()):
                if state.released is None:
                    continue
                if state.applied != state.released.key and self._retry_at.get(name, 0) > now:
                    continue
                self.schedule(name)
            if self.connected.is_set() and len(self.queue):
                self._wake_reporter.set()

    # -- heartbeat and credential ---------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = self.options.heartbeat_seconds
        facts: ClusterFacts | None = None
        beats = 0
        while not self._stop.is_set():
            # Cleared before the beat: a mark seen while it is sent asks for the next one now.
            self._beat_now.clear()
            try:
                if facts is None or beats % 10 == 0:
                    facts = await self.local.facts(recipients=self._recipients())
                await self._beat(facts)
                self._resend_marked()
            except AuthError as err:
                self._die(err)
                return
            except AppflowError as err:
                log.info("heartbeat: %s", err)
            beats += 1
            await _either(self._stop, self._beat_now, interval * (0.95 + 0.1 * random.random()))
            if self._stop.is_set():
                return

    def _resend_marked(self) -> None:
        """After a heartbeat: the latest status of each Deployment the hub marked Offline."""
        for name in sorted(self._marked_offline):
            state = self.states.get(name)
            if state is not None and state.status:
                self.queue.put(name, self._status_of(state))
        if self._marked_offline:
            self._marked_offline.clear()
            self._wake_reporter.set()

    def _recipients(self) -> tuple[str, ...]:
        if self.config and self.config.age_identity:
            return (age.parse_identity(self.config.age_identity).recipient,)
        return ()

    async def _beat(self, facts: ClusterFacts) -> None:
        assert self.session is not None
        credential = self.session.credential
        annotations: dict[str, str] = {ANNOTATION_CREDENTIAL: str(credential.generation)}
        data = facts.to_data()
        if data != self._facts_sent:
            annotations[ANNOTATION_FACTS] = json.dumps(data, sort_keys=True)
        lease = await self.session.renew_lease(
            {
                "metadata": {"annotations": annotations},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": max(1, round(self.options.heartbeat_seconds)),
                    "renewTime": _micro(_now()),
                },
            }
        )
        self._facts_sent = data
        wanted = str(
            ((lease.get("metadata") or {}).get("annotations") or {}).get(
                ANNOTATION_CREDENTIAL_REQUEST, ""
            )
        )
        if wanted.isdigit() and int(wanted) > credential.generation:
            await self._switch_credential(int(wanted))
        elif self._token_half_spent():
            await self._switch_credential(credential.generation)

    def _token_half_spent(self) -> bool:
        """Whether the token has less than half of a new one's life left (renew it then: an
        agent offline for a while still comes back with a valid one)."""
        expires = (self.config.registration if self.config else {}).get("expires")
        try:
            left = datetime.fromisoformat(str(expires).replace("Z", "+00:00")) - _now()
        except ValueError:
            return False
        return left.total_seconds() < CREDENTIAL_SECONDS / 2

    async def _switch_credential(self, generation: int) -> None:
        """Take a token bound to GENERATION, keep it on the cluster, then use it."""
        assert self.session is not None
        assert self.config is not None
        token, expires = await self.session.request_token(
            generation=generation, seconds=CREDENTIAL_SECONDS
        )
        registration = {
            **self.config.registration,
            "token": token,
            "generation": generation,
            "expires": expires,
        }
        config = replace(self.config, registration=registration)
        await self.local.write_config(config)
        old = self.session
        old_api = self.api
        self._connect(config)
        if old_api is not None:
            await old_api.close()
        assert self.session is not None
        await self.session.renew_lease(
            {"metadata": {"annotations": {ANNOTATION_CREDENTIAL: str(generation)}}}
        )
        await old.close()
        assert self.api is not None
        await self.api.switched(generation, credential=token)
        log.info("switched to credential generation %d; the older ones are revoked", generation)


@dataclass(frozen=True)
class _HubContent:
    """Content from the hub's agent API, with this agent's credential."""

    api: AgentApi
    credential: str

    async def content(self, digest: str) -> bytes:
        return await self.api.content(digest, credential=self.credential)


async def _either(first: asyncio.Event, second: asyncio.Event, timeout: float) -> None:
    """Wait until either event is set, or TIMEOUT seconds."""
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _summary(result: LocalSync) -> str:
    counts = result.counts
    parts = [
        f"{counts[k]} {k}"
        for k in ("created", "configured", "unchanged", "pruned")
        if counts.get(k)
    ]
    return ", ".join(parts) or result.message or result.state


def _differs(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    keys = ("state", "message", "resourceCounts", "failing", "appliedRevision")
    return any(before.get(k) != after.get(k) for k in keys)
