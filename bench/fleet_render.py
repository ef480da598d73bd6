"""What reading Fleet's forms costs appflow over the bare tools: kustomize dirs and helm + kustomize.

    .venv/bin/python -m bench.fleet_render [--repeat 7]

For the multi-cluster fixture (tests/fixtures/fleet/multi-cluster), on the
prod target, times in the same process and moments apart:

* **kustomize dir**: appflow's render of `kustomize/overlays/prod` (the path
  graph confined to the source, `kustomize build` with load restrictions,
  parsing, object checks) against the bare `kustomize build` of that folder;
* **helm + kustomize**: appflow's render of the fixture's chart post-rendered
  by a kustomization (helm template, the copy of the kustomization's folders,
  kustomize build, parsing) against the bare `helm template | kustomize build`
  a shell pipeline would run;
* **definitions**: reading the four fleet.yaml apps (parsing, Fleet's field
  rules, every named path resolved and checked).

No render cache is used: each repeat renders. Prints the median and range of
each, and appflow's median as a ratio of the bare tools' median.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from appflow.render import Capabilities, HelmChartRef, RenderRequest, render
from appflow.sources.appdef import load_app_definitions
from appflow.tools import find_tool

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fleet" / "multi-cluster"
POST_RENDER = "patches:\n- path: scale.yaml\n"
SCALE = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: mc-helm-web\nspec:\n  replicas: 5\n"
)


def _timed(step: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def _row(name: str, ours: list[float], bare: list[float] | None) -> str:
    med = statistics.median(ours)
    text = (
        f"{name:<18} appflow {med * 1000:7.1f} ms ({min(ours) * 1000:.1f}-{max(ours) * 1000:.1f})"
    )
    if bare is not None:
        base = statistics.median(bare)
        text += (
            f"   bare tools {base * 1000:7.1f} ms ({min(bare) * 1000:.1f}-{max(bare) * 1000:.1f})"
        )
        text += f"   ratio {med / base:.2f}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    kustomize, helm = str(find_tool("kustomize")), str(find_tool("helm"))
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        root = Path(tmp) / "repo"
        shutil.copytree(FIXTURE, root)
        hk = root / "helm-kustomize" / "fleet.yaml"
        hk.write_text(hk.read_text().replace("CHART_URL", "https://charts.example.com/web.tgz"))
        post = root / "helm" / "overlays" / "prod"
        post.mkdir(parents=True)
        (post / "kustomization.yaml").write_text(POST_RENDER)
        (post / "scale.yaml").write_text(SCALE)
        chart = root / "helm" / "chart"
        caps = Capabilities(kube_version="v1.33.0", api_versions=("v1", "apps/v1"))

        def request(kind: str, source: Path, **extra: object) -> RenderRequest:
            return RenderRequest(
                app="bench",
                cluster="prod",
                kind=kind,  # type: ignore[arg-type]
                source_dir=source,
                source_digest="bench",
                capabilities=caps,
                namespace="bench",
                source_root=root,
                **extra,  # type: ignore[arg-type]
            )

        kust = request("kustomize", root / "kustomize", kustomize_dir="overlays/prod")
        charted = request(
            "helm",
            root / "helm",
            helm=HelmChartRef(path=chart),
            release_name="mc-helm",
            kustomize_dir="overlays/prod",
        )

        def bare_kustomize() -> None:
            subprocess.run(
                [kustomize, "build", str(root / "kustomize" / "overlays" / "prod")],
                check=True,
                capture_output=True,
            )

        def bare_helm_kustomize() -> None:
            out = subprocess.run(
                [helm, "template", "mc-helm", str(chart), "--namespace", "bench"],
                check=True,
                capture_output=True,
            ).stdout
            with tempfile.TemporaryDirectory() as work:
                (Path(work) / "all.yaml").write_bytes(out)
                (Path(work) / "scale.yaml").write_text(SCALE)
                (Path(work) / "kustomization.yaml").write_text(
                    "resources:\n- all.yaml\n" + POST_RENDER
                )
                subprocess.run([kustomize, "build", work], check=True, capture_output=True)

        rows = [
            _row(
                "kustomize dir",
                _timed(lambda: asyncio.run(render(kust)), args.repeat),
                _timed(bare_kustomize, args.repeat),
            ),
            _row(
                "helm + kustomize",
                _timed(lambda: asyncio.run(render(charted)), args.repeat),
                _timed(bare_helm_kustomize, args.repeat),
            ),
            _row(
                "definitions (4)",
                _timed(lambda: load_app_definitions(root), args.repeat),
                None,
            ),
        ]
    print(f"multi-cluster fixture, prod target, {args.repeat} repeats, median (min-max)")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
