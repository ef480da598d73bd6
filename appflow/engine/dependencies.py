"""dependsOn: an app waits on each cluster until the apps it depends on are Ready there.

Which apps an app depends on is resolved against the other apps' records (their labels
and dependsOn as their definitions said when last read): no other app's source is
fetched. Whether they are Ready is their Deployments' health, re-assessed while waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from appflow.engine.parts import EngineParts
from appflow.engine.refresh import refresh_health
from appflow.errors import AppflowError, ConfigError, Where
from appflow.model.appdef import AppDefinition
from appflow.model.deps import Declares, resolve_dependency_states, unmet, waiting_message

_FIRST_LOOK = 0.5
_LONGEST_WAIT = 5.0


async def dependencies_of(
    parts: EngineParts, definition: AppDefinition
) -> dict[str, frozenset[str]]:
    """The apps DEFINITION depends on, each with the states that meet it (acceptedStates,
    Ready unless told); cycles through any app are refused."""
    records = await asyncio.to_thread(parts.store.list_apps)
    apps: list[Declares] = [definition, *(r for r in records if r.name != definition.name)]
    try:
        return resolve_dependency_states(apps)[definition.name]
    except ConfigError as err:
        if err.where.app in (None, definition.name):
            raise
        raise ConfigError(
            f"cannot check dependencies: {err}", where=Where(app=definition.name)
        ) from err


async def waiting_for(
    parts: EngineParts,
    app: str,
    dependencies: Mapping[str, frozenset[str]],
    cluster: str,
    *,
    timeout: float,
) -> str:
    """'' once every dependency is in an accepted state on CLUSTER (within TIMEOUT), else
    what is awaited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = _FIRST_LOOK
    while True:
        states: dict[str, str | None] = {}
        for dep in dependencies:
            try:
                record = await refresh_health(parts, app=dep, cluster=cluster)
            except AppflowError as err:
                states[dep] = err.message
                continue
            states[dep] = None if record is None else record.state
        pending = unmet(dependencies, states, cluster=cluster)
        if not pending:
            return ""
        if loop.time() >= deadline:
            return waiting_message(dependencies, pending, cluster=cluster)
        await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
        pause = min(pause * 2, _LONGEST_WAIT)
