"""The dashboard's overview with 1,000 apps x 50 clusters of generated records, in a real
browser (Debian's Chromium, headless): time until the first page is rendered, and its
HTML payload. Targets: under 1 s and under 200 KB.

    .venv/bin/python -m bench.ui [--apps 1000] [--clusters 50] [--runs 5]

The server is appflow's own HTTP app (``create_app``, the dashboard included) under
uvicorn on a free loopback port, over a SQLite store filled with generated Clusters,
Apps and Deployments (no cluster is contacted: the overview reads only the store).
Each run is a fresh navigation in a fresh browser context (no cache); the figure is
the browser's own Navigation Timing: from the request's start to the end of the load
event. The payload is the HTML document's encoded body size. A filtered page
(state=NotReady, the filter that reads the whole fleet's states) is measured too.

Baseline, in the same run: the whole grid as ``GET /api/v1/status`` ships it (every
app on every cluster, what a dashboard without server-side pages would load), timed
from the same machine over HTTP; the ratios say what paging saves.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


class NoTriggers:
    """The daemon's side of the server: the overview queues nothing."""

    def trigger_repo(self, repo: str, **_: Any) -> None:
        return None

    def trigger_app(self, app: str, **_: Any) -> None:
        return None

    def queue_depth(self) -> int:
        return 0

    def ready(self) -> bool:
        return True


def generate(store: Any, *, apps: int, clusters: int) -> None:
    """APPS x CLUSTERS Deployments, about one in twenty not Ready, with 4-object inventories."""
    from appflow.model.records import AppRecord, ClusterRecord, DeploymentRecord

    states = ["Ready"] * 17 + ["NotReady", "Modified", "ErrApplied"]
    with store.transaction():
        for c in range(clusters):
            store.put_cluster(
                ClusterRecord(
                    name=f"site-{c:03d}",
                    kind="eve-k" if c % 2 else "imported",
                    labels={"env": ("dev", "test", "prod")[c % 3], "region": f"r{c % 5}"},
                    state="Online" if c % 25 else "Offline",
                    k8s_version="v1.31.2",
                    node_count=1 + c % 3,
                )
            )
        for a in range(apps):
            name = f"app-{a:04d}"
            store.put_app(AppRecord(name=name, source="local", local_path="/srv/apps", path=name))
            for c in range(clusters):
                state = states[(a * 7 + c * 3) % len(states)]
                inventory = tuple(f"apps/v1 ns-{a}_obj-{i}_apps_Deployment" for i in range(4))
                store.put_deployment(
                    DeploymentRecord(
                        app=name,
                        cluster=f"site-{c:03d}",
                        desired_revision=3,
                        applied_revision=3,
                        state=state,  # type: ignore[arg-type]
                        message="" if state == "Ready" else f"{state}: 1 of 4 objects",
                        inventory=inventory,
                        applied={ref.split(" ")[1]: "d:m:u" for ref in inventory},
                        resource_counts={"ready": 4 if state == "Ready" else 3, "desiredReady": 4},
                    )
                )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from tests.helpers import BROWSER_ARGS, CHROMIUM

    if not Path(CHROMIUM).exists():
        print(f"no Chromium at {CHROMIUM}: apt-get install chromium", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="appflow-bench-ui-"))
    os.environ["APPFLOW_HOME"] = str(work / "home")
    import uvicorn
    from playwright.sync_api import sync_playwright

    from appflow.model.tokens import hash_token, new_token
    from appflow.server.app import create_app
    from appflow.store import open_store

    store = open_store(work / "home" / "store.db")
    started = time.perf_counter()
    generate(store, apps=args.apps, clusters=args.clusters)
    print(
        f"generated {args.apps} apps x {args.clusters} clusters "
        f"({args.apps * args.clusters} deployments) in {time.perf_counter() - started:.1f}s"
    )
    token = new_token()
    store.add_token("bench", token_hash=hash_token(token))
    app = create_app(store=store, triggers=NoTriggers(), require_token=True)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    results: dict[str, list[tuple[float, int]]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            for label, url in (
                ("first page", "/ui/"),
                ("state=NotReady", "/ui/?state=NotReady"),
            ):
                for _ in range(args.runs):
                    context = browser.new_context(viewport={"width": 1366, "height": 768})
                    page = context.new_page()
                    page.goto(f"{base}/ui/login")
                    page.fill("#token", token)
                    page.click("button[type=submit]")
                    page.wait_for_url(f"{base}/ui/")
                    page.goto(f"{base}/ui/events")  # navigate away: the timed load is fresh
                    page.goto(base + url, wait_until="load")
                    timing = page.evaluate(
                        """() => { const n = performance.getEntriesByType('navigation')[0];
                                   return [n.loadEventEnd - n.startTime, n.encodedBodySize,
                                           document.querySelectorAll('#grid tbody tr').length,
                                           document.querySelectorAll('#grid thead th[data-cluster]').length]; }"""
                    )
                    seconds, size, rows, columns = (
                        timing[0] / 1000,
                        int(timing[1]),
                        timing[2],
                        timing[3],
                    )
                    results.setdefault(label, []).append((seconds, size))
                    context.close()
                print(f"{label}: {rows} app rows x {columns} cluster columns on the page")
            browser.close()
        import httpx

        for _ in range(args.runs):
            began = time.perf_counter()
            whole = httpx.get(
                f"{base}/api/v1/status", headers={"Authorization": f"Bearer {token}"}, timeout=120
            )
            whole.raise_for_status()
            results.setdefault("baseline: whole grid (/api/v1/status)", []).append(
                (time.perf_counter() - began, len(whole.content))
            )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
        shutil.rmtree(work, ignore_errors=True)
    ok = True
    baseline = results.pop("baseline: whole grid (/api/v1/status)")
    base_time = statistics.median(t for t, _ in baseline)
    base_size = max(s for _, s in baseline)
    print(
        f"baseline, the whole grid as JSON (/api/v1/status): median {base_time * 1000:.0f} ms "
        f"to receive (not render), {base_size / 1024:.0f} KB"
    )
    for label, runs in results.items():
        times = [t for t, _ in runs]
        size = max(s for _, s in runs)
        median = statistics.median(times)
        print(
            f"{label}: rendered in median {median * 1000:.0f} ms (min {min(times) * 1000:.0f}, "
            f"max {max(times) * 1000:.0f}, {len(times)} runs); HTML {size / 1024:.1f} KB; "
            f"{base_time / median:.1f}x faster and {base_size / size:.0f}x smaller than the baseline"
        )
        ok = ok and median < 1.0 and size < 200 * 1024
    print("targets (< 1 s, < 200 KB):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
