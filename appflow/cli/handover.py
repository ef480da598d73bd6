"""Handing `appflow sync` to a running `appflow serve` of the same appflow home.

The daemon has the engine loaded and its cluster connections open; the CLI then pays
only for its own start-up and for printing (see ``appflow.server.local`` for the
protocol). Nothing here imports the engine: when no daemon answers, the caller syncs in
its own process, exactly as the daemon would have.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass

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
        connection.sendall(json.dumps({"sync": to_json(ask)}).encode() + b"\n")
        for line in replies:
            message = json.loads(line)
            if "progress" in message:
                progress(str(message["progress"]))
            elif "error" in message:
                # Already worded (place, what to do) by the daemon, as the CLI would have.
                raise AppflowError(str(message["error"]))
            else:
                return HandedOver(
                    summaries=tuple(from_json(SyncSummary, r) for r in message["reports"]),
                    errors=tuple(str(e) for e in message["errors"]),
                    skipped=tuple(str(s) for s in message.get("skipped", ())),
                )
    raise AppflowError(
        f"appflow serve (at {path}) stopped before the sync finished",
        hint="see `appflow events`; run the sync again",
    )
