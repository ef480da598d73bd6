"""Helpers shared by tests: the Sandbox handle and polling for eventual state."""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from click.testing import CliRunner, Result

from appflow import sandbox as sb
from appflow.errors import AppflowError
from appflow.hub.crds import crd_manifests
from appflow.kube.client import Connection, KubeCluster
from appflow.model.objects import Manifest
from appflow.store import Store


@dataclass(frozen=True)
class Sandbox:
    root: Path
    clusters: tuple[sb.SandboxInfo, ...]

    def kube(self, index: int = 0) -> KubeCluster:
        info = self.clusters[index]
        return KubeCluster(Connection(name=info.name, kubeconfig=info.kubeconfig))

    def by_env(self, env: str) -> sb.SandboxInfo:
        return next(c for c in self.clusters if c.labels.get("env") == env)


@contextmanager
def fresh_namespace(kube: KubeCluster, *, prefix: str) -> Iterator[str]:
    """A namespace PREFIX-<random> on KUBE, deleted (and KUBE closed) when the block ends."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    kube.apply_sync({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        kube.delete_sync("v1", "Namespace", name)
        kube.close()


def register_clusters(store: Store, clusters: Iterable[sb.SandboxInfo]) -> None:
    """Register sandbox CLUSTERS in STORE as imported clusters, with their labels."""
    from appflow.engine.clusters import add_cluster

    for info in clusters:
        asyncio.run(
            add_cluster(
                store,
                name=info.name,
                kind="imported",
                kubeconfig=info.kubeconfig,
                labels=dict(info.labels),
            )
        )


def eventually(check: Callable[[], bool], *, timeout: float = 60.0, what: str) -> None:
    """Poll CHECK until it holds; fail the test naming WHAT after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def apply_hub_crds(kube: KubeCluster) -> None:
    """Apply appflow's CRDs (as generated now) and wait until each is Established and its
    objects can be listed: a CRD (re)created a moment ago answers 429 "storage is
    (re)initializing" for a while after it is Established."""

    def served(crd: Manifest) -> bool:
        found = kube.get_sync(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"]
        )
        conditions = ((found or {}).get("status") or {}).get("conditions") or []
        if not any(
            c.get("type") == "Established" and c.get("status") == "True" for c in conditions
        ):
            return False
        kube.invalidate_discovery()
        group, version = crd["spec"]["group"], crd["spec"]["versions"][0]["name"]
        try:
            kube.list_sync(f"{group}/{version}", crd["spec"]["names"]["kind"], namespace="default")
        except AppflowError:
            return False
        return True

    for crd in crd_manifests():
        kube.apply_sync(crd, force=True)
    for crd in crd_manifests():
        eventually(
            functools.partial(served, crd),
            timeout=60,
            what=f"{crd['metadata']['name']} established and served",
        )


def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the appflow CLI in-process, as a user would type ARGS."""
    from appflow.cli.main import cli

    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose prerequisite is missing on this machine; fail under CI.

    `.ci/run` installs and builds every prerequisite, so in CI a missing one is
    a broken setup, and skipping would hide the test it guards.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI provides every prerequisite, so this is a failure)")
    pytest.skip(reason)


def built_tool(name: str, *, how: str = "make tools") -> Path:
    """The path of tool NAME, or unavailable() saying how to build it."""
    from appflow.errors import ToolMissingError
    from appflow.tools import find_tool

    try:
        return find_tool(name)
    except ToolMissingError:
        unavailable(f"the '{name}' binary is not built; build it with: {how}")


CHROMIUM = os.environ.get("APPFLOW_CHROMIUM", "/usr/bin/chromium")
"""Debian's Chromium: the browser tests and bench/ui.py drive it; nothing downloads one."""
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def widget_crd(group: str) -> dict[str, object]:
    """A namespaced CRD of kind Widget in GROUP that keeps any field."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def write_held_app(
    folder: Path, *, app: str, ns: str, node_label: str | None, **definition: Any
) -> None:
    """An app whose Deployment runs only on nodes labelled NODE_LABEL (anywhere when None):
    it stays NotReady on a cluster until the test labels that cluster's nodes."""
    folder.mkdir(parents=True)
    (folder / "appflow.yaml").write_text(
        yaml.safe_dump({"name": app, "namespace": ns, **definition})
    )
    (folder / "web.yaml").write_text(
        yaml.safe_dump_all(
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": ns},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {
                            "metadata": {"labels": {"app": "web"}},
                            "spec": {
                                "nodeSelector": {node_label: "yes"} if node_label else {},
                                "containers": [{"name": "web", "image": "nginx:1.27"}],
                            },
                        },
                    },
                },
            ]
        )
    )


def label_nodes(kube: KubeCluster, label: str, value: str | None = "yes") -> None:
    """Label every node of KUBE's cluster LABEL=VALUE (a held app's pods get a node there);
    a VALUE of None takes the label off again."""
    for node in kube.list_sync("v1", "Node"):
        name = str(node["metadata"]["name"])
        kube.patch_sync("v1", "Node", name, "", {"metadata": {"labels": {label: value}}})
