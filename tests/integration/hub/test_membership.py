"""Membership against a real API server: members as processes sharing 60 keys by Leases.

Each member is ``tests/integration/hub/member.py`` in its own process; the tests read what
they print (acquire, release, write, fenced, with times) and what they wrote on the hub.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import eventually
from tests.integration.hub.conftest import Hub

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Member:
    identity: str
    process: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)

    def acting(self) -> set[str]:
        """The keys it holds now, from what it printed."""
        held: set[str] = set()
        for e in list(self.events):
            if e["event"] == "acquire":
                held.add(e["key"])
            elif e["event"] == "release":
                held.discard(e["key"])
            elif e["event"] == "fenced":
                held.clear()
        return held

    def seen(self, event: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["event"] == event]


class Group:
    """Members of one group on the hub, started as processes and stopped afterwards."""

    def __init__(self, hub: Hub, namespace: str, tmp: Path) -> None:
        self.hub = hub
        self.namespace = namespace
        self.name = f"g-{secrets.token_hex(3)}"
        self.tmp = tmp
        self.members: list[Member] = []

    def start(
        self,
        *,
        keys: int = 60,
        duration: float = 15.0,
        beat: float = 0.0,
        lease_kubeconfig: Path | None = None,
    ) -> Member:
        identity = f"m{len(self.members)}-{secrets.token_hex(3)}"
        args = [
            sys.executable,
            "-m",
            "tests.integration.hub.member",
            "--kubeconfig",
            str(self.hub.kubeconfig),
            "--namespace",
            self.namespace,
            "--group",
            self.name,
            "--identity",
            identity,
            "--keys",
            str(keys),
            "--duration",
            str(duration),
            "--beat",
            str(beat),
        ]
        if lease_kubeconfig is not None:
            args += ["--lease-kubeconfig", str(lease_kubeconfig)]
        log = open(self.tmp / f"{identity}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        member = Member(identity=identity, process=process)

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                member.events.append(json.loads(line))

        threading.Thread(target=read, daemon=True).start()
        self.members.append(member)
        return member

    def stop(self) -> None:
        for m in self.members:
            if m.process.poll() is None:
                m.process.terminate()
        for m in self.members:
            try:
                m.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                m.process.kill()

    def owners(self) -> dict[str, str]:
        """key -> member, from the ConfigMaps the members wrote."""
        kube = self.hub.kube()
        try:
            maps = kube.list_sync("v1", "ConfigMap", namespace=self.namespace)
        finally:
            kube.close()
        prefix = f"{self.name}-"
        return {
            m["metadata"]["name"][len(prefix) :]: m["data"]["owner"]
            for m in maps
            if m["metadata"]["name"].startswith(prefix)
        }


@pytest.fixture
def group(hub: Hub, hub_namespace: str, tmp_path: Path) -> Iterator[Group]:
    g = Group(hub, hub_namespace, tmp_path)
    try:
        yield g
    finally:
        g.stop()


def _settled(members: list[Member], keys: int) -> bool:
    """Every member sees exactly MEMBERS, and the KEYS are held once each."""
    names = sorted(m.identity for m in members)
    for m in members:
        views = m.seen("view")
        if not views or views[-1]["members"] != names:
            return False
    held = [m.acting() for m in members]
    return sum(len(h) for h in held) == keys and len(set().union(*held)) == keys


@pytest.mark.cluster
def test_sixty_keys_spread_evenly_over_three_members(group: Group) -> None:
    members = [group.start() for _ in range(3)]
    eventually(lambda: _settled(members, 60), timeout=90, what="60 keys held once each")
    shares = {m.identity: len(m.acting()) for m in members}
    print(f"shares: {shares}")
    assert all(15 <= n <= 25 for n in shares.values()), shares
    eventually(
        lambda: group.owners() == {k: m.identity for m in members for k in m.acting()},
        timeout=30,
        what="each key's ConfigMap written by its holder",
    )


def _overlaps(members: list[Member], *, until: float) -> list[str]:
    """Keys that two members held at the same moment, from their acquire/release times."""
    intervals: dict[str, list[tuple[float, float, str]]] = {}
    for m in members:
        start: dict[str, float] = {}
        ended_at = until
        for e in m.events:
            if e["event"] == "acquire":
                start[e["key"]] = e["t"]
            elif e["event"] in ("release",) and e["key"] in start:
                intervals.setdefault(e["key"], []).append((start.pop(e["key"]), e["t"], m.identity))
            elif e["event"] == "fenced":
                for key, t in start.items():
                    intervals.setdefault(key, []).append((t, e["t"], m.identity))
                start.clear()
        if m.process.poll() is not None and m.events:
            ended_at = m.events[-1]["t"]
        for key, t in start.items():
            intervals.setdefault(key, []).append((t, ended_at, m.identity))
    problems = []
    for key, spans in intervals.items():
        spans.sort()
        for (_s1, e1, a), (s2, _e2, b) in itertools.pairwise(spans):
            if a != b and s2 < e1:
                problems.append(f"{key}: {a} until {e1:.3f}, {b} from {s2:.3f}")
    return problems


@pytest.mark.cluster
def test_a_killed_members_keys_move_to_the_others_within_the_lease_duration(group: Group) -> None:
    duration = 15.0
    members = [group.start(duration=duration) for _ in range(3)]
    eventually(lambda: _settled(members, 60), timeout=90, what="60 keys held once each")
    victim = members[0]
    lost = victim.acting()
    assert lost
    killed_at = time.time()
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=10)
    survivors = members[1:]
    eventually(lambda: _settled(survivors, 60), timeout=duration * 3, what="survivors hold all 60")
    taken = [
        e["t"]
        for m in survivors
        for e in m.seen("acquire")
        if e["key"] in lost and e["t"] > killed_at
    ]
    takeover = max(taken) - killed_at
    print(f"{len(lost)} keys moved; the last one {takeover:.1f} s after the kill")
    assert takeover <= duration
    assert not _overlaps(members, until=time.time())
    eventually(
        lambda: set(group.owners().values()) <= {m.identity for m in survivors},
        timeout=30,
        what="the moved keys' ConfigMaps rewritten by the survivors",
    )


class Proxy:
    """A TCP proxy to the API server that can be cut (connections dropped, new ones hang)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.sockets.append(client)
                if not self.open:
                    continue  # a black hole: accepted, never answered
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.open:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.close()

    def cut(self) -> None:
        with self.lock:
            self.open = False
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
            self.sockets.clear()

    def restore(self) -> None:
        with self.lock:
            self.open = True

    def close(self) -> None:
        self.cut()
        self.server.close()


def proxied(kubeconfig: Path, into: Path) -> tuple[Proxy, Path]:
    """A Proxy to KUBECONFIG's API server, and a copy of KUBECONFIG (at INTO) that goes
    through it."""
    config = yaml.safe_load(kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    proxy = Proxy((host, int(port)))
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    into.write_text(yaml.safe_dump(config))
    return proxy, into


@pytest.mark.cluster
def test_a_member_cut_off_from_the_api_server_stops_writing_within_the_lease_duration(
    group: Group, hub: Hub, tmp_path: Path
) -> None:
    proxy, through_proxy = proxied(hub.kubeconfig, tmp_path / "lease-kubeconfig")
    duration = 6.0
    try:
        member = group.start(keys=4, duration=duration, beat=0.3, lease_kubeconfig=through_proxy)
        eventually(lambda: len(member.acting()) == 4, timeout=60, what="the member holds 4 keys")
        eventually(lambda: len(member.seen("write")) >= 12, timeout=30, what="writes every 0.3 s")
        cut_at = time.time()
        proxy.cut()
        eventually(lambda: member.seen("fenced"), timeout=duration * 3, what="the member fenced")
        fenced_at = member.seen("fenced")[0]["t"]
        writes_after_cut = [e["t"] for e in member.seen("write") if e["t"] > cut_at]
        print(
            f"fenced {fenced_at - cut_at:.1f} s after the cut; last write"
            f" {max(writes_after_cut, default=cut_at) - cut_at:.1f} s after it"
        )
        assert fenced_at - cut_at <= duration
        assert all(t <= fenced_at for t in writes_after_cut)
        # Its writes go straight to the API server, so one after the fence would show there.
        stored = _config_maps(hub, group)
        assert len(stored) == 4
        for cm in stored:
            assert float(cm["data"]["at"]) <= fenced_at, cm["metadata"]["name"]
        proxy.restore()
        eventually(lambda: member.seen("renewed"), timeout=duration * 3, what="the member back")
        renewed_at = member.seen("renewed")[0]["t"]
        eventually(
            lambda: any(e["t"] > renewed_at for e in member.seen("write")),
            timeout=30,
            what="writes resumed after rejoining",
        )
    finally:
        proxy.close()


def _config_maps(hub: Hub, group: Group) -> list[dict[str, Any]]:
    kube = hub.kube()
    try:
        return [
            m
            for m in kube.list_sync("v1", "ConfigMap", namespace=group.namespace)
            if m["metadata"]["name"].startswith(group.name)
        ]
    finally:
        kube.close()
