"""Benchmark: `catalog list` and the resolution step of `catalog install` over a 1,000-chart index.

Generates a Helm repository index of 1,000 charts (3 versions each), serves it
on 127.0.0.1, registers it as a catalog repository, fetches it once (the cache),
then times in-process, median of several runs:

* ``catalog list`` (local catalog + the 1,000 repository charts, search filter
  applied, rows built and printed as JSON to /dev/null);
* install resolution: entry lookup + version constraint -> exact version,
  archive URL and digest (no download, no cluster).

Run: .venv/bin/python bench/catalog_index.py
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import yaml

CHARTS = 1000
VERSIONS = ("1.0.0", "1.1.0", "2.0.0")
RUNS = 9
TARGET_MS = 200.0


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def generate_index(folder: Path) -> int:
    entries = {}
    for i in range(CHARTS):
        name = f"chart-{i:04d}"
        entries[name] = [
            {
                "apiVersion": "v2",
                "name": name,
                "version": v,
                "appVersion": v,
                "description": f"Generated chart number {i} for the catalog benchmark",
                "keywords": ["bench", f"k{i % 17}"],
                "urls": [f"{name}-{v}.tgz"],
                "digest": f"{i:064x}",
                "created": "2026-01-01T00:00:00Z",
            }
            for v in VERSIONS
        ]
    text = yaml.safe_dump({"apiVersion": "v1", "entries": entries, "generated": "now"})
    (folder / "index.yaml").write_text(text)
    return len(text)


def median_ms(fn: Callable[[], object]) -> tuple[float, list[float]]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), times


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["APPFLOW_HOME"] = str(root / "home")
        os.environ["APPFLOW_CACHE_DIR"] = str(root / "cache")
        served = root / "repo"
        served.mkdir()
        size = generate_index(served)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", port), partial(_QuietHandler, directory=str(served))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            from appflow.cli.catalog import list_entries
            from appflow.cli.output import emit
            from appflow.engine.catalog import entries
            from appflow.model.records import CatalogRepoRecord
            from appflow.sources import catalog as source
            from appflow.store import open_store

            repo = CatalogRepoRecord(name="bench", url=f"http://127.0.0.1:{port}")
            start = time.perf_counter()
            fetched = source.fetch_index(repo, max_age=0.0)
            first = (time.perf_counter() - start) * 1000
            store = open_store()
            store.put_catalog_repo(repo)
            store.close()
            catalog_dir = source.default_catalog_dir()
            print(f"index: {CHARTS} charts x {len(VERSIONS)} versions, {size / 1e6:.1f} MB YAML")
            print(f"first fetch + parse + cache write: {first:.0f} ms ({fetched.status})")

            def list_all() -> None:
                rows = list_entries(catalog_dir, category=None, search=None)
                assert len(rows) >= CHARTS
                with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                    emit(rows, output="json")

            def list_search() -> None:
                rows = list_entries(catalog_dir, category=None, search="chart-09")
                assert len(rows) == 100

            def resolve() -> None:
                entry = entries.find_entry(catalog_dir, "bench/chart-0500", repos=[repo])
                resolution = asyncio.run(entries.resolve(entry, version=">=1.1 <2", repos=[repo]))
                assert resolution.version == "1.1.0"
                assert resolution.digest

            results = {
                "catalog list (all, JSON)": median_ms(list_all),
                "catalog list --search": median_ms(list_search),
                "install resolution (bench/chart-0500 '>=1.1 <2')": median_ms(resolve),
            }
            revalidate = median_ms(lambda: source.fetch_index(repo, max_age=0.0))
        finally:
            server.shutdown()
            server.server_close()
    print(f"{'step':<52} {'median':>9} {'min':>8} {'max':>8}  target {TARGET_MS:.0f} ms")
    for name, (med, times) in results.items():
        verdict = "ok" if med < TARGET_MS else "OVER"
        print(f"{name:<52} {med:>7.1f}ms {min(times):>6.1f}ms {max(times):>6.1f}ms  {verdict}")
    med, times = revalidate
    print(
        f"{'index revalidation (If-Modified-Since -> 304)':<52} {med:>7.1f}ms {min(times):>6.1f}ms {max(times):>6.1f}ms  (info)"
    )


if __name__ == "__main__":
    main()
