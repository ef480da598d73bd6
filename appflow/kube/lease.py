"""Membership of the hub's controller replicas: each holds a Lease, and shares the work.

The Lease I/O and the loop around the pure rules of ``appflow.model.membership`` (read its
docstring for the protocol). Each member:

1. renews its own Lease (``coordination.k8s.io/v1``) every third of the lease duration, with
   the member set it acts on in the annotation ``appflow.dev/members``; the start of the last
   renewal that succeeded sets its fence;
2. lists every member's Lease about once a second. A list without ``resourceVersion`` is a
   consistent read from etcd, which the handover rule needs (a watch cache may lag, and a
   lagging read could show an old claim), and the Leases are few and small;
3. when the live set changes: asks its shard to stop the keys it loses, publishes the new
   set, reads again, and only then tells its shard to start what it gained.

``Membership.may_act(key)`` answers the shard; ``Membership.remaining()`` is the write guard
handed to every ``KubeCluster`` the member writes with. Blocking calls run in the
KubeCluster's threads; this module only schedules them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from appflow.errors import AppflowError, ConfigError, FencedError, Where
from appflow.kube.client import KubeCluster
from appflow.model import membership as rules
from appflow.model.hub import MANAGED_BY, SYSTEM_NAMESPACE

log = logging.getLogger("appflow.membership")

LEASE_API = "coordination.k8s.io/v1"
LABEL_GROUP = "appflow.dev/member-group"
ANNOTATION_VIEW = "appflow.dev/view"
FIELD_MANAGER = "appflow-membership"
STALE_LEASES = 10.0
"""Leases unchanged for this many lease durations are deleted (by one member)."""

Restrict = Callable[[Callable[[str], bool]], Awaitable[None]]
"""Stop every key the predicate rejects, and return once they stopped writing."""
Keys = Callable[[], Collection[str]]
"""The work keys to share (the same set on every member once their watches agree)."""


def default_identity() -> str:
    """This process's member name: the host (pod) name and a random suffix, so that a
    restarted process is a new member and never mistaken for its predecessor."""
    host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-")[:40] or "member"
    return f"{host}-{secrets.token_hex(3)}"


@dataclass(frozen=True, kw_only=True)
class MembershipOptions:
    group: str = "controller"
    """Members of one group share work; the label value on their Leases."""
    namespace: str = SYSTEM_NAMESPACE
    identity: str = field(default_factory=default_identity)
    duration: float = 15.0
    """Lease duration in seconds (whole seconds on the Lease)."""
    observe_every: float = 1.0
    """Seconds between two reads of the Leases."""

    def __post_init__(self) -> None:
        if self.duration < 3 or self.duration != int(self.duration):
            raise ConfigError(
                "the lease duration must be a whole number of seconds, at least 3",
                where=Where(field="duration"),
            )
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?", self.identity):
            raise ConfigError(
                f"member identity {self.identity!r} must be a DNS label of at most 42 characters",
                where=Where(field="identity"),
            )

    @property
    def lease_name(self) -> str:
        return f"appflow-member-{self.identity}"


async def _keep_all(_: Callable[[str], bool]) -> None:
    return None


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Membership:
    """This process's membership: its Lease, its view of the others, its fence."""

    def __init__(
        self,
        kube: KubeCluster,
        options: MembershipOptions,
        *,
        keys: Keys,
        restrict: Restrict = _keep_all,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.options = options
        self.me = options.identity
        self._keys = keys
        self._restrict = restrict
        self._clock = clock
        self._fence = rules.Fence(duration=options.duration)
        self._sightings: dict[str, rules.Sighting] = {}
        self._live: frozenset[str] = frozenset()
        self._published: rules.View | None = None
        self._views: dict[str, rules.View | None] = {}
        self._allowed: frozenset[str] = frozenset()
        self._renew_due = 0.0
        self._changed = asyncio.Condition()
        self._generation = 0
        self.fenced_since: float | None = None

    # -- what the shard asks --------------------------------------------------------------

    def remaining(self) -> float:
        """Seconds this member may still write; <= 0 when fenced. The KubeCluster write guard."""
        return self._fence.remaining(now=self._clock())

    def check(self) -> None:
        """Raise FencedError unless this member may write."""
        if self.remaining() <= 0:
            raise FencedError(
                f"member {self.me} no longer holds its Lease",
                hint="it rejoins by itself once it reaches the API server again",
            )

    def may_act(self, key: str) -> bool:
        """Whether this member may work on KEY now (its owner, handed over, not fenced)."""
        return key in self._allowed and self.remaining() > 0

    def acting(self) -> frozenset[str]:
        """Every key this member may work on now."""
        return self._allowed if self.remaining() > 0 else frozenset()

    @property
    def live(self) -> frozenset[str]:
        return self._live

    @property
    def generation(self) -> int:
        """Changes whenever may_act's answers may have changed."""
        return self._generation

    async def wait_changed(self, generation: int, *, timeout: float | None = None) -> int:
        """Wait until the generation differs from GENERATION (or TIMEOUT); the new one."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._generation != generation), timeout
                )
            return self._generation

    async def _bump(self) -> None:
        async with self._changed:
            self._generation += 1
            self._changed.notify_all()

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the Lease and follow the others until STOP is set; then leave cleanly."""
        log.info("member %s joining group %s", self.me, self.options.group)
        watchdog = asyncio.create_task(self._watch_fence(stop), name="membership-fence")
        try:
            while not stop.is_set():
                await self._tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.options.observe_every)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            await self._leave()

    async def _watch_fence(self, stop: asyncio.Event) -> None:
        """Stop all work the moment the fence closes, even while a request of the loop hangs."""
        while not stop.is_set():
            left = self.remaining()
            if left <= 0 and self.fenced_since is None and self._fence.renewed_at is not None:
                await self._fenced()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(max(left, 0.05), 0.5))

    async def _fenced(self) -> None:
        self.fenced_since = self._clock()
        log.warning("member %s is fenced: no renewal succeeded in time", self.me)
        # It claims nothing until it has looked at the others again.
        self._published = None
        self._allowed = frozenset()
        await self._restrict(lambda _key: False)
        await self._bump()

    async def _tick(self) -> None:
        if self._clock() >= self._renew_due:
            await self._renew(self._published)
        if self.remaining() <= 0:
            if self.fenced_since is None and self._fence.renewed_at is not None:
                await self._fenced()
            return
        if self.fenced_since is not None:
            log.info("member %s holds its Lease again", self.me)
            self.fenced_since = None
        if not await self._read():
            return
        keys = frozenset(self._keys())
        view = rules.View(
            members=tuple(sorted(self._live | {self.me})), keys=rules.keys_digest(keys)
        )
        if view != self._published:
            # Stop what the new view takes away, then say so, then look again: only a read
            # made after the publish may let this member start a key it gains.
            owners = rules.assign(keys, view.members)
            self._allowed = frozenset()
            await self._restrict(lambda key: owners.get(key) == self.me)
            if not await self._renew(view) or not await self._read():
                return
        self._allowed = rules.allowed(
            me=self.me, keys=keys, live=self._live, published=self._published, views=self._views
        )
        await self._bump()
        await self._collect_stale()

    async def _renew(self, view: rules.View | None) -> bool:
        started = self._clock()
        published = {"members": list(view.members), "keys": view.keys} if view else None
        lease = {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "metadata": {
                "name": self.options.lease_name,
                "namespace": self.options.namespace,
                "labels": {**MANAGED_BY, LABEL_GROUP: self.options.group},
                "annotations": {ANNOTATION_VIEW: json.dumps(published)},
            },
            "spec": {
                "holderIdentity": self.me,
                "leaseDurationSeconds": int(self.options.duration),
                "renewTime": _micro_time(datetime.now(UTC)),
            },
        }
        try:
            # The Lease's KubeCluster has no write guard: renewing is how a fenced member
            # gets its fence back.
            await self.kube.apply(
                lease, force=True, field_manager=FIELD_MANAGER, timeout=self._request_timeout()
            )
        except AppflowError as err:
            log.warning("member %s could not renew its Lease: %s", self.me, err)
            self._renew_due = started + min(1.0, self.options.observe_every)
            return False
        self._fence = self._fence.renewed(started_at=started)
        self._published = view
        self._renew_due = started + rules.RENEW_EVERY * self.options.duration
        return True

    def _request_timeout(self) -> float:
        # A request that hangs longer than this would outlast what it decides about.
        return max(1.0, 0.3 * self.options.duration)

    async def _read(self) -> bool:
        try:
            leases = await self.kube.list_objects(
                LEASE_API,
                "Lease",
                namespace=self.options.namespace,
                label_selector=f"{LABEL_GROUP}={self.options.group}",
                timeout=self._request_timeout(),
            )
        except AppflowError as err:
            log.warning("member %s could not read the Leases: %s", self.me, err)
            return False
        now = self._clock()
        records = [r for r in (_record_of(lease) for lease in leases) if r is not None]
        self._sightings = rules.observe(self._sightings, records, now=now)
        self._live = rules.live_members(self._sightings, now=now)
        self._views = {m: s.record.view for m, s in self._sightings.items()}
        return True

    async def _collect_stale(self) -> None:
        # The lowest-named live member collects; a Lease this stale is no member's.
        if not self._live or min(self._live) != self.me:
            return
        now = self._clock()
        for member, sighting in list(self._sightings.items()):
            if now - sighting.seen_at > STALE_LEASES * sighting.record.duration:
                with contextlib.suppress(AppflowError):
                    await self.kube.delete(
                        LEASE_API, "Lease", f"appflow-member-{member}", self.options.namespace
                    )

    async def _leave(self) -> None:
        """Stop every key, then delete the Lease so that the others take over at once."""
        self._allowed = frozenset()
        await self._restrict(lambda _key: False)
        await self._bump()
        with contextlib.suppress(AppflowError):
            await self.kube.delete(
                LEASE_API, "Lease", self.options.lease_name, self.options.namespace
            )
        log.info("member %s left", self.me)


def _record_of(lease: dict[str, Any]) -> rules.LeaseRecord | None:
    spec = lease.get("spec") or {}
    meta = lease.get("metadata") or {}
    holder = spec.get("holderIdentity")
    if not holder:
        return None
    view: rules.View | None = None
    try:
        raw = json.loads((meta.get("annotations") or {}).get(ANNOTATION_VIEW) or "null")
        if raw:
            view = rules.View(members=tuple(str(m) for m in raw["members"]), keys=str(raw["keys"]))
    except (ValueError, TypeError, KeyError):
        view = None  # unreadable: it claims nothing we could honour, and blocks nothing
    duration = spec.get("leaseDurationSeconds")
    return rules.LeaseRecord(
        member=str(holder),
        version=str(meta.get("resourceVersion", "")),
        duration=float(duration) if duration else math.inf,
        view=view,
    )
