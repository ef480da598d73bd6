"""Interrupting syncs at a chosen point: appflow as a separate process, a watch on the
cluster that says when that point is reached, and the store's write lock held from outside.

A point of a sync is a condition on what the cluster holds ("the first object of the new
content exists"), never a time: a watch sees each write as it lands, and the test then
stops (SIGSTOP), resumes (SIGCONT) or kills (SIGKILL) the appflow process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from appflow.errors import AppflowError
from appflow.kube.client import Connection, KubeCluster
from appflow.model.objects import LABEL_APP, Manifest

Objects = dict[str, Manifest]


def appflow_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an appflow subprocess that uses HOME (and the test's cache)."""
    return {
        **os.environ,
        "APPFLOW_HOME": str(home),
        "APPFLOW_CACHE_DIR": os.environ["APPFLOW_CACHE_DIR"],
        "COLUMNS": "1000",
        **extra,
    }


class AppflowProcess:
    """`python -m appflow ARGS` in the background, its output in a file."""

    def __init__(
        self, home: Path, args: Sequence[str], *, log: Path, cwd: Path | None = None, **env: str
    ) -> None:
        self.log = log
        self.args = tuple(args)
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "appflow", *args],
                env=appflow_env(home, **env),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def freeze(self) -> None:
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=60)

    def _signal(self, sig: signal.Signals) -> None:
        if not self.running():
            pytest.fail(
                f"appflow {' '.join(self.args)} ended before it could be interrupted "
                f"(exit {self.process.returncode}):\n{self.output()[-3000:]}"
            )
        os.kill(self.pid, sig)

    def wait(self, *, timeout: float = 300) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"appflow {' '.join(self.args)} did not end:\n{self.output()[-3000:]}")

    def close(self) -> None:
        if self.running():
            with_signal = (signal.SIGCONT, signal.SIGKILL)
            for sig in with_signal:
                os.kill(self.pid, sig)
            self.process.wait(timeout=60)


class ObjectWatch:
    """The app's objects of one kind in one namespace, kept current by a watch.

    Runs the cluster client's watch in a thread of its own; ``until`` waits for a
    condition on what the watch has seen (each event wakes it up).
    """

    def __init__(
        self,
        kubeconfig: Path,
        *,
        app: str,
        namespaces: Sequence[str],
        api_version: str,
        kind: str,
    ) -> None:
        self.namespaces = frozenset(namespaces)
        self.objects: Objects = {}
        """'namespace/name' -> the object as last seen."""
        self._changed = threading.Condition()
        self._failure: BaseException | None = None
        self._ready = threading.Event()
        self._kube = KubeCluster(Connection(name="watch", kubeconfig=kubeconfig))
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(
            target=self._run, args=(app, api_version, kind), name="object-watch", daemon=True
        )
        self._thread.start()

    def _run(self, app: str, api_version: str, kind: str) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._pump(app, api_version, kind))
        except BaseException as err:  # reported to the waiting test
            self._failure = err
        finally:
            with self._changed:
                self._changed.notify_all()

    async def _pump(self, app: str, api_version: str, kind: str) -> None:
        self._stop = asyncio.Event()
        self._ready.set()
        while not self._stop.is_set():
            try:
                await self._follow(app, api_version, kind)
            except AppflowError:
                # The API server went away (a test may kill it): watch again once it is
                # back; the new watch lists what exists, so start from nothing.
                with self._changed:
                    self.objects.clear()
                await asyncio.sleep(0.5)

    async def _follow(self, app: str, api_version: str, kind: str) -> None:
        async for event, obj in self._kube.watch(
            api_version, kind, label_selector=f"{LABEL_APP}={app}", stop=self._stop
        ):
            meta = obj.get("metadata") or {}
            if meta.get("namespace") not in self.namespaces:
                continue
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            with self._changed:
                if event == "DELETED":
                    self.objects.pop(key, None)
                else:
                    self.objects[key] = obj
                self._changed.notify_all()

    def until(
        self, check: Callable[[Objects], bool], *, what: str, timeout: float = 120
    ) -> Objects:
        """Wait until CHECK holds for the objects seen; return a copy of them."""
        self._ready.wait(timeout=30)
        deadline = time.monotonic() + timeout
        with self._changed:
            while not check(self.objects):
                if self._failure is not None:
                    raise self._failure
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
                self._changed.wait(timeout=min(left, 1.0))
            return dict(self.objects)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        self._kube.close()


@contextmanager
def watching(
    kubeconfig: Path, *, app: str, namespace: str, api_version: str = "v1", kind: str = "ConfigMap"
) -> Iterator[ObjectWatch]:
    watch = ObjectWatch(
        kubeconfig, app=app, namespaces=[namespace], api_version=api_version, kind=kind
    )
    try:
        yield watch
    finally:
        watch.close()


@contextmanager
def store_write_lock(home: Path) -> Iterator[None]:
    """Hold the store's write lock (as another appflow process in a transaction would)."""
    conn = sqlite3.connect(str(home / "appflow.db"), timeout=60, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def with_value(key: str, value: str) -> Callable[[Objects], bool]:
    """A condition: some object's data[KEY] is VALUE (a write of the new content landed)."""

    def check(objects: Objects) -> bool:
        return any((o.get("data") or {}).get(key) == value for o in objects.values())

    return check
