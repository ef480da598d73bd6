"""Building blocks for the engine tests: app folders, the CLI, kubectl, cluster snapshots.

Every test works in its own `Space` (a namespace with a random suffix on every
sandbox cluster, and app names carrying the same suffix), so tests that share
the three clusters never see each other's objects.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result

from appflow.model.objects import INVENTORY_NAMESPACE, Manifest
from appflow.model.records import AppRecord
from appflow.paths import tools_dir
from tests.helpers import Sandbox, run_cli

# Kinds the engine tests create in their namespaces; a snapshot lists them all.
SNAPSHOT_KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
)

# Kinds whose status a controller updates on its own (a new resourceVersion each time): a
# Job's controller writes its status as its pods start and finish, seconds after it is created.
CONTROLLED_KINDS = frozenset({"Deployment", "Job"})

# Objects the controller manager creates in every namespace, some time after the
# namespace itself: a snapshot taken before they appear must still equal one
# taken after, so they are never part of it.
KUBERNETES_CREATED = frozenset({("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")})

Snapshot = dict[str, dict[str, str]]
"""cluster -> 'Kind/name' -> version (see _version), for one namespace (plus the app inventories)."""


@dataclass(frozen=True)
class Space:
    """One test's namespace (present on every sandbox cluster) and its name suffix."""

    namespace: str
    suffix: str

    def app(self, base: str) -> str:
        return f"{base}-{self.suffix}"


def new_suffix() -> str:
    return secrets.token_hex(3)


def cli(*args: str) -> Result:
    """The appflow CLI as a user runs it; wide columns so rich does not wrap messages."""
    return run_cli(*args, env={"COLUMNS": "1000"})


def one_line(text: str) -> str:
    """TEXT with every run of whitespace made one space (for checks across wrapped lines)."""
    return " ".join(text.split())


def kubectl(sandbox: Sandbox, index: int, *args: str) -> str:
    """Run the real kubectl against sandbox cluster INDEX (its writes are Updates, not Applies)."""
    kubeconfig = str(sandbox.clusters[index].kubeconfig)
    done = subprocess.run(
        [str(tools_dir() / "bin" / "kubectl"), "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def synced(app: str, *args: str) -> str:
    """`appflow sync APP ARGS`, which must succeed; its output on one line."""
    result = cli("sync", app, *args)
    assert result.exit_code == 0, result.output
    return one_line(result.stdout)


def added(app: str, folder: Path) -> None:
    """`appflow app add APP --local FOLDER`, which must succeed."""
    result = cli("app", "add", app, "--local", str(folder))
    assert result.exit_code == 0, result.output


def dev_cluster(sandbox: Sandbox) -> tuple[int, str]:
    """The index and name of the sandbox's env=dev cluster."""
    info = sandbox.by_env("dev")
    return sandbox.clusters.index(info), info.name


def dev_only(app: str, ns: str) -> str:
    """An appflow.yaml for APP in namespace NS that targets the env=dev cluster alone."""
    return (
        f"name: {app}\nnamespace: {ns}\n"
        "targets:\n  - name: dev\n    clusterSelector:\n      matchLabels: {env: dev}\n"
    )


# -- app folders ------------------------------------------------------------------


def write_files(folder: Path, files: dict[str, str | list[Manifest] | None]) -> Path:
    """Write FILES into FOLDER: text as is, a list of objects as a multi-document YAML, None deletes."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        if content is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(yaml.safe_dump_all(content, sort_keys=False))
    return folder


def fleet_folder(
    folder: Path,
    fleet_yaml: dict[str, Any],
    files: dict[str, str | list[Manifest] | None] | None = None,
) -> Path:
    """FOLDER with a fleet.yaml of FLEET_YAML and FILES (as write_files takes them)."""
    return write_files(folder, {"fleet.yaml": yaml.safe_dump(fleet_yaml), **(files or {})})


def register_local(fleet: Any, name: str, folder: Path) -> None:
    """Register FOLDER as local app NAME straight in the fleet's store."""
    fleet.store.put_app(AppRecord(name=name, source="local", local_path=str(folder), path=""))


def configmap(
    name: str,
    namespace: str,
    data: dict[str, str],
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> Manifest:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def deployment(
    name: str, namespace: str, *, replicas: int = 1, image: str = "registry.example/web:1.0"
) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def service(name: str, namespace: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


# -- what is on the clusters ------------------------------------------------------


def snapshot(sandbox: Sandbox, space: Space, *, kinds: Iterable[tuple[str, str]] = ()) -> Snapshot:
    """Every object of the snapshot kinds in SPACE's namespace, and every inventory of its apps.

    A sync that must not touch a cluster leaves this exactly as it was: same
    objects, same resourceVersions.
    """
    out: Snapshot = {}
    for index, info in enumerate(sandbox.clusters):
        kube = sandbox.kube(index)
        try:
            seen: dict[str, str] = {}
            for api_version, kind in (*SNAPSHOT_KINDS, *kinds):
                for item in kube.list_sync(api_version, kind, namespace=space.namespace):
                    if not _created_by_kubernetes(item):
                        seen[f"{kind}/{item['metadata']['name']}"] = _version(item)
            for item in kube.list_sync(
                "v1", "ConfigMap", namespace=INVENTORY_NAMESPACE, label_selector="appflow.dev/app"
            ):
                if item["metadata"]["name"].endswith(space.suffix):
                    meta = item["metadata"]
                    seen[f"inventory/{meta['name']}"] = str(meta["resourceVersion"])
            out[info.name] = seen
        finally:
            kube.close()
    return out


def _created_by_kubernetes(item: Manifest) -> bool:
    if (item.get("kind"), item["metadata"]["name"]) in KUBERNETES_CREATED:
        return True
    return item.get("type") == "kubernetes.io/service-account-token"


def _version(item: Manifest) -> str:
    """The resourceVersion, or for a kind its controller keeps writing status to, what
    changes only when someone writes its spec or metadata: generation and field managers."""
    meta = item["metadata"]
    if item.get("kind") not in CONTROLLED_KINDS:
        return str(meta["resourceVersion"])
    writes = sorted(
        f"{e.get('manager')}/{e.get('operation')}@{e.get('time')}"
        for e in meta.get("managedFields") or []
        if e.get("subresource") != "status"
    )
    return f"generation {meta.get('generation')}, {', '.join(writes)}"


def live(sandbox: Sandbox, index: int, api_version: str, kind: str, name: str, ns: str) -> Manifest:
    """The live object, failing the test when it does not exist."""
    kube = sandbox.kube(index)
    try:
        found = kube.get_sync(api_version, kind, name, ns)
    finally:
        kube.close()
    assert found is not None, f"{kind} {ns}/{name} is not on cluster {index}"
    return found


def exists(sandbox: Sandbox, index: int, api_version: str, kind: str, name: str, ns: str) -> bool:
    kube = sandbox.kube(index)
    try:
        found = kube.get_sync(api_version, kind, name, ns)
    finally:
        kube.close()
    # A background delete leaves the object until its finalizers ran.
    return found is not None and not found["metadata"].get("deletionTimestamp")


def status_json() -> dict[str, Any]:
    result = cli("status", "-o", "json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def history_json(app: str) -> list[dict[str, Any]]:
    result = cli("app", "history", app, "-o", "json")
    assert result.exit_code == 0, result.output
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data
