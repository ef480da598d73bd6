"""The SQLite schema of the embedded store, as an ordered list of migrations.

``PRAGMA user_version`` holds the number of the last migration applied. Each migration runs
in its own ``BEGIN IMMEDIATE`` transaction together with the ``user_version`` bump, so a
crash during an upgrade leaves the database at the previous version, never in between. A
database whose version is newer than ``SCHEMA_VERSION`` was written by a newer appflow and
is refused rather than guessed at.

Never edit a released migration; append a new one. A step that reshapes data (not only
the schema) has a ``convert`` function; it works on the rows' JSON as this version wrote
it, never through today's record classes, so that it keeps meaning what it meant when
the step was written.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appflow.errors import StoreError, Where

APPLICATION_ID = 0x41504657  # "APFW": marks the file as an appflow store (PRAGMA application_id)


@dataclass(frozen=True, kw_only=True)
class Migration:
    """One schema step: the version it brings the database to, and its statements in order."""

    version: int
    description: str
    statements: tuple[str, ...] = ()
    convert: Callable[[sqlite3.Connection], None] | None = None
    """Runs after the statements, in the same transaction."""
    after: tuple[str, ...] = ()
    """Statements that run after ``convert`` (dropping what it converted from)."""
    finish: Callable[[Path], None] | None = None
    """Runs once the step is committed, given the store's path: tidies files outside the
    database that the step took in (a crash before it leaves them, never reads them again)."""


# -- version 5: typed records -------------------------------------------------------------

_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_HELM_REVISION = "helmRevision"
_RELEASE_KEY = "helm.release"
_HELM_HISTORY = 20


def _source_ref_v5(text: str, *, app: str, number: int) -> dict[str, str]:
    """Version 4's one-string source ref as version 5's tagged object."""
    if _COMMIT.match(text):
        return {"kind": "git", "commit": text}
    if text.startswith("local:"):
        return {"kind": "local", "digest": text.removeprefix("local:")}
    if text.startswith("catalog:") and "@" in text:
        entry, _, version = text.removeprefix("catalog:").rpartition("@")
        return {"kind": "catalog", "entry": entry, "version": version}
    raise sqlite3.DataError(f"revision {number} of app {app} has an unknown source {text!r}")


def _apps_v5(conn: sqlite3.Connection) -> None:
    # Version 4 kept a camelCase cache of the definition in one JSON column:
    # {"syncPolicy": {...}, "namespace", "kind", "catalog": {...}}. The catalog
    # data's keys are already version 5's (CatalogInstall's camelCase fields).
    for name, text in conn.execute("SELECT name, definition FROM apps").fetchall():
        definition: dict[str, Any] = json.loads(text or "{}")
        policy = definition.get("syncPolicy") or {}
        catalog = definition.get("catalog")
        conn.execute(
            "UPDATE apps SET policy = ?, catalog = ? WHERE name = ?",
            (
                json.dumps(
                    {k: bool(v) for k, v in policy.items() if k in _POLICY_KEYS}, sort_keys=True
                ),
                None if catalog is None else json.dumps(catalog, sort_keys=True),
                name,
            ),
        )


_POLICY_KEYS = ("auto", "prune", "selfHeal", "forceConflicts")


def _release_history(conn: sqlite3.Connection, app: str, cluster: str) -> list[dict[str, int]]:
    # Version 4 found a revision's Helm revision by scanning the syncs' counts.
    history: list[dict[str, int]] = []
    for revision, counts in conn.execute(
        """SELECT revision, counts FROM syncs WHERE app = ? AND cluster = ?
           AND outcome = 'succeeded' AND revision IS NOT NULL ORDER BY id""",
        (app, cluster),
    ):
        helm = json.loads(counts or "{}").get(_HELM_REVISION)
        if isinstance(helm, int):
            history = [h for h in history if h["revision"] != revision]
            history.append({"revision": int(revision), "helmRevision": helm})
    return history[-_HELM_HISTORY:]


def _deployments_v5(conn: sqlite3.Connection) -> None:
    # Version 4 kept a release-mode Deployment's release as a fake fingerprint
    # "helm.release" -> "<namespace>/<name>", and Helm's revision in its counts.
    rows = conn.execute("SELECT app, cluster, applied, resource_counts FROM deployments")
    for app, cluster, applied_text, counts_text in rows.fetchall():
        applied: dict[str, str] = json.loads(applied_text or "{}")
        counts: dict[str, int] = json.loads(counts_text or "{}")
        located = applied.pop(_RELEASE_KEY, None)
        helm_revision = counts.pop(_HELM_REVISION, None)
        release = None
        if located and "/" in located:
            namespace, _, release_name = located.partition("/")
            release = {
                "namespace": namespace,
                "name": release_name,
                "revision": int(helm_revision or 0),
                "history": _release_history(conn, app, cluster),
            }
        conn.execute(
            """UPDATE deployments SET applied = ?, resource_counts = ?, release = ?
               WHERE app = ? AND cluster = ?""",
            (
                json.dumps(applied, sort_keys=True, separators=(",", ":")),
                json.dumps(counts, sort_keys=True, separators=(",", ":")),
                None if release is None else json.dumps(release, sort_keys=True),
                app,
                cluster,
            ),
        )


def _revisions_and_syncs_v5(conn: sqlite3.Connection) -> None:
    for app, number, text in conn.execute(
        "SELECT app, number, source_ref FROM revisions"
    ).fetchall():
        conn.execute(
            "UPDATE revisions SET source_ref = ? WHERE app = ? AND number = ?",
            (json.dumps(_source_ref_v5(text, app=app, number=number), sort_keys=True), app, number),
        )
    for sync_id, counts_text in conn.execute(
        "SELECT id, counts FROM syncs WHERE counts LIKE ?", (f'%"{_HELM_REVISION}"%',)
    ).fetchall():
        counts = json.loads(counts_text)
        counts.pop(_HELM_REVISION, None)
        conn.execute(
            "UPDATE syncs SET counts = ? WHERE id = ?",
            (json.dumps(counts, sort_keys=True, separators=(",", ":")), sync_id),
        )


def _typed_records_v5(conn: sqlite3.Connection) -> None:
    _apps_v5(conn)
    # Deployments before syncs: their release history is read from the syncs' counts.
    _deployments_v5(conn)
    _revisions_and_syncs_v5(conn)


# -- version 6: catalog repositories in the store ----------------------------------------

_CATALOG_REPOS_FILE = "catalog-repos.json"
"""Where versions before 6 kept catalog repositories: next to the store, in the data folder."""

# Version 5's RepoRecord.auth was a free dict naming where a secret is, in the git
# adapter's words; version 6's is RepoCredentials. No sync ever used the old form (the
# engine built git sources without it), so one that does not map is dropped, not refused.
_SECRET_KEYS = ("token_file", "password_file", "private_key_file", "key_file")


def _legacy_catalog_repos(conn: sqlite3.Connection) -> Path | None:
    name = str(conn.execute("PRAGMA database_list").fetchone()[2])
    # An in-memory store has no folder, and so no file of an earlier version beside it.
    return Path(name).parent / _CATALOG_REPOS_FILE if name else None


def _catalog_repos_v6(conn: sqlite3.Connection) -> None:
    legacy = _legacy_catalog_repos(conn)
    if legacy is not None and legacy.is_file():
        now = datetime.now(UTC).isoformat()
        for repo in _catalog_repos_in(legacy):
            conn.execute(
                """INSERT INTO catalog_repos (name, url, username, password_file, ca_file,
                       poll_interval_seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (
                    repo["name"],
                    repo["url"],
                    repo.get("username"),
                    repo.get("password_file"),
                    repo.get("ca_file"),
                    int(repo.get("poll_interval_seconds") or 300),
                    now,
                ),
            )
    for name, text in conn.execute("SELECT name, auth FROM repos").fetchall():
        conn.execute("UPDATE repos SET auth = ? WHERE name = ?", (_credentials_v6(text), name))


def _catalog_repos_in(legacy: Path) -> list[dict[str, Any]]:
    """The repositories of an earlier version's catalog-repos.json; DataError (the step
    fails, naming the file) when it is not what that version wrote."""
    try:
        repos = json.loads(legacy.read_text(encoding="utf-8")).get("repos") or []
        if not all(
            isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("url"), str)
            for r in repos
        ):
            raise ValueError("every repository needs a name and a url")
    except (OSError, ValueError, AttributeError, TypeError) as err:
        raise sqlite3.DataError(
            f"{legacy} cannot be read: {err}; fix or move the file and run appflow again"
        ) from err
    return list(repos)


def _credentials_v6(text: str) -> str:
    auth: dict[str, Any] = json.loads(text or "{}")
    kind = auth.get("kind")
    secret = next((auth[k] for k in _SECRET_KEYS if auth.get(k)), None)
    if kind not in ("ssh", "basic", "token") or secret is None:
        return "{}"
    if kind == "basic" and not auth.get("username"):
        return "{}"
    out: dict[str, str] = {"kind": kind, "secretFile": str(secret)}
    if auth.get("username"):
        out["username"] = str(auth["username"])
    if kind == "ssh" and auth.get("known_hosts_file"):
        out["knownHostsFile"] = str(auth["known_hosts_file"])
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def _catalog_repos_file_taken_in(path: Path) -> None:
    legacy = path.parent / _CATALOG_REPOS_FILE
    if legacy.is_file():
        legacy.rename(legacy.with_name(f"{_CATALOG_REPOS_FILE}.moved-to-store"))


# -- version 8: inventory ids escaped ----------------------------------------------------------


def _escaped_id_v8(text: str) -> str:
    """An inventory id of version 7 and before (fields joined by '_', a name may hold '_')
    escaped as version 8 writes it ('%' and '_' inside a field as '%25' and '%5F'). Only a
    name can hold '_' (Kubernetes allows none in namespaces, groups and kinds) and none
    holds '%', so the namespace is before the first '_' and the group and kind after the
    last two."""
    parts = text.split("_")
    if len(parts) < 4 or "%" in text:
        return text  # unreadable either way; readers skip it and say so
    name = "_".join(parts[1:-2]).replace("_", "%5F")
    return "_".join((parts[0], name, parts[-2], parts[-1]))


def _escaped_ids_v8(conn: sqlite3.Connection) -> None:
    # Each sync's action per object (the dashboard's object tree) is keyed by id too.
    for sync_id, objects_text in conn.execute("SELECT id, objects FROM syncs").fetchall():
        objects = json.loads(objects_text or "{}")
        if any(str(k).count("_") > 3 for k in objects):
            conn.execute(
                "UPDATE syncs SET objects = ? WHERE id = ?",
                (
                    json.dumps(
                        {_escaped_id_v8(k): v for k, v in objects.items()},
                        sort_keys=True,
                        separators=(",", ":"),
                    ),
                    sync_id,
                ),
            )
    rows = conn.execute("SELECT app, cluster, inventory, applied FROM deployments")
    for app, cluster, inventory_text, applied_text in rows.fetchall():
        lines = []
        for line in json.loads(inventory_text or "[]"):
            api_version, _, entry_id = str(line).partition(" ")
            lines.append(f"{api_version} {_escaped_id_v8(entry_id)}")
        applied = {_escaped_id_v8(k): v for k, v in json.loads(applied_text or "{}").items()}
        conn.execute(
            "UPDATE deployments SET inventory = ?, applied = ? WHERE app = ? AND cluster = ?",
            (
                json.dumps(lines, sort_keys=True, separators=(",", ":")),
                json.dumps(applied, sort_keys=True, separators=(",", ":")),
                app,
                cluster,
            ),
        )


# -- version 10: hook state in a field of its own; who asked for a sync ----------------------

_HOOKS_KEY_V9 = "appflow.dev/hooks"
"""Where version 9 kept a Deployment's hook state: among its fingerprints, as one string
(a revision, or "install-failed")."""


def _hook_state_v10(text: str) -> dict[str, Any]:
    """Version 9's one-string hook state as version 10's object (HookRecord's camelCase)."""
    if text == "install-failed":
        return {"revision": "", "installFailed": True}
    return {"revision": text, "installFailed": False}


def _hook_records_v10(conn: sqlite3.Connection) -> None:
    rows = conn.execute(
        "SELECT app, cluster, applied FROM deployments WHERE applied LIKE ?",
        (f'%"{_HOOKS_KEY_V9}"%',),
    )
    for app, cluster, applied_text in rows.fetchall():
        applied: dict[str, str] = json.loads(applied_text or "{}")
        text = applied.pop(_HOOKS_KEY_V9, None)
        if text is None:
            continue  # the key's text was inside some other fingerprint
        conn.execute(
            "UPDATE deployments SET applied = ?, hooks = ? WHERE app = ? AND cluster = ?",
            (
                json.dumps(applied, sort_keys=True, separators=(",", ":")),
                json.dumps(_hook_state_v10(text), sort_keys=True) if text else None,
                app,
                cluster,
            ),
        )


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
    Migration(
        version=5,
        description="typed records: sync policy, catalog install, Helm release, source refs",
        statements=(
            "ALTER TABLE apps ADD COLUMN policy TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE apps ADD COLUMN labels TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE apps ADD COLUMN depends_on TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE apps ADD COLUMN rollout TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE apps ADD COLUMN catalog TEXT",
            "ALTER TABLE deployments ADD COLUMN release TEXT",
        ),
        convert=_typed_records_v5,
        after=("ALTER TABLE apps DROP COLUMN definition",),
    ),
    Migration(
        version=6,
        description="catalog repositories in the store; typed repository credentials",
        statements=(
            """CREATE TABLE catalog_repos (
                name TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                username TEXT,
                password_file TEXT,
                ca_file TEXT,
                poll_interval_seconds INTEGER NOT NULL,
                created_at TEXT NOT NULL
            )""",
        ),
        convert=_catalog_repos_v6,
        finish=_catalog_repos_file_taken_in,
    ),
    Migration(
        version=7,
        description="hardening: token expiry, webhook deliveries seen, operator policies",
        statements=(
            "ALTER TABLE tokens ADD COLUMN expires_at TEXT",
            # Deliveries of the generic webhook already acted on, for as long as a replay
            # of one would still pass the clock check: a restart must not forget them.
            """CREATE TABLE webhook_deliveries (
                key TEXT PRIMARY KEY,
                seen_at REAL NOT NULL
            )""",
            "CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries(seen_at)",
            # Guard rails per cluster, group or repo. No foreign keys: a policy outlives
            # the cluster it names, so that one re-registered under that name is guarded.
            """CREATE TABLE policies (
                scope TEXT NOT NULL,
                name TEXT NOT NULL,
                namespaces TEXT,
                cluster_scoped INTEGER NOT NULL,
                helm_lookup INTEGER,
                read_namespaces TEXT NOT NULL,
                helm_release INTEGER,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (scope, name)
            )""",
        ),
    ),
    Migration(
        version=8,
        description="sync locks (one writer per app and cluster); inventory ids escaped",
        statements=(
            # No foreign keys: a hold outlives nothing, and is about a sync, not a record.
            """CREATE TABLE sync_locks (
                app TEXT NOT NULL,
                cluster TEXT NOT NULL,
                token TEXT NOT NULL,
                owner_pid INTEGER NOT NULL,
                owner_host TEXT NOT NULL,
                started_at TEXT NOT NULL,
                heartbeat_at TEXT NOT NULL,
                PRIMARY KEY (app, cluster)
            )""",
        ),
        convert=_escaped_ids_v8,
    ),
    Migration(
        version=9,
        description="apps: the revision a rollback pinned, instead of a paused flag",
        statements=(
            "ALTER TABLE apps ADD COLUMN pinned_revision INTEGER",
            # A paused app was paused by a rollback: it stays at what it applied last.
            """UPDATE apps SET pinned_revision = COALESCE(
                   (SELECT MAX(applied_revision) FROM deployments d WHERE d.app = apps.name),
                   (SELECT MAX(number) FROM revisions r WHERE r.app = apps.name))
               WHERE paused = 1""",
        ),
        after=("ALTER TABLE apps DROP COLUMN paused",),
    ),
    Migration(
        version=10,
        description="deployments: hook state in a field of its own; syncs: who asked",
        statements=(
            # {"revision", "installFailed"} (HookRecord); NULL: no hook ran there.
            "ALTER TABLE deployments ADD COLUMN hooks TEXT",
            # The API token's name (or 'cli') that asked for a sync; '' for the daemon's
            # own triggers and for every sync recorded before version 10.
            "ALTER TABLE syncs ADD COLUMN actor TEXT NOT NULL DEFAULT ''",
        ),
        convert=_hook_records_v10,
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
            if step.convert is not None:
                step.convert(conn)
            for statement in step.after:
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
        if step.finish is not None:
            # The step is committed: a file it could not tidy is never read again.
            with contextlib.suppress(OSError):
                step.finish(path)
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
