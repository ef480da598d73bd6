"""The store's sync locks (one writer per app and cluster), the migration that escapes
inventory ids, and readers that go on past a damaged inventory entry."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from appflow.model.inventory import InventoryEntry
from appflow.model.objects import ObjectRef
from appflow.model.records import AppRecord, ClusterRecord, DeploymentRecord, utc_now
from appflow.store import SqliteStore, open_store
from appflow.store.migrations import MIGRATIONS

STALE = 120.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with open_store(tmp_path / "appflow.db") as opened:
        yield opened


def test_a_hold_is_exclusive_until_released(store: SqliteStore) -> None:
    first = store.acquire_sync_lock("web", "edge-1", token="a", stale_after=STALE, mine=frozenset())
    assert first.token == "a"
    assert first.pid == os.getpid()
    assert first.host == socket.gethostname()
    # Another token of this very process that is still live (another worker's sync).
    second = store.acquire_sync_lock(
        "web", "edge-1", token="b", stale_after=STALE, mine=frozenset({"a"})
    )
    assert second.token == "a"
    assert second.holder.startswith(f"{os.getpid()}/{socket.gethostname()} since ")
    # Other apps and clusters are free.
    assert (
        store.acquire_sync_lock(
            "web", "edge-2", token="c", stale_after=STALE, mine=frozenset({"a"})
        ).token
        == "c"
    )
    store.release_sync_lock("web", "edge-1", token="a")
    assert (
        store.acquire_sync_lock(
            "web", "edge-1", token="b", stale_after=STALE, mine=frozenset({"c"})
        ).token
        == "b"
    )


def test_a_hold_of_a_dead_process_is_taken_over(store: SqliteStore, tmp_path: Path) -> None:
    # Another process takes the hold and exits without releasing it (a SIGKILL).
    script = (
        "import sys; from pathlib import Path; from appflow.store import open_store\n"
        "s = open_store(Path(sys.argv[1]))\n"
        "print(s.acquire_sync_lock('web', 'edge-1', token='dead', stale_after=120.0, mine=frozenset()).pid)\n"
        "import os; os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "appflow.db")],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(done.stdout.strip())
    taken = store.acquire_sync_lock(
        "web", "edge-1", token="mine", stale_after=STALE, mine=frozenset()
    )
    assert taken.token == "mine", f"the hold of dead process {dead} was not taken over"


def test_a_hold_this_process_forgot_is_taken_over_and_an_old_heartbeat_expires(
    store: SqliteStore, tmp_path: Path
) -> None:
    store.acquire_sync_lock("web", "edge-1", token="forgotten", stale_after=STALE, mine=frozenset())
    # This process holds no such token any more (its sync ended without releasing).
    assert (
        store.acquire_sync_lock(
            "web", "edge-1", token="new", stale_after=STALE, mine=frozenset()
        ).token
        == "new"
    )

    # Another host's hold with a heartbeat older than STALE seconds.
    old = (utc_now() - timedelta(seconds=STALE + 5)).isoformat(timespec="microseconds")
    conn = sqlite3.connect(str(tmp_path / "appflow.db"), isolation_level=None)
    conn.execute(
        "UPDATE sync_locks SET owner_host = 'elsewhere', owner_pid = 1, heartbeat_at = ? WHERE token = 'new'",
        (old,),
    )
    conn.close()
    assert (
        store.acquire_sync_lock(
            "web", "edge-1", token="x", stale_after=STALE, mine=frozenset()
        ).token
        == "x"
    )
    # Renewing keeps a hold fresh and says which holds are still this process's.
    assert store.renew_sync_locks({"x", "gone"}) == {"x"}


def _legacy_store(path: Path) -> None:
    """A store of the schema before escaped ids, with an id whose name holds '_'."""
    with open_store(path) as store:
        store.put_cluster(ClusterRecord(name="edge-1", kind="imported", kubeconfig_path="/k"))
        store.put_app(AppRecord(name="web", source="local", local_path="/src", path=""))
        store.put_deployment(DeploymentRecord(app="web", cluster="edge-1", state="Ready"))
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("DROP TABLE sync_locks")
    # The later migrations' changes undone too (version 9: a rollback's pin, not a flag).
    conn.execute("ALTER TABLE apps DROP COLUMN pinned_revision")
    conn.execute("ALTER TABLE apps ADD COLUMN paused INTEGER NOT NULL DEFAULT 0")
    # (version 10: hook state in a column of its own, who asked for a sync)
    conn.execute("ALTER TABLE deployments DROP COLUMN hooks")
    conn.execute("ALTER TABLE syncs DROP COLUMN actor")
    conn.execute(
        "UPDATE deployments SET inventory = ?, applied = ?",
        (
            json.dumps(
                [
                    "rbac.authorization.k8s.io/v1 shop_read_only_rbac.authorization.k8s.io_Role",
                    "v1 shop_plain__ConfigMap",
                ]
            ),
            json.dumps({"shop_read_only_rbac.authorization.k8s.io_Role": "f:g:u"}),
        ),
    )
    before = next(m.version for m in MIGRATIONS if "inventory ids escaped" in m.description) - 1
    conn.execute(f"PRAGMA user_version = {before}")
    conn.close()


def test_migration_escapes_the_ids_of_mirrored_inventories(tmp_path: Path) -> None:
    path = tmp_path / "appflow.db"
    _legacy_store(path)
    with open_store(path) as store:
        deployment = store.get_deployment("web", "edge-1")
    role = ObjectRef("rbac.authorization.k8s.io", "Role", "shop", "read_only")
    assert set(deployment.inventory) == {
        InventoryEntry(ObjectRef("", "ConfigMap", "shop", "plain"), "v1"),
        InventoryEntry(role, "rbac.authorization.k8s.io/v1"),
    }
    assert deployment.applied == {role.encode(): "f:g:u"}
    assert role.encode() == "shop_read%5Fonly_rbac.authorization.k8s.io_Role"


def test_a_damaged_entry_hides_neither_its_deployment_nor_the_others(
    store: SqliteStore, tmp_path: Path
) -> None:
    store.put_cluster(ClusterRecord(name="edge-1", kind="imported", kubeconfig_path="/k"))
    for app in ("web", "shop"):
        store.put_app(AppRecord(name=app, source="local", local_path="/src", path=""))
        entry = InventoryEntry(ObjectRef("", "ConfigMap", "ns", f"{app}-cm"), "v1")
        store.put_deployment(
            DeploymentRecord(app=app, cluster="edge-1", state="Ready", inventory=(entry,))
        )
    conn = sqlite3.connect(str(tmp_path / "appflow.db"), isolation_level=None)
    conn.execute(
        "UPDATE deployments SET inventory = ? WHERE app = 'web'",
        (json.dumps(["v1 ns_web-cm__ConfigMap", "v1 not-an-id"]),),
    )
    conn.close()
    found = {d.app: d for d in store.list_deployments()}
    assert [e.ref.name for e in found["web"].inventory] == ["web-cm"]
    assert [e.ref.name for e in found["shop"].inventory] == ["shop-cm"]


def test_taking_a_hold_interrupts_the_syncs_its_last_holder_never_finished(
    store: SqliteStore,
) -> None:
    store.put_cluster(ClusterRecord(name="edge-1", kind="imported", kubeconfig_path="/k"))
    store.put_app(AppRecord(name="web", source="local", local_path="/src", path=""))
    store.acquire_sync_lock("web", "edge-1", token="old", stale_after=STALE, mine=frozenset())
    # The holder started a sync, wrote the Deployment ahead, and could not record the end.
    unfinished = store.start_sync("web", "edge-1", revision=2, trigger="user")
    store.put_deployment(
        DeploymentRecord(app="web", cluster="edge-1", state="WaitApplied", desired_revision=2)
    )
    other = store.start_sync("web", "edge-2", revision=2, trigger="user")

    store.acquire_sync_lock("web", "edge-1", token="new", stale_after=STALE, mine=frozenset())

    assert store.get_sync(unfinished.id).outcome == "interrupted"
    assert store.get_sync(other.id).outcome == "running"
    deployment = store.get_deployment("web", "edge-1")
    assert deployment.state == "WaitApplied"
    assert deployment.message.startswith("revision 2 was interrupted")
    assert any(e.outcome == "interrupted" for e in store.list_events(app="web"))
