"""The SQLite store against a real database file in tmp_path."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appflow.errors import ConfigError, NotFoundError, StoreError
from appflow.model.appdef import Dependency, LabelSelector, SyncPolicy
from appflow.model.inventory import InventoryEntry
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.records import (
    AppRecord,
    ClusterGroupRecord,
    ClusterRecord,
    DeploymentRecord,
    FailingObject,
    GitCommit,
    HelmReleaseRef,
    ReleaseRevision,
    RenderedObjects,
    RepoCredentials,
    RepoRecord,
    ResourceCounts,
)
from appflow.store import SqliteStore, Store, open_store
from appflow.store.migrations import SCHEMA_VERSION, Migration, migrate

T0 = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)

DEPLOY: Manifest = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "nginx:1.27"}]}}},
}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "appflow.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    with open_store(db_path) as opened:
        yield opened


def cluster(name: str = "berlin-1", **changes: object) -> ClusterRecord:
    fields: dict[str, object] = {
        "name": name,
        "kind": "eve-k",
        "labels": {"region": "eu", "site": "berlin"},
        "kubeconfig_path": f"/data/kubeconfigs/{name}.yaml",
        "context": "default",
        "state": "Online",
        "state_reason": "",
        "k8s_version": "v1.30.2+k3s1",
        "distribution": "k3s",
        "mode": "ha-3",
        "node_count": 3,
        "last_seen": T0,
        "created_at": T0 - timedelta(days=1),
    }
    fields.update(changes)
    return ClusterRecord(**fields)  # type: ignore[arg-type]


def repo(name: str = "retail") -> RepoRecord:
    return RepoRecord(
        name=name,
        url="https://git.example.com/retail.git",
        ref="main",
        paths=("apps/", "edge/"),
        auth=RepoCredentials(kind="token", secret_file="/data/tokens/retail"),
        poll_interval_seconds=30,
        webhook_secret_ref="/data/secrets/retail-hook",
        last_commit="3f2c1e9",
        last_fetched=T0,
        created_at=T0,
    )


def app(name: str = "web", *, repo_name: str = "retail") -> AppRecord:
    return AppRecord(
        name=name,
        source="git",
        repo=repo_name,
        path="apps/web",
        policy=SyncPolicy(auto=False, self_heal=True),
        labels={"tier": "web"},
        depends_on=(
            Dependency(name="db"),
            Dependency(selector=LabelSelector(match_labels={"tier": "db"})),
        ),
        created_at=T0,
    )


def seeded(store: SqliteStore, *, apps: tuple[str, ...] = ("web",)) -> None:
    store.put_repo(repo())
    for name in apps:
        store.put_app(app(name))
    store.put_cluster(cluster("berlin-1"))
    store.put_cluster(cluster("paris-1", kind="imported", labels={"region": "eu"}))


# -- round trips --------------------------------------------------------------------------


def test_the_sqlite_store_is_a_store(store: SqliteStore) -> None:
    as_protocol: Store = store
    assert as_protocol.list_clusters() == []


def test_cluster_round_trip_survives_reopening(db_path: Path) -> None:
    record = cluster()
    with open_store(db_path) as store:
        assert store.put_cluster(record) == record
    with open_store(db_path) as store:
        assert store.get_cluster("berlin-1") == record
        assert store.list_clusters() == [record]


def test_put_cluster_replaces_fields_but_keeps_created_at(store: SqliteStore) -> None:
    store.put_cluster(cluster())
    later = cluster(state="Offline", state_reason="no answer for 5m", created_at=T0)
    stored = store.put_cluster(later)
    assert stored.state == "Offline"
    assert stored.state_reason == "no answer for 5m"
    assert stored.created_at == T0 - timedelta(days=1)


def test_group_repo_and_app_round_trip(store: SqliteStore) -> None:
    group = ClusterGroupRecord(name="eu", selector="region=eu,tier!=lab")
    assert store.put_group(group) == group
    assert store.list_groups() == [group]

    assert store.put_repo(repo()) == repo()
    assert store.get_repo("retail").paths == ("apps/", "edge/")

    stored = store.put_app(app())
    assert (stored.policy, stored.labels, stored.depends_on) == (
        app().policy,
        app().labels,
        app().depends_on,
    )
    assert stored.created_at == T0
    assert stored.updated_at > T0  # stamped by the store
    assert store.get_app("web") == stored
    assert store.list_apps() == [stored]

    local = AppRecord(name="dev", source="local", local_path="/src/dev", pinned_revision=3)
    saved = store.put_app(local)
    assert (saved.pinned_revision, saved.paused) == (3, True)


def test_deployment_round_trip(store: SqliteStore) -> None:
    seeded(store)
    record = DeploymentRecord(
        app="web",
        cluster="berlin-1",
        desired_revision=2,
        applied_revision=1,
        state="ErrApplied",
        message="1 object failed to apply",
        inventory=(
            InventoryEntry(ObjectRef.decode("shop_web_apps_Deployment"), "apps/v1"),
            InventoryEntry(ObjectRef.decode("_shop__Namespace"), "v1"),
        ),
        release=HelmReleaseRef(
            namespace="shop",
            name="web",
            revision=3,
            history=(ReleaseRevision(revision=1, helm_revision=3),),
        ),
        resource_counts=ResourceCounts(ready=1, not_ready=1),
        failing=(FailingObject(object="Deployment.apps/shop/web", message="image pull"),),
    )
    stored = store.put_deployment(record)
    assert stored.inventory == record.inventory
    assert stored.failing == record.failing
    assert stored.resource_counts == ResourceCounts(ready=1, not_ready=1)
    assert stored.release == record.release
    assert store.get_deployment("web", "berlin-1") == stored
    store.put_deployment(DeploymentRecord(app="web", cluster="paris-1", state="Ready"))
    assert [d.cluster for d in store.list_deployments(app="web")] == ["berlin-1", "paris-1"]
    assert [d.app for d in store.list_deployments(cluster="paris-1")] == ["web"]
    store.delete_deployment("web", "berlin-1")
    assert [d.cluster for d in store.list_deployments()] == ["paris-1"]


def test_deployment_needs_existing_app_and_cluster(store: SqliteStore) -> None:
    seeded(store)
    with pytest.raises(NotFoundError, match="cluster tokyo-1"):
        store.put_deployment(DeploymentRecord(app="web", cluster="tokyo-1"))
    with pytest.raises(NotFoundError, match="app api"):
        store.put_deployment(DeploymentRecord(app="api", cluster="berlin-1"))


def test_sync_history(store: SqliteStore) -> None:
    first = store.start_sync("web", "berlin-1", revision=1, trigger="poll")
    assert first.outcome == "running"
    assert store.running_syncs() == [first]
    done = store.finish_sync(
        first.id,
        outcome="succeeded",
        counts={"created": 3, "configured": 1, "unchanged": 0, "pruned": 0},
        message="applied 4 objects",
    )
    assert done.outcome == "succeeded"
    assert done.finished_at is not None
    assert done.finished_at >= done.started_at
    assert done.counts["created"] == 3
    second = store.start_sync("web", "paris-1", revision=1, trigger="webhook")
    store.finish_sync(second.id, outcome="failed", message="cluster unreachable")

    assert store.running_syncs() == []
    assert [s.id for s in store.list_syncs("web")] == [second.id, first.id]
    assert [s.id for s in store.list_syncs("web", cluster="berlin-1")] == [first.id]
    assert len(store.list_syncs("web", limit=1)) == 1
    assert store.get_sync(first.id) == done

    with pytest.raises(StoreError, match="already ended as succeeded"):
        store.finish_sync(first.id, outcome="failed")
    with pytest.raises(NotFoundError, match="no sync with id 999"):
        store.finish_sync(999, outcome="failed")


def test_events_feed(store: SqliteStore) -> None:
    first = store.add_event(
        kind="sync",
        message="synced revision 2",
        app="web",
        cluster="berlin-1",
        trigger="webhook",
        commit="3f2c1e9",
        outcome="succeeded",
        time=T0,
    )
    assert first.time == T0
    store.add_event(
        kind="drift", message="Deployment shop/web modified", app="web", cluster="paris-1"
    )
    store.add_event(kind="failure", message="cluster offline", cluster="paris-1")
    store.add_event(kind="sync", message="synced", app="api", cluster="berlin-1")

    all_events = store.list_events()
    assert [e.kind for e in all_events] == ["sync", "drift", "failure", "sync"]
    assert all_events[0] == first
    assert [e.message for e in store.list_events(app="web")] == [
        "synced revision 2",
        "Deployment shop/web modified",
    ]
    assert [e.kind for e in store.list_events(cluster="paris-1")] == ["drift", "failure"]
    # Without since_id: the newest `limit`, oldest first. With it: tail after that id.
    assert [e.id for e in store.list_events(limit=2)] == [all_events[2].id, all_events[3].id]
    assert [e.id for e in store.list_events(since_id=first.id, limit=2)] == [
        all_events[1].id,
        all_events[2].id,
    ]
    assert store.list_events(since_id=all_events[-1].id) == []


def test_record_checks_fail_before_anything_is_written(store: SqliteStore) -> None:
    with pytest.raises(ConfigError, match="not one of eve-k, imported"):
        cluster(kind="k3d")
    with pytest.raises(ConfigError, match="needs a repo"):
        AppRecord(name="web", source="git")
    with pytest.raises(ConfigError, match="no timezone"):
        store.add_event(kind="sync", message="x", time=datetime(2024, 1, 1))
    assert store.list_events() == []


# -- revisions ----------------------------------------------------------------------------


def test_revisions_are_numbered_per_app_and_keep_rendered_output(store: SqliteStore) -> None:
    seeded(store, apps=("web", "api"))
    rendered: RenderedObjects = {
        "berlin-1": [DEPLOY],
        "paris-1": [DEPLOY, {"apiVersion": "v1", "kind": "Namespace"}],
    }
    r1 = store.add_revision(
        "web", digest="sha256:aaa", source_ref=GitCommit(commit="3f2c1e9"), rendered=rendered
    )
    r2 = store.add_revision(
        "web",
        digest="sha256:bbb",
        source_ref=GitCommit(commit="77ab001"),
        rendered={},
        message="bump",
    )
    a1 = store.add_revision(
        "api", digest="sha256:aaa", source_ref=GitCommit(commit="3f2c1e9"), rendered={}
    )
    assert (r1.number, r2.number, a1.number) == (1, 2, 1)

    assert store.get_revision("web", 1).rendered == rendered
    assert store.get_revision("web", 1) == r1
    assert store.latest_revision("web") == r2
    assert store.latest_revision("nothing-yet") is None
    listed = store.list_revisions("web")
    assert [(r.number, r.digest, r.message) for r in listed] == [
        (1, "sha256:aaa", ""),
        (2, "sha256:bbb", "bump"),
    ]
    assert listed[0].rendered == {}  # left out unless asked for
    assert store.list_revisions("web", with_rendered=True)[0].rendered == rendered


def test_same_digest_as_newest_revision_is_not_added_twice(store: SqliteStore) -> None:
    seeded(store)
    r1 = store.add_revision(
        "web", digest="sha256:aaa", source_ref=GitCommit(commit="c1"), rendered={"b": [DEPLOY]}
    )
    again = store.add_revision(
        "web", digest="sha256:aaa", source_ref=GitCommit(commit="c2"), rendered={}
    )
    assert again == r1
    store.add_revision("web", digest="sha256:bbb", source_ref=GitCommit(commit="c3"), rendered={})
    # Going back to an older digest is a new revision: history is a sequence, not a set.
    back = store.add_revision(
        "web", digest="sha256:aaa", source_ref=GitCommit(commit="c4"), rendered={}
    )
    assert back.number == 3
    assert [r.number for r in store.list_revisions("web")] == [1, 2, 3]


def test_revision_of_unknown_app_or_number(store: SqliteStore) -> None:
    seeded(store)
    with pytest.raises(NotFoundError) as missing_app:
        store.add_revision("nope", digest="d", source_ref=GitCommit(commit="c"), rendered={})
    assert "app nope" in str(missing_app.value)
    with pytest.raises(NotFoundError) as missing_rev:
        store.get_revision("web", 7)
    assert str(missing_rev.value) == "app web: no revision 7 (see `appflow app history web`)"


# -- not found and refusals ---------------------------------------------------------------


def test_not_found_errors_name_the_record_and_the_list_command(store: SqliteStore) -> None:
    with pytest.raises(NotFoundError) as err:
        store.get_cluster("berlin-9")
    assert str(err.value) == "cluster berlin-9: no such cluster (see `appflow cluster list`)"
    assert err.value.where.cluster == "berlin-9"
    with pytest.raises(NotFoundError, match=r"app shop: no such app \(see `appflow app list`\)"):
        store.get_app("shop")
    with pytest.raises(NotFoundError, match=r"'retail'.*`appflow repo list`"):
        store.get_repo("retail")
    with pytest.raises(NotFoundError, match=r"app web, cluster b: the app is not deployed"):
        store.get_deployment("web", "b")
    with pytest.raises(NotFoundError, match="cluster group named 'eu'"):
        store.delete_group("eu")
    with pytest.raises(NotFoundError, match="repo named 'other'"):
        store.put_app(app("web", repo_name="other"))


def test_deletes_that_would_lose_an_inventory_are_refused(store: SqliteStore) -> None:
    seeded(store)
    store.put_deployment(
        DeploymentRecord(
            app="web",
            cluster="berlin-1",
            inventory=(InventoryEntry(ObjectRef.decode("a_b__C"), "v1"),),
        )
    )
    store.add_revision("web", digest="d1", source_ref=GitCommit(commit="c"), rendered={})
    with pytest.raises(StoreError, match="app web: the app is still deployed to berlin-1"):
        store.delete_app("web")
    with pytest.raises(StoreError, match="still has deployments of web"):
        store.delete_cluster("berlin-1")
    with pytest.raises(StoreError, match="still the source of apps web"):
        store.delete_repo("retail")
    assert store.get_deployment("web", "berlin-1").inventory == (
        InventoryEntry(ObjectRef.decode("a_b__C"), "v1"),
    )

    store.delete_cluster("paris-1")  # nothing deployed there
    store.delete_app("web", with_deployments=True)
    assert store.list_deployments() == []
    assert store.list_revisions("web") == []  # revisions go with their app
    store.delete_repo("retail")
    store.delete_cluster("berlin-1")
    assert store.list_clusters() == []


def test_closed_store_refuses_calls(db_path: Path) -> None:
    store = open_store(db_path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="the store is closed"):
        store.list_apps()


# -- transactions -------------------------------------------------------------------------


def test_a_crash_inside_a_transaction_leaves_nothing_written(store: SqliteStore) -> None:
    seeded(store)

    def write_then_crash() -> None:
        with store.transaction():
            store.put_app(app("api"))
            store.add_revision(
                "api", digest="d1", source_ref=GitCommit(commit="c"), rendered={"b": [DEPLOY]}
            )
            store.put_deployment(DeploymentRecord(app="api", cluster="berlin-1"))
            store.put_cluster(cluster("berlin-1", state="Error"))
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        write_then_crash()
    assert [a.name for a in store.list_apps()] == ["web"]
    assert store.list_revisions("api") == []
    assert store.list_deployments() == []
    assert store.get_cluster("berlin-1").state == "Online"


def test_a_failed_write_inside_a_transaction_rolls_back_the_earlier_ones(
    store: SqliteStore,
) -> None:
    seeded(store)

    def write_twice() -> None:
        with store.transaction():
            store.put_app(app("api"))
            store.put_deployment(DeploymentRecord(app="api", cluster="missing"))

    with pytest.raises(NotFoundError, match="cluster missing"):
        write_twice()
    assert [a.name for a in store.list_apps()] == ["web"]


def test_nested_transaction_rolls_back_only_itself(store: SqliteStore) -> None:
    seeded(store)
    with store.transaction():
        store.put_app(app("api"))

        def inner() -> None:
            with store.transaction():
                store.put_app(app("db"))
                raise RuntimeError("inner failed")

        with pytest.raises(RuntimeError, match="inner failed"):
            inner()
        store.put_app(app("cache"))
    assert [a.name for a in store.list_apps()] == ["api", "cache", "web"]


def test_a_transaction_keeps_other_threads_out_until_it_commits(store: SqliteStore) -> None:
    seeded(store)
    seen: list[list[str]] = []
    with store.transaction():
        store.put_app(app("api"))
        reader = threading.Thread(target=lambda: seen.append([a.name for a in store.list_apps()]))
        reader.start()
        reader.join(timeout=0.2)
        assert reader.is_alive()  # blocked on the store's lock, not reading half a write
        store.put_app(app("db"))
    reader.join(timeout=5)
    assert seen == [["api", "db", "web"]]


# -- concurrency --------------------------------------------------------------------------


def test_threads_sharing_one_store_get_distinct_revision_numbers(store: SqliteStore) -> None:
    seeded(store)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(10):
                store.add_revision(
                    "web", digest=f"d-{worker}-{i}", source_ref=GitCommit(commit="c"), rendered={}
                )
                store.add_event(kind="sync", message=f"{worker}/{i}", app="web")
        except BaseException as err:  # surfaced below; a thread's exception is otherwise lost
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r.number for r in store.list_revisions("web")] == list(range(1, 81))
    assert len(store.list_events(limit=1000)) == 80


def test_two_connections_to_one_file_never_write_the_same_revision(db_path: Path) -> None:
    # Two SqliteStore objects behave like two processes: separate connections and locks.
    with open_store(db_path) as setup:
        seeded(setup)
    stores = [open_store(db_path), open_store(db_path)]
    errors: list[BaseException] = []

    def work(which: int) -> None:
        try:
            for i in range(15):
                stores[which].add_revision(
                    "web", digest=f"{which}-{i}", source_ref=GitCommit(commit="c"), rendered={}
                )
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == []
    with open_store(db_path) as check:
        revisions = check.list_revisions("web")
    assert [r.number for r in revisions] == list(range(1, 31))
    assert len({r.digest for r in revisions}) == 30


# -- crash recovery -----------------------------------------------------------------------


def test_syncs_of_a_killed_process_are_marked_interrupted_on_open(db_path: Path) -> None:
    with open_store(db_path) as store:
        mine = store.start_sync("web", "paris-1", revision=1, trigger="user")
    # A separate process starts a sync and dies without finishing it or closing the store.
    child = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from appflow.store import open_store\n"
        "store = open_store(Path(sys.argv[1]))\n"
        "store.start_sync('web', 'berlin-1', revision=2, trigger='webhook')\n"
        "os._exit(9)\n"
    )
    result = subprocess.run([sys.executable, "-c", child, str(db_path)], check=False, timeout=60)
    assert result.returncode == 9

    with open_store(db_path) as store:
        # This test process is alive, so its own running sync is left alone.
        assert [s.id for s in store.running_syncs()] == [mine.id]
        history = store.list_syncs("web", cluster="berlin-1")
        assert [(s.outcome, s.trigger, s.revision) for s in history] == [
            ("interrupted", "webhook", 2)
        ]
        assert history[0].finished_at is not None
        assert "stopped before it finished" in history[0].message
        assert store.recover_interrupted() == []  # already recovered by open


def test_recover_interrupted_returns_what_it_marked(store: SqliteStore) -> None:
    sync = store.start_sync("web", "berlin-1", revision=1, trigger="poll")
    other = store.start_sync("web", "paris-1", revision=1, trigger="poll")
    assert store.recover_interrupted() == []  # the owner (this process) is alive
    # Hand the first sync to a process that has exited: a child we started and reaped.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with sqlite3.connect(store.path) as raw:
        raw.execute("UPDATE syncs SET owner_pid = ? WHERE id = ?", (child.pid, sync.id))
    raw.close()
    recovered = store.recover_interrupted()
    assert [(s.id, s.outcome) for s in recovered] == [(sync.id, "interrupted")]
    assert [s.id for s in store.running_syncs()] == [other.id]


# -- files and migrations -----------------------------------------------------------------


def test_default_store_is_private_file_in_appflow_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home" / "appflow"
    monkeypatch.setenv("APPFLOW_HOME", str(home))
    with open_store() as store:
        assert store.path == home / "appflow.db"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "appflow.db").stat().st_mode) == 0o600


def test_new_store_is_migrated_to_the_latest_schema(db_path: Path) -> None:
    open_store(db_path).close()
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    raw.close()
    assert {"clusters", "cluster_groups", "repos", "apps", "revisions", "deployments"} <= tables
    assert {"syncs", "events"} <= tables
    open_store(db_path).close()  # reopening an up-to-date store changes nothing and works


def test_each_migration_commits_alone_and_a_failing_one_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    conn = sqlite3.connect(path, isolation_level=None)
    steps = (
        Migration(version=1, description="one", statements=("CREATE TABLE a (x)",)),
        Migration(
            version=2,
            description="two",
            statements=("CREATE TABLE b (x)", "CREATE TABLE a (x)"),  # second one fails
        ),
    )
    with pytest.raises(StoreError, match=r"migration to version 2 \(two\) failed") as err:
        migrate(conn, path=path, migrations=steps)
    assert "left at its previous version" in str(err.value)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"a"}  # table b of the failed step is gone with it
    conn.close()


def test_a_store_from_a_newer_appflow_is_refused(db_path: Path) -> None:
    open_store(db_path).close()
    with sqlite3.connect(db_path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    raw.close()
    with pytest.raises(StoreError) as err:
        open_store(db_path)
    text = str(err.value)
    assert str(db_path) in text
    assert f"schema version {SCHEMA_VERSION + 5}" in text
    assert f"up to {SCHEMA_VERSION}" in text
    assert "upgrade appflow" in text


def test_a_corrupt_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "appflow.db"
    path.write_bytes(b"this is not sqlite at all, just text that was here\n" * 200)
    with pytest.raises(StoreError) as err:
        open_store(path)
    text = str(err.value)
    assert text.startswith(f"{path}: the store is not a readable SQLite database")
    assert f"mv {path} {path}.broken" in text
    assert path.read_bytes().startswith(b"this is not sqlite")  # left untouched


def test_another_programs_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE notes (body TEXT)")
    raw.close()
    with pytest.raises(StoreError, match="not an appflow store"):
        open_store(path)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 0
    raw.close()
