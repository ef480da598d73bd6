"""Handing `appflow sync` and `appflow status` to a running `appflow serve` of the same home.

The daemon has the engine loaded and its cluster connections open; the CLI then pays
only for its own start-up and for printing (see ``appflow.server.local`` for the
protocol). Nothing here imports the engine: when no daemon answers, the caller syncs
(or reads the clusters) in its own process, exactly as the daemon would have.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appflow.errors import AppflowError
from appflow.model.codec import from_json, to_json
from appflow.model.summary import SyncAsk, SyncSummary
from appflow.paths import serve_socket


@dataclass(frozen=True, kw_only=True)
class HandedOver:
    """What the daemon's sync did: each app's summary, errors that stopped an app, and
    why it left an app out (``BatchResult.skipped``)."""

    summaries: tuple[SyncSummary, ...]
    errors: tuple[str, ...]
    skipped: tuple[str, ...] = ()


def hand_over(ask: SyncAsk, *, progress: Callable[[str], None]) -> HandedOver | None:
    """ASK run by the daemon (PROGRESS gets its progress lines); None when none answers."""
    answer = _exchange({"sync": to_json(ask)}, progress=progress, what="sync")
    if answer is None:
        return None
    return HandedOver(
        summaries=tuple(from_json(SyncSummary, r) for r in answer["reports"]),
        errors=tuple(str(e) for e in answer["errors"]),
        skipped=tuple(str(s) for s in answer.get("skipped", ())),
    )


def status_of_serve(*, cached: bool, timeout: float) -> dict[str, Any] | None:
    """The status grid (``appflow.model.status.status_grid``) as the daemon sees it: read
    again from the clusters, each within TIMEOUT, or as recorded with CACHED; None when
    no daemon answers."""
    answer = _exchange(
        {"status": {"cached": cached, "timeout": timeout}},
        progress=lambda _text: None,
        what="status",
    )
    return None if answer is None else dict(answer["status"])


def _exchange(
    request: dict[str, Any], *, progress: Callable[[str], None], what: str
) -> dict[str, Any] | None:
    """Send REQUEST (the command WHAT) to the daemon's socket; its answer (progress lines
    go to PROGRESS), or None when no daemon answers there."""
    path = serve_socket()
    if not path.exists():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:
        # A socket left by a daemon that was killed, or one we may not use.
        connection.close()
        return None
    with connection, connection.makefile("rb") as replies:
        connection.sendall(json.dumps(request).encode() + b"\n")
        for line in replies:
            message = json.loads(line)
            if "progress" in message:
                progress(str(message["progress"]))
            elif "error" in message:
                # Already worded (place, what to do) by the daemon, as the CLI would have.
                raise AppflowError(str(message["error"]))
            else:
                return dict(message)
    raise AppflowError(
        f"appflow serve (at {path}) stopped before the {what} finished",
        hint=f"see `appflow events`; run the {what} again",
    )
