"""Local folders as sources: what identifies their content."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


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
