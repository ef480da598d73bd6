"""Syncs interrupted at a chosen point (SIGSTOP, SIGKILL, the store's lock held by another
process) leave nothing behind that the next sync cannot see and repair, and the status
never says Ready while the cluster holds something else.

Each test runs `appflow sync` as a separate process and acts on it when a watch on the
cluster sees a given write land: a condition, not a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from appflow.model.objects import INVENTORY_NAMESPACE, LABEL_APP
from appflow.model.ownership import stamp
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.interrupt import (
    AppflowProcess,
    Objects,
    store_write_lock,
    watching,
    with_value,
)
from tests.integration.engine.support import (
    Space,
    added,
    cli,
    configmap,
    dev_cluster,
    dev_only,
    one_line,
    status_json,
    synced,
    write_files,
)

pytestmark = pytest.mark.cluster

# A short store timeout keeps the tests that hold the store's lock quick; an appflow
# that does not know the setting waits its default (10 s) and behaves the same.
QUICK_STORE = {"APPFLOW_STORE_BUSY_TIMEOUT": "2"}


def _write_app(folder: Path, app: str, ns: str, names: Iterable[str], rev: str) -> Path:
    """APP (only on the env=dev cluster): one ConfigMap per name, each with data rev=REV."""
    objects = [configmap(n, ns, {"rev": rev}) for n in names]
    return write_files(folder, {"appflow.yaml": dev_only(app, ns), "objects.yaml": objects})


def _deployed(space: Space, folder: Path, base: str, names: list[str]) -> str:
    """App BASE (with the space's suffix) of ConfigMaps NAMES, added and synced with rev A."""
    app = space.app(base)
    added(app, _write_app(folder, app, space.namespace, names, "A"))
    synced(app)
    return app


def _killed_when(
    fleet: Fleet, app: str, ns: str, check: Callable[[Objects], bool], *, what: str, log: Path
) -> None:
    """Sync APP in a process of its own and SIGKILL it once CHECK holds on the cluster."""
    kubeconfig = fleet.sandbox.by_env("dev").kubeconfig
    with watching(kubeconfig, app=app, namespace=ns) as watch:
        killed = AppflowProcess(fleet.home, ["sync", app], log=log)
        try:
            watch.until(check, what=what)
            killed.kill()
        finally:
            killed.close()


def _labelled(fleet: Fleet, index: int, app: str, ns: str) -> dict[str, str]:
    """name -> data.rev of every ConfigMap of APP in NS on cluster INDEX."""
    kube = fleet.sandbox.kube(index)
    try:
        items = kube.list_sync("v1", "ConfigMap", namespace=ns, label_selector=f"{LABEL_APP}={app}")
    finally:
        kube.close()
    return {i["metadata"]["name"]: (i.get("data") or {}).get("rev", "") for i in items}


def _inventory_on_cluster(fleet: Fleet, index: int, app: str) -> set[str]:
    from appflow.model.inventory import Inventory

    kube = fleet.sandbox.kube(index)
    try:
        cm = kube.get_sync("v1", "ConfigMap", f"appflow-inventory-{app}", INVENTORY_NAMESPACE)
    finally:
        kube.close()
    assert cm is not None, f"app {app} has no inventory on cluster {index}"
    return {r.name for r in Inventory.from_data(app, cm["data"]).refs() if r.kind == "ConfigMap"}


def _deployment(app: str, cluster: str) -> dict[str, Any]:
    [entry] = [a for a in status_json()["apps"] if a["name"] == app]
    found: dict[str, Any] = entry["deployments"][cluster]
    return found


def _any_named(prefix: str) -> Any:
    def check(objects: Objects) -> bool:
        return any(key.split("/", 1)[1].startswith(prefix) for key in objects)

    return check


def test_content_an_unrecorded_apply_left_is_applied_again(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    """What a sync that applied other content but never recorded it (killed, or its store
    write refused) leaves is appflow's own apply of that content: the next sync of the
    recorded content must see it, not skip it as unchanged."""
    ns, folder = space.namespace, tmp_path / "app"
    index, dev = dev_cluster(fleet.sandbox)
    names = [f"c-{i:02d}" for i in range(40)]
    app = _deployed(space, folder, "repair", names)

    kube = fleet.sandbox.kube(index)
    try:
        for name in names:
            kube.apply_sync(stamp(configmap(name, ns, {"rev": "B"}), app=app))
    finally:
        kube.close()

    text = synced(app)
    assert f"-> {dev}: Ready (0 created, 40 configured, 1 unchanged, 0 pruned)" in text, text
    assert set(_labelled(fleet, index, app, ns).values()) == {"A"}
    again = synced(app)
    assert f"-> {dev}: Ready (0 created, 0 configured, 41 unchanged, 0 pruned)" in again, again


def test_a_sync_the_store_could_not_record_says_so_and_the_next_sync_repairs_it(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    """The issue's repro: sync A; sync B while another process holds the store's lock;
    sync A: 800 configured, not 800 unchanged."""
    ns, folder = space.namespace, tmp_path / "app"
    index, dev = dev_cluster(fleet.sandbox)
    kubeconfig = fleet.sandbox.clusters[index].kubeconfig
    names = [f"c-{i:03d}" for i in range(800)]
    app = _deployed(space, folder, "locked", names)

    _write_app(folder, app, ns, names, "B")
    with watching(kubeconfig, app=app, namespace=ns) as watch:
        sync_b = AppflowProcess(fleet.home, ["sync", app], log=tmp_path / "b.log", **QUICK_STORE)
        try:
            watch.until(with_value("rev", "B"), what="the first object of content B")
            sync_b.freeze()
            with store_write_lock(fleet.home):
                sync_b.thaw()
                code = sync_b.wait()
        finally:
            sync_b.close()
    said = one_line(sync_b.output())
    assert code != 0, said
    assert f"app {app}, cluster {dev}" in said, said
    assert "the cluster already changed" in said, said
    assert "Traceback" not in said, said

    # Until a sync completes, the status says revision 2 did not finish, never Ready.
    deployment = _deployment(app, dev)
    assert deployment["state"] in ("WaitApplied", "OutOfSync"), deployment
    assert "revision 2" in deployment["message"], deployment

    _write_app(folder, app, ns, names, "A")
    text = synced(app)
    assert f"-> {dev}: Ready (0 created, 800 configured, 1 unchanged, 0 pruned)" in text, text
    assert set(_labelled(fleet, index, app, ns).values()) == {"A"}
    assert _deployment(app, dev)["state"] == "Ready"


def test_a_sync_killed_midway_then_a_lost_inventory_leaves_no_orphan(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, folder = space.namespace, tmp_path / "app"
    index, dev = dev_cluster(fleet.sandbox)
    kept = [f"a-{i:02d}" for i in range(10)]
    new = [f"n-{i:03d}" for i in range(150)]
    app = _deployed(space, folder, "orphans", kept)

    _write_app(folder, app, ns, kept + new, "B")
    _killed_when(
        fleet,
        app,
        ns,
        _any_named("n-"),
        what="the first new object of revision 2",
        log=tmp_path / "k.log",
    )

    # The interrupted revision is named until a sync completes; never Ready.
    deployment = _deployment(app, dev)
    assert deployment["state"] in ("WaitApplied", "OutOfSync"), deployment
    assert "revision 2" in deployment["message"], deployment

    # Someone deletes the inventory ConfigMap: the store's mirror must know the new objects.
    kube = fleet.sandbox.kube(index)
    try:
        kube.delete_sync("v1", "ConfigMap", f"appflow-inventory-{app}", INVENTORY_NAMESPACE)
    finally:
        kube.close()

    _write_app(folder, app, ns, kept, "C")
    synced(app)
    assert _labelled(fleet, index, app, ns) == dict.fromkeys(kept, "C")
    assert _inventory_on_cluster(fleet, index, app) == set(kept)
    deployment = _deployment(app, dev)
    assert deployment["state"] == "Ready", deployment
    assert deployment["revision"] == 3, deployment


def test_the_next_sync_finishes_an_interrupted_one_without_waiting_for_it(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, folder = space.namespace, tmp_path / "app"
    index, dev = dev_cluster(fleet.sandbox)
    names = [f"c-{i:03d}" for i in range(150)]
    app = _deployed(space, folder, "forward", names[:10])

    _write_app(folder, app, ns, names, "B")
    _killed_when(
        fleet,
        app,
        ns,
        with_value("rev", "B"),
        what="the first object of revision 2",
        log=tmp_path / "k.log",
    )

    # The killed process held the app on the cluster: a dead holder is no holder, so
    # this sync must not wait for it (--lock-timeout 0 fails instead of waiting).
    text = synced(app, "--lock-timeout", "0")
    assert f"{app} revision 2 -> {dev}: Ready" in text, text
    assert _labelled(fleet, index, app, ns) == dict.fromkeys(names, "B")
    assert _inventory_on_cluster(fleet, index, app) == set(names)
    assert _deployment(app, dev)["state"] == "Ready"


def test_a_second_writer_is_told_who_holds_the_app_or_waits_for_it(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    import socket

    ns, folder = space.namespace, tmp_path / "app"
    index, dev = dev_cluster(fleet.sandbox)
    kubeconfig = fleet.sandbox.clusters[index].kubeconfig
    first = [f"a-{i:02d}" for i in range(10)]
    second = [f"b-{i:03d}" for i in range(200)]
    third = [f"c-{i:02d}" for i in range(10)]
    app = _deployed(space, folder, "writers", first)

    _write_app(folder, app, ns, second, "B")
    with watching(kubeconfig, app=app, namespace=ns) as watch:
        holder = AppflowProcess(fleet.home, ["sync", app], log=tmp_path / "holder.log")
        waiter: AppflowProcess | None = None
        try:
            watch.until(_any_named("b-"), what="the first object of revision 2")
            holder.freeze()

            _write_app(folder, app, ns, third, "C")
            refused = cli("sync", app, "--lock-timeout", "0")
            said = one_line(refused.output)
            assert refused.exit_code != 0, said
            assert (
                f"sync of {app} on {dev} in progress by {holder.pid}/{socket.gethostname()} since"
                in said
            ), said
            assert "Traceback" not in said
            # The refused sync wrote nothing: none of its objects, no prune of the first
            # revision's (the frozen holder's requests already sent may still land).
            now = _labelled(fleet, index, app, ns)
            assert not [n for n in now if n.startswith("c-")], now
            assert set(first) <= set(now), now

            waiter = AppflowProcess(fleet.home, ["sync", app], log=tmp_path / "waiter.log")
            watch_log = tmp_path / "waiter.log"
            _until_said(waiter, watch_log, f"in progress by {holder.pid}/")
            holder.thaw()
            assert holder.wait() == 0, holder.output()
            assert waiter.wait() == 0, waiter.output()
        finally:
            holder.close()
            if waiter is not None:
                waiter.close()

    assert _labelled(fleet, index, app, ns) == dict.fromkeys(third, "C")
    assert _inventory_on_cluster(fleet, index, app) == set(third)
    deployment = _deployment(app, dev)
    assert deployment["state"] == "Ready", deployment
    assert deployment["revision"] == 3, deployment


def _until_said(process: AppflowProcess, log: Path, text: str) -> None:
    """Wait until PROCESS has written TEXT (it reached that point), failing if it ended."""
    import time

    deadline = time.monotonic() + 120
    while text not in one_line(log.read_text(errors="replace")):
        if not process.running():
            pytest.fail(f"appflow ended before saying {text!r}:\n{process.output()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"appflow never said {text!r}:\n{process.output()[-3000:]}")
        time.sleep(0.1)
