"""One writer per app and cluster, across processes: the holds a process has, and their heartbeat.

Two syncs of one app onto one cluster at once (the CLI and the daemon, two CLIs,
`appflow watch`) each read the inventory, then write their own: objects of the one are
left out of the other's inventory and never pruned. So every verb that writes to a
cluster holds (app, cluster) from before it reads live state until its result is
recorded. The holds live in the store (``Store.acquire_sync_lock``: a table in the
embedded store; hub mode's store is to keep them as Leases, and a pull agent is the only
writer of its own cluster), with the holder's pid, host and start, and a heartbeat
renewed while it works. A second writer waits up to its lock timeout, then fails with
"sync of APP on CLUSTER in progress by PID/host since T". A holder that died (its pid
is gone from this host) or stopped renewing (another host) is taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import secrets
import time
from collections.abc import AsyncIterator

from appflow.errors import AppflowError, StoreError, SyncInProgressError, Where
from appflow.model.records import SyncLock
from appflow.store import Store

log = logging.getLogger("appflow.engine.locks")

HEARTBEAT_SECONDS = 15.0
STALE_AFTER_SECONDS = 120.0
"""A hold not renewed for this long is taken over: eight missed heartbeats."""
_POLL_SECONDS = 0.5


class SyncLocks:
    """The holds this process has on (app, cluster) pairs; renewed while any is held.

    Each verb (a sync, a rollback, an uninstall) runs in a ``session()``: what it
    acquires is its own, released when the session ends, and another session of the
    same process (another daemon worker) waits for it like another process would.
    """

    def __init__(
        self,
        store: Store,
        *,
        heartbeat: float = HEARTBEAT_SECONDS,
        stale_after: float = STALE_AFTER_SECONDS,
    ) -> None:
        self.store = store
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self._held: dict[tuple[str, str], SyncLock] = {}
        self._unreleased: list[SyncLock] = []
        """Holds whose release the store refused (busy): retried until it takes them."""
        self._beating: asyncio.Task[None] | None = None
        self._session: contextvars.ContextVar[set[tuple[str, str]] | None] = contextvars.ContextVar(
            f"sync-locks-{id(self)}", default=None
        )

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        """Holds acquired inside the block (and its tasks) are released when it ends."""
        mine: set[tuple[str, str]] = set()
        reset = self._session.set(mine)
        try:
            yield
        finally:
            self._session.reset(reset)
            await self._release(mine)

    async def acquire(self, app: str, cluster: str, *, timeout: float) -> None:
        """Hold APP on CLUSTER for the current session (at once when it already does).

        Waits up to TIMEOUT seconds for another holder, warning once (on stderr, for
        the CLI) who it waits for; then raises SyncInProgressError naming the holder.
        """
        mine = self._session.get()
        assert mine is not None, "acquire() outside of a SyncLocks.session()"
        key = (app, cluster)
        if key in mine:
            return
        await self._release_unreleased()
        token = secrets.token_hex(8)
        deadline = time.monotonic() + timeout
        told = False
        while True:
            lock = await asyncio.to_thread(
                self.store.acquire_sync_lock,
                app,
                cluster,
                token=token,
                stale_after=self.stale_after,
                mine=frozenset(h.token for h in self._held.values()),
            )
            if lock.token == token:
                self._held[key] = lock
                mine.add(key)
                self._beat()
                return
            busy = f"sync of {app} on {cluster} in progress by {lock.holder}"
            left = deadline - time.monotonic()
            if left <= 0:
                raise SyncInProgressError(
                    busy,
                    where=Where(app=app, cluster=cluster),
                    hint="try again when it has finished, or wait for it with --lock-timeout SECONDS",
                )
            if not told:
                log.warning("%s; waiting up to %.0fs for it to finish", busy, timeout)
                told = True
            # Polling the store is the condition this waits on: a release is a row gone.
            await asyncio.sleep(min(_POLL_SECONDS, left))

    async def _release(self, keys: set[tuple[str, str]]) -> None:
        for key in sorted(keys):
            lock = self._held.pop(key, None)
            if lock is not None:
                self._unreleased.append(lock)
        await self._release_unreleased()
        if not self._held and not self._unreleased and self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
            self._beating = None
        elif self._unreleased:
            self._beat()

    async def _release_unreleased(self) -> None:
        """Release what is due; what the store refuses now (busy) is tried again by the
        heartbeat and the next acquire. Meanwhile the hold is stale for this process,
        and for the others once this process is gone or its heartbeat old."""
        pending, self._unreleased = self._unreleased, []
        for lock in pending:
            try:
                await asyncio.to_thread(
                    self.store.release_sync_lock, lock.app, lock.cluster, token=lock.token
                )
            except StoreError as err:
                self._unreleased.append(lock)
                log.warning(
                    "could not release the sync lock of %s on %s yet: %s",
                    lock.app,
                    lock.cluster,
                    err,
                )

    def _beat(self) -> None:
        if self._beating is None or self._beating.done():
            self._beating = asyncio.create_task(self._heartbeats(), name="sync-lock-heartbeat")

    async def _heartbeats(self) -> None:
        while self._held or self._unreleased:
            await asyncio.sleep(self.heartbeat)
            await self._release_unreleased()
            tokens = {lock.token for lock in self._held.values()}
            try:
                kept = await asyncio.to_thread(self.store.renew_sync_locks, tokens)
            except AppflowError as err:
                # A store busy for a moment: the next beat renews; a hold goes stale
                # only after many missed beats.
                log.warning("could not renew sync locks: %s", err)
                continue
            for key, lock in list(self._held.items()):
                if lock.token not in kept:
                    log.warning(
                        "the sync lock of %s on %s was taken over after this process "
                        "stopped renewing it for %.0fs",
                        *key,
                        self.stale_after,
                    )
