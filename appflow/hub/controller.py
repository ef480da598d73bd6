"""``appflow controller``: one replica of the hub controller (docs/hub.md §5).

A replica holds its membership Lease (``appflow.kube.lease``), follows the AppFlows of its
workspace with one list+watch, and takes its share of them by rendezvous hashing: the
``Shard`` is told which AppFlows are its own as the members come and go, and stops the ones
it loses before the membership lets another replica start them. Its HTTP port answers
``/healthz`` (the process runs) and ``/readyz`` (it holds its Lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appflow.errors import AppflowError, ConfigError, Where
from appflow.kube.client import Connection, KubeCluster
from appflow.kube.lease import Membership, MembershipOptions, default_identity
from appflow.model.hub import API_VERSION, DEFAULT_WORKSPACE, SYSTEM_NAMESPACE

log = logging.getLogger("appflow.controller")


@dataclass(frozen=True, kw_only=True)
class ControllerOptions:
    kubeconfig: Path | None
    """None: the pod's ServiceAccount."""
    context: str | None = None
    namespace: str = SYSTEM_NAMESPACE
    """Where the membership Leases are."""
    workspace: str | None = DEFAULT_WORKSPACE
    """The namespace whose AppFlows this controller serves (None: every namespace)."""
    lease_duration: int = 15
    listen: str | None = None
    """host:port for /healthz and /readyz."""
    identity: str = ""


def identity_from_environment() -> str:
    """The pod's name (POD_NAME, from the downward API) with a random suffix, else the host's."""
    pod = os.environ.get("POD_NAME", "").lower()
    return f"{pod[:35]}-{secrets.token_hex(3)}" if pod else default_identity()


def app_key(namespace: str, name: str) -> str:
    return f"appflow/{namespace}/{name}"


class Shard:
    """The AppFlows this replica works on."""

    def __init__(self) -> None:
        self.acting: set[str] = set()

    async def restrict(self, keep: Callable[[str], bool]) -> None:
        for key in sorted(self.acting):
            if not keep(key):
                self.acting.discard(key)
                log.info("released %s", key)

    def take(self, keys: frozenset[str]) -> None:
        for key in sorted(keys - self.acting):
            self.acting.add(key)
            log.info("took %s", key)


RESYNC_SECONDS = 300.0
"""A full list this often: a watch that had to restart from scratch does not report what was
deleted meanwhile (client-go's informers resync for the same reason)."""


async def _follow_appflows(
    kube: KubeCluster, options: ControllerOptions, keys: set[str], stop: asyncio.Event
) -> None:
    """Keep KEYS equal to the AppFlows of the workspace: a list, then a watch, again every
    RESYNC_SECONDS and after errors."""

    def key_of(obj: dict[str, object]) -> str | None:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return None
        namespace = str(meta.get("namespace", ""))
        if options.workspace and namespace != options.workspace:
            return None
        return app_key(namespace, str(meta.get("name", "")))

    while not stop.is_set():
        round_over = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(RESYNC_SECONDS, round_over.set)
        relay = asyncio.create_task(_relay(stop, round_over))
        try:
            listed = await kube.list_objects(API_VERSION, "AppFlow")
            keys.clear()
            keys.update(k for k in map(key_of, listed) if k)
            async for event, obj in kube.watch(API_VERSION, "AppFlow", stop=round_over):
                key = key_of(obj)
                if key is None:
                    continue
                if event == "DELETED":
                    keys.discard(key)
                else:
                    keys.add(key)
        except AppflowError as err:
            log.warning("following AppFlows: %s", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
        finally:
            timer.cancel()
            relay.cancel()


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _serve_health(listen: str, ready: Callable[[], bool], stop: asyncio.Event) -> None:
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"--listen {listen!r}: expected HOST:PORT", where=Where(field="listen"))

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            request = (await reader.readline()).decode(errors="replace").split()
            path = request[1] if len(request) > 1 else "/"
            ok = path == "/healthz" or (path == "/readyz" and ready())
            known = path in ("/healthz", "/readyz")
            status = "200 OK" if ok else ("503 Service Unavailable" if known else "404 Not Found")
            body = status.split(" ", 1)[1].encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, host or "0.0.0.0", int(port))
    async with server:
        await stop.wait()


async def run_controller(options: ControllerOptions, *, stop: asyncio.Event | None = None) -> None:
    """Run one replica until STOP is set (or SIGTERM/SIGINT)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    identity = options.identity or identity_from_environment()
    timeout = max(1.0, 0.3 * options.lease_duration)
    lease_kube = KubeCluster(
        Connection(
            name="hub", kubeconfig=options.kubeconfig, context=options.context, timeout=timeout
        )
    )
    watch_kube = KubeCluster(
        Connection(name="hub", kubeconfig=options.kubeconfig, context=options.context)
    )
    keys: set[str] = set()
    shard = Shard()
    membership = Membership(
        lease_kube,
        MembershipOptions(
            namespace=options.namespace,
            identity=identity,
            duration=float(options.lease_duration),
        ),
        keys=lambda: frozenset(keys),
        restrict=shard.restrict,
    )

    async def assign() -> None:
        generation = 0
        while not stop.is_set():
            generation = await membership.wait_changed(generation, timeout=1.0)
            shard.take(membership.acting())

    tasks = [
        asyncio.create_task(_follow_appflows(watch_kube, options, keys, stop), name="appflows"),
        asyncio.create_task(assign(), name="assign"),
    ]
    if options.listen:
        tasks.append(
            asyncio.create_task(
                _serve_health(options.listen, lambda: membership.remaining() > 0, stop),
                name="health",
            )
        )
    log.info(
        "controller %s: leases in %s, AppFlows of %s",
        identity,
        options.namespace,
        options.workspace or "every namespace",
    )
    try:
        await membership.run(stop)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        lease_kube.close()
        watch_kube.close()
