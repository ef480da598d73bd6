"""The chaos loop: sync changing content many times while faults strike at chosen points,
then check what must hold whatever happened.

Every decision comes from one seeded random generator: the content of each iteration
(which ConfigMaps exist, what they hold), which fault strikes (none, SIGKILL of an
`appflow sync` process or of `appflow serve`, SIGKILL of a cluster's API server, the
store's write lock taken by another process until the sync ends), who syncs (the engine
in this process, the CLI, the daemon) and at which point of the sync the fault strikes.
A point is a condition on the cluster, never a time: "the K-th object of this
iteration's content exists on cluster C", or "C's inventory is final". A watch per
cluster sees each write land.

Invariants (a violation is recorded, the run goes on, the test fails at the end):

- between iterations, every object carrying the app's ownership marks is in the cluster's
  inventory or the store's mirror of it (nothing is orphaned);
- between iterations, a Deployment that says Ready holds exactly the objects and data
  of its applied revision (status never says Ready while live != desired);
- after convergence (a sync with no fault), live objects equal the last completed
  revision, both inventories name exactly them, and the Deployment is Ready at it;
- at the end, objects appflow does not own (unlabelled sentinels, a look-alike with
  the app's label but no owner annotation, another app's objects) are untouched.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from appflow import sandbox as sb
from appflow.errors import AppflowError
from appflow.kube.client import Connection, KubeCluster
from appflow.model.inventory import Inventory
from appflow.model.objects import ANNOTATION_OWNER, INVENTORY_NAMESPACE, LABEL_APP, Manifest
from appflow.store import open_store
from tests.chaos.conftest import CLUSTERS, PREFIX, ChaosFleet
from tests.integration.engine.interrupt import AppflowProcess, ObjectWatch, store_write_lock

POOL = tuple(f"cm-{i:02d}" for i in range(24))
"""Names the app's ConfigMaps are drawn from."""

FAULTS = {
    "none": 3,
    "store-lock": 2,
    "kill-cli": 2,
    "kill-apiserver": 1,
    "kill-daemon": 1,
}
"""Fault -> share of the iterations (every fault strikes at least twice in a run)."""


def schedule(iterations: int, rng: random.Random) -> list[str]:
    """The fault of each iteration: FAULTS' shares of ITERATIONS, in a seeded order."""
    total = sum(FAULTS.values())
    faults: list[str] = []
    for fault, share in FAULTS.items():
        faults += [fault] * max(2, round(iterations * share / total))
    rng.shuffle(faults)
    if len(faults) < iterations:
        faults += ["none"] * (iterations - len(faults))
    return faults[:iterations]


BUSY_TIMEOUT_S = 1.0
"""How long appflow waits for the store's lock in the chaos run (APPFLOW_STORE_BUSY_TIMEOUT)."""


@dataclass(frozen=True)
class Point:
    """Where a fault strikes: once COUNT objects of the iteration's content exist on
    CLUSTER, or (COUNT == 0) once CLUSTER's inventory names exactly the new content."""

    cluster: str
    count: int


@dataclass(frozen=True)
class Step:
    """One iteration, decided up front by the seeded generator."""

    number: int
    content: dict[str, dict[str, str]]
    """ConfigMap name -> data."""
    fault: str
    runner: str
    point: Point | None

    @property
    def token(self) -> str:
        return f"i{self.number}"


@dataclass
class Figures:
    """What a run did: the numbers the README quotes."""

    seed: int
    iterations: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    struck: Counter[str] = field(default_factory=Counter)
    """Faults whose point was reached, by kind (the others found the sync ended first)."""
    runners: Counter[str] = field(default_factory=Counter)
    failed_syncs: int = 0
    convergences: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seconds_by_fault: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "iterations": self.iterations,
            "faults": dict(sorted(self.faults.items())),
            "struck": dict(sorted(self.struck.items())),
            "kills": sum(n for k, n in self.struck.items() if k.startswith("kill-")),
            "runners": dict(sorted(self.runners.items())),
            "failedSyncs": self.failed_syncs,
            "convergences": self.convergences,
            "violations": len(self.violations),
            "seconds": round(self.seconds, 1),
            "secondsByFault": {k: round(v, 1) for k, v in sorted(self.seconds_by_fault.items())},
        }


class Runner(Protocol):
    def running(self) -> bool: ...
    def wait(self) -> str: ...


class EngineRun:
    """A sync by the engine in this process, in a thread of its own."""

    def __init__(self, home: Path, app: str) -> None:
        self.outcome = ""
        self._thread = threading.Thread(target=self._run, args=(home, app), daemon=True)
        self._thread.start()

    def _run(self, home: Path, app: str) -> None:
        from appflow.engine.engine import Engine

        try:
            store = open_store(home / "appflow.db", busy_timeout_ms=int(BUSY_TIMEOUT_S * 1000))
        except AppflowError as err:
            self.outcome = f"failed: {err}"
            return
        engine = Engine(store)
        try:
            report = asyncio.run(engine.sync(app))
            self.outcome = "ok" if report.ok else f"failed: {_report_errors(report)}"
        except AppflowError as err:
            self.outcome = f"failed: {err}"
        except Exception as err:  # a traceback a user would see: a violation
            self.outcome = f"crashed: {type(err).__name__}: {err}"
        finally:
            engine.close()
            store.close()

    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self) -> str:
        self._thread.join(timeout=600)
        return self.outcome or "crashed: the engine did not end"


def _report_errors(report: Any) -> str:
    parts = [str(e) for e in report.blocked]
    parts += [str(e) for e in report.unreachable.values()]
    parts += [str(e) for e in getattr(report, "failed", {}).values()]
    parts += [str(e) for r in report.results for e in r.errors]
    return "; ".join(parts)[:500]


class ProcessRun:
    """`appflow sync APP` or `appflow serve` as a separate process."""

    def __init__(self, process: AppflowProcess, *, serve: bool, home: Path, app: str) -> None:
        self.process = process
        self.serve = serve
        self.home = home
        self.app = app
        self.since = _last_sync_id(home)

    def running(self) -> bool:
        if not self.process.running():
            return False
        return not self.serve or not self._synced_everywhere()

    def _synced_everywhere(self) -> bool:
        """The daemon has finished a sync of the app on every cluster since it started."""
        with _read_store(self.home) as conn:
            rows = conn.execute(
                "SELECT cluster, outcome FROM syncs WHERE app = ? AND id > ?",
                (self.app, self.since),
            ).fetchall()
        done = {cluster for cluster, outcome in rows if outcome != "running"}
        running = {cluster for cluster, outcome in rows if outcome == "running"}
        return len(done) >= CLUSTERS and not running

    def wait(self) -> str:
        if self.serve and self.process.running():
            os.kill(self.process.pid, signal.SIGTERM)
        code = self.process.wait(timeout=300)
        output = self.process.output()
        if _traceback_reached_user(output):
            return f"crashed: {output[-1500:]}"
        return "ok" if code == 0 else f"failed: exit {code}"


def _traceback_reached_user(output: str) -> bool:
    """A traceback in OUTPUT other than one the daemon logs for a task it restarts (a bug
    in that task, reported by its supervisor: the process goes on)."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Traceback") and not (
            index and "failed; restarting" in lines[index - 1]
        ):
            return True
    return False


def _last_sync_id(home: Path) -> int:
    with _read_store(home) as conn:
        row = conn.execute("SELECT MAX(id) FROM syncs").fetchone()
    return int(row[0] or 0)


class _read_store:
    """A read-only look at the store (WAL: never waits for a writer)."""

    def __init__(self, home: Path) -> None:
        self.conn = sqlite3.connect(f"file:{home / 'appflow.db'}?mode=ro", uri=True, timeout=30)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Chaos:
    """One chaos run over a ChaosFleet; see the module docstring."""

    def __init__(self, fleet: ChaosFleet, *, seed: int, workdir: Path, suffix: str) -> None:
        self.fleet = fleet
        self.rng = random.Random(seed)
        self.figures = Figures(seed=seed)
        self.workdir = workdir
        self.app = f"chaos-{suffix}"
        self.bystander = f"bystander-{suffix}"
        self.ns = f"chaos-{suffix}"
        self.folder = workdir / "app"
        self.kubes = {
            c.name: KubeCluster(Connection(name=c.name, kubeconfig=c.kubeconfig))
            for c in fleet.clusters
        }
        self.watches: dict[str, ObjectWatch] = {}
        self.untouchable: dict[str, dict[str, str]] = {}
        """cluster -> 'Kind/name' -> uid + data digest, of what appflow must never touch."""
        self.env = {"APPFLOW_STORE_BUSY_TIMEOUT": str(BUSY_TIMEOUT_S)}
        self.desired: dict[str, dict[str, str]] = {}
        self.faults: list[str] = []

    # -- setup and teardown ------------------------------------------------------------

    def start(self) -> None:
        for kube in self.kubes.values():
            kube.apply_sync(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.ns}}
            )
            for index in range(3):
                kube.apply_sync(_configmap(f"sentinel-{index}", self.ns, {"who": "someone"}))
            lookalike = _configmap("lookalike", self.ns, {"who": "by hand"})
            lookalike["metadata"]["labels"] = {LABEL_APP: self.app}
            kube.apply_sync(lookalike, field_manager="someone")
        bystander = self.workdir / "bystander"
        _write_app(bystander, self.bystander, self.ns, {"bystander-cm": {"k": "v"}}, secret=False)
        self._register(self.bystander, bystander)
        self._register(self.app, self.folder)
        outcome = EngineRun(self.fleet.home, self.bystander).wait()
        assert outcome == "ok", outcome
        for name, kube in self.kubes.items():
            self.untouchable[name] = self._fingerprints(kube)
            self.watches[name] = ObjectWatch(
                self.fleet.kubeconfig(name),
                app=self.app,
                namespaces=[self.ns, INVENTORY_NAMESPACE],
                api_version="v1",
                kind="ConfigMap",
            )

    def _register(self, app: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        process = AppflowProcess(
            self.fleet.home,
            ["app", "add", app, "--local", str(folder)],
            log=self.workdir / "add.log",
        )
        assert process.wait() == 0, process.output()

    def close(self) -> None:
        for watch in self.watches.values():
            watch.close()
        for kube in self.kubes.values():
            kube.close()

    # -- the loop ------------------------------------------------------------------------

    def run(self, iterations: int, *, converge_every: int) -> Figures:
        started = time.monotonic()
        self.faults = schedule(iterations, self.rng)
        self.start()
        try:
            for number in range(1, iterations + 1):
                self.iteration(self.plan(number))
                if number % converge_every == 0 or number == iterations:
                    self.converge(number)
            self.check_untouched()
        finally:
            self.figures.seconds = time.monotonic() - started
            self.close()
        return self.figures

    def plan(self, number: int) -> Step:
        rng = self.rng
        names = sorted(rng.sample(POOL, rng.randint(4, len(POOL))))
        content = {n: {"token": f"i{number}", "v": str(rng.randint(0, 9))} for n in names}
        fault = self.faults[number - 1]
        # A fault strikes a process of its own (an `appflow sync`, or `appflow serve` when
        # it is the target), as it would a user's; syncs without a fault may run in this
        # process, which is quicker. (In-process, a sync whose last store write was refused
        # would leave its hold to this long-lived test process, which no real appflow
        # process outlives without retrying.)
        if fault == "kill-daemon":
            runner = "daemon"
        elif fault == "none":
            runner = rng.choice(["engine", "engine", "cli"])
        else:
            runner = "cli"
        point = None
        if fault != "none":
            cluster = rng.choice(self.fleet.names)
            count = rng.choice([0, *range(1, len(names) + 1)])
            point = Point(cluster=cluster, count=count)
        return Step(number=number, content=content, fault=fault, runner=runner, point=point)

    def iteration(self, step: Step) -> None:
        started = time.monotonic()
        try:
            self._iteration(step)
        finally:
            self.figures.seconds_by_fault[step.fault] += time.monotonic() - started

    def _iteration(self, step: Step) -> None:
        figures = self.figures
        figures.iterations += 1
        figures.faults[step.fault] += 1
        figures.runners[step.runner] += 1
        _write_app(self.folder, self.app, self.ns, step.content, secret=step.number % 3 == 0)
        self.desired = step.content
        runner = self._start(step)
        outcome = ""
        if step.point is not None and self._reached(step, runner):
            figures.struck[step.fault] += 1
            outcome = self._strike(step, runner)
        else:
            outcome = runner.wait()
        if outcome.startswith("crashed"):
            figures.violations.append(f"iteration {step.number}: a traceback: {outcome}")
        elif outcome != "ok":
            figures.failed_syncs += 1
        self.check_between(step.number)
        # One line per iteration: pytest shows it with -s (make chaos), keeps it otherwise.
        print(
            f"chaos {step.number}: {step.fault} by {step.runner} at {step.point}: "
            f"{outcome.splitlines()[0][:120] if outcome else '?'}; "
            f"{len(figures.violations)} violation(s)",
            flush=True,
        )

    def _start(self, step: Step) -> Runner:
        home = self.fleet.home
        if step.runner == "engine":
            return EngineRun(home, self.app)
        log = self.workdir / f"{step.number:03d}-{step.runner}.log"
        if step.runner == "cli":
            process = AppflowProcess(home, ["sync", self.app], log=log, **self.env)
            return ProcessRun(process, serve=False, home=home, app=self.app)
        args = ["serve", "--listen", f"127.0.0.1:{_free_port()}", "--poll", "3600"]
        # In a folder of its own: no catalog/ there for it to watch.
        process = AppflowProcess(home, args, log=log, cwd=self.workdir, **self.env)
        return ProcessRun(process, serve=True, home=home, app=self.app)

    def _reached(self, step: Step, runner: Runner) -> bool:
        assert step.point is not None
        point = step.point
        names = set(step.content)
        ns, app, token = self.ns, self.app, step.token

        def written(objects: dict[str, Manifest]) -> int:
            return sum(
                1
                for key, obj in objects.items()
                if key.startswith(f"{ns}/") and (obj.get("data") or {}).get("token") == token
            )

        def final_inventory(objects: dict[str, Manifest]) -> bool:
            cm = objects.get(f"{INVENTORY_NAMESPACE}/appflow-inventory-{app}")
            if cm is None or written(objects) < len(names):
                return False
            try:
                refs = Inventory.from_data(app, cm.get("data") or {}).refs()
            except AppflowError:
                return False
            return {r.name for r in refs if r.kind == "ConfigMap" and r.namespace == ns} == names

        def check(objects: dict[str, Manifest]) -> bool:
            if not runner.running():
                return True
            return final_inventory(objects) if point.count == 0 else written(objects) >= point.count

        seen = self.watches[point.cluster].until(
            check, what=f"point {point} of {step}", timeout=300
        )
        reached = final_inventory(seen) if point.count == 0 else written(seen) >= point.count
        return reached and runner.running()

    def _strike(self, step: Step, runner: Runner) -> str:
        assert step.point is not None
        if step.fault == "store-lock":
            with store_write_lock(self.fleet.home):
                return runner.wait()
        if step.fault in ("kill-cli", "kill-daemon"):
            assert isinstance(runner, ProcessRun)
            runner.process.kill()
            return "killed"
        if step.fault == "kill-apiserver":
            self._kill_apiserver(step.point.cluster)
            outcome = runner.wait()
            sb.up(clusters=CLUSTERS, prefix=PREFIX, nodes=1, root=self.fleet.root, timeout=240)
            return outcome
        raise AssertionError(f"unknown fault {step.fault}")

    def _kill_apiserver(self, cluster: str) -> None:
        [info] = [i for i in sb.list_sandbox(root=self.fleet.root) if i.name == cluster]
        os.kill(info.processes["kube-apiserver"], signal.SIGKILL)

    # -- invariants --------------------------------------------------------------------------

    def _owned_live(self, cluster: str) -> dict[str, dict[str, str]]:
        """ConfigMap name -> data, of every object carrying the app's ownership marks."""
        items = self.kubes[cluster].list_sync(
            "v1", "ConfigMap", namespace=self.ns, label_selector=f"{LABEL_APP}={self.app}"
        )
        return {
            i["metadata"]["name"]: dict(i.get("data") or {})
            for i in items
            if (i["metadata"].get("annotations") or {}).get(ANNOTATION_OWNER) == self.app
        }

    def _inventories(self, cluster: str) -> tuple[set[str], set[str], Any]:
        """ConfigMap names in the cluster's inventory and in the store's mirror, and the
        Deployment record (None when there is none)."""
        cm = self.kubes[cluster].get_sync(
            "v1", "ConfigMap", f"appflow-inventory-{self.app}", INVENTORY_NAMESPACE
        )
        on_cluster: set[str] = set()
        if cm is not None:
            refs = Inventory.from_data(self.app, cm.get("data") or {}).refs()
            on_cluster = {r.name for r in refs if r.kind == "ConfigMap" and r.namespace == self.ns}
        store = open_store(self.fleet.home / "appflow.db")
        try:
            found = [d for d in store.list_deployments(app=self.app) if d.cluster == cluster]
            deployment = found[0] if found else None
            rendered: list[Manifest] = []
            if deployment is not None and deployment.applied_revision is not None:
                revision = store.get_revision(self.app, deployment.applied_revision)
                rendered = list(revision.rendered.get(cluster, []))
        finally:
            store.close()
        mirror: set[str] = set()
        if deployment is not None:
            mirror = {_configmap_name(entry, self.ns) for entry in deployment.inventory} - {""}
        return on_cluster, mirror, (deployment, rendered)

    def check_between(self, number: int) -> None:
        for cluster in self.fleet.names:
            live = self._owned_live(cluster)
            on_cluster, mirror, (deployment, rendered) = self._inventories(cluster)
            orphans = set(live) - on_cluster - mirror
            if orphans:
                self.figures.violations.append(
                    f"iteration {number}, {cluster}: owned objects in no inventory: {sorted(orphans)}"
                )
            if deployment is not None and deployment.state == "Ready":
                expected = {
                    m["metadata"]["name"]: dict(m.get("data") or {})
                    for m in rendered
                    if m.get("kind") == "ConfigMap"
                }
                if live != expected:
                    self.figures.violations.append(
                        f"iteration {number}, {cluster}: Ready at revision "
                        f"{deployment.applied_revision} but live != desired: "
                        f"{_difference(expected, live)}"
                    )

    def converge(self, number: int) -> None:
        """Sync with no fault until it succeeds (bounded), then everything must agree."""
        self.figures.convergences += 1
        outcome = ""
        for _ in range(3):
            outcome = EngineRun(self.fleet.home, self.app).wait()
            if outcome == "ok":
                break
        if outcome != "ok":
            self.figures.violations.append(f"iteration {number}: no convergence: {outcome}")
            return
        desired = self.desired
        for cluster in self.fleet.names:
            live = self._owned_live(cluster)
            on_cluster, mirror, (deployment, _) = self._inventories(cluster)
            problems = []
            if live != desired:
                problems.append(f"live != desired: {_difference(desired, live)}")
            if on_cluster != set(desired) or mirror != set(desired):
                problems.append(
                    f"inventories {sorted(on_cluster ^ set(desired))} / "
                    f"{sorted(mirror ^ set(desired))} differ from the desired names"
                )
            if deployment is None or deployment.state != "Ready":
                state = None if deployment is None else (deployment.state, deployment.message)
                problems.append(f"not Ready after a completed sync: {state}")
            for problem in problems:
                self.figures.violations.append(
                    f"iteration {number}, {cluster}, after convergence: {problem}"
                )

    def _fingerprints(self, kube: KubeCluster) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in kube.list_sync("v1", "ConfigMap", namespace=self.ns):
            meta = item["metadata"]
            labels = meta.get("labels") or {}
            if labels.get(LABEL_APP) == self.app and meta["name"] != "lookalike":
                continue  # the chaos app's own
            if meta["name"] == "kube-root-ca.crt":
                continue
            out[f"ConfigMap/{meta['name']}"] = (
                f"{meta['uid']}:{json.dumps(item.get('data'), sort_keys=True)}"
            )
        return out

    def check_untouched(self) -> None:
        for cluster, kube in self.kubes.items():
            now = self._fingerprints(kube)
            for key, before in self.untouchable[cluster].items():
                if now.get(key) != before:
                    self.figures.violations.append(
                        f"{cluster}: {key}, which appflow does not own (or another app owns), "
                        f"was {'changed' if key in now else 'deleted'}"
                    )


def _configmap_name(entry: Any, ns: str) -> str:
    """The ConfigMap in NS a mirrored inventory entry names ('' for anything else).

    Entries are '<apiVersion> <id>' lines, or typed entries where the store reads them so.
    """
    from appflow.model.objects import ObjectRef

    ref = ObjectRef.decode(entry.split(" ", 1)[1]) if isinstance(entry, str) else entry.ref
    return ref.name if ref.kind == "ConfigMap" and ref.namespace == ns else ""


def _difference(expected: dict[str, Any], live: dict[str, Any]) -> str:
    missing = sorted(set(expected) - set(live))
    extra = sorted(set(live) - set(expected))
    other = sorted(n for n in set(expected) & set(live) if expected[n] != live[n])
    return f"missing {missing}, extra {extra}, other content {other}"


def _configmap(name: str, ns: str, data: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


def _write_app(
    folder: Path, app: str, ns: str, content: dict[str, dict[str, str]], *, secret: bool
) -> None:
    """The app's folder: its definition (every cluster), the ConfigMaps, and at times a Secret.

    The definition names no namespace: the objects name theirs, and the namespace (made
    by the harness, holding objects appflow does not own) belongs to no app.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "appflow.yaml").write_text(f"name: {app}\n")
    docs = [_configmap(n, ns, data) for n, data in sorted(content.items())]
    if secret:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "credentials", "namespace": ns},
                "stringData": {"token": next(iter(content.values()))["token"]},
            }
        )
    (folder / "objects.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs) + "\n")
