"""Source snapshots: a local folder's files as content on the hub, and back as a folder.

A hub cannot read a folder on the laptop that registered an app, so the files go to the hub
as content (one object per file, chunked and indexed like a render, so a one-file change
uploads one chunk) and each controller writes them back into a folder of its own, named
after the snapshot's digest. The files taken are exactly those ``folder_digest`` covers (every
file, hidden folders left out), so the copy digests to what the original did: a render cached
for one is the render of the other, and a revision means the same wherever it was made.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from appflow.errors import ContentError, Where
from appflow.model.codec import JsonObject

SNAPSHOT_LIMIT = 64 * 1024 * 1024
"""Bytes of files at most: a folder this large belongs in a Git repository."""


def folder_files(folder: Path) -> list[JsonObject]:
    """Every file under FOLDER (hidden folders left out) as ``{"path", "mode", "data"}``."""
    if not folder.is_dir():
        raise ContentError(
            f"the folder {folder} does not exist",
            where=Where(file=str(folder)),
            hint="the app's folder must exist on the machine that uploads it",
        )
    out: list[JsonObject] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            data = path.read_bytes()
            total += len(data)
            if total > SNAPSHOT_LIMIT:
                raise ContentError(
                    f"the folder {folder} holds more than {SNAPSHOT_LIMIT // 2**20} MiB of files",
                    where=Where(file=str(folder)),
                    hint="put the app in a Git repository and register that (appflow repo add)",
                )
            out.append(
                {
                    "path": path.relative_to(folder).as_posix(),
                    "mode": 0o755 if os.access(path, os.X_OK) else 0o644,
                    "data": base64.b64encode(data).decode("ascii"),
                }
            )
    return out


def write_files(files: Sequence[JsonObject], target: Path) -> Path:
    """Write FILES into the folder TARGET (atomically: a folder that exists is complete)."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=target.parent))
    try:
        for item in files:
            relative = PurePosixPath(str(item["path"]))
            if relative.is_absolute() or ".." in relative.parts:
                raise ContentError(f"snapshot file {relative} points outside its folder")
            path = staging.joinpath(*relative.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(str(item["data"])))
            mode = item.get("mode")
            path.chmod(mode if isinstance(mode, int) else 0o644)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # another process won the race with the same content
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
