"""The local socket of `appflow serve`: a running daemon takes over `appflow sync` and `appflow status`.

A fresh `appflow sync` spends most of its time starting: Python, the Kubernetes client,
reading the kubeconfigs and the cluster's capabilities. `appflow serve` has all of that
loaded and its connections open, so the CLI hands its sync over when a daemon of the same
appflow home is running (``appflow.cli.handover``); the daemon runs exactly what the CLI
would run (``Engine.sync_asked``) and sends back what the CLI prints (``SyncSummary``).

The socket is ``data_dir()/serve.sock``, mode 0600: only the user who may open the store
may use it, and it is never reachable over the network. The protocol is one JSON line
each way, with progress lines in between:

    -> {"sync": <SyncAsk>}
    <- {"progress": "web: rendering for 3 cluster(s)"}            (any number)
    <- {"reports": [<SyncSummary>, ...], "errors": ["...", ...], "skipped": ["...", ...]}  or  {"error": "..."}

    -> {"status": {"cached": false, "timeout": 5.0}}
    <- {"status": <the grid of appflow.model.status.status_grid>}  or  {"error": "..."}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from appflow.engine.engine import Engine
from appflow.errors import AppflowError
from appflow.model.codec import JsonValue, from_json, to_json
from appflow.model.summary import SyncAsk
from appflow.paths import serve_socket

log = logging.getLogger("appflow.serve")

MAX_REQUEST_BYTES = 65_536


@contextlib.asynccontextmanager
async def local_socket(engine: Engine, *, path: Path | None = None) -> AsyncIterator[Path | None]:
    """Serve the local socket at PATH (default ``serve_socket()``) while the block runs.

    Yields None, serving nothing, when another `appflow serve` of this home already
    answers there: CLIs keep talking to that one.
    """
    path = path or serve_socket()
    if _answers(path):
        log.warning("another appflow serve answers at %s; this one takes no CLI syncs", path)
        yield None
        return
    path.unlink(missing_ok=True)  # left by a daemon that was killed
    path.parent.mkdir(parents=True, exist_ok=True)
    # Bound under a temporary name and made 0600 before it is renamed into place: no
    # moment exists when another user could connect.
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    server = await asyncio.start_unix_server(
        lambda r, w: _serve_one(engine, r, w), path=str(temporary), limit=MAX_REQUEST_BYTES
    )
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    inode = path.stat().st_ino
    try:
        yield path
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            # Only our own socket: a newer daemon may have taken the name.
            if path.stat().st_ino == inode:
                path.unlink()
        await server.wait_closed()


def _answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


async def _serve_one(
    engine: Engine, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    def send(message: dict[str, JsonValue]) -> None:
        writer.write(json.dumps(message).encode() + b"\n")

    try:
        request = json.loads(await reader.readline())
        if "status" in request:
            asked = request["status"]
            grid = await engine.status(
                cached=bool(asked["cached"]), timeout=float(asked["timeout"])
            )
            # As `appflow status -o json` prints it (datetimes as text).
            send({"status": json.loads(json.dumps(grid, default=str))})
            return
        ask = from_json(SyncAsk, request["sync"], what="sync")
        result = await engine.sync_asked(ask, progress=lambda text: send({"progress": text}))
        send(
            {
                "reports": [to_json(r.summary()) for r in result.reports],
                "errors": [str(e) for e in result.errors],
                "skipped": list(result.skipped),
            }
        )
    except AppflowError as err:
        send({"error": str(err)})
    except (ValueError, KeyError, TypeError) as err:
        send({"error": f"appflow serve did not understand the request: {err}"})
    finally:
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
