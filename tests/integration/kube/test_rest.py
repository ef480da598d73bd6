"""The thin read client (appflow.kube.rest) against real API servers: what it reads is what
the API server holds (kubectl, an independent client, reads the same), its errors are
appflow's, and a kubeconfig it does not speak falls back to the kubernetes package."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from appflow.errors import (
    ClusterError,
    ClusterUnreachableError,
    ConfigError,
    ConflictError,
    MissingKindError,
)
from appflow.kube.client import Connection, KubeCluster
from appflow.kube.rest import DISCOVERY_TTL
from tests.helpers import Sandbox, built_tool, fresh_namespace

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("appflow_home")]


@contextmanager
def connected(name: str, kubeconfig: Path, *, timeout: float = 10.0) -> Iterator[KubeCluster]:
    kube = KubeCluster(Connection(name=name, kubeconfig=kubeconfig, timeout=timeout))
    try:
        yield kube
    finally:
        kube.close()


def kubectl_json(kubeconfig: Path, *args: str) -> Any:
    done = subprocess.run(
        [str(built_tool("kubectl")), "--kubeconfig", str(kubeconfig), *args, "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def configmap(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"key": name},
    }


def same_object(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    # What the sync's proof of "unchanged" reads: identity, version, managed fields, content.
    for key in ("uid", "resourceVersion", "managedFields", "labels"):
        assert ours["metadata"].get(key) == theirs["metadata"].get(key), key
    assert ours.get("data") == theirs.get("data")
    assert (ours["apiVersion"], ours["kind"]) == (theirs["apiVersion"], theirs["kind"])


def test_reads_are_what_the_api_server_holds(sandbox: Sandbox) -> None:
    kubeconfig = sandbox.clusters[0].kubeconfig
    with connected("reader", kubeconfig) as reader:
        assert reader.reads_directly
        with fresh_namespace(sandbox.kube(0), prefix="rest") as ns:
            writer = sandbox.kube(0)
            try:
                for name, labels in (("a", {"t": "x"}), ("b", {"t": "x"}), ("c", {"t": "y"})):
                    writer.apply_sync(configmap(name, ns, labels))
            finally:
                writer.close()

            listed = reader.list_sync("v1", "ConfigMap", namespace=ns, label_selector="t=x")
            theirs = kubectl_json(
                kubeconfig, "get", "configmaps", "-n", ns, "-l", "t=x", "--show-managed-fields"
            )
            assert sorted(o["metadata"]["name"] for o in listed) == ["a", "b"]
            by_name = {o["metadata"]["name"]: o for o in theirs["items"]}
            for ours in listed:
                same_object(ours, by_name[ours["metadata"]["name"]])

            one = reader.get_sync("v1", "ConfigMap", "c", ns)
            assert one is not None
            same_object(
                one,
                kubectl_json(
                    kubeconfig, "get", "configmap", "c", "-n", ns, "--show-managed-fields"
                ),
            )
            assert reader.get_sync("v1", "ConfigMap", "absent", ns) is None
            assert reader.list_sync("v1", "ConfigMap", namespace=ns, label_selector="t=z") == []
            # Across namespaces: what a sync lists by the app's label.
            everywhere = reader.list_sync("v1", "ConfigMap", label_selector="t=y")
            assert ("c", ns) in {
                (o["metadata"]["name"], o["metadata"]["namespace"]) for o in everywhere
            }


def test_discovery_and_capabilities(sandbox: Sandbox) -> None:
    kubeconfig = sandbox.clusters[0].kubeconfig
    with connected("reader", kubeconfig) as kube:
        deployments = kube.info_sync("apps/v1", "Deployment")
        assert (deployments.plural, deployments.namespaced) == ("deployments", True)
        namespaces = kube.info_sync("v1", "Namespace")
        assert (namespaces.plural, namespaces.namespaced) == ("namespaces", False)
        with pytest.raises(MissingKindError, match=r"does not serve Widget in example\.com/v1"):
            kube.info_sync("example.com/v1", "Widget")
        with pytest.raises(MissingKindError, match="does not serve Gadget in apps/v1"):
            kube.info_sync("apps/v1", "Gadget")
        capabilities = kube.capabilities_sync()
        server = kubectl_json(kubeconfig, "version")["serverVersion"]["gitVersion"]
        assert capabilities.kube_version == server
        assert {"v1", "apps/v1", "batch/v1"} <= set(capabilities.api_versions)
        served = subprocess.run(
            [str(built_tool("kubectl")), "--kubeconfig", str(kubeconfig), "api-versions"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert set(served) == set(capabilities.api_versions)


def _kubeconfig(
    sandbox: Sandbox, tmp_path: Path, *, user: dict[str, Any], server: str | None = None
) -> Path:
    config = yaml.safe_load(sandbox.clusters[0].kubeconfig.read_text())
    if server is not None:
        config["clusters"][0]["cluster"]["server"] = server
    config["users"][0]["user"] = user
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_refused_credentials_are_an_error_naming_the_cluster(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path = _kubeconfig(sandbox, tmp_path, user={"token": "not-a-token"})
    with connected("refused", path) as kube:
        assert kube.reads_directly
        with pytest.raises(
            ClusterError, match=r"refused appflow's credentials \(HTTP 401\)"
        ) as err:
            kube.list_sync("v1", "ConfigMap", namespace="default")
        assert err.value.where.cluster == "refused"


def test_a_silent_address_is_unreachable(sandbox: Sandbox, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    config = yaml.safe_load(sandbox.clusters[0].kubeconfig.read_text())
    path = _kubeconfig(
        sandbox, tmp_path, user=config["users"][0]["user"], server=f"https://127.0.0.1:{port}"
    )
    with connected("gone", path, timeout=5) as kube:
        with pytest.raises(ClusterUnreachableError, match="did not answer") as err:
            kube.list_sync("v1", "ConfigMap", namespace="default")
        assert err.value.where.cluster == "gone"


def test_an_exec_plugin_kubeconfig_reads_through_the_kubernetes_package(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # An exec credential plugin is what only the kubernetes package speaks: the reads
    # still work, through it.
    user = yaml.safe_load(sandbox.clusters[0].kubeconfig.read_text())["users"][0]["user"]
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {
            "clientCertificateData": base64.b64decode(user["client-certificate-data"]).decode(),
            "clientKeyData": base64.b64decode(user["client-key-data"]).decode(),
        },
    }
    (tmp_path / "credential.json").write_text(json.dumps(credential))
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(f"#!/bin/sh\ncat {tmp_path / 'credential.json'}\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "interactiveMode": "Never",
        }
    }
    with connected("plugin", _kubeconfig(sandbox, tmp_path, user=exec_user)) as kube:
        assert not kube.reads_directly
        listed = kube.list_sync("v1", "Namespace")
        assert "default" in {o["metadata"]["name"] for o in listed}
        assert kube.info_sync("apps/v1", "Deployment").plural == "deployments"


def test_server_side_apply_dry_run_apply_and_conflict(sandbox: Sandbox) -> None:
    kubeconfig = sandbox.clusters[0].kubeconfig
    with connected("writer", kubeconfig) as kube:
        assert kube.reads_directly
        with fresh_namespace(sandbox.kube(0), prefix="rest") as ns:
            wanted = configmap("applied", ns, {"t": "x"})
            dry = kube.apply_sync(wanted, dry_run=True)
            assert dry["data"] == {"key": "applied"}
            # A dry run writes nothing.
            assert kube.get_sync("v1", "ConfigMap", "applied", ns) is None

            applied = kube.apply_sync(wanted)
            theirs = kubectl_json(
                kubeconfig, "get", "configmap", "applied", "-n", ns, "--show-managed-fields"
            )
            same_object(applied, theirs)
            assert [m["manager"] for m in theirs["metadata"]["managedFields"]] == ["appflow"]

            # Another field manager owns a field now: applying other content conflicts,
            # --force-conflicts takes it over.
            other = {**wanted, "data": {"key": "theirs"}}
            kube.apply_sync(other, field_manager="someone-else", force=True)
            with pytest.raises(ConflictError, match="someone-else") as err:
                kube.apply_sync(wanted)
            assert err.value.where.cluster == "writer"
            assert kube.apply_sync(wanted, force=True)["data"] == {"key": "applied"}

            with pytest.raises(ConfigError, match="namespaced object without a namespace"):
                kube.apply_sync({**wanted, "metadata": {"name": "nowhere"}})


def test_create_dry_run_create_named_by_the_server_and_exists(sandbox: Sandbox) -> None:
    kubeconfig = sandbox.clusters[0].kubeconfig
    with connected("creator", kubeconfig) as kube:
        assert kube.reads_directly
        with fresh_namespace(sandbox.kube(0), prefix="rest") as ns:
            wanted = configmap("created", ns, {"t": "x"})
            dry = kube.create_sync(wanted, dry_run=True)
            assert dry is not None
            assert dry["data"] == {"key": "created"}
            assert kube.get_sync("v1", "ConfigMap", "created", ns) is None

            created = kube.create_sync(wanted)
            assert created is not None
            theirs = kubectl_json(
                kubeconfig, "get", "configmap", "created", "-n", ns, "--show-managed-fields"
            )
            same_object(created, theirs)
            assert [m["manager"] for m in theirs["metadata"]["managedFields"]] == ["appflow"]
            # One of that name exists: None, and the stored object is untouched.
            assert kube.create_sync({**wanted, "data": {"key": "other"}}) is None
            assert kube.get_sync("v1", "ConfigMap", "created", ns)["data"] == {"key": "created"}

            # A hook's run: the API server picks the name.
            hook = configmap("", ns, {"t": "hook"})
            hook["metadata"] = {"generateName": "hook-", "namespace": ns}
            named = kube.create_sync(hook)
            assert named is not None
            assert named["metadata"]["name"].startswith("hook-")
            assert kube.get_sync("v1", "ConfigMap", named["metadata"]["name"], ns) is not None


def test_discovery_is_kept_for_the_next_process_and_read_again_when_old_or_lacking(
    sandbox: Sandbox,
) -> None:
    kubeconfig = sandbox.clusters[0].kubeconfig
    with connected("kept", kubeconfig) as kube:
        assert kube.info_sync("v1", "ConfigMap").plural == "configmaps"
        (kept,) = (Path(os.environ["APPFLOW_CACHE_DIR"]) / "kube").glob("rest-discovery-*.json")
    saved = json.loads(kept.read_text())
    assert saved["v1"]["kinds"]["ConfigMap"] == ["configmaps", True]

    # A kind only the file knows shows that the next client answers from it ...
    del saved["v1"]["kinds"]["Secret"]
    saved["v1"]["kinds"]["Imaginary"] = ["imaginaries", True]
    kept.write_text(json.dumps(saved))
    with connected("kept", kubeconfig) as kube:
        assert kube.info_sync("v1", "Imaginary").plural == "imaginaries"
        # ... and a kind it lacks is read from the server (a CRD may be new).
        assert kube.info_sync("v1", "Secret").plural == "secrets"
    # Once the entry is older than its time to live, the server's answer replaces it.
    saved = json.loads(kept.read_text())
    saved["v1"]["kinds"]["Imaginary"] = ["imaginaries", True]
    saved["v1"]["at"] -= DISCOVERY_TTL + 1
    kept.write_text(json.dumps(saved))
    with (
        connected("kept", kubeconfig) as kube,
        pytest.raises(MissingKindError, match="does not serve Imaginary in v1"),
    ):
        kube.info_sync("v1", "Imaginary")
