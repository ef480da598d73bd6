"""A membership test member, run as its own process: ``python -m tests.integration.hub.member``.

It joins a member group with ``appflow.kube.lease.Membership`` and works on the fixed keys
``key-00``..: for every key it may act on, it writes the ConfigMap ``<group>-<key>`` (data:
its identity, a counter, the time) once, then every ``--beat`` seconds, through a KubeCluster
whose write guard is the membership's fence. What happens is printed as JSON lines on stdout
(acquire, release, write, refused, fenced, renewed), with ``time.time()`` stamps, for the
test to check. ``--lease-kubeconfig`` lets the Lease traffic go another way than the writes
(the fencing test cuts only that way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from appflow.errors import AppflowError, FencedError
from appflow.kube.client import Connection, KubeCluster
from appflow.kube.lease import Membership, MembershipOptions


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


class Worker:
    def __init__(self, kube: KubeCluster, *, me: str, group: str, namespace: str, beat: float):
        self.kube = kube
        self.me = me
        self.group = group
        self.namespace = namespace
        self.beat = beat
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def restrict(self, keep: Any) -> None:
        stopping = [(k, t) for k, t in self.tasks.items() if not keep(k)]
        for key, task in stopping:
            task.cancel()
            del self.tasks[key]
        for key, task in stopping:
            with contextlib.suppress(asyncio.CancelledError):
                await task
            emit("release", member=self.me, key=key)

    def start(self, key: str) -> None:
        if key not in self.tasks:
            self.tasks[key] = asyncio.create_task(self.work(key))

    async def work(self, key: str) -> None:
        emit("acquire", member=self.me, key=key)
        n = 0
        while True:
            n += 1
            manifest = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{self.group}-{key}", "namespace": self.namespace},
                "data": {"owner": self.me, "n": str(n), "at": repr(time.time())},
            }
            try:
                await self.kube.apply(manifest, force=True, field_manager="member")
                emit("write", member=self.me, key=key, n=n)
            except FencedError:
                emit("refused", member=self.me, key=key)
            except AppflowError as err:
                emit("error", member=self.me, key=key, message=str(err))
            if self.beat <= 0:
                await asyncio.Event().wait()
            await asyncio.sleep(self.beat)


async def run(args: argparse.Namespace) -> None:
    keys = [f"key-{i:02d}" for i in range(args.keys)]
    options = MembershipOptions(
        group=args.group,
        namespace=args.namespace,
        identity=args.identity,
        duration=args.duration,
        observe_every=args.observe_every,
    )
    lease_kube = KubeCluster(
        Connection(
            name="hub",
            kubeconfig=Path(args.lease_kubeconfig or args.kubeconfig),
            timeout=max(1.0, args.duration * 0.3),
        )
    )
    holder: dict[str, Membership] = {}
    data_kube = KubeCluster(
        Connection(name="hub", kubeconfig=Path(args.kubeconfig), timeout=5.0),
        write_guard=lambda: holder["m"].remaining(),
    )
    worker = Worker(
        data_kube, me=args.identity, group=args.group, namespace=args.namespace, beat=args.beat
    )
    membership = Membership(lease_kube, options, keys=lambda: keys, restrict=worker.restrict)
    holder["m"] = membership
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def supervise() -> None:
        generation = 0
        fenced = False
        live: frozenset[str] = frozenset()
        while not stop.is_set():
            generation = await membership.wait_changed(generation, timeout=0.5)
            if membership.live != live:
                live = membership.live
                emit("view", member=args.identity, members=sorted(live))
            if membership.fenced_since is not None and not fenced:
                fenced = True
                emit("fenced", member=args.identity)
            elif membership.fenced_since is None and fenced:
                fenced = False
                emit("renewed", member=args.identity)
            for key in sorted(membership.acting()):
                worker.start(key)

    supervisor = asyncio.create_task(supervise())
    emit("start", member=args.identity)
    try:
        await membership.run(stop)
    finally:
        supervisor.cancel()
        lease_kube.close()
        data_kube.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--lease-kubeconfig")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--observe-every", type=float, default=1.0)
    parser.add_argument("--beat", type=float, default=0.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
