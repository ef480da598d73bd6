"""The SQLite schema of the embedded store, as an ordered list of migrations.

``PRAGMA user_version`` holds the number of the last migration applied. Each migration runs
in its own ``BEGIN IMMEDIATE`` transaction together with the ``user_version`` bump, so a
crash during an upgrade leaves the database at the previous version, never in between. A
database whose version is newer than ``SCHEMA_VERSION`` was written by a newer appflow and
is refused rather than guessed at.

Never edit a released migration; append a new one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from appflow.errors import StoreError, Where

APPLICATION_ID = 0x41504657  # "APFW": marks the file as an appflow store (PRAGMA application_id)


@dataclass(frozen=True, kw_only=True)
class Migration:
    """One schema step: the version it brings the database to, and its statements in order."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="clusters, groups, repos, apps, revisions, deployments, syncs, events",
        statements=(
            f"PRAGMA application_id = {APPLICATION_ID}",
            """CREATE TABLE clusters (
                name TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                labels TEXT NOT NULL,
                kubeconfig_path TEXT,
                context TEXT,
                state TEXT NOT NULL,
                state_reason TEXT NOT NULL,
                k8s_version TEXT,
                distribution TEXT,
                mode TEXT,
                node_count INTEGER,
                last_seen TEXT,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE cluster_groups (
                name TEXT PRIMARY KEY,
                selector TEXT NOT NULL
            )""",
            """CREATE TABLE repos (
                name TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                ref TEXT NOT NULL,
                paths TEXT NOT NULL,
                auth TEXT NOT NULL,
                poll_interval_seconds INTEGER NOT NULL,
                webhook_secret_ref TEXT,
                last_commit TEXT,
                last_fetched TEXT,
                created_at TEXT NOT NULL
            )""",
            # RESTRICT: a repo that apps still come from cannot disappear under them.
            """CREATE TABLE apps (
                name TEXT PRIMARY KEY,
                source TEXT NOT NULL,
                repo TEXT REFERENCES repos(name) ON DELETE RESTRICT,
                local_path TEXT,
                path TEXT NOT NULL,
                definition TEXT NOT NULL,
                paused INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            "CREATE INDEX apps_by_repo ON apps(repo)",
            # Revisions belong to their app and go with it. ``rendered`` is zlib-compressed
            # JSON: rendered manifests compress about tenfold and are read only on rollback.
            """CREATE TABLE revisions (
                app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
                number INTEGER NOT NULL,
                digest TEXT NOT NULL,
                source_ref TEXT NOT NULL,
                message TEXT NOT NULL,
                rendered BLOB NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (app, number)
            )""",
            # RESTRICT on both sides: a deployment holds the inventory, the only record of
            # what appflow owns on a cluster, so it must be removed on purpose, never as a
            # side effect of deleting its app or cluster.
            """CREATE TABLE deployments (
                app TEXT NOT NULL REFERENCES apps(name) ON DELETE RESTRICT,
                cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE RESTRICT,
                desired_revision INTEGER,
                applied_revision INTEGER,
                state TEXT NOT NULL,
                message TEXT NOT NULL,
                inventory TEXT NOT NULL,
                applied TEXT NOT NULL DEFAULT '{}',
                resource_counts TEXT NOT NULL,
                failing TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (app, cluster)
            )""",
            "CREATE INDEX deployments_by_cluster ON deployments(cluster)",
            # History outlives the apps and clusters it is about: no foreign keys.
            # AUTOINCREMENT so ids are never reused and ``since_id`` tailing stays exact.
            """CREATE TABLE syncs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                app TEXT NOT NULL,
                cluster TEXT NOT NULL,
                revision INTEGER,
                trigger TEXT NOT NULL,
                started_at TEXT NOT NULL,
                finished_at TEXT,
                outcome TEXT NOT NULL,
                counts TEXT NOT NULL,
                message TEXT NOT NULL,
                owner_host TEXT NOT NULL,
                owner_pid INTEGER NOT NULL
            )""",
            "CREATE INDEX syncs_by_app ON syncs(app, cluster, id)",
            "CREATE INDEX syncs_running ON syncs(outcome) WHERE outcome = 'running'",
            """CREATE TABLE events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                time TEXT NOT NULL,
                app TEXT,
                cluster TEXT,
                kind TEXT NOT NULL,
                trigger TEXT,
                source_commit TEXT,
                outcome TEXT,
                message TEXT NOT NULL
            )""",
            "CREATE INDEX events_by_app ON events(app, id)",
            "CREATE INDEX events_by_cluster ON events(cluster, id)",
        ),
    ),
    Migration(
        version=2,
        description="rollouts: progressive delivery state per app",
        statements=(
            """CREATE TABLE rollouts (
                app TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
                revision INTEGER,
                state TEXT NOT NULL,
                partitions TEXT NOT NULL,
                current INTEGER NOT NULL,
                message TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        version=3,
        description="tokens: API bearer tokens, kept as their SHA-256",
        statements=(
            # Only the hash is kept: a copy of the store grants no API access.
            """CREATE TABLE tokens (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                hash TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL,
                last_used TEXT
            )""",
        ),
    ),
    Migration(
        version=4,
        description="dashboard: read-only tokens, each sync's action per object",
        statements=(
            # 'admin' keeps every token made before read-only ones existed as it was.
            "ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin'",
            # {"<encoded ObjectRef>": "created"|"configured"|...}: the app page's object tree.
            "ALTER TABLE syncs ADD COLUMN objects TEXT NOT NULL DEFAULT '{}'",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def _user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(
    conn: sqlite3.Connection,
    *,
    path: Path,
    migrations: tuple[Migration, ...] = MIGRATIONS,
) -> int:
    """Bring the database to the newest schema version and return that version.

    ``conn`` must be in autocommit mode (``isolation_level=None``): each step is wrapped in
    its own ``BEGIN IMMEDIATE`` here. Raises StoreError for a database of a newer appflow,
    for a SQLite file that is not an appflow store, and when a step fails (that step is
    rolled back; earlier steps stay applied).
    """
    latest = migrations[-1].version if migrations else 0
    where = Where(file=str(path))
    current = _user_version(conn)
    if current > latest:
        raise StoreError(
            f"the store has schema version {current}, written by a newer appflow; "
            f"this appflow knows schema versions up to {latest}",
            where=where,
            hint="upgrade appflow, or point APPFLOW_HOME at another folder",
        )
    if current == 0:
        _refuse_foreign_database(conn, where=where)
    for step in migrations:
        if step.version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while this one waited for the write lock.
            current = _user_version(conn)
            if step.version <= current:
                conn.execute("ROLLBACK")
                continue
            for statement in step.statements:
                conn.execute(statement)
            # PRAGMA takes no parameters; the version is an int from our own table.
            conn.execute(f"PRAGMA user_version = {int(step.version)}")
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(
                f"schema migration to version {step.version} ({step.description}) failed: {err}",
                where=where,
                hint="the store was left at its previous version; report this as a bug",
            ) from err
        current = step.version
    return current


def _refuse_foreign_database(conn: sqlite3.Connection, *, where: Where) -> None:
    # Version 0 with tables in it means someone else's SQLite file: creating our tables
    # inside it would mix two programs' data.
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchone()
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if int(row[0]) > 0 or app_id not in (0, APPLICATION_ID):
        raise StoreError(
            "this SQLite file is not an appflow store",
            where=where,
            hint="point APPFLOW_HOME at another folder, or move the file aside",
        )
