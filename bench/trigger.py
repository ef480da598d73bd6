"""The daemon's reaction time and its idle cost: `appflow serve` as a process, in one run.

    .venv/bin/python -m bench.trigger [--pushes 20] [--apps 100] [--idle 60] [--json FILE]

It starts its own 3-cluster sandbox in a temporary folder (always torn down) with a
temporary APPFLOW_HOME, serves one git repository over HTTP (git's http-backend, as the
git tests do) holding one "hot" app (a ConfigMap and a Deployment on all three
clusters) and APPS idle apps (a Namespace, a ConfigMap and a Deployment each, on all
three clusters), registers it with a webhook secret, and runs `appflow serve` with its
defaults (repository poll every 60 s, resync every 600 s, drift watches on).

Once every app is Ready everywhere, it measures:

    webhook -> sync start   PUSHES commits to the hot app, each announced by a signed
                            GitHub push webhook; from the moment the request is sent to
                            the `started_at` of the first sync record of that push
    webhook -> Ready        from the same moment until the store shows the hot app
                            Ready on all three clusters (polled every 50 ms)
    idle CPU                utime + stime of the daemon (/proc/<pid>/stat, all threads)
                            over IDLE seconds with everything synced and unchanged, as
                            a share of one core; the busiest threads are listed
    RSS                     VmRSS of the daemon at the end of the idle window

The numbers of a shared machine move with its load: the load average is printed at
start and end. No test asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

PREFIX = "trig"
CLUSTERS = 3
SECRET = b"bench-webhook-secret"
IDLE_CPU_TARGET = 2.0
"""Percent of one core: the issue's target for a daemon with nothing to do."""
SYNC_START_TARGET = (1.0, 2.0)
"""Seconds, p50 and p99 (proposed here, not in the issue): a webhook only enqueues, then
one ls-remote and one fetch of the repository come before the sync starts."""
READY_TARGET = 5.0
"""Seconds, p50 (proposed): a one-ConfigMap change on three clusters, synced in parallel."""
RSS_TARGET_MIB = 250.0
"""MiB (proposed) for 100 AppFlows x 3 clusters."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _docs(*objects: dict[str, Any]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def _configmap(name: str, ns: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


def _deployment(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "registry.example/web:1.0"}]},
            },
        },
    }


def repo_files(apps: int, push: int) -> dict[str, str | bytes | None]:
    """The repository's content: the hot app at PUSH, and APPS idle apps."""
    files: dict[str, str | bytes | None] = {
        "apps/hot/appflow.yaml": "name: hot\nnamespace: bench-hot\n",
        "apps/hot/config.yaml": _docs(_configmap("settings", "bench-hot", {"push": str(push)})),
        "apps/hot/web.yaml": _docs(_deployment("web", "bench-hot")),
    }
    for i in range(apps):
        name, ns = f"idle-{i:03d}", f"bench-idle-{i:03d}"
        files[f"apps/{name}/appflow.yaml"] = f"name: {name}\nnamespace: {ns}\n"
        files[f"apps/{name}/objects.yaml"] = _docs(
            _configmap("settings", ns, {"i": str(i)}), _deployment("web", ns)
        )
    return files


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: Callable[[], bool], *, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise SystemExit(f"bench: timed out after {timeout:.0f}s waiting for {what}\n{tail}")
        time.sleep(0.05)


@contextmanager
def sandbox(root: Path) -> Iterator[list[Any]]:
    """A 3-cluster sandbox under ROOT; always torn down."""
    from appflow import sandbox as sb

    try:
        yield sb.up(clusters=CLUSTERS, root=root, prefix=PREFIX, timeout=300)
    finally:
        report = sb.down(root=root)
        for problem in report.problems:
            _log(f"sandbox teardown: {problem}")


def _cpu_ticks(pid: int) -> int:
    # Fields after the ")" of comm: state is field 3, utime 14, stime 15.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def _thread_ticks(pid: int) -> dict[str, int]:
    """CPU ticks per thread, keyed 'name (tid)'."""
    ticks: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        comm = "main" if task.name == str(pid) else comm  # the event loop's thread
        fields = text.rpartition(")")[2].split()
        ticks[f"{comm} ({task.name})"] = int(fields[11]) + int(fields[12])
    return ticks


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Results:
    sync_start: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)
    initial_ready: float = 0.0
    idle_cpu_percent: float = 0.0
    idle_seconds: float = 0.0
    busiest_threads: list[tuple[str, float]] = field(default_factory=list)
    rss_mib: float = 0.0
    loads: dict[str, str] = field(default_factory=dict)


def _hot_state(store: Any, baseline: int) -> tuple[float | None, bool]:
    """(first start of a hot sync after BASELINE as a timestamp, hot Ready on every cluster)."""
    syncs = [s for s in store.list_syncs("hot", limit=20) if s.id > baseline]
    started = min((s.started_at.timestamp() for s in syncs), default=None)
    finished = {s.cluster for s in syncs if s.outcome == "succeeded"}
    deployments = store.list_deployments(app="hot")
    ready = len(finished) == CLUSTERS and all(d.state == "Ready" for d in deployments)
    return started, ready and len(deployments) == CLUSTERS


def _push(base: str, url: str, commit: str, delivery: str) -> None:
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "after": commit,
            "repository": {"clone_url": url, "html_url": url},
        }
    ).encode()
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    response = httpx.post(
        f"{base}/hooks/github",
        content=body,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature,
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    if response.status_code != 202 or response.json().get("result") != "queued":
        raise SystemExit(f"bench: webhook answered {response.status_code}: {response.text}")


def run(tmp: Path, *, pushes: int, apps: int, idle: float) -> Results:
    from appflow.engine.clusters import add_cluster
    from appflow.store import open_store
    from tests.integration.git.gitservers import GitHttpServer, Origin, serve_http

    results = Results()
    appflow = [sys.executable, "-m", "appflow"]
    env = dict(os.environ)
    log = tmp / "serve.log"
    origin = Origin(tmp / "git" / "org" / "fleet.git")
    origin.commit(repo_files(apps, 0), message="first")
    with sandbox(tmp / "sandbox") as infos, serve_http(GitHttpServer(tmp / "git")) as git_server:
        store = open_store()
        try:
            for info in infos:
                asyncio.run(
                    add_cluster(
                        store,
                        name=info.name,
                        kind="imported",
                        kubeconfig=info.kubeconfig,
                        labels=dict(info.labels),
                    )
                )
            url = git_server.url("org/fleet.git")
            (tmp / "secret").write_bytes(SECRET)
            for args in (
                ("repo", "add", "fleet", url, "--branch", "main", "--path", "apps"),
                ("repo", "set-webhook-secret", "fleet", "--secret-file", str(tmp / "secret")),
            ):
                subprocess.run([*appflow, *args], env=env, check=True, capture_output=True)
            port = _free_port()
            base = f"http://127.0.0.1:{port}"
            with open(log, "ab") as out:
                daemon = subprocess.Popen(
                    [*appflow, "serve", "--listen", f"127.0.0.1:{port}"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                started = time.monotonic()
                _log(f"bench: appflow serve (pid {daemon.pid}); {apps + 1} apps to sync")
                expected = (apps + 1) * CLUSTERS

                def all_ready() -> bool:
                    found = store.list_deployments()
                    return len(found) == expected and all(d.state == "Ready" for d in found)

                _wait(all_ready, timeout=900, what="every app Ready everywhere", log=log)
                results.initial_ready = time.monotonic() - started
                _log(f"bench: {expected} deployments Ready in {results.initial_ready:.1f}s")

                for push in range(1, pushes + 1):
                    baseline = max((s.id for s in store.list_syncs("hot", limit=1)), default=0)
                    commit = origin.commit(
                        {
                            "apps/hot/config.yaml": _docs(
                                _configmap("settings", "bench-hot", {"push": str(push)})
                            )
                        },
                        message=f"push {push}",
                    )
                    sent = time.time()
                    _push(base, url, commit, f"bench-{push}")
                    state: dict[str, Any] = {}

                    def landed(baseline: int = baseline, state: dict[str, Any] = state) -> bool:
                        state["start"], ready = _hot_state(store, baseline)
                        return ready

                    _wait(landed, timeout=120, what=f"push {push} to be Ready", log=log)
                    ready_at = time.time()
                    results.sync_start.append(state["start"] - sent)
                    results.ready.append(ready_at - sent)
                    _log(
                        f"bench: push {push}: sync start {results.sync_start[-1] * 1000:.0f} ms,"
                        f" Ready on {CLUSTERS} clusters {results.ready[-1]:.2f}s"
                    )

                _wait(all_ready, timeout=120, what="everything Ready before idling", log=log)
                time.sleep(5.0)  # let the last sync's follow-ups (drift watches) settle
                results.loads["idle start"] = _load()
                _log(f"bench: idle for {idle:.0f}s (load average {results.loads['idle start']})")
                threads_before = _thread_ticks(daemon.pid)
                ticks_before, t0 = _cpu_ticks(daemon.pid), time.monotonic()
                time.sleep(idle)
                ticks_after, t1 = _cpu_ticks(daemon.pid), time.monotonic()
                threads_after = _thread_ticks(daemon.pid)
                hz = os.sysconf("SC_CLK_TCK")
                results.idle_seconds = t1 - t0
                results.idle_cpu_percent = (ticks_after - ticks_before) / hz / (t1 - t0) * 100
                busiest = sorted(
                    (
                        (name, (ticks - threads_before.get(name, 0)) / hz / (t1 - t0) * 100)
                        for name, ticks in threads_after.items()
                    ),
                    key=lambda item: -item[1],
                )
                results.busiest_threads = [b for b in busiest if b[1] > 0][:6]
                results.rss_mib = _rss_mib(daemon.pid)
                results.loads["idle end"] = _load()
            finally:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    daemon.kill()
        finally:
            store.close()
    return results


def table(results: Results, pushes: int, apps: int) -> str:
    def ms(value: float) -> str:
        return f"{value * 1000:.0f} ms"

    starts, ready = results.sync_start, results.ready
    rows = [
        ("measure", "figure", "target", "met"),
        (
            f"webhook -> sync start p50 ({pushes} pushes)",
            ms(statistics.median(starts)),
            f"<= {ms(SYNC_START_TARGET[0])} (proposed)",
            statistics.median(starts) <= SYNC_START_TARGET[0],
        ),
        (
            "webhook -> sync start p99",
            ms(_percentile(starts, 99)),
            f"<= {ms(SYNC_START_TARGET[1])} (proposed)",
            _percentile(starts, 99) <= SYNC_START_TARGET[1],
        ),
        (
            f"webhook -> Ready on {CLUSTERS} clusters p50",
            f"{statistics.median(ready):.2f} s",
            f"<= {READY_TARGET:.0f} s (proposed)",
            statistics.median(ready) <= READY_TARGET,
        ),
        ("webhook -> Ready p99", f"{_percentile(ready, 99):.2f} s", "-", "-"),
        (
            f"idle CPU, {apps} AppFlows x {CLUSTERS} clusters",
            f"{results.idle_cpu_percent:.2f} % of a core",
            f"< {IDLE_CPU_TARGET:.0f} % (issue)",
            results.idle_cpu_percent < IDLE_CPU_TARGET,
        ),
        (
            "daemon RSS at that size",
            f"{results.rss_mib:.0f} MiB",
            f"<= {RSS_TARGET_MIB:.0f} MiB (proposed)",
            results.rss_mib <= RSS_TARGET_MIB,
        ),
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [("yes" if c else "NO") if isinstance(c, bool) else str(c) for c in row]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.trigger", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--pushes", type=int, default=20, help="webhook-announced pushes")
    parser.add_argument("--apps", type=int, default=100, help="idle apps, each on 3 clusters")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measured")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    if args.pushes < 1 or args.apps < 0 or args.idle <= 0:
        parser.error("--pushes must be at least 1, --apps not negative, --idle positive")
    tmp = Path(tempfile.mkdtemp(prefix="appflow-trigger-bench-"))
    os.environ.update(
        {
            "APPFLOW_HOME": str(tmp / "home"),
            "APPFLOW_CACHE_DIR": str(tmp / "cache"),
            "APPFLOW_SANDBOX_DIR": str(tmp / "sandbox"),
        }
    )
    _log(f"bench: {args.apps} idle apps + 1 hot app x {CLUSTERS} clusters, temp folder {tmp}")
    loads = {"start": _load()}
    try:
        results = run(tmp, pushes=args.pushes, apps=args.apps, idle=args.idle)
    finally:
        loads["end"] = _load()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    results.loads = {**loads, **results.loads}
    print()
    print(table(results, args.pushes, args.apps))
    print()
    print(f"initial sync of every app until all Ready: {results.initial_ready:.1f} s")
    print(
        "busiest daemon threads while idle (% of a core): "
        + ", ".join(f"{name} {pct:.2f}" for name, pct in results.busiest_threads)
    )
    print(
        "load average (1, 5, 15 min): "
        + "; ".join(f"{k} {v}" for k, v in results.loads.items())
        + f"; {os.cpu_count()} CPUs"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "sync_start_seconds": results.sync_start,
                    "ready_seconds": results.ready,
                    "initial_ready_seconds": results.initial_ready,
                    "idle_cpu_percent": results.idle_cpu_percent,
                    "idle_seconds": results.idle_seconds,
                    "busiest_threads": results.busiest_threads,
                    "rss_mib": results.rss_mib,
                    "loads": results.loads,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
