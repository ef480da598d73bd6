"""Who does what among the hub's controller replicas: membership, sharding, handover, fencing.

The rules of docs/hub.md §5, as pure functions of what a member has observed, so they are
tested without a cluster (``appflow.kube.lease`` does the Lease I/O and runs the loop):

- **Rendezvous hashing with bounded loads.** Each key ranks the members by
  ``sha256(member "\\0" key)``; keys, taken in the order of their own hash, go to the
  highest-ranked member that holds fewer than ``ceil((1 + SLACK) * keys / members)`` keys of
  that kind (apps, repositories and clusters are each balanced on their own). Plain
  rendezvous hashing leaves each member a binomial share (60 keys over 3 members: outside
  15..25 for some member in about a third of fleets); the bound keeps every share at most 10 %
  above the mean (over 3 members, so at least 80 % of it), and a member joining or leaving
  still moves few keys. Because the assignment
  depends on the whole key set, members publish a digest of the key set they assign.
- **Liveness on the observer's clock.** A member is live while its Lease changed less than
  ``OBSERVER_EXPIRY`` of the lease duration ago, *measured from when the observer saw the
  change* (as client-go's leader election does): no two machines' clocks are compared.
- **Fencing.** A member writes only until ``HOLDER_FENCE`` of the duration after its last
  successful renewal *started*. Observers see that renewal after it started and wait longer
  (``OBSERVER_EXPIRY`` > ``HOLDER_FENCE``) before taking over, so a member that lost the API
  server has stopped before anyone else starts.
- **Handover.** A member publishes in its Lease the *view* it acts on: the members and the
  digest of the keys. It acts on a key only when the key is its own under its current view
  and its published one, and no other live member's published view gives the key to that
  member (a view with another key digest gives no answer, so it blocks). It stops the keys it
  loses *before* it publishes a new view, and starts the keys it gains only after reading,
  after that publish, everyone's views with a consistent read. Of two members that each
  publish then read, at least one reads the other's claim, so two never act on one key.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

HOLDER_FENCE = 0.8
"""A holder stops writing this fraction of the lease duration after its last renewal began."""
OBSERVER_EXPIRY = 0.9
"""An observer counts a member dead this fraction of the duration after it saw its last change."""
RENEW_EVERY = 1 / 3
"""A holder renews this fraction of the duration after its last renewal."""
SLACK = 0.1
"""A member holds at most this much more than an even share of the keys."""


def score(member: str, key: str) -> int:
    """The rendezvous weight of KEY on MEMBER."""
    return int.from_bytes(hashlib.sha256(f"{member}\0{key}".encode()).digest()[:8], "big")


def keys_digest(keys: Iterable[str]) -> str:
    """A short digest of a key set, published with a view."""
    h = hashlib.sha256()
    for key in sorted(set(keys)):
        h.update(key.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def assign(keys: Collection[str], members: Collection[str]) -> dict[str, str]:
    """Every key's member: rendezvous order, bounded loads (see the module's docstring)."""
    return dict(_assign(frozenset(keys), tuple(sorted(set(members)))))


@lru_cache(maxsize=64)
def _assign(keys: frozenset[str], members: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if not members:
        return ()
    # Each kind of key (what comes before the first "/": apps, repositories, clusters) is
    # balanced on its own: bounded over all keys together, a few keys of another kind could
    # push one member's share of the apps below the bound.
    kinds: dict[str, list[str]] = {}
    for key in keys:
        kind, _, rest = key.partition("/")
        kinds.setdefault(kind if rest else "", []).append(key)  # "key-07" and the like: one kind
    out: list[tuple[str, str]] = []
    for kind in sorted(kinds):
        cap = max(1, math.ceil((1 + SLACK) * len(kinds[kind]) / len(members)))
        load = dict.fromkeys(members, 0)
        for key in sorted(kinds[kind], key=lambda k: (hashlib.sha256(k.encode()).digest(), k)):
            ranked = sorted(members, key=lambda m: (score(m, key), m), reverse=True)
            chosen = next(m for m in ranked if load[m] < cap)
            load[chosen] += 1
            out.append((key, chosen))
    return tuple(out)


def shares(keys: Collection[str], members: Collection[str]) -> dict[str, list[str]]:
    """Every member's keys (members with none included)."""
    out: dict[str, list[str]] = {m: [] for m in sorted(set(members))}
    for key, member in assign(keys, members).items():
        out[member].append(key)
    return out


@dataclass(frozen=True, kw_only=True)
class View:
    """What a member acts on: the members it counts and the digest of the keys it assigns."""

    members: tuple[str, ...]
    keys: str


@dataclass(frozen=True, kw_only=True)
class LeaseRecord:
    """A member's Lease as read from the API server."""

    member: str
    version: str
    """Changes with every write of the Lease (its resourceVersion)."""
    duration: float
    view: View | None
    """The view it published (None: none, so it acts on nothing)."""


@dataclass(frozen=True, kw_only=True)
class Sighting:
    """When this observer first saw a Lease at its current version (on its own clock)."""

    record: LeaseRecord
    seen_at: float


def observe(
    previous: Mapping[str, Sighting], records: Iterable[LeaseRecord], *, now: float
) -> dict[str, Sighting]:
    """Sightings after reading RECORDS at NOW: a Lease whose version did not change keeps the
    time it was first seen at that version; a Lease gone from the list is forgotten."""
    out: dict[str, Sighting] = {}
    for record in records:
        before = previous.get(record.member)
        if before is not None and before.record.version == record.version:
            out[record.member] = Sighting(record=record, seen_at=before.seen_at)
        else:
            out[record.member] = Sighting(record=record, seen_at=now)
    return out


def is_live(sighting: Sighting, *, now: float) -> bool:
    return now - sighting.seen_at < OBSERVER_EXPIRY * sighting.record.duration


def live_members(sightings: Mapping[str, Sighting], *, now: float) -> frozenset[str]:
    return frozenset(m for m, s in sightings.items() if is_live(s, now=now))


def allowed(
    *,
    me: str,
    keys: Collection[str],
    live: frozenset[str],
    published: View | None,
    views: Mapping[str, View | None],
) -> frozenset[str]:
    """The keys ME may act on now.

    KEYS is the key set ME assigns, LIVE its current member set, PUBLISHED the view ME last
    wrote to its Lease, VIEWS the others' published views as read (consistently) after it.
    """
    digest = keys_digest(keys)
    if published is None or published.keys != digest or me not in live:
        return frozenset()
    mine = {k for k, m in assign(keys, live).items() if m == me}
    mine &= {k for k, m in assign(keys, published.members).items() if m == me}
    for other in live - {me}:
        theirs = views.get(other)
        if theirs is None:
            continue
        if theirs.keys != digest:
            return frozenset()  # it assigns other keys: what it claims cannot be known
        mine -= {k for k, m in assign(keys, theirs.members).items() if m == other}
    return frozenset(mine)


@dataclass(frozen=True, kw_only=True)
class Fence:
    """Until when a holder may write, from when its last successful renewal started."""

    duration: float
    renewed_at: float | None = None
    """Start (on the holder's monotonic clock) of the last renewal that succeeded."""

    def deadline(self) -> float:
        if self.renewed_at is None:
            return float("-inf")
        return self.renewed_at + HOLDER_FENCE * self.duration

    def remaining(self, *, now: float) -> float:
        """Seconds left to write (<= 0: fenced)."""
        return self.deadline() - now

    def renewed(self, *, started_at: float) -> Fence:
        return Fence(duration=self.duration, renewed_at=started_at)
