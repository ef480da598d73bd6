"""The recorder: what sync results become in the store, written off the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from appflow.engine.recorder import Recorder
from appflow.engine.stages.types import DesiredState, SyncResult
from appflow.errors import ApplyError, ClusterUnreachableError
from appflow.model.health import Health, HealthStatus
from appflow.model.inventory import Inventory
from appflow.model.plan import Plan
from appflow.model.records import (
    AppRecord,
    ClusterRecord,
    HelmReleaseRef,
    LocalContent,
    RolloutPartitionRecord,
    RolloutRecord,
)
from appflow.store import SqliteStore, open_store

APP, CLUSTER = "web", "berlin-1"
SOURCE = LocalContent(digest="0123456789ab")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with open_store(tmp_path / "appflow.db") as opened:
        opened.put_cluster(ClusterRecord(name=CLUSTER, kind="eve-k", state="Offline"))
        opened.put_app(AppRecord(name=APP, source="local", local_path="/src/web"))
        yield opened


def result(**changes: object) -> SyncResult:
    base = SyncResult(
        app=APP,
        cluster=CLUSTER,
        revision="r",
        plan=Plan(()),
        state="Ready",
        health=Health(HealthStatus.HEALTHY, "all ready"),
        inventory=Inventory(APP, ()),
        fingerprints={"shop_web_apps_Deployment": "d:m:u"},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_finished_sync_is_history_deployment_cluster_and_event_written_off_the_loop(
    store: SqliteStore,
) -> None:
    recorder = Recorder(store)
    loop_thread = threading.get_ident()
    writers: list[int] = []
    original = store.finish_sync

    def spy(*args: object, **kwargs: object) -> object:
        writers.append(threading.get_ident())
        return original(*args, **kwargs)  # type: ignore[arg-type]

    store.finish_sync = spy  # type: ignore[method-assign]

    async def run() -> None:
        desired = {
            CLUSTER: DesiredState(app=APP, cluster=CLUSTER, objects=({"kind": "X"},), revision="r")
        }
        revision = await recorder.revision(APP, desired, source_ref=SOURCE)
        sync = await recorder.sync_started(APP, CLUSTER, revision=revision, trigger="poll")
        await recorder.sync_finished(sync, result(), revision=revision, source_ref=SOURCE)

    asyncio.run(run())

    assert writers
    assert loop_thread not in writers
    [sync] = store.list_syncs(APP)
    assert (sync.outcome, sync.revision) == ("succeeded", 1)
    deployment = store.get_deployment(APP, CLUSTER)
    assert (deployment.state, deployment.applied_revision) == ("Ready", 1)
    assert store.get_cluster(CLUSTER).state == "Online"
    [event] = [e for e in store.list_events(app=APP) if e.kind == "sync"]
    assert event.commit == "local:0123456789ab"


def test_a_release_remembers_which_helm_revision_each_revision_became(store: SqliteStore) -> None:
    recorder = Recorder(store)
    desired = {
        CLUSTER: DesiredState(app=APP, cluster=CLUSTER, objects=({"kind": "X"},), revision="a")
    }

    async def sync(revision_digest: str, helm: int) -> None:
        wanted = {c: replace(d, revision=revision_digest) for c, d in desired.items()}
        revision = await recorder.revision(APP, wanted, source_ref=SOURCE)
        record = await recorder.sync_started(APP, CLUSTER, revision=revision, trigger="user")
        release = HelmReleaseRef(namespace="shop", name=APP, revision=helm)
        await recorder.sync_finished(
            record, result(fingerprints={}, release=release), revision=revision, source_ref=SOURCE
        )

    asyncio.run(sync("a", 1))
    asyncio.run(sync("b", 2))

    release = store.get_deployment(APP, CLUSTER).release
    assert release is not None
    assert release.revision == 2
    assert (release.helm_revision_of(1), release.helm_revision_of(2)) == (1, 2)


def test_only_a_failed_health_probe_makes_a_cluster_offline(store: SqliteStore) -> None:
    recorder = Recorder(store)
    store.put_cluster(replace(store.get_cluster(CLUSTER), state="Online"))

    # One request failed, but the cluster answers its probe: the Deployment's failure.
    asyncio.run(recorder.cluster_failed(APP, CLUSTER, ClusterUnreachableError("reset")))
    assert store.get_deployment(APP, CLUSTER).state == "ErrApplied"
    assert store.get_cluster(CLUSTER).state == "Online"

    asyncio.run(
        recorder.cluster_failed(APP, CLUSTER, ClusterUnreachableError("timed out"), offline=True)
    )
    assert store.get_deployment(APP, CLUSTER).state == "Unknown"
    assert store.get_cluster(CLUSTER).state == "Offline"

    asyncio.run(recorder.cluster_failed(APP, CLUSTER, ApplyError("inventory refused")))
    assert store.get_deployment(APP, CLUSTER).state == "ErrApplied"


def test_a_running_sync_never_overwrites_a_pause(store: SqliteStore) -> None:
    recorder = Recorder(store)
    partitions = (
        RolloutPartitionRecord(name="p1", clusters=("a",), max_unavailable=1),
        RolloutPartitionRecord(name="p2", clusters=("b",), max_unavailable=1),
    )
    store.put_rollout(
        RolloutRecord(
            app=APP, revision=2, state="Paused", partitions=partitions, message="paused by user"
        )
    )

    saved = asyncio.run(
        recorder.rollout(
            RolloutRecord(
                app=APP, revision=2, state="Progressing", partitions=partitions, current=1
            )
        )
    )

    assert (saved.state, saved.current, saved.message) == ("Paused", 1, "paused by user")
