"""Render a kustomization with the ``kustomize`` binary, confined to the source root.

``kustomize build`` runs with kustomize's load restrictions on
(``--load-restrictor LoadRestrictionsRootOnly``, stated rather than left to a
default): a kustomization reads files only under its own folder, and reaches
other folders only as kustomizations of their own (``resources: [../../base]``,
which is what overlays need). That alone would still let a kustomization name
a folder of the host (``/etc``, ``../../../..``), so before any build every
path the kustomization graph names (resources, bases, components, patches,
generator files, ...) is resolved, symlinks followed, and must stay inside the
source root: the repository checkout, or the folder registered.

Two flags are left off on purpose:

- ``--enable-helm``: kustomize would download and inflate charts itself, outside
  appflow's chart handling and render cache. An app that needs a chart is a helm app.
- ``--load-restrictor LoadRestrictionsNone``: see above.

``post_render`` is Fleet's helm + kustomize form: helm's output is written as
``fleet-manifests.yaml`` into the kustomization's folder and put first in its
resources (unless it already lists that file), then the folder is built. The
checkout is shared and read-only, so the folders the build needs are copied to
a temporary tree first, at the same relative places.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from appflow.errors import RenderError
from appflow.model.objects import Manifest
from appflow.render.documents import (
    check_output_size,
    finish_objects,
    parse_yaml_documents,
    to_objects,
)
from appflow.tools import find_tool

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
POST_RENDER_FILE = "fleet-manifests.yaml"
"""The name Fleet gives helm's output inside the post-rendering kustomization."""

# Fields whose entries are kustomizations (folders) or files of the kustomization.
_PATH_LISTS = (
    "resources", "bases", "components", "crds", "configurations", "generators",
    "transformers", "validators", "patchesStrategicMerge",
)  # fmt: skip
_PATH_ITEMS = ("patches", "patchesJson6902", "replacements")
_GENERATORS = ("configMapGenerator", "secretGenerator")
_REMOTE = ("http://", "https://", "git::", "git@", "ssh://", "github.com/", "gitlab.com/")


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if _inside(root, path) else str(path)


def find_kustomization(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def kustomization_root(source_dir: Path, kustomize_dir: str | None, *, root: Path) -> Path:
    """The folder to build: the app folder, or the one the definition or customization chose."""
    root = root.resolve()
    folder = ((source_dir / kustomize_dir) if kustomize_dir else source_dir).resolve()
    shown = kustomize_dir or "."
    if not _inside(root, folder):
        raise RenderError(
            f"kustomize folder {shown} is outside the source ({folder})",
            hint="kustomize.dir must name a folder inside the repository or registered folder",
        )
    if not folder.is_dir():
        raise RenderError(f"kustomize folder {shown} does not exist in the app folder").located(
            file=_relative(root, folder)
        )
    if find_kustomization(folder) is None:
        raise RenderError(
            f"no kustomization.yaml in the kustomize folder {shown}",
            hint="point kustomize.dir at a folder with a kustomization.yaml",
        ).located(file=_relative(root, folder))
    return folder


def _looks_like_path(entry: str) -> bool:
    # patchesStrategicMerge and friends also take inline YAML documents.
    return bool(entry) and "\n" not in entry and ": " not in entry and not entry.startswith("{")


def _referenced(doc: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, path) for every path a kustomization document names."""
    for key in _PATH_LISTS:
        for i, entry in enumerate(doc.get(key) or []):
            if isinstance(entry, str):
                yield f"{key}[{i}]", entry
    for key in _PATH_ITEMS:
        for i, item in enumerate(doc.get(key) or []):
            if isinstance(item, Mapping) and isinstance(item.get("path"), str):
                yield f"{key}[{i}].path", item["path"]
            elif isinstance(item, str):
                yield f"{key}[{i}]", item
    for key in _GENERATORS:
        for i, gen in enumerate(doc.get(key) or []):
            if not isinstance(gen, Mapping):
                continue
            for sub in ("files", "envs"):
                for j, entry in enumerate(gen.get(sub) or []):
                    if isinstance(entry, str):
                        # "key=path" names the file after the '='.
                        yield f"{key}[{i}].{sub}[{j}]", entry.split("=", 1)[-1]
            if isinstance(gen.get("env"), str):
                yield f"{key}[{i}].env", gen["env"]
    openapi = doc.get("openapi")
    if isinstance(openapi, Mapping) and isinstance(openapi.get("path"), str):
        yield "openapi.path", openapi["path"]


def _line_of(text: str, entry: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if entry in line:
            return number
    return None


def kustomization_folders(folder: Path, *, root: Path) -> list[Path]:
    """Every kustomization folder the build of FOLDER reads, FOLDER first.

    Raises RenderError, naming the kustomization file, line and field, when
    any path the graph names resolves outside ROOT.
    """
    root = root.resolve()
    seen: list[Path] = []
    pending = [folder.resolve()]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.append(current)
        file = find_kustomization(current)
        if file is None:
            continue
        text = file.read_text(encoding="utf-8", errors="replace")
        try:
            docs = parse_yaml_documents(text, file=_relative(root, file))
        except RenderError as err:
            if err.message.startswith("invalid YAML"):
                continue  # kustomize reports its own syntax errors, with their place
            raise  # beyond the limits (nesting, YAML aliases): refused here already
        doc = docs[0].data if docs else None
        if not isinstance(doc, Mapping):
            continue
        for field, entry in _referenced(doc):
            if not _looks_like_path(entry) or entry.startswith(_REMOTE):
                continue
            target = (current / entry).resolve()
            if not _inside(root, target):
                raise RenderError(
                    f"{entry!r} points outside the source (to {target})",
                    hint="a kustomization may only use files and folders inside the repository "
                    "or registered folder",
                ).located(file=_relative(root, file), line=_line_of(text, entry), field=field)
            if target.is_dir():
                pending.append(target)
    return seen


async def _kustomize_build(folder: Path, *, shown: str) -> str:
    kustomize = find_tool("kustomize")
    proc = await asyncio.create_subprocess_exec(
        str(kustomize),
        "build",
        "--load-restrictor",
        "LoadRestrictionsRootOnly",
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
        raise RenderError(f"kustomize build failed: {message}").located(file=shown)
    return stdout.decode()


async def render_kustomize(
    source_dir: Path,
    *,
    kustomize_dir: str | None = None,
    namespace: str | None = None,
    root: Path | None = None,
) -> tuple[Manifest, ...]:
    """Build the kustomization and return its objects (namespaced ones defaulted to NAMESPACE)."""
    base = (root or source_dir).resolve()
    folder = kustomization_root(source_dir, kustomize_dir, root=base)
    await asyncio.to_thread(kustomization_folders, folder, root=base)
    text = await _kustomize_build(folder, shown=_relative(base, folder))
    label = f"kustomize build {kustomize_dir or '.'}"
    return await _objects_of(text, label=label, namespace=namespace)


async def _objects_of(text: str, *, label: str, namespace: str | None) -> tuple[Manifest, ...]:
    """The objects kustomize printed, within the limits; parsed off the event loop."""
    check_output_size(text, what=label)
    # Parsing megabytes of YAML takes seconds: not on the event loop.
    return await asyncio.to_thread(
        lambda: finish_objects(
            to_objects(parse_yaml_documents(text, file=label)), namespace=namespace
        )
    )


def _copy_tree(folders: list[Path], *, root: Path, into: Path) -> None:
    """Copy each of FOLDERS (their whole subtree) to the same place under INTO.

    Symbolic links are copied as links: a link that leaves the copy is refused
    by kustomize's load restrictions, as it would be in the checkout.
    """
    for folder in sorted(folders, key=lambda p: len(p.parts)):
        target = into / folder.relative_to(root)
        shutil.copytree(folder, target, symlinks=True, dirs_exist_ok=True)


def _with_post_render_resource(file: Path) -> None:
    """Put POST_RENDER_FILE first in the kustomization's resources (Fleet's rule)."""
    docs = parse_yaml_documents(file.read_text(encoding="utf-8"), file=file.name)
    data = (docs[0].data if docs else None) or {}
    if not isinstance(data, dict):
        raise RenderError("the kustomization is not a mapping").located(file=file.name)
    resources = [r for r in (data.get("resources") or []) if isinstance(r, str)]
    if POST_RENDER_FILE not in resources:
        data["resources"] = [POST_RENDER_FILE, *resources]
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


async def post_render(
    manifests: str,
    source_dir: Path,
    *,
    kustomize_dir: str,
    namespace: str | None,
    root: Path,
) -> tuple[Manifest, ...]:
    """Objects of helm's MANIFESTS as the kustomization at KUSTOMIZE_DIR makes them."""
    base = root.resolve()
    folder = kustomization_root(source_dir, kustomize_dir, root=base)
    folders = await asyncio.to_thread(kustomization_folders, folder, root=base)
    with tempfile.TemporaryDirectory(prefix="appflow-post-render-") as tmp:
        copy_root = Path(tmp) / "src"

        def prepare() -> Path:
            _copy_tree(folders, root=base, into=copy_root)
            copy = copy_root / folder.relative_to(base)
            (copy / POST_RENDER_FILE).write_text(manifests, encoding="utf-8")
            found = find_kustomization(copy)
            assert found is not None, "kustomization_root checked it"
            _with_post_render_resource(found)
            return copy

        copy = await asyncio.to_thread(prepare)
        text = await _kustomize_build(copy, shown=_relative(base, folder))
    label = f"kustomize build {kustomize_dir} (post-rendering the chart)"
    return await _objects_of(text, label=label, namespace=namespace)
