"""What `appflow status` costs now that it reads the clusters: against `status --cached`.

    .venv/bin/python -m bench.status [--apps 20] [--repeat 5] [--sandbox DIR] [--json FILE]

K apps (a ConfigMap and a Deployment with 0 replicas each, in one namespace) are
synced to every cluster of a sandbox; then, in one run, each repeat times

    cached    `appflow status --cached -o json`: the recorded grid (the baseline)
    refresh   `appflow status -o json`: every cluster read again (one LIST per kind
              for all apps, concurrently) and health and drift judged per Deployment
    silent    then, once the API server of one of the clusters accepts connections
              and never answers: `appflow status --timeout 2 -o json`, the bound

each as a user runs it (a subprocess: Python start-up and imports included); cached
and refresh alternate. It prints medians, ranges, the ratio of refresh to cached, and the
load average. Without --sandbox it starts a 3-cluster sandbox in a temporary folder
(always torn down); with --sandbox DIR it uses the running sandbox there (for
example the tests' shared one) and removes only what it created.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

NAMESPACE = "bench-status"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def _clusters(tmp: Path, reuse: Path | None) -> Iterator[dict[str, Path]]:
    """name -> kubeconfig of a running sandbox: REUSE's, or a new one under TMP (torn down)."""
    from appflow import sandbox as sb

    if reuse is not None:
        infos = sb.up(clusters=3, root=reuse, prefix="test", timeout=300)
        yield {i.name: i.kubeconfig for i in infos}
        return
    root = tmp / "sandbox"
    try:
        infos = sb.up(clusters=3, root=root, prefix="bench", nodes=1, timeout=300)
        yield {i.name: i.kubeconfig for i in infos}
    finally:
        for problem in sb.down(root=root).problems:
            _log(f"sandbox teardown: {problem}")


def _app_folder(root: Path, index: int) -> Path:
    folder = root / f"app-{index:02d}"
    folder.mkdir(parents=True)
    name = f"status-{index:02d}"
    meta = {"name": name, "namespace": NAMESPACE}
    objects = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}]
                    },
                },
            },
        },
    ]
    (folder / "fleet.yaml").write_text(f"defaultNamespace: {NAMESPACE}\n")
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return folder


def _appflow(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "appflow", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"appflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def _timed(*args: str) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    done = _appflow(*args)
    return time.monotonic() - started, json.loads(done.stdout)


_FLAGS = {"cached": ("--cached",), "refresh": (), "silent": ("--timeout", "2")}


def _measure(kind: str, samples: dict[str, list[float]], apps: int, clusters: int) -> None:
    """One `appflow status` of KIND, timed, with a check of what it showed."""
    seconds, data = _timed("status", "-o", "json", *_FLAGS[kind])
    cells = [d for a in data["apps"] for d in a["deployments"].values()]
    assert len(cells) == apps * clusters, len(cells)
    stale = [d for d in cells if d.get("refreshed") is False]
    # Only the silent cluster's Deployments may be left as recorded.
    assert len(stale) == (apps if kind == "silent" else 0), stale[:1]
    if kind == "silent" and not samples[kind]:
        _log(f"bench: the silent cluster shows: {stale[0]['message']}")
    samples[kind].append(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sandbox", type=Path, default=None, help="use the sandbox running here")
    parser.add_argument("--json", type=Path, default=None, help="also write every sample here")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="appflow-status-bench-"))
    os.environ.update(
        {
            "APPFLOW_HOME": str(tmp / "home"),
            "APPFLOW_CACHE_DIR": str(tmp / "cache"),
            "KUBECACHEDIR": str(tmp / "kube-cache"),
            "COLUMNS": "200",
        }
    )
    loads = {"start": _load()}
    samples: dict[str, list[float]] = {"cached": [], "refresh": [], "silent": []}
    names = [f"status-{i:02d}" for i in range(args.apps)]
    with _clusters(tmp, args.sandbox) as kubeconfigs, socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        for name, kubeconfig in kubeconfigs.items():
            _appflow("cluster", "add", name, "--kubeconfig", str(kubeconfig))
        # One more registration of the first cluster, whose server stops answering later.
        _appflow(
            "cluster", "add", "far-site", "--kubeconfig", str(next(iter(kubeconfigs.values())))
        )
        try:
            for index, name in enumerate(names):
                _appflow("app", "add", name, "--local", str(_app_folder(tmp / "apps", index)))
            _log(f"bench: syncing {args.apps} apps to {len(kubeconfigs)} clusters (+ far-site)")
            _appflow("sync", "--all")
            loads["measuring"] = _load()
            for repeat in range(args.repeat):
                for kind in ("cached", "refresh")[:: 1 if repeat % 2 else -1]:
                    _measure(kind, samples, args.apps, len(kubeconfigs) + 1)
            # Then far-site's API server stops answering.
            copied = tmp / "home" / "clusters" / "far-site.kubeconfig"
            document = yaml.safe_load(copied.read_text())
            for entry in document["clusters"]:
                entry["cluster"]["server"] = f"https://127.0.0.1:{silent.getsockname()[1]}"
            copied.write_text(yaml.safe_dump(document))
            for _ in range(args.repeat):
                _measure("silent", samples, args.apps, len(kubeconfigs) + 1)
        finally:
            _appflow("cluster", "remove", "far-site", "--force")
            for name in names:
                subprocess.run(
                    [sys.executable, "-m", "appflow", "app", "delete", name],
                    capture_output=True,
                    check=False,
                    timeout=300,
                )
    loads["end"] = _load()
    base = statistics.median(samples["cached"])
    print(
        f"appflow status, {args.apps} apps x {len(kubeconfigs)} clusters (+1 silent), "
        f"{args.repeat} repeats, {os.cpu_count()} cores, load {loads}"
    )
    for kind, values in samples.items():
        median = statistics.median(values)
        print(
            f"  {kind:8s} median {median:6.2f}s  range {min(values):.2f}-{max(values):.2f}s"
            f"  x{median / base:.2f} of cached"
        )
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "loads": loads}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
