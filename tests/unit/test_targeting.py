"""Cluster selection, first-match customizations and kubectl selector syntax."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appflow.errors import ConfigError
from appflow.model.appdef import (
    AppDefinition,
    ClusterTarget,
    LabelRequirement,
    LabelSelector,
    TargetCustomization,
)
from appflow.model.targeting import (
    ClusterGroup,
    ClusterInfo,
    customization_for,
    format_selector,
    parse_selector,
    select_clusters,
    selector_matches,
    unmatched_targets,
)

CLUSTERS = [
    ClusterInfo(name="berlin-1", labels={"region": "eu", "site": "berlin", "env": "prod"}),
    ClusterInfo(name="paris-1", labels={"region": "eu", "site": "paris", "env": "staging"}),
    ClusterInfo(name="austin-1", labels={"region": "us", "site": "austin", "env": "prod"}),
    ClusterInfo(name="lab-1", labels={}),
]
GROUPS = [ClusterGroup(name="prod", selector=LabelSelector(match_labels={"env": "prod"}))]


def app(
    *, targets: tuple[ClusterTarget, ...] = (), custom: tuple[TargetCustomization, ...] = ()
) -> AppDefinition:
    return AppDefinition(
        name="web", path="apps/web", kind="yaml", targets=targets, customizations=custom
    )


def names(clusters: list[ClusterInfo]) -> list[str]:
    return [c.name for c in clusters]


def test_no_targets_means_every_cluster() -> None:
    assert names(select_clusters(app(), CLUSTERS, GROUPS)) == [
        "berlin-1",
        "paris-1",
        "austin-1",
        "lab-1",
    ]


def test_targets_are_a_union_in_cluster_order() -> None:
    targets = (
        ClusterTarget(name="lab", cluster_name="lab-1"),
        ClusterTarget(name="eu", selector=LabelSelector(match_labels={"region": "eu"})),
    )
    assert names(select_clusters(app(targets=targets), CLUSTERS, GROUPS)) == [
        "berlin-1",
        "paris-1",
        "lab-1",
    ]


def test_criteria_within_a_target_are_anded() -> None:
    target = ClusterTarget(
        name="eu-prod", cluster_group="prod", selector=LabelSelector(match_labels={"region": "eu"})
    )
    assert names(select_clusters(app(targets=(target,)), CLUSTERS, GROUPS)) == ["berlin-1"]


def test_empty_selector_matches_everything_unknown_group_nothing() -> None:
    everything = ClusterTarget(name="all", selector=LabelSelector())
    ghost = ClusterTarget(name="ghost", cluster_group="no-such-group")
    a = app(targets=(everything, ghost))
    assert len(select_clusters(a, CLUSTERS, GROUPS)) == 4
    assert unmatched_targets(a, CLUSTERS, GROUPS) == ["ghost"]


def test_first_matching_customization_wins() -> None:
    berlin = TargetCustomization(
        target=ClusterTarget(
            name="berlin", selector=LabelSelector(match_labels={"site": "berlin"})
        ),
        helm_values={"replicas": 3},
    )
    prod = TargetCustomization(
        target=ClusterTarget(name="prod", cluster_group="prod"), namespace="prod"
    )
    a = app(custom=(berlin, prod))
    by_name = {c.name: c for c in CLUSTERS}
    assert customization_for(a, by_name["berlin-1"], GROUPS) is berlin
    assert customization_for(a, by_name["austin-1"], GROUPS) is prod
    assert customization_for(a, by_name["paris-1"], GROUPS) is None


@pytest.mark.parametrize(
    ("operator", "values", "labels", "expected"),
    [
        ("In", ("eu", "us"), {"region": "eu"}, True),
        ("In", ("eu",), {}, False),
        ("NotIn", ("eu",), {"region": "us"}, True),
        ("NotIn", ("eu",), {}, True),  # Kubernetes: NotIn matches a missing label
        ("NotIn", ("eu",), {"region": "eu"}, False),
        ("Exists", (), {"region": ""}, True),
        ("Exists", (), {}, False),
        ("DoesNotExist", (), {}, True),
        ("DoesNotExist", (), {"region": "eu"}, False),
    ],
)
def test_expression_operators(
    operator: str, values: tuple[str, ...], labels: dict[str, str], expected: bool
) -> None:
    req = LabelRequirement(key="region", operator=operator, values=values)  # type: ignore[arg-type]
    assert selector_matches(LabelSelector(match_expressions=(req,)), labels) is expected


def test_parse_selector_kubectl_syntax() -> None:
    selector = parse_selector("env=prod, region in (eu, us),!legacy,tier!=db,gpu,app==web")
    assert selector == LabelSelector(
        match_labels={"env": "prod", "app": "web"},
        match_expressions=(
            LabelRequirement(key="region", operator="In", values=("eu", "us")),
            LabelRequirement(key="legacy", operator="DoesNotExist"),
            LabelRequirement(key="tier", operator="NotIn", values=("db",)),
            LabelRequirement(key="gpu", operator="Exists"),
        ),
    )
    assert selector_matches(selector, {"env": "prod", "app": "web", "region": "eu", "gpu": "1"})
    assert not selector_matches(
        selector, {"env": "prod", "app": "web", "region": "eu", "gpu": "1", "legacy": "y"}
    )
    assert parse_selector("") == LabelSelector()


@pytest.mark.parametrize(
    ("text", "token", "problem"),
    [
        ("env=prod,region in (eu", "region in (eu", "missing ')'"),
        ("env=prod,,x", "", "empty requirement"),
        ("env=pr od", "env=pr od", "is not a label key"),
        ("env=prod,site=a b", "site=a b", "is not a label key"),
        ("region in (eu,)", "region in (eu,)", "must not have empty entries"),
        ("env=prod,env=dev", "env=dev", "label env is already required to be prod"),
        ("v=-bad-", "v=-bad-", "'-bad-' is not a label value"),
    ],
)
def test_parse_selector_errors_name_the_bad_token(text: str, token: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_selector(text)
    message = str(info.value)
    assert f"bad selector token {token!r}" in message
    assert problem in message


label_keys = st.from_regex(r"\A([a-z]{1,5}\.[a-z]{2,3}/)?[a-z][a-z0-9-]{0,6}[a-z0-9]\Z")
label_values = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,6}[A-Za-z0-9])?\Z")
requirements = st.one_of(
    st.builds(
        LabelRequirement,
        key=label_keys,
        operator=st.sampled_from(["In", "NotIn"]),
        values=st.lists(label_values, min_size=1, max_size=3).map(tuple),
    ),
    st.builds(
        LabelRequirement, key=label_keys, operator=st.sampled_from(["Exists", "DoesNotExist"])
    ),
)
selectors = st.builds(
    LabelSelector,
    match_labels=st.dictionaries(label_keys, label_values, max_size=3),
    match_expressions=st.lists(requirements, max_size=3).map(tuple),
)


@given(selectors)
def test_selector_format_parse_round_trip(selector: LabelSelector) -> None:
    assert parse_selector(format_selector(selector)) == selector
