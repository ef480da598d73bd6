"""Dependencies between AppFlows (dependsOn): resolution, cycles, order (pure).

An app may depend on others by name or by label selector, each entry met in
its acceptedStates (Ready unless told). Resolution turns every dependsOn entry
into app names; a dependency that names no app is an
error (a typo must not silently drop an ordering). Cycles are rejected with
the cycle spelled out, and apps are ordered so that each comes after what it
depends on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from appflow.errors import ConfigError, Where
from appflow.model.appdef import AppDefinition, Dependency
from appflow.model.targeting import format_selector, selector_matches


class Declares(Protocol):
    """An app's name, labels and dependsOn: an AppDefinition, or an AppRecord (which keeps
    what the app's definition said when it was last read)."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def depends_on(self) -> tuple[Dependency, ...]: ...


def _file(app: Declares) -> str | None:
    return app.definition_file if isinstance(app, AppDefinition) else None


def resolve_dependencies(apps: Sequence[Declares]) -> dict[str, tuple[str, ...]]:
    """Per app name, the names of the apps it depends on."""
    return {name: tuple(deps) for name, deps in resolve_dependency_states(apps).items()}


def resolve_dependency_states(
    apps: Sequence[Declares], *, strict: bool = True
) -> dict[str, dict[str, frozenset[str]]]:
    """Per app name, each app it depends on and the states in which that dependency is met.

    A dependency is met in its entry's acceptedStates (Ready unless told); an
    app that two entries name (by name and by a selector) must satisfy both.
    Not STRICT: an entry that names no app is left out and cycles are not looked for (what
    waits for what, for waking it up; the app's sync reports the error).
    """
    by_name = {a.name: a for a in apps}
    out: dict[str, dict[str, frozenset[str]]] = {}
    for app in apps:
        states: dict[str, frozenset[str]] = {}
        for index, dep in enumerate(app.depends_on):
            accepted = frozenset(dep.accepted_states)
            if dep.name is not None:
                if dep.name not in by_name and not strict:
                    continue
                if dep.name not in by_name:
                    raise ConfigError(
                        f"depends on app {dep.name!r}, which does not exist",
                        where=Where(
                            app=app.name, file=_file(app), field=f"dependsOn[{index}].name"
                        ),
                        hint=f"known apps: {', '.join(sorted(by_name)) or 'none'}",
                    )
                matched = [dep.name]
            elif dep.selector is not None:
                matched = [
                    other.name
                    for other in apps
                    if other.name != app.name and selector_matches(dep.selector, other.labels)
                ]
                if not matched and strict:
                    raise ConfigError(
                        f"dependsOn selector {format_selector(dep.selector)!r} matches no app",
                        where=Where(
                            app=app.name,
                            file=_file(app),
                            field=f"dependsOn[{index}].selector",
                        ),
                    )
            else:
                continue
            for name in matched:
                states[name] = states[name] & accepted if name in states else accepted
        out[app.name] = states
    if strict:
        check_cycles({name: tuple(deps) for name, deps in out.items()})
    return out


def unmet(
    dependencies: Mapping[str, frozenset[str]],
    states: Mapping[str, str | None],
    *,
    cluster: str,
) -> list[str]:
    """The DEPENDENCIES not in one of their accepted states on a cluster, each described
    (``mqtt (NotReady)``); STATES holds each one's Deployment state there (None: not deployed,
    or a reason it could not be read)."""
    only_ready = all(accepted == {"Ready"} for accepted in dependencies.values())
    pending = []
    for dep, accepted in dependencies.items():
        wanted = "" if only_ready else f"; accepted: {', '.join(sorted(accepted))}"
        state = states.get(dep)
        if state not in accepted:
            pending.append(f"{dep} ({state or f'not deployed on {cluster}'}{wanted})")
    return pending


def waiting_message(
    dependencies: Mapping[str, frozenset[str]], pending: Sequence[str], *, cluster: str
) -> str:
    """What an app on CLUSTER waits for, from ``unmet``'s PENDING."""
    only_ready = all(accepted == {"Ready"} for accepted in dependencies.values())
    goal = "Ready" if only_ready else "in an accepted state"
    return f"{_WAITING}{', '.join(pending)} to be {goal} on {cluster}"


_WAITING = "waiting for "


def held_there(status: Mapping[str, Any]) -> bool:
    """Whether a Deployment's STATUS says dependsOn holds it: WaitApplied with what it waits
    for (``waiting_message``), not WaitApplied written ahead of a sync's first write."""
    return status.get("state") == "WaitApplied" and str(status.get("message") or "").startswith(
        _WAITING
    )


def held_by_dependencies(
    clusters: Iterable[str],
    dependencies: Mapping[str, frozenset[str]],
    states: Mapping[str, Mapping[str, str | None]],
) -> dict[str, str]:
    """The CLUSTERS where DEPENDENCIES are not all met, each with what it waits for; STATES
    holds, per cluster, each dependency's Deployment state there (missing: not deployed)."""
    held: dict[str, str] = {}
    for cluster in sorted(set(clusters)) if dependencies else ():
        pending = unmet(dependencies, states.get(cluster, {}), cluster=cluster)
        if pending:
            held[cluster] = waiting_message(dependencies, pending, cluster=cluster)
    return held


def check_cycles(graph: Mapping[str, Sequence[str]]) -> None:
    """Raise ConfigError naming a cycle, e.g. 'a -> b -> c -> a', if GRAPH has one."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                raise ConfigError(
                    f"dependsOn forms a cycle: {' -> '.join(cycle)}",
                    where=Where(app=node),
                    hint="remove one of these dependencies",
                )
            if state.get(dep) is None:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node)


def dependency_order(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """App names with every app after the apps it depends on (ties by name)."""
    check_cycles(graph)
    done: set[str] = set()
    order: list[str] = []

    def visit(node: str) -> None:
        if node in done:
            return
        done.add(node)
        for dep in sorted(graph.get(node, ())):
            visit(dep)
        order.append(node)

    for node in sorted(graph):
        visit(node)
    return order
