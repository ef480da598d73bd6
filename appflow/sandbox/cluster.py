"""One sandbox cluster: a real Kubernetes control plane on 127.0.0.1.

Processes, in start order: etcd (own data folder), kube-apiserver,
kube-controller-manager, kube-scheduler, and kwok, which plays the kubelets of a
few simulated nodes so that pods get scheduled, run and report Ready without
containers. A K3s-like cluster (the default) also has what K3s adds: kwok plays
ServiceLB and Traefik too (see k3s.py). Everything a cluster owns lives in its folder:

    <sandbox dir>/<name>/state.json        name, labels, ports, pids, k3s_like
                         kubeconfig        admin credentials (0600)
                         k3s-stages.yaml   kwok's ServiceLB and Traefik stages (K3s-like only)
                         pod-stages.yaml   kwok's stage that ends pods run to completion (pods.py)
                         pki/              CA, serving and client certificates
                         etcd/             etcd data
                         logs/             one log per process
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from appflow.errors import SandboxError, Where
from appflow.paths import tools_dir
from appflow.sandbox import k3s, pods, processes
from appflow.sandbox.pki import ClusterPki, create_pki
from appflow.tools import find_tool

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
PORT_NAMES = ("etcd", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kwok")
NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CIDR = "10.96.0.0/16"

Progress = Callable[[str], None]


@dataclass
class ClusterState:
    """What state.json records about one sandbox cluster."""

    name: str
    labels: dict[str, str]
    nodes: int = 3
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    created_at: str = ""
    # Whether the cluster gives what K3s gives (ServiceLB, Traefik's default IngressClass).
    k3s_like: bool = True

    @classmethod
    def load(cls, path: Path) -> ClusterState:
        data = json.loads(path.read_text())
        return cls(
            name=str(data["name"]),
            labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
            nodes=int(data.get("nodes", 3)),
            ports={str(k): int(v) for k, v in data.get("ports", {}).items()},
            pids={str(k): int(v) for k, v in data.get("pids", {}).items()},
            created_at=str(data.get("created_at", "")),
            # Clusters recorded before the setting existed get the default.
            k3s_like=bool(data.get("k3s_like", True)),
        )

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        os.replace(tmp, path)


@dataclass(frozen=True)
class SandboxCluster:
    """A sandbox cluster's folder and the files in it."""

    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    @property
    def k3s_stages(self) -> Path:
        return self.folder / "k3s-stages.yaml"

    @property
    def pod_stages(self) -> Path:
        return self.folder / "pod-stages.yaml"

    @property
    def pki(self) -> ClusterPki:
        return ClusterPki(self.folder / "pki")

    def log_file(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def state(self) -> ClusterState:
        try:
            return ClusterState.load(self.state_file)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SandboxError(
                f"state file is unreadable: {err}",
                where=Where(cluster=self.name, file=str(self.state_file)),
                hint="run 'appflow sandbox down' to clean up what is left",
            ) from err

    def running(self) -> list[processes.RunningProcess]:
        """Live processes of this cluster, found by their command lines."""
        return processes.find_processes(str(self.folder) + os.sep)

    def server_url(self, state: ClusterState) -> str:
        return f"https://127.0.0.1:{state.ports['apiserver']}"


def _kubeconfig_document(cluster: SandboxCluster, state: ClusterState) -> dict[str, Any]:
    import base64

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    pki = cluster.pki
    user = f"{cluster.name}-admin"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster.name,
                "cluster": {
                    "server": cluster.server_url(state),
                    "certificate-authority-data": b64(pki.ca_cert),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(pki.admin_cert),
                    "client-key-data": b64(pki.admin_key),
                },
            }
        ],
        "contexts": [{"name": cluster.name, "context": {"cluster": cluster.name, "user": user}}],
        "current-context": cluster.name,
    }


def write_kubeconfig(cluster: SandboxCluster, state: ClusterState) -> None:
    tmp = cluster.kubeconfig.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(_kubeconfig_document(cluster, state), sort_keys=False))
    os.chmod(tmp, 0o600)
    os.replace(tmp, cluster.kubeconfig)


def _argv(component: str, cluster: SandboxCluster, state: ClusterState) -> list[str]:
    folder, pki, ports = cluster.folder, cluster.pki, state.ports
    binary = str(find_tool(component))
    kubeconfig = str(cluster.kubeconfig)
    if component == "etcd":
        client = f"http://127.0.0.1:{ports['etcd']}"
        peer = f"http://127.0.0.1:{ports['etcd_peer']}"
        return [
            binary,
            f"--name={cluster.name}",
            f"--data-dir={folder / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={cluster.name}={peer}",
            # A laptop sandbox trades durability on power loss for speed.
            "--unsafe-no-fsync",
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ]
    if component == "kube-apiserver":
        return [
            binary,
            f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            f"--cert-dir={folder / 'pki'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            # Pods of simulated nodes need no service-account token, and the
            # admission plugin would reject pods in a namespace whose default
            # ServiceAccount the controller manager has not created yet.
            "--disable-admission-plugins=ServiceAccount",
            # The kubernetes Service cannot point at a loopback address; nothing
            # in the sandbox needs its endpoints.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=1",
        ]
    if component == "kube-controller-manager":
        return [
            binary,
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['controller_manager']}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*,-nodeipam",
            # The defaults (20 QPS) make bulk rollouts wait on the controller
            # manager's own rate limiter rather than on the API server.
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--profiling=false",
            "--v=1",
        ]
    if component == "kube-scheduler":
        return [
            binary,
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['scheduler']}",
            "--leader-elect=false",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--profiling=false",
            "--v=1",
        ]
    if component == "kwok":
        return [
            binary,
            f"--kubeconfig={kubeconfig}",
            *_kwok_configs(cluster, state),
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
            "--cidr=10.244.0.1/16",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{ports['kwok']}",
            # INFO logs every node lease renewal; keep the log for what matters.
            "--v=WARN",
        ]
    raise ValueError(component)


def _kwok_configs(cluster: SandboxCluster, state: ClusterState) -> list[str]:
    configs = [kwok_stages(), cluster.pod_stages]
    configs += [cluster.k3s_stages] if state.k3s_like else []
    return [f"--config={path}" for path in configs]


def kwok_stages() -> Path:
    path = tools_dir() / "share" / "kwok" / "stages.yaml"
    if not path.is_file():
        raise SandboxError(
            f"kwok's node and pod stages are missing ({path})",
            hint="build them with: make tools   (or: bash tools/build-tools.sh kwok)",
        )
    return path


class ApiClient:
    """A minimal HTTPS client for bootstrapping, with the cluster's admin certificate.

    The sandbox needs only a handful of calls (readyz, create nodes, list
    nodes, the default IngressClass); the kubernetes client library is reserved
    to appflow.kube.
    """

    def __init__(self, cluster: SandboxCluster, state: ClusterState) -> None:
        pki = cluster.pki
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._client = httpx.Client(base_url=cluster.server_url(state), verify=context, timeout=5.0)

    def close(self) -> None:
        self._client.close()

    def get(self, path: str) -> httpx.Response:
        return self._client.get(path)

    def post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        return self._client.post(path, json=body)

    def delete(self, path: str) -> httpx.Response:
        return self._client.delete(path)


def _node(cluster: str, index: int, labels: Mapping[str, str]) -> dict[str, Any]:
    """The INDEX-th (1-based) simulated node; kwok keeps the status given here and adds the rest."""
    name = f"{cluster}-node-{index}"
    node_labels = {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name,
        "type": "kwok",
    }
    if index == 1:
        node_labels["node-role.kubernetes.io/control-plane"] = "true"
        node_labels["node-role.kubernetes.io/master"] = "true"
    if "region" in labels:
        node_labels["topology.kubernetes.io/region"] = labels["region"]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels, "annotations": {NODE_ANNOTATION: "fake"}},
        "status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            # One address per node, as on a real multi-node site; it is what ServiceLB
            # publishes for LoadBalancer Services (see k3s.py).
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.0.{index}"},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class _StartFailed(Exception):
    def __init__(self, component: str, port_busy: bool, detail: str) -> None:
        super().__init__(detail)
        self.component = component
        self.port_busy = port_busy


def _check_alive(cluster: SandboxCluster, state: ClusterState) -> None:
    for component, pid in state.pids.items():
        if not processes.alive(pid):
            log = cluster.log_file(component)
            tail = _log_tail(log)
            busy = "address already in use" in tail
            raise _StartFailed(component, busy, f"{component} exited; last lines of {log}:\n{tail}")


def _wait(
    what: str,
    check: Callable[[], bool],
    *,
    cluster: SandboxCluster,
    state: ClusterState,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        _check_alive(cluster, state)
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SandboxError(
                f"timed out after {timeout:.0f}s waiting for {what}",
                where=Where(cluster=cluster.name),
                hint=f"see the logs in {cluster.logs}",
            )
        time.sleep(0.25)


def _launch(cluster: SandboxCluster, state: ClusterState, component: str) -> None:
    state.pids[component] = processes.start_detached(
        _argv(component, cluster, state), log_file=cluster.log_file(component)
    )
    state.save(cluster.state_file)


def _etcd_healthy(state: ClusterState) -> bool:
    response = httpx.get(f"http://127.0.0.1:{state.ports['etcd']}/health", timeout=2.0)
    return response.status_code == 200 and '"true"' in response.text


def _require(response: httpx.Response, what: str, *, cluster: SandboxCluster) -> httpx.Response:
    if response.status_code >= 300:
        raise SandboxError(
            f"{what} failed: HTTP {response.status_code} {response.text[:300]}",
            where=Where(cluster=cluster.name),
            hint=f"see the logs in {cluster.logs}",
        )
    return response


def _create_nodes(api: ApiClient, cluster: SandboxCluster, state: ClusterState) -> None:
    for index in range(1, state.nodes + 1):
        response = api.post("/api/v1/nodes", _node(cluster.name, index, state.labels))
        if response.status_code != 409:  # a restarted cluster keeps its nodes
            _require(response, f"creating node {index}", cluster=cluster)


def _set_up_k3s(api: ApiClient, cluster: SandboxCluster, state: ClusterState) -> None:
    """Give the cluster what K3s gives, or take it away, as STATE says (before kwok starts)."""
    path = f"{k3s.INGRESS_CLASSES_PATH}/{k3s.INGRESS_CLASS}"
    if not state.k3s_like:
        cluster.k3s_stages.unlink(missing_ok=True)
        live = api.get(path)
        # Only the class the sandbox made goes; one a user made stays.
        if live.status_code == 200 and k3s.is_sandbox_ingress_class(live.json()):
            _require(api.delete(path), "removing the IngressClass traefik", cluster=cluster)
        return
    nodes = _require(api.get("/api/v1/nodes"), "listing nodes", cluster=cluster).json()
    addresses = k3s.node_addresses(nodes.get("items", []))
    if not addresses:
        raise SandboxError(
            "its nodes have no InternalIP or ExternalIP for ServiceLB to publish",
            where=Where(cluster=cluster.name),
            hint=f"recreate it: appflow sandbox down {cluster.name}, then appflow sandbox up",
        )
    k3s.write_stages(cluster.k3s_stages, addresses)
    response = api.post(k3s.INGRESS_CLASSES_PATH, k3s.ingress_class())
    if response.status_code != 409:
        _require(response, "creating the IngressClass traefik", cluster=cluster)


def _wait_api_ready(
    api: ApiClient, cluster: SandboxCluster, state: ClusterState, *, timeout: float
) -> None:
    _wait(
        "kube-apiserver /readyz",
        lambda: api.get("/readyz").status_code == 200,
        cluster=cluster,
        state=state,
        timeout=timeout,
    )


def _boot(
    cluster: SandboxCluster, state: ClusterState, *, timeout: float, progress: Progress
) -> None:
    _launch(cluster, state, "etcd")
    _wait("etcd", lambda: _etcd_healthy(state), cluster=cluster, state=state, timeout=timeout)
    _launch(cluster, state, "kube-apiserver")
    api = ApiClient(cluster, state)
    try:
        _wait_api_ready(api, cluster, state, timeout=timeout)
        progress(f"{cluster.name}: API server ready at {cluster.server_url(state)}")
        # Nodes first: kwok's K3s stages carry their addresses.
        _create_nodes(api, cluster, state)
        _set_up_k3s(api, cluster, state)
        pods.write_stages(cluster.pod_stages)
        for component in ("kube-controller-manager", "kube-scheduler", "kwok"):
            _launch(cluster, state, component)

        def nodes_ready() -> bool:
            items = api.get("/api/v1/nodes").json().get("items", [])
            ready = [
                n
                for n in items
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
            ]
            return len(ready) >= state.nodes

        _wait("kwok nodes to be Ready", nodes_ready, cluster=cluster, state=state, timeout=timeout)
        # The default ServiceAccount is made by the controller manager: its
        # presence proves the controllers run.
        _wait(
            "the controller manager (default ServiceAccount)",
            lambda: (
                api.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200
            ),
            cluster=cluster,
            state=state,
            timeout=timeout,
        )
    finally:
        api.close()


def kwok_configured(cluster: SandboxCluster, state: ClusterState) -> bool:
    """Whether CLUSTER's running kwok plays what STATE asks for (K3s-like or not).

    kwok reads its stages only when it starts, so its command line says what it plays.
    """
    wanted = set(_kwok_configs(cluster, state))
    return any(
        p.name == "kwok" and {a for a in p.argv if a.startswith("--config=")} == wanted
        for p in cluster.running()
    )


def reconfigure_kwok(cluster: SandboxCluster, state: ClusterState, *, timeout: float) -> None:
    """Make running CLUSTER K3s-like or not, as STATE says, by restarting kwok alone.

    The control plane and its data stay; simulated pods keep their status while
    kwok is away for the second it takes.
    """
    api = ApiClient(cluster, state)
    try:
        _set_up_k3s(api, cluster, state)
    finally:
        api.close()
    pods.write_stages(cluster.pod_stages)
    processes.stop_processes([p.pid for p in cluster.running() if p.name == "kwok"])
    _launch(cluster, state, "kwok")
    _wait(
        "kwok to serve",
        lambda: httpx.get(f"http://127.0.0.1:{state.ports['kwok']}/healthz").status_code == 200,
        cluster=cluster,
        state=state,
        timeout=timeout,
    )


@contextlib.contextmanager
def locked(cluster: SandboxCluster) -> Iterator[None]:
    """Hold CLUSTER's lock: two `sandbox up` at once must not both restart its processes."""
    with open(cluster.folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start_cluster(
    cluster: SandboxCluster,
    state: ClusterState,
    *,
    timeout: float = 180.0,
    attempts: int = 3,
    progress: Progress = lambda _: None,
) -> ClusterState:
    """Start every process of CLUSTER and wait until it serves and its nodes are Ready.

    Ports recorded in STATE are reused when free (kubeconfigs stay valid across
    a stop and start); busy ones are replaced, and a start that loses a race
    for a port is retried on new ports.
    """
    for component in COMPONENTS:
        find_tool(component)  # fail before starting anything when a binary is missing
    kwok_stages()
    cluster.folder.mkdir(parents=True, exist_ok=True)
    create_pki(cluster.folder / "pki", cluster=cluster.name)
    for attempt in range(1, attempts + 1):
        missing = [p for p in PORT_NAMES if p not in state.ports]
        busy = [
            p for p in PORT_NAMES if p in state.ports and not processes.port_is_free(state.ports[p])
        ]
        if missing or busy:
            fresh = processes.free_ports(len(missing) + len(busy), avoid=set(state.ports.values()))
            for port_name, port in zip(missing + busy, fresh, strict=True):
                state.ports[port_name] = port
        state.pids = {}
        write_kubeconfig(cluster, state)
        state.save(cluster.state_file)
        try:
            _boot(cluster, state, timeout=timeout, progress=progress)
            return state
        except _StartFailed as err:
            stop_cluster(cluster)
            if err.port_busy and attempt < attempts:
                progress(f"{cluster.name}: {err.component} lost a port race, retrying on new ports")
                state.ports = {}
                continue
            raise SandboxError(str(err), where=Where(cluster=cluster.name)) from err
        except BaseException:
            stop_cluster(cluster)
            raise
    raise AssertionError("unreachable")


def heal_cluster(
    cluster: SandboxCluster,
    state: ClusterState,
    *,
    timeout: float = 180.0,
    progress: Progress = lambda _: None,
) -> bool:
    """Start again the components of a Degraded CLUSTER that are not running, and only those.

    A killed API server (or controller, or kwok) comes back on its own ports with the
    cluster's data and the other processes untouched, in a second or two instead of a
    whole restart. Only when etcd still runs and every missing component's port is free;
    False otherwise (the caller restarts the whole cluster).
    """
    running = {p.name: p.pid for p in cluster.running()}
    missing = [c for c in COMPONENTS if c not in running]
    if "etcd" in missing or not missing:
        return False
    owned = {"kube-apiserver": "apiserver", "kube-controller-manager": "controller_manager"}
    owned |= {"kube-scheduler": "scheduler", "kwok": "kwok"}
    ports = [state.ports[owned[c]] for c in missing]
    # A process killed a moment ago may still hold its port while the kernel tears it down.
    deadline = time.monotonic() + 10
    while not all(processes.port_is_free(port) for port in ports):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    state.pids = dict(running)
    for component in missing:
        progress(f"{cluster.name}: {component} is not running, starting it again")
        _launch(cluster, state, component)
    if "kube-apiserver" in missing:
        api = ApiClient(cluster, state)
        try:
            _wait_api_ready(api, cluster, state, timeout=timeout)
        finally:
            api.close()
    return True


def stop_cluster(cluster: SandboxCluster, *, grace: float = 10.0) -> list[processes.RunningProcess]:
    """Stop every process of CLUSTER, newest component first. Returns survivors."""
    found = cluster.running()
    rank = {name: i for i, name in enumerate(COMPONENTS)}
    found.sort(key=lambda p: -rank.get(p.name, len(COMPONENTS)))
    # Stop the clients of the API server before the API server, and etcd last,
    # so no component logs a storm of connection errors on the way down.
    survivors: list[int] = []
    for group in (
        [p for p in found if p.name not in ("kube-apiserver", "etcd")],
        [p for p in found if p.name == "kube-apiserver"],
        [p for p in found if p.name == "etcd"],
    ):
        survivors += processes.stop_processes([p.pid for p in group], grace=grace)
    with contextlib.suppress(OSError, SandboxError):
        state = cluster.state()
        state.pids = {}
        state.save(cluster.state_file)
    return [p for p in found if p.pid in survivors]


def new_state(
    name: str, labels: Mapping[str, str], *, nodes: int, k3s_like: bool = True
) -> ClusterState:
    return ClusterState(
        name=name,
        labels=dict(labels),
        nodes=nodes,
        k3s_like=k3s_like,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
