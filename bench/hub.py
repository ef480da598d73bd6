"""Hub mode at scale: 100 AppFlows x N pull-mode clusters, 1 and then 3 controller replicas.

    .venv/bin/python -m bench.hub [--apps 100] [--clusters 50,100,200] [--replicas 1,3]
                                  [--json FILE] [--keep DIR]

The run starts its own one-cluster sandbox playing the hub (in a temporary folder, torn down
at the end unless --keep), applies appflow's CRDs, and for each (clusters, replicas) point:

1. a fresh workspace with N Clusters in pull mode (no agents: what is measured is the hub's
   side, the desired state each agent would pull), labelled env=dev|test|prod and
   region=eu|us|ap in turn, as registration leaves them;
2. the replicas, ``appflow controller`` processes, each with its own data and cache folder,
   started and idle;
3. a Git repository (served over file://) with one Helm chart and APPS app folders whose
   appflow.yaml has a targetCustomization per environment and a value templated from a
   cluster label (``${ .ClusterLabels.env }``), registered with ``appflow repo add`` (the
   GitRepo and the AppFlows): the clock starts;
4. the clock stops when every AppFlowDeployment (APPS x N) holds its staged desired state,
   counted from a watch of the AppFlowDeployments.

Measured: that time; the hub API server's CPU seconds (utime + stime of kube-apiserver from
/proc) and its peak resident memory (sampled every 0.5 s), the same for etcd; the growth of
etcd's database file and the logical bytes of what was written (the JSON of every
AppFlowDeployment and AppFlowContent of the workspace), per AppFlowDeployment; renders
performed (the render cache entries the replicas wrote: a render is cached once per key,
so this counts every render run); each replica's share of the apps (from its log). Then a
linear fit of time and bytes over the cluster counts, extrapolated to 10,000 clusters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENVS = ("dev", "test", "prod")
REGIONS = ("eu", "us", "ap")
TARGET_SECONDS = 60.0
ROOT = Path(__file__).resolve().parents[1]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the repository ------------------------------------------------------------------------

CHART = {
    "Chart.yaml": {"apiVersion": "v2", "name": "edge-app", "version": "1.0.0"},
    "values.yaml": {"replicas": 1, "env": "none", "image": "nginx:1.27", "logLevel": "info"},
}
TEMPLATES = {
    "deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {app: {{ .Release.Name }}, env: {{ .Values.env }}}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers:
        - name: app
          image: {{ .Values.image }}
          env: [{name: LOG_LEVEL, value: {{ .Values.logLevel | quote }}}]
""",
    "service.yaml": """apiVersion: v1
kind: Service
metadata: {name: {{ .Release.Name }}}
spec:
  selector: {app: {{ .Release.Name }}}
  ports: [{port: 80, targetPort: 8080}]
""",
    "configmap.yaml": """apiVersion: v1
kind: ConfigMap
metadata: {name: {{ .Release.Name }}-settings}
data:
  env: {{ .Values.env | quote }}
  logLevel: {{ .Values.logLevel | quote }}
""",
}


def write_repository(folder: Path, apps: int) -> str:
    """A git repository with the chart and APPS app folders; its file:// URL."""
    chart = folder / "chart"
    (chart / "templates").mkdir(parents=True)
    for name, data in CHART.items():
        (chart / name).write_text(yaml.safe_dump(data))
    for name, text in TEMPLATES.items():
        (chart / "templates" / name).write_text(text)
    for i in range(apps):
        name = f"app-{i:03d}"
        app = folder / "apps" / name
        app.mkdir(parents=True)
        definition = {
            "name": name,
            "namespace": name,
            "helm": {"chart": "../../chart", "values": {"env": "${ .ClusterLabels.env }"}},
            "targetCustomizations": [
                {
                    "name": env,
                    "clusterSelector": {"matchLabels": {"env": env}},
                    "helm": {"values": {"replicas": n, "logLevel": level}},
                }
                for env, n, level in (("prod", 3, "warn"), ("test", 2, "info"), ("dev", 1, "debug"))
            ],
        }
        (app / "appflow.yaml").write_text(yaml.safe_dump(definition, sort_keys=False))
    git = ["git", "-C", str(folder), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "apps"], check=True)
    return f"file://{folder}"


# -- the hub ----------------------------------------------------------------------------------


@dataclass
class Hub:
    root: Path
    kubeconfig: Path
    apiserver: int
    etcd: int
    etcd_db: Path


@contextmanager
def hub_sandbox(keep: Path | None) -> Iterator[Hub]:
    from appflow import sandbox as sb
    from appflow.hub.crds import crd_manifests
    from appflow.kube.client import Connection, KubeCluster

    root = keep or Path(tempfile.mkdtemp(prefix="bench-hub-"))
    try:
        (info,) = sb.up(clusters=1, prefix="benchhub", root=root, timeout=300)
        kube = KubeCluster(Connection(name="hub", kubeconfig=info.kubeconfig))
        for crd in crd_manifests():
            kube.apply_sync(crd, force=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                kube.invalidate_discovery()
                kube.resource_sync("appflow.dev/v1alpha1", "AppFlowDeployment")
                break
            except Exception:
                time.sleep(0.5)
        kube.close()
        db = next((root / info.name).rglob("member/snap/db"))
        yield Hub(
            root=root,
            kubeconfig=info.kubeconfig,
            apiserver=info.processes["kube-apiserver"],
            etcd=info.processes["etcd"],
            etcd_db=db,
        )
    finally:
        if keep is None:
            sb.down(root=root)
            shutil.rmtree(root, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Peak:
    pids: dict[str, int]
    peak: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak.get(name, 0), rss_bytes(pid))
            self.stop.wait(0.5)


# -- one point ---------------------------------------------------------------------------------


@dataclass
class Point:
    apps: int
    clusters: int
    replicas: int
    seconds: float = 0.0
    deployments: int = 0
    apiserver_cpu: float = 0.0
    apiserver_peak_rss: int = 0
    etcd_cpu: float = 0.0
    etcd_peak_rss: int = 0
    etcd_db_growth: int = 0
    logical_bytes_deployments: int = 0
    logical_bytes_content: int = 0
    content_objects: int = 0
    renders: int = 0
    shares: list[int] = field(default_factory=list)
    load: str = ""
    floor_rate: float = 0.0
    """AppFlowDeployments per second a client making only them gets from this hub now."""
    requests: dict[str, int] = field(default_factory=dict)
    """Requests the API server served while the clock ran (its /metrics), by verb and kind."""
    controller_cpu: float = 0.0
    """CPU seconds the replicas used while the clock ran (all of them together)."""
    load_end: str = ""
    idle_seconds: float = 0.0
    """--idle: how long the replicas ran on after the clock stopped, nothing changing."""
    idle_requests: dict[str, int] = field(default_factory=dict)
    """Requests the API server served meanwhile, by verb and kind."""
    idle_cpu: float = 0.0
    """CPU seconds the replicas used meanwhile."""

    @property
    def floor_seconds(self) -> float:
        return self.deployments / self.floor_rate if self.floor_rate else 0.0

    @property
    def bytes_per_deployment(self) -> float:
        total = self.logical_bytes_deployments + self.logical_bytes_content
        return total / self.deployments if self.deployments else 0.0


def register_clusters(store: Any, count: int) -> None:
    from appflow.model.records import ClusterRecord

    def one(i: int) -> None:
        store.put_cluster(
            ClusterRecord(
                name=f"edge-{i:05d}",
                kind="eve-k",
                labels={"env": ENVS[i % 3], "region": REGIONS[(i // 3) % 3]},
                state="Online",
            )
        )

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, range(count)))


def start_replicas(
    hub: Hub, workspace: str, leases: str, count: int, folder: Path, *, profile: Path | None = None
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    out = []
    for i in range(count):
        home = folder / f"replica-{i}"
        home.mkdir(parents=True)
        env = {
            **os.environ,
            "APPFLOW_HOME": str(home / "data"),
            "APPFLOW_CACHE_DIR": str(home / "cache"),
        }
        env.pop("APPFLOW_HUB", None)
        log = home / "controller.log"
        # --profile: each replica under cProfile (its SIGTERM ends it cleanly, so the
        # profile is written); the files are named after the point and the replica.
        profiler = (
            ["-m", "cProfile", "-o", str(profile / f"{folder.name}-replica-{i}.prof")]
            if profile is not None
            else []
        )
        args = [
            sys.executable,
            *profiler,
            "-m",
            "appflow",
            "controller",
            "--kubeconfig",
            str(hub.kubeconfig),
            "--namespace",
            leases,
            "--workspace",
            workspace,
            "--identity",
            f"bench-{i}-{secrets.token_hex(2)}",
            "--workers",
            "8",
        ]
        with log.open("wb") as sink:
            out.append((subprocess.Popen(args, cwd=ROOT, env=env, stdout=sink, stderr=sink), home))
    return out


def count_staged(
    kubeconfig: Path, workspace: str, expected: int, stop: threading.Event, done: threading.Event
) -> None:
    """Watch the AppFlowDeployments of WORKSPACE until EXPECTED hold a staged state."""
    from appflow.errors import AppflowError
    from appflow.kube.client import Connection, KubeCluster
    from appflow.model.hub import API_VERSION, LABEL_WORKSPACE

    kube = KubeCluster(Connection(name="hub", kubeconfig=kubeconfig, timeout=30))
    staged: set[tuple[str, str]] = set()

    async def follow() -> None:
        halt = asyncio.Event()

        loop = asyncio.get_running_loop()

        def watch_stop() -> None:
            stop.wait()  # a thread: set by the bench when it gives up
            loop.call_soon_threadsafe(halt.set)

        threading.Thread(target=watch_stop, daemon=True).start()

        async def counted() -> bool:
            """Watch from the current state (a watch without a resourceVersion starts with every
            object as ADDED); True once EXPECTED Deployments are staged."""
            async for _event, obj in kube.watch(
                API_VERSION,
                "AppFlowDeployment",
                label_selector=f"{LABEL_WORKSPACE}={workspace}",
                stop=halt,
            ):
                spec = obj.get("spec") or {}
                if spec.get("staged"):
                    staged.add((str(spec.get("app")), str(spec.get("cluster"))))
                    if len(staged) >= expected:
                        return True
            return False

        while not halt.is_set():
            try:
                if await counted():
                    done.set()
                    return
            except AppflowError as err:
                # Under load a watch's resourceVersion expires (410): start a new one.
                _log(f"  counting: {err}; watching again")

    try:
        asyncio.run(follow())
    finally:
        kube.close()


def logical_bytes(kubeconfig: Path, workspace: str) -> tuple[int, int, int]:
    from appflow.kube.client import Connection, KubeCluster
    from appflow.model.hub import API_VERSION, LABEL_WORKSPACE

    kube = KubeCluster(Connection(name="hub", kubeconfig=kubeconfig, timeout=120))
    try:
        afds = kube.list_sync(
            API_VERSION, "AppFlowDeployment", label_selector=f"{LABEL_WORKSPACE}={workspace}"
        )
        contents = kube.list_sync(API_VERSION, "AppFlowContent", namespace=workspace)
    finally:
        kube.close()
    return (
        sum(len(json.dumps(o, separators=(",", ":"))) for o in afds),
        sum(len(json.dumps(o, separators=(",", ":"))) for o in contents),
        len(contents),
    )


_REQUEST = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def request_counts(kubeconfig: Path) -> dict[str, float]:
    """The hub API server's own count of requests (``/metrics``, apiserver_request_total), per
    "VERB resource[/subresource]" of appflow's kinds and of Leases."""
    from appflow.kube.client import Connection, KubeCluster

    kube = KubeCluster(Connection(name="hub", kubeconfig=kubeconfig, timeout=60))
    try:
        api = kube.api_client
        request = api.param_serialize(
            method="GET", resource_path="/metrics", auth_settings=["BearerToken"]
        )
        response = api.call_api(*request, _request_timeout=60)
        text = response.read().decode()  # type: ignore[no-untyped-call]
    finally:
        kube.close()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        match = _REQUEST.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group(1)))
        if labels.get("group") != "appflow.dev" and labels.get("resource") != "leases":
            continue
        what = labels.get("resource", "?") + (
            f"/{labels['subresource']}" if labels.get("subresource") else ""
        )
        key = f"{labels.get('verb', '?')} {what}"
        counts[key] = counts.get(key, 0.0) + float(match.group(2))
    return counts


def floor_rate(hub: Hub, count: int) -> float:
    """AppFlowDeployments per second the hub takes from one client making nothing but them
    (16 at once, each as small as the controller's): the floor under any controller."""
    from concurrent.futures import ThreadPoolExecutor

    from appflow.kube.client import Connection, KubeCluster
    from appflow.model.hub import API_VERSION

    kube = KubeCluster(
        Connection(name="hub", kubeconfig=hub.kubeconfig, timeout=60, concurrency=32)
    )
    namespace = f"floor-{secrets.token_hex(3)}"
    kube.apply_sync({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    digest = "sha256-" + "0" * 64

    def one(i: int) -> None:
        kube.create_sync(
            {
                "apiVersion": API_VERSION,
                "kind": "AppFlowDeployment",
                "metadata": {"name": f"app-{i}", "namespace": namespace},
                "spec": {
                    "app": f"app-{i}",
                    "cluster": "edge",
                    "staged": {"revision": 1, "renderDigest": digest, "index": digest},
                },
            }
        )

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, range(count)))
    rate = count / (time.monotonic() - started)
    kube.delete_sync("v1", "Namespace", namespace)
    wait_deleted(kube, [namespace])
    kube.close()
    return rate


def wait_deleted(kube: Any, namespaces: Sequence[str], *, seconds: float = 900) -> None:
    """Wait until NAMESPACES are gone: the namespace controller deletes their objects through
    the same API server, and must not do so while the next point's clock runs."""
    deadline = time.monotonic() + seconds
    left = set(namespaces)
    while left and time.monotonic() < deadline:
        left = {n for n in left if kube.get_sync("v1", "Namespace", n) is not None}
        if left:
            time.sleep(1.0)
    if left:
        _log(f"  {len(left)} namespace(s) still being deleted after {seconds:.0f}s")


def run_point(
    hub: Hub,
    work: Path,
    *,
    apps: int,
    clusters: int,
    replicas: int,
    profile: Path | None = None,
    floor_sample: int = 2000,
    idle: float = 0.0,
) -> Point:
    from appflow.engine.repos import register_repo
    from appflow.hub.store import HubStore
    from appflow.kube.client import Connection, KubeCluster

    point = Point(apps=apps, clusters=clusters, replicas=replicas)
    # The floor, measured moments before, under the same load: a shared machine's absolute
    # seconds mean little, the ratio to what the API server takes at best means more.
    point.floor_rate = floor_rate(hub, min(apps * clusters, floor_sample))
    workspace = f"bench-{secrets.token_hex(3)}"
    leases = f"{workspace}-leases"
    kube = KubeCluster(
        Connection(name="hub", kubeconfig=hub.kubeconfig, timeout=60, concurrency=16)
    )
    for ns in (workspace, leases):
        kube.apply_sync({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    store = HubStore(kube, workspace=workspace, writer="bench")
    folder = work / workspace
    folder.mkdir(parents=True)
    _log(f"[{clusters} clusters, {replicas} replica(s)] registering the clusters (load {_load()})")
    register_clusters(store, clusters)
    url = write_repository(folder / "repo", apps)
    processes = start_replicas(hub, workspace, leases, replicas, folder, profile=profile)
    time.sleep(5)  # the replicas join and list an empty workspace: not part of what is timed
    expected = apps * clusters
    stop, done = threading.Event(), threading.Event()
    counter = threading.Thread(
        target=count_staged, args=(hub.kubeconfig, workspace, expected, stop, done), daemon=True
    )
    counter.start()
    time.sleep(1)
    peak = Peak({"apiserver": hub.apiserver, "etcd": hub.etcd})
    sampler = threading.Thread(target=peak.run, daemon=True)
    sampler.start()
    cpu_before = (cpu_seconds(hub.apiserver), cpu_seconds(hub.etcd))
    db_before = hub.etcd_db.stat().st_size
    requests_before = request_counts(hub.kubeconfig)
    point.load = _load()
    replicas_before = sum(cpu_seconds(p.pid) for p, _ in processes)
    started = time.monotonic()
    asyncio.run(register_repo(store, name="bench", url=url, ref="main", paths=("apps",)))
    _log(f"  {apps} AppFlows created; waiting for {expected} desired states")
    if not done.wait(timeout=1800):
        stop.set()
        raise SystemExit(f"not every desired state was written within 30 minutes ({workspace})")
    point.seconds = time.monotonic() - started
    point.controller_cpu = sum(cpu_seconds(p.pid) for p, _ in processes) - replicas_before
    point.load_end = _load()
    requests_after = request_counts(hub.kubeconfig)
    point.requests = {
        k: int(v - requests_before.get(k, 0.0))
        for k, v in sorted(requests_after.items())
        if v - requests_before.get(k, 0.0) >= 1
    }
    point.apiserver_cpu = cpu_seconds(hub.apiserver) - cpu_before[0]
    point.etcd_cpu = cpu_seconds(hub.etcd) - cpu_before[1]
    peak.stop.set()
    point.apiserver_peak_rss = peak.peak.get("apiserver", 0)
    point.etcd_peak_rss = peak.peak.get("etcd", 0)
    point.etcd_db_growth = hub.etcd_db.stat().st_size - db_before
    point.deployments = expected
    if idle:
        # Everything staged, nothing changes: what the replicas ask of the API server now
        # is their upkeep (counting Clusters' apps, Leases), paid for as long as they run.
        before, cpu = requests_after, sum(cpu_seconds(p.pid) for p, _ in processes)
        time.sleep(idle)
        after = request_counts(hub.kubeconfig)
        point.idle_seconds = idle
        point.idle_cpu = sum(cpu_seconds(p.pid) for p, _ in processes) - cpu
        point.idle_requests = {
            k: int(v - before.get(k, 0.0))
            for k, v in sorted(after.items())
            if v - before.get(k, 0.0) >= 1
        }
    for process, _ in processes:
        process.terminate()
    for process, _ in processes:
        process.wait(timeout=60)
    point.logical_bytes_deployments, point.logical_bytes_content, point.content_objects = (
        logical_bytes(hub.kubeconfig, workspace)
    )
    point.renders = sum(
        len(list((home / "cache" / "render").glob("*.json"))) for _, home in processes
    )
    took = re.compile(r"took appflow/\S+/(\S+)")
    point.shares = sorted(
        len({m.group(1) for m in took.finditer((home / "controller.log").read_text())})
        for _, home in processes
    )
    store.close()
    # The next point starts from an empty hub, as far as the API server's caches go.
    cleanup = KubeCluster(Connection(name="hub", kubeconfig=hub.kubeconfig, timeout=120))
    try:
        from appflow.model.hub import LABEL_WORKSPACE

        deleted = [
            str(found["metadata"]["name"])
            for found in cleanup.list_sync(
                "v1", "Namespace", label_selector=f"{LABEL_WORKSPACE}={workspace}"
            )
        ] + [workspace, leases]
        for name in deleted:
            cleanup.delete_sync("v1", "Namespace", name)
        wait_deleted(cleanup, deleted)
    finally:
        cleanup.close()
    _log(f"  {json.dumps(asdict(point))}")
    return point


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares y = a + b x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return my - b * mx, b


def report(points: list[Point], apps: int) -> None:
    mb = 1024 * 1024
    print(f"\nhub bench: {apps} AppFlows (Helm chart, 3 environments, cluster-label templating)")
    print(f"machine: {os.cpu_count()} cores, load at the end {_load()}\n")
    header = (
        "clusters replicas  deployments  seconds  floor s  x floor  replicas CPU s"
        "  apiserver CPU s  peak MB  etcd CPU s  peak MB  etcd db +MB  bytes/deployment"
        "  content objs  renders  shares  load (start -> end)"
    )
    print(header)
    for p in points:
        print(
            f"{p.clusters:8d} {p.replicas:8d} {p.deployments:12d} {p.seconds:8.1f} "
            f"{p.floor_seconds:8.1f} {p.seconds / p.floor_seconds if p.floor_seconds else 0:8.2f} "
            f"{p.controller_cpu:15.1f} {p.apiserver_cpu:16.1f} {p.apiserver_peak_rss / mb:8.0f} {p.etcd_cpu:11.1f} "
            f"{p.etcd_peak_rss / mb:8.0f} {p.etcd_db_growth / mb:12.1f} "
            f"{p.bytes_per_deployment:17.0f} {p.content_objects:13d} {p.renders:8d}  {p.shares}"
            f"  {p.load} -> {p.load_end}"
        )
    for p in points:
        top = sorted(p.requests.items(), key=lambda kv: -kv[1])[:8]
        print(
            f"requests at {p.clusters} clusters, {p.replicas} replica(s): "
            + ", ".join(f"{k} {v:,}" for k, v in top)
        )
        if p.idle_seconds:
            idle = sorted(
                ((k, v) for k, v in p.idle_requests.items() if "leases" not in k),
                key=lambda kv: -kv[1],
            )
            print(
                f"  then {p.idle_seconds:.0f} s idle: replicas CPU {p.idle_cpu:.2f} s; requests "
                "other than Leases: " + (", ".join(f"{k} {v:,}" for k, v in idle) or "none")
            )
    single = [p for p in points if p.replicas == 1]
    if len(single) >= 2:
        xs = [float(p.clusters) for p in single]
        a, b = fit(xs, [p.seconds for p in single])
        ca, cb = fit(xs, [p.apiserver_cpu for p in single])
        bytes_per = sum(p.bytes_per_deployment for p in single) / len(single)
        print(
            f"\nfit over {', '.join(str(int(x)) for x in xs)} clusters, 1 replica: "
            f"seconds = {a:.1f} + {b:.3f} x clusters; API server CPU s = {ca:.1f} + {cb:.3f} x clusters"
        )
        print(
            f"extrapolated to 10,000 clusters ({apps * 10_000:,} deployments): "
            f"{a + b * 10_000:.0f} s with 1 replica, {ca + cb * 10_000:.0f} API server CPU s, "
            f"{bytes_per * apps * 10_000 / 2**30:.2f} GiB of logical bytes in etcd"
        )
    largest = max(p.clusters for p in points)
    at = {p.replicas: p for p in points if p.clusters == largest}
    if 1 in at:
        verdict = "met" if at[1].seconds <= TARGET_SECONDS else "NOT met"
        print(
            f"target: <= {TARGET_SECONDS:.0f} s with 1 replica at {largest} clusters: {verdict} ({at[1].seconds:.1f} s)"
        )
    if 1 in at and 3 in at:
        print(
            f"3 replicas vs 1 at {largest} clusters: {at[3].seconds / at[1].seconds:.2f}x the time; shares {at[3].shares}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument(
        "--clusters", default="50,100,200", help="Comma-separated cluster counts (1 replica each)."
    )
    parser.add_argument(
        "--replicas", default="1,3", help="Replica counts run at the largest cluster count."
    )
    parser.add_argument(
        "--floor",
        type=int,
        default=2000,
        help="AppFlowDeployments the floor's client creates before each point (its rate).",
    )
    parser.add_argument("--json", type=Path, help="Also write every point here.")
    parser.add_argument(
        "--keep", type=Path, help="Keep the hub sandbox in this folder (reused when it runs)."
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="Run each replica under cProfile and write its profile into this folder.",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=0.0,
        help="Seconds the replicas run on after each point's clock stopped, nothing changing; "
        "the requests they make meanwhile are reported (their upkeep).",
    )
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    counts = [int(c) for c in args.clusters.split(",")]
    replica_counts = [int(r) for r in args.replicas.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-hub-work-"))
    os.environ["APPFLOW_HOME"] = str(work / "bench-home")
    os.environ["APPFLOW_CACHE_DIR"] = str(work / "bench-cache")
    points: list[Point] = []
    try:
        with hub_sandbox(args.keep) as hub:
            for clusters in counts:
                if 1 in replica_counts or clusters != max(counts):
                    points.append(
                        run_point(
                            hub,
                            work,
                            apps=args.apps,
                            clusters=clusters,
                            replicas=1,
                            profile=args.profile,
                            floor_sample=args.floor,
                            idle=args.idle,
                        )
                    )
            for replicas in replica_counts:
                if replicas != 1:
                    points.append(
                        run_point(
                            hub,
                            work,
                            apps=args.apps,
                            clusters=max(counts),
                            replicas=replicas,
                            profile=args.profile,
                            floor_sample=args.floor,
                            idle=args.idle,
                        )
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(points, args.apps)
    if args.json:
        args.json.write_text(json.dumps([asdict(p) for p in points], indent=2) + "\n")


if __name__ == "__main__":
    main()
