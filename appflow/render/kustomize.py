"""Render a kustomization with the ``kustomize`` binary (``kustomize build DIR``).

The build runs with kustomize's defaults. Two flags are left off on purpose:

- ``--enable-helm``: kustomize would download and inflate charts itself, outside
  appflow's chart handling and render cache. An app that needs a chart is a helm app.
- ``--load-restrictor LoadRestrictionsNone``: the default lets an overlay use
  bases by folder (``resources: [../../base]``), which is what overlays need, but
  stops a kustomization from reading arbitrary files elsewhere in the checkout
  (another team's secrets). kustomize's own error says when a file is refused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from appflow.errors import RenderError
from appflow.model.objects import Manifest
from appflow.render.documents import finish_objects, parse_yaml_documents, to_objects
from appflow.tools import find_tool

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def kustomization_root(source_dir: Path, kustomize_dir: str | None) -> Path:
    """The folder to build: the app folder, or the one the target customization chose."""
    folder = (source_dir / kustomize_dir) if kustomize_dir else source_dir
    if not folder.is_dir():
        raise RenderError(
            f"kustomize folder {kustomize_dir or '.'} does not exist in the app folder",
        ).located(file=str(folder))
    if not any((folder / name).is_file() for name in KUSTOMIZATION_FILES):
        raise RenderError(
            "no kustomization.yaml in the kustomize folder",
            hint="point kustomize.dir at a folder with a kustomization.yaml",
        ).located(file=str(folder))
    return folder


async def render_kustomize(
    source_dir: Path, *, kustomize_dir: str | None = None, namespace: str | None = None
) -> tuple[Manifest, ...]:
    """Build the kustomization and return its objects (namespaced ones defaulted to NAMESPACE)."""
    folder = kustomization_root(source_dir, kustomize_dir)
    kustomize = find_tool("kustomize")
    proc = await asyncio.create_subprocess_exec(
        str(kustomize),
        "build",
        str(folder),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await proc.communicate()
    except asyncio.CancelledError:
        # Do not leave a kustomize behind when the render is cancelled.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        message = stderr.decode(errors="replace").strip().removeprefix("Error: ")
        raise RenderError(f"kustomize build failed: {message}").located(file=str(folder))
    label = f"kustomize build {kustomize_dir or '.'}"
    docs = parse_yaml_documents(stdout.decode(), file=label)
    return finish_objects(to_objects(docs), namespace=namespace)
