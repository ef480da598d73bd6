"""plan_sync: what a sync creates, configures, leaves alone, prunes and skips, and why."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from appflow.errors import ConfigError, PruneError
from appflow.model.inventory import Inventory, InventoryEntry
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.plan import Action, Change, Plan, may_prune, owned_by, plan_sync

TESTDATA = Path(__file__).parent / "testdata" / "plan"


def load(name: str) -> Manifest:
    data: Manifest = yaml.safe_load((TESTDATA / name).read_text())
    return data


def obj(
    kind: str,
    name: str,
    *,
    api_version: str = "v1",
    namespace: str = "shop",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    metadata: dict[str, object] = {"name": name, "namespace": namespace}
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


def owned(kind: str, name: str, app: str = "web", **extra: str) -> Manifest:
    """A live object carrying ``app``'s ownership label and annotation."""
    return obj(
        kind,
        name,
        labels={"appflow.dev/app": app},
        annotations={"appflow.dev/owner": f"{app}/inv-1", **extra},
    )


def ref(manifest: Manifest) -> ObjectRef:
    return ObjectRef.of(manifest)


def actions(plan: Plan) -> list[tuple[str, Action, str]]:
    return [(str(c.ref), c.action, c.reason) for c in plan.changes]


def test_unchanged_when_dry_run_matches_live_apart_from_noise() -> None:
    desired = load("deployment-dry-run-same.yaml")  # stands in for the rendered object
    live = load("deployment-live.yaml")
    plan = plan_sync(
        app="web",
        desired=[desired],
        dry_run={ref(desired): load("deployment-dry-run-same.yaml")},
        live={ref(live): live},
        old_inventory=None,
    )
    assert plan.changes == (Change(ref(live), Action.UNCHANGED),)
    assert plan.summary() == "1 unchanged"
    assert not plan.has_changes


def test_configure_names_changed_fields_and_carries_the_diff() -> None:
    live = load("deployment-live.yaml")
    dry = load("deployment-dry-run-scaled.yaml")
    plan = plan_sync(
        app="web",
        desired=[dry],
        dry_run={ref(dry): dry},
        live={ref(live): live},
        old_inventory=None,
    )
    (change,) = plan.changes
    assert change.action is Action.CONFIGURE
    assert change.reason == "changed: spec.replicas, spec.template.spec.containers[0].image"
    assert "-  replicas: 2\n+  replicas: 3\n" in change.diff
    assert plan.has_changes


def test_configure_lists_at_most_five_paths() -> None:
    live = obj("ConfigMap", "c")
    live["data"] = {}
    dry = copy.deepcopy(live)
    dry["data"] = {f"k{i}": "v" for i in range(7)}
    plan = plan_sync(
        app="web",
        desired=[dry],
        dry_run={ref(dry): dry},
        live={ref(live): live},
        old_inventory=None,
    )
    assert plan.changes[0].reason == (
        "changed: data.k0, data.k1, data.k2, data.k3, data.k4 and 2 more"
    )


def test_create_when_not_on_the_cluster() -> None:
    desired = obj("ConfigMap", "settings")
    plan = plan_sync(
        app="web",
        desired=[desired],
        dry_run={ref(desired): desired},
        live={ref(desired): None},
        old_inventory=None,
    )
    (change,) = plan.changes
    assert (change.action, change.reason) == (Action.CREATE, "not on the cluster")
    assert change.diff.startswith("--- /dev/null\n+++ desired/ConfigMap/shop/settings\n")


def test_configure_without_a_dry_run_result() -> None:
    desired = obj("ConfigMap", "settings")
    live = owned("ConfigMap", "settings")
    plan = plan_sync(
        app="web", desired=[desired], dry_run={}, live={ref(live): live}, old_inventory=None
    )
    assert actions(plan) == [
        ("ConfigMap/shop/settings", Action.CONFIGURE, "no dry-run result to compare with")
    ]


def test_prune_only_owned_objects_and_say_why_others_stay() -> None:
    keep = obj("ConfigMap", "keep")
    gone = owned("ConfigMap", "gone")
    other = owned("ConfigMap", "other", app="other")
    unlabeled = obj("ConfigMap", "unlabeled")
    pinned = owned("Secret", "pinned", **{"appflow.dev/prune": "false"})
    stale = owned("Service", "stale")
    deployment = {**owned("Deployment", "old"), "apiVersion": "apps/v1"}
    old = Inventory.from_manifests(
        "web", [keep, gone, other, unlabeled, pinned, stale, deployment, obj("ConfigMap", "unseen")]
    )
    live: dict[ObjectRef, Manifest | None] = {
        ref(keep): owned("ConfigMap", "keep"),
        ref(gone): None,
        ref(other): other,
        ref(unlabeled): unlabeled,
        ref(pinned): pinned,
        ref(stale): stale,
        ref(deployment): deployment,
    }
    plan = plan_sync(
        app="web",
        desired=[keep],
        dry_run={ref(keep): owned("ConfigMap", "keep")},
        live=live,
        old_inventory=old,
    )

    # Desired objects first, then prune candidates in deletion order (reverse apply order).
    assert actions(plan) == [
        ("ConfigMap/shop/keep", Action.UNCHANGED, ""),
        ("Deployment.apps/shop/old", Action.PRUNE, "no longer in the desired state"),
        ("Service/shop/stale", Action.PRUNE, "no longer in the desired state"),
        ("ConfigMap/shop/unseen", Action.SKIP, "live state unknown; not deleted blind"),
        (
            "ConfigMap/shop/unlabeled",
            Action.SKIP,
            "not owned by app web: label appflow.dev/app is missing",
        ),
        (
            "ConfigMap/shop/other",
            Action.SKIP,
            "not owned by app web: label appflow.dev/app is 'other'",
        ),
        ("ConfigMap/shop/gone", Action.SKIP, "already gone"),
        ("Secret/shop/pinned", Action.SKIP, "kept by annotation appflow.dev/prune=false"),
    ]
    assert plan.summary() == "1 unchanged, 2 pruned, 5 skipped"
    assert plan.counts()[Action.CREATE] == 0
    assert [str(c.ref) for c in plan.of(Action.PRUNE)] == [
        "Deployment.apps/shop/old",
        "Service/shop/stale",
    ]
    assert plan.of(Action.PRUNE)[1].diff.splitlines()[:2] == [
        "--- live/Service/shop/stale",
        "+++ /dev/null",
    ]


def test_keep_reports_owned_candidates_as_kept_not_pruned() -> None:
    """Pruning off, or an app deleted with keepResources: the plan says what happens."""
    old = Inventory.from_manifests("web", [obj("ConfigMap", "left"), obj("ConfigMap", "foreign")])
    plan = plan_sync(
        app="web",
        desired=[],
        dry_run={},
        live={
            ref(obj("ConfigMap", "left")): owned("ConfigMap", "left"),
            ref(obj("ConfigMap", "foreign")): owned("ConfigMap", "foreign", app="other"),
        },
        old_inventory=old,
        keep="keepResources: the app's objects stay when it is deleted",
    )
    assert sorted(actions(plan)) == [
        (
            "ConfigMap/shop/foreign",
            Action.SKIP,
            "not owned by app web: label appflow.dev/app is 'other'",
        ),
        (
            "ConfigMap/shop/left",
            Action.KEEP,
            "keepResources: the app's objects stay when it is deleted",
        ),
    ]
    assert plan.summary() == "1 kept, 1 skipped"
    assert not plan.has_changes


def test_may_prune_asks_the_object_as_it_is_now() -> None:
    assert may_prune(owned("ConfigMap", "a"), "web") == (True, "no longer in the desired state")
    assert may_prune(None, "web") == (False, "already gone")
    taken = owned("ConfigMap", "a", app="web-b")
    assert may_prune(taken, "web") == (
        False,
        "not owned by app web: label appflow.dev/app is 'web-b'",
    )
    kept = owned("ConfigMap", "a", **{"appflow.dev/prune": "false"})
    assert may_prune(kept, "web") == (False, "kept by annotation appflow.dev/prune=false")
    going = owned("ConfigMap", "a")
    going["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert may_prune(going, "web") == (False, "already being deleted")


def test_summary_counts_in_a_fixed_order() -> None:
    refs = [ObjectRef("", "ConfigMap", "shop", str(i)) for i in range(7)]
    plan = Plan(
        tuple(
            Change(r, a)
            for r, a in zip(
                refs,
                [
                    Action.PRUNE,
                    Action.UNCHANGED,
                    Action.CREATE,
                    Action.CREATE,
                    Action.CONFIGURE,
                    Action.CREATE,
                    Action.PRUNE,
                ],
                strict=True,
            )
        )
    )
    assert plan.summary() == "3 created, 1 configured, 1 unchanged, 2 pruned"
    assert Plan(()).summary() == "no objects"


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        (
            {"appflow.dev/app": "web"},
            {"appflow.dev/owner": "web/inv-1"},
            (True, "owned by app web"),
        ),
        ({"appflow.dev/app": "web"}, {"appflow.dev/owner": "web"}, (True, "owned by app web")),
        (
            {"appflow.dev/app": "web"},
            {"appflow.dev/owner": "webshop/inv-1"},
            (False, "not owned by app web: annotation appflow.dev/owner is 'webshop/inv-1'"),
        ),
        (
            {"appflow.dev/app": "web"},
            {},
            (False, "not owned by app web: annotation appflow.dev/owner is missing"),
        ),
        (
            {"appflow.dev/app": "webshop"},
            {"appflow.dev/owner": "web/inv-1"},
            (False, "not owned by app web: label appflow.dev/app is 'webshop'"),
        ),
        (None, None, (False, "not owned by app web: label appflow.dev/app is missing")),
    ],
)
def test_owned_by(
    labels: dict[str, str] | None, annotations: dict[str, str] | None, expected: tuple[bool, str]
) -> None:
    assert (
        owned_by(obj("ConfigMap", "c", labels=labels, annotations=annotations), "web") == expected
    )


def test_object_twice_in_desired_state_is_a_config_error() -> None:
    desired = [obj("ConfigMap", "c"), obj("ConfigMap", "c")]
    with pytest.raises(ConfigError, match=r"app web, ConfigMap/shop/c: the object appears twice"):
        plan_sync(app="web", desired=desired, dry_run={}, live={}, old_inventory=None)


def test_inventory_of_another_app_is_refused() -> None:
    with pytest.raises(PruneError, match="previous inventory belongs to app api"):
        plan_sync(
            app="web",
            desired=[],
            dry_run={},
            live={},
            old_inventory=Inventory.from_manifests("api", []),
        )


def test_plan_sync_does_not_mutate_its_inputs() -> None:
    live = load("deployment-live.yaml")
    dry = load("deployment-dry-run-scaled.yaml")
    before = (copy.deepcopy(live), copy.deepcopy(dry))
    plan_sync(
        app="web",
        desired=[dry],
        dry_run={ref(dry): dry},
        live={ref(live): live},
        old_inventory=None,
    )
    assert (live, dry) == before


# Live objects with every mix of ownership marks: plan_sync must never prune
# one that does not carry both of the app's marks and is not kept.
_label_values = st.sampled_from([None, "web", "other", "webshop", ""])
_owner_values = st.sampled_from(
    [None, "web/inv-1", "web", "webshop/inv-1", "other/inv-1", "", "web-"]
)
_prune_values = st.sampled_from([None, "false", "False", "true", "disabled"])


@st.composite
def live_objects(draw: st.DrawFn, name: str) -> Manifest | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    labels = {} if (v := draw(_label_values)) is None else {"appflow.dev/app": v}
    annotations: dict[str, str] = {}
    if (owner := draw(_owner_values)) is not None:
        annotations["appflow.dev/owner"] = owner
    if (keep := draw(_prune_values)) is not None:
        annotations["appflow.dev/prune"] = keep
    return obj("ConfigMap", name, labels=labels, annotations=annotations)


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[Manifest], dict[ObjectRef, Manifest | None], Inventory]:
    names = [f"c{i}" for i in range(draw(st.integers(0, 8)))]
    live = {ref(obj("ConfigMap", n)): draw(live_objects(n)) for n in names}
    old = Inventory.from_manifests("web", [obj("ConfigMap", n) for n in names])
    desired = [obj("ConfigMap", n) for n in names if draw(st.booleans())]
    return desired, live, old


@given(clusters())
def test_plan_sync_never_prunes_what_the_app_does_not_own(
    cluster: tuple[list[Manifest], dict[ObjectRef, Manifest | None], Inventory],
) -> None:
    desired, live, old = cluster
    plan = plan_sync(app="web", desired=desired, dry_run={}, live=live, old_inventory=old)
    desired_refs = {ref(m) for m in desired}
    for change in plan.of(Action.PRUNE):
        current = live[change.ref]
        assert current is not None
        meta = current["metadata"]
        assert meta["labels"]["appflow.dev/app"] == "web"
        owner = meta["annotations"]["appflow.dev/owner"]
        assert owner == "web" or owner.startswith("web/")
        assert meta["annotations"].get("appflow.dev/prune", "").lower() != "false"
        assert change.ref not in desired_refs
    # Every object that left the desired state is accounted for, pruned or skipped.
    left = {r for r in old.refs() if r not in desired_refs}
    assert {c.ref for c in plan.changes if c.action in (Action.PRUNE, Action.SKIP)} == left


def test_an_object_that_became_shared_is_no_prune_candidate() -> None:
    """Inventories written before the app's namespace was shared still list it."""
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "shop", "annotations": {"appflow.dev/shared": "true"}},
    }
    old = Inventory("web", (InventoryEntry(ref(namespace), "v1"),))
    plan = plan_sync(
        app="web",
        desired=[namespace],
        dry_run={ref(namespace): namespace},
        live={ref(namespace): namespace},
        old_inventory=old,
    )
    assert actions(plan) == [("Namespace/shop", Action.UNCHANGED, "")]


def test_revised_replaces_what_a_stage_learned_and_keeps_the_order() -> None:
    a, b = ObjectRef("", "ConfigMap", "shop", "a"), ObjectRef("", "ConfigMap", "shop", "b")
    plan = Plan(
        (Change(a, Action.PRUNE, "no longer in the desired state"), Change(b, Action.PRUNE))
    )
    taken = Change(a, Action.SKIP, "not owned by app web: label appflow.dev/app is 'web-b'")

    revised = plan.revised([taken])

    assert revised.changes == (taken, Change(b, Action.PRUNE))
    assert revised.summary() == "1 pruned, 1 skipped"
    assert plan.revised([]) is plan
