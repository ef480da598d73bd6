"""K apps onto N sandbox clusters: appflow against a loop of kubectl, in one run.

    .venv/bin/python -m bench.fleet [--clusters 6] [--apps 20] [--json FILE]

Each app is what Flux's published benchmark deploys per app: a Namespace of
its own with a Deployment (0 replicas), a ServiceAccount, a Service and a
ConfigMap. The run starts its own N-cluster sandbox in a temporary folder
(always torn down) with a temporary APPFLOW_HOME, so the user's store, cache
and sandbox are never touched. Every tool writes its own copy of the apps
(namespaces prefixed by the tool), and each is timed from the start of the
sync until every one of its K x N Deployments is Available, in the stages
Fleet's scale tests report:

    rendered   every app is rendered for every cluster (appflow engine only)
    applied    every object is written (the sync returned)
    ready      every Deployment reports Available (polled, or kubectl wait)

Tools:
    appflow engine     Engine.sync of the K apps at once in this process, as one
                       appflow process drives a fleet (the daemon to come)
    appflow sync --all the CLI as a user runs it: one fresh process (its start-up
                       included), the apps at once as they do not depend on each
                       other, each across its clusters in parallel
    kubectl loop       what a user's script does: for each cluster,
                       `kubectl apply --server-side -R -f apps/`, then for each
                       cluster `kubectl wait --for=condition=Available`

Peak RSS is VmHWM of this process for the engine (it includes the bench's
own imports; the figure before the sync is printed too), and the child's
maxrss (GNU time) for the CLI and for the largest kubectl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PREFIX = "fleet"
LABEL = "appflow.dev/bench"
READY_TARGET_SECONDS = 30.0
SPEEDUP_TARGET = 3.0
CLI_OVER_ENGINE_TARGET = 1.10
"""`appflow sync --all` may take at most 10% longer than the engine's all-at-once sync."""
TOOLS = ("engine", "cli", "kubectl")
TOOL_TITLES = {
    "engine": "appflow engine",
    "cli": "appflow sync --all",
    "kubectl": "kubectl loop",
}
NAMESPACE_PREFIX = {"engine": "af", "cli": "afcli", "kubectl": "kc"}
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")
"""Reports a child's own peak RSS; without it, child RSS is not reported."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the apps ------------------------------------------------------------------------


def app_objects(tool: str, index: int) -> dict[str, dict[str, Any]]:
    """File name -> object for app INDEX of TOOL: its Namespace and the four objects in it."""
    name = f"app-{index:02d}"
    ns = f"{NAMESPACE_PREFIX[tool]}-{name}"
    labels = {"app": name, LABEL: tool}
    meta = {"name": name, "namespace": ns, "labels": labels}
    return {
        "00-namespace.yaml": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        "serviceaccount.yaml": {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        "configmap.yaml": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {"settings.ini": f"[server]\nname = {name}\nworkers = 4\n"},
        },
        "service.yaml": {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        "deployment.yaml": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "serviceAccountName": name,
                        "containers": [
                            {
                                "name": "web",
                                "image": "registry.k8s.io/pause:3.10",
                                "ports": [{"containerPort": 8080}],
                                "envFrom": [{"configMapRef": {"name": name}}],
                            }
                        ],
                    },
                },
            },
        },
    }


def write_apps(folder: Path, tool: str, count: int) -> list[str]:
    """One folder per app under FOLDER; returns the app names (the folder names)."""
    names = []
    for index in range(count):
        app = folder / f"{NAMESPACE_PREFIX[tool]}-app-{index:02d}"
        app.mkdir(parents=True, exist_ok=True)
        for file, obj in app_objects(tool, index).items():
            (app / file).write_text(yaml.safe_dump(obj, sort_keys=False))
        names.append(app.name)
    return names


# -- measuring ------------------------------------------------------------------------


@dataclass
class Stages:
    """Seconds from the start of the sync; None where a tool has no such stage."""

    rendered: float | None = None
    applied: float | None = None
    ready: float | None = None
    peak_rss_mib: float | None = None
    cpu: float | None = None
    """CPU seconds (user + system, every thread) the tool's process spent until applied."""
    notes: list[str] = field(default_factory=list)


@dataclass
class Env:
    tmp: Path
    kubectl: Path
    kubeconfigs: dict[str, Path]
    environ: dict[str, str]
    appflow: list[str]


def run_child(env: Env, args: Sequence[str], *, what: str) -> float:
    """Run ARGS to completion; return its peak RSS in MiB; fail loudly with its output.

    The peak comes from GNU time (a small C parent): the rusage of a child
    forked from this Python process would count this process's own pages.
    """
    out = env.tmp / "child.out"
    peak = env.tmp / "child.maxrss"
    timed = [str(GNU_TIME), "-o", str(peak), "-f", "%M", *args] if GNU_TIME else list(args)
    with out.open("w") as sink:
        done = subprocess.run(timed, env=env.environ, stdout=sink, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {done.returncode}): {' '.join(args)}\n{out.read_text()[-4000:]}"
        )
    if not GNU_TIME:
        return float("nan")
    return int(peak.read_text().split()[-1]) / 1024


def _children_cpu() -> float:
    # GNU time waits for its child, so the child's CPU is in this process's children's.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _available(deployment: dict[str, Any]) -> bool:
    status = deployment.get("status") or {}
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 1):
        return False
    return any(
        c.get("type") == "Available" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def wait_ready(env: Env, tool: str, expected: int, *, timeout: float = 300.0) -> None:
    """Poll every cluster (one LIST each) until EXPECTED Deployments of TOOL are Available."""
    from appflow.kube.client import Connection, KubeCluster

    kubes = [
        KubeCluster(Connection(name=n, kubeconfig=k, timeout=30))
        for n, k in env.kubeconfigs.items()
    ]
    deadline = time.monotonic() + timeout
    try:
        pending = list(kubes)
        while pending:
            pending = [
                kube
                for kube in pending
                if sum(
                    _available(d)
                    for d in kube.list_sync(
                        "apps/v1", "Deployment", label_selector=f"{LABEL}={tool}"
                    )
                )
                < expected
            ]
            if pending and time.monotonic() > deadline:
                raise RuntimeError(
                    f"{tool}: Deployments not Available after {timeout:.0f}s on "
                    + ", ".join(k.name for k in pending)
                )
            if pending:
                time.sleep(0.1)
    finally:
        for kube in kubes:
            kube.close()


def measure_engine(env: Env, apps: list[str], folder: Path) -> Stages:
    """All apps synced at once by one in-process Engine; stages from its progress messages."""
    from appflow.engine.engine import Engine
    from appflow.model.records import AppRecord
    from appflow.store import open_store

    store = open_store()
    for app in apps:
        store.put_app(AppRecord(name=app, source="local", local_path=str(folder), path=app))
    engine = Engine(store)
    rendered: dict[str, float] = {}
    stages = Stages()
    before = _vm_hwm_mib()
    started = time.perf_counter()
    cpu = time.process_time()

    def progress_of(app: str) -> Any:
        def progress(message: str) -> None:
            if ": validating on " in message and app not in rendered:
                rendered[app] = time.perf_counter() - started

        return progress

    async def sync_all() -> list[Any]:
        return list(await asyncio.gather(*(engine.sync(a, progress=progress_of(a)) for a in apps)))

    try:
        reports = asyncio.run(sync_all())
        stages.applied = time.perf_counter() - started
        stages.cpu = time.process_time() - cpu
        problems = [
            f"{r.app}: {e}"
            for r in reports
            for e in [
                *r.blocked,
                *r.unreachable.values(),
                *(x for y in r.results for x in y.errors),
            ]
        ]
        if problems:
            raise RuntimeError("appflow engine sync failed: " + "; ".join(problems[:5]))
        wait_ready(env, "engine", len(apps))
        stages.ready = time.perf_counter() - started
    finally:
        engine.close()
        store.close()
    stages.rendered = max(rendered.values()) if len(rendered) == len(apps) else None
    stages.peak_rss_mib = _vm_hwm_mib()
    stages.notes.append(f"this process had VmHWM {before:.0f} MiB before the sync")
    return stages


def measure_cli(env: Env, folder: Path, apps: list[str]) -> Stages:
    """`appflow sync --all` in its own appflow home, as a user types it."""
    home = env.tmp / "home-cli"
    cli_env = Env(
        tmp=env.tmp,
        kubectl=env.kubectl,
        kubeconfigs=env.kubeconfigs,
        environ={**env.environ, "APPFLOW_HOME": str(home)},
        appflow=env.appflow,
    )
    run_child(cli_env, [*env.appflow, "cluster", "add", "--from-sandbox"], what="cluster add")
    run_child(cli_env, [*env.appflow, "repo", "add", "cli", str(folder)], what="repo add")
    stages = Stages()
    started = time.perf_counter()
    cpu = _children_cpu()
    stages.peak_rss_mib = run_child(cli_env, [*env.appflow, "sync", "--all"], what="sync --all")
    stages.applied = time.perf_counter() - started
    stages.cpu = _children_cpu() - cpu
    wait_ready(env, "cli", len(apps))
    stages.ready = time.perf_counter() - started
    return stages


def measure_kubectl(env: Env, folder: Path) -> Stages:
    """A user's script: apply every app to each cluster in turn, then wait on each cluster."""
    stages = Stages()
    peak = 0.0
    started = time.perf_counter()
    for name, kubeconfig in env.kubeconfigs.items():
        peak = max(
            peak,
            run_child(
                env,
                [
                    str(env.kubectl),
                    "--kubeconfig",
                    str(kubeconfig),
                    "apply",
                    "--server-side",
                    "--field-manager",
                    "bench",
                    "-R",
                    "-f",
                    str(folder),
                ],
                what=f"kubectl apply on {name}",
            ),
        )
    stages.applied = time.perf_counter() - started
    for name, kubeconfig in env.kubeconfigs.items():
        peak = max(
            peak,
            run_child(
                env,
                [
                    str(env.kubectl),
                    "--kubeconfig",
                    str(kubeconfig),
                    "wait",
                    "--for=condition=Available",
                    "deployment",
                    "-A",
                    "-l",
                    f"{LABEL}=kubectl",
                    "--timeout=300s",
                ],
                what=f"kubectl wait on {name}",
            ),
        )
    stages.ready = time.perf_counter() - started
    stages.peak_rss_mib = peak
    return stages


# -- the run ------------------------------------------------------------------------------


@contextmanager
def sandbox(tmp: Path, clusters: int) -> Iterator[dict[str, Path]]:
    """An N-cluster sandbox under TMP; yields name -> kubeconfig; always torn down."""
    from appflow import sandbox as sb

    root = tmp / "sandbox"
    try:
        infos = sb.up(clusters=clusters, root=root, prefix=PREFIX, nodes=1, timeout=300)
        yield {i.name: i.kubeconfig for i in infos}
    finally:
        report = sb.down(root=root)
        for problem in report.problems:
            _log(f"sandbox teardown: {problem}")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(results: dict[str, Stages], clusters: int, apps: int) -> tuple[str, dict[str, Any]]:
    kubectl_ready = results["kubectl"].ready
    headers = ["tool", "rendered s", "applied s", "ready s", "kubectl/tool", "peak RSS MiB"]
    rows = []
    verdict: dict[str, Any] = {}
    for tool, stages in results.items():
        ratio = kubectl_ready / stages.ready if kubectl_ready and stages.ready else None
        if tool != "kubectl":
            verdict[tool] = {
                "speedup": ratio,
                "speedup_met": ratio is not None and ratio >= SPEEDUP_TARGET,
                "ready_met": stages.ready is not None and stages.ready <= READY_TARGET_SECONDS,
            }
        rows.append(
            [
                TOOL_TITLES[tool],
                _seconds(stages.rendered),
                _seconds(stages.applied),
                _seconds(stages.ready),
                "-" if tool == "kubectl" or ratio is None else f"{ratio:.2f}x",
                "-" if stages.peak_rss_mib is None else f"{stages.peak_rss_mib:.0f}",
            ]
        )
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        f"{apps} apps x {clusters} clusters ({apps * clusters} Deployments, "
        f"{apps * clusters * 5} objects incl. Namespaces); seconds from the start of the sync",
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
        *("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows),
        "",
    ]
    for tool, v in verdict.items():
        lines.append(
            f"{TOOL_TITLES[tool]}: >= {SPEEDUP_TARGET:.0f}x faster than the kubectl loop: "
            f"{'yes' if v['speedup_met'] else 'NO'}; all Ready within "
            f"{READY_TARGET_SECONDS:.0f}s: {'yes' if v['ready_met'] else 'NO'}"
        )
    engine, cli = results.get("engine"), results.get("cli")
    if engine and cli and engine.applied and cli.applied:
        ratio = cli.applied / engine.applied
        verdict["cli_over_engine"] = {
            "applied_ratio": ratio,
            "met": ratio <= CLI_OVER_ENGINE_TARGET,
            "cpu": {"cli": cli.cpu, "engine": engine.cpu},
        }
        lines.append(
            f"{TOOL_TITLES['cli']} / {TOOL_TITLES['engine']}, applied: {ratio:.2f} "
            f"(target <= {CLI_OVER_ENGINE_TARGET:.2f}): "
            f"{'yes' if ratio <= CLI_OVER_ENGINE_TARGET else 'NO'}"
        )
        if cli.cpu is not None and engine.cpu is not None:
            # On a loaded machine a process waits for a core about as long as the load
            # says, per CPU second: the CPU is what shows where a gap in seconds comes from.
            lines.append(
                f"CPU seconds until applied: {TOOL_TITLES['cli']} {cli.cpu:.2f} (start-up "
                f"included), {TOOL_TITLES['engine']} {engine.cpu:.2f} (imports done before)"
            )
    for tool, stages in results.items():
        for note in stages.notes:
            lines.append(f"{TOOL_TITLES[tool]}: {note}")
    return "\n".join(lines), verdict


def tool_path(name: str) -> Path:
    from appflow.paths import tools_dir

    for candidate in (tools_dir() / "bin" / name, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit(f"{name} not found in {tools_dir() / 'bin'} nor on PATH")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--clusters", type=int, default=6, help="sandbox clusters (at least 6)")
    parser.add_argument("--apps", type=int, default=20, help="apps, each on every cluster")
    parser.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help=f"comma-separated subset of {','.join(TOOLS)} (kubectl is needed for ratios)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp folder (not the sandbox)"
    )
    args = parser.parse_args(argv)
    if args.clusters < 1 or args.apps < 1:
        parser.error("--clusters and --apps must be at least 1")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")

    kubectl = tool_path("kubectl")  # before the environment points appflow's folders elsewhere
    tmp = Path(tempfile.mkdtemp(prefix="appflow-fleet-bench-"))
    overrides = {
        "APPFLOW_HOME": str(tmp / "home"),
        "APPFLOW_CACHE_DIR": str(tmp / "cache"),
        "APPFLOW_SANDBOX_DIR": str(tmp / "sandbox"),
        "KUBECACHEDIR": str(tmp / "kube-cache"),
    }
    os.environ.update(overrides)
    appflow = [sys.executable, "-m", "appflow.cli.main"]
    if Path(sys.executable).with_name("appflow").is_file():
        appflow = [str(Path(sys.executable).with_name("appflow"))]
    _log(f"bench: {args.apps} apps x {args.clusters} clusters, temp folder {tmp}")
    results: dict[str, Stages] = {}
    loads: dict[str, str] = {"start": _load()}
    try:
        with sandbox(tmp, args.clusters) as kubeconfigs:
            env = Env(
                tmp=tmp,
                kubectl=kubectl,
                kubeconfigs=kubeconfigs,
                environ=dict(os.environ),
                appflow=appflow,
            )
            from appflow.engine.clusters import add_cluster
            from appflow.store import open_store

            store = open_store()
            try:
                for name, kubeconfig in kubeconfigs.items():
                    asyncio.run(
                        add_cluster(store, name=name, kind="imported", kubeconfig=kubeconfig)
                    )
            finally:
                store.close()
            for tool in tools:
                folder = tmp / "apps" / tool
                apps = write_apps(folder, tool, args.apps)
                loads[tool] = _load()
                _log(f"bench: {TOOL_TITLES[tool]} (load average {loads[tool]})")
                if tool == "engine":
                    results[tool] = measure_engine(env, apps, folder)
                elif tool == "cli":
                    results[tool] = measure_cli(env, folder, apps)
                else:
                    results[tool] = measure_kubectl(env, folder)
                s = results[tool]
                _log(
                    f"bench: {TOOL_TITLES[tool]}: rendered {_seconds(s.rendered)}s, "
                    f"applied {_seconds(s.applied)}s, ready {_seconds(s.ready)}s"
                )
    finally:
        loads["end"] = _load()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    if "kubectl" not in results:
        results["kubectl"] = Stages()
    text, verdict = table(results, args.clusters, args.apps)
    print()
    print(text)
    print(
        "load average (1, 5, 15 min): "
        + "; ".join(f"{k} {v}" for k, v in loads.items())
        + f"; {os.cpu_count()} CPUs"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "clusters": args.clusters,
                    "apps": args.apps,
                    "stages": {t: vars(s) for t, s in results.items()},
                    "verdict": verdict,
                    "loadavg": loads,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
