"""Local folders as sources: what identifies their content, and that they stay inside themselves."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from appflow.errors import ConfigError, Where


def folder_digest(folder: Path) -> str:
    """sha256 over every file under FOLDER, paths and bytes, hidden folders left out.

    The render cache and catalog installs trust it: equal digests mean equal content.
    """
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            h.update(str(path.relative_to(folder)).encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def local_source_digest(root: Path, app_dir: Path) -> str:
    """folder_digest of APP_DIR, once every symlink under ROOT is known to stay inside ROOT."""
    check_symlinks(root, origin=f"folder {root}")
    return folder_digest(app_dir)


def check_symlinks(root: Path, *, origin: str) -> None:
    """Refuse a symlink under ROOT, to a file or a folder, that leads outside ROOT.

    A link out of a source would let whoever writes the source make appflow
    read (and render, and send to a cluster) any file of this machine: a
    cluster's kubeconfig, the store. Git checkouts and local folders are
    checked the same way, after the tree is complete, because links may point
    through other links. ORIGIN names the source in the error ("commit abc").
    Git's own folder is not walked: git never checks out links inside it.
    """
    real_root = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                continue
            target = os.path.realpath(path)
            if os.path.commonpath([real_root, target]) != real_root:
                relative = os.path.relpath(path, root)
                raise ConfigError(
                    f"symlink {relative!r} in {origin} points outside the repository "
                    f"(to {os.readlink(path)!r})",
                    where=Where(file=relative),
                    hint="make the link relative and inside the repository, or copy the file",
                )
        dirs[:] = [d for d in dirs if d != ".git"]
