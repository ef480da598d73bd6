"""Render a folder of plain manifests, with Fleet-style ``overlays/<name>/`` customization.

Every ``.yaml``, ``.yml`` and ``.json`` file under the app folder is read, in
sorted path order, each possibly holding many documents. Left out: the app's
own definition files (``appflow.yaml``, ``fleet.yaml``), kustomization files,
dot-folders, the ``overlays/`` folder, and sub-folders that are apps or charts of
their own (they hold ``appflow.yaml``, ``fleet.yaml`` or ``Chart.yaml``): Fleet
makes a separate bundle of those, and a chart's templates are not manifests.

Overlays follow Fleet's file-name rules, applied in the order the target
customization lists them: ``overlays/<name>/x.yaml`` adds ``x.yaml`` or replaces
the base file of that name; ``overlays/<name>/x_patch.yaml`` patches the
objects of ``x.yaml`` (see ``patches``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from appflow.errors import RenderError
from appflow.model.objects import Manifest
from appflow.render.documents import (
    Document,
    check_file_size,
    finish_objects,
    parse_json_documents,
    parse_yaml_documents,
    to_objects,
)
from appflow.render.patches import PatchError, apply_patch

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
APP_FILES = frozenset({"appflow.yaml", "appflow.yml", "fleet.yaml", "fleet.yml"})
KUSTOMIZATION_FILES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})
NESTED_UNIT_MARKERS = ("appflow.yaml", "fleet.yaml", "Chart.yaml")
OVERLAYS_DIR = "overlays"
PATCH_MARK = "_patch."


async def render_plain(
    source_dir: Path, *, overlays: tuple[str, ...] = (), namespace: str | None = None
) -> tuple[Manifest, ...]:
    """Read, overlay and check the manifests of SOURCE_DIR (file reads run in a thread)."""
    return await asyncio.to_thread(load_plain, source_dir, overlays=overlays, namespace=namespace)


def load_plain(
    source_dir: Path, *, overlays: tuple[str, ...] = (), namespace: str | None = None
) -> tuple[Manifest, ...]:
    if not source_dir.is_dir():
        raise RenderError(f"manifest folder {source_dir} does not exist")
    files: dict[str, list[Document]] = {}
    for path in _manifest_files(source_dir, root=True):
        rel = path.relative_to(source_dir).as_posix()
        files[rel] = _read(path, rel)
    for name in overlays:
        _apply_overlay(source_dir, name, files)
    pairs = (pair for rel in sorted(files) for pair in to_objects(files[rel]))
    return finish_objects(pairs, namespace=namespace)


def _manifest_files(folder: Path, *, root: bool) -> Iterator[Path]:
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if root and entry.name == OVERLAYS_DIR:
                continue
            if any((entry / marker).is_file() for marker in NESTED_UNIT_MARKERS):
                continue
            yield from _manifest_files(entry, root=False)
        elif entry.is_file() and entry.suffix in MANIFEST_SUFFIXES:
            if entry.name in APP_FILES or entry.name in KUSTOMIZATION_FILES:
                continue
            yield entry


def _read(path: Path, rel: str) -> list[Document]:
    check_file_size(path, shown=rel)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RenderError(f"cannot read {rel}: {err}").located(file=rel) from err
    if path.suffix == ".json":
        return parse_json_documents(text, file=rel)
    return parse_yaml_documents(text, file=rel)


def _apply_overlay(source_dir: Path, name: str, files: dict[str, list[Document]]) -> None:
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise RenderError(f"overlay name {name!r} is not a folder name under {OVERLAYS_DIR}/")
    folder = source_dir / OVERLAYS_DIR / name
    if folder.exists() and not folder.resolve().is_relative_to(source_dir.resolve()):
        raise RenderError(
            f"overlay {name!r} points outside the app folder ({folder.resolve()})",
            hint=f"overlays are folders under {OVERLAYS_DIR}/ of the app folder",
        )
    if not folder.is_dir():
        available = sorted(p.name for p in (source_dir / OVERLAYS_DIR).glob("*") if p.is_dir())
        raise RenderError(
            f"overlay {name!r} not found: {OVERLAYS_DIR}/{name}/ does not exist",
            hint=f"overlays available: {', '.join(available) or 'none'}",
        )
    for path in _manifest_files(folder, root=False):
        rel_in_overlay = PurePosixPath(path.relative_to(folder).as_posix())
        rel = path.relative_to(source_dir).as_posix()
        docs = _read(path, rel)
        if PATCH_MARK in rel_in_overlay.name:
            target = str(rel_in_overlay.with_name(rel_in_overlay.name.replace(PATCH_MARK, ".", 1)))
            if target not in files:
                raise RenderError(
                    f"patch {rel} targets {target}, which is neither a base file nor added by an earlier overlay",
                    hint=f"a file named x{PATCH_MARK}yaml patches x.yaml",
                ).located(file=rel)
            files[target] = _patch_file(files[target], docs, patch_file=rel, target=target)
        else:
            files[str(rel_in_overlay)] = docs


def _patch_file(
    targets: list[Document], patches: list[Document], *, patch_file: str, target: str
) -> list[Document]:
    result = list(targets)
    for patch in patches:
        if patch.data is None:
            continue
        live = [n for n, d in enumerate(result) if isinstance(d.data, dict) and d.data]
        chosen = live
        if len(live) > 1:
            chosen = [n for n in live if _same_object(result[n].data, patch.data)]
        if len(chosen) != 1:
            raise RenderError(
                f"cannot tell which object of {target} document {patch.index + 1} of the patch applies to",
                hint="give the patch the kind and metadata.name of the object it patches",
            ).located(file=patch_file, line=patch.line)
        n = chosen[0]
        try:
            patched = apply_patch(result[n].data, patch.data)
        except PatchError as err:
            raise RenderError(f"cannot apply patch to {target}: {err}").located(
                file=patch_file, line=patch.line
            ) from err
        old = result[n]
        result[n] = Document(
            data=patched,
            file=old.file,
            index=old.index,
            line=old.line,
            origin=f"patched by {patch_file}",
        )
    return result


def _same_object(obj: Manifest, patch: object) -> bool:
    if not isinstance(patch, dict):
        return False
    name = (patch.get("metadata") or {}).get("name")
    kind = patch.get("kind")
    if not name and not kind:
        return False
    return (not kind or obj.get("kind") == kind) and (
        not name or (obj.get("metadata") or {}).get("name") == name
    )
