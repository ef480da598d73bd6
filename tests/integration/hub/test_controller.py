"""`appflow controller` replicas as processes against the hub: they share the AppFlows."""

from __future__ import annotations

import re
import secrets
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from appflow.model.hub import API_VERSION
from tests.helpers import eventually
from tests.integration.hub.conftest import Hub

ROOT = Path(__file__).resolve().parents[3]
TOOK = re.compile(r"took appflow/(\S+)/(\S+)")
RELEASED = re.compile(r"released appflow/(\S+)/(\S+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _holding(log: Path) -> set[str]:
    held: set[str] = set()
    for line in log.read_text().splitlines():
        if m := TOOK.search(line):
            held.add(m.group(2))
        elif m := RELEASED.search(line):
            held.discard(m.group(2))
    return held


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.mark.cluster
def test_two_controllers_share_the_appflows_of_their_workspace(
    hub_crds: Hub, hub_namespace: str, tmp_path: Path
) -> None:
    leases = f"{hub_namespace}"
    names = [f"app-{i:02d}" for i in range(12)]
    for name in names:
        app = {
            "apiVersion": API_VERSION,
            "kind": "AppFlow",
            "metadata": {"name": name, "namespace": hub_namespace},
            "spec": {"definition": {"namespace": "web"}},
        }
        hub_crds.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(app))
    processes: list[tuple[subprocess.Popen[bytes], Path, int]] = []
    try:
        for i in range(2):
            log, port = tmp_path / f"controller-{i}.log", _free_port()
            args = [
                sys.executable,
                "-m",
                "appflow",
                "controller",
                "--kubeconfig",
                str(hub_crds.kubeconfig),
                "--namespace",
                leases,
                "--workspace",
                hub_namespace,
                "--lease-duration",
                "6",
                "--listen",
                f"127.0.0.1:{port}",
                "--identity",
                f"c{i}-{secrets.token_hex(3)}",
            ]
            with log.open("wb") as out:
                processes.append((subprocess.Popen(args, cwd=ROOT, stderr=out), log, port))

        def shared() -> bool:
            held = [_holding(log) for _, log, _ in processes]
            return all(held) and sorted(held[0] | held[1]) == names and not held[0] & held[1]

        try:
            eventually(shared, timeout=90, what="the 12 AppFlows held once each by 2 controllers")
        except BaseException:
            for _, log, _ in processes:
                print(f"--- {log.name}\n{log.read_text()[-3000:]}")
            raise
        for _, _, port in processes:
            assert _ready(port)
    finally:
        for process, _, _ in processes:
            process.terminate()
        for process, _, _ in processes:
            process.wait(timeout=30)
