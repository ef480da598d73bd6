"""`appflow sync --all` syncs apps that do not depend on each other at the same time, and an
app only after the apps it depends on have been synced.

Concurrency is shown without timing: the source of one app is held until another app's
sync has begun (a batch that synced one app after another would wait forever), and an
app's source is read only once the syncs of the app it depends on have all finished.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from appflow.engine.engine import Engine
from appflow.engine.sources import LocalResolver, Resolvers, Source
from appflow.model.appdef import AppDefinition
from appflow.model.records import AppRecord, RepoRecord
from appflow.store import Store
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, configmap, write_files

pytestmark = pytest.mark.cluster


class WatchedResolver:
    """The local resolver, noting when each app's source is read, and holding FIRST's
    until SECOND's has been asked for."""

    def __init__(self, fleet: Fleet, *, first: str, second: str, dependent: str, on: str) -> None:
        self.fleet = fleet
        self.local = LocalResolver()
        self.first, self.second = first, second
        self.dependent, self.on = dependent, on
        self.second_started = asyncio.Event()
        self.dependency_done_when_read: bool | None = None

    async def fetch(
        self, app: AppRecord, repo: RepoRecord | None, *, commit: str | None, store: Store
    ) -> Source:
        if app.name == self.second:
            self.second_started.set()
        if app.name == self.first:
            await asyncio.wait_for(self.second_started.wait(), timeout=120)
        if app.name == self.dependent:
            syncs = self.fleet.store.list_syncs(self.on)
            self.dependency_done_when_read = len(syncs) == len(self.fleet.cluster_names) and all(
                s.outcome == "succeeded" for s in syncs
            )
        return await self.local.fetch(app, repo, commit=commit, store=store)

    async def definition(self, app: AppRecord, source: Source) -> AppDefinition:
        return await self.local.definition(app, source)


def test_sync_all_runs_independent_apps_together_and_dependents_after(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    # "a-..." sorts first: one after another, it would be synced first and never return.
    first, second, dependent = space.app("a-web"), space.app("b-cache"), space.app("c-api")
    for name, extra in ((first, {}), (second, {}), (dependent, {"dependsOn": [{"name": first}]})):
        write_files(
            tmp_path / name,
            {
                "appflow.yaml": yaml.safe_dump({"name": name, "namespace": ns, **extra}),
                "config.yaml": [configmap(f"{name}-config", ns, {"app": name})],
            },
        )
        added = cli("app", "add", name, "--local", str(tmp_path / name))
        assert added.exit_code == 0, added.output

    watched = WatchedResolver(fleet, first=first, second=second, dependent=dependent, on=first)
    resolvers = Resolvers()
    resolvers.register("local", watched)
    engine = Engine(fleet.store, resolvers=resolvers)
    try:
        batch = asyncio.run(engine.every_app())
        result = asyncio.run(engine.sync_batch(batch))
    finally:
        engine.close()

    assert result.errors == ()
    reports = {r.app: r for r in result.reports}
    for name in (first, second, dependent):
        assert reports[name].ok, reports[name]
        assert {r.state for r in reports[name].results} == {"Ready"}, name
    assert watched.dependency_done_when_read is True
    # Reports in dependency order: the dependent after what it depends on.
    names = [r.app for r in result.reports]
    assert names.index(first) < names.index(dependent)


def test_sync_all_through_the_cli_reports_every_app_and_an_error_without_stopping_the_others(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    good, broken = space.app("good"), space.app("broken")
    write_files(
        tmp_path / good,
        {
            "appflow.yaml": yaml.safe_dump({"name": good, "namespace": ns}),
            "config.yaml": [configmap("good-config", ns, {"ok": "yes"})],
        },
    )
    write_files(tmp_path / broken, {"config.yaml": "kind: [unclosed\n"})
    for name in (good, broken):
        added = cli("app", "add", name, "--local", str(tmp_path / name))
        assert added.exit_code == 0, added.output

    result = cli("sync", "--all")
    assert result.exit_code == 1
    assert f"{good} revision 1 -> " in result.stdout
    assert broken in result.output
    for cluster in fleet.cluster_names:
        assert f"{good} revision 1 -> {cluster}: Ready" in " ".join(result.stdout.split())
