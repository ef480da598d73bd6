"""Running appflow as a user does, in subprocesses: `appflow serve`, `appflow watch`, `appflow
events --follow`; bounded waits that fail naming what they waited for (and the log's tail)."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, configmap, deployment, write_files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def appflow_env(fleet: Fleet) -> dict[str, str]:
    """The environment of an appflow subprocess that uses the test's home and cache."""
    return {
        **os.environ,
        "APPFLOW_HOME": str(fleet.home),
        "APPFLOW_CACHE_DIR": os.environ["APPFLOW_CACHE_DIR"],
        "COLUMNS": "1000",
    }


def synced_small_app(space: Space, folder: Path, base: str) -> str:
    """App BASE (suffixed) of a ConfigMap and a Deployment in FOLDER, added and synced until
    Ready; its name."""
    ns, app = space.namespace, space.app(base)
    write_files(
        folder,
        {
            "appflow.yaml": yaml.safe_dump({"name": app, "namespace": ns}),
            "objects.yaml": [configmap("settings", ns, {"a": "b"}), deployment("web", ns)],
        },
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    assert cli("sync", app, "--wait", "--timeout", "120").exit_code == 0
    return app


def until(
    check: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None
) -> float:
    """Poll CHECK until it holds; fail naming WHAT (with LOG's tail) after TIMEOUT seconds."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
        time.sleep(0.1)
    return time.monotonic() - started


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def serving(
    fleet: Fleet,
    log: Path,
    *,
    args: Sequence[str] = ("--poll", "3600"),
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`appflow serve` on a free port until the block ends (then SIGTERM); yields it and its URL.

    ENV adds to (or overrides) the environment it runs in."""
    port = free_port()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "appflow", "serve", "--listen", f"127.0.0.1:{port}", *args],
            env={**appflow_env(fleet), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        until(lambda: _ready(base), timeout=120, what="appflow serve to be ready", log=log)
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


class LineReader:
    """The stdout of a running command, line by line, read by a thread so waits are bounded."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.process = process
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        stdout = process.stdout

        def pump() -> None:
            for line in stdout:
                self._lines.put(line.rstrip("\n"))
            self._lines.put(None)

        threading.Thread(target=pump, name="line-reader", daemon=True).start()

    def wait_for(self, match: Callable[[str], bool], *, timeout: float, what: str) -> str:
        """The first new line MATCH accepts; fails naming WHAT and every line seen."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.0)) if left > 0 else None
            except queue.Empty:
                line = None
            if line is None:
                ended = (
                    f"exited with {self.process.poll()}"
                    if self.process.poll() is not None
                    else f"timed out after {timeout:.0f}s"
                )
                shown = "\n".join(self.seen[-40:])
                pytest.fail(f"{ended} waiting for {what}; output so far:\n{shown}")
            self.seen.append(line)
            if match(line):
                return line
