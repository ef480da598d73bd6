"""Operator policies, pure: which apply, what guard rails refuse, what lookup may read (items 10, 13)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appflow.errors import ConfigError, NotFoundError
from appflow.kube.lookup import classify_read
from appflow.model.objects import Manifest
from appflow.model.policy import (
    Policy,
    applicable_policies,
    guard_rail_violations,
    lookup_grant,
    readable_namespaces,
    release_permission,
)
from appflow.model.targeting import ClusterGroup, parse_selector
from appflow.store import SqliteStore, open_store

CLUSTER_SCOPED = {"Namespace", "ClusterRoleBinding", "ClusterRole"}


def obj(kind: str, name: str, namespace: str | None = None, api: str = "v1") -> Manifest:
    meta: dict[str, str] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api, "kind": kind, "metadata": meta}


def namespaced(m: Manifest) -> bool:
    return m["kind"] not in CLUSTER_SCOPED


APP = [
    obj("Namespace", "web"),
    obj("ConfigMap", "settings", "web"),
    obj("Deployment", "web", "web", "apps/v1"),
]


def test_no_policy_allows_everything_as_before() -> None:
    admin = obj("ClusterRoleBinding", "root", api="rbac.authorization.k8s.io/v1")
    assert guard_rail_violations([*APP, admin], [], is_namespaced=namespaced) == []


def test_objects_outside_the_allowed_namespaces_are_named_with_the_rule() -> None:
    policy = Policy(scope="cluster", name="berlin-1", namespaces=("web", "team-*"))
    stray = obj("Secret", "token", "kube-system")
    (found,) = guard_rail_violations([*APP, stray], [policy], is_namespaced=namespaced)
    assert found.object == "Secret/kube-system/token"
    assert found.rule == "namespaces"
    assert found.policy == "policy of cluster berlin-1"
    assert "namespace 'kube-system'" in found.message
    assert "web, team-*" in found.message


def test_a_namespace_pattern_matches_like_a_shell_glob() -> None:
    policy = Policy(scope="group", name="eu", namespaces=("team-*",))
    ok = [obj("ConfigMap", "a", "team-a"), obj("Namespace", "team-b")]
    assert guard_rail_violations(ok, [policy], is_namespaced=namespaced) == []
    (found,) = guard_rail_violations(
        [obj("Namespace", "teams")], [policy], is_namespaced=namespaced
    )
    assert found.object == "Namespace/teams"


def test_a_namespaced_object_without_a_namespace_goes_to_default() -> None:
    policy = Policy(scope="cluster", name="c", namespaces=("web",))
    (found,) = guard_rail_violations([obj("ConfigMap", "x")], [policy], is_namespaced=namespaced)
    assert "namespace 'default'" in found.message


def test_cluster_scoped_objects_are_refused_but_namespaces_judged_by_name() -> None:
    policy = Policy(scope="repo", name="retail", namespaces=("web",), cluster_scoped=False)
    binding = obj("ClusterRoleBinding", "admin", api="rbac.authorization.k8s.io/v1")
    found = guard_rail_violations([*APP, binding], [policy], is_namespaced=namespaced)
    assert [(v.object, v.rule) for v in found] == [
        ("ClusterRoleBinding.rbac.authorization.k8s.io/admin", "cluster-scoped")
    ]


def test_every_applicable_policy_holds() -> None:
    loose = Policy(scope="cluster", name="c", namespaces=("web", "db"))
    strict = Policy(scope="group", name="g", namespaces=("web",))
    found = guard_rail_violations(
        [obj("ConfigMap", "x", "db")], [loose, strict], is_namespaced=namespaced
    )
    assert [v.policy for v in found] == ["policy of group g"]


def test_the_policies_of_a_cluster_its_groups_and_the_apps_repository_apply() -> None:
    policies = [
        Policy(scope="cluster", name="berlin-1"),
        Policy(scope="cluster", name="paris-1"),
        Policy(scope="group", name="eu"),
        Policy(scope="group", name="us"),
        Policy(scope="group", name="unknown-group"),
        Policy(scope="repo", name="retail"),
        Policy(scope="repo", name="other"),
    ]
    groups = {
        "eu": ClusterGroup(name="eu", selector=parse_selector("region=eu")),
        "us": ClusterGroup(name="us", selector=parse_selector("region=us")),
    }
    chosen = applicable_policies(
        policies,
        cluster="berlin-1",
        cluster_labels={"region": "eu"},
        groups=groups,
        repo="retail",
    )
    assert [p.label for p in chosen] == [
        "policy of cluster berlin-1",
        "policy of group eu",
        "policy of repo retail",
    ]


def test_lookup_is_off_unless_a_policy_allows_it_and_none_forbids_it() -> None:
    assert not lookup_grant([], app_namespace="web").allowed
    allow = Policy(scope="repo", name="retail", helm_lookup=True)
    grant = lookup_grant([allow], app_namespace="web")
    assert grant.allowed
    assert grant.namespaces == frozenset({"web"})
    forbid = Policy(scope="cluster", name="c", helm_lookup=False)
    denied = lookup_grant([allow, forbid], app_namespace="web")
    assert not denied.allowed
    assert "policy of cluster c forbids" in denied.reason


def test_read_namespaces_of_every_applicable_policy_add_up() -> None:
    allow = Policy(scope="cluster", name="c", helm_lookup=True, read_namespaces=("shared",))
    other = Policy(scope="group", name="g", read_namespaces=("team-*",))
    assert readable_namespaces([], app_namespace="web") == frozenset({"web"})
    assert readable_namespaces([allow, other], app_namespace="web") == frozenset(
        {"web", "shared", "team-*"}
    )
    assert lookup_grant([allow, other], app_namespace="web").namespaces == frozenset(
        {"web", "shared", "team-*"}
    )


def test_a_policy_refuses_what_is_not_a_namespace_pattern() -> None:
    with pytest.raises(ConfigError, match="not a namespace"):
        Policy(scope="cluster", name="c", namespaces=("Kube System",))


# -- what the lookup view lets through --------------------------------------------------------

WEB = frozenset({"web"})


@pytest.mark.parametrize(
    ("path", "decision"),
    [
        ("/version", "allow"),
        ("/api", "allow"),
        ("/api/v1", "allow"),
        ("/apis", "allow"),
        ("/apis/apps", "allow"),
        ("/apis/apps/v1", "allow"),
        ("/openapi/v3/apis/apps/v1", "allow"),
        ("/api/v1/namespaces/web/secrets/db", "allow"),
        ("/api/v1/namespaces/web/configmaps", "allow"),
        ("/api/v1/namespaces/web", "allow"),
        ("/apis/apps/v1/namespaces/web/deployments/api", "allow"),
        ("/api/v1/namespaces/kube-system/secrets/admin", "not-found"),
        ("/api/v1/namespaces/kube-system", "not-found"),
        ("/api/v1/nodes/node-1", "not-found"),
        ("/api/v1/namespaces/kube-system/secrets", "forbidden"),
        ("/api/v1/secrets", "forbidden"),
        ("/api/v1/namespaces", "forbidden"),
        ("/api/v1/namespaces/web/pods/x/log", "forbidden"),
        ("/api/v1/namespaces/web/../kube-system/secrets", "forbidden"),
        ("/api/v1/namespaces/w%65b/secrets/x", "forbidden"),
        ("/metrics", "forbidden"),
        ("/", "forbidden"),
    ],
)
def test_the_lookup_view_reads_only_its_namespaces(path: str, decision: str) -> None:
    assert classify_read(path, "", WEB) == decision


def test_the_lookup_view_never_watches() -> None:
    assert classify_read("/api/v1/namespaces/web/secrets", "watch=true", WEB) == "forbidden"
    assert classify_read("/api/v1/namespaces/web/secrets", "limit=5", WEB) == "allow"


def test_a_star_lets_every_read_through() -> None:
    everything = frozenset({"web", "*"})
    assert classify_read("/api/v1/secrets", "", everything) == "allow"
    assert classify_read("/api/v1/namespaces/kube-system/secrets/x", "", everything) == "allow"


# -- the store keeps them ---------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with open_store(tmp_path / "appflow.db") as opened:
        yield opened


def test_policies_round_trip_through_the_store(store: SqliteStore) -> None:
    policy = Policy(
        scope="group",
        name="eu",
        namespaces=("web", "team-*"),
        cluster_scoped=False,
        helm_lookup=True,
        read_namespaces=("shared",),
    )
    saved = store.put_policy(policy)
    assert (saved.namespaces, saved.cluster_scoped, saved.helm_lookup) == (
        ("web", "team-*"),
        False,
        True,
    )
    assert saved.read_namespaces == ("shared",)
    store.put_policy(Policy(scope="cluster", name="berlin-1"))
    assert [p.label for p in store.list_policies()] == [
        "policy of cluster berlin-1",
        "policy of group eu",
    ]
    assert store.get_policy("cluster", "berlin-1").namespaces is None
    store.delete_policy("group", "eu")
    with pytest.raises(NotFoundError):
        store.get_policy("group", "eu")


def test_helm_releases_are_off_unless_a_policy_allows_them() -> None:
    assert release_permission([])[0] is False
    allow = Policy(scope="group", name="lab", helm_release=True)
    assert release_permission([allow]) == (True, "allowed by the policy of group lab")
    forbid = Policy(scope="cluster", name="c", helm_release=False)
    assert release_permission([allow, forbid]) == (
        False,
        "the policy of cluster c forbids helm releases",
    )
