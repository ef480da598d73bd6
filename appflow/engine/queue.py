"""The daemon's work queue: keyed, coalescing, with per-key backoff.

A key is (app, cluster) where cluster "*" means every target of the app (a new
commit, a user's sync: the app syncs as a whole, so rollouts and validation
across targets apply); a single cluster is used for self-heal and for a
cluster that came back. Triggers for a key that is already waiting merge into
it; a trigger for a key being worked on marks it to run once more afterwards;
a "*" key absorbs the app's single-cluster keys. Who asked (an API token's name) goes
with the trigger that explains the merged sync. A failed item is retried after
an exponential backoff with jitter, so one bad cluster or repository never
spins the daemon, and never delays the others' keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

from appflow.model.records import SyncTrigger

ALL = "*"


@dataclass(frozen=True, order=True)
class WorkKey:
    app: str
    cluster: str = ALL


_PRECEDENCE: tuple[SyncTrigger, ...] = ("watch", "selfHeal", "poll", "webhook", "user", "rollback")
"""Triggers from the least to the most telling: when two asks merge into one sync, its history
names the one that explains it best (a webhook's commit synced while a watch's resync was
waiting is the webhook's sync)."""


@dataclass(frozen=True)
class Ask:
    """Why a key is worked on: the trigger, and who asked (empty for appflow itself)."""

    trigger: SyncTrigger
    actor: str = ""


def _telling(waiting: Ask | None, new: Ask) -> Ask:
    """The ask that explains a merged sync best (the later one of two equally telling)."""
    if waiting is None:
        return new
    if _PRECEDENCE.index(new.trigger) >= _PRECEDENCE.index(waiting.trigger):
        return new
    return waiting


@dataclass
class _Entry:
    key: WorkKey
    ask: Ask
    not_before: float = 0.0
    attempts: int = 0


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Exponential backoff with full jitter, capped."""

    base: float = 2.0
    cap: float = 300.0

    def delay(self, attempts: int, *, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * (2 ** max(0, attempts - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass
class WorkQueue:
    """Keys waiting for a worker; see the module docstring for the rules."""

    backoff: Backoff = field(default_factory=Backoff)
    _waiting: dict[WorkKey, _Entry] = field(default_factory=dict)
    _running: set[WorkKey] = field(default_factory=set)
    _again: dict[WorkKey, Ask] = field(default_factory=dict)
    _asked: dict[WorkKey, Ask] = field(default_factory=dict)
    """The ask of each running key."""
    _failures: dict[WorkKey, int] = field(default_factory=dict)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def __len__(self) -> int:
        return len(self._waiting) + len(self._running)

    def add(
        self, key: WorkKey, *, trigger: SyncTrigger, actor: str = "", delay: float = 0.0
    ) -> None:
        """Ask for KEY to be worked on (merged with what is already asked); ACTOR: who asked."""
        ask = Ask(trigger, actor)
        whole = self._waiting.get(WorkKey(key.app))
        if key.cluster != ALL and whole is not None:
            whole.ask = _telling(whole.ask, ask)
            return  # the whole app syncs soon anyway
        if key in self._running:
            self._again[key] = _telling(self._again.get(key), ask)
            return
        if key.cluster == ALL:
            for other in [k for k in self._waiting if k.app == key.app and k.cluster != ALL]:
                del self._waiting[other]
        current = self._waiting.get(key)
        not_before = time.monotonic() + delay
        if current is None:
            self._waiting[key] = _Entry(key, ask, not_before, self._failures.get(key, 0))
        else:
            # An explicit trigger cuts a backoff short; the earliest wish wins.
            current.not_before = min(current.not_before, not_before)
            current.ask = _telling(current.ask, ask)
        self._wakeup.set()

    def _ready(self) -> _Entry | None:
        now = time.monotonic()
        due = [
            e for e in self._waiting.values() if e.not_before <= now and e.key not in self._running
        ]
        if not due:
            return None
        entry = min(due, key=lambda e: (e.not_before, e.key))
        del self._waiting[entry.key]
        self._running.add(entry.key)
        self._asked[entry.key] = entry.ask
        return entry

    def _next_deadline(self) -> float | None:
        if not self._waiting:
            return None
        return min(e.not_before for e in self._waiting.values())

    async def get(self) -> tuple[WorkKey, SyncTrigger]:
        """Wait for the next due key; it counts as running until done()."""
        while True:
            entry = self._ready()
            if entry is not None:
                return entry.key, entry.ask.trigger
            self._wakeup.clear()
            deadline = self._next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)

    def done(self, key: WorkKey, *, ok: bool) -> float:
        """Mark KEY finished; on failure it is retried after a backoff (returned, seconds)."""
        self._running.discard(key)
        self._asked.pop(key, None)
        delay = 0.0
        if ok:
            self._failures.pop(key, None)
        else:
            attempts = self._failures.get(key, 0) + 1
            self._failures[key] = attempts
            delay = self.backoff.delay(attempts)
        again = self._again.pop(key, None)
        if again is not None or not ok:
            ask = again or Ask("poll")
            self.add(key, trigger=ask.trigger, actor=ask.actor, delay=delay)
        self._wakeup.set()
        return delay

    def actor(self, key: WorkKey) -> str:
        """Who asked for the running KEY (empty: appflow itself, or not running)."""
        ask = self._asked.get(key)
        return ask.actor if ask else ""

    def busy(self, app: str, cluster: str) -> bool:
        """Whether a sync that covers APP on CLUSTER is waiting or running."""
        keys = (WorkKey(app), WorkKey(app, cluster))
        return any(k in self._waiting or k in self._running for k in keys)

    def failures(self, key: WorkKey) -> int:
        return self._failures.get(key, 0)
