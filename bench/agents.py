"""1,000 simulated pull agents and 3 real ones against one real hub API server.

    .venv/bin/python -m bench.agents [--agents 1000] [--idle 60] [--outage 20] [--json FILE]

It starts its own sandbox (a hub cluster and 3 edge clusters) in a temporary folder, always
torn down (``--keep DIR`` reuses one), the hub's agent API as a process, 3 real agents as
processes (``appflow agent run`` on the edge clusters), and N simulated agents in this one
process. A simulated agent is ``appflow.agent.runner.Agent`` itself: the real registration
(the agent API's token exchange), the real list+watch, heartbeat and status code against the
hub's real API server; only its cluster is replaced by a recorder (no edge cluster: state in
memory, every dry run and apply recorded and answered Ready).

Measured:

    registration   N agents register with one batch token of exactly N + 3 uses (bounded
                   concurrency, --register-concurrency): registrations per second, the API
                   server's requests per registration (its own /metrics, by verb and
                   resource) and CPU seconds per registration
    idle           the hub API server's CPU (share of one core) and RSS with 1/4, 1/2 and all
                   of the agents connected and idle (heartbeats every --heartbeat s), fitted
                   linearly and extrapolated to 10,000 agents
    heartbeat      API server CPU seconds per heartbeat (the idle window's CPU over the
                   heartbeats sent in it: an upper bound, idle watches included)
    commit         a new revision of one app to all N + 3 clusters, as the hub controller
                   publishes it: staged on every cluster, every agent validates it, released,
                   every agent applies it; from the first write to N + 3 Ready
    storm          the hub is stopped for --outage s and started again: time until every
                   agent has listed again and sent its heartbeat, peak API server CPU, and
                   whether any agent gave up

Targets (issue 13): commit -> all Ready <= 60 s; idle API server CPU with 1,000 agents < 10 %
of a core. The bench's own process shares the machine's cores with the API server, etcd and
the agent API: its CPU is printed too. The machine is shared: every figure is printed with the
load average when it was taken, and with the API server's CPU seconds (which load inflates
less than wall time). A commit is measured at a quarter of the fleet and at all of it, in the
same run: the ratio says what grows with N (requests per cluster, CPU per cluster, time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from appflow import sandbox as sb
from appflow.agent import edge
from appflow.agent.local import LocalSync
from appflow.agent.runner import Agent, AgentOptions, register
from appflow.agent.secrets import Revealed
from appflow.errors import AppflowError, NotFoundError
from appflow.hub.crds import crd_manifests
from appflow.hub.registration import create_token
from appflow.kube.client import Connection, KubeCluster
from appflow.kube.content import ContentStore
from appflow.model.agent import BackoffPolicy, Desired
from appflow.model.hub import API_VERSION, cluster_namespace
from appflow.model.objects import Manifest
from appflow.model.registration import ClusterFacts
from appflow.tools import find_tool

COMMIT_TARGET = 60.0
IDLE_TARGET = 0.10
CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    """The load average now, as `uptime` prints it."""
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message} ({load()})", file=sys.stderr, flush=True)


_REQUEST = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")


def requests(kubeconfig: Path) -> Counter[str]:
    """The hub API server's requests so far, by "VERB resource[/subresource]" (its /metrics)."""
    done = subprocess.run(
        [str(find_tool("kubectl")), "--kubeconfig", str(kubeconfig), "get", "--raw", "/metrics"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    counts: Counter[str] = Counter()
    for line in done.stdout.splitlines():
        found = _REQUEST.match(line)
        if not found:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
        resource = labels.get("resource", "") or "(non-resource)"
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        counts[f"{labels.get('verb', '?')} {resource}"] += int(float(found.group(2)))
    return counts


WRITES = ("POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE")


def request_profile(before: Counter[str], after: Counter[str], per: int) -> dict[str, Any]:
    """The requests between BEFORE and AFTER, per PER (registrations, clusters)."""
    spent = Counter({k: v for k, v in (after - before).items() if not k.startswith("WATCH")})
    writes = sum(v for k, v in spent.items() if k.split()[0] in WRITES)
    return {
        "requests": sum(spent.values()),
        "writes": writes,
        "per": per,
        "by_kind": {k: v / per for k, v in spent.most_common(20)},
    }


# -- the recorder in place of an edge cluster ----------------------------------------------


@dataclass
class RecorderLocal:
    """An agent's cluster that records what it is asked to do and answers Ready."""

    index: int
    name: str = ""
    config: edge.AgentConfig | None = None
    deployments: dict[str, edge.DeploymentState] = field(default_factory=dict)
    applied: list[tuple[str, int]] = field(default_factory=list)
    validated: list[tuple[str, int]] = field(default_factory=list)
    identity: str = field(default_factory=lambda: str(uuid.uuid4()))
    latency: float = 0.0
    """Seconds a dry run and an apply take here: what the real agents' applies took (their
    history), so that the simulated fleet is not faster than a real one."""

    def __post_init__(self) -> None:
        self.name = f"sim-{self.index}"
        self.content = edge.EdgeContent(None)

    async def facts(self, *, recipients: tuple[str, ...]) -> ClusterFacts:
        return ClusterFacts(
            identity=self.identity,
            kubernetes_version="v1.31.2+k3s1",
            distribution="k3s",
            topology="single-node",
            node_count=1,
            architecture="arm64",
            gpus=0,
            api_versions=("v1", "apps/v1"),
            agent_version="bench",
            age_recipients=recipients,
        )

    async def read_config(self) -> edge.AgentConfig | None:
        return self.config

    async def write_config(self, config: edge.AgentConfig) -> None:
        self.config = config

    async def load_deployments(self) -> dict[str, edge.DeploymentState]:
        return dict(self.deployments)

    async def save_deployment(self, state: edge.DeploymentState) -> None:
        self.deployments[state.name] = state

    async def forget_deployment(self, name: str) -> None:
        self.deployments.pop(name, None)

    async def validate(self, app: str, desired: Desired, objects: Revealed) -> str | None:
        self.validated.append((app, desired.revision))
        await asyncio.sleep(self.latency)
        return None

    async def sync(
        self,
        app: str,
        desired: Desired,
        objects: Revealed,
        *,
        fingerprints: Mapping[str, str],
        heal: bool,
    ) -> LocalSync:
        first = (app, desired.revision) not in self.applied
        if first:
            await asyncio.sleep(self.latency)
            self.applied.append((app, desired.revision))
        return LocalSync(
            state="Ready",
            changed=first,
            counts={
                "created": len(objects.objects) if first else 0,
                "unchanged": 0 if first else len(objects.objects),
            },
            resource_counts={"desiredReady": len(objects.objects), "ready": len(objects.objects)},
            fingerprints={"recorded": str(desired.revision)},
            inventory=len(objects.objects),
        )

    async def uninstall(self, app: str) -> LocalSync:
        return LocalSync(state="Ready")


# -- processes and measurements ------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def apiserver_pid(root: Path, name: str) -> int:
    info = next(i for i in sb.list_sandbox(root=root) if i.name == name)
    return int(info.processes["kube-apiserver"])


def appflow(*args: str, env: Mapping[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "appflow", *args], cwd=ROOT, env=dict(env), stdout=out, stderr=out
    )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Setup:
    root: Path
    work: Path
    hub: sb.SandboxInfo
    edges: list[sb.SandboxInfo]
    kubeconfig: Path
    env: dict[str, str]
    url: str = ""
    pin: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


def wait(check: Any, *, timeout: float, what: str, every: float = 0.5) -> Any:
    """CHECK's first truthy value; an error counts as not yet (a CRD just applied answers 429
    while its storage starts)."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            value = check()
        except AppflowError as err:
            value, last = None, f": {err}"
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}{last}")
        time.sleep(every)


def start(setup: Setup) -> None:
    kube = KubeCluster(Connection(name="hub", kubeconfig=setup.kubeconfig))
    try:
        for crd in crd_manifests():
            kube.apply_sync(crd, force=True)
        for namespace in ("appflow", "appflow-system"):
            kube.apply_sync(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
        wait(
            lambda: kube.list_sync(API_VERSION, "AppFlowDeployment") is not None,
            timeout=60,
            what="the CRDs",
        )
    finally:
        kube.close()
    port = free_port()
    setup.url = f"https://127.0.0.1:{port}"
    setup.processes.append(
        appflow(
            "hub",
            "agent-api",
            "--kubeconfig",
            str(setup.kubeconfig),
            "--listen",
            f"127.0.0.1:{port}",
            "--advertise-url",
            setup.url,
            env=setup.env,
            log=setup.work / "agent-api.log",
        )
    )

    def published() -> str:
        kube = KubeCluster(Connection(name="hub", kubeconfig=setup.kubeconfig))
        try:
            cm = kube.get_sync("v1", "ConfigMap", "appflow-agent-api", "appflow-system") or {}
        finally:
            kube.close()
        data = cm.get("data") or {}
        return str(data.get("caPin", "")) if data.get("url") == setup.url else ""

    setup.pin = wait(published, timeout=300, what="the agent API")
    import socket

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return True
        except OSError:
            return False

    wait(listening, timeout=300, what="the agent API to listen")


async def make_token(setup: Setup, uses: int) -> str:
    kube = KubeCluster(Connection(name="hub", kubeconfig=setup.kubeconfig))
    try:
        text, _ = await create_token(
            kube,
            workspace="appflow",
            ttl=__import__("datetime").timedelta(hours=4),
            max_uses=uses,
            labels={"bench": "agents"},
        )
    finally:
        kube.close()
    return text


def start_real_agents(setup: Setup, token: str, heartbeat: float) -> list[str]:
    for info in setup.edges:  # a reused sandbox (--keep) may hold an earlier agent's state
        kube = KubeCluster(Connection(name=info.name, kubeconfig=info.kubeconfig))
        try:
            for secret in kube.list_sync(
                "v1", "Secret", namespace=edge.AGENT_NAMESPACE, label_selector=edge.LABEL_PART
            ):
                kube.delete_sync(
                    "v1", "Secret", str(secret["metadata"]["name"]), edge.AGENT_NAMESPACE
                )
        finally:
            kube.close()
    for index, info in enumerate(setup.edges):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "appflow",
                "agent",
                "install",
                "--token",
                token,
                "--hub-url",
                setup.url,
                "--hub-ca-pin",
                setup.pin,
                "--kubeconfig",
                str(info.kubeconfig),
                "--no-deploy",
            ],
            cwd=ROOT,
            env=setup.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SystemExit(f"agent install on {info.name} failed: {done.stderr}")
        setup.processes.append(
            appflow(
                "agent",
                "run",
                "--kubeconfig",
                str(info.kubeconfig),
                "--heartbeat",
                str(heartbeat),
                "--drift-interval",
                "30",
                env=setup.env,
                log=setup.work / f"agent-{index}.log",
            )
        )
    names = []
    for info in setup.edges:
        kube = KubeCluster(Connection(name=info.name, kubeconfig=info.kubeconfig))
        try:

            def registered(k: KubeCluster = kube) -> str:
                secret = k.get_sync("v1", "Secret", edge.CONFIG_SECRET, edge.AGENT_NAMESPACE) or {}
                raw = (secret.get("data") or {}).get("registration.json")
                import base64

                return str(json.loads(base64.b64decode(raw))["cluster"]) if raw else ""

            names.append(wait(registered, timeout=120, what=f"{info.name} to register"))
        finally:
            kube.close()
    return names


# -- the simulated fleet ----------------------------------------------------------------------


@dataclass
class Fleet:
    agents: list[Agent] = field(default_factory=list)
    locals: list[RecorderLocal] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    unregistered: list[str] = field(default_factory=list)
    """Simulated agents that could not register (and why)."""

    def cluster_names(self) -> list[str]:
        return [a.cluster for a in self.agents]


async def add_agents(
    fleet: Fleet,
    setup: Setup,
    token: str,
    count: int,
    options: AgentOptions,
    *,
    concurrency: int,
) -> dict[str, Any]:
    """Register COUNT more simulated agents (at most CONCURRENCY at once) and start them: the
    seconds the registrations took, and the API server's requests and CPU for them."""
    gate = asyncio.Semaphore(concurrency)
    pid = apiserver_pid(setup.root, setup.hub.name)
    counted, cpu = requests(setup.kubeconfig), cpu_seconds(pid)
    started = time.monotonic()

    async def one(index: int) -> None:
        local = RecorderLocal(index=index)
        local.config = edge.AgentConfig(hub_url=setup.url, ca_pin=setup.pin, token=token)
        async with gate:
            for attempt in range(8):
                try:
                    local.config = await register(local, local.config)
                    break
                except Exception as err:
                    if attempt == 7:
                        # Reported, not fatal: the bench measures the others.
                        fleet.unregistered.append(f"sim-{index}: {err}")
                        return
                    _log(f"registration of sim-{index} retried: {err}")
                    await asyncio.sleep(1 + attempt)
        agent = Agent(local, replace(options, identity=f"sim-{index}"))
        fleet.agents.append(agent)
        fleet.locals.append(local)

    first = len(fleet.agents)
    # Registered first, all of them; then started (a started agent's list, watch and
    # heartbeats would be counted as registration).
    await asyncio.gather(*(one(first + i) for i in range(count)))
    seconds = time.monotonic() - started
    profile = request_profile(counted, requests(setup.kubeconfig), count)
    profile.update(
        seconds=seconds,
        cpu_seconds=cpu_seconds(pid) - cpu,
        load=load(),
        count=count,
        unregistered=list(fleet.unregistered),
    )
    for agent in fleet.agents[first:]:
        fleet.tasks.append(asyncio.create_task(agent.run(fleet.stop), name=agent.options.identity))
    await until(
        lambda: all(a.connected.is_set() for a in fleet.agents),
        timeout=600,
        what="every agent connected",
    )
    return profile


async def until(check: Any, *, timeout: float, what: str, every: float = 0.5) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)
    return time.monotonic() - started


async def idle(setup: Setup, seconds: float, agents: int, heartbeat: float) -> dict[str, Any]:
    pid = apiserver_pid(setup.root, setup.hub.name)
    await asyncio.sleep(min(10.0, seconds / 4))  # let the registrations' aftermath settle
    before, wall, own = cpu_seconds(pid), time.monotonic(), time.process_time()
    await asyncio.sleep(seconds)
    used = cpu_seconds(pid) - before
    span = time.monotonic() - wall
    beats = agents * span / heartbeat
    return {
        "agents": agents,
        "load": load(),
        "cpu_seconds": used,
        "span": span,
        "cpu_share": used / span,
        "rss_mb": rss_mb(pid),
        "cpu_per_heartbeat_ms": 1000 * used / beats if beats else 0.0,
        "bench_cpu_share": (time.process_time() - own) / span,
    }


def app_objects(revision: int) -> list[Manifest]:
    ns = "bench-app"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns},
            "data": {"revision": str(revision)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
    ]


async def write_deployments(
    kube: KubeCluster, clusters: list[str], spec: dict[str, Any], *, exists: bool
) -> None:
    """Write SPEC into the bench app's AppFlowDeployment of every cluster, as the hub
    controller does: one write each, a patch where it knows the Deployment EXISTS (the
    controller's watch tells it; ``publish.stage``) rather than a create refused first."""
    gate = asyncio.Semaphore(32)

    async def one(cluster: str) -> None:
        namespace = cluster_namespace("appflow", cluster)
        async with gate:
            if exists:
                try:
                    await kube.patch(
                        API_VERSION, "AppFlowDeployment", "bench-app", namespace, {"spec": spec}
                    )
                    return
                except NotFoundError:
                    pass  # a cluster that joined since the last commit
            created = await kube.create(
                {
                    "apiVersion": API_VERSION,
                    "kind": "AppFlowDeployment",
                    "metadata": {"name": "bench-app", "namespace": namespace},
                    "spec": {
                        "app": "bench-app",
                        "appNamespace": "appflow",
                        "cluster": cluster,
                        **spec,
                    },
                }
            )
            if created is None:
                await kube.patch(
                    API_VERSION, "AppFlowDeployment", "bench-app", namespace, {"spec": spec}
                )

    await asyncio.gather(*(one(c) for c in clusters))


async def publish(
    kubeconfig: Path, clusters: list[str], revision: int, *, known: bool = False
) -> dict[str, float]:
    """Publish REVISION of the app to CLUSTERS as the hub controller does (two-phase): stage it
    everywhere, release it once every cluster validated it, wait until every one is Ready.
    Seconds from the start to each step. Progress is followed with one watch, as the
    controller follows it (a LIST of every Deployment each second would cost the API server
    more than what is measured). KNOWN: the writer knows which Deployments exist (as the
    controller does from its watch) and patches them; otherwise it tries a create first."""
    kube = KubeCluster(Connection(name="hub", kubeconfig=kubeconfig, concurrency=32))
    stop = asyncio.Event()
    validated: set[str] = set()
    ready: set[str] = set()
    want = set(clusters)
    all_validated, all_ready = asyncio.Event(), asyncio.Event()

    async def follow() -> None:
        while not stop.is_set():
            try:
                async for _, obj in kube.watch(API_VERSION, "AppFlowDeployment", stop=stop):
                    see(obj)
            except AppflowError as err:
                # The watch raises what it cannot handle (a timeout on a loaded machine) and
                # ends: watched again, from the objects as they are now.
                _log(f"publisher's watch: {err}; watching again")

    def see(obj: Manifest) -> None:
        if obj["metadata"]["name"] == "bench-app":
            cluster, status = obj["spec"].get("cluster"), obj.get("status") or {}
            staged = status.get("staged") or {}
            if staged.get("revision") == revision and staged.get("result") == "Validated":
                validated.add(cluster)
            if status.get("appliedRevision") == revision and status.get("state") == "Ready":
                ready.add(cluster)
        if want <= validated:
            all_validated.set()
        if want <= ready:
            all_ready.set()

    watcher = asyncio.create_task(follow())
    try:
        started = time.monotonic()
        stored = await ContentStore(kube, "appflow").put_render(app_objects(revision))
        state = {
            "revision": revision,
            "renderDigest": stored.index.render_digest,
            "index": stored.digest,
            "options": {"prune": True},
        }
        await write_deployments(kube, clusters, {"staged": state}, exists=known and revision > 1)
        staged_written = time.monotonic() - started
        await asyncio.wait_for(all_validated.wait(), 600)
        validated_at = time.monotonic() - started
        await write_deployments(kube, clusters, {"released": state}, exists=known)
        released_written = time.monotonic() - started
        await asyncio.wait_for(all_ready.wait(), 600)
        ready_at = time.monotonic() - started
    finally:
        stop.set()
        watcher.cancel()
        kube.close()
    return {
        "staged_written": staged_written,
        "validated": validated_at,
        "released_written": released_written,
        "ready": ready_at,
    }


async def commit(setup: Setup, clusters: list[str], revision: int) -> dict[str, Any]:
    """Publish REVISION in a process of its own (the controller's, not the agents'); the
    seconds of each step, and the CPU each process used meanwhile."""
    job = setup.work / f"publish-{revision}.json"
    out = setup.work / f"published-{revision}.json"
    job.write_text(
        json.dumps(
            {
                "kubeconfig": str(setup.kubeconfig),
                "clusters": clusters,
                "revision": revision,
                "known": True,
            }
        )
    )
    info = next(i for i in sb.list_sandbox(root=setup.root) if i.name == setup.hub.name)
    watched = {
        "apiserver": int(info.processes["kube-apiserver"]),
        "etcd": int(info.processes["etcd"]),
        "agent_api": setup.processes[0].pid,
    }
    before = {k: cpu_seconds(p) for k, p in watched.items()}
    counted = requests(setup.kubeconfig)
    own, wall = time.process_time(), time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.agents", "--publish", str(job), str(out),
        cwd=ROOT, env=setup.env,
    )  # fmt: skip
    if await proc.wait():
        raise SystemExit("publishing the revision failed")
    span = time.monotonic() - wall
    result: dict[str, Any] = json.loads(out.read_text())
    for k, p in watched.items():
        result[f"{k}_cpu_seconds"] = cpu_seconds(p) - before[k]
        result[f"{k}_cpu_share"] = result[f"{k}_cpu_seconds"] / span
    result["agents_cpu_share"] = (time.process_time() - own) / span
    result["requests"] = request_profile(counted, requests(setup.kubeconfig), len(clusters))
    result["clusters"] = len(clusters)
    result["load"] = load()
    return result


def real_apply_seconds(kubeconfig: Path, clusters: list[str], *, revision: int) -> float:
    """The median seconds the real agents of CLUSTERS took to apply REVISION (their history)."""
    kube = KubeCluster(Connection(name="hub", kubeconfig=kubeconfig))
    spans = []
    try:
        for cluster in clusters:
            obj = kube.get_sync(
                API_VERSION, "AppFlowDeployment", "bench-app", cluster_namespace("appflow", cluster)
            )
            for entry in ((obj or {}).get("status") or {}).get("history") or ():
                if entry.get("revision") == revision and entry.get("trigger") == "watch":
                    started = datetime.fromisoformat(entry["startedAt"].replace("Z", "+00:00"))
                    ended = datetime.fromisoformat(entry["finishedAt"].replace("Z", "+00:00"))
                    spans.append((ended - started).total_seconds())
    finally:
        kube.close()
    return statistics.median(spans) if spans else 0.0


async def storm(setup: Setup, fleet: Fleet, outage: float) -> dict[str, Any]:
    _log(f"stopping the hub for {outage:.0f}s")
    sb.stop([setup.hub.name], root=setup.root)
    await asyncio.sleep(outage)
    for agent in fleet.agents:
        if agent.connected.is_set():
            agent.connected.clear()  # they find out at their next request; count from now
    sb.start([setup.hub.name], root=setup.root)
    back = time.monotonic()
    pid = apiserver_pid(setup.root, setup.hub.name)
    peak, last, last_at = 0.0, cpu_seconds(pid), time.monotonic()
    total_start = last
    while True:
        await asyncio.sleep(1.0)
        now, used = time.monotonic(), cpu_seconds(pid)
        peak = max(peak, (used - last) / (now - last_at))
        last, last_at = used, now
        settled = all(a.connected.is_set() and not len(a.queue) for a in fleet.agents)
        if settled or now - back > 900:
            break
    gave_up = [
        a.cluster
        for a, t in zip(fleet.agents, fleet.tasks, strict=True)
        if t.done() or a.fatal is not None
    ]
    return {
        "load": load(),
        "settle_seconds": time.monotonic() - back,
        "peak_cpu_share": peak,
        "cpu_seconds": last - total_start,
        "gave_up": len(gave_up),
        "settled": all(a.connected.is_set() for a in fleet.agents),
    }


def set_latency(fleet: Fleet, setup: Setup, real: list[str]) -> None:
    """The simulated agents take as long per dry run and apply as the real agents took for
    their first revision (median of their history), so the simulated fleet is not faster."""
    latency = real_apply_seconds(setup.kubeconfig, real, revision=1)
    for local in fleet.locals:
        local.latency = latency
    _log(f"the real agents applied r1 in {latency:.2f}s (median): the simulated ones take as long")


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares y = a + b x."""
    n = len(points)
    sx = sum(x for x, _ in points)
    sy = sum(y for _, y in points)
    sxx = sum(x * x for x, _ in points)
    sxy = sum(x * y for x, y in points)
    b = (n * sxy - sx * sy) / (n * sxx - sx * sx) if n > 1 and n * sxx != sx * sx else 0.0
    return (sy - b * sx) / n, b


async def run(args: argparse.Namespace, setup: Setup) -> dict[str, Any]:
    options = AgentOptions(
        heartbeat_seconds=args.heartbeat,
        drift_seconds=600.0,
        backoff=BackoffPolicy(base=1.0, cap=args.backoff_max),
    )
    # Exactly one use per cluster: a registration whose answer is lost to a timeout on a
    # loaded machine is retried without using the token again (registration.answer_lost).
    token = await make_token(setup, args.agents + 3)
    real = start_real_agents(setup, token, args.heartbeat)
    _log(f"3 real agents registered: {', '.join(real)}")
    fleet = Fleet()
    results: dict[str, Any] = {
        "agents": args.agents,
        "heartbeat_seconds": args.heartbeat,
        "idle": [],
    }
    steps = sorted({max(1, args.agents // 4), max(1, args.agents // 2), args.agents})
    results["registration"] = []
    try:
        for step in steps:
            added = await add_agents(
                fleet,
                setup,
                token,
                step - len(fleet.agents),
                options,
                concurrency=args.register_concurrency,
            )
            results["registration"].append(added)
            _log(
                f"{len(fleet.agents)} simulated agents registered ({added['count']} in"
                f" {added['seconds']:.1f}s, {added['requests'] / added['count']:.1f} API requests"
                f" and {1000 * added['cpu_seconds'] / added['count']:.0f} ms API server CPU each)"
                " and connected"
            )
            sample = await idle(setup, args.idle, len(fleet.agents) + 3, args.heartbeat)
            results["idle"].append(sample)
            _log(
                f"idle with {sample['agents']} agents: API server {100 * sample['cpu_share']:.1f} % of a core, {sample['rss_mb']:.0f} MB"
            )
            if step == steps[0] and len(steps) > 1:
                # The baseline for what grows with N: a first install and a commit at a quarter.
                small = [*real, *fleet.cluster_names()]
                await commit(setup, small, 1)
                set_latency(fleet, setup, real)
                results["commit_small"] = await commit(setup, small, 2)
                _log(
                    f"commit to {len(small)} clusters: all Ready {results['commit_small']['ready']:.1f}s"
                )
        clusters = [*real, *fleet.cluster_names()]
        first = 3 if "commit_small" in results else 1
        _log(f"first install: r{first} to {len(clusters)} clusters")
        results["install"] = await commit(setup, clusters, first)
        _log(f"all {len(clusters)} Ready {results['install']['ready']:.1f}s after the commit")
        set_latency(fleet, setup, real)
        results["local_seconds"] = fleet.locals[0].latency if fleet.locals else 0.0
        _log(f"commit: r{first + 1} to {len(clusters)} clusters")
        results["commit"] = await commit(setup, clusters, first + 1)
        _log(f"all {len(clusters)} Ready {results['commit']['ready']:.1f}s after the commit")
        results["storm"] = await storm(setup, fleet, args.outage)
    finally:
        fleet.stop.set()
        await asyncio.gather(*fleet.tasks, return_exceptions=True)
    return results


def _commit_lines(label: str, c: dict[str, Any]) -> None:
    n = c["clusters"]
    verdict = "met" if c["ready"] <= COMMIT_TARGET else "NOT met"
    print(
        f"\n{label} -> {n} clusters ({c['load']}): staged written {c['staged_written']:.1f}s,"
        f" all validated {c['validated']:.1f}s, released written {c['released_written']:.1f}s,"
        f" all Ready {c['ready']:.1f}s (target <= {COMMIT_TARGET:.0f}s: {verdict})"
    )
    print(
        f"  API server {c['apiserver_cpu_seconds']:.1f} CPU s"
        f" ({1000 * c['apiserver_cpu_seconds'] / n:.1f} ms per cluster,"
        f" {100 * c['apiserver_cpu_share']:.0f}% of a core), etcd {c['etcd_cpu_seconds']:.1f} CPU s,"
        f" agent API {c['agent_api_cpu_seconds']:.1f} CPU s, simulated agents' process"
        f" {100 * c['agents_cpu_share']:.0f}% of a core"
    )
    r = c["requests"]
    print(
        f"  requests: {r['requests'] / n:.1f} per cluster ({r['writes'] / n:.1f} writes):"
        + ", ".join(f" {k} {v:.2f}" for k, v in list(r["by_kind"].items())[:8])
    )


def report(results: dict[str, Any]) -> None:
    print("\nappflow pull agents against one hub API server (bench/agents.py)")
    print(f"machine: {os.cpu_count()} cores, {load()} at the end")
    print("\nregistration (one batch token, exactly one use per cluster):")
    for r in results["registration"]:
        print(
            f"  {r['count']:>5} agents in {r['seconds']:.1f}s ({r['count'] / r['seconds']:.1f}/s,"
            f" {r['load']}): {r['requests'] / r['count']:.1f} API requests"
            f" ({r['writes'] / r['count']:.1f} writes) and"
            f" {1000 * r['cpu_seconds'] / r['count']:.0f} ms API server CPU per registration"
        )
    last = results["registration"][-1]
    failed = last["unregistered"]
    print(
        f"  agents that could not register: {len(failed)}" + "".join(f"\n    {f}" for f in failed)
    )
    print("  per registration: " + ", ".join(f"{k} {v:.2f}" for k, v in last["by_kind"].items()))
    print(f"\nidle, heartbeat every {results['heartbeat_seconds']:.0f}s:")
    print(
        f"{'agents':>8} {'API server CPU':>16} {'CPU s':>7} {'RSS MB':>8} {'ms CPU/heartbeat':>17}"
        f" {'bench CPU':>10}  load"
    )
    for s in results["idle"]:
        print(
            f"{s['agents']:>8} {100 * s['cpu_share']:>15.1f}% {s['cpu_seconds']:>7.1f}"
            f" {s['rss_mb']:>8.0f} {s['cpu_per_heartbeat_ms']:>17.2f}"
            f" {100 * s['bench_cpu_share']:>9.1f}%  {s['load']}"
        )
    a, b = fit([(s["agents"], s["cpu_share"]) for s in results["idle"]])
    ma, mb = fit([(s["agents"], s["rss_mb"]) for s in results["idle"]])
    full = results["idle"][-1]
    print(
        f"target: idle CPU with {full['agents']} agents < {100 * IDLE_TARGET:.0f}% of a core:"
        f" {'met' if full['cpu_share'] < IDLE_TARGET else 'NOT met'}"
    )
    print(
        f"fit: CPU {100 * a:.2f}% + {100 * b * 1000:.2f}% per 1,000 agents; RSS {ma:.0f} MB +"
        f" {mb * 1000:.0f} MB per 1,000 agents"
    )
    print(
        f"extrapolated to 10,000 agents: {100 * (a + b * 10_000):.0f}% of a core,"
        f" {ma + mb * 10_000:.0f} MB"
    )
    if "commit_small" in results:
        _commit_lines("commit (baseline, a quarter of the fleet)", results["commit_small"])
    _commit_lines("first install", results["install"])
    _commit_lines("commit", results["commit"])
    big = results["commit"]
    if "commit_small" in results:
        small = results["commit_small"]
        k = big["clusters"] / small["clusters"]
        print(
            f"\nwhat grows with N ({small['clusters']} -> {big['clusters']} clusters, x{k:.1f}):"
            f" time x{big['ready'] / small['ready']:.2f},"
            f" API server CPU s x{big['apiserver_cpu_seconds'] / small['apiserver_cpu_seconds']:.2f},"
            f" requests x{big['requests']['requests'] / small['requests']['requests']:.2f},"
            f" requests per cluster {small['requests']['requests'] / small['clusters']:.1f} ->"
            f" {big['requests']['requests'] / big['clusters']:.1f}"
        )
    per_cluster = big["apiserver_cpu_seconds"] / big["clusters"]
    print(
        f"extrapolated to 10,000 clusters: ~{big['ready'] * 10_000 / big['clusters']:.0f}s at this"
        f" rate, {per_cluster * 10_000:.0f} API server CPU s"
        f" ({per_cluster * 10_000 / COMMIT_TARGET:.1f} cores to make it in {COMMIT_TARGET:.0f}s)"
    )
    print(
        f"  (the simulated agents took {results['local_seconds']:.2f}s per dry run and per"
        " apply, the real agents' median apply of the first install)"
    )
    s = results["storm"]
    print(
        f"\nreconnect storm after a hub restart ({s['load']}): settled in"
        f" {s['settle_seconds']:.1f}s, peak API server CPU {100 * s['peak_cpu_share']:.0f}% of a"
        f" core, {s['cpu_seconds']:.1f} CPU s in all; agents that gave up: {s['gave_up']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument(
        "--idle", type=float, default=60.0, help="Seconds of each idle measurement."
    )
    parser.add_argument("--heartbeat", type=float, default=60.0)
    parser.add_argument("--outage", type=float, default=20.0)
    parser.add_argument("--backoff-max", type=float, default=30.0)
    parser.add_argument(
        "--register-concurrency",
        type=int,
        default=16,
        help="Registrations in flight at once (a batch of devices powered on together).",
    )
    parser.add_argument("--keep", type=Path, help="Sandbox folder to reuse (not torn down).")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--publish", type=Path, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        job = json.loads(args.publish[0].read_text())
        done = asyncio.run(
            publish(
                Path(job["kubeconfig"]),
                job["clusters"],
                job["revision"],
                known=bool(job.get("known")),
            )
        )
        args.publish[1].write_text(json.dumps(done))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-agents-"))
    root = args.keep or work / "sandbox"
    env = {
        **os.environ,
        "APPFLOW_HOME": str(work / "home"),
        "APPFLOW_CACHE_DIR": str(work / "cache"),
    }
    os.environ.update(
        {"APPFLOW_HOME": env["APPFLOW_HOME"], "APPFLOW_CACHE_DIR": env["APPFLOW_CACHE_DIR"]}
    )
    setup: Setup | None = None
    try:
        _log("starting a hub and 3 edge clusters")
        (hub,) = sb.up(clusters=1, prefix="hub", root=root, timeout=300)
        edges = sb.up(clusters=3, prefix="edge", root=root, timeout=300)
        kubeconfig = (
            work / "hub.kubeconfig"
        )  # outside the cluster's folder: sandbox stop spares our processes
        shutil.copyfile(hub.kubeconfig, kubeconfig)
        setup = Setup(
            root=root, work=work, hub=hub, edges=list(edges), kubeconfig=kubeconfig, env=env
        )
        start(setup)
        results = asyncio.run(run(args, setup))
        report(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        if setup is not None:
            for proc in setup.processes:
                proc.terminate()
            for proc in setup.processes:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if not args.keep:
            sb.down(root=root)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
