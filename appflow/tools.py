"""Find the external binaries appflow drives, with an error that says how to get them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from appflow.errors import ToolMissingError
from appflow.paths import tools_dir

BUILT_BY = "make tools   (or: bash tools/build-tools.sh TOOL)"


def find_tool(name: str) -> Path:
    """Return the path of tool NAME: the tools cache first, then PATH.

    APPFLOW_<NAME>_BIN (upper case, '-' as '_') overrides both.
    """
    override = os.environ.get(f"APPFLOW_{name.upper().replace('-', '_')}_BIN")
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ToolMissingError(
            f"{name}: {override} (from APPFLOW_{name.upper().replace('-', '_')}_BIN) is not an executable file"
        )
    built = tools_dir() / "bin" / name
    if built.is_file() and os.access(built, os.X_OK):
        return built
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ToolMissingError(
        f"the '{name}' binary was found neither in {built.parent} nor on PATH",
        hint=f"build it with: {BUILT_BY}",
    )
