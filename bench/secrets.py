"""What SOPS-encrypted inputs cost a sync, against the same app in plain text, in one run.

    .venv/bin/python -m bench.secrets [--files 20] [--objects 200] [--repeat 3] [--json FILE]

No cluster: it times what the engine does for one cluster before the dry run,
the part secrets change (``SecretsStage.open`` -> ``render`` -> ``reveal``),
for three apps in temporary folders, each OBJECTS ConfigMaps plus FILES Secrets:

    plain        the Secrets in plain text, and no ``decryption`` section (the baseline)
    encrypted    the Secrets encrypted by the sops CLI (data and stringData only),
                 named under ``decryption.paths``
    no-secrets   the ConfigMaps alone (what every app without secrets pays, against plain)

and two moments: **cold** (a fresh engine: the first sync after a start; every
file is decrypted by sops) and **warm** (the same engine again: the daemon's
next sync, decrypted files come from memory, the render from the render cache).
It needs ``sops`` (``bash tools/build-tools.sh sops``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

APPS = ("plain", "encrypted", "no-secrets")
MOMENTS = ("cold", "warm")


def _sops_encrypt(text: str, recipient: str, sops: Path) -> str:
    done = subprocess.run(
        [
            str(sops),
            "--config",
            os.devnull,
            "encrypt",
            "--age",
            recipient,
            "--encrypted-regex",
            "^(data|stringData)$",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            "/dev/stdin",
        ],
        input=text.encode(),
        capture_output=True,
        check=True,
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent", "SOPS_DISABLE_VERSION_CHECK": "1"},
    )
    return done.stdout.decode()


def write_apps(root: Path, *, files: int, objects: int, recipient: str, sops: Path) -> None:
    for app in APPS:
        folder = root / app
        folder.mkdir(parents=True)
        marks = "decryption:\n  paths: ['*.sops.yaml']\n" if app == "encrypted" else ""
        (folder / "appflow.yaml").write_text(f"name: {app}\nnamespace: bench\n{marks}")
        for i in range(objects):
            cm = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{i:04d}", "namespace": "bench"},
                "data": {"i": str(i)},
            }
            (folder / f"cm-{i:04d}.yaml").write_text(yaml.safe_dump(cm))
        if app == "no-secrets":
            continue
        for i in range(files):
            text = yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": f"s-{i:03d}", "namespace": "bench"},
                    "stringData": {"password": f"pw-{i:03d}-{os.urandom(6).hex()}"},
                }
            )
            if app == "encrypted":
                (folder / f"s-{i:03d}.sops.yaml").write_text(_sops_encrypt(text, recipient, sops))
            else:
                (folder / f"s-{i:03d}.yaml").write_text(text)


async def desired_once(stage: Any, cache: Any, root: Path, app: str) -> int:
    from appflow.engine.desired import render_request
    from appflow.model.capabilities import Capabilities
    from appflow.model.records import ClusterRecord
    from appflow.model.targeting import ClusterInfo
    from appflow.render import render
    from appflow.sources.appdef import load_app_definitions
    from appflow.sources.folders import folder_digest

    (definition,) = load_app_definitions(root / app)
    cluster = ClusterRecord(name="bench-1", kind="imported", labels={})
    request = render_request(
        definition,
        repo_root=root / app,
        source_digest=f"local::{folder_digest(root / app)}",
        cluster=ClusterInfo(name=cluster.name, labels={}),
        groups={},
        capabilities=Capabilities(kube_version=""),
    )
    opened = await stage.open(definition, request, cluster=cluster, groups={})
    rendered = await render(opened.request, cache=cache if opened.cacheable else None)
    objects = await stage.reveal(opened, rendered.objects, definition=definition)
    return len(objects)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from appflow.engine.secrets import SecretsStage
    from appflow.render.cache import RenderCache
    from appflow.secrets import age
    from appflow.secrets.keys import KeyRing
    from appflow.tools import find_tool

    samples: dict[str, dict[str, list[float]]] = {a: {m: [] for m in MOMENTS} for a in APPS}
    with tempfile.TemporaryDirectory(prefix="appflow-bench-secrets-") as tmp:
        base = Path(tmp)
        os.environ["APPFLOW_HOME"] = str(base / "home")
        os.environ["APPFLOW_CACHE_DIR"] = str(base / "cache")
        identity = age.generate()
        ring = KeyRing(base / "keys")
        ring.add("bench", scope="cluster", owner="bench-1", identity=identity)
        write_apps(
            base / "apps",
            files=args.files,
            objects=args.objects,
            recipient=identity.recipient,
            sops=find_tool("sops"),
        )
        for repeat in range(args.repeat):
            order = APPS[repeat % len(APPS) :] + APPS[: repeat % len(APPS)]
            for app in order:
                stage = SecretsStage(keys=ring)
                cache = RenderCache(directory=base / "cache" / f"render-{repeat}-{app}")
                for moment in MOMENTS:
                    started = time.perf_counter()
                    count = asyncio.run(desired_once(stage, cache, base / "apps", app))
                    samples[app][moment].append(time.perf_counter() - started)
                    assert count == args.objects + (0 if app == "no-secrets" else args.files)
    return {
        "files": args.files,
        "objects": args.objects,
        "repeat": args.repeat,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load": os.getloadavg(),
        },
        "samples": samples,
    }


def report(result: dict[str, Any]) -> None:
    samples = result["samples"]
    print(
        f"{result['objects']} ConfigMaps + {result['files']} Secrets, {result['repeat']} repeats, "
        f"{result['machine']['cores']} cores, load {result['machine']['load'][0]:.1f}"
    )
    print(f"{'app':<12} {'moment':<6} {'median s':>9} {'range s':>15} {'x plain':>8}")
    for moment in MOMENTS:
        baseline = statistics.median(samples["plain"][moment])
        for app in APPS:
            values = samples[app][moment]
            median = statistics.median(values)
            spread = f"{min(values):.3f}-{max(values):.3f}"
            print(f"{app:<12} {moment:<6} {median:>9.3f} {spread:>15} {median / baseline:>7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20, help="encrypted Secret files")
    parser.add_argument("--objects", type=int, default=200, help="plain ConfigMaps beside them")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
