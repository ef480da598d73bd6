"""Benchmark: what the input limits cost a render (issue 10, item 11).

Writes a folder of N manifests (Deployments and ConfigMaps, one file each, a few
MB in all), then times, median of several runs, in one process:

* ``baseline``: what any render of that folder must do: read the files, parse
  them with libyaml, and digest the objects (canonical JSON of all of them);
* ``checks``: the limit checks alone, as the render runs them on the same
  documents: nesting and alias expansion per document
  (``document_problem``), and each object's size as the JSON sent to the API
  server;
* ``render``: for reference, ``load_plain`` + ``Rendered.of``, the whole render
  of a plain folder with the checks in it.

The ratio checks / baseline is what the limits add to the work a render
cannot avoid.

Run: .venv/bin/python -m bench.limits [--objects 2000] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from appflow.model.limits import Limits, document_problem
from appflow.render.documents import _Loader
from appflow.render.plain import load_plain
from appflow.render.types import Rendered, revision_of


def write_folder(folder: Path, objects: int) -> int:
    size = 0
    for n in range(objects):
        if n % 2:
            doc = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{n}", "labels": {"app": "bench", "n": str(n)}},
                "data": {f"key-{k}": "value " * 20 for k in range(10)},
            }
        else:
            doc = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"web-{n}", "labels": {"app": "bench"}},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": f"web-{n}"}},
                    "template": {
                        "metadata": {"labels": {"app": f"web-{n}"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "web",
                                    "image": "registry.example/web:1.0",
                                    "env": [{"name": f"E{k}", "value": str(k)} for k in range(15)],
                                    "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                                }
                            ]
                        },
                    },
                },
            }
        text = yaml.safe_dump(doc, sort_keys=False)
        (folder / f"{n:05}.yaml").write_text(text)
        size += len(text)
    return size


def parsed(folder: Path) -> list[tuple[object, bool]]:
    """Every document of FOLDER, and whether its text could hold YAML aliases."""
    objects = []
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        aliases = "&" in text and "*" in text  # as parse_yaml_documents decides
        loader = _Loader(text)
        try:
            while loader.check_node():
                objects.append((loader.construct_document(loader.get_node()), aliases))
        finally:
            loader.dispose()
    return objects


def baseline(folder: Path) -> str:
    return revision_of([obj for obj, _ in parsed(folder)])  # type: ignore[misc]


def checks(objects: list[tuple[object, bool]], limits: Limits) -> int:
    total = 0
    for obj, aliases in objects:
        assert document_problem(obj, limits, aliases=aliases) is None
        total += len(
            json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        )
    return total


def render(folder: Path) -> str:
    return Rendered.of(load_plain(folder, namespace="bench")).revision


def median_seconds(run: Callable[[], object], runs: int) -> tuple[float, float, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), min(samples), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="appflow-bench-limits-") as tmp:
        folder = Path(tmp)
        size = write_folder(folder, args.objects)
        print(f"{args.objects} objects in {args.objects} files, {size / 1e6:.1f} MB of YAML")
        # Alternate the two, so that a busy moment of the machine hits both alike.
        objects, limits = parsed(folder), Limits()
        runs: dict[str, Callable[[], object]] = {
            "baseline": lambda: baseline(folder),
            "checks": lambda: checks(objects, limits),
            "render": lambda: render(folder),
        }
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
        for _ in range(2):
            for name, run in runs.items():
                results[name].append(median_seconds(run, args.runs))
        medians = {name: min(r[0] for r in rows) for name, rows in results.items()}
        for name, rows in results.items():
            low = min(r[1] for r in rows)
            high = max(r[2] for r in rows)
            print(f"  {name:9} median {medians[name]:.3f} s (range {low:.3f}-{high:.3f})")
        ratio = medians["checks"] / medians["baseline"]
        print(f"  checks / baseline = {ratio:.2f} (the limits add {100 * ratio:.0f}% to a render)")


if __name__ == "__main__":
    main()
