"""Saved-file notifications for `appflow watch` and the catalog folder of `appflow serve`.

The operating system's notifications (inotify) are the fast way, but they can be
unavailable: a user's other tools (editors, IDE indexers, local Kubernetes) may have used
every inotify instance the kernel allows, and network or container-mounted folders send
none. Rather than stopping with the kernel's error, the watch then looks at the files'
times every ``poll_ms`` milliseconds and says so once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

log = logging.getLogger("appflow.watch")


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
    import watchfiles

    while True:
        watched = False
        try:
            async for changes in watchfiles.awatch(
                root,
                debounce=debounce_ms,
                step=50,
                stop_event=stop,
                force_polling=poll,
                poll_delay_ms=poll_ms,
            ):
                watched = True
                yield {Path(path) for _, path in changes}
            return
        except RuntimeError as err:
            # watchfiles reports a refused inotify_init/inotify_add_watch (EMFILE, ENOSPC)
            # as a RuntimeError before its first batch; later failures are not ours to hide.
            if poll or watched:
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
            poll = True
