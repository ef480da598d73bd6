"""dependsOn: resolution by name and selector, missing dependencies, cycles, order."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appflow.errors import ConfigError
from appflow.model.appdef import (
    AppDefinition,
    Dependency,
    LabelRequirement,
    LabelSelector,
)
from appflow.model.deps import (
    check_cycles,
    dependency_order,
    held_by_dependencies,
    held_there,
    resolve_dependencies,
    resolve_dependency_states,
)


def app(
    name: str,
    *needs: str,
    labels: dict[str, str] | None = None,
    selector: LabelSelector | None = None,
) -> AppDefinition:
    deps = tuple(Dependency(name=n) for n in needs)
    if selector is not None:
        deps += (Dependency(selector=selector),)
    return AppDefinition(
        name=name,
        path=f"apps/{name}",
        kind="yaml",
        labels=labels or {},
        depends_on=deps,
        definition_file=f"apps/{name}/appflow.yaml",
    )


def test_dependencies_by_name() -> None:
    graph = resolve_dependencies([app("web", "db", "cache"), app("db"), app("cache")])
    assert graph == {"web": ("db", "cache"), "db": (), "cache": ()}


def test_dependencies_by_selector_match_other_apps_labels_never_itself() -> None:
    infra = LabelSelector(match_labels={"tier": "infra"})
    graph = resolve_dependencies(
        [
            app("web", selector=infra, labels={"tier": "infra"}),
            app("dns", labels={"tier": "infra"}),
            app("certs", labels={"tier": "infra"}),
            app("blog", labels={"tier": "frontend"}),
        ]
    )
    assert graph["web"] == ("dns", "certs")
    assert graph["blog"] == ()


def test_a_dependency_named_and_selected_is_listed_once() -> None:
    selector = LabelSelector(
        match_expressions=(LabelRequirement(key="tier", operator="In", values=("db",)),)
    )
    graph = resolve_dependencies(
        [app("web", "db", selector=selector), app("db", labels={"tier": "db"})]
    )
    assert graph["web"] == ("db",)


def test_a_missing_dependency_is_an_error_naming_it_and_where_it_is_written() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_dependencies([app("web", "db", "cahce"), app("db"), app("cache")])
    err = info.value
    assert "depends on app 'cahce', which does not exist" in str(err)
    assert err.where.app == "web"
    assert err.where.file == "apps/web/appflow.yaml"
    assert err.where.field == "dependsOn[1].name"
    assert err.hint == "known apps: cache, db, web"


def test_a_selector_that_matches_no_app_is_an_error() -> None:
    selector = LabelSelector(match_labels={"tier": "infra"})
    with pytest.raises(ConfigError) as info:
        resolve_dependencies([app("web", selector=selector), app("db", labels={"tier": "db"})])
    assert "dependsOn selector 'tier=infra' matches no app" in str(info.value)
    assert info.value.where.field == "dependsOn[0].selector"


def test_a_lenient_resolution_keeps_what_resolves_and_skips_what_does_not() -> None:
    """What waits for what (the hub's wake-ups) must not be lost to another app's typo or a
    cycle: those are the syncs' errors to report."""
    selector = LabelSelector(match_labels={"tier": "infra"})
    apps = [
        app("web", "db", "cahce"),
        app("db", labels={"tier": "db"}),
        app("api", selector=selector),
        app("a", "b"),
        app("b", "a"),
    ]
    with pytest.raises(ConfigError):
        resolve_dependency_states(apps)
    graph = resolve_dependency_states(apps, strict=False)
    assert graph["web"] == {"db": frozenset({"Ready"})}
    assert graph["api"] == {}
    assert graph["a"] == {"b": frozenset({"Ready"})}
    assert graph["b"] == {"a": frozenset({"Ready"})}


def test_a_cycle_of_two_is_rejected_and_named() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_dependencies([app("a", "b"), app("b", "a")])
    assert "dependsOn forms a cycle: a -> b -> a" in str(info.value)


def test_a_longer_cycle_is_named_in_full_and_not_the_app_leading_to_it() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_dependencies(
            [app("edge", "web"), app("web", "api"), app("api", "db"), app("db", "web")]
        )
    # Apps are walked by name, so the cycle is spelled from its first app by name.
    assert "dependsOn forms a cycle: api -> db -> web -> api" in str(info.value)
    assert "edge" not in info.value.message


def test_an_app_depending_on_itself_is_a_cycle() -> None:
    with pytest.raises(ConfigError, match="cycle: solo -> solo"):
        resolve_dependencies([app("solo", "solo")])


def test_dependency_order_puts_each_app_after_what_it_depends_on() -> None:
    graph = {"web": ("api", "cache"), "api": ("db",), "cache": (), "db": (), "blog": ()}
    order = dependency_order(graph)
    # Apps are taken by name, each preceded by what it still needs.
    assert order == ["db", "api", "blog", "cache", "web"]
    assert sorted(order) == sorted(graph)
    for node, deps in graph.items():
        for dep in deps:
            assert order.index(dep) < order.index(node), (dep, node, order)


def test_dependency_order_is_deterministic() -> None:
    graph = {"web": ("db",), "db": (), "blog": (), "api": ("db",)}
    assert dependency_order(graph) == ["db", "api", "blog", "web"]
    assert dependency_order(dict(reversed(graph.items()))) == ["db", "api", "blog", "web"]


def test_dependency_order_refuses_a_cycle() -> None:
    with pytest.raises(ConfigError, match="cycle: a -> b -> a"):
        dependency_order({"a": ("b",), "b": ("a",)})


@given(
    st.dictionaries(
        st.sampled_from("abcdefgh"),
        st.lists(st.sampled_from("abcdefgh"), max_size=3),
        max_size=8,
    )
)
def test_order_respects_every_edge_or_a_cycle_is_named(graph: dict[str, list[str]]) -> None:
    try:
        order = dependency_order(graph)
    except ConfigError as err:
        cycle = err.message.removeprefix("dependsOn forms a cycle: ").split(" -> ")
        assert cycle[0] == cycle[-1]
        for node, dep in itertools.pairwise(cycle):
            assert dep in graph.get(node, ()), (node, dep, graph)
        return
    check_cycles(graph)
    for node, deps in graph.items():
        for dep in deps:
            assert order.index(dep) < order.index(node)


def test_held_by_dependencies_names_each_cluster_where_one_is_unmet_and_why() -> None:
    # A push or a pull cluster alike: what counts is each dependency's state there.
    dependencies = {"base": frozenset({"Ready"}), "db": frozenset({"Ready", "NotReady"})}
    states: dict[str, dict[str, str | None]] = {
        "push-1": {"base": "Ready", "db": "NotReady"},
        "site-1": {"base": "NotReady", "db": "Ready"},
        "site-2": {"base": "Ready"},
    }
    held = held_by_dependencies(["push-1", "site-1", "site-2", "site-3"], dependencies, states)
    assert sorted(held) == ["site-1", "site-2", "site-3"]
    assert held["site-1"] == (
        "waiting for base (NotReady; accepted: Ready) to be in an accepted state on site-1"
    )
    assert "db (not deployed on site-2" in held["site-2"]
    assert "base (not deployed on site-3" in held["site-3"]
    assert "db (not deployed on site-3" in held["site-3"]


def test_nothing_is_held_without_dependencies() -> None:
    assert held_by_dependencies(["site-1"], {}, {}) == {}
    assert held_by_dependencies([], {"base": frozenset({"Ready"})}, {}) == {}


def test_held_there_is_a_wait_for_dependencies_not_a_sync_written_ahead() -> None:
    message = held_by_dependencies(["site-1"], {"db": frozenset({"Ready"})}, {})["site-1"]
    assert held_there({"state": "WaitApplied", "message": message})
    ahead = "applying revision 3 (sync 7, since 2026-12-02 10:00:00 UTC); until it completes"
    assert not held_there({"state": "WaitApplied", "message": ahead})
    assert not held_there({"state": "Ready", "message": message})
    assert not held_there({})
