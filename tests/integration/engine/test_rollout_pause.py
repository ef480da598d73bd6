"""`rollout pause` holds a rollout across polls, resyncs and webhooks; `resume` continues it
from the partition it was paused before."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from appflow.engine.rollouts import resume_rollout
from appflow.model.records import SyncTrigger
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    live,
    register_local,
    write_files,
)

pytestmark = pytest.mark.cluster


def _app(folder: Path, name: str, ns: str, colour: str) -> None:
    write_files(
        folder,
        {
            "appflow.yaml": yaml.safe_dump(
                {
                    "name": name,
                    "namespace": ns,
                    # One cluster per partition: partition-1, -2, -3 in name order.
                    "rollout": {"maxUnavailable": 1, "autoPartitionSize": 1},
                }
            ),
            "config.yaml": [configmap("settings", ns, {"colour": colour})],
        },
    )


def _colours(fleet: Fleet, ns: str) -> list[str]:
    return [
        live(fleet.sandbox, i, "v1", "ConfigMap", "settings", ns)["data"]["colour"]
        for i in range(len(fleet.cluster_names))
    ]


def _ready_events(fleet: Fleet, app: str) -> list[str]:
    return [
        e.message.split("'")[1]
        for e in fleet.store.list_events(app=app, limit=1000)
        if e.kind == "rollout" and e.outcome == "Ready"
    ]


def test_a_paused_rollout_holds_through_polls_resyncs_and_webhooks_and_resumes_where_it_stopped(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app = space.namespace, space.app("waves")
    folder = tmp_path / "waves"
    _app(folder, app, ns, "blue")
    register_local(fleet, app, folder)
    first = asyncio.run(fleet.engine.sync(app))
    assert first.ok, first
    assert fleet.store.get_rollout(app).state == "Complete"

    _app(folder, app, ns, "green")
    store = fleet.store

    def pause_before_the_third(line: str) -> None:
        # The user pauses while the second partition is being delivered.
        if "(partition partition-2)" in line:
            store.put_rollout(replace(store.get_rollout(app), state="Paused"))

    second = asyncio.run(fleet.engine.sync(app, progress=pause_before_the_third))
    third_cluster = fleet.cluster_names[2]
    assert list(second.held) == [third_cluster]
    assert _colours(fleet, ns) == ["green", "green", "blue"]
    paused = store.get_rollout(app)
    assert (paused.state, paused.current) == ("Paused", 2)

    triggers: tuple[SyncTrigger, ...] = ("poll", "poll", "webhook")  # a poll, a resync, a webhook
    for trigger in triggers:
        again = asyncio.run(fleet.engine.sync(app, trigger=trigger))
        assert list(again.held) == [third_cluster], trigger
        assert _colours(fleet, ns) == ["green", "green", "blue"], trigger
        assert store.get_rollout(app).state == "Paused", trigger
        assert store.get_deployment(app, third_cluster).state == "OutOfSync", trigger

    status = cli("rollout", "status", app, "-o", "json")
    assert '"state": "Paused"' in status.output, status.output

    ready_before = _ready_events(fleet, app)
    resume_rollout(fleet.store, app)
    resumed = asyncio.run(fleet.engine.sync(app))
    assert resumed.ok, resumed
    assert not resumed.held
    assert _colours(fleet, ns) == ["green", "green", "green"]
    done = store.get_rollout(app)
    assert (done.state, done.current) == ("Complete", 3)
    # Resumed from the paused partition: only partition-3 passed its gate now.
    assert _ready_events(fleet, app)[len(ready_before) :] == ["partition-3"]
    assert store.get_deployment(app, third_cluster).state == "Ready"
