"""What a person or a script can see and do over HTTP: one implementation for the API
(``/api/v1``) and the dashboard (``/ui``).

Everything here goes through the ``Store`` Protocol, the ``Triggers`` of the daemon and
the engine's functions, never through SQLite: the hub serves the same API over its
custom resources by giving this class its own store, triggers and engine. Every action
that changes something checks that the caller's token may (read-only tokens may not)
and is recorded as an event naming the token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appflow.errors import AppflowError, ConfigError, ForbiddenError, NotFoundError
from appflow.model.catalog import CatalogEntry
from appflow.model.objects import ObjectRef
from appflow.model.overview import OverviewQuery, Row, Selection, grid, select
from appflow.model.plan import Plan
from appflow.model.records import (
    AppRecord,
    ClusterRecord,
    DeploymentRecord,
    EventRecord,
    RevisionRecord,
    RolloutRecord,
    SyncRecord,
    TargetChoice,
    TokenRecord,
)
from appflow.model.targeting import (
    ClusterGroup,
    ClusterInfo,
    parse_selector,
    selector_matches,
    target_matches,
)
from appflow.server.triggers import Triggers
from appflow.store import Store

if TYPE_CHECKING:
    from appflow.engine.engine import AppSyncReport, Engine


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who asks: the name of the API token, and whether it may change anything."""

    name: str
    read_only: bool = False

    @classmethod
    def of(cls, token: TokenRecord) -> Actor:
        return cls(name=token.name, read_only=token.read_only)

    def require_write(self, action: str) -> None:
        if self.read_only:
            raise ForbiddenError(
                f"token {self.name} is read-only: it may not {action}",
                hint="sign in with a token made by `appflow token create NAME` (without --read-only)",
            )


ANONYMOUS = Actor(name="anonymous")
"""The caller of a server run without tokens (loopback only, or tests)."""


@dataclass(frozen=True, kw_only=True)
class Overview:
    """One page of the apps x clusters grid."""

    query: OverviewQuery
    selection: Selection
    rows: list[Row]


@dataclass(frozen=True, kw_only=True)
class ObjectRow:
    """One object an app owns on a cluster, for the object tree."""

    api_version: str
    ref: ObjectRef
    health: str
    """"Healthy", or what the health check or the apply said is wrong."""
    healthy: bool
    action: str
    """What the last finished sync did with it: created, configured, unchanged..."""


@dataclass(frozen=True, kw_only=True)
class AppView:
    """Everything the app page shows that comes from the store."""

    app: AppRecord
    deployments: list[DeploymentRecord]
    revisions: list[RevisionRecord]
    history: list[SyncRecord]
    rollout: RolloutRecord | None
    events: list[EventRecord]
    objects: dict[str, list[ObjectRow]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RolloutView:
    rollout: RolloutRecord
    states: Mapping[str, str]
    """Deployment state per cluster of the rollout."""
    health_timeout: int | None
    """Seconds a batch has to become Ready (the health gate), when the app says."""


@dataclass(frozen=True, kw_only=True)
class ChartView:
    """A catalog entry with what its chart page shows."""

    entry: CatalogEntry
    version: str
    schema: dict[str, Any] | None
    defaults: dict[str, Any]
    """The chart's values.yaml merged with the entry's question defaults."""
    readme: str


class FleetService:
    """The fleet as the API and the dashboard see it."""

    def __init__(
        self,
        *,
        store: Store,
        triggers: Triggers,
        engine: Engine | None = None,
        catalog_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.triggers = triggers
        self.engine = engine
        self._catalog_dir = catalog_dir

    @property
    def catalog_dir(self) -> Path:
        if self._catalog_dir is None:
            from appflow.sources.catalog import default_catalog_dir

            self._catalog_dir = default_catalog_dir()
        return self._catalog_dir

    def _engine(self, action: str) -> Engine:
        if self.engine is None:
            raise ConfigError(
                f"this server cannot {action}: it runs without the engine",
                hint="run `appflow serve`",
            )
        return self.engine

    def _record(self, actor: Actor, message: str, *, app: str | None = None, **extra: Any) -> None:
        self.store.add_event(
            kind="action",
            app=app,
            trigger="user",
            message=f"{message} (token {actor.name})",
            **extra,
        )

    # -- reads ------------------------------------------------------------------------------

    def overview(self, query: OverviewQuery) -> Overview:
        """One page of the grid: only that page's deployments are read in full."""
        in_state: list[tuple[str, str]] = []
        if query.state:
            in_state = [
                (s.app, s.cluster)
                for s in self.store.list_deployment_summaries(states=[query.state])
            ]
        selection = select(
            apps=self.store.list_apps(),
            clusters=self.store.list_clusters(),
            groups=self.store.list_groups(),
            query=query,
            in_state=in_state,
        )
        summaries = self.store.list_deployment_summaries(apps=[a.name for a in selection.apps])
        return Overview(query=query, selection=selection, rows=grid(selection, summaries))

    def cluster_groups(self) -> dict[str, list[str]]:
        """Group names per cluster name (a group whose selector no longer parses has none)."""
        clusters = self.store.list_clusters()
        out: dict[str, list[str]] = {c.name: [] for c in clusters}
        for g in self.store.list_groups():
            try:
                selector = parse_selector(g.selector)
            except ConfigError:
                continue
            for c in clusters:
                if selector_matches(selector, c.labels):
                    out[c.name].append(g.name)
        return out

    def clusters(self, *, selector: str = "", search: str = "") -> list[ClusterRecord]:
        found = sorted(self.store.list_clusters(), key=lambda c: c.name)
        if selector:
            parsed = parse_selector(selector)
            found = [c for c in found if selector_matches(parsed, c.labels)]
        if search:
            found = [c for c in found if search.lower() in c.name.lower()]
        return found

    def app(self, name: str, *, history: int = 50, events: int = 50) -> AppView:
        app = self.store.get_app(name)
        deployments = self.store.list_deployments(app=name)
        syncs = self.store.list_syncs(name, limit=history)
        rollout = None
        with contextlib.suppress(NotFoundError):
            rollout = self.store.get_rollout(name)
        return AppView(
            app=app,
            deployments=deployments,
            revisions=sorted(self.store.list_revisions(name), key=lambda r: r.number, reverse=True),
            history=syncs,
            rollout=rollout,
            events=self.store.list_events(app=name, limit=events),
            objects={d.cluster: self._objects(d) for d in deployments},
        )

    def _objects(self, deployment: DeploymentRecord) -> list[ObjectRow]:
        last = next(
            (
                s
                for s in self.store.list_syncs(deployment.app, cluster=deployment.cluster, limit=20)
                if s.outcome != "running" and s.objects
            ),
            None,
        )
        actions = last.objects if last else {}
        failing = {f.object: f.message for f in deployment.failing}
        rows = []
        for entry in deployment.inventory:
            api_version, ref = entry.api_version, entry.ref
            problem = failing.get(str(ref))
            rows.append(
                ObjectRow(
                    api_version=api_version,
                    ref=ref,
                    health=problem or "Healthy",
                    healthy=problem is None,
                    action=actions.get(ref.encode(), "-"),
                )
            )
        return sorted(rows, key=lambda r: (r.ref.namespace, r.ref.kind, r.ref.name))

    def events(
        self, *, app: str | None = None, since_id: int | None = None, limit: int = 100
    ) -> list[EventRecord]:
        return self.store.list_events(app=app, since_id=since_id, limit=limit)

    async def diff(self, name: str, *, cluster: str | None = None) -> dict[str, Plan]:
        """What a sync of NAME would change now (the same as `appflow app diff`)."""
        return await self._engine("compute a diff").diff(
            name, clusters=(cluster,) if cluster else ()
        )

    async def diff_revision(self, name: str, *, to: int) -> dict[str, Plan]:
        """What a rollback of NAME to revision TO would change now."""
        return await self._engine("compute a diff").diff_revision(name, to=to)

    def rollouts(self) -> list[RolloutView]:
        """Every app's latest rollout, in-flight ones first."""
        views = []
        for app in self.store.list_apps():
            try:
                rollout = self.store.get_rollout(app.name)
            except NotFoundError:
                continue
            states = {
                d.cluster: d.state for d in self.store.list_deployment_summaries(apps=[app.name])
            }
            views.append(
                RolloutView(
                    rollout=rollout,
                    states=states,
                    health_timeout=app.rollout.health_timeout_seconds,
                )
            )
        order = {"Progressing": 0, "Paused": 1, "Failed": 2}
        return sorted(views, key=lambda v: (order.get(v.rollout.state, 3), v.rollout.app))

    # -- catalog ------------------------------------------------------------------------------

    def catalog_entries(self, *, category: str = "", search: str = "") -> list[CatalogEntry]:
        from appflow.engine.catalog.entries import load_entries

        entries, _ = load_entries(self.catalog_dir, repos=self.store.list_catalog_repos())
        return [e for e in entries if e.matches(category=category or None, search=search or None)]

    def installs(self) -> list[dict[str, Any]]:
        from appflow.engine.catalog.installs import installs

        return installs(self.store, self.catalog_dir)

    async def chart(self, name: str, *, version: str | None = None) -> ChartView:
        """Entry NAME with its resolved chart: schema, defaults, README."""
        from appflow.engine.catalog.entries import fetch_chart, find_entry, resolve
        from appflow.engine.catalog.values import values_schema
        from appflow.model.catalog import question_defaults
        from appflow.model.values import merge_values
        from appflow.sources import catalog as source

        repos = await asyncio.to_thread(self.store.list_catalog_repos)
        entry = await asyncio.to_thread(find_entry, self.catalog_dir, name, repos=repos)
        resolution = await resolve(entry, version=version, repos=repos)
        chart_dir, _ = await fetch_chart(resolution, repos=repos)
        readme = entry.readme or ""
        if not readme and (chart_dir / "README.md").is_file():
            readme = (chart_dir / "README.md").read_text(errors="replace")
        return ChartView(
            entry=entry,
            version=resolution.version,
            schema=values_schema(entry, chart_dir),
            defaults=merge_values(
                source.chart_values(chart_dir), question_defaults(entry.questions)
            ),
            readme=readme,
        )

    def icon(self, name: str) -> Path | None:
        """The icon file of local catalog entry NAME, if it has one inside its folder."""
        folder = (self.catalog_dir / name).resolve()
        if folder.parent != self.catalog_dir.resolve() or not (folder / "app.yaml").is_file():
            return None
        from appflow.sources import catalog as source

        entry = source.load_entry(folder)
        if not entry.icon or "://" in entry.icon:
            return None
        path = (folder / entry.icon).resolve()
        return path if path.is_file() and folder in path.parents else None

    def match(self, choice: TargetChoice) -> list[str]:
        """The clusters an install with CHOICE would go to, now."""
        from appflow.engine.catalog.source import targets_of

        choice.check()
        groups = {
            g.name: ClusterGroup(name=g.name, selector=parse_selector(g.selector))
            for g in self.store.list_groups()
        }
        if choice.group and choice.group not in groups:
            raise NotFoundError(
                f"no cluster group named {choice.group!r}", hint="see `appflow group list`"
            )
        targets = targets_of(choice)
        out = []
        for c in sorted(self.store.list_clusters(), key=lambda c: c.name):
            info = ClusterInfo(name=c.name, labels=c.labels)
            if not targets or any(target_matches(t, info, groups) for t in targets):
                out.append(c.name)
        return out

    # -- actions ------------------------------------------------------------------------------

    async def sync(self, actor: Actor, name: str, *, cluster: str | None = None) -> None:
        """Queue a sync of app NAME (on one CLUSTER, or on all its targets).

        Store calls run in a thread (they block); the trigger runs on this event loop,
        where the daemon's queue lives.
        """
        actor.require_write("sync apps")
        await asyncio.to_thread(self.store.get_app, name)
        if cluster is not None:
            await asyncio.to_thread(self.store.get_cluster, cluster)
        self.triggers.trigger_app(name, trigger="user", cluster=cluster, actor=actor.name)
        await asyncio.to_thread(
            self._record, actor, f"sync requested{' on ' + cluster if cluster else ''}", app=name
        )

    async def rollback(self, actor: Actor, name: str, *, to: int) -> AppSyncReport:
        """Re-apply revision TO of app NAME; it stays pinned there until `app resume`."""
        actor.require_write("roll back apps")
        engine = self._engine("roll back")

        def pin() -> None:
            app = self.store.get_app(name)
            self.store.get_revision(name, to)
            # Pinned first: the daemon's next poll must not re-apply the newest revision
            # while the rollback is on its way.
            self.store.put_app(replace(app, pinned_revision=to))
            self._record(actor, f"rollback to revision {to} requested", app=name)

        # The daemon's syncs share this event loop: the store is read and written aside.
        await asyncio.to_thread(pin)
        return await engine.rollback(name, to=to)

    def pause_rollout(self, actor: Actor, name: str) -> RolloutRecord:
        from appflow.engine.rollouts import pause_rollout

        actor.require_write("pause rollouts")
        record = pause_rollout(self.store, name, by=f"token {actor.name}")
        self._record(actor, "rollout paused", app=name)
        return record

    async def resume_rollout(self, actor: Actor, name: str) -> RolloutRecord:
        from appflow.engine.rollouts import resume_rollout

        actor.require_write("resume rollouts")
        record = await asyncio.to_thread(resume_rollout, self.store, name, by=f"token {actor.name}")
        self.triggers.trigger_app(name, trigger="user", actor=actor.name)
        await asyncio.to_thread(self._record, actor, "rollout resumed", app=name)
        return record

    async def install(
        self,
        actor: Actor,
        *,
        entry: str,
        name: str | None,
        version: str | None,
        targets: TargetChoice,
        namespace: str | None,
        values: dict[str, Any],
    ) -> AppSyncReport:
        """Install catalog ENTRY; values are checked on every target before any change
        (``ValuesRejected`` says which, per value path)."""
        from appflow.engine.catalog.installs import InstallRequest, install
        from appflow.engine.catalog.values import ValuesInput

        actor.require_write("install apps")
        engine = self._engine("install")
        request = InstallRequest(
            entry=entry,
            name=name or None,
            version=version or None,
            targets=targets,
            namespace=namespace or None,
            values=ValuesInput(form=values),
            catalog_dir=self.catalog_dir,
        )
        planned, report = await install(engine, request)
        await asyncio.to_thread(
            self._record,
            actor,
            f"installed {entry} {planned.resolution.version} on "
            f"{', '.join(c.name for c in planned.targets)}",
            app=planned.record.name,
        )
        return report

    async def upgrade(
        self, actor: Actor, name: str, *, version: str | None, values: dict[str, Any]
    ) -> AppSyncReport:
        """Upgrade install NAME with the form's VALUES (they replace the earlier ones)."""
        from appflow.engine.catalog.installs import UpgradeRequest, upgrade
        from appflow.engine.catalog.values import ValuesInput

        actor.require_write("upgrade apps")
        engine = self._engine("upgrade")
        request = UpgradeRequest(
            name=name,
            version=version or None,
            values=ValuesInput(form=values),
            reset_values=True,
            catalog_dir=self.catalog_dir,
        )
        planned, report = await upgrade(engine, request)
        await asyncio.to_thread(
            self._record, actor, f"upgraded to {planned.resolution.version}", app=name
        )
        return report

    async def uninstall(self, actor: Actor, name: str) -> AppSyncReport:
        from appflow.engine.catalog.installs import uninstall

        actor.require_write("uninstall apps")
        report = await uninstall(self._engine("uninstall"), name)
        await asyncio.to_thread(
            self._record,
            actor,
            "uninstalled" if report.ok else "uninstall failed on some clusters",
            app=name,
        )
        return report


def report_problems(report: AppSyncReport) -> list[str]:
    """What went wrong in REPORT, one line each (empty when it went well)."""
    lines = [str(e) for e in report.blocked]
    lines += [f"{c}: {e}" for c, e in sorted({**report.unreachable, **report.failed}.items())]
    if report.rollout_failed:
        lines.append(f"rollout failed: {report.rollout_failed}")
    for r in report.results:
        lines += [f"{r.cluster}: {e}" for e in r.errors]
    return lines


def problem_paths(err: AppflowError) -> list[tuple[Sequence[str | int], str]]:
    """(value path, message) of each problem a refused install or upgrade names."""
    from appflow.engine.catalog.values import ValuesRejected

    if isinstance(err, ValuesRejected):
        return [(path, message) for path, message in err.problems]
    return [((), str(err))]


def describe(err: AppflowError) -> str:
    """An error as one message for a person: where, what, and what to do."""
    place = err.where.describe()
    text = f"{place}: {err.message}" if place else err.message
    return f"{text} ({err.hint})" if err.hint else text
