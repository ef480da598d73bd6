"""The embedded store: appflow's records in one SQLite file in the user's data folder.

Owns the file (created 0600 in a 0700 folder), the connection and its pragmas, the mapping
between records and rows, and the translation of ``sqlite3`` errors to StoreError. The schema
itself lives in ``migrations.py``; the record types in ``appflow.model.records``.

Why it looks the way it does:

- WAL journal, so the CLI and the dashboard can read while the daemon writes, and
  ``synchronous=FULL`` because "kill it at any moment, it loses nothing" includes the power
  cord on an edge box; writes are few (a handful per sync), so the fsync is cheap.
- One connection per SqliteStore, guarded by a re-entrant lock: the engine calls the store
  from worker threads (``asyncio.to_thread``), and a transaction must keep other threads
  out until it commits. Nested ``transaction()`` blocks become savepoints.
- Every write runs in ``BEGIN IMMEDIATE``: the write lock is taken up front, so two
  processes never both read "latest revision is 4" and both write revision 5.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import zlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from appflow.errors import ConfigError, NotFoundError, StoreError, Where
from appflow.model.appdef import Dependency, RolloutSpec, SyncPolicy
from appflow.model.codec import from_json, to_json
from appflow.model.inventory import InventoryEntry, readable_entries
from appflow.model.policy import Policy, PolicyScope
from appflow.model.records import (
    AppRecord,
    CatalogInstall,
    CatalogRepoRecord,
    ClusterGroupRecord,
    ClusterRecord,
    DeploymentRecord,
    DeploymentSummary,
    EventRecord,
    FailingObject,
    HelmReleaseRef,
    HookRecord,
    RenderedObjects,
    RepoCredentials,
    RepoRecord,
    ResourceCounts,
    RevisionRecord,
    RolloutPartitionRecord,
    RolloutRecord,
    SourceRef,
    SyncLock,
    SyncOutcome,
    SyncRecord,
    SyncTrigger,
    TokenRecord,
    TokenScope,
    no_rollout,
    utc_now,
)
from appflow.paths import data_dir, key_file
from appflow.store.migrations import migrate

log = logging.getLogger("appflow.store")

SESSION_KEY_FILE = "ui-session.key"
"""Next to the store file: the dashboard's session-signing key."""
STORE_FILE = "appflow.db"
DEFAULT_BUSY_TIMEOUT_MS = 10_000
TOKEN_TOUCH_SECONDS = 60
INTERRUPTED_MESSAGE = (
    "interrupted: the appflow process running this sync stopped before it finished"
)


def default_store_path() -> Path:
    """Where the store lives unless told otherwise: ``data_dir()/appflow.db``."""
    return data_dir() / STORE_FILE


def open_store(path: Path | None = None, *, busy_timeout_ms: int | None = None) -> SqliteStore:
    """Open (creating and migrating as needed) the store at ``path`` or the default path.

    BUSY_TIMEOUT_MS is how long a write waits for another process's transaction; by
    default APPFLOW_STORE_BUSY_TIMEOUT (seconds) or 10 s. Syncs left ``running`` by a
    process that no longer exists are marked ``interrupted``.
    """
    if busy_timeout_ms is None:
        busy_timeout_ms = _busy_timeout_from_env()
    return SqliteStore(path or default_store_path(), busy_timeout_ms=busy_timeout_ms)


def _busy_timeout_from_env() -> int:
    text = os.environ.get("APPFLOW_STORE_BUSY_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_BUSY_TIMEOUT_MS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise ConfigError(
            f"APPFLOW_STORE_BUSY_TIMEOUT={text!r} is not a number of seconds between 0 and 3600",
            hint="unset it to wait 10 s for another appflow process's store writes",
        )
    return int(seconds * 1000)


# -- value encoding ---------------------------------------------------------------------------


def _time_out(value: datetime | None) -> str | None:
    # Fixed-width UTC ISO text: sorts as text in the same order as in time.
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _time_in(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _time_in_required(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _json_out(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _json_in(text: str) -> Any:
    return json.loads(text)


def _record_out(value: object) -> str | None:
    """A nested record as JSON text (None stays NULL)."""
    return None if value is None else _json_out(to_json(value))


def _inventory_out(entries: tuple[InventoryEntry, ...]) -> str:
    # One '<apiVersion> <id>' line per object: compact, and a deployment of
    # hundreds of objects is read on every sync.
    return _json_out([e.to_line() for e in entries])


def _inventory_in(app: str, cluster: str, text: str) -> tuple[InventoryEntry, ...]:
    # One damaged entry must not hide this deployment, or every other one from a
    # reader of them all (drift detection, the status grid): it is left out and said.
    # The cluster's own copy of the inventory still names the object.
    try:
        lines = _json_in(text)
    except ValueError:
        lines = None
    if not isinstance(lines, list):
        log.warning("app %s on cluster %s: the mirrored inventory is not a JSON list", app, cluster)
        return ()
    entries, unreadable = readable_entries(str(line) for line in lines)
    for line in unreadable:
        log.warning(
            "app %s on cluster %s: unreadable mirrored inventory entry %r left out",
            app,
            cluster,
            line,
        )
    return entries


def _source_ref_in(text: str) -> SourceRef:
    return cast(SourceRef, from_json(SourceRef, _json_in(text), what="sourceRef"))


def _compress(rendered: RenderedObjects) -> bytes:
    return zlib.compress(_json_out(rendered).encode("utf-8"), 6)


def _looks_corrupt(err: sqlite3.Error) -> bool:
    text = str(err)
    return "not a database" in text or "malformed" in text


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class SqliteStore:
    """appflow's records in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self._where = Where(file=str(path))
        self._lock = threading.RLock()
        self._depth = 0
        self._host = socket.gethostname()
        self._busy_timeout_ms = busy_timeout_ms
        _prepare_file(path)
        self._conn: sqlite3.Connection | None = self._connect(busy_timeout_ms)
        self.recover_interrupted()

    def _connect(self, busy_timeout_ms: int) -> sqlite3.Connection:
        try:
            # isolation_level=None: autocommit; this class issues BEGIN/COMMIT itself.
            conn = sqlite3.connect(
                str(self.path),
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as err:
            raise StoreError(
                f"cannot open the store: {err}",
                where=self._where,
                hint="check that the folder exists and is writable",
            ) from err
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, path=self.path)
        except sqlite3.DatabaseError as err:
            conn.close()
            # Only a damaged file is worth moving aside; a lock or a permission problem is not.
            if isinstance(err, sqlite3.OperationalError) or not _looks_corrupt(err):
                raise self._error("open the store", err) from err
            raise StoreError(
                f"the store is not a readable SQLite database ({err})",
                where=self._where,
                hint=f"move it aside (mv {self.path} {self.path}.broken) and appflow will start a new, empty store",
            ) from err
        except BaseException:
            conn.close()
            raise
        return conn

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; further calls raise StoreError. Closing twice is harmless."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed", where=self._where)
        return self._conn

    # -- transactions and error translation -------------------------------------------------

    def _error(self, action: str, err: sqlite3.Error) -> StoreError:
        text = str(err)
        hint: str | None = None
        if "locked" in text or "busy" in text:
            hint = "another appflow process kept the store busy; try again"
        elif _looks_corrupt(err):
            hint = f"the file is damaged; move it aside (mv {self.path} {self.path}.broken)"
        return StoreError(f"could not {action}: {text}", where=self._where, hint=hint)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run a block as one transaction: all its writes commit together, or none do.

        The outermost block takes the write lock at once (BEGIN IMMEDIATE) and keeps other
        threads of this process out until it ends; nested blocks are savepoints. Any
        exception, including cancellation, rolls the block back and propagates.
        """
        with self._lock:
            conn = self._require_open()
            outermost = self._depth == 0
            savepoint = f"appflow_{self._depth}"
            try:
                conn.execute("BEGIN IMMEDIATE" if outermost else f"SAVEPOINT {savepoint}")
            except sqlite3.Error as err:
                raise self._error("start a transaction", err) from err
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                self._rollback(conn, outermost=outermost, savepoint=savepoint)
                raise
            self._depth -= 1
            try:
                conn.execute("COMMIT" if outermost else f"RELEASE {savepoint}")
            except sqlite3.Error as err:
                self._rollback(conn, outermost=outermost, savepoint=savepoint)
                raise self._error("commit", err) from err

    def _rollback(self, conn: sqlite3.Connection, *, outermost: bool, savepoint: str) -> None:
        # SQLite may already have rolled back on its own (disk full, I/O error).
        if not conn.in_transaction:
            return
        if outermost:
            conn.execute("ROLLBACK")
        else:
            conn.execute(f"ROLLBACK TO {savepoint}")
            conn.execute(f"RELEASE {savepoint}")

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        try:
            with self.transaction():
                yield self._require_open()
        except sqlite3.Error as err:
            raise self._error(action, err) from err

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._require_open()
            try:
                yield conn
            except sqlite3.Error as err:
                raise self._error(action, err) from err

    # -- clusters ---------------------------------------------------------------------------

    def put_cluster(self, cluster: ClusterRecord) -> ClusterRecord:
        """Add or replace a cluster; an existing cluster keeps its ``created_at``."""
        with self._write(f"save cluster {cluster.name}") as conn:
            conn.execute(
                """INSERT INTO clusters (name, kind, labels, kubeconfig_path, context, state,
                       state_reason, k8s_version, distribution, mode, node_count, last_seen,
                       created_at)
                   VALUES (:name, :kind, :labels, :kubeconfig_path, :context, :state,
                       :state_reason, :k8s_version, :distribution, :mode, :node_count,
                       :last_seen, :created_at)
                   ON CONFLICT (name) DO UPDATE SET kind = excluded.kind,
                       labels = excluded.labels, kubeconfig_path = excluded.kubeconfig_path,
                       context = excluded.context, state = excluded.state,
                       state_reason = excluded.state_reason, k8s_version = excluded.k8s_version,
                       distribution = excluded.distribution, mode = excluded.mode,
                       node_count = excluded.node_count, last_seen = excluded.last_seen""",
                {
                    "name": cluster.name,
                    "kind": cluster.kind,
                    "labels": _json_out(cluster.labels),
                    "kubeconfig_path": cluster.kubeconfig_path,
                    "context": cluster.context,
                    "state": cluster.state,
                    "state_reason": cluster.state_reason,
                    "k8s_version": cluster.k8s_version,
                    "distribution": cluster.distribution,
                    "mode": cluster.mode,
                    "node_count": cluster.node_count,
                    "last_seen": _time_out(cluster.last_seen),
                    "created_at": _time_out(cluster.created_at),
                },
            )
            return self.get_cluster(cluster.name)

    def get_cluster(self, name: str) -> ClusterRecord:
        with self._read(f"read cluster {name}") as conn:
            row = conn.execute("SELECT * FROM clusters WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise _cluster_not_found(name)
        return _cluster_from(row)

    def list_clusters(self) -> list[ClusterRecord]:
        with self._read("list clusters") as conn:
            rows = conn.execute("SELECT * FROM clusters ORDER BY name").fetchall()
        return [_cluster_from(row) for row in rows]

    def delete_cluster(self, name: str, *, with_deployments: bool = False) -> None:
        """Remove a cluster. Refused while deployments to it exist, unless ``with_deployments``."""
        with self._write(f"delete cluster {name}") as conn:
            self.get_cluster(name)
            apps = [
                r[0]
                for r in conn.execute(
                    "SELECT app FROM deployments WHERE cluster = ? ORDER BY app", (name,)
                )
            ]
            if apps and not with_deployments:
                raise StoreError(
                    f"the cluster still has deployments of {', '.join(apps)}",
                    where=Where(cluster=name),
                    hint="remove those apps from the cluster first; their inventories are "
                    "the only record of what appflow owns there",
                )
            conn.execute("DELETE FROM deployments WHERE cluster = ?", (name,))
            conn.execute("DELETE FROM clusters WHERE name = ?", (name,))

    # -- cluster groups ---------------------------------------------------------------------

    def put_group(self, group: ClusterGroupRecord) -> ClusterGroupRecord:
        with self._write(f"save cluster group {group.name}") as conn:
            conn.execute(
                """INSERT INTO cluster_groups (name, selector) VALUES (?, ?)
                   ON CONFLICT (name) DO UPDATE SET selector = excluded.selector""",
                (group.name, group.selector),
            )
            return self.get_group(group.name)

    def get_group(self, name: str) -> ClusterGroupRecord:
        with self._read(f"read cluster group {name}") as conn:
            row = conn.execute("SELECT * FROM cluster_groups WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"no cluster group named {name!r}", hint="see `appflow cluster group list`"
            )
        return ClusterGroupRecord(name=row["name"], selector=row["selector"])

    def list_groups(self) -> list[ClusterGroupRecord]:
        with self._read("list cluster groups") as conn:
            rows = conn.execute("SELECT * FROM cluster_groups ORDER BY name").fetchall()
        return [ClusterGroupRecord(name=r["name"], selector=r["selector"]) for r in rows]

    def delete_group(self, name: str) -> None:
        with self._write(f"delete cluster group {name}") as conn:
            self.get_group(name)
            conn.execute("DELETE FROM cluster_groups WHERE name = ?", (name,))

    # -- repos ------------------------------------------------------------------------------

    def put_repo(self, repo: RepoRecord) -> RepoRecord:
        """Add or replace a GitRepo source; an existing repo keeps its ``created_at``."""
        with self._write(f"save repo {repo.name}") as conn:
            conn.execute(
                """INSERT INTO repos (name, url, ref, paths, auth, poll_interval_seconds,
                       webhook_secret_ref, last_commit, last_fetched, created_at)
                   VALUES (:name, :url, :ref, :paths, :auth, :poll_interval_seconds,
                       :webhook_secret_ref, :last_commit, :last_fetched, :created_at)
                   ON CONFLICT (name) DO UPDATE SET url = excluded.url, ref = excluded.ref,
                       paths = excluded.paths, auth = excluded.auth,
                       poll_interval_seconds = excluded.poll_interval_seconds,
                       webhook_secret_ref = excluded.webhook_secret_ref,
                       last_commit = excluded.last_commit, last_fetched = excluded.last_fetched""",
                {
                    "name": repo.name,
                    "url": repo.url,
                    "ref": repo.ref,
                    "paths": _json_out(list(repo.paths)),
                    "auth": _record_out(repo.auth),
                    "poll_interval_seconds": repo.poll_interval_seconds,
                    "webhook_secret_ref": repo.webhook_secret_ref,
                    "last_commit": repo.last_commit,
                    "last_fetched": _time_out(repo.last_fetched),
                    "created_at": _time_out(repo.created_at),
                },
            )
            return self.get_repo(repo.name)

    def get_repo(self, name: str) -> RepoRecord:
        with self._read(f"read repo {name}") as conn:
            row = conn.execute("SELECT * FROM repos WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise _repo_not_found(name)
        return _repo_from(row)

    def record_fetch(self, name: str, *, commit: str) -> None:
        """Note that repo NAME was just fetched at COMMIT (what `repo list` shows)."""
        # Two columns only: a whole-record put from a stale read could undo a concurrent
        # change of the repo's other settings.
        with self._write(f"save the commit of repo {name}") as conn:
            self.get_repo(name)
            conn.execute(
                "UPDATE repos SET last_commit = ?, last_fetched = ? WHERE name = ?",
                (commit, _time_out(utc_now()), name),
            )

    def list_repos(self) -> list[RepoRecord]:
        with self._read("list repos") as conn:
            rows = conn.execute("SELECT * FROM repos ORDER BY name").fetchall()
        return [_repo_from(row) for row in rows]

    def delete_repo(self, name: str) -> None:
        """Remove a repo. Refused while apps still come from it."""
        with self._write(f"delete repo {name}") as conn:
            self.get_repo(name)
            apps = [
                r[0]
                for r in conn.execute("SELECT name FROM apps WHERE repo = ? ORDER BY name", (name,))
            ]
            if apps:
                raise StoreError(
                    f"repo {name} is still the source of apps {', '.join(apps)}",
                    hint="delete those apps first",
                )
            conn.execute("DELETE FROM repos WHERE name = ?", (name,))

    # -- catalog repositories ---------------------------------------------------------------

    def put_catalog_repo(self, repo: CatalogRepoRecord) -> CatalogRepoRecord:
        """Add or replace a catalog repository; an existing one keeps its ``created_at``."""
        with self._write(f"save catalog repository {repo.name}") as conn:
            conn.execute(
                """INSERT INTO catalog_repos (name, url, username, password_file, ca_file,
                       poll_interval_seconds, created_at)
                   VALUES (:name, :url, :username, :password_file, :ca_file,
                       :poll_interval_seconds, :created_at)
                   ON CONFLICT (name) DO UPDATE SET url = excluded.url,
                       username = excluded.username, password_file = excluded.password_file,
                       ca_file = excluded.ca_file,
                       poll_interval_seconds = excluded.poll_interval_seconds""",
                {
                    "name": repo.name,
                    "url": repo.url,
                    "username": repo.username,
                    "password_file": repo.password_file,
                    "ca_file": repo.ca_file,
                    "poll_interval_seconds": repo.poll_interval_seconds,
                    "created_at": _time_out(repo.created_at),
                },
            )
            return self.get_catalog_repo(repo.name)

    def get_catalog_repo(self, name: str) -> CatalogRepoRecord:
        with self._read(f"read catalog repository {name}") as conn:
            row = conn.execute("SELECT * FROM catalog_repos WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"no catalog repository named {name!r}",
                hint="see `appflow catalog repo list`",
            )
        return _catalog_repo_from(row)

    def list_catalog_repos(self) -> list[CatalogRepoRecord]:
        with self._read("list catalog repositories") as conn:
            rows = conn.execute("SELECT * FROM catalog_repos ORDER BY name").fetchall()
        return [_catalog_repo_from(row) for row in rows]

    def delete_catalog_repo(self, name: str) -> None:
        with self._write(f"delete catalog repository {name}") as conn:
            self.get_catalog_repo(name)
            conn.execute("DELETE FROM catalog_repos WHERE name = ?", (name,))

    # -- apps -------------------------------------------------------------------------------

    def put_app(self, app: AppRecord) -> AppRecord:
        """Add or replace an app; stamps ``updated_at``, keeps ``created_at`` of an existing app."""
        with self._write(f"save app {app.name}") as conn:
            if app.repo is not None:
                self.get_repo(app.repo)  # NotFoundError naming the repo, not a bare FK failure
            conn.execute(
                """INSERT INTO apps (name, source, repo, local_path, path, policy, labels,
                       depends_on, rollout, catalog, pinned_revision, created_at, updated_at)
                   VALUES (:name, :source, :repo, :local_path, :path, :policy, :labels,
                       :depends_on, :rollout, :catalog, :pinned_revision, :created_at, :updated_at)
                   ON CONFLICT (name) DO UPDATE SET source = excluded.source,
                       repo = excluded.repo, local_path = excluded.local_path,
                       path = excluded.path, policy = excluded.policy,
                       labels = excluded.labels, depends_on = excluded.depends_on,
                       rollout = excluded.rollout, catalog = excluded.catalog,
                       pinned_revision = excluded.pinned_revision,
                       updated_at = excluded.updated_at""",
                {
                    "name": app.name,
                    "source": app.source,
                    "repo": app.repo,
                    "local_path": app.local_path,
                    "path": app.path,
                    "policy": _record_out(app.policy),
                    "labels": _json_out(app.labels),
                    "depends_on": _record_out(app.depends_on),
                    "rollout": _record_out(app.rollout),
                    "catalog": _record_out(app.catalog),
                    "pinned_revision": app.pinned_revision,
                    "created_at": _time_out(app.created_at),
                    "updated_at": _time_out(utc_now()),
                },
            )
            return self.get_app(app.name)

    def get_app(self, name: str) -> AppRecord:
        with self._read(f"read app {name}") as conn:
            row = conn.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise _app_not_found(name)
        return _app_from(row)

    def list_apps(self) -> list[AppRecord]:
        with self._read("list apps") as conn:
            rows = conn.execute("SELECT * FROM apps ORDER BY name").fetchall()
        return [_app_from(row) for row in rows]

    def delete_app(self, name: str, *, with_deployments: bool = False) -> None:
        """Remove an app and its revisions (history stays).

        Refused while the app has deployments, unless ``with_deployments``: a deployment's
        inventory is what prune works from, so it must be pruned before it is forgotten.
        """
        with self._write(f"delete app {name}") as conn:
            self.get_app(name)
            clusters = [
                r[0]
                for r in conn.execute(
                    "SELECT cluster FROM deployments WHERE app = ? ORDER BY cluster", (name,)
                )
            ]
            if clusters and not with_deployments:
                raise StoreError(
                    f"the app is still deployed to {', '.join(clusters)}",
                    where=Where(app=name),
                    hint="prune it from those clusters first; their inventories are the only "
                    "record of what appflow owns there",
                )
            conn.execute("DELETE FROM deployments WHERE app = ?", (name,))
            conn.execute("DELETE FROM apps WHERE name = ?", (name,))

    # -- revisions --------------------------------------------------------------------------

    def add_revision(
        self,
        app: str,
        *,
        digest: str,
        source_ref: SourceRef,
        rendered: RenderedObjects,
        message: str = "",
    ) -> RevisionRecord:
        """Record a new revision numbered after the newest one, and return it.

        If the newest revision already has ``digest``, nothing is added and that revision
        is returned: re-rendering unchanged inputs must not grow the history.
        """
        with self._write(f"add a revision of app {app}") as conn:
            self.get_app(app)
            newest = conn.execute(
                "SELECT * FROM revisions WHERE app = ? ORDER BY number DESC LIMIT 1", (app,)
            ).fetchone()
            if newest is not None and newest["digest"] == digest:
                return self._revision_from(newest, with_rendered=True)
            record = RevisionRecord(
                app=app,
                number=1 if newest is None else int(newest["number"]) + 1,
                digest=digest,
                source_ref=source_ref,
                rendered=rendered,
                message=message,
                created_at=utc_now(),
            )
            conn.execute(
                """INSERT INTO revisions (app, number, digest, source_ref, message, rendered,
                       created_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (
                    record.app,
                    record.number,
                    record.digest,
                    _record_out(record.source_ref),
                    record.message,
                    _compress(rendered),
                    _time_out(record.created_at),
                ),
            )
            return record

    def get_revision(self, app: str, number: int) -> RevisionRecord:
        with self._read(f"read revision {number} of app {app}") as conn:
            row = conn.execute(
                "SELECT * FROM revisions WHERE app = ? AND number = ?", (app, number)
            ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no revision {number}",
                where=Where(app=app),
                hint=f"see `appflow app history {app}`",
            )
        return self._revision_from(row, with_rendered=True)

    def list_revisions(self, app: str, *, with_rendered: bool = False) -> list[RevisionRecord]:
        """Revisions of ``app``, oldest first; ``rendered`` is left empty unless asked for."""
        columns = "*" if with_rendered else "app, number, digest, source_ref, message, created_at"
        with self._read(f"list revisions of app {app}") as conn:
            rows = conn.execute(
                f"SELECT {columns} FROM revisions WHERE app = ? ORDER BY number", (app,)
            ).fetchall()
        return [self._revision_from(row, with_rendered=with_rendered) for row in rows]

    def latest_revision(self, app: str, *, with_rendered: bool = True) -> RevisionRecord | None:
        """The newest revision of ``app``, or None when it has none yet.

        Without ``with_rendered`` its ``rendered`` is left empty (nothing is decompressed).
        """
        columns = "*" if with_rendered else "app, number, digest, source_ref, message, created_at"
        with self._read(f"read the latest revision of app {app}") as conn:
            row = conn.execute(
                f"SELECT {columns} FROM revisions WHERE app = ? ORDER BY number DESC LIMIT 1",
                (app,),
            ).fetchone()
        return None if row is None else self._revision_from(row, with_rendered=with_rendered)

    def _revision_from(self, row: sqlite3.Row, *, with_rendered: bool) -> RevisionRecord:
        rendered: RenderedObjects = {}
        if with_rendered:
            try:
                rendered = _json_in(zlib.decompress(row["rendered"]).decode("utf-8"))
            except (zlib.error, UnicodeDecodeError, ValueError) as err:
                raise StoreError(
                    f"the rendered objects of revision {row['number']} are damaged: {err}",
                    where=Where(app=row["app"], file=str(self.path)),
                    hint="roll back to another revision, or sync again to render a new one",
                ) from err
        return RevisionRecord(
            app=row["app"],
            number=int(row["number"]),
            digest=row["digest"],
            source_ref=_source_ref_in(row["source_ref"]),
            rendered=rendered,
            message=row["message"],
            created_at=_time_in_required(row["created_at"]),
        )

    # -- deployments ------------------------------------------------------------------------

    def put_deployment(self, deployment: DeploymentRecord) -> DeploymentRecord:
        """Add or replace the deployment of an app on a cluster; stamps ``updated_at``."""
        where = f"save deployment of app {deployment.app} on cluster {deployment.cluster}"
        with self._write(where) as conn:
            self.get_app(deployment.app)
            self.get_cluster(deployment.cluster)
            conn.execute(
                """INSERT INTO deployments (app, cluster, desired_revision, applied_revision,
                       state, message, inventory, applied, release, hooks, resource_counts,
                       failing, updated_at)
                   VALUES (:app, :cluster, :desired_revision, :applied_revision, :state,
                       :message, :inventory, :applied, :release, :hooks, :resource_counts,
                       :failing, :updated_at)
                   ON CONFLICT (app, cluster) DO UPDATE SET
                       desired_revision = excluded.desired_revision,
                       applied_revision = excluded.applied_revision, state = excluded.state,
                       message = excluded.message, inventory = excluded.inventory,
                       applied = excluded.applied, release = excluded.release,
                       hooks = excluded.hooks, resource_counts = excluded.resource_counts, failing = excluded.failing,
                       updated_at = excluded.updated_at""",
                {
                    "app": deployment.app,
                    "cluster": deployment.cluster,
                    "desired_revision": deployment.desired_revision,
                    "applied_revision": deployment.applied_revision,
                    "state": deployment.state,
                    "message": deployment.message,
                    "inventory": _inventory_out(deployment.inventory),
                    "applied": _json_out(deployment.applied),
                    "release": _record_out(deployment.release),
                    "hooks": _record_out(deployment.hooks),
                    "resource_counts": _record_out(deployment.resource_counts),
                    "failing": _json_out(
                        [{"object": f.object, "message": f.message} for f in deployment.failing]
                    ),
                    "updated_at": _time_out(utc_now()),
                },
            )
            return self.get_deployment(deployment.app, deployment.cluster)

    def get_deployment(self, app: str, cluster: str) -> DeploymentRecord:
        with self._read(f"read deployment of app {app} on cluster {cluster}") as conn:
            row = conn.execute(
                "SELECT * FROM deployments WHERE app = ? AND cluster = ?", (app, cluster)
            ).fetchone()
        if row is None:
            raise NotFoundError(
                "the app is not deployed to this cluster",
                where=Where(app=app, cluster=cluster),
                hint="see `appflow status`",
            )
        return _deployment_from(row)

    def list_deployments(
        self, *, app: str | None = None, cluster: str | None = None
    ) -> list[DeploymentRecord]:
        """Deployments, optionally of one app and/or on one cluster, ordered by app, cluster."""
        with self._read("list deployments") as conn:
            rows = conn.execute(
                """SELECT * FROM deployments
                   WHERE (:app IS NULL OR app = :app) AND (:cluster IS NULL OR cluster = :cluster)
                   ORDER BY app, cluster""",
                {"app": app, "cluster": cluster},
            ).fetchall()
        return [_deployment_from(row) for row in rows]

    def list_deployment_summaries(
        self, *, apps: Sequence[str] | None = None, states: Sequence[str] | None = None
    ) -> list[DeploymentSummary]:
        """The grid's view of deployments (of APPS and in STATES, or all): no inventory or
        fingerprints are read or decoded, which is most of the cost of a full record."""
        where: list[str] = []
        params: list[str] = []
        for column, chosen in (("app", apps), ("state", states)):
            if chosen is not None:
                where.append(f"{column} IN ({', '.join('?' * len(chosen))})" if chosen else "0")
                params.extend(chosen)
        query = """SELECT app, cluster, state, applied_revision, message, resource_counts,
                       json_array_length(failing) AS failing
                   FROM deployments"""
        if where:
            query += " WHERE " + " AND ".join(where)
        with self._read("list deployment summaries") as conn:
            rows = conn.execute(query + " ORDER BY app, cluster", params).fetchall()
        return [
            DeploymentSummary(
                app=row["app"],
                cluster=row["cluster"],
                state=row["state"],
                applied_revision=row["applied_revision"],
                message=row["message"],
                resource_counts=from_json(
                    ResourceCounts, _json_in(row["resource_counts"]), what="resourceCounts"
                ),
                failing=int(row["failing"] or 0),
            )
            for row in rows
        ]

    def delete_deployment(self, app: str, cluster: str) -> None:
        with self._write(f"delete deployment of app {app} on cluster {cluster}") as conn:
            self.get_deployment(app, cluster)
            conn.execute("DELETE FROM deployments WHERE app = ? AND cluster = ?", (app, cluster))

    # -- sync history -----------------------------------------------------------------------

    def put_rollout(self, rollout: RolloutRecord) -> RolloutRecord:
        """Add or replace the rollout state of an app; stamps ``updated_at``."""
        with self._write(f"save rollout of app {rollout.app}") as conn:
            self.get_app(rollout.app)
            conn.execute(
                """INSERT INTO rollouts (app, revision, state, partitions, current, message, updated_at)
                   VALUES (:app, :revision, :state, :partitions, :current, :message, :updated_at)
                   ON CONFLICT (app) DO UPDATE SET revision = excluded.revision,
                       state = excluded.state, partitions = excluded.partitions,
                       current = excluded.current, message = excluded.message,
                       updated_at = excluded.updated_at""",
                {
                    "app": rollout.app,
                    "revision": rollout.revision,
                    "state": rollout.state,
                    "partitions": _json_out(
                        [
                            {
                                "name": p.name,
                                "clusters": list(p.clusters),
                                "maxUnavailable": p.max_unavailable,
                                "state": p.state,
                                "message": p.message,
                            }
                            for p in rollout.partitions
                        ]
                    ),
                    "current": rollout.current,
                    "message": rollout.message,
                    "updated_at": _time_out(utc_now()),
                },
            )
        return self.get_rollout(rollout.app)

    def get_rollout(self, app: str) -> RolloutRecord:
        with self._read(f"read rollout of app {app}") as conn:
            row = conn.execute("SELECT * FROM rollouts WHERE app = ?", (app,)).fetchone()
        if row is None:
            raise no_rollout(app)
        return RolloutRecord(
            app=row["app"],
            revision=row["revision"],
            state=row["state"],
            partitions=tuple(
                RolloutPartitionRecord(
                    name=p["name"],
                    clusters=tuple(p["clusters"]),
                    max_unavailable=int(p["maxUnavailable"]),
                    state=p["state"],
                    message=p["message"],
                )
                for p in _json_in(row["partitions"])
            ),
            current=int(row["current"]),
            message=row["message"],
            updated_at=_time_in_required(row["updated_at"]),
        )

    def start_sync(
        self,
        app: str,
        cluster: str,
        *,
        revision: int | None,
        trigger: SyncTrigger,
        actor: str = "",
    ) -> SyncRecord:
        """Record that a sync of ``app`` to ``cluster`` has started; it is ``running`` until
        finish_sync, or ``interrupted`` if this process dies first."""
        record = SyncRecord(
            id=0,
            app=app,
            cluster=cluster,
            revision=revision,
            trigger=trigger,
            actor=actor,
            started_at=utc_now(),
        )
        with self._write(f"record a sync of app {app} to cluster {cluster}") as conn:
            cursor = conn.execute(
                """INSERT INTO syncs (app, cluster, revision, trigger, actor, started_at,
                       finished_at, outcome, counts, message, owner_host, owner_pid)
                   VALUES (?, ?, ?, ?, ?, ?, NULL, 'running', '{}', '', ?, ?)""",
                (
                    app,
                    cluster,
                    revision,
                    trigger,
                    actor,
                    _time_out(record.started_at),
                    self._host,
                    os.getpid(),
                ),
            )
            assert cursor.lastrowid is not None  # an INSERT into a rowid table sets it
            return replace(record, id=cursor.lastrowid)

    def finish_sync(
        self,
        sync_id: int,
        *,
        outcome: SyncOutcome,
        counts: dict[str, int] | None = None,
        message: str = "",
        objects: dict[str, str] | None = None,
    ) -> SyncRecord:
        """Record how a running sync ended (``succeeded`` or ``failed``) and return it;
        OBJECTS is the action it took per encoded ObjectRef."""
        if outcome not in ("succeeded", "failed"):
            raise StoreError(f"a sync finishes as succeeded or failed, not {outcome!r}")
        with self._write(f"finish sync {sync_id}") as conn:
            current = self._get_sync(conn, sync_id)
            if current.outcome != "running":
                raise StoreError(
                    f"sync {sync_id} has already ended as {current.outcome}",
                    where=Where(app=current.app, cluster=current.cluster),
                )
            conn.execute(
                """UPDATE syncs SET finished_at = ?, outcome = ?, counts = ?, message = ?,
                       objects = ?
                   WHERE id = ?""",
                (
                    _time_out(utc_now()),
                    outcome,
                    _json_out(counts or {}),
                    message,
                    _json_out(objects or {}),
                    sync_id,
                ),
            )
            return self._get_sync(conn, sync_id)

    def get_sync(self, sync_id: int) -> SyncRecord:
        with self._read(f"read sync {sync_id}") as conn:
            return self._get_sync(conn, sync_id)

    def _get_sync(self, conn: sqlite3.Connection, sync_id: int) -> SyncRecord:
        row = conn.execute("SELECT * FROM syncs WHERE id = ?", (sync_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no sync with id {sync_id}")
        return _sync_from(row)

    def list_syncs(
        self, app: str, *, cluster: str | None = None, limit: int = 50
    ) -> list[SyncRecord]:
        """The sync history of ``app`` (optionally on one cluster), newest first."""
        with self._read(f"list syncs of app {app}") as conn:
            rows = conn.execute(
                """SELECT * FROM syncs WHERE app = :app
                       AND (:cluster IS NULL OR cluster = :cluster)
                   ORDER BY id DESC LIMIT :limit""",
                {"app": app, "cluster": cluster, "limit": max(limit, 0)},
            ).fetchall()
        return [_sync_from(row) for row in rows]

    def running_syncs(self) -> list[SyncRecord]:
        """Syncs not yet finished, oldest first (of this and any other live process)."""
        with self._read("list running syncs") as conn:
            rows = conn.execute(
                "SELECT * FROM syncs WHERE outcome = 'running' ORDER BY id"
            ).fetchall()
        return [_sync_from(row) for row in rows]

    def recover_interrupted(self) -> list[SyncRecord]:
        """Mark syncs left ``running`` by a dead process as ``interrupted``; return them.

        Only syncs started on this host by a process that no longer exists are touched: the
        CLI opening the store must not declare the running daemon's syncs dead. (A reused
        pid keeps a dead sync ``running`` until that pid exits too; harmless, and rare.)
        """
        # Read first: opening the store must not take the write lock when nothing is stale.
        with self._read("list running syncs") as conn:
            rows = conn.execute(
                "SELECT id, owner_host, owner_pid FROM syncs WHERE outcome = 'running'"
            ).fetchall()
        dead = [
            int(r["id"])
            for r in rows
            if r["owner_host"] == self._host and not _process_alive(int(r["owner_pid"]))
        ]
        if not dead:
            return []
        with self._write("recover interrupted syncs") as conn:
            return [sync for sync_id in dead for sync in self._interrupt(conn, sync_id=sync_id)]

    def _interrupt(
        self,
        conn: sqlite3.Connection,
        *,
        sync_id: int | None = None,
        app: str | None = None,
        cluster: str | None = None,
    ) -> list[SyncRecord]:
        """Mark running syncs (SYNC_ID, or every one of APP on CLUSTER) interrupted, each
        with an event, and the Deployment it was applying says so; return them."""
        if sync_id is not None:
            ids = [sync_id]
        else:
            rows = conn.execute(
                """SELECT id FROM syncs WHERE outcome = 'running' AND app = ? AND cluster = ?""",
                (app, cluster),
            ).fetchall()
            ids = [int(r["id"]) for r in rows]
        finished_at = _time_out(utc_now())
        interrupted: list[SyncRecord] = []
        for each in ids:
            cursor = conn.execute(
                """UPDATE syncs SET outcome = 'interrupted', finished_at = ?, message = ?
                   WHERE id = ? AND outcome = 'running'""",
                (finished_at, INTERRUPTED_MESSAGE, each),
            )
            # Another process may have recovered it between the read and the write.
            if cursor.rowcount != 1:
                continue
            sync = self._get_sync(conn, each)
            interrupted.append(sync)
            self._interrupted_deployment(conn, sync)
            # Whoever notices an interruption records it, in the same transaction.
            conn.execute(
                """INSERT INTO events (time, app, cluster, kind, trigger, source_commit,
                       outcome, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    finished_at,
                    sync.app,
                    sync.cluster,
                    "failure",
                    sync.trigger,
                    None,
                    "interrupted",
                    f"sync {sync.id}: {INTERRUPTED_MESSAGE}",
                ),
            )
        return interrupted

    def _interrupted_deployment(self, conn: sqlite3.Connection, sync: SyncRecord) -> None:
        """The Deployment SYNC was applying (WaitApplied, written ahead) says it stopped."""
        if sync.revision is None:
            return
        conn.execute(
            """UPDATE deployments SET message = ?, updated_at = ?
               WHERE app = ? AND cluster = ? AND state = 'WaitApplied'
                   AND desired_revision = ?""",
            (
                f"revision {sync.revision} was interrupted (sync {sync.id}: {INTERRUPTED_MESSAGE}); "
                "the cluster may hold part of it until a sync completes",
                _time_out(utc_now()),
                sync.app,
                sync.cluster,
                sync.revision,
            ),
        )

    # -- sync locks: one writer per app and cluster --------------------------------------------

    def acquire_sync_lock(
        self, app: str, cluster: str, *, token: str, stale_after: float, mine: frozenset[str]
    ) -> SyncLock:
        """Take the hold on APP on CLUSTER for TOKEN, or return whoever holds it.

        A hold is taken over when its owner is gone: a process of this host that no
        longer exists, one of this process whose token is not among MINE (its sync
        ended without releasing it), or any owner whose heartbeat is older than
        STALE_AFTER seconds (another host, or a process that stopped).
        """
        now = utc_now()
        with self._write(f"take the sync lock of app {app} on cluster {cluster}") as conn:
            row = conn.execute(
                "SELECT * FROM sync_locks WHERE app = ? AND cluster = ?", (app, cluster)
            ).fetchone()
            if row is not None:
                held = _lock_from(row)
                if held.token == token or not self._stale(held, now, stale_after, mine):
                    return held
            conn.execute(
                """INSERT OR REPLACE INTO sync_locks (app, cluster, token, owner_pid, owner_host,
                       started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (app, cluster, token, os.getpid(), self._host, _time_out(now), _time_out(now)),
            )
            # Whoever holds (app, cluster) is its only writer: a sync of it still
            # "running" ended without its record (its process lives on, or lived on
            # another host), and is interrupted now.
            self._interrupt(conn, app=app, cluster=cluster)
            return SyncLock(
                app=app,
                cluster=cluster,
                token=token,
                pid=os.getpid(),
                host=self._host,
                started_at=now,
                heartbeat_at=now,
            )

    def _stale(
        self, held: SyncLock, now: datetime, stale_after: float, mine: frozenset[str]
    ) -> bool:
        if (now - held.heartbeat_at).total_seconds() > stale_after:
            return True
        if held.host != self._host:
            return False
        if held.pid == os.getpid():
            return held.token not in mine
        return not _process_alive(held.pid)

    def renew_sync_locks(self, tokens: Collection[str]) -> set[str]:
        """Renew the heartbeat of the holds with TOKENS; return the tokens still held."""
        if not tokens:
            return set()
        marks = ",".join("?" for _ in tokens)
        with self._write("renew sync locks") as conn:
            conn.execute(
                f"UPDATE sync_locks SET heartbeat_at = ? WHERE token IN ({marks})",
                (_time_out(utc_now()), *tokens),
            )
            rows = conn.execute(
                f"SELECT token FROM sync_locks WHERE token IN ({marks})", tuple(tokens)
            ).fetchall()
        return {str(r["token"]) for r in rows}

    def release_sync_lock(self, app: str, cluster: str, *, token: str) -> None:
        """Let go of the hold on APP on CLUSTER, if TOKEN still has it."""
        with self._write(f"release the sync lock of app {app} on cluster {cluster}") as conn:
            conn.execute(
                "DELETE FROM sync_locks WHERE app = ? AND cluster = ? AND token = ?",
                (app, cluster, token),
            )

    # -- events -----------------------------------------------------------------------------

    def add_event(
        self,
        *,
        kind: str,
        message: str,
        app: str | None = None,
        cluster: str | None = None,
        trigger: str | None = None,
        commit: str | None = None,
        outcome: str | None = None,
        time: datetime | None = None,
    ) -> EventRecord:
        """Append an event to the feed and return it with its id."""
        # Build the record first: its checks (e.g. a naive time) must fail before the insert.
        event = EventRecord(
            id=0,
            time=time or utc_now(),
            kind=kind,
            message=message,
            app=app,
            cluster=cluster,
            trigger=trigger,
            commit=commit,
            outcome=outcome,
        )
        with self._write(f"record a {kind} event") as conn:
            cursor = conn.execute(
                """INSERT INTO events (time, app, cluster, kind, trigger, source_commit,
                       outcome, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (_time_out(event.time), app, cluster, kind, trigger, commit, outcome, message),
            )
            assert cursor.lastrowid is not None  # an INSERT into a rowid table sets it
            return replace(event, id=cursor.lastrowid)

    def list_events(
        self,
        *,
        app: str | None = None,
        cluster: str | None = None,
        since_id: int | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Events oldest first: the first ``limit`` after ``since_id`` (to tail the feed),
        or without ``since_id`` the newest ``limit``."""
        params = {"app": app, "cluster": cluster, "since": since_id, "limit": max(limit, 0)}
        match = """(:app IS NULL OR app = :app) AND (:cluster IS NULL OR cluster = :cluster)"""
        with self._read("list events") as conn:
            if since_id is not None:
                rows = conn.execute(
                    f"SELECT * FROM events WHERE {match} AND id > :since ORDER BY id LIMIT :limit",
                    params,
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT * FROM events WHERE {match} ORDER BY id DESC LIMIT :limit", params
                ).fetchall()
                rows.reverse()
        return [_event_from(row) for row in rows]

    # -- API tokens -------------------------------------------------------------------------

    def add_token(
        self,
        name: str,
        *,
        token_hash: str,
        scope: TokenScope = "admin",
        expires_at: datetime | None = None,
    ) -> TokenRecord:
        """Keep a new API token by NAME, as the SHA-256 hex TOKEN_HASH (never the token).

        EXPIRES_AT (None: never) is when the server stops accepting it.
        """
        record = TokenRecord(id=0, name=name, scope=scope, expires_at=expires_at)  # checks first
        if len(token_hash) != 64:
            raise StoreError("a token is kept as its hex SHA-256", where=Where(field="hash"))
        with self._write(f"save token {name}") as conn:
            if conn.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                raise ConfigError(
                    f"a token named {name!r} exists",
                    hint=f"choose another name, or `appflow token revoke {name}` first",
                )
            cursor = conn.execute(
                """INSERT INTO tokens (name, hash, scope, created_at, last_used, expires_at)
                   VALUES (?, ?, ?, ?, NULL, ?)""",
                (name, token_hash, scope, _time_out(record.created_at), _time_out(expires_at)),
            )
            assert cursor.lastrowid is not None  # an INSERT into a rowid table sets it
            return replace(record, id=cursor.lastrowid)

    def session_key(self) -> bytes:
        return key_file(self.path.parent / SESSION_KEY_FILE)

    def list_tokens(self) -> list[TokenRecord]:
        """Every API token (names and times, no hashes), oldest first."""
        with self._read("list tokens") as conn:
            rows = conn.execute("SELECT * FROM tokens ORDER BY id").fetchall()
        return [_token_from(row) for row in rows]

    def delete_token(self, name: str) -> None:
        """Revoke the API token NAME: requests carrying it are refused from now on."""
        with self._write(f"revoke token {name}") as conn:
            cursor = conn.execute("DELETE FROM tokens WHERE name = ?", (name,))
            if cursor.rowcount == 0:
                raise NotFoundError(f"no token named {name!r}", hint="see `appflow token list`")

    def use_token(self, token_hash: str, *, now: datetime | None = None) -> TokenRecord | None:
        """The token whose SHA-256 is TOKEN_HASH, or None; records when it was last used.

        ``last_used`` is written at most once per TOKEN_TOUCH_SECONDS per token: every
        API request passes here, and a write costs an fsync. The write is best-effort:
        when another process holds the store's write lock it is skipped, because a
        read of the API must never wait for it (nor fail after the busy timeout).
        """
        with self._read("look up a token") as conn:
            row = conn.execute("SELECT * FROM tokens WHERE hash = ?", (token_hash,)).fetchone()
        if row is None:
            return None
        token = _token_from(row)
        when = now or utc_now()
        stale = token.last_used is None or (
            (when - token.last_used).total_seconds() >= TOKEN_TOUCH_SECONDS
        )
        if stale and self._write_if_free(
            "UPDATE tokens SET last_used = ? WHERE id = ?", (_time_out(when), token.id)
        ):
            token = replace(token, last_used=when)
        return token

    def _write_if_free(self, statement: str, params: tuple[object, ...]) -> bool:
        """Run one write statement if the write lock is free right now; False if it was not."""
        with self._lock:
            conn = self._require_open()
            try:
                conn.execute("PRAGMA busy_timeout = 0")
                try:
                    with self._write("record a token's use"):
                        conn.execute(statement, params)
                finally:
                    conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            except (StoreError, sqlite3.Error) as err:
                log.debug("skipped a best-effort write: %s", err)
                return False
        return True

    # -- webhook deliveries -----------------------------------------------------------------

    def remember_deliveries(self, keys: list[str], *, now: float, ttl_seconds: float) -> bool:
        """True if any of KEYS was seen in the TTL_SECONDS before NOW (a replay); else keep them.

        Kept in the store, not in memory: a replay must be refused after a restart too.
        Entries older than the TTL are dropped on the way.
        """
        wanted = [k for k in keys if k]
        with self._write("remember a webhook delivery") as conn:
            conn.execute("DELETE FROM webhook_deliveries WHERE seen_at <= ?", (now - ttl_seconds,))
            for key in wanted:
                if conn.execute(
                    "SELECT 1 FROM webhook_deliveries WHERE key = ?", (key,)
                ).fetchone():
                    return True
            conn.executemany(
                "INSERT OR REPLACE INTO webhook_deliveries (key, seen_at) VALUES (?, ?)",
                [(key, now) for key in wanted],
            )
        return False

    # -- policies ---------------------------------------------------------------------------

    def put_policy(self, policy: Policy) -> Policy:
        """Add or replace the policy of a cluster, group or repo; stamps ``updated_at``."""
        with self._write(f"save the {policy.label}") as conn:
            conn.execute(
                """INSERT INTO policies (scope, name, namespaces, cluster_scoped, helm_lookup,
                       read_namespaces, helm_release, updated_at)
                   VALUES (:scope, :name, :namespaces, :cluster_scoped, :helm_lookup,
                       :read_namespaces, :helm_release, :updated_at)
                   ON CONFLICT (scope, name) DO UPDATE SET namespaces = excluded.namespaces,
                       cluster_scoped = excluded.cluster_scoped,
                       helm_lookup = excluded.helm_lookup,
                       read_namespaces = excluded.read_namespaces,
                       helm_release = excluded.helm_release,
                       updated_at = excluded.updated_at""",
                {
                    "scope": policy.scope,
                    "name": policy.name,
                    "namespaces": None
                    if policy.namespaces is None
                    else _json_out(list(policy.namespaces)),
                    "cluster_scoped": int(policy.cluster_scoped),
                    "helm_lookup": _tristate(policy.helm_lookup),
                    "read_namespaces": _json_out(list(policy.read_namespaces)),
                    "helm_release": _tristate(policy.helm_release),
                    "updated_at": _time_out(utc_now()),
                },
            )
            return self.get_policy(policy.scope, policy.name)

    def get_policy(self, scope: PolicyScope, name: str) -> Policy:
        with self._read(f"read the policy of {scope} {name}") as conn:
            row = conn.execute(
                "SELECT * FROM policies WHERE scope = ? AND name = ?", (scope, name)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"{scope} {name} has no policy", hint="see `appflow policy list`")
        return _policy_from(row)

    def list_policies(self) -> list[Policy]:
        with self._read("list policies") as conn:
            rows = conn.execute("SELECT * FROM policies ORDER BY scope, name").fetchall()
        return [_policy_from(row) for row in rows]

    def delete_policy(self, scope: PolicyScope, name: str) -> None:
        with self._write(f"delete the policy of {scope} {name}") as conn:
            self.get_policy(scope, name)
            conn.execute("DELETE FROM policies WHERE scope = ? AND name = ?", (scope, name))


# -- rows to records --------------------------------------------------------------------------


def _cluster_not_found(name: str) -> NotFoundError:
    return NotFoundError(
        "no such cluster", where=Where(cluster=name), hint="see `appflow cluster list`"
    )


def _repo_not_found(name: str) -> NotFoundError:
    return NotFoundError(f"no repo named {name!r}", hint="see `appflow repo list`")


def _app_not_found(name: str) -> NotFoundError:
    return NotFoundError("no such app", where=Where(app=name), hint="see `appflow app list`")


def _cluster_from(row: sqlite3.Row) -> ClusterRecord:
    return ClusterRecord(
        name=row["name"],
        kind=row["kind"],
        labels=_json_in(row["labels"]),
        kubeconfig_path=row["kubeconfig_path"],
        context=row["context"],
        state=row["state"],
        state_reason=row["state_reason"],
        k8s_version=row["k8s_version"],
        distribution=row["distribution"],
        mode=row["mode"],
        node_count=row["node_count"],
        last_seen=_time_in(row["last_seen"]),
        created_at=_time_in_required(row["created_at"]),
    )


def _repo_from(row: sqlite3.Row) -> RepoRecord:
    return RepoRecord(
        name=row["name"],
        url=row["url"],
        ref=row["ref"],
        paths=tuple(_json_in(row["paths"])),
        auth=from_json(RepoCredentials, _json_in(row["auth"]), what="auth"),
        poll_interval_seconds=int(row["poll_interval_seconds"]),
        webhook_secret_ref=row["webhook_secret_ref"],
        last_commit=row["last_commit"],
        last_fetched=_time_in(row["last_fetched"]),
        created_at=_time_in_required(row["created_at"]),
    )


def _catalog_repo_from(row: sqlite3.Row) -> CatalogRepoRecord:
    return CatalogRepoRecord(
        name=row["name"],
        url=row["url"],
        username=row["username"],
        password_file=row["password_file"],
        ca_file=row["ca_file"],
        poll_interval_seconds=int(row["poll_interval_seconds"]),
        created_at=_time_in_required(row["created_at"]),
    )


def _app_from(row: sqlite3.Row) -> AppRecord:
    return AppRecord(
        name=row["name"],
        source=row["source"],
        repo=row["repo"],
        local_path=row["local_path"],
        path=row["path"],
        policy=from_json(SyncPolicy, _json_in(row["policy"]), what="policy"),
        labels=_json_in(row["labels"]),
        depends_on=from_json(tuple[Dependency, ...], _json_in(row["depends_on"]), what="dependsOn"),
        rollout=from_json(RolloutSpec, _json_in(row["rollout"]), what="rollout"),
        catalog=None
        if row["catalog"] is None
        else from_json(CatalogInstall, _json_in(row["catalog"]), what="catalog"),
        pinned_revision=row["pinned_revision"],
        created_at=_time_in_required(row["created_at"]),
        updated_at=_time_in_required(row["updated_at"]),
    )


def _deployment_from(row: sqlite3.Row) -> DeploymentRecord:
    return DeploymentRecord(
        app=row["app"],
        cluster=row["cluster"],
        desired_revision=row["desired_revision"],
        applied_revision=row["applied_revision"],
        state=row["state"],
        message=row["message"],
        inventory=_inventory_in(row["app"], row["cluster"], row["inventory"]),
        applied=_json_in(row["applied"]),
        release=None
        if row["release"] is None
        else from_json(HelmReleaseRef, _json_in(row["release"]), what="release"),
        hooks=None
        if row["hooks"] is None
        else from_json(HookRecord, _json_in(row["hooks"]), what="hooks"),
        resource_counts=from_json(
            ResourceCounts, _json_in(row["resource_counts"]), what="resourceCounts"
        ),
        failing=tuple(
            FailingObject(object=f["object"], message=f["message"])
            for f in _json_in(row["failing"])
        ),
        updated_at=_time_in_required(row["updated_at"]),
    )


def _sync_from(row: sqlite3.Row) -> SyncRecord:
    return SyncRecord(
        id=int(row["id"]),
        app=row["app"],
        cluster=row["cluster"],
        revision=row["revision"],
        trigger=row["trigger"],
        actor=row["actor"],
        started_at=_time_in_required(row["started_at"]),
        finished_at=_time_in(row["finished_at"]),
        outcome=row["outcome"],
        counts=_json_in(row["counts"]),
        message=row["message"],
        objects=_json_in(row["objects"]),
    )


def _lock_from(row: sqlite3.Row) -> SyncLock:
    return SyncLock(
        app=row["app"],
        cluster=row["cluster"],
        token=row["token"],
        pid=int(row["owner_pid"]),
        host=row["owner_host"],
        started_at=_time_in_required(row["started_at"]),
        heartbeat_at=_time_in_required(row["heartbeat_at"]),
    )


def _event_from(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        id=int(row["id"]),
        time=_time_in_required(row["time"]),
        kind=row["kind"],
        message=row["message"],
        app=row["app"],
        cluster=row["cluster"],
        trigger=row["trigger"],
        commit=row["source_commit"],
        outcome=row["outcome"],
    )


def _token_from(row: sqlite3.Row) -> TokenRecord:
    return TokenRecord(
        id=int(row["id"]),
        name=row["name"],
        scope=row["scope"],
        created_at=_time_in_required(row["created_at"]),
        last_used=_time_in(row["last_used"]),
        expires_at=_time_in(row["expires_at"]),
    )


def _tristate(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _policy_from(row: sqlite3.Row) -> Policy:
    namespaces = row["namespaces"]
    lookup, release = row["helm_lookup"], row["helm_release"]
    return Policy(
        scope=row["scope"],
        name=row["name"],
        namespaces=None if namespaces is None else tuple(_json_in(namespaces)),
        cluster_scoped=bool(row["cluster_scoped"]),
        helm_lookup=None if lookup is None else bool(lookup),
        read_namespaces=tuple(_json_in(row["read_namespaces"])),
        helm_release=None if release is None else bool(release),
        updated_at=_time_in_required(row["updated_at"]),
    )


def _prepare_file(path: Path) -> None:
    # The store holds cluster names, URLs and paths to credential files: private to the user.
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as err:
        raise StoreError(
            f"cannot create the store: {err.strerror}",
            where=Where(file=str(path)),
            hint="check that the folder is writable, or set APPFLOW_HOME",
        ) from err
