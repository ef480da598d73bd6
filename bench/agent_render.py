"""What rendering on the agent (``renderOn: agent``) costs against the push engine's render of
the same app, in one run.

    .venv/bin/python -m bench.agent_render [--repeat 5] [--json FILE]

No cluster: repos-example/secure-mqtt's two apps (a Helm chart with encrypted values, a plain
folder with an encrypted password file), decrypted with the example's test-only key, timed
from a fresh secrets stage each time (sops runs every time, as for a new revision):

    engine   ``render_request_for`` on the repository folder (what push mode does)
    hub      the hub's share for a pull cluster: the app's render inputs (``inputs_objects``)
    agent    the agent's share: the inputs written to a private folder and rendered there
             (``render_on_edge``: the same stage and render, plus the folder)

and the bytes shipped (the inputs as the content store chunks them, gzip) against the bytes
of the rendered objects the hub would otherwise ship. Needs helm and sops
(``bash tools/build-tools.sh helm sops``).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from appflow.kube.client import KubeCluster

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "repos-example" / "secure-mqtt"
APPS = {"secure-mqtt/bridge": "helm", "secure-mqtt/broker": "yaml"}


async def _one(folder: str, kind: Any, repeat: int) -> dict[str, Any]:
    from appflow.agent.render import EdgeSecrets, render_on_edge
    from appflow.engine.desired import render_request, render_request_for
    from appflow.engine.render_inputs import inputs_objects
    from appflow.model import content as fmt
    from appflow.model.appdef import from_appflow_document
    from appflow.model.capabilities import Capabilities
    from appflow.model.records import ClusterRecord
    from appflow.model.targeting import ClusterInfo
    from appflow.secrets import age

    root = EXAMPLE.parent
    doc = yaml.safe_load((root / folder / "appflow.yaml").read_text())
    definition = from_appflow_document(
        doc, path=folder, file=f"{folder}/appflow.yaml", default_kind=kind
    )
    request = render_request(
        definition,
        repo_root=root,
        source_digest="bench",
        cluster=ClusterInfo(name="site-1", labels={}),
        groups={},
        capabilities=Capabilities(kube_version="v1.31.0"),
    )
    key = age.parse_identities((EXAMPLE / "TEST-ONLY-age-key.txt").read_text())[0]
    cluster = ClusterRecord(name="site-1", kind="imported")
    times: dict[str, list[float]] = {"engine": [], "hub": [], "agent": []}
    rendered: Any = None
    inputs: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        _, desired = await render_request_for(
            definition,
            request,
            cluster,
            groups={},
            kube=_no_cluster,
            cache=None,
            secrets=EdgeSecrets(key),
        )
        times["engine"].append(time.perf_counter() - start)
        rendered = desired.objects
        start = time.perf_counter()
        inputs = inputs_objects(request, definition)
        times["hub"].append(time.perf_counter() - start)
        start = time.perf_counter()
        revealed = await render_on_edge(
            inputs, secrets=EdgeSecrets(key), cluster="site-1", app=definition.name
        )
        times["agent"].append(time.perf_counter() - start)
        assert revealed.objects == rendered, "the agent renders what the engine renders"

    def shipped(objects: Any) -> int:
        split = fmt.split_render(list(objects))
        return sum(len(gzip.compress(b.data, mtime=0)) for b in split.blobs())

    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "app": definition.name,
        "seconds": median,
        "agent_over_engine": median["agent"] / median["engine"],
        "bytes_inputs_gzip": shipped(inputs),
        "bytes_render_gzip": shipped(rendered),
    }


def _no_cluster() -> KubeCluster:
    raise RuntimeError("secure-mqtt asks for no helm lookup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [asyncio.run(_one(f, k, args.repeat)) for f, k in APPS.items()]
    for r in results:
        s = r["seconds"]
        print(
            f"{r['app']:15} engine {s['engine'] * 1000:7.0f} ms  hub {s['hub'] * 1000:5.1f} ms  "
            f"agent {s['agent'] * 1000:7.0f} ms  (agent/engine {r['agent_over_engine']:.2f}x)  "
            f"shipped {r['bytes_inputs_gzip']} B inputs vs {r['bytes_render_gzip']} B render"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"python": platform.python_version(), "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
