"""Sync N objects onto one sandbox cluster with appflow, kubectl and helm, in one run.

    .venv/bin/python -m bench.sync_single [--objects 500] [--repeat 3] [--json FILE]

Starts its own one-cluster sandbox in a temporary folder (always torn down),
with a temporary APPFLOW_HOME and APPFLOW_CACHE_DIR, so the user's store,
cache and sandbox are never touched. For every repeat and every tool it
writes the same objects (a Namespace, then Deployments with 0 replicas,
Services and ConfigMaps in equal shares) into a namespace of that tool's own,
and times three steps:

    cold apply         the objects do not exist yet
    no-op re-sync      nothing changed
    one-object change  one ConfigMap's data was edited in the folder

Tools: ``appflow sync NAME`` as a user runs it (a subprocess, so its time
includes Python start-up and imports), appflow's Engine.sync in this process
(a warm engine, as the daemon runs it), ``kubectl apply --server-side`` and
``helm upgrade --install`` of a chart whose templates are the same files.
The order of the tools rotates between repeats so that drift in the
machine's load does not always hit the same tool. Medians are reported with
the range, and the ratios against kubectl's median of the same run.

Then the "fresh CLI, unchanged app" figures: `appflow sync NAME` and `appflow
status` run as new processes against the app the CLI just synced (unchanged, so
each sync is a no-op that still reads and compares every live object), each
--fresh times, first alone and then with `appflow serve` running for the same
home (which takes the sync over), each run next to a no-op `kubectl apply
--server-side` of kubectl's copy (the baseline row, and the /kubectl column: both
meet the same load). Its target is 0.25 s wall.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STEPS = ("cold", "noop", "change")
STEP_TITLES = {"cold": "cold apply", "noop": "no-op re-sync", "change": "one-object change"}
TARGETS = {"cold": 1.0, "noop": 0.1, "change": 0.2}
"""Highest allowed appflow/kubectl ratio per step (the issue's targets)."""
TOOLS = ("appflow", "appflow-lib", "kubectl", "helm")
TOOL_TITLES = {
    "appflow": "appflow CLI",
    "appflow-lib": "appflow lib",
    "kubectl": "kubectl",
    "helm": "helm",
}
CLUSTER = "bench-1"
CHANGED_CONFIGMAP = "cm-0000"
FRESH_TARGET = 0.25
"""Seconds of wall time a fresh `appflow sync` / `appflow status` of an unchanged app may take."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the objects ------------------------------------------------------------------


def object_counts(total: int) -> dict[str, int]:
    """Deployments, Services and ConfigMaps in equal shares (ConfigMaps take the remainder)."""
    third = total // 3
    return {"Deployment": third, "Service": third, "ConfigMap": total - 2 * third}


def manifests(namespace: str, total: int, *, generation: int = 0) -> dict[str, dict[str, Any]]:
    """File name -> object: the Namespace, then TOTAL objects in it.

    GENERATION is the data of ConfigMap cm-0000: the one-object change bumps it.
    """
    counts = object_counts(total)
    out: dict[str, dict[str, Any]] = {
        "00-namespace.yaml": {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace},
        }
    }
    for i in range(counts["Deployment"]):
        name = f"web-{i:04d}"
        out[f"deploy-{name}.yaml"] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "registry.k8s.io/pause:3.10",
                                "ports": [{"containerPort": 8080, "name": "http"}],
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                            }
                        ]
                    },
                },
            },
        }
    for i in range(counts["Service"]):
        name = f"web-{i:04d}"
        out[f"svc-{name}.yaml"] = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }
    for i in range(counts["ConfigMap"]):
        name = f"cm-{i:04d}"
        value = f"generation-{generation}" if name == CHANGED_CONFIGMAP else "generation-0"
        out[f"{name}.yaml"] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
            "data": {
                "generation": value,
                "settings.ini": f"[server]\nname = {name}\nworkers = 4\nlog_level = info\n",
            },
        }
    return out


def write_manifests(folder: Path, objects: Mapping[str, dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, obj in objects.items():
        (folder / name).write_text(yaml.safe_dump(obj, sort_keys=False))


def write_changed_configmap(folder: Path, namespace: str, total: int) -> None:
    """Edit one ConfigMap's data in FOLDER, as a commit touching one file would."""
    name = f"{CHANGED_CONFIGMAP}.yaml"
    obj = manifests(namespace, total, generation=1)[name]
    (folder / name).write_text(yaml.safe_dump(obj, sort_keys=False))


# -- the tools ----------------------------------------------------------------------


@dataclass
class Env:
    """Where everything of this run lives: temp folders, tools, the cluster's kubeconfig."""

    tmp: Path
    kubeconfig: Path
    kubectl: Path
    helm: Path
    appflow: list[str]
    environ: dict[str, str]

    def run(self, args: list[str], *, what: str) -> Sample:
        """Run ARGS; return its wall and CPU time; fail loudly (with its output) when it fails."""
        return self.run_output(args, what=what)[0]

    def run_output(self, args: list[str], *, what: str) -> tuple[Sample, str]:
        """As run, and what ARGS printed on stdout."""
        cpu = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(args, env=self.environ, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(
                f"{what} failed (exit {done.returncode}): {' '.join(args)}\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return Sample(wall=elapsed, cpu=_children_cpu() - cpu), done.stdout


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Sample:
    """One timed step: wall-clock seconds, and CPU seconds of the client (all its threads)."""

    wall: float
    cpu: float


@dataclass
class Target:
    """One tool's copy of the objects in one repeat: its namespace and folder."""

    tool: str
    repeat: int
    namespace: str
    folder: Path
    """The manifests (for helm: the chart's templates/)."""
    name: str
    """The app or release name."""


class Runner:
    """Knows how to cold-apply, re-sync and change-sync each tool's target."""

    def __init__(self, env: Env, total: int) -> None:
        self.env = env
        self.total = total
        self._engine: Any = None
        self._loop: asyncio.Runner | None = None

    # appflow, in-process: one warm Engine for the whole run, as the daemon keeps it.
    def engine(self) -> Any:
        if self._engine is None:
            from appflow.engine.engine import Engine
            from appflow.store import open_store

            self._loop = asyncio.Runner()
            self._engine = Engine(open_store())
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine.store.close()
        if self._loop is not None:
            self._loop.close()

    def target(self, tool: str, repeat: int) -> Target:
        namespace = f"bench-{tool}-{repeat}"
        if tool == "helm":
            chart = self.env.tmp / "charts" / namespace
            folder = chart / "templates"
        else:
            folder = self.env.tmp / "apps" / namespace
        return Target(tool=tool, repeat=repeat, namespace=namespace, folder=folder, name=namespace)

    def setup(self, t: Target) -> None:
        """Write the objects and register the app (untimed)."""
        write_manifests(t.folder, manifests(t.namespace, self.total))
        if t.tool == "helm":
            chart = t.folder.parent
            (chart / "Chart.yaml").write_text(
                yaml.safe_dump(
                    {"apiVersion": "v2", "name": t.name, "version": "0.1.0", "type": "application"}
                )
            )
        if t.tool in ("appflow", "appflow-lib"):
            self.env.run(
                [*self.env.appflow, "app", "add", t.name, "--local", str(t.folder)],
                what="appflow app add",
            )

    def sync(self, t: Target) -> Sample:
        """Bring the cluster to the folder's content with T's tool; return the wall time."""
        env = self.env
        if t.tool == "appflow":
            return env.run([*env.appflow, "sync", t.name], what="appflow sync")
        if t.tool == "appflow-lib":
            engine = self.engine()
            assert self._loop is not None
            cpu = time.process_time()
            started = time.perf_counter()
            report = self._loop.run(engine.sync(t.name))
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            if not report.ok:
                problems = [str(e) for e in report.blocked] + [
                    str(e) for e in report.unreachable.values()
                ]
                problems += [str(e) for r in report.results for e in r.errors]
                raise RuntimeError(f"Engine.sync({t.name}) failed: {'; '.join(problems)}")
            return Sample(wall=elapsed, cpu=cpu)
        if t.tool == "kubectl":
            return env.run(kubectl_noop(env, t), what="kubectl apply")
        if t.tool == "helm":
            return env.run(
                [
                    str(env.helm),
                    "upgrade",
                    "--install",
                    t.name,
                    str(t.folder.parent),
                    "--namespace",
                    "default",
                    "--kubeconfig",
                    str(env.kubeconfig),
                ],
                what="helm upgrade --install",
            )
        raise ValueError(f"unknown tool {t.tool}")

    def change(self, t: Target) -> None:
        write_changed_configmap(t.folder, t.namespace, self.total)


def kubectl_noop(env: Env, t: Target) -> list[str]:
    """kubectl's apply of T's folder (a no-op once the folder is applied)."""
    return [
        str(env.kubectl),
        "--kubeconfig",
        str(env.kubeconfig),
        "apply",
        "--server-side",
        "--field-manager",
        "bench",
        "--recursive",
        "-f",
        str(t.folder),
    ]


# -- checks (untimed): a benchmark that applied nothing would be fast and wrong ----------


def _kubectl_json(env: Env, args: list[str]) -> Any:
    done = subprocess.run(
        [str(env.kubectl), "--kubeconfig", str(env.kubeconfig), *args, "-o", "json"],
        env=env.environ,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def check_applied(env: Env, t: Target, total: int, *, generation: int) -> None:
    counts = object_counts(total)
    for kind, plural in (
        ("Deployment", "deployments"),
        ("Service", "services"),
        ("ConfigMap", "configmaps"),
    ):
        items = _kubectl_json(env, ["get", plural, "-n", t.namespace, "-l", "app"])["items"]
        if len(items) != counts[kind]:
            raise RuntimeError(
                f"{t.tool}: expected {counts[kind]} {kind}s in {t.namespace}, found {len(items)}"
            )
    cm = _kubectl_json(env, ["get", "configmap", CHANGED_CONFIGMAP, "-n", t.namespace])
    if cm["data"]["generation"] != f"generation-{generation}":
        raise RuntimeError(
            f"{t.tool}: {CHANGED_CONFIGMAP} in {t.namespace} has {cm['data']['generation']!r}, "
            f"expected generation-{generation}"
        )


# -- the run ------------------------------------------------------------------------


@dataclass
class Results:
    samples: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {tool: {step: [] for step in STEPS} for tool in TOOLS}
    )
    """Wall-clock seconds per tool and step."""
    cpu: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {tool: {step: [] for step in STEPS} for tool in TOOLS}
    )
    """CPU seconds of the client per tool and step (not the API server's)."""

    def median(self, tool: str, step: str) -> float | None:
        values = self.samples[tool][step]
        return statistics.median(values) if values else None


def measure(runner: Runner, tools: list[str], repeats: int, total: int) -> Results:
    results = Results()
    for repeat in range(1, repeats + 1):
        # Rotate the order so that no tool always runs first (or last) in a repeat.
        shift = (repeat - 1) % len(tools)
        order = tools[shift:] + tools[:shift]
        for tool in order:
            t = runner.target(tool, repeat)
            runner.setup(t)
            steps: list[tuple[str, Callable[[], None] | None, int]] = [
                ("cold", None, 0),
                ("noop", None, 0),
                ("change", lambda t=t: runner.change(t), 1),  # type: ignore[misc]
            ]
            for step, before, generation in steps:
                if before is not None:
                    before()
                sample = runner.sync(t)
                check_applied(runner.env, t, total, generation=generation)
                results.samples[tool][step].append(sample.wall)
                results.cpu[tool][step].append(sample.cpu)
                _log(
                    f"  repeat {repeat} {tool:<12} {STEP_TITLES[step]:<18} "
                    f"{sample.wall:7.2f}s wall {sample.cpu:7.2f}s client CPU"
                )
    return results


# -- fresh CLI, unchanged app ---------------------------------------------------------


@dataclass
class Fresh:
    """Fresh processes against the unchanged app: wall and CPU seconds per run."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    daemon_cpu: dict[str, list[float]] = field(default_factory=dict)
    """CPU seconds `appflow serve` spent per handed-over command (by row key)."""


FRESH_ROWS = {
    "kubectl": "kubectl apply --server-side (no-op, baseline)",
    "sync": "appflow sync NAME",
    "status": "appflow status",
    "sync-serve": "appflow sync NAME, appflow serve running",
    "status-serve": "appflow status, appflow serve running",
}


def _process_cpu(pid: int) -> float:
    """utime + stime of process PID (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _check_noop(sample_out: str, total: int) -> None:
    # A fast answer that did not look at the cluster would be wrong: every object must
    # have been compared and found unchanged.
    expected = f"0 created, 0 configured, {total + 1} unchanged"
    if expected not in " ".join(sample_out.split()):
        raise RuntimeError(f"not the expected no-op ({expected}): {sample_out[-2000:]}")


def measure_fresh(env: Env, name: str, total: int, runs: int, *, kubectl: list[str]) -> Fresh:
    """`appflow sync NAME` and `appflow status` as new processes, alone and with serve up,
    each run next to a no-op KUBECTL apply (the baseline, so that both meet the same load)."""
    fresh = Fresh()

    def record(key: str, sample: Sample) -> None:
        fresh.wall.setdefault(key, []).append(sample.wall)
        fresh.cpu.setdefault(key, []).append(sample.cpu)

    def baseline() -> None:
        record("kubectl", env.run(kubectl, what="kubectl apply (no-op baseline)"))

    for key, args in (("sync", ["sync", name]), ("status", ["status"])):
        env.run([*env.appflow, *args], what=f"appflow {args[0]} (warm-up)")
        for _ in range(runs):
            baseline()
            sample, out = env.run_output([*env.appflow, *args], what=f"appflow {args[0]}")
            if key == "sync":
                _check_noop(out, total)
            record(key, sample)
    with serving(env) as daemon:
        for key, args in (("sync-serve", ["sync", name]), ("status-serve", ["status"])):
            env.run([*env.appflow, *args], what=f"appflow {args[0]} (warm-up, handed over)")
            for _ in range(runs):
                baseline()
                before = _process_cpu(daemon.pid)
                sample, out = env.run_output([*env.appflow, *args], what=f"appflow {args[0]}")
                fresh.daemon_cpu.setdefault(key, []).append(_process_cpu(daemon.pid) - before)
                if key == "sync-serve":
                    _check_noop(out, total)
                elif name not in out:
                    raise RuntimeError(f"appflow status does not show {name}: {out[-2000:]}")
                record(key, sample)
    return fresh


@contextmanager
def serving(env: Env) -> Iterator[subprocess.Popen[bytes]]:
    """`appflow serve` for the bench's home, idle (its start-up syncs done), until the block ends."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (env.tmp / "serve.log").open("wb")
    daemon = subprocess.Popen(
        [*env.appflow, "serve", "--listen", f"127.0.0.1:{port}", "--poll", "3600"],
        env=env.environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_idle(env, daemon)
        yield daemon
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
        log.close()


def _wait_idle(env: Env, daemon: subprocess.Popen[bytes], *, timeout: float = 300.0) -> None:
    """Until the daemon's socket answers and the syncs it queued at start have finished."""
    import sqlite3

    home = Path(env.environ["APPFLOW_HOME"])
    deadline = time.monotonic() + timeout
    with sqlite3.connect(home / "appflow.db") as db:
        (last,) = db.execute("SELECT coalesce(max(id), 0) FROM syncs").fetchone()
        (apps,) = db.execute("SELECT count(*) FROM apps").fetchone()
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise RuntimeError(f"appflow serve exited: {(env.tmp / 'serve.log').read_text()}")
            synced, running = db.execute(
                "SELECT count(DISTINCT app), sum(outcome = 'running') FROM syncs WHERE id > ?",
                (last,),
            ).fetchone()
            if (home / "serve.sock").exists() and synced >= apps and not running:
                return
            time.sleep(0.2)
    raise RuntimeError(f"appflow serve did not become idle within {timeout:.0f}s")


def fresh_table(fresh: Fresh) -> str:
    headers = ["fresh process, unchanged app", "wall s", "client CPU s", "/kubectl", "target"]
    headers.append("met?")
    rows = []
    kubectl = statistics.median(fresh.wall["kubectl"]) if "kubectl" in fresh.wall else None
    for key, title in FRESH_ROWS.items():
        if key not in fresh.wall:
            continue
        wall = statistics.median(fresh.wall[key])
        baseline = key == "kubectl"
        rows.append(
            [
                title,
                _cell(fresh.wall[key]),
                _cell(fresh.cpu[key]),
                "-" if baseline or not kubectl else f"{wall / kubectl:.2f}",
                "-" if baseline else f"<= {FRESH_TARGET:.2f}",
                "-" if baseline else ("yes" if wall <= FRESH_TARGET else "NO"),
            ]
        )
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    for key, values in fresh.daemon_cpu.items():
        lines.append(
            f"appflow serve's own CPU per handed-over {key.split('-')[0]}: {_cell(values)} s"
        )
    return "\n".join(lines)


def machine_facts(env: Env) -> dict[str, Any]:
    def first_line(args: list[str]) -> str:
        done = subprocess.run(args, env=env.environ, capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout else "?"

    server = json.loads(
        subprocess.run(
            [str(env.kubectl), "--kubeconfig", str(env.kubeconfig), "version", "-o", "json"],
            env=env.environ,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        or "{}"
    )
    from appflow import __version__ as appflow_version

    return {
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": _cpu_model(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kube_server": (server.get("serverVersion") or {}).get("gitVersion", "?"),
        "kubectl": (server.get("clientVersion") or {}).get("gitVersion", "?"),
        "helm": first_line([str(env.helm), "version", "--short"]),
        "appflow": appflow_version,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.2f}"
    return f"{median:.2f} ({min(values):.2f}-{max(values):.2f})"


def table(results: Results, tools: list[str]) -> tuple[str, dict[str, Any]]:
    """The printed table and the ratios it shows."""
    headers = ["step", *(f"{TOOL_TITLES[t]} s" for t in tools)]
    ratio_tools = [t for t in ("appflow", "appflow-lib") if t in tools]
    headers += [f"{TOOL_TITLES[t]}/kubectl" for t in ratio_tools] + ["target", "met?"]
    rows: list[list[str]] = []
    ratios: dict[str, Any] = {}
    for step in STEPS:
        row = [STEP_TITLES[step], *(_cell(results.samples[t][step]) for t in tools)]
        kubectl = results.median("kubectl", step)
        met: list[str] = []
        for tool in ratio_tools:
            mine = results.median(tool, step)
            ratio = mine / kubectl if mine is not None and kubectl else None
            ratios.setdefault(tool, {})[step] = ratio
            row.append(f"{ratio:.3f}" if ratio is not None else "-")
            if ratio is not None:
                met.append(
                    f"{'yes' if ratio <= TARGETS[step] else 'NO'}"
                    + (" (lib)" if tool == "appflow-lib" else "")
                )
        row += [f"<= {TARGETS[step]:.1f}x", ", ".join(met) or "-"]
        rows.append(row)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines), ratios


@contextmanager
def sandbox_cluster(tmp: Path) -> Iterator[Path]:
    """A one-cluster sandbox under TMP; yields its kubeconfig; always torn down."""
    from appflow import sandbox as sb

    root = tmp / "sandbox"
    try:
        infos = sb.up(clusters=1, root=root, prefix="bench", nodes=1, progress=_log)
        yield infos[0].kubeconfig
    finally:
        report = sb.down(root=root)
        for problem in report.problems:
            _log(f"sandbox teardown: {problem}")


def tool_path(name: str) -> Path:
    from appflow.paths import tools_dir

    for candidate in (tools_dir() / "bin" / name, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit(f"{name} not found in {tools_dir() / 'bin'} nor on PATH")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sync_single", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--objects", type=int, default=500, help="objects per namespace")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per cell (median)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument(
        "--no-lib",
        action="store_true",
        help="skip the in-process Engine.sync measurement (saves a quarter of the run)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp folder (not the sandbox)"
    )
    parser.add_argument(
        "--fresh",
        type=int,
        default=7,
        help="runs of each fresh-process figure (0 skips them)",
    )
    args = parser.parse_args(argv)
    if args.objects < 3 or args.repeat < 1:
        parser.error("--objects must be at least 3 and --repeat at least 1")
    tools = [t for t in TOOLS if not (args.no_lib and t == "appflow-lib")]

    # Resolve the tools before the environment points appflow's folders elsewhere.
    kubectl, helm = tool_path("kubectl"), tool_path("helm")
    tmp = Path(tempfile.mkdtemp(prefix="appflow-bench-"))
    overrides = {
        "APPFLOW_HOME": str(tmp / "home"),
        "APPFLOW_CACHE_DIR": str(tmp / "cache"),
        "APPFLOW_SANDBOX_DIR": str(tmp / "sandbox"),
        "HELM_CONFIG_HOME": str(tmp / "helm" / "config"),
        "HELM_CACHE_HOME": str(tmp / "helm" / "cache"),
        "HELM_DATA_HOME": str(tmp / "helm" / "data"),
        "KUBECACHEDIR": str(tmp / "kube-cache"),
    }
    os.environ.update(overrides)
    environ = {**os.environ, **overrides}
    # A user's installed appflow has its bytecode compiled (pip does it): a child that
    # may not write it would compile every module at each start and measure that.
    environ.pop("PYTHONDONTWRITEBYTECODE", None)
    appflow = [sys.executable, "-m", "appflow.cli.main"]
    if Path(sys.executable).with_name("appflow").is_file():
        appflow = [str(Path(sys.executable).with_name("appflow"))]
    _log(f"bench: {args.objects} objects x {args.repeat} repeats, tools {', '.join(tools)}")
    _log(f"bench: temp folder {tmp}")
    runner: Runner | None = None
    try:
        with sandbox_cluster(tmp) as kubeconfig:
            env = Env(
                tmp=tmp,
                kubeconfig=kubeconfig,
                kubectl=kubectl,
                helm=helm,
                appflow=appflow,
                environ=environ,
            )
            env.run(
                [*appflow, "cluster", "add", CLUSTER, "--kubeconfig", str(kubeconfig)],
                what="appflow cluster add",
            )
            facts = machine_facts(env)
            _log("bench: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
            runner = Runner(env, args.objects)
            started = time.perf_counter()
            results = measure(runner, tools, args.repeat, args.objects)
            wall = time.perf_counter() - started
            facts["loadavg_fresh_start"] = [round(x, 2) for x in os.getloadavg()]
            fresh = (
                measure_fresh(
                    env,
                    runner.target("appflow", args.repeat).name,
                    args.objects,
                    args.fresh,
                    kubectl=kubectl_noop(env, runner.target("kubectl", args.repeat)),
                )
                if args.fresh > 0 and "appflow" in tools
                else Fresh()
            )
            facts["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if runner is not None:
            runner.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    text, ratios = table(results, tools)
    print()
    print(
        f"sync of {args.objects} objects (+1 Namespace) onto one sandbox cluster; "
        f"median (min-max) of {args.repeat} run(s) in seconds; measured in {wall:.0f}s"
    )
    print(
        "machine: "
        + ", ".join(f"{k} {v}" for k, v in facts.items() if k not in ("loadavg", "loadavg_end"))
    )
    print(f"load average: {facts['loadavg']} at start, {facts['loadavg_end']} at end")
    print(
        "appflow CLI = `appflow sync NAME` in a subprocess (includes Python start-up and imports);"
    )
    print("appflow lib = Engine.sync in this process with a warm engine (as the daemon runs it).")
    print()
    print(text)
    print()
    if fresh.wall:
        print(
            f"fresh CLI, unchanged app: median (min-max) of {args.fresh} new processes each, "
            "after one warm-up; 'serve running' = the sync handed to `appflow serve`"
        )
        print(fresh_table(fresh))
        print()
    print("client CPU seconds (median; the client process and its threads, not the API server):")
    for step in STEPS:
        cells = "  ".join(
            f"{TOOL_TITLES[t]} {statistics.median(results.cpu[t][step]):.2f}" for t in tools
        )
        print(f"  {STEP_TITLES[step]:<18} {cells}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "objects": args.objects,
                    "repeat": args.repeat,
                    "machine": facts,
                    "samples": {t: results.samples[t] for t in tools},
                    "client_cpu": {t: results.cpu[t] for t in tools},
                    "medians": {t: {s: results.median(t, s) for s in STEPS} for t in tools},
                    "ratios_vs_kubectl": ratios,
                    "targets": TARGETS,
                    "fresh_cli_unchanged_app": {
                        "wall": fresh.wall,
                        "client_cpu": fresh.cpu,
                        "serve_cpu_per_command": fresh.daemon_cpu,
                        "target_wall": FRESH_TARGET,
                    },
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
