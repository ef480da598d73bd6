"""The chaos suite: syncs of changing content while processes, API servers and the store's
lock fail at chosen points; what must hold afterwards is checked (see harness.py).

The short form runs with the normal suite; `make chaos` runs the long form
(APPFLOW_CHAOS_ITERATIONS, APPFLOW_CHAOS_SEED and APPFLOW_CHAOS_REPORT choose the length,
the seed and a file for the figures).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
from pathlib import Path

import pytest

from appflow import sandbox as sb
from tests.chaos.conftest import CLUSTERS, PREFIX, ChaosFleet
from tests.chaos.harness import Chaos

pytestmark = [pytest.mark.cluster, pytest.mark.chaos]

SHORT_ITERATIONS = 24
SHORT_SEED = 10


def test_a_killed_api_server_comes_back_alone_with_its_data(chaos_fleet: ChaosFleet) -> None:
    name = chaos_fleet.names[0]
    [before] = [i for i in sb.list_sandbox(root=chaos_fleet.root) if i.name == name]
    os.kill(before.processes["kube-apiserver"], signal.SIGKILL)
    [degraded] = [i for i in sb.list_sandbox(root=chaos_fleet.root) if i.name == name]
    assert degraded.status == "Degraded", degraded

    [after] = [
        i
        for i in sb.up(clusters=CLUSTERS, prefix=PREFIX, nodes=1, root=chaos_fleet.root)
        if i.name == name
    ]
    assert after.status == "Running"
    assert after.server == before.server
    # Only the API server was started again: etcd (and with it the data) kept running.
    assert after.processes["etcd"] == before.processes["etcd"]
    assert after.processes["kube-apiserver"] != before.processes["kube-apiserver"]


def test_invariants_hold_through_seeded_faults(chaos_fleet: ChaosFleet, tmp_path: Path) -> None:
    iterations = int(os.environ.get("APPFLOW_CHAOS_ITERATIONS", SHORT_ITERATIONS))
    seed = int(os.environ.get("APPFLOW_CHAOS_SEED", SHORT_SEED))
    chaos = Chaos(chaos_fleet, seed=seed, workdir=tmp_path, suffix=secrets.token_hex(3))
    figures = chaos.run(iterations, converge_every=10)
    summary = figures.summary()
    print(f"\nchaos figures: {json.dumps(summary)}")
    report = os.environ.get("APPFLOW_CHAOS_REPORT")
    if report:
        Path(report).write_text(
            json.dumps({**summary, "violationList": figures.violations}, indent=2)
        )
    assert not figures.violations, "\n".join(figures.violations[:50])
