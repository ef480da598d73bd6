"""Several apps in one go: `appflow sync --all`, or `appflow sync A B`.

The apps are synced concurrently (at most ``EngineOptions.app_concurrency`` at once), each
after the apps it must wait for: for `--all`, the apps it depends on, so one `sync --all`
deploys a stack in dependency order while apps that do not depend on each other do not wait
for each other; for names given, the name before it, as typed. What depends on what comes
from the apps' records (what their definitions said when last read): no source is fetched
to order them. An app whose sync fails does not stop the others; its dependents still run
after it and hold back (WaitApplied) where it is not Ready, as dependsOn does in any sync.

`--all` leaves out an app a rollback pinned: its pin is an operator's decision that a sync
of "everything" must not undo (a sync that names it refuses, as a single sync does). The
batch says so, with the way out, and syncs the others.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from appflow.engine.parts import EngineParts
from appflow.engine.report import AppSyncReport
from appflow.engine.stages.types import Progress
from appflow.engine.sync import SyncRequest, sync_app
from appflow.errors import AppflowError
from appflow.model.deps import dependency_order, resolve_dependencies


@dataclass(frozen=True, kw_only=True)
class BatchResult:
    """The reports of a batch's apps, in the batch's order, and the errors that stopped
    an app's sync before it had a report."""

    reports: tuple[AppSyncReport, ...]
    errors: tuple[AppflowError, ...]
    skipped: tuple[str, ...] = ()
    """Why each app left out of the batch was (an app pinned by a rollback), said plainly."""


@dataclass(frozen=True, kw_only=True)
class Batch:
    """Apps to sync, in the order their reports are shown, and which must wait for which."""

    names: tuple[str, ...]
    after: Mapping[str, tuple[str, ...]]
    """Per app, the apps of the batch whose syncs must have finished before it starts."""
    pinned: Mapping[str, int] = field(default_factory=dict)
    """Apps of the batch a rollback pinned (to that revision): not synced, said why."""

    @classmethod
    def one_after_another(cls, names: Sequence[str]) -> Batch:
        """NAMES as given, each after the one before (what `appflow sync A B` asks)."""
        unique = tuple(dict.fromkeys(names))
        return cls(names=unique, after={b: (a,) for a, b in itertools.pairwise(unique)})


async def every_app(parts: EngineParts) -> Batch:
    """Every registered app, each after the apps it depends on, the others at once; the
    apps a rollback pinned are in it, to be left out (``Batch.pinned``)."""
    apps = await asyncio.to_thread(parts.store.list_apps)
    graph = resolve_dependencies(apps)  # refuses a missing dependency or a cycle
    held = {a.name: a.pinned_revision for a in apps if a.pinned_revision is not None}
    return Batch(names=tuple(dependency_order(graph)), after=graph, pinned=held)


def skipped_line(app: str, revision: int) -> str:
    """What `sync --all` says of app APP, pinned to REVISION, that it left out."""
    return (
        f"skipped app {app}: pinned to revision {revision} by `appflow app rollback`; "
        f"`appflow app resume {app}` unpins it and syncs the source's revision"
    )


async def sync_apps(
    parts: EngineParts,
    batch: Batch,
    *,
    request: Callable[[str], SyncRequest],
    progress: Progress,
) -> BatchResult:
    """Sync BATCH's apps (REQUEST makes each one's SyncRequest); see the module docstring."""
    limit = asyncio.Semaphore(max(1, parts.options.app_concurrency))
    done = {name: asyncio.Event() for name in batch.names}
    reports: dict[str, AppSyncReport] = {}
    errors: dict[str, AppflowError] = {}

    async def one(name: str) -> None:
        try:
            for before in batch.after.get(name, ()):
                if before in done:
                    await done[before].wait()
            if name in batch.pinned:
                return
            # Each app holds its (app, cluster) pairs in a session of its own, released
            # when its sync is recorded, as a single sync does (Engine.sync).
            async with limit, parts.locks.session():
                reports[name] = await sync_app(parts, request(name), progress=progress)
        except AppflowError as err:
            errors[name] = err
        finally:
            done[name].set()

    await asyncio.gather(*(one(name) for name in batch.names))
    return BatchResult(
        reports=tuple(reports[n] for n in batch.names if n in reports),
        errors=tuple(errors[n] for n in batch.names if n in errors),
        skipped=tuple(skipped_line(n, batch.pinned[n]) for n in batch.names if n in batch.pinned),
    )
