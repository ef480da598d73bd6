"""An object the API server refuses or fails on is that object's failure, not the cluster's.

A Secret whose data is not base64 (HTTP 500 from the API server), an object admission
forbids (an exhausted ResourceQuota: HTTP 403) and an object too large for the API server
to read (it drops the connection) make the app ErrApplied on that cluster, naming the
object and the reason, with an event; the cluster stays Online (only its own health probe
decides that) and its other apps keep syncing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appflow import settings
from appflow.model.objects import Manifest
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    added,
    cli,
    configmap,
    dev_cluster,
    dev_only,
    one_line,
    status_json,
    write_files,
)

pytestmark = pytest.mark.cluster


def _json(command: str, *args: str) -> Any:
    result = cli(command, *args, "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _cluster_state(name: str) -> str:
    [found] = [c for c in _json("cluster", "list") if c["name"] == name]
    return str(found["state"])


def _quota(ns: str, configmaps: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "few-configmaps", "namespace": ns},
        "spec": {"hard": {"count/configmaps": str(configmaps)}},
    }


def _bad_secret(ns: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "broken", "namespace": ns},
        "data": {"password": "this is not base64!"},
    }


def _too_large(ns: str) -> Manifest:
    # Well over the API server's 3 MiB request limit: it drops the connection mid-body.
    return configmap("huge", ns, {"blob": "x" * (10 * 1024 * 1024)})


@pytest.fixture
def objects_unbounded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """appflow refuses an object over APPFLOW_MAX_OBJECT_BYTES before any write; an
    operator who raised the limit past the API server's sends it, and the API server
    drops the connection: that must still be the object's failure."""
    monkeypatch.setenv("APPFLOW_MAX_OBJECT_BYTES", "64Mi")
    settings.limits.cache_clear()
    yield
    monkeypatch.undo()
    settings.limits.cache_clear()


CASES = {
    "data-not-base64": ("Secret/{ns}/broken", "illegal base64"),
    "admission-quota": ("ConfigMap/{ns}/extra", "exceeded quota"),
    "too-large": ("ConfigMap/{ns}/huge", ""),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_refused_object_fails_its_app_not_its_cluster(
    fleet: Fleet, space: Space, tmp_path: Path, case: str, request: pytest.FixtureRequest
) -> None:
    ns, app, other = space.namespace, space.app("bad"), space.app("good")
    index, dev = dev_cluster(fleet.sandbox)
    obj, reason = (text.format(ns=ns) for text in CASES[case])
    objects: list[Manifest] = [configmap("fine", ns, {"k": "v"})]
    if case == "data-not-base64":
        objects.append(_bad_secret(ns))
    elif case == "admission-quota":
        kube = fleet.sandbox.kube(index)
        try:
            # Room for nothing more than what the namespace already holds.
            held = len(kube.list_sync("v1", "ConfigMap", namespace=ns))
            kube.apply_sync(_quota(ns, held))
        finally:
            kube.close()
        objects = [configmap("extra", ns, {"k": "v"})]
    else:
        request.getfixturevalue("objects_unbounded")
        objects.append(_too_large(ns))
    folder = write_files(tmp_path / "bad", {"appflow.yaml": dev_only(app, ns), "o.yaml": objects})
    good = write_files(
        tmp_path / "good",
        {"appflow.yaml": dev_only(other, ns), "o.yaml": [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "good", "namespace": ns}}]},
    )  # fmt: skip
    added(app, folder)
    added(other, good)

    result = cli("sync", app)
    said = one_line(result.output)
    assert result.exit_code != 0, said
    assert f"app {app}, cluster {dev}, {obj}" in said, said
    assert reason in said, said
    assert "credentials" not in said, said
    assert "did not answer" not in said, said
    assert "Traceback" not in said

    assert _cluster_state(dev) == "Online"
    [entry] = [a for a in status_json()["apps"] if a["name"] == app]
    deployment = entry["deployments"][dev]
    assert deployment["state"] == "ErrApplied", deployment
    assert any(obj in line and reason in line for line in deployment["failing"]), deployment
    events = _json("events", "--app", app)
    assert any(
        e["kind"] == "failure" and e["cluster"] == dev and obj in e["message"] for e in events
    ), events

    # The cluster answers: another app on it syncs at once.
    synced = cli("sync", other)
    assert synced.exit_code == 0, synced.output
    assert _cluster_state(dev) == "Online"


def test_an_object_refused_after_others_were_applied_says_the_cluster_changed(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    """Dry runs pass one by one, the quota refuses the second create: part of the
    revision is on the cluster, and the error says so."""
    ns, app = space.namespace, space.app("partial")
    index, dev = dev_cluster(fleet.sandbox)
    kube = fleet.sandbox.kube(index)
    try:
        held = len(kube.list_sync("v1", "ConfigMap", namespace=ns))
        kube.apply_sync(_quota(ns, held + 1))
    finally:
        kube.close()
    objects = [configmap("first", ns, {"k": "v"}), configmap("second", ns, {"k": "v"})]
    folder = write_files(tmp_path / "app", {"appflow.yaml": dev_only(app, ns), "o.yaml": objects})
    added(app, folder)

    result = cli("sync", app)
    said = one_line(result.output)
    assert result.exit_code != 0, said
    assert "exceeded quota" in said, said
    assert "credentials" not in said, said
    assert "the cluster already changed" in said, said
    assert _cluster_state(dev) == "Online"
    [entry] = [a for a in status_json()["apps"] if a["name"] == app]
    assert entry["deployments"][dev]["state"] == "ErrApplied"
