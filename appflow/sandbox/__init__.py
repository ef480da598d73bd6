"""The local sandbox: a fleet of real Kubernetes clusters on one machine.

`appflow sandbox up --clusters 3` starts independent control planes (see
cluster.py) so that anyone can try a fleet on a laptop and every test of
appflow runs against real API servers. This module is the sandbox's public
face: up, stop, start, down, list, kubeconfig.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from appflow.errors import AppflowError, NotFoundError, SandboxError, Where
from appflow.paths import sandbox_dir
from appflow.sandbox.cluster import (
    COMPONENTS,
    ClusterState,
    Progress,
    SandboxCluster,
    heal_cluster,
    kwok_configured,
    locked,
    new_state,
    reconfigure_kwok,
    start_cluster,
    stop_cluster,
)

ENVIRONMENTS = ("dev", "test", "prod")
REGIONS = ("eu-west", "us-east", "ap-south")
SANDBOX_LABEL = "appflow.dev/sandbox"


@dataclass(frozen=True)
class SandboxInfo:
    """What `sandbox list` shows of one cluster."""

    name: str
    status: str  # Running, Stopped, Degraded (some processes gone), Broken (state unreadable)
    server: str
    kubeconfig: Path
    labels: Mapping[str, str]
    processes: Mapping[str, int]
    problem: str = ""
    k3s_like: bool = False  # ServiceLB and Traefik's default IngressClass, as on K3s


@dataclass
class DownReport:
    """What `sandbox down` did, and what it could not do."""

    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def default_labels(index: int, extra: Mapping[str, str]) -> dict[str, str]:
    """Labels of the INDEX-th (1-based) cluster: env and region cycle, then EXTRA."""
    labels = {
        "env": ENVIRONMENTS[(index - 1) % len(ENVIRONMENTS)],
        "region": REGIONS[(index - 1) % len(REGIONS)],
        SANDBOX_LABEL: "true",
    }
    labels.update(extra)
    return labels


def _root(root: Path | None) -> Path:
    return root if root is not None else sandbox_dir()


def _clusters(root: Path) -> list[SandboxCluster]:
    if not root.is_dir():
        return []
    return sorted(
        (SandboxCluster(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda c: _natural_key(c.name),
    )


def _natural_key(name: str) -> tuple[str, int]:
    head, _, tail = name.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (name, 0)


def cluster(name: str, *, root: Path | None = None) -> SandboxCluster:
    found = SandboxCluster(_root(root) / name)
    if not found.folder.is_dir():
        known = ", ".join(c.name for c in _clusters(_root(root))) or "none"
        raise NotFoundError(
            f"no sandbox cluster named {name!r} (known: {known})",
            hint="start one with: appflow sandbox up",
        )
    return found


def _info(c: SandboxCluster) -> SandboxInfo:
    running = {p.name: p.pid for p in c.running()}
    try:
        state = c.state()
    except SandboxError as err:
        return SandboxInfo(
            name=c.name,
            status="Broken",
            server="",
            kubeconfig=c.kubeconfig,
            labels={},
            processes=running,
            problem=err.message,
        )
    if not running:
        status = "Stopped"
    elif all(name in running for name in COMPONENTS):
        status = "Running"
    else:
        status = "Degraded"
    problem = ""
    if status == "Degraded":
        problem = "not running: " + ", ".join(n for n in COMPONENTS if n not in running)
    server = c.server_url(state) if "apiserver" in state.ports else ""
    return SandboxInfo(
        name=c.name,
        status=status,
        server=server,
        kubeconfig=c.kubeconfig,
        labels=state.labels,
        processes=running,
        problem=problem,
        k3s_like=state.k3s_like,
    )


def list_sandbox(*, root: Path | None = None) -> list[SandboxInfo]:
    return [_info(c) for c in _clusters(_root(root))]


def up(
    *,
    clusters: int = 3,
    prefix: str = "sandbox",
    labels: Mapping[str, str] | None = None,
    nodes: int = 3,
    k3s_like: bool | None = None,
    root: Path | None = None,
    timeout: float = 180.0,
    progress: Progress = lambda _: None,
) -> list[SandboxInfo]:
    """Make sure clusters PREFIX-1..PREFIX-N run; start the missing or stopped ones.

    A Degraded cluster (some of its processes died) gets only those back when it can
    (see heal_cluster), else a whole restart.

    K3S_LIKE (None: new clusters are, existing ones keep their record) says whether
    they give what K3s gives. Running clusters are left alone, so `up` twice is
    harmless, except that one whose kwok plays another K3s setting gets kwok
    restarted. Clusters start in parallel; if any fails, the ones this call
    started are stopped again and the error names the cluster and its logs.
    """
    if clusters < 1:
        raise SandboxError(f"--clusters must be at least 1, not {clusters}")
    base = _root(root)
    base.mkdir(parents=True, exist_ok=True)
    todo: list[tuple[SandboxCluster, ClusterState]] = []
    for index in range(1, clusters + 1):
        c = SandboxCluster(base / f"{prefix}-{index}")
        info = _info(c) if c.folder.is_dir() else None
        if info is not None and info.status == "Running":
            _keep_running(c, k3s_like, timeout=timeout, progress=progress)
            continue
        if info is not None and info.status == "Degraded":
            with locked(c):
                if heal_cluster(c, c.state(), timeout=timeout, progress=progress):
                    continue
        if info is not None and info.status in ("Degraded", "Broken"):
            progress(f"{c.name}: {info.status.lower()}, restarting it")
            stop_cluster(c)
        if info is not None and info.status != "Broken":
            state = c.state()
            if labels:
                state.labels.update(labels)
            if k3s_like is not None:
                state.k3s_like = k3s_like
        else:
            if info is not None:
                shutil.rmtree(c.folder, ignore_errors=True)
            state = new_state(
                c.name,
                default_labels(index, labels or {}),
                nodes=nodes,
                k3s_like=True if k3s_like is None else k3s_like,
            )
        todo.append((c, state))

    def start(item: tuple[SandboxCluster, ClusterState]) -> None:
        c, state = item
        progress(f"{c.name}: starting")
        start_cluster(c, state, timeout=timeout, progress=progress)
        progress(
            f"{c.name}: ready ({state.nodes} nodes, {_k3s_word(state.k3s_like)}, "
            f"labels {_format_labels(state.labels)})"
        )

    if todo:
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=min(len(todo), 4)) as pool:
            for future in [pool.submit(start, item) for item in todo]:
                with contextlib.suppress(Exception):
                    future.result()
                if future.exception() is not None:
                    errors.append(future.exception())  # type: ignore[arg-type]
        if errors:
            for c, _ in todo:
                stop_cluster(c)
            first = errors[0]
            if isinstance(first, AppflowError):
                raise first
            raise SandboxError(f"starting the sandbox failed: {first}") from first
    wanted = {f"{prefix}-{i}" for i in range(1, clusters + 1)}
    return [i for i in list_sandbox(root=base) if i.name in wanted]


def _keep_running(
    c: SandboxCluster, k3s_like: bool | None, *, timeout: float, progress: Progress
) -> None:
    with locked(c):
        state = c.state()
        if k3s_like is not None:
            state.k3s_like = k3s_like
        if kwok_configured(c, state):
            progress(f"{c.name}: already running")
            return
        # Either the K3s-like setting changed, or the cluster was started by an appflow
        # whose kwok played other stages: kwok reads its stages only when it starts.
        progress(
            f"{c.name}: running; restarting kwok with the current stages "
            f"({_k3s_word(state.k3s_like)})"
        )
        reconfigure_kwok(c, state, timeout=timeout)


def _k3s_word(k3s_like: bool) -> str:
    return "K3s-like" if k3s_like else "plain Kubernetes (not K3s-like)"


def _format_labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def stop(names: Sequence[str] = (), *, root: Path | None = None) -> list[str]:
    """Stop clusters (all when NAMES is empty) but keep their data for a later start."""
    targets = [cluster(n, root=root) for n in names] if names else _clusters(_root(root))
    for c in targets:
        stop_cluster(c)
    return [c.name for c in targets]


def start(
    names: Sequence[str],
    *,
    root: Path | None = None,
    timeout: float = 180.0,
    progress: Progress = lambda _: None,
) -> list[SandboxInfo]:
    """Start stopped clusters again, with their data, labels and (when free) ports."""
    for name in names:
        c = cluster(name, root=root)
        if _info(c).status == "Running":
            continue
        stop_cluster(c)
        start_cluster(c, c.state(), timeout=timeout, progress=progress)
    return [i for i in list_sandbox(root=root) if i.name in set(names)]


def down(names: Sequence[str] = (), *, root: Path | None = None) -> DownReport:
    """Stop clusters (all when NAMES is empty) and delete their folders.

    Works from the process table, not only from state files, so a crashed or
    corrupt sandbox is still cleaned up; whatever could not be removed is
    reported rather than hidden.
    """
    base = _root(root)
    report = DownReport()
    targets = [SandboxCluster(base / n) for n in names] if names else _clusters(base)
    for c in targets:
        if not c.folder.exists() and not c.running():
            report.problems.append(f"{c.name}: no such sandbox cluster")
            continue
        survivors = stop_cluster(c)
        if survivors:
            listed = ", ".join(f"{p.name} (pid {p.pid})" for p in survivors)
            report.problems.append(f"{c.name}: could not stop {listed}")
            continue
        try:
            shutil.rmtree(c.folder)
        except OSError as err:
            report.problems.append(f"{c.name}: could not remove {c.folder}: {err}")
            continue
        report.removed.append(c.name)
    return report


def kubeconfig(name: str, *, root: Path | None = None) -> Path:
    c = cluster(name, root=root)
    if not c.kubeconfig.is_file():
        raise SandboxError(
            "has no kubeconfig yet",
            where=Where(cluster=name),
            hint="start it with: appflow sandbox up",
        )
    return c.kubeconfig
