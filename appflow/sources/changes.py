"""Saved-file notifications for `appflow watch` and the catalog folder of `appflow serve`.

The operating system's notifications (inotify) are the fast way, but they can be
unavailable: a user's other tools (editors, IDE indexers, local Kubernetes) may have used
every inotify instance the kernel allows, and network or container-mounted folders send
none. Rather than stopping with the kernel's error, the watch then looks at the files'
times and sizes every ``poll_ms`` milliseconds and says so once. That look is appflow's own:
watchfiles' polling compares modification times in whole seconds, so a second save within
the same second as the first went unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from watchfiles import Change, DefaultFilter

log = logging.getLogger("appflow.watch")

_IGNORED = DefaultFilter()
"""What the native watch ignores (version control, caches, editors' swap files): polling
ignores the same, so both modes sync after the same saves."""


async def file_changes(
    root: Path,
    *,
    debounce_ms: int,
    stop: asyncio.Event | None = None,
    poll: bool = False,
    poll_ms: int = 300,
) -> AsyncIterator[set[Path]]:
    """Each batch of paths saved under ROOT, until STOP is set.

    POLL looks at file times instead of asking the operating system; it is also the
    fallback when the operating system refuses to watch (the reason is logged once).
    """
    if poll:
        async for polled in _polled(root, debounce_ms=debounce_ms, stop=stop, poll_ms=poll_ms):
            yield polled
        return
    import watchfiles

    watched = False
    try:
        async for native in watchfiles.awatch(root, debounce=debounce_ms, step=50, stop_event=stop):
            watched = True
            yield {Path(path) for _, path in native}
        return
    except RuntimeError as err:
        # watchfiles reports a refused inotify_init/inotify_add_watch (EMFILE, ENOSPC) as a
        # RuntimeError before its first batch; later failures are not ours to hide.
        if watched:
            raise
        log.warning(
            "cannot watch %s through the operating system (%s); looking at file times "
            "every %d ms instead. To watch natively, raise the kernel's limits "
            "(sysctl fs.inotify.max_user_instances / max_user_watches) or close other "
            "watchers; `--poll` chooses polling from the start.",
            root,
            err,
            poll_ms,
        )
    async for changes in _polled(root, debounce_ms=debounce_ms, stop=stop, poll_ms=poll_ms):
        yield changes


def _snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    """Every file under ROOT with its modification time (ns) and size."""
    found: dict[Path, tuple[int, int]] = {}
    for folder, folders, files in os.walk(root):
        folders[:] = [f for f in folders if f not in _IGNORED.ignore_dirs]
        for name in files:
            path = Path(folder, name)
            if not _IGNORED(Change.modified, str(path)):
                continue
            with contextlib.suppress(OSError):  # removed between the listing and the look
                status = path.stat()
                found[path] = (status.st_mtime_ns, status.st_size)
    return found


async def _quiet(stop: asyncio.Event | None, seconds: float) -> bool:
    """Wait SECONDS; True when STOP was set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def _polled(
    root: Path, *, debounce_ms: int, stop: asyncio.Event | None, poll_ms: int
) -> AsyncIterator[set[Path]]:
    before = await asyncio.to_thread(_snapshot, root)
    while not await _quiet(stop, poll_ms / 1000):
        now = await asyncio.to_thread(_snapshot, root)
        changed = {p for p in before.keys() | now.keys() if before.get(p) != now.get(p)}
        before = now
        if not changed:
            continue
        # Saves that follow within the debounce belong to the same batch.
        while not await _quiet(stop, debounce_ms / 1000):
            now = await asyncio.to_thread(_snapshot, root)
            more = {p for p in before.keys() | now.keys() if before.get(p) != now.get(p)}
            before = now
            if not more:
                break
            changed |= more
        yield changed
