"""One object, one owning app (issue 9 item 1): on real API servers, through the CLI.

Two Fleet bundles (fleet.yaml folders of raw YAML, as Fleet's "Git Repository
Contents" documents them) that render the same Deployment and Service: the
second must be refused before it writes anything anywhere, naming both apps
and the objects, and deleting it must leave the first app's objects alone.
Moving an object between apps takes an explicit opt-in, which also updates the
old owner's inventory on the cluster.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from appflow.model.objects import INVENTORY_NAMESPACE, LABEL_APP, Manifest
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    added,
    cli,
    configmap,
    deployment,
    exists,
    fleet_folder,
    live,
    one_line,
    service,
    snapshot,
    write_files,
)

pytestmark = pytest.mark.cluster

TAKE = {"appflow.dev/take-ownership": "true"}


def fleet_bundle(folder: Path, namespace: str, objects: dict[str, list[Manifest]]) -> Path:
    """A Fleet raw-YAML bundle: fleet.yaml with defaultNamespace, one manifest file per entry."""
    return fleet_folder(folder, {"defaultNamespace": namespace}, dict(objects))


def inventory_ids(fleet: Fleet, index: int, app: str) -> set[str]:
    """The object ids in APP's inventory ConfigMap on cluster INDEX (empty when it has none)."""
    kube = fleet.sandbox.kube(index)
    try:
        found = kube.get_sync("v1", "ConfigMap", f"appflow-inventory-{app}", INVENTORY_NAMESPACE)
    finally:
        kube.close()
    if found is None:
        return set()
    return {entry["id"] for entry in json.loads(found["data"]["entries"])}


def label_of(fleet: Fleet, index: int, api_version: str, kind: str, name: str, ns: str) -> str:
    obj = live(fleet.sandbox, index, api_version, kind, name, ns)
    return str(obj["metadata"]["labels"].get(LABEL_APP))


def test_second_app_rendering_the_same_objects_is_refused_before_any_write(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    first, second = space.app("shop"), space.app("shop-copy")
    added(
        first,
        fleet_bundle(
            tmp_path / "shop",
            ns,
            {"web.yaml": [deployment("web", ns), service("web", ns), configmap("shop", ns, {})]},
        ),
    )
    added(
        second,
        fleet_bundle(
            tmp_path / "shop-copy",
            ns,
            {
                # Someone copied the bundle to a second path: same Deployment and Service.
                "web.yaml": [deployment("web", ns, replicas=3), service("web", ns)],
                "extra.yaml": [configmap("copy-only", ns, {"mine": "yes"})],
            },
        ),
    )
    synced = cli("sync", first, "--wait", "--timeout", "120")
    assert synced.exit_code == 0, synced.output
    before = snapshot(fleet.sandbox, space)

    refused = cli("sync", second)
    assert refused.exit_code != 0, refused.output
    text = one_line(refused.output)
    assert f"sync of {second} refused before any change" in text, text
    for cluster in fleet.cluster_names:
        for obj in (f"Deployment.apps/{ns}/web", f"Service/{ns}/web"):
            assert (
                f"app {second}, cluster {cluster}, {obj}: owned by app {first} "
                f"(label {LABEL_APP}={first}); app {second} cannot take it over" in text
            ), text
    assert "--take-ownership" in text
    # Nothing was written on any cluster: not even the second app's own ConfigMap.
    assert snapshot(fleet.sandbox, space) == before
    for index in range(len(fleet.cluster_names)):
        assert not exists(fleet.sandbox, index, "v1", "ConfigMap", "copy-only", ns)

    deleted = cli("app", "delete", second)
    assert deleted.exit_code == 0, deleted.output
    for index in range(len(fleet.cluster_names)):
        web = live(fleet.sandbox, index, "apps/v1", "Deployment", "web", ns)
        assert web["metadata"]["labels"][LABEL_APP] == first
        assert web["spec"]["replicas"] == 1
        assert exists(fleet.sandbox, index, "v1", "Service", "web", ns)
        assert exists(fleet.sandbox, index, "v1", "ConfigMap", "shop", ns)
    again = cli("sync", first)
    assert again.exit_code == 0, again.output
    assert one_line(again.stdout).count("0 created, 0 configured, 4 unchanged, 0 pruned") == 3


def test_take_ownership_moves_objects_and_updates_the_old_owners_inventory(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    old, new = space.app("legacy"), space.app("platform")
    added(
        old,
        fleet_bundle(
            tmp_path / "legacy",
            ns,
            {
                "web.yaml": [deployment("web", ns), service("web", ns)],
                "cm.yaml": [configmap("legacy-only", ns, {})],
            },
        ),
    )
    assert cli("sync", old).exit_code == 0
    moving = deployment("web", ns, replicas=2)
    moving["metadata"]["annotations"] = dict(TAKE)
    new_folder = fleet_bundle(tmp_path / "platform", ns, {"web.yaml": [moving, service("web", ns)]})
    added(new, new_folder)

    # The annotation moves the Deployment only; the Service is still the old app's.
    partly = cli("sync", new)
    assert partly.exit_code != 0, partly.output
    text = one_line(partly.output)
    assert f"Service/{ns}/web: owned by app {old}" in text, text
    assert "Deployment.apps" not in text, text
    assert label_of(fleet, 0, "apps/v1", "Deployment", "web", ns) == old

    # A person moves both, once, with the flag.
    moved = cli("sync", new, "--take-ownership")
    assert moved.exit_code == 0, moved.output
    for index in range(len(fleet.cluster_names)):
        assert label_of(fleet, index, "apps/v1", "Deployment", "web", ns) == new
        assert label_of(fleet, index, "v1", "Service", "web", ns) == new
        # Same step: the old owner's inventory on the cluster no longer lists them.
        assert inventory_ids(fleet, index, old) == {f"{ns}_legacy-only__ConfigMap"}
        assert inventory_ids(fleet, index, new) == {
            f"{ns}_web_apps_Deployment",
            f"{ns}_web__Service",
        }

    # The old app still declares them: it is refused, and never takes them back.
    back = cli("sync", old)
    assert back.exit_code != 0, back.output
    assert f"Deployment.apps/{ns}/web: owned by app {new}" in one_line(back.output)
    assert label_of(fleet, 0, "apps/v1", "Deployment", "web", ns) == new

    # Deleting the old app deletes what it still owns and nothing of the new app's.
    deleted = cli("app", "delete", old)
    assert deleted.exit_code == 0, deleted.output
    for index in range(len(fleet.cluster_names)):
        assert not exists(fleet.sandbox, index, "v1", "ConfigMap", "legacy-only", ns)
        assert (
            live(fleet.sandbox, index, "apps/v1", "Deployment", "web", ns)["spec"]["replicas"] == 2
        )
        assert exists(fleet.sandbox, index, "v1", "Service", "web", ns)


def test_two_sources_claiming_one_object_are_refused_both_ways(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    one, two = space.app("one"), space.app("two")
    claimed = configmap("shared", ns, {"from": "one"}, annotations=dict(TAKE))
    added(one, fleet_bundle(tmp_path / "one", ns, {"cm.yaml": [claimed]}))
    added(
        two,
        fleet_bundle(
            tmp_path / "two",
            ns,
            {"cm.yaml": [configmap("shared", ns, {"from": "two"}, annotations=dict(TAKE))]},
        ),
    )
    assert cli("sync", one).exit_code == 0

    for _ in range(2):
        refused = cli("sync", two)
        assert refused.exit_code != 0, refused.output
        text = one_line(refused.output)
        assert f"both app {one} and app {two} mark it" in text, text
        assert live(fleet.sandbox, 0, "v1", "ConfigMap", "shared", ns)["data"] == {"from": "one"}
    assert cli("sync", one).exit_code == 0
    assert label_of(fleet, 0, "v1", "ConfigMap", "shared", ns) == one


# -- the property, on a real cluster ------------------------------------------------

APPS = ("a", "b", "c")
NAMES = ("settings", "web", "queue")

_write = st.tuples(
    st.just("write"), st.sampled_from(APPS), st.frozensets(st.sampled_from(NAMES), min_size=1)
)
_sync = st.tuples(st.just("sync"), st.sampled_from(APPS), st.booleans())
_delete = st.tuples(st.just("delete"), st.sampled_from(APPS))
Step = tuple[Any, ...]


@settings(
    max_examples=30,
    deadline=None,
    # Every step talks to a real cluster: shrinking a failure would take minutes; the
    # failing sequence is printed as generated.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(steps=st.lists(st.one_of(_write, _sync, _write, _sync, _delete), min_size=4, max_size=12))
@example(
    steps=[
        ("write", "a", frozenset({"web", "settings"})),
        ("sync", "a", False),
        ("write", "b", frozenset({"web"})),
        ("sync", "b", False),
        ("delete", "b"),
        ("sync", "a", False),
    ]
)
def test_no_app_ever_deletes_an_object_another_app_still_declares(
    fleet: Fleet, space: Space, tmp_path: Path, steps: list[Step]
) -> None:
    """Random add/sync/delete sequences of apps whose objects overlap, on one cluster.

    "Declares" is what appflow records as a claim: the object is in the desired
    state of the app's last successful sync and in its inventory on the cluster.
    """
    run = secrets.token_hex(2)
    ns = space.namespace
    cluster = fleet.cluster_names[0]
    name_of = {app: f"{app}-{run}-{space.suffix}" for app in APPS}
    registered: dict[str, frozenset[str]] = {}
    declared: dict[str, frozenset[str]] = {}

    def objects() -> dict[str, str]:
        """ConfigMap name -> the app its label names, for this run's objects."""
        kube = fleet.sandbox.kube(0)
        try:
            found = kube.list_sync("v1", "ConfigMap", namespace=ns)
        finally:
            kube.close()
        return {
            cm["metadata"]["name"]: (cm["metadata"].get("labels") or {}).get(LABEL_APP, "")
            for cm in found
            if cm["metadata"]["name"].endswith(f"-{run}")
            and not cm["metadata"].get("deletionTimestamp")
        }

    def write(app: str, names: frozenset[str]) -> None:
        folder = tmp_path / f"{run}-{app}"
        for old in folder.glob("*.yaml"):
            old.unlink()
        write_files(
            folder,
            {
                # Fleet's overrideTargets pins the bundle to one cluster.
                "fleet.yaml": f"defaultNamespace: {ns}\n"
                f"overrideTargets:\n  - clusterName: {cluster}\n",
                **{f"{n}.yaml": [configmap(f"{n}-{run}", ns, {"app": app})] for n in names},
            },
        )
        if app not in registered:
            added(name_of[app], folder)
        registered[app] = names

    try:
        for step in steps:
            before = objects()
            if step[0] == "write":
                write(step[1], step[2])
            elif step[0] == "sync" and step[1] in registered:
                args = ("--take-ownership",) if step[2] else ()
                if cli("sync", name_of[step[1]], *args).exit_code == 0:
                    declared[step[1]] = registered[step[1]]
            elif step[0] == "delete" and step[1] in registered:
                result = cli("app", "delete", name_of[step[1]])
                assert result.exit_code == 0, result.output
                del registered[step[1]]
                declared.pop(step[1], None)
            after = objects()
            for gone in sorted(set(before) - set(after)):
                for other, names in declared.items():
                    if other == step[1]:
                        continue
                    held = f"{ns}_{gone}__ConfigMap" in inventory_ids(fleet, 0, name_of[other])
                    assert not (gone.removesuffix(f"-{run}") in names and held), (
                        f"step {step} deleted ConfigMap {gone}, which app {other} still declares; "
                        f"steps: {steps}"
                    )
            # No silent takeover: a label only ever moves to an app that asked for it.
            for name, label in after.items():
                previous = before.get(name, "")
                if previous and label != previous:
                    took_over = step[0] == "sync" and step[2]
                    assert took_over, (
                        f"step {step} moved ConfigMap {name} from {previous} to {label}; "
                        f"steps: {steps}"
                    )
    finally:
        for app in registered:
            cli("app", "delete", name_of[app])
